// The HF-style AdamW update (transformers' AdamW, as PEFT's LoraFAOptimizer uses it), one tensor at a
// time with ATen operations: PEFT's operations in PEFT's order, so results match PEFT bit for bit.
// Differs from torch.optim.AdamW: eps is added to √v before bias correction is folded into the step
// size, and weight decay is applied after the update, to the updated weights.
//
// This per-tensor path is the PEFT-compatible one and the oracle the fused kernels are tested against.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "lorafa/options.h"

namespace lorafa::internal {

// step_size = lr · √(1 − β2ᵗ) / (1 − β1ᵗ) for step count t (this step included), or lr without bias
// correction, evaluated in PEFT's order. Every path (per-tensor, CPU and CUDA kernels) takes it from here.
double HfAdamWStepSize(const LoraFAOptions& options, int64_t step);

// The decoupled weight decay's factor −lr·wd (p ← p + (−lr·wd)·p), for every path alike.
double HfAdamWDecayFactor(const LoraFAOptions& options);

// β1, β2 and eps as the number operands Python passes (python_scalar.h). Made once per group and
// step, not once per parameter: each is a small tensor allocation.
struct HfAdamWOperands {
  explicit HfAdamWOperands(const LoraFAOptions& options);
  at::Tensor beta1, beta2, eps;
};

// One update of `param` with update direction `grad` (same shape), moments m and v, in place:
//   m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  p ← p − step_size·m/(√v + eps);  p ← p − lr·wd·p
void HfAdamWUpdate(at::Tensor& param, const at::Tensor& grad, at::Tensor& m, at::Tensor& v, double step_size,
                   const LoraFAOptions& options, const HfAdamWOperands& operands);

}  // namespace lorafa::internal
