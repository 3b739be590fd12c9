// Properties of the fused step (lorafa/fused_hf_adamw.h, run through lorafa::LoraFAStep): its update
// is bit for bit the per-tensor path's given the same direction, its projection is within the
// recursive-summation bound of the exact product, and its result does not depend on the thread count.
#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>
#include <torch/torch.h>

#include "lorafa/optimizer.h"
#include "lorafa/projection.h"
#include "lorafa/step.h"
#include "testing/instruction_set.h"
#include "testing/properties/generators.h"
#include "testing/properties/problem.h"

namespace {

using namespace lorafa;           // NOLINT: the properties read like the maths
using namespace lorafa::testing;  // NOLINT

// Moments and step count of each tensor, kept across steps as LoraFAOptimizer keeps them.
struct Moments {
  std::vector<torch::Tensor> m, v;
  int64_t step = 0;
};

Moments ZeroMoments(const std::vector<torch::Tensor>& params) {
  Moments moments;
  for (const torch::Tensor& p : params) {
    moments.m.push_back(torch::zeros_like(p));
    moments.v.push_back(torch::zeros_like(p));
  }
  return moments;
}

std::vector<torch::Tensor> Clones(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> copies;
  for (const torch::Tensor& t : tensors) copies.push_back(t.detach().clone());
  return copies;
}

bool AllEqual(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (!torch::equal(a[i], b[i])) return false;
  }
  return true;
}

// One step of `params` (each with update direction `directions[i]`, no projection).
void StepOthers(std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& directions, Moments& moments,
                const LoraFAOptions& options, StepKernel kernel) {
  ++moments.step;
  LoraFAStepLists lists;
  lists.params = params;
  lists.grads = directions;
  lists.exp_avg = moments.m;
  lists.exp_avg_sq = moments.v;
  lists.step.assign(params.size(), moments.step);
  LoraFAStep(lists, options, kernel);
}

// Each pair's kExact matrix (A Aᵀ + δI)⁺/s², as LoraFAOptimizer caches it.
std::vector<torch::Tensor> ExactMatrices(const Problem& problem, const LoraFAOptions& options) {
  std::vector<torch::Tensor> matrices;
  for (const LoraPair& pair : problem.pairs) {
    internal::CachedProjection cache;
    matrices.push_back(cache.Matrix(pair, pair.B.scalar_type(), Projection::kExact, options.pinv_delta()));
  }
  return matrices;
}

// One kExact step of a problem's pairs (gradients already set) with the given matrices.
void StepPairs(Problem& problem, const std::vector<torch::Tensor>& matrices, Moments& moments,
               const LoraFAOptions& options) {
  ++moments.step;
  LoraFAStepLists lists;
  for (size_t i = 0; i < problem.pairs.size(); ++i) {
    const LoraPair& pair = problem.pairs[i];
    lists.B.push_back(pair.B);
    lists.grad_B.push_back(pair.B.grad());
    lists.exp_avg_B.push_back(moments.m[i]);
    lists.exp_avg_sq_B.push_back(moments.v[i]);
    lists.projection.push_back(matrices[i]);
    lists.scaling.push_back(pair.scaling);
    lists.step_B.push_back(moments.step);
  }
  LoraFAStep(lists, options);
}

std::vector<torch::Tensor> Bs(const Problem& problem) {
  std::vector<torch::Tensor> bs;
  for (const LoraPair& pair : problem.pairs) bs.push_back(pair.B);
  return bs;
}

// Sizes that put elements in every position a vector kernel distinguishes: 1 element, a partial
// vector, whole vectors, a remainder after whole vectors, several work units, and past 32768
// elements, where ATen's own elementwise kernels split the tensor between threads.
rc::Gen<std::vector<int64_t>> genTensorSizes() {
  return rc::gen::container<std::vector<int64_t>>(
      *rc::gen::inRange<size_t>(1, 5),
      rc::gen::oneOf(rc::gen::inRange<int64_t>(1, 70), rc::gen::inRange<int64_t>(1, 20000),
                     rc::gen::inRange<int64_t>(32768, 70000)));
}

