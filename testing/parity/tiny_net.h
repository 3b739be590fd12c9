// lorafa's twin of peft_bridge.py's TinyNet: Embedding → mean over the sequence → Linear → ReLU →
// Linear, every layer a LoRA layer with PEFT's parameter names (emb.base_layer.weight,
// fc1.lora_A.default.weight, ...), so weights are copied over by name.
#pragma once

#include <map>
#include <string>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "lorafa/lora_embedding.h"
#include "lorafa/lora_linear.h"

namespace lorafa::parity {

struct TinyNetShape {
  int64_t vocab = 32, dim = 16, hidden = 24, classes = 5;  // peft_bridge.TINY_NET_SHAPE
};

class TinyNetImpl : public torch::nn::Module {
 public:
  TinyNetImpl(TinyNetShape shape, int64_t r, double lora_alpha, bool use_rslora);
  torch::Tensor forward(const torch::Tensor& tokens);

  // Copies every parameter's value and requires_grad from `state` (by name); throws for a name
  // missing on either side.
  void LoadByName(const std::map<std::string, torch::Tensor>& state, const std::map<std::string, bool>& trainable);

  LoraEmbedding emb{nullptr};
  LoraLinear fc1{nullptr}, fc2{nullptr};
};

TORCH_MODULE(TinyNet);

}  // namespace lorafa::parity
