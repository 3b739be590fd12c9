// Reading PEFT-style LoRA parameter names, so parameters are paired by module and adapter, never by
// the order in which they arrive.
//
//   "model.layers.0.q_proj.lora_A.default.weight" -> {module "model.layers.0.q_proj", adapter "default",
//                                                     role kA}
//   "embed.lora_embedding_B.fr"                   -> {module "embed", adapter "fr", role kB}
#pragma once

#include <optional>
#include <string>
#include "absl/strings/string_view.h"

namespace lorafa {

enum class LoraRole { kA, kB };

struct LoraParameterName {
  std::string module_path;  // the LoRA layer's path in the model ("" for the root module)
  std::string adapter;
  LoraRole role;
  // The key shared by an adapter's A and B on one layer: "<module_path>.<adapter>" (or "<adapter>").
  std::string PairKey() const;
};

// The A or B matrix that `name` denotes: `<path>.lora_A.<adapter>.weight` / `lora_B...weight` for
// linear and conv layers, `<path>.lora_embedding_A.<adapter>` / `lora_embedding_B...` for embeddings.
// Anything else — a lora_B bias, DoRA's lora_magnitude_vector, ordinary weights — is std::nullopt.
std::optional<LoraParameterName> ParseLoraParameterName(absl::string_view name);

}  // namespace lorafa