// The properties run under ATEN_CPU_CAPABILITY=avx2/default too (BUILD): the kernel must be the one
// for the instruction set ATen uses, or the bitwise property would compare different arithmetic.
TEST(FusedStep, runsTheKernelForTheInstructionSetAsked) {
  std::cout << "instruction sets: " << InstructionSetSummary() << "\n";
  EXPECT_TRUE(AtenRunsTheInstructionSetAsked()) << InstructionSetSummary();
}

RC_GTEST_PROP(FusedStep, updateIsBitIdenticalToThePerTensorPathGivenTheSameDirection, ()) {
  const torch::ScalarType dtype = *rc::gen::element(torch::kFloat32, torch::kFloat64);
  const std::vector<int64_t> sizes = *genTensorSizes();
  const LoraFAOptions options = *genOptions();
  const int steps = *rc::gen::inRange(1, 4);
  std::vector<torch::Tensor> fused, per_tensor;
  for (size_t i = 0; i < sizes.size(); ++i) fused.push_back(RandomMatrix(1, sizes[i], 0.1, 17 + i, dtype));
  per_tensor = Clones(fused);
  Moments fused_moments = ZeroMoments(fused), per_tensor_moments = ZeroMoments(per_tensor);
  for (int t = 1; t <= steps; ++t) {
    std::vector<torch::Tensor> directions;
    for (size_t i = 0; i < sizes.size(); ++i) directions.push_back(RandomMatrix(1, sizes[i], 1.0, 100 * t + i, dtype));
    StepOthers(fused, directions, fused_moments, options, StepKernel::kFused);
    StepOthers(per_tensor, directions, per_tensor_moments, options, StepKernel::kPerTensor);
    RC_ASSERT(AllEqual(fused_moments.m, per_tensor_moments.m));
    RC_ASSERT(AllEqual(fused_moments.v, per_tensor_moments.v));
    RC_ASSERT(AllEqual(fused, per_tensor));
  }
}

// With β1 = 0 the first moment after a step is the update direction itself (m = 0·m + 1·ĝ, exact),
// which shows the kernel's ĝ. The kernel sums ĝ_ij = Σ_k g_ik·P_kj in k order, one rounding per fused
// multiply-add, in the compute type (unit roundoff u: float for float32 and bfloat16, double for
// float64): recursive summation, |ĝ − g·P| ≤ γ_r·(|g||P|)_ij with γ_r = r·u/(1 − r·u) (Higham, Accuracy
// and Stability, §3.1), against g·P computed exactly in float64 from the stored g and P (products of
// ≤ 24-bit significands are exact in float64, and the float64 sum of r ≤ 64 such terms adds
// γ_r(2^-53)·(|g||P|), which the float32 bound's margin covers; for float64 that term is added).
// A bfloat16 m is ĝ rounded once more: + u_b·(|g·P| + γ_r·(|g||P|)), u_b = 2^-8.
RC_GTEST_PROP(FusedStep, projectionIsWithinTheRecursiveSummationBound, ()) {
  const std::vector<PairSpec> specs = *genPairSpecs(genPairSpec());
  const torch::ScalarType dtype = *genDtype();
  LoraFAOptions options = *genOptions();
  options.betas({0.0, std::get<1>(options.betas())});
  Problem problem = MakeProblem(specs, 0, dtype);
  SetGradients(problem, 1);
  const std::vector<torch::Tensor> matrices = ExactMatrices(problem, options);
  Moments moments = ZeroMoments(Bs(problem));
  StepPairs(problem, matrices, moments, options);

  const double u = dtype == torch::kFloat64 ? std::ldexp(1.0, -53) : std::ldexp(1.0, -24);
  for (size_t i = 0; i < problem.pairs.size(); ++i) {
    const LoraPair& pair = problem.pairs[i];
    const torch::Tensor P = matrices[i].to(torch::kFloat64);
    const torch::Tensor g = pair.B.grad().to(torch::kFloat64);
    const torch::Tensor exact = torch::mm(g, P);
    const double r = static_cast<double>(pair.A.size(0));
    double gamma = r * u / (1 - r * u);
    if (dtype == torch::kFloat64) gamma *= 2;  // the float64 check's own summation, as large again
    torch::Tensor bound = gamma * torch::mm(g.abs(), P.abs());
    if (dtype == torch::kBFloat16) bound = bound + std::ldexp(1.0, -8) * (exact.abs() + bound);
    const torch::Tensor diff = (moments.m[i].to(torch::kFloat64) - exact).abs();
    RC_LOG() << "pair " << i << ": max |diff| " << diff.max().item<double>() << ", max diff − bound "
             << (diff - bound).max().item<double>() << "\n";
    RC_ASSERT(torch::all(diff <= bound).item<bool>());
  }
}

