// A transformer-like stack with LoRA on every projection, for the full-training-step benchmark:
// each block is single-head attention (q, k, v, o: d × d) and an MLP (up d × 4d, GELU, down 4d × d),
// with residual connections; every projection is a LoraLinear (frozen base, adapter "default").
//
//   LoraStack stack(LoraStackOptions{/*d=*/256, /*blocks=*/4, /*r=*/16});
//   torch::Tensor loss = stack->forward(x).pow(2).mean();  // x: (batch, sequence, d)
#pragma once

#include <cstdint>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "lorafa/lora_linear.h"

namespace lorafa::benchmarks {

struct LoraStackOptions {
  int64_t d = 256;
  int64_t blocks = 4;
  int64_t r = 16;
};

class LoraStackImpl : public torch::nn::Module {
 public:
  explicit LoraStackImpl(LoraStackOptions options);
  torch::Tensor forward(torch::Tensor x);
  const LoraStackOptions& options() const { return options_; }

  // Bytes of the tensors a LoRA+AdamW backward keeps that LoRA-FA need not: the input of every
  // projection (A's gradient needs it), counted once per distinct tensor — x (shared by q, k, v), the
  // attention output (o), the MLP input (up) and the GELU output (down), per block, at `element_size`
  // bytes per element.
  int64_t ProjectionInputBytes(int64_t tokens, int64_t element_size) const;

 private:
  struct Block {
    LoraLinear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr}, up{nullptr}, down{nullptr};
  };
  LoraStackOptions options_;
  std::vector<Block> blocks_;
};

TORCH_MODULE(LoraStack);

}  // namespace lorafa::benchmarks
