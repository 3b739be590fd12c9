// Llama-shaped decoder blocks with LoRA on every projection (q, k, v, o, gate, up, down), for measuring
// training memory at the scale where LoRA-FA's saving was claimed (Llama-2-7B: d 4096, MLP 11008,
// 32 heads). Each block is pre-norm: h = x + o(attention(norm(x))), out = h + down(silu(gate(n)) · up(n))
// with n = norm(h); attention is causal, through scaled_dot_product_attention (as transformers' "sdpa").
// Left out, because they cost both methods the same: rotary embeddings and the norms' (frozen) weights.
//
//   LlamaStack stack(LlamaStackOptions{/*d=*/4096, /*mlp=*/11008, /*heads=*/32, /*blocks=*/2, /*r=*/16});
//   torch::Tensor loss = stack->forward(x).pow(2).mean();  // x: (batch, sequence, d)
#pragma once

#include <cstdint>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "lorafa/lora_linear.h"

namespace lorafa::benchmarks {

struct LlamaStackOptions {
  int64_t d = 4096;
  int64_t mlp = 11008;
  int64_t heads = 32;
  int64_t blocks = 1;
  int64_t r = 16;
};

class LlamaStackImpl : public torch::nn::Module {
 public:
  explicit LlamaStackImpl(LlamaStackOptions options);
  torch::Tensor forward(torch::Tensor x);
  const LlamaStackOptions& options() const { return options_; }

  // Bytes a LoRA + AdamW backward keeps that LoRA-FA need not: every projection's input (A's gradient
  // needs it), once per distinct tensor — norm(x) for q, k, v; the attention output for o; norm(h) for
  // gate and up; silu(gate)·up for down — per block, at `element_size` bytes per element.
  int64_t ProjectionInputBytes(int64_t tokens, int64_t element_size) const;

 private:
  struct Block {
    LoraLinear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr}, gate{nullptr}, up{nullptr}, down{nullptr};
  };
  torch::Tensor Attention(Block& block, const torch::Tensor& x);

  LlamaStackOptions options_;
  std::vector<Block> blocks_;
};

TORCH_MODULE(LlamaStack);

}  // namespace lorafa::benchmarks
