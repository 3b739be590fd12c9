// Gradient accumulation on a real LoraLinear with autograd: k micro-batches, each backward on loss/k,
// then one step, give the update of one step on the whole batch.
#include <cmath>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>
#include <torch/torch.h>

#include "lorafa/create.h"
#include "lorafa/lora_linear.h"
#include "reference/projection.h"
#include "testing/eigen_tensor.h"
#include "testing/properties/generators.h"
#include "testing/error_bounds.h"

namespace {

using namespace lorafa;           // NOLINT: the properties read like the maths
using namespace lorafa::testing;  // NOLINT

torch::Tensor Weight(torch::nn::ModuleDict& dict) { return dict["default"]->as<torch::nn::Linear>()->weight; }

RC_GTEST_PROP(GradientAccumulation, microBatchesGiveTheFullBatchUpdate, ()) {
  const PairSpec spec = *genWellConditionedPairSpec();
  const int micro_batches = *rc::gen::inRange(1, 5);
  const int batch = micro_batches * *rc::gen::inRange(1, 9);
  LoraFAOptions options = *genOptions();
  options.weight_decay(0.0);
  RC_PRE(options.eps() > 0.0);  // keeps the update a smooth function of the gradient near ĝ = 0

  torch::manual_seed(spec.seed);
  auto make_layer = [&spec] {
    LoraLinear layer(LoraLinearOptions(spec.in, spec.out, spec.r).lora_alpha(spec.scaling * spec.r));
    layer->to(torch::kFloat64);
    return layer;
  };
  LoraLinear full = make_layer(), accumulated = make_layer();
  {
    torch::NoGradGuard no_grad;
    Weight(full->lora_B).normal_();
    auto from = full->named_parameters();
    for (auto& item : accumulated->named_parameters()) item.value().copy_(from[item.key()]);
  }
  auto full_optimizer = create_lorafa_optimizer(*full, options);
  auto accumulated_optimizer = create_lorafa_optimizer(*accumulated, options);

  torch::Tensor x = RandomMatrix(batch, spec.in, 1.0, spec.seed + 5, torch::kFloat64);
  torch::Tensor target = RandomMatrix(batch, spec.out, 1.0, spec.seed + 6, torch::kFloat64);
  torch::mse_loss(full(x), target).backward();
  for (int k = 0; k < micro_batches; ++k) {
    (torch::mse_loss(accumulated(x.chunk(micro_batches)[k]), target.chunk(micro_batches)[k]) / micro_batches).backward();
  }

  // g_B = Σ_n rₙᵀ·aₙ with rₙ = 2(yₙ − tₙ)/(batch·out) and aₙ = s·A xₙ. The two runs compute the same
  // terms (possibly blocked differently) and add them in another order, so in units of eps they differ
  // by ≤ (batch + 2)·Σ|rₙ||aₙ| (the sums), (in + r + 4)·Σ ŷₙ|aₙ| with ŷₙ = |W||xₙ| + |b| + s|B||A||xₙ|
  // (the forward pass behind rₙ) and (in + 2)·Σ|rₙ|·s|A||xₙ| (forming aₙ).
  torch::NoGradGuard no_grad;
  const double s = spec.scaling, to_residual = 2.0 / (batch * spec.out);
  torch::Tensor A = Weight(full->lora_A), B = Weight(full->lora_B);
  torch::Tensor W = full->base_layer->weight, bias = full->base_layer->bias;
  torch::Tensor residual = ((full(x) - target) * to_residual).abs();
  torch::Tensor after_a = (s * torch::matmul(x, A.t())).abs();
  torch::Tensor after_a_magnitude = s * torch::matmul(x.abs(), A.abs().t());
  torch::Tensor y_magnitude = torch::matmul(x.abs(), W.abs().t()) + bias.abs() + torch::matmul(after_a_magnitude, B.abs().t());
  torch::Tensor gradient_bound =
      kFloat64Epsilon * ((batch + 2) * torch::matmul(residual.t(), after_a) +
                         (spec.in + spec.r + 4) * to_residual * torch::matmul(y_magnitude.t(), after_a) +
                         (spec.in + 2) * torch::matmul(residual.t(), after_a_magnitude));
  const torch::Tensor& g_full = full_optimizer->pairs()[0].B.grad();
  const torch::Tensor& g_accumulated = accumulated_optimizer->pairs()[0].B.grad();
  RC_ASSERT(((g_full - g_accumulated).abs() <= gradient_bound).all().item<bool>());

  // The first update is c·ĝ/(√(1−β2)|ĝ| + eps) with c = lr·√(1−β2) (bias-corrected) or lr·(1−β1);
  // its slope in ĝ is c·eps/(√(1−β2)|ĝ| + eps)², and ĝ's difference is ≤ |Δg|·|P|/s² elementwise.
  const torch::Tensor b_before = B.clone();
  full_optimizer->step();
  accumulated_optimizer->step();
  auto [beta1, beta2] = options.betas();
  const double root = std::sqrt(1.0 - beta2);
  const double c = options.correct_bias() ? options.lr() * root : options.lr() * (1.0 - beta1);
  const Eigen::MatrixXd pinv = reference::RegularisedGramPinv(ToEigen(A), options.pinv_delta());
  const Eigen::ArrayXXd grad_hat = reference::ProjectedGradientWithPinv(pinv, ToEigen(g_full), s).array().abs();
  const Eigen::ArrayXXd grad_hat_difference = (ToEigen(gradient_bound) * pinv.cwiseAbs()).array() / (s * s);
  const Eigen::ArrayXXd slope = c * options.eps() / (root * grad_hat + options.eps()).square();
  // Plus each side's own rounding of the update (≤ 8·eps relative to it, at most c/√(1−β2)·(1−β1)…
  // bounded by lr/√(1−β2)) and of B (eps·|B|), on both sides.
  const Eigen::ArrayXXd bound = slope * grad_hat_difference +
                                2 * kFloat64Epsilon * (8 * options.lr() / root + ToEigen(b_before).array().abs());
  const Eigen::ArrayXXd diff = (ToEigen(full_optimizer->pairs()[0].B) - ToEigen(accumulated_optimizer->pairs()[0].B)).array().abs();
  RC_ASSERT((diff <= bound).all());
}

}  // namespace
