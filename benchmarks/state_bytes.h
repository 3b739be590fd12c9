// Bytes held by an optimizer's state tensors (lorafa's and torch's AdamW state types).
#pragma once

#include <cstdint>

#include <torch/optim/optimizer.h>

namespace lorafa::benchmarks {

int64_t OptimizerStateBytes(const torch::optim::Optimizer& optimizer);

}  // namespace lorafa::benchmarks
