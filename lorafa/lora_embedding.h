// LoraEmbedding: a frozen embedding plus LoRA adapters, y = E[x] + Σ_adapters s · (Aᵀ[x]) Bᵀ, named like
// PEFT's lora.Embedding: base_layer.weight, lora_embedding_A.<adapter> (r, num_embeddings),
// lora_embedding_B.<adapter> (dim, r).
//
// PEFT initialises A to zeros and B normally. Under LoRA-FA that A stays zero, so B's gradient — and
// the adapter's update — is zero for good: set A (by name) before training an embedding adapter.
//
//   lorafa::LoraEmbedding embed(lorafa::LoraEmbeddingOptions(/*num_embeddings=*/1000, /*dim=*/64, /*r=*/8));
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/parameterdict.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/pimpl.h>

#include "lorafa/lora_layer.h"

namespace lorafa {

struct LoraEmbeddingOptions {
  LoraEmbeddingOptions(int64_t num_embeddings, int64_t embedding_dim, int64_t r);
  TORCH_ARG(int64_t, num_embeddings);
  TORCH_ARG(int64_t, embedding_dim);
  TORCH_ARG(int64_t, r);
  TORCH_ARG(double, lora_alpha) = 8.0;
  TORCH_ARG(bool, use_rslora) = false;
};

class LoraEmbeddingImpl : public torch::nn::Module, public LoraLayer {
 public:
  explicit LoraEmbeddingImpl(LoraEmbeddingOptions options);

  // base(x) + Σ s_a · embedding(x, A_aᵀ) · B_aᵀ, as PEFT computes it.
  torch::Tensor forward(const torch::Tensor& indices);

  void add_adapter(const std::string& name, int64_t r, double lora_alpha, bool use_rslora = false);
  double scaling(const std::string& adapter = "default") const override;

  torch::nn::Embedding base_layer{nullptr};
  torch::nn::ParameterDict lora_embedding_A{nullptr};
  torch::nn::ParameterDict lora_embedding_B{nullptr};

 private:
  LoraEmbeddingOptions options_;
  std::map<std::string, double> scaling_;
};

TORCH_MODULE(LoraEmbedding);

}  // namespace lorafa
