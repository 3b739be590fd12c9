// LibTorch LoraFAOptimizer against the float64 reference (reference/), step by step. The stepping tests
// run on the CPU and, where there is one, on a CUDA device (the fused CUDA kernel); without one the CUDA
// instances skip, saying "no CUDA device".
#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "lorafa/optimizer.h"
#include "lorafa/projection.h"
#include "reference/bfloat16.h"
#include "reference/lorafa_optimizer.h"
#include "reference/projection.h"
#include "testing/eigen_tensor.h"
#include "testing/error_bounds.h"
#include "testing/tensor_compare.h"

namespace lorafa {
namespace {

using lorafa::testing::AllClose;
using lorafa::testing::PeftBfloat16ErrorBound;
using lorafa::testing::ProjectionErrorBound;
using lorafa::testing::ToEigen;
using lorafa::testing::WithinBound;

constexpr double kFloat32UnitRoundoff = std::numeric_limits<float>::epsilon() / 2;  // 2^-24

struct Shape {
  int64_t r, in, out;
  double scaling;
};
// Each A has in ≥ 8r, so A/√in has singular values in [1−√(r/in), 1+√(r/in)] ⊂ [0.64, 1.36]
// (random matrix bounds) and κ(A Aᵀ) ≤ (1.36/0.64)² < 5: well conditioned on purpose.
const std::vector<Shape> kShapes = {{2, 16, 3, 2.0}, {4, 40, 7, 0.5}, {8, 64, 5, 8.0 / std::sqrt(8.0)}};

struct Problem {
  std::vector<LoraPair> pairs;
  std::vector<torch::Tensor> others;
  reference::ReferenceLoraFA reference;
};

// Values are drawn on the CPU and then moved, so every device sees the same numbers.
Problem MakeProblem(torch::ScalarType dtype, const LoraFAOptions& options, reference::ReferenceProjection mode,
                    torch::Device device) {
  auto [beta1, beta2] = options.betas();
  reference::AdamWHyperparameters hyper{options.lr(), beta1, beta2, options.eps(), options.weight_decay(),
                                        options.correct_bias()};
  Problem problem{{}, {}, reference::ReferenceLoraFA(hyper, options.pinv_delta(), mode)};
  for (const Shape& shape : kShapes) {
    torch::Tensor A = torch::randn({shape.r, shape.in}, dtype).to(device);
    torch::Tensor B = (0.1 * torch::randn({shape.out, shape.r})).to(device, dtype).requires_grad_();
    problem.pairs.push_back({"pair", A, B, shape.scaling});
    problem.reference.AddPair(ToEigen(A), ToEigen(B), shape.scaling);
  }
  for (int64_t size : {3, 6}) {
    torch::Tensor other = torch::randn({1, size}, dtype).to(device).requires_grad_();
    problem.others.push_back(other);
    problem.reference.AddParam(ToEigen(other));
  }
  return problem;
}

// Draws a gradient for every B and other parameter, gives the same values to the reference and steps both.
void StepBoth(Problem& problem, LoraFAOptimizer& optimizer) {
  std::vector<Eigen::MatrixXd> grad_b, grad_other;
  for (LoraPair& pair : problem.pairs) {
    pair.B.mutable_grad() = torch::randn(pair.B.sizes()).to(pair.B.device(), pair.B.scalar_type());
    grad_b.push_back(ToEigen(pair.B.grad()));
  }
  for (torch::Tensor& other : problem.others) {
    other.mutable_grad() = torch::randn(other.sizes()).to(other.device(), other.scalar_type());
    grad_other.push_back(ToEigen(other.grad()));
  }
  optimizer.step();
  problem.reference.Step(grad_b, grad_other);
}

class ReferenceAgreementOn : public ::testing::TestWithParam<torch::DeviceType> {
 protected:
  void SetUp() override {
    if (GetParam() == torch::kCUDA && !torch::cuda::is_available()) {
      GTEST_SKIP() << "no CUDA device: this instance checks the CUDA kernel on a GPU machine";
    }
  }
  torch::Device device() const { return torch::Device(GetParam()); }
};

INSTANTIATE_TEST_SUITE_P(Devices, ReferenceAgreementOn, ::testing::Values(torch::kCPU, torch::kCUDA),
                         [](const auto& info) { return info.param == torch::kCPU ? "cpu" : "cuda"; });

TEST_P(ReferenceAgreementOn, Float64MatchesReferenceForTwentySteps) {
  torch::manual_seed(11);
  LoraFAOptions options(1e-2);
  options.weight_decay(0.05);
  Problem problem = MakeProblem(torch::kFloat64, options, reference::ReferenceProjection::kExact, device());
  LoraFAOptimizer optimizer(problem.pairs, problem.others, options);
  // Both sides compute the same formulas in float64 and differ only in summation order and in the
  // SVD algorithm: eps (2.2e-16) × κ (< 5) × ~10 operations a step × 20 steps ≈ 2e-13. Bound: 1e-12
  // relative, with lr·t as the magnitude floor for coordinates that pass near zero.
  constexpr double kRtol = 1e-12;
  for (int t = 1; t <= 20; ++t) {
    StepBoth(problem, optimizer);
    for (size_t i = 0; i < problem.pairs.size(); ++i) {
      EXPECT_TRUE(AllClose(ToEigen(problem.pairs[i].B), problem.reference.pairs()[i].B, kRtol * options.lr() * t, kRtol))
          << "pair " << i << " after step " << t;
    }
    for (size_t j = 0; j < problem.others.size(); ++j) {
      EXPECT_TRUE(AllClose(ToEigen(problem.others[j]), problem.reference.params()[j].value,
                           kRtol * options.lr() * t, kRtol))
          << "other " << j << " after step " << t;
    }
  }
}

TEST_P(ReferenceAgreementOn, Float32ExactProjectionStaysWithinDerivedBound) {
  torch::manual_seed(12);
  LoraFAOptions options(1e-2);
  options.weight_decay(0.05);
  Problem problem = MakeProblem(torch::kFloat32, options, reference::ReferenceProjection::kExact, device());
  LoraFAOptimizer optimizer(problem.pairs, problem.others, options);
  // Per step, in units of u = 2^-24: the projection's relative error is ≤ (r + 10κ)·u < 128u (the
  // matmul's r-term sum, then the pinv's condition); Adam's m/√v doubles a relative error, and one
  // update moves a coordinate by at most (1−β1)/√(1−β2)·lr ≈ 3.2·lr < 4·lr (β = (0.9, 0.999)) — so
  // ≤ 1024u·lr. (testing/properties carries a step-by-step error model for any β.) B's own updates round ≤ 8 times per
  // step (moments, sqrt, divide, add, decay): 8u·|B|. Errors add over t steps.
  for (int t = 1; t <= 20; ++t) {
    StepBoth(problem, optimizer);
    for (size_t i = 0; i < problem.pairs.size(); ++i) {
      const Eigen::MatrixXd& expected = problem.reference.pairs()[i].B;
      Eigen::MatrixXd bound = (t * kFloat32UnitRoundoff * (1024 * options.lr() + 8 * expected.array().abs())).matrix();
      EXPECT_TRUE(WithinBound(ToEigen(problem.pairs[i].B), expected, bound)) << "pair " << i << " after step " << t;
    }
  }
}

TEST(ReferenceAgreement, PeftBfloat16ProjectionMatchesTheReferenceBfloat16Model) {
  torch::manual_seed(13);
  internal::CachedProjection projection;
  for (const Shape& shape : kShapes) {
    torch::Tensor A = torch::randn({shape.r, shape.in});
    torch::Tensor B = torch::zeros({shape.out, shape.r});
    torch::Tensor grad = torch::randn({shape.out, shape.r});
    LoraPair pair{"pair", A, B, shape.scaling};
    Eigen::MatrixXd actual = ToEigen(projection.Project(pair, grad, Projection::kPeftBf16, 1e-8));
    Eigen::MatrixXd expected = reference::PeftBfloat16ProjectedGradient(ToEigen(A), ToEigen(grad), shape.scaling, 1e-8);

    // PeftBfloat16ErrorBound (testing/error_bounds.h), derived there.
    Eigen::MatrixXd bound = PeftBfloat16ErrorBound(ToEigen(A), ToEigen(grad), expected, shape.scaling, 1e-8).matrix();
    EXPECT_TRUE(WithinBound(actual, expected, bound)) << "r = " << shape.r;
    // Every value is a bfloat16 number: the path really ran in bfloat16.
    for (Eigen::Index k = 0; k < actual.size(); ++k) {
      const float value = static_cast<float>(actual(k));
      ASSERT_EQ(reference::RoundToBfloat16(value), value);
    }
  }
}

TEST(ReferenceAgreement, ExactProjectionOfFloat64MatchesReferenceProjection) {
  torch::manual_seed(14);
  internal::CachedProjection projection;
  for (const Shape& shape : kShapes) {
    torch::Tensor A = torch::randn({shape.r, shape.in}, torch::kFloat64);
    torch::Tensor grad = torch::randn({shape.out, shape.r}, torch::kFloat64);
    LoraPair pair{"pair", A, torch::zeros({shape.out, shape.r}, torch::kFloat64), shape.scaling};
    Eigen::MatrixXd actual = ToEigen(projection.Project(pair, grad, Projection::kExact, 1e-8));
    Eigen::MatrixXd expected = reference::ProjectedGradient(ToEigen(A), ToEigen(grad), shape.scaling, 1e-8);
    // ProjectionErrorBound (testing/error_bounds.h) for float64 rounding, derived there.
    const Eigen::MatrixXd pinv = reference::RegularisedGramPinv(ToEigen(A), 1e-8);
    Eigen::MatrixXd bound =
        ProjectionErrorBound(ToEigen(A), pinv, ToEigen(grad), shape.scaling, lorafa::testing::kFloat64Epsilon).matrix();
    EXPECT_TRUE(WithinBound(actual, expected, bound)) << "r = " << shape.r;
  }
}

}  // namespace
}  // namespace lorafa
