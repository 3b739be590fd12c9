// What a module holding LoRA adapters tells the optimizer: the scaling s of each adapter, in
// W x + s · B A x. create_lorafa_optimizer finds it on the module that owns a lora_A/lora_B pair.
//
//   struct MyLoraConv : torch::nn::Module, lorafa::LoraLayer {
//     double scaling(const std::string& adapter) const override { return scalings_.at(adapter); }
//   };
#pragma once

#include <cstdint>
#include <string>

namespace lorafa {

class LoraLayer {
 public:
  virtual ~LoraLayer() = default;
  // s for `adapter`: lora_alpha / r, or lora_alpha / √r with rsLoRA. Throws c10::ValueError for an
  // adapter the layer does not have.
  virtual double scaling(const std::string& adapter) const = 0;
};

// s = alpha / r, or alpha / √r with rsLoRA (PEFT's formulas, evaluated the same way).
double LoraScaling(double lora_alpha, int64_t r, bool use_rslora);

}  // namespace lorafa
