#include "benchmarks/llama_stack.h"

#include <string>

#include <ATen/ops/scaled_dot_product_attention.h>
#include <torch/nn/functional/activation.h>

namespace lorafa::benchmarks {
namespace {

// Llama's RMSNorm without its weight: x / sqrt(mean(x²) + ε), ε = 1e-5 as in Llama-2's config.
torch::Tensor RmsNorm(const torch::Tensor& x) {
  return x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + 1e-5);
}

}  // namespace

LlamaStackImpl::LlamaStackImpl(LlamaStackOptions options) : options_(options) {
  const int64_t d = options.d, mlp = options.mlp, r = options.r;
  auto lora = [&](const std::string& name, int64_t in, int64_t out) {
    return register_module(name, LoraLinear(LoraLinearOptions(in, out, r).lora_alpha(2.0 * r)));
  };
  for (int64_t b = 0; b < options.blocks; ++b) {
    const std::string prefix = "layer" + std::to_string(b) + "_";
    blocks_.push_back({lora(prefix + "q", d, d), lora(prefix + "k", d, d), lora(prefix + "v", d, d),
                       lora(prefix + "o", d, d), lora(prefix + "gate", d, mlp), lora(prefix + "up", d, mlp),
                       lora(prefix + "down", mlp, d)});
  }
}

torch::Tensor LlamaStackImpl::Attention(Block& block, const torch::Tensor& x) {
  const int64_t batch = x.size(0), sequence = x.size(1), head_dim = options_.d / options_.heads;
  auto heads = [&](const torch::Tensor& projected) {  // (batch, sequence, d) → (batch, heads, sequence, head_dim)
    return projected.view({batch, sequence, options_.heads, head_dim}).transpose(1, 2);
  };
  torch::Tensor attended = at::scaled_dot_product_attention(heads(block.q(x)), heads(block.k(x)), heads(block.v(x)),
                                                            /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/true);
  return block.o(attended.transpose(1, 2).reshape({batch, sequence, options_.d}));
}

torch::Tensor LlamaStackImpl::forward(torch::Tensor x) {
  for (Block& block : blocks_) {
    x = x + Attention(block, RmsNorm(x));
    torch::Tensor n = RmsNorm(x);
    x = x + block.down(torch::silu(block.gate(n)) * block.up(n));
  }
  return x;
}

int64_t LlamaStackImpl::ProjectionInputBytes(int64_t tokens, int64_t element_size) const {
  return options_.blocks * tokens * (3 * options_.d + options_.mlp) * element_size;
}

}  // namespace lorafa::benchmarks
