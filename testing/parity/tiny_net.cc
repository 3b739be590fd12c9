#include "testing/parity/tiny_net.h"

#include <c10/util/Exception.h>
#include <torch/nn/functional/activation.h>

namespace lorafa::parity {

TinyNetImpl::TinyNetImpl(TinyNetShape shape, int64_t r, double lora_alpha, bool use_rslora) {
  emb = register_module("emb", LoraEmbedding(LoraEmbeddingOptions(shape.vocab, shape.dim, r)
                                                  .lora_alpha(lora_alpha)
                                                  .use_rslora(use_rslora)));
  fc1 = register_module(
      "fc1", LoraLinear(LoraLinearOptions(shape.dim, shape.hidden, r).lora_alpha(lora_alpha).use_rslora(use_rslora)));
  fc2 = register_module("fc2", LoraLinear(LoraLinearOptions(shape.hidden, shape.classes, r)
                                              .lora_alpha(lora_alpha)
                                              .use_rslora(use_rslora)));
}

torch::Tensor TinyNetImpl::forward(const torch::Tensor& tokens) {
  return fc2(torch::relu(fc1(emb(tokens).mean(/*dim=*/1))));
}

void TinyNetImpl::LoadByName(const std::map<std::string, torch::Tensor>& state,
                             const std::map<std::string, bool>& trainable) {
  auto own = named_parameters();
  TORCH_CHECK_VALUE(own.size() == state.size(), "TinyNet has ", own.size(), " parameters, the state ", state.size());
  torch::NoGradGuard no_grad;
  for (auto& item : own) {
    auto value = state.find(item.key());
    TORCH_CHECK_VALUE(value != state.end(), "no value for TinyNet parameter '", item.key(), "'");
    item.value().set_data(value->second.clone());
    item.value().requires_grad_(trainable.at(item.key()));
  }
}

}  // namespace lorafa::parity
