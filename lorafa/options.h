// Hyperparameters of LoraFAOptimizer, one set per parameter group.
//
//   lorafa::LoraFAOptions options(/*lr=*/2e-4);
//   options.weight_decay(0.01).projection(lorafa::Projection::kPeftBf16);
#pragma once

#include <tuple>

#include <torch/arg.h>
#include <torch/optim/optimizer.h>  // declares the archives only: torch/serialize/archive.h (11 s of
                                    // every compile that sees it) is included where they are used

namespace lorafa {

// How the B gradient is projected: ĝ_B = (1/s²) · g_B · (A Aᵀ + δI)⁺.
enum class Projection {
  // In the parameters' dtype (float32 for bfloat16/half parameters), with 1/s² folded into the
  // cached pseudo-inverse, so a step costs one (out × r)·(r × r) matmul.
  kExact = 0,
  // PEFT's arithmetic on a CPU-only machine, operation for operation: pinv of A Aᵀ + δ·eye(float32),
  // then the product and the 1/s² scaling under bfloat16 autocast for the gradient's device, cast back.
  kPeftBf16 = 1,
};

struct LoraFAOptions : public torch::optim::OptimizerCloneableOptions<LoraFAOptions> {
  LoraFAOptions(double lr = 1e-3);  // NOLINT(google-explicit-constructor): torch's loader needs it
  TORCH_ARG(double, lr) = 1e-3;
  using betas_t = std::tuple<double, double>;
  TORCH_ARG(betas_t, betas) = std::make_tuple(0.9, 0.999);
  TORCH_ARG(double, eps) = 1e-6;
  // HF-style: applied after the Adam update, to the updated weights (B -= lr·wd·B).
  TORCH_ARG(double, weight_decay) = 0.0;
  TORCH_ARG(bool, correct_bias) = true;
  // δ in (A Aᵀ + δI)⁺; PEFT's constant.
  TORCH_ARG(double, pinv_delta) = 1e-8;
  TORCH_ARG(Projection, projection) = Projection::kExact;
  // When true, a step whose gradients (any B's or other parameter's) hold NaN or Inf changes nothing —
  // no parameter, moment or step count — and is counted as skipped. False is PEFT's behaviour: one such
  // step turns B and its moments into NaN for the rest of the run.
  TORCH_ARG(bool, skip_nonfinite) = false;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override;
  void set_lr(double lr) override;
  friend bool operator==(const LoraFAOptions& lhs, const LoraFAOptions& rhs);
};

// Throws c10::ValueError naming the first invalid value ("Invalid learning rate: -1").
void ValidateOptions(const LoraFAOptions& options);

}  // namespace lorafa
