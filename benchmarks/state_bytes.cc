#include "benchmarks/state_bytes.h"

#include <torch/optim/adamw.h>

#include "lorafa/param_state.h"

namespace lorafa::benchmarks {

int64_t OptimizerStateBytes(const torch::optim::Optimizer& optimizer) {
  int64_t bytes = 0;
  for (const auto& [key, state] : optimizer.state()) {
    if (auto* lorafa_state = dynamic_cast<const LoraFAParamState*>(state.get())) {
      bytes += lorafa_state->exp_avg().nbytes() + lorafa_state->exp_avg_sq().nbytes();
    } else if (auto* adam_state = dynamic_cast<const torch::optim::AdamWParamState*>(state.get())) {
      bytes += adam_state->exp_avg().nbytes() + adam_state->exp_avg_sq().nbytes();
    }
  }
  return bytes;
}

}  // namespace lorafa::benchmarks
