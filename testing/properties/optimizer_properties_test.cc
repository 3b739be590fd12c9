// Properties of the whole optimizer: frozen A, agreement with the float64 reference over random
// configurations and step counts, no-ops and invariances, and the state round-trip.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include "lorafa/create.h"
#include "lorafa/lora_linear.h"
#include "lorafa/optimizer.h"
#include "lorafa/projection.h"
#include "reference/bfloat16.h"
#include "reference/lorafa_optimizer.h"
#include "reference/projection.h"
#include "testing/eigen_tensor.h"
#include "testing/properties/generators.h"
#include "testing/error_bounds.h"
#include "testing/properties/problem.h"

namespace {

using namespace lorafa;           // NOLINT: the properties read like the maths
using namespace lorafa::testing;  // NOLINT

bool SameValues(const torch::Tensor& a, const torch::Tensor& b) { return torch::equal(a, b); }

// --- 4. frozen A ---

RC_GTEST_PROP(FrozenA, isBitIdenticalFrozenAndStatelessWhileBMoves, ()) {
  const std::vector<PairSpec> specs = *genPairSpecs(genWellConditionedPairSpec());
  const int steps = *rc::gen::inRange(1, 11);
  LoraFAOptions options = *genOptions();
  // A LoraLinear per spec, registered in one module and paired by create_lorafa_optimizer.
  auto model = std::make_shared<torch::nn::Module>();
  std::vector<LoraLinear> layers;
  for (size_t i = 0; i < specs.size(); ++i) {
    LoraLinear layer(LoraLinearOptions(specs[i].in, specs[i].out, specs[i].r));
    layer->to(torch::kFloat64);
    layers.push_back(model->register_module("layer" + std::to_string(i), layer));
  }
  auto optimizer = create_lorafa_optimizer(*model, options);
  std::vector<torch::Tensor> a_before, b_before;
  for (const LoraPair& pair : optimizer->pairs()) {
    a_before.push_back(pair.A.clone());
    b_before.push_back(pair.B.detach().clone());
  }
  for (int t = 0; t < steps; ++t) {
    for (const LoraPair& pair : optimizer->pairs()) {
      pair.A.mutable_grad() = torch::randn_like(pair.A);  // written by hand: must be ignored
      pair.B.mutable_grad() = torch::randn_like(pair.B);
    }
    optimizer->step();
  }
  for (size_t i = 0; i < optimizer->pairs().size(); ++i) {
    const LoraPair& pair = optimizer->pairs()[i];
    RC_ASSERT(torch::equal(pair.A, a_before[i]));
    RC_ASSERT(!pair.A.requires_grad());
    RC_ASSERT(optimizer->state().count(pair.A.unsafeGetTensorImpl()) == 0u);
    // Every step moves a coordinate by lr·|m|/(√v + eps) > 0, far above float64 spacing of |B| ≤ 1.
    RC_ASSERT(!torch::equal(pair.B, b_before[i]));
  }
}

// --- 6. agreement with the float64 reference ---

// Elementwise bounds on how far lorafa's B can be from the reference's, carried step by step from the
// reference's own float64 values. Per step, with u the unit roundoff of lorafa's dtype:
//   ĝ:   |Δĝ| ≤ E = (64·r·u·κ·‖P‖₂·Σ_k|g_ik| + r·u·(|g||P|)_ij)/s²   (pinv error is normwise)
//   m:   |Δm| ← β1|Δm| + (1−β1)E + 2u(β1|m| + (1−β1)|ĝ|)             (plus storing m in the dtype)
//   v:   |Δv| ← β2|Δv| + (1−β2)(2|ĝ|E + E²) + 2u(β2 v + (1−β2)ĝ²)
//   √v:  |Δ√v| ≤ √(v + |Δv|) − √v
//   update = step_size·m/(√v + eps):  |Δupdate| ≤ step_size(|Δm| + |m|·|Δ√v|/d)/d, d = √v + eps − |Δ√v|
//   B:   |ΔB| ← |ΔB| + |Δupdate| + 4u(|B| + |update|)                (sqrt, add, divide, subtract, decay)
class ErrorModel {
 public:
  ErrorModel(const Eigen::MatrixXd& B, double u) : u_(u) {
    dm_ = dv_ = dB_ = Eigen::ArrayXXd::Zero(B.rows(), B.cols());
  }

