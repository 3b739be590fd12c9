#include "lorafa/create.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <c10/util/Exception.h>

#include "lorafa/lora_layer.h"
#include "lorafa/lora_names.h"
#include "lorafa/lora_pair.h"

namespace lorafa {
namespace {

struct PairParts {
  std::string module_path;
  std::string adapter;
  std::string a_name, b_name;
  torch::Tensor A, B;
};

double ScalingOf(torch::nn::Module& model, const PairParts& parts) {
  std::shared_ptr<torch::nn::Module> owner;
  if (parts.module_path.empty()) {
    owner = model.shared_from_this();
  } else {
    for (const auto& item : model.named_modules()) {
      if (item.key() == parts.module_path) owner = item.value();
    }
  }
  const auto* layer = dynamic_cast<const LoraLayer*>(owner.get());
  TORCH_CHECK_VALUE(layer != nullptr, "module '", parts.module_path, "' holds LoRA parameter '", parts.a_name,
                    "' but does not implement lorafa::LoraLayer, so its scaling is unknown");
  return layer->scaling(parts.adapter);
}

}  // namespace

std::unique_ptr<LoraFAOptimizer> create_lorafa_optimizer(torch::nn::Module& model, LoraFAOptions options) {
  // Pairs keyed by "<module>.<adapter>" in the order their first member appears.
  std::map<std::string, size_t> pair_slot;
  std::vector<PairParts> parts;
  std::vector<torch::Tensor> other_params;

  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    std::optional<LoraParameterName> lora = ParseLoraParameterName(name);
    if (!lora) {
      if (item.value().requires_grad()) other_params.push_back(item.value());
      continue;
    }
    auto [slot, inserted] = pair_slot.emplace(lora->PairKey(), parts.size());
    if (inserted) parts.push_back({lora->module_path, lora->adapter});
    PairParts& pair = parts[slot->second];
    std::string& role_name = lora->role == LoraRole::kA ? pair.a_name : pair.b_name;
    TORCH_CHECK_VALUE(role_name.empty(), "LoRA parameters '", role_name, "' and '", name,
                      "' both claim the same role");
    role_name = name;
    (lora->role == LoraRole::kA ? pair.A : pair.B) = item.value();
  }

  std::vector<LoraPair> pairs;
  pairs.reserve(parts.size());
  for (const PairParts& pair : parts) {
    TORCH_CHECK_VALUE(pair.A.defined(), "LoRA parameter '", pair.b_name, "' has no matching A (adapter '",
                      pair.adapter, "' of module '", pair.module_path, "')");
    TORCH_CHECK_VALUE(pair.B.defined(), "LoRA parameter '", pair.a_name, "' has no matching B (adapter '",
                      pair.adapter, "' of module '", pair.module_path, "')");
    std::string pair_name = pair.module_path.empty() ? pair.adapter : pair.module_path + "." + pair.adapter;
    pairs.push_back({std::move(pair_name), pair.A, pair.B, ScalingOf(model, pair)});
  }

  // Build (and so validate) the optimizer before touching the model.
  auto optimizer = std::make_unique<LoraFAOptimizer>(pairs, std::move(other_params), options);
  for (const LoraPair& pair : pairs) pair.A.requires_grad_(false);
  return optimizer;
}

}  // namespace lorafa
