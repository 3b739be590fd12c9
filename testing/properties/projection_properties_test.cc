// Properties of the LoRA-FA projection ĝ = (1/s²)·g_B·(A Aᵀ + δI)⁺ for every shape, scale and
// conditioning the generators produce: agreement with the float64 reference, finiteness, the row-space
// property, the effect of δ, and least-squares optimality.
#include <cmath>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>
#include <torch/torch.h>

#include "lorafa/projection.h"
#include "reference/projection.h"
#include "testing/eigen_tensor.h"
#include "testing/properties/generators.h"
#include "testing/error_bounds.h"

namespace {

using namespace lorafa;           // NOLINT: the properties read like the maths
using namespace lorafa::testing;  // NOLINT

constexpr double kDelta = 1e-8;

Eigen::MatrixXd Project(const PairSpec& spec, const torch::Tensor& A, const torch::Tensor& grad, Projection mode,
                        double delta) {
  internal::CachedProjection projection;
  LoraPair pair{"p", A, torch::zeros({spec.out, spec.r}, A.options()), spec.scaling};
  return ToEigen(projection.Project(pair, grad, mode, delta));
}

}  // namespace

RC_GTEST_PROP(ProjectionProperty, float64MatchesReferenceForEveryConditioning, ()) {
  const PairSpec spec = *genPairSpec();
  torch::Tensor A = MakeA(spec, torch::kFloat64);
  torch::Tensor grad = RandomMatrix(spec.out, spec.r, spec.grad_scale, spec.seed + 7, torch::kFloat64);
  const Eigen::MatrixXd actual = Project(spec, A, grad, Projection::kExact, kDelta);
  const Eigen::MatrixXd pinv = reference::RegularisedGramPinv(ToEigen(A), kDelta);
  const Eigen::MatrixXd expected = reference::ProjectedGradientWithPinv(pinv, ToEigen(grad), spec.scaling);
  // ProjectionErrorBound (testing/error_bounds.h) for float64 rounding, derived there.
  const Eigen::ArrayXXd bound = ProjectionErrorBound(ToEigen(A), pinv, ToEigen(grad), spec.scaling, kFloat64Epsilon);
  RC_ASSERT(((actual - expected).array().abs() <= bound).all());
}

RC_GTEST_PROP(ProjectionProperty, isFiniteForFiniteGradientsInEveryDtypeAndMode, ()) {
  const PairSpec spec = *genPairSpec();
  const torch::ScalarType dtype = *genDtype();
  const Projection mode = *rc::gen::element(Projection::kExact, Projection::kPeftBf16);
  torch::Tensor A = MakeA(spec, dtype);
  torch::Tensor grad = RandomMatrix(spec.out, spec.r, spec.grad_scale, spec.seed + 7, dtype);
  internal::CachedProjection projection;
  LoraPair pair{"p", A, torch::zeros({spec.out, spec.r}, A.options()), spec.scaling};
  RC_ASSERT(torch::isfinite(projection.Project(pair, grad, mode, kDelta)).all().item<bool>());
}

RC_GTEST_PROP(ProjectionProperty, loraGradientOfRankDeficientAHasNoComponentOutsideItsRowSpace, ()) {
  PairSpec spec = *genPairSpec();
  spec.conditioning = Conditioning::kRankDeficient;
  torch::Tensor A = MakeA(spec, torch::kFloat64);
  const Eigen::MatrixXd a = ToEigen(A);
  const Eigen::MatrixXd null_space = LeftNullSpace(a);
  RC_PRE(null_space.cols() > 0);
  // A true LoRA gradient: g_B = s·G_W·Aᵀ for some full-weight gradient G_W.
  const Eigen::MatrixXd full = ToEigen(RandomMatrix(spec.out, spec.in, spec.grad_scale, spec.seed + 9, torch::kFloat64));
  const Eigen::MatrixXd grad_b = spec.scaling * full * a.transpose();
  const Eigen::MatrixXd grad_hat = Project(spec, A, ToTensor(grad_b), Projection::kExact, kDelta);
  // g_B has no exact component along the null directions. Two roundings put one there, and
  // (A Aᵀ + δI)⁺ multiplies it by 1/δ (then 1/s²):
  //  - forming A and g_B: ≤ 4·in·eps·s·‖G_W‖·‖A‖;
  //  - the SVD's null vectors lean into A's range by ≤ 64·r·eps·λ_max/λ⁺_min (eigenvector error
  //    ≈ eps·‖M‖ over the gap to the non-zero eigenvalues), carrying that share of ‖g_B‖.
  const Eigen::VectorXd lambda = SingularValuesOf(a * a.transpose());
  double lambda_plus_min = lambda(0);
  for (Eigen::Index i = 0; i < lambda.size(); ++i) {
    if (lambda(i) > 1e-8 * lambda(0)) lambda_plus_min = lambda(i);
  }
  const double leaked = 4.0 * spec.in * kFloat64Epsilon * spec.scaling * full.norm() * a.norm() +
                        (lambda(0) > 0.0 ? 64.0 * spec.r * kFloat64Epsilon * lambda(0) / lambda_plus_min : 0.0) *
                            grad_b.norm();
  const double tolerance = leaked / (kDelta * spec.scaling * spec.scaling);
  RC_ASSERT((grad_hat * null_space).norm() <= tolerance);
}

