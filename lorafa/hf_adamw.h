// The HF-style AdamW update (transformers' AdamW, as PEFT's LoraFAOptimizer uses it), in place.
// Differs from torch.optim.AdamW: eps is added to √v before bias correction is folded into the step
// size, and weight decay is applied after the update, to the updated weights.
#pragma once

#include <ATen/core/Tensor.h>

#include "lorafa/options.h"
#include "lorafa/param_state.h"

namespace lorafa::internal {

// β1, β2 and eps as the number operands Python passes (python_scalar.h). Made once per group and
// step, not once per parameter: each is a small tensor allocation.
struct HfAdamWOperands {
  explicit HfAdamWOperands(const LoraFAOptions& options);
  at::Tensor beta1, beta2, eps;
};

// One update of `param` with gradient `grad` (same shape): advances `state` (moments created by the
// caller) and writes param. The operations and their order are PEFT's, so results match bit for bit.
void HfAdamWUpdate(at::Tensor& param, const at::Tensor& grad, LoraFAParamState& state,
                   const LoraFAOptions& options, const HfAdamWOperands& operands);

}  // namespace lorafa::internal
