#include "lorafa/pairing.h"

#include <map>
#include <optional>

#include <c10/util/Exception.h>

#include "lorafa/lora_names.h"

namespace lorafa {
namespace {

struct PairParts {
  std::string module_path;
  std::string adapter;
  std::string a_name, b_name;
  at::Tensor A, B;
};

}  // namespace

PairedParameters PairByName(const std::vector<std::pair<std::string, at::Tensor>>& named_parameters,
                            const std::function<double(const std::string&, const std::string&)>& scaling_of) {
  std::map<std::string, size_t> slot_of_key;  // "<module>.<adapter>" -> index in parts
  std::vector<PairParts> parts;
  PairedParameters paired;

  for (const auto& [name, tensor] : named_parameters) {
    std::optional<LoraParameterName> lora = ParseLoraParameterName(name);
    if (!lora) {
      if (tensor.requires_grad()) paired.others.push_back(tensor);
      continue;
    }
    auto [slot, inserted] = slot_of_key.emplace(lora->PairKey(), parts.size());
    if (inserted) parts.push_back({lora->module_path, lora->adapter});
    PairParts& pair = parts[slot->second];
    std::string& role_name = lora->role == LoraRole::kA ? pair.a_name : pair.b_name;
    TORCH_CHECK_VALUE(role_name.empty(), "LoRA parameters '", role_name, "' and '", name,
                      "' both claim the same role");
    role_name = name;
    (lora->role == LoraRole::kA ? pair.A : pair.B) = tensor;
  }

  for (const PairParts& pair : parts) {
    TORCH_CHECK_VALUE(pair.A.defined(), "LoRA parameter '", pair.b_name, "' has no matching A (adapter '",
                      pair.adapter, "' of module '", pair.module_path, "')");
    TORCH_CHECK_VALUE(pair.B.defined(), "LoRA parameter '", pair.a_name, "' has no matching B (adapter '",
                      pair.adapter, "' of module '", pair.module_path, "')");
    std::string name = pair.module_path.empty() ? pair.adapter : pair.module_path + "." + pair.adapter;
    paired.pairs.push_back({std::move(name), pair.A, pair.B, scaling_of(pair.module_path, pair.adapter)});
  }
  return paired;
}

}  // namespace lorafa
