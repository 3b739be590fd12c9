#include "lorafa/create.h"

#include <string>
#include <utility>
#include <vector>

#include <c10/util/Exception.h>

#include "lorafa/lora_layer.h"
#include "lorafa/pairing.h"

namespace lorafa {

std::unique_ptr<LoraFAOptimizer> create_lorafa_optimizer(torch::nn::Module& model, LoraFAOptions options) {
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) named.emplace_back(item.key(), item.value());

  auto modules = model.named_modules(/*name_prefix=*/"", /*include_self=*/true);
  auto scaling_of = [&modules](const std::string& module_path, const std::string& adapter) {
    const auto* owner = modules.find(module_path);
    const auto* layer = owner ? dynamic_cast<const LoraLayer*>(owner->get()) : nullptr;
    TORCH_CHECK_VALUE(layer != nullptr, "module '", module_path, "' holds LoRA adapter '", adapter,
                      "' but does not implement lorafa::LoraLayer, so its scaling is unknown");
    return layer->scaling(adapter);
  };
  PairedParameters paired = PairByName(named, scaling_of);

  // Build (and so validate) the optimizer before touching the model.
  auto optimizer = std::make_unique<LoraFAOptimizer>(paired.pairs, std::move(paired.others), options);
  for (const LoraPair& pair : paired.pairs) pair.A.requires_grad_(false);
  return optimizer;
}

}  // namespace lorafa