RC_GTEST_PROP(FusedStep, resultDoesNotDependOnTheThreadCount, ()) {
  const std::vector<PairSpec> specs = *genPairSpecs(genPairSpec());
  const torch::ScalarType dtype = *genDtype();
  const LoraFAOptions options = *genOptions();
  // The matrices are made once: LAPACK's pseudo-inverse itself may depend on the thread count.
  const std::vector<torch::Tensor> matrices = ExactMatrices(MakeProblem(specs, 0, dtype), options);
  const int previous_threads = at::get_num_threads();
  std::vector<std::vector<torch::Tensor>> results;
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    Problem problem = MakeProblem(specs, 0, dtype);
    Moments moments = ZeroMoments(Bs(problem));
    for (int t = 1; t <= 2; ++t) {
      SetGradients(problem, t);
      StepPairs(problem, matrices, moments, options);
    }
    std::vector<torch::Tensor> result = Clones(Bs(problem));
    result.insert(result.end(), moments.m.begin(), moments.m.end());
    result.insert(result.end(), moments.v.begin(), moments.v.end());
    results.push_back(result);
  }
  at::set_num_threads(previous_threads);
  RC_ASSERT(AllEqual(results[0], results[1]));
}

// A conv adapter, A (r, in, kh, kw) and B (out, r, 1, 1), is the linear pair A (r, in·kh·kw),
// B (out, r) with other shapes: the whole optimizer step must give the same numbers, bit for bit.
RC_GTEST_PROP(FusedStep, convPairStepsExactlyAsItsLinearForm, ()) {
  const PairSpec spec = *genWellConditionedPairSpec();
  const int64_t kh = *rc::gen::inRange<int64_t>(1, 4), kw = *rc::gen::inRange<int64_t>(1, 4);
  const torch::ScalarType dtype = *genDtype();
  const LoraFAOptions options = *genOptions();
  PairSpec wide = spec;
  wide.in = spec.in * kh * kw;
  const torch::Tensor A = MakeA(wide, dtype);
  const torch::Tensor B = RandomMatrix(spec.out, spec.r, 0.1, spec.seed + 3, dtype);
  LoraPair linear{"linear", A.clone(), B.clone().requires_grad_(), spec.scaling};
  LoraPair conv{"conv", A.clone().view({spec.r, spec.in, kh, kw}), B.clone().view({spec.out, spec.r, 1, 1}).requires_grad_(),
                spec.scaling};
  LoraFAOptimizer linear_optimizer({linear}, {}, options), conv_optimizer({conv}, {}, options);
  for (int t = 1; t <= 3; ++t) {
    const torch::Tensor grad = RandomMatrix(spec.out, spec.r, spec.grad_scale, spec.seed + 10 * t, dtype);
    linear.B.mutable_grad() = grad.clone();
    conv.B.mutable_grad() = grad.clone().view({spec.out, spec.r, 1, 1});
    linear_optimizer.step();
    conv_optimizer.step();
  }
  RC_ASSERT(torch::equal(linear.B, conv.B.view({spec.out, spec.r})));
}

}  // namespace
