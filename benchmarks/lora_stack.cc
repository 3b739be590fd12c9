#include "benchmarks/lora_stack.h"

#include <cmath>
#include <string>

#include <torch/nn/functional/activation.h>

namespace lorafa::benchmarks {

LoraStackImpl::LoraStackImpl(LoraStackOptions options) : options_(options) {
  const int64_t d = options.d, r = options.r;
  auto lora = [&](const std::string& name, int64_t in, int64_t out) {
    return register_module(name, LoraLinear(LoraLinearOptions(in, out, r).lora_alpha(2.0 * r)));
  };
  for (int64_t b = 0; b < options.blocks; ++b) {
    const std::string prefix = "block" + std::to_string(b) + "_";
    blocks_.push_back({lora(prefix + "q", d, d), lora(prefix + "k", d, d), lora(prefix + "v", d, d),
                       lora(prefix + "o", d, d), lora(prefix + "up", d, 4 * d), lora(prefix + "down", 4 * d, d)});
  }
}

torch::Tensor LoraStackImpl::forward(torch::Tensor x) {
  const double inverse_sqrt_d = 1.0 / std::sqrt(static_cast<double>(options_.d));
  for (Block& block : blocks_) {
    torch::Tensor scores = torch::matmul(block.q(x), block.k(x).transpose(-2, -1)) * inverse_sqrt_d;
    x = x + block.o(torch::matmul(torch::softmax(scores, -1), block.v(x)));
    x = x + block.down(torch::gelu(block.up(x)));
  }
  return x;
}

int64_t LoraStackImpl::ProjectionInputBytes(int64_t tokens, int64_t element_size) const {
  // x (d), attention output (d), MLP input (d), GELU output (4d).
  return options_.blocks * tokens * (options_.d + options_.d + options_.d + 4 * options_.d) * element_size;
}

}  // namespace lorafa::benchmarks
