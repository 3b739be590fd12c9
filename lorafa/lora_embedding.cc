#include "lorafa/lora_embedding.h"

#include <c10/util/Exception.h>
#include <torch/nn/functional/embedding.h>

namespace lorafa {

LoraEmbeddingOptions::LoraEmbeddingOptions(int64_t num_embeddings, int64_t embedding_dim, int64_t r)
    : num_embeddings_(num_embeddings), embedding_dim_(embedding_dim), r_(r) {}

LoraEmbeddingImpl::LoraEmbeddingImpl(LoraEmbeddingOptions options) : options_(options) {
  base_layer = register_module(
      "base_layer", torch::nn::Embedding(torch::nn::EmbeddingOptions(options.num_embeddings(), options.embedding_dim())));
  base_layer->weight.requires_grad_(false);  // frozen base
  lora_embedding_A = register_module("lora_embedding_A", torch::nn::ParameterDict());
  lora_embedding_B = register_module("lora_embedding_B", torch::nn::ParameterDict());
  add_adapter("default", options.r(), options.lora_alpha(), options.use_rslora());
}

void LoraEmbeddingImpl::add_adapter(const std::string& name, int64_t r, double lora_alpha, bool use_rslora) {
  TORCH_CHECK_VALUE(r >= 1, "LoRA rank must be >= 1, got ", r, " for adapter '", name, "'");
  TORCH_CHECK_VALUE(!lora_embedding_A->contains(name), "LoraEmbedding already has an adapter named '", name, "'");
  auto like_base = base_layer->weight.options().requires_grad(true);
  lora_embedding_A->insert(name, torch::zeros({r, options_.num_embeddings()}, like_base));   // PEFT: zeros
  lora_embedding_B->insert(name, torch::randn({options_.embedding_dim(), r}, like_base));   // PEFT: normal
  scaling_[name] = LoraScaling(lora_alpha, r, use_rslora);
}

double LoraEmbeddingImpl::scaling(const std::string& adapter) const {
  auto it = scaling_.find(adapter);
  TORCH_CHECK_VALUE(it != scaling_.end(), "LoraEmbedding has no adapter named '", adapter, "'");
  return it->second;
}

torch::Tensor LoraEmbeddingImpl::forward(const torch::Tensor& indices) {
  torch::Tensor result = base_layer(indices);
  for (const std::string& adapter : lora_embedding_A->keys()) {
    const torch::Tensor& A = lora_embedding_A[adapter];
    torch::Tensor after_A = torch::nn::functional::embedding(indices, A.t());
    // PEFT: result = result + (after_A @ embedding_B) * scaling, with embedding_B = Bᵀ
    result = result + torch::matmul(after_A, lora_embedding_B[adapter].t()) * scaling_.at(adapter);
  }
  return result;
}

}  // namespace lorafa
