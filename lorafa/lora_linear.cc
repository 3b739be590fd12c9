#include "lorafa/lora_linear.h"

#include <cmath>

#include <c10/util/Exception.h>
#include <torch/nn/init.h>

namespace lorafa {

LoraLinearOptions::LoraLinearOptions(int64_t in_features, int64_t out_features, int64_t r)
    : in_features_(in_features), out_features_(out_features), r_(r) {}

LoraLinearImpl::LoraLinearImpl(LoraLinearOptions options) : options_(options) {
  TORCH_CHECK_VALUE(options.in_features() > 0 && options.out_features() > 0,
                    "LoraLinear needs positive in/out features, got ", options.in_features(), " and ",
                    options.out_features());
  base_layer = register_module(
      "base_layer", torch::nn::Linear(torch::nn::LinearOptions(options.in_features(), options.out_features())
                                          .bias(options.bias())));
  for (auto& parameter : base_layer->parameters()) parameter.requires_grad_(false);  // frozen base
  lora_A = register_module("lora_A", torch::nn::ModuleDict());
  lora_B = register_module("lora_B", torch::nn::ModuleDict());
  add_adapter("default", options.r(), options.lora_alpha(), options.use_rslora());
}

void LoraLinearImpl::add_adapter(const std::string& name, int64_t r, double lora_alpha, bool use_rslora) {
  TORCH_CHECK_VALUE(r >= 1, "LoRA rank must be >= 1, got ", r, " for adapter '", name, "'");
  TORCH_CHECK_VALUE(!lora_A->contains(name), "LoraLinear already has an adapter named '", name, "'");
  torch::nn::Linear a(torch::nn::LinearOptions(options_.in_features(), r).bias(false));
  torch::nn::Linear b(torch::nn::LinearOptions(r, options_.out_features()).bias(options_.lora_bias()));
  {
    torch::NoGradGuard no_grad;
    torch::nn::init::kaiming_uniform_(a->weight, std::sqrt(5.0));
    torch::nn::init::zeros_(b->weight);
    if (options_.lora_bias()) torch::nn::init::zeros_(b->bias);
  }
  // Adapters are created on the base layer's device and dtype, as PEFT does.
  const torch::Tensor& base_weight = base_layer->weight;
  a->to(base_weight.device(), base_weight.scalar_type());
  b->to(base_weight.device(), base_weight.scalar_type());
  lora_A->update({{name, a.ptr()}});
  lora_B->update({{name, b.ptr()}});
  scaling_[name] = LoraScaling(lora_alpha, r, use_rslora);
}

double LoraLinearImpl::scaling(const std::string& adapter) const {
  auto it = scaling_.find(adapter);
  TORCH_CHECK_VALUE(it != scaling_.end(), "LoraLinear has no adapter named '", adapter, "'");
  return it->second;
}

torch::Tensor LoraLinearImpl::forward(const torch::Tensor& x) {
  torch::Tensor result = base_layer(x);
  for (const auto& [adapter, a_module] : lora_A->items()) {
    auto a = a_module->as<torch::nn::Linear>();
    auto b = lora_B[adapter]->as<torch::nn::Linear>();
    // PEFT: result = result + lora_B(lora_A(dropout(x))) * scaling
    result = result + b->forward(a->forward(x)) * scaling_.at(adapter);
  }
  return result;
}

}  // namespace lorafa
