// create_lorafa_optimizer: the LoRA-FA optimizer for a whole module, PEFT's helper of the same name.
//
//   lorafa::LoraLinear layer(lorafa::LoraLinearOptions(64, 64, /*r=*/8).lora_alpha(16));
//   auto optimizer = lorafa::create_lorafa_optimizer(*layer, lorafa::LoraFAOptions(1e-3));
#pragma once

#include <memory>

#include <torch/nn/module.h>

#include "lorafa/optimizer.h"
#include "lorafa/options.h"

namespace lorafa {

// Pairs every `…lora_A.<adapter>.weight` with `…lora_B.<adapter>.weight` (and `lora_embedding_A/B`)
// of the same module and adapter, takes the pair's scaling from that module (which must implement
// lorafa::LoraLayer), and puts every other parameter that requires grad on the HF-AdamW path (a lora_B
// bias, DoRA-like extra parameters, unfrozen base weights). Then freezes every A.
//
// Throws c10::ValueError, leaving the model untouched, for an A without its B or a B without its A
// (naming it), a LoRA module that does not report its scaling, or anything LoraFAOptimizer rejects.
//
// Unlike PEFT: pairing is by name, not order; lora_embedding_A is frozen too (PEFT's "lora_A"
// substring test misses it); no parameter without requires_grad is handed to the optimizer except B.
std::unique_ptr<LoraFAOptimizer> create_lorafa_optimizer(torch::nn::Module& model,
                                                         LoraFAOptions options = {});

}  // namespace lorafa
