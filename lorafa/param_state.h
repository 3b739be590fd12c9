// Per-parameter optimizer state: HF-AdamW moments of a LoRA B (or of another trainable parameter).
// A frozen A has none.
#pragma once

#include <cstdint>

#include <torch/arg.h>
#include <torch/optim/optimizer.h>

namespace lorafa {

struct LoraFAParamState : public torch::optim::OptimizerCloneableParamState<LoraFAParamState> {
  TORCH_ARG(int64_t, step) = 0;
  TORCH_ARG(torch::Tensor, exp_avg);     // m: running mean of the (projected) gradient
  TORCH_ARG(torch::Tensor, exp_avg_sq);  // v: running mean of its square

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  friend bool operator==(const LoraFAParamState& lhs, const LoraFAParamState& rhs);
};

}  // namespace lorafa
