// LoraLinear: a frozen linear layer plus LoRA adapters, y = base(x) + Σ_adapters s · B (A x),
// named like PEFT's lora.Linear so weights move between the two by name:
//   base_layer.weight, base_layer.bias, lora_A.<adapter>.weight, lora_B.<adapter>.weight
//   (and lora_B.<adapter>.bias with lora_bias).
//
//   lorafa::LoraLinear layer(lorafa::LoraLinearOptions(/*in=*/512, /*out=*/512, /*r=*/16).lora_alpha(32));
//   torch::Tensor y = layer(x);
//   layer->add_adapter("fr", /*r=*/8, /*lora_alpha=*/16);
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/moduledict.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "lorafa/lora_layer.h"

namespace lorafa {

struct LoraLinearOptions {
  LoraLinearOptions(int64_t in_features, int64_t out_features, int64_t r);
  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, out_features);
  TORCH_ARG(int64_t, r);  // rank of the "default" adapter
  TORCH_ARG(double, lora_alpha) = 8.0;
  TORCH_ARG(bool, use_rslora) = false;
  TORCH_ARG(bool, bias) = true;        // the base layer's bias
  TORCH_ARG(bool, lora_bias) = false;  // a trainable bias on lora_B, as PEFT's lora_bias=True
};

class LoraLinearImpl : public torch::nn::Module, public LoraLayer {
 public:
  explicit LoraLinearImpl(LoraLinearOptions options);

  // base(x) + Σ s_a · lora_B_a(lora_A_a(x)), adapters in the order they were added.
  torch::Tensor forward(const torch::Tensor& x);

  // Adds an adapter: A (r, in) kaiming-uniform with a = √5 as PEFT initialises it, B (out, r) zeros.
  // Throws c10::ValueError for a duplicate name or r < 1.
  void add_adapter(const std::string& name, int64_t r, double lora_alpha, bool use_rslora = false);

  double scaling(const std::string& adapter = "default") const override;

  torch::nn::Linear base_layer{nullptr};
  torch::nn::ModuleDict lora_A{nullptr};
  torch::nn::ModuleDict lora_B{nullptr};

 private:
  LoraLinearOptions options_;
  std::map<std::string, double> scaling_;
};

TORCH_MODULE(LoraLinear);

}  // namespace lorafa
