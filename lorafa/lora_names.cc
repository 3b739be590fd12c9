#include "lorafa/lora_names.h"

#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace lorafa {
namespace {

struct LoraComponent {
  absl::string_view component;  // the path component that names the LoRA matrix
  LoraRole role;
  bool has_weight_suffix;  // nn.Linear / nn.Conv children end in ".weight"; ParameterDicts do not
};

constexpr LoraComponent kLoraComponents[] = {
    {"lora_A", LoraRole::kA, true},
    {"lora_B", LoraRole::kB, true},
    {"lora_embedding_A", LoraRole::kA, false},
    {"lora_embedding_B", LoraRole::kB, false},
};

}  // namespace

std::string LoraParameterName::PairKey() const {
  return module_path.empty() ? adapter : module_path + "." + adapter;
}

std::optional<LoraParameterName> ParseLoraParameterName(absl::string_view name) {
  std::vector<absl::string_view> parts = absl::StrSplit(name, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    for (const LoraComponent& known : kLoraComponents) {
      if (parts[i] != known.component) continue;
      // What follows the component: "<adapter>.weight" or "<adapter>".
      const size_t rest = parts.size() - i - 1;
      const bool matches = known.has_weight_suffix ? rest == 2 && parts[i + 2] == "weight" : rest == 1;
      if (!matches || parts[i + 1].empty()) return std::nullopt;
      std::vector<absl::string_view> module(parts.begin(), parts.begin() + i);
      return LoraParameterName{absl::StrJoin(module, "."), std::string(parts[i + 1]), known.role};
    }
  }
  return std::nullopt;
}

}  // namespace lorafa