  // grad_hat: the reference's projected gradient this step; projection_error: E above.
  void Step(const Eigen::ArrayXXd& grad_hat, const Eigen::ArrayXXd& projection_error,
            const reference::AdamWMoments& after, const Eigen::ArrayXXd& B_after, double beta1, double beta2,
            double eps, double step_size) {
    const Eigen::ArrayXXd m = after.m.array(), v = after.v.array();
    const Eigen::ArrayXXd& E = projection_error;
    dm_ = beta1 * dm_ + (1 - beta1) * E + 2 * u_ * (beta1 * m.abs() + (1 - beta1) * grad_hat.abs());
    dv_ = beta2 * dv_ + (1 - beta2) * (2 * grad_hat.abs() * E + E * E) + 2 * u_ * (beta2 * v + (1 - beta2) * grad_hat.square());
    const Eigen::ArrayXXd d_sqrt_v = (v + dv_).sqrt() - v.sqrt();
    const Eigen::ArrayXXd denom = (v.sqrt() + eps - d_sqrt_v).max(0.0);
    const Eigen::ArrayXXd update = step_size * m.abs() / (v.sqrt() + eps);
    const Eigen::ArrayXXd d_update = step_size * (dm_ + m.abs() * d_sqrt_v / denom) / denom;
    dB_ = dB_ + d_update + 4 * u_ * (B_after.abs() + update);
  }
  const Eigen::ArrayXXd& bound() const { return dB_; }