RC_GTEST_PROP(ProjectionProperty, deltaToZeroConvergesToTheExactInverseForFullRankA, ()) {
  const PairSpec spec = *genWellConditionedPairSpec();
  torch::Tensor A = MakeA(spec, torch::kFloat64);
  torch::Tensor grad = RandomMatrix(spec.out, spec.r, spec.grad_scale, spec.seed + 7, torch::kFloat64);
  const Eigen::MatrixXd exact = Project(spec, A, grad, Projection::kExact, 0.0);
  const Eigen::VectorXd lambda = SingularValuesOf(ToEigen(A) * ToEigen(A).transpose());
  const double lambda_min = lambda(lambda.size() - 1);
  for (double delta : {1e-2, 1e-4, 1e-6}) {
    // ĝ_δ − ĝ_0 = −δ·ĝ_0·(M + δI)⁻¹, so ‖ĝ_δ − ĝ_0‖ ≤ δ/λ_min·‖ĝ_0‖; rounding adds 64·r·eps·κ (κ ≤ 4).
    const double bound = (delta / lambda_min + 256.0 * spec.r * kFloat64Epsilon) * exact.norm();
    RC_ASSERT((Project(spec, A, grad, Projection::kExact, delta) - exact).norm() <= bound);
  }
}

// Where float32 cannot see δ: M_ii ≥ 1/4 has float32 spacing ≥ 2^-25 ≈ 3e-8, so adding δ = 1e-8
// (below half a spacing) rounds back to M_ii and δ changes nothing at all. When A Aᵀ ≈ 1e-10 ≪ δ
// (tiny A), δ dominates M and changes everything.
RC_GTEST_PROP(ProjectionProperty, float32SeesDeltaOnlyWhenTheGramMatrixIsTiny, ()) {
  PairSpec spec = *genWellConditionedPairSpec();
  spec.conditioning = *rc::gen::element(Conditioning::kWell, Conditioning::kTiny);
  torch::Tensor A = MakeA(spec, torch::kFloat32);
  torch::Tensor grad = RandomMatrix(spec.out, spec.r, spec.grad_scale, spec.seed + 7, torch::kFloat32);
  const Eigen::MatrixXd with_delta = Project(spec, A, grad, Projection::kExact, kDelta);
  const Eigen::MatrixXd without_delta = Project(spec, A, grad, Projection::kExact, 0.0);
  if (spec.conditioning == Conditioning::kWell) {
    RC_ASSERT(torch::matmul(A, A.t()).diagonal().min().item<float>() >= 0.25f);
    RC_ASSERT(with_delta == without_delta);
  } else {
    RC_ASSERT(with_delta != without_delta);
  }
}

RC_GTEST_PROP(ProjectionProperty, isTheLeastSquaresFitOfTheFullWeightGradientInARowSpace, ()) {
  const PairSpec spec = *genPairSpec();
  torch::Tensor A = MakeA(spec, torch::kFloat64);
  const Eigen::MatrixXd a = ToEigen(A);
  const Eigen::MatrixXd full = ToEigen(RandomMatrix(spec.out, spec.in, 1.0, spec.seed + 9, torch::kFloat64));
  const Eigen::MatrixXd grad_b = spec.scaling * full * a.transpose();
  const Eigen::MatrixXd grad_hat = Project(spec, A, ToTensor(grad_b), Projection::kExact, kDelta);
  const Eigen::MatrixXd residual = full - reference::FullWeightUpdate(a, grad_hat, spec.scaling);

  // R·Aᵀ = G_W·Aᵀ·δ(M + δI)⁻¹, and G_W·Aᵀ lies in A's range, where (M + δI)⁻¹ ≤ 1/(λ⁺_min + δ) with
  // λ⁺_min the smallest non-zero eigenvalue of M = A Aᵀ. Rounding: ĝ carries 64·r·eps·κ(M + δI)
  // relative error, which s·ĝ·A·Aᵀ carries on.
  const Eigen::VectorXd lambda = SingularValuesOf(a * a.transpose());
  double lambda_plus_min = 0.0;
  for (Eigen::Index i = 0; i < lambda.size(); ++i) {
    if (lambda(i) > 1e-8 * lambda(0)) lambda_plus_min = lambda(i);
  }
  const double kappa = (lambda(0) + kDelta) / kDelta;
  const double exact_part = kDelta / (lambda_plus_min + kDelta) * (full * a.transpose()).norm();
  const double rounding = 64.0 * spec.r * kFloat64Epsilon * kappa * spec.scaling * grad_hat.norm() * lambda(0) +
                          4.0 * spec.in * kFloat64Epsilon * full.norm() * a.norm();
  RC_ASSERT((residual * a.transpose()).norm() <= exact_part + rounding);

  // No other B-gradient fits better: ‖R − s·E·A‖² = ‖R‖² + ‖s·E·A‖² − 2s⟨R·Aᵀ, E⟩ ≥ ‖R‖² − 2s‖R·Aᵀ‖‖E‖,
  // up to the rounding of sums of out·in squares (out·in·eps relative).
  const Eigen::MatrixXd perturbation = ToEigen(RandomMatrix(spec.out, spec.r, 1e-3, spec.seed + 11, torch::kFloat64));
  const Eigen::MatrixXd other_residual = residual - reference::FullWeightUpdate(a, perturbation, spec.scaling);
  const double slack = 2.0 * spec.scaling * (residual * a.transpose()).norm() * perturbation.norm() +
                       spec.out * spec.in * kFloat64Epsilon * (residual.squaredNorm() + other_residual.squaredNorm());
  RC_ASSERT(other_residual.squaredNorm() >= residual.squaredNorm() - slack);
}

