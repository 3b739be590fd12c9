#include "lorafa/param_state.h"

#include <ATen/ops/equal.h>
#include <torch/serialize/archive.h>

namespace lorafa {

void LoraFAParamState::serialize(torch::serialize::OutputArchive& archive) const {
  archive.write("step", step());
  archive.write("exp_avg", exp_avg(), /*is_buffer=*/true);
  archive.write("exp_avg_sq", exp_avg_sq(), /*is_buffer=*/true);
}

void LoraFAParamState::serialize(torch::serialize::InputArchive& archive) {
  c10::IValue value;
  archive.read("step", value);
  step(value.toInt());
  torch::Tensor tensor;
  archive.read("exp_avg", tensor, /*is_buffer=*/true);
  exp_avg(tensor);
  torch::Tensor squared;
  archive.read("exp_avg_sq", squared, /*is_buffer=*/true);
  exp_avg_sq(squared);
}

bool operator==(const LoraFAParamState& lhs, const LoraFAParamState& rhs) {
  return lhs.step() == rhs.step() && at::equal(lhs.exp_avg(), rhs.exp_avg()) &&
         at::equal(lhs.exp_avg_sq(), rhs.exp_avg_sq());
}

}  // namespace lorafa