 private:
  double u_;
  Eigen::ArrayXXd dm_, dv_, dB_;
};

void CheckAgainstReference(torch::ScalarType dtype) {
  const std::vector<PairSpec> specs = *genPairSpecs(genWellConditionedPairSpec());
  const int others = *rc::gen::inRange(0, 4);
  const int steps = *rc::gen::inRange(1, 31);
  const LoraFAOptions options = *genOptions();
  const double u = dtype == torch::kFloat64 ? kFloat64Epsilon / 2 : std::ldexp(1.0, -24);

  Problem problem = MakeProblem(specs, others, dtype);
  LoraFAOptimizer optimizer(problem.pairs, problem.others, options);
  auto [beta1, beta2] = options.betas();
  reference::AdamWHyperparameters hyper{options.lr(), beta1, beta2, options.eps(), options.weight_decay(),
                                        options.correct_bias()};
  reference::ReferenceLoraFA reference(hyper, options.pinv_delta(), reference::ReferenceProjection::kExact);
  std::vector<ErrorModel> errors;
  for (const LoraPair& pair : problem.pairs) {
    reference.AddPair(ToEigen(pair.A), ToEigen(pair.B), pair.scaling);
    errors.emplace_back(ToEigen(pair.B), u);
  }
  for (const torch::Tensor& other : problem.others) reference.AddParam(ToEigen(other));
  // A is frozen: the pseudo-inverse's conditioning is the same at every step (two SVDs per pair, once).
  std::vector<double> conditioning;
  for (const reference::ReferencePair& pair : reference.pairs()) {
    conditioning.push_back(PinvConditioning(pair.A, pair.gram_pinv));
  }

  for (int t = 1; t <= steps; ++t) {
    SetGradients(problem, t);
    std::vector<Eigen::MatrixXd> grad_b, grad_other;
    for (const LoraPair& pair : problem.pairs) grad_b.push_back(ToEigen(pair.B.grad()));
    for (const torch::Tensor& other : problem.others) grad_other.push_back(ToEigen(other.grad()));
    optimizer.step();
    reference.Step(grad_b, grad_other);
    const double step_size = reference::AdamWStepSize(hyper, t);
    for (size_t i = 0; i < problem.pairs.size(); ++i) {
      const reference::ReferencePair& expected = reference.pairs()[i];
      const Eigen::MatrixXd grad_hat = reference::ProjectedGradientWithPinv(expected.gram_pinv, grad_b[i], expected.scaling);
      errors[i].Step(grad_hat.array(), ProjectionErrorBound(conditioning[i], expected.gram_pinv, grad_b[i], expected.scaling, u),
                     expected.moments, expected.B.array(), beta1, beta2, options.eps(), step_size);
      const Eigen::ArrayXXd diff = (ToEigen(problem.pairs[i].B) - expected.B).array().abs();
      RC_LOG() << "step " << t << " pair " << i << ": max |diff| " << diff.maxCoeff() << ", max excess "
               << (diff - errors[i].bound()).maxCoeff() << "\n";
      RC_ASSERT((diff <= errors[i].bound()).all());
    }
  }
}

RC_GTEST_PROP(ReferenceAgreement, float64FollowsTheReferenceWithinTheDerivedBound, ()) {
  CheckAgainstReference(torch::kFloat64);
}

RC_GTEST_PROP(ReferenceAgreement, float32ExactFollowsTheReferenceWithinTheDerivedBound, ()) {
  CheckAgainstReference(torch::kFloat32);
}

RC_GTEST_PROP(ReferenceAgreement, peftBfloat16ProjectionMatchesTheReferenceBfloat16Model, ()) {
  const PairSpec spec = *genWellConditionedPairSpec();
  torch::Tensor A = MakeA(spec, torch::kFloat32);
  torch::Tensor grad = RandomMatrix(spec.out, spec.r, spec.grad_scale, spec.seed + 7, torch::kFloat32);
  internal::CachedProjection projection;
  LoraPair pair{"p", A, torch::zeros({spec.out, spec.r}), spec.scaling};
  const Eigen::MatrixXd actual = ToEigen(projection.Project(pair, grad, Projection::kPeftBf16, 1e-8));
  const Eigen::MatrixXd expected = reference::PeftBfloat16ProjectedGradient(ToEigen(A), ToEigen(grad), spec.scaling, 1e-8);
  // PeftBfloat16ErrorBound (testing/error_bounds.h), derived there.
  const Eigen::ArrayXXd bound = PeftBfloat16ErrorBound(ToEigen(A), ToEigen(grad), expected, spec.scaling, 1e-8);
  const Eigen::ArrayXXd diff = (actual - expected).array().abs();
  Eigen::Index row, col;
  (diff / bound).maxCoeff(&row, &col);
  RC_LOG() << "worst diff/bound " << (diff / bound).maxCoeff() << " at " << row << "," << col << ": actual "
           << actual(row, col) << " expected " << expected(row, col) << " bound " << bound(row, col) << "\n";
  RC_ASSERT((diff <= bound).all());
}

// --- 7. no-ops and invariances ---

RC_GTEST_PROP(NoOp, zeroLearningRateChangesNothing, ()) {
  const std::vector<PairSpec> specs = *genPairSpecs(genPairSpec());
  const torch::ScalarType dtype = *genDtype();
  LoraFAOptions options = *genOptions();
  options.lr(0.0);
  Problem problem = MakeProblem(specs, *rc::gen::inRange(0, 4), dtype);
  Problem before = CloneProblem(problem);
  LoraFAOptimizer optimizer(problem.pairs, problem.others, options);
  for (int t = 1; t <= 3; ++t) {
    SetGradients(problem, t);
    optimizer.step();
  }
  for (size_t i = 0; i < problem.pairs.size(); ++i) RC_ASSERT(SameValues(problem.pairs[i].B, before.pairs[i].B));
  for (size_t j = 0; j < problem.others.size(); ++j) RC_ASSERT(SameValues(problem.others[j], before.others[j]));
}

RC_GTEST_PROP(NoOp, zeroGradientsWithoutDecayOnlyAdvanceTheStepCounter, ()) {
  const std::vector<PairSpec> specs = *genPairSpecs(genPairSpec());
  LoraFAOptions options = *genOptions();
  options.weight_decay(0.0);
  // With eps = 0 a zero gradient gives m/√v = 0/0 = NaN, in PEFT and transformers' AdamW as here.
  RC_PRE(options.eps() > 0.0);
  const int steps = *rc::gen::inRange(1, 6);
  Problem problem = MakeProblem(specs, 0, *genDtype());
  Problem before = CloneProblem(problem);
  LoraFAOptimizer optimizer(problem.pairs, {}, options);
  for (int t = 0; t < steps; ++t) {
    for (LoraPair& pair : problem.pairs) pair.B.mutable_grad() = torch::zeros_like(pair.B);
    optimizer.step();
  }
  for (size_t i = 0; i < problem.pairs.size(); ++i) {
    RC_ASSERT(SameValues(problem.pairs[i].B, before.pairs[i].B));
    RC_ASSERT(optimizer.pair_state(i)->step() == steps);
    RC_ASSERT(optimizer.pair_state(i)->exp_avg().abs().max().item<double>() == 0.0);
  }
}

RC_GTEST_PROP(Invariance, pairOrderChangesNoPairsResult, ()) {
  const std::vector<PairSpec> specs = *genPairSpecs(genPairSpec());
  const LoraFAOptions options = *genOptions();
  const torch::ScalarType dtype = *genDtype();
  std::vector<size_t> order(specs.size());
  std::iota(order.begin(), order.end(), 0);
  // A permutation as the sort order of random keys: shrinks towards the identity (all keys 0).
  const std::vector<int> keys = *rc::gen::container<std::vector<int>>(specs.size(), rc::gen::arbitrary<int>());
  std::vector<size_t> shuffled = order;
  std::stable_sort(shuffled.begin(), shuffled.end(), [&keys](size_t a, size_t b) { return keys[a] < keys[b]; });

  Problem forward = MakeProblem(specs, 0, dtype);
  Problem permuted = CloneProblem(forward);
  std::vector<LoraPair> permuted_pairs;
  for (size_t index : shuffled) permuted_pairs.push_back(permuted.pairs[index]);
  LoraFAOptimizer in_order(forward.pairs, {}, options);
  LoraFAOptimizer reordered(permuted_pairs, {}, options);
  for (int t = 1; t <= 3; ++t) {
    SetGradients(forward, t);
    SetGradients(permuted, t);  // same values: gradients follow the spec, not the position
    in_order.step();
    reordered.step();
  }
  for (size_t i = 0; i < specs.size(); ++i) RC_ASSERT(torch::equal(forward.pairs[i].B, permuted.pairs[i].B));
}

RC_GTEST_PROP(Invariance, pairsAreIndependent, ()) {
  std::vector<PairSpec> specs = *genPairSpecs(genPairSpec());
  specs.push_back(*genPairSpec());  // at least two pairs
  const size_t changed = *rc::gen::inRange<size_t>(0, specs.size());
  const LoraFAOptions options = *genOptions();
  const torch::ScalarType dtype = *genDtype();
  Problem baseline = MakeProblem(specs, 0, dtype);
  Problem perturbed = CloneProblem(baseline);
  LoraFAOptimizer baseline_optimizer(baseline.pairs, {}, options);
  LoraFAOptimizer perturbed_optimizer(perturbed.pairs, {}, options);
  for (int t = 1; t <= 3; ++t) {
    SetGradients(baseline, t);
    SetGradients(perturbed, t);
    perturbed.pairs[changed].B.mutable_grad().mul_(-3.0).add_(1.0);
    baseline_optimizer.step();
    perturbed_optimizer.step();
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    if (i != changed) RC_ASSERT(torch::equal(baseline.pairs[i].B, perturbed.pairs[i].B));
  }
}

// --- 8. state round-trip ---

RC_GTEST_PROP(StateRoundTrip, saveLoadAndContinueIsIdentical, ()) {
  const std::vector<PairSpec> specs = *genPairSpecs(genPairSpec());
  const LoraFAOptions options = *genOptions();
  const torch::ScalarType dtype = *genDtype();
  const int save_at = *rc::gen::inRange(0, 11);
  const int continue_for = *rc::gen::inRange(1, 11);
  Problem original = MakeProblem(specs, *rc::gen::inRange(0, 4), dtype);
  LoraFAOptimizer optimizer(original.pairs, original.others, options);
  for (int t = 1; t <= save_at; ++t) {
    SetGradients(original, t);
    optimizer.step();
  }
  Problem restored = CloneProblem(original);
  LoraFAOptimizer restored_optimizer(restored.pairs, restored.others, LoraFAOptions(0.123));
  std::stringstream bytes;
  torch::save(optimizer, bytes);
  torch::load(restored_optimizer, bytes);
  for (int t = save_at + 1; t <= save_at + continue_for; ++t) {
    SetGradients(original, t);
    SetGradients(restored, t);
    optimizer.step();
    restored_optimizer.step();
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    RC_ASSERT(torch::equal(original.pairs[i].B, restored.pairs[i].B));
    RC_ASSERT(*optimizer.pair_state(i) == *restored_optimizer.pair_state(i));
  }
  for (size_t j = 0; j < original.others.size(); ++j) RC_ASSERT(torch::equal(original.others[j], restored.others[j]));
}

}  // namespace
