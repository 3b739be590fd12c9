// lorafa: the LoRA-FA optimizer for LibTorch. Include this header for the whole public API:
//   LoraFAOptions, Projection        (lorafa/options.h)
//   LoraPair                         (lorafa/lora_pair.h)
//   LoraFAOptimizer                  (lorafa/optimizer.h)
//   create_lorafa_optimizer          (lorafa/create.h)
//   LoraLinear, LoraLinearOptions    (lorafa/lora_linear.h)
//   LoraEmbedding                    (lorafa/lora_embedding.h)
//   PairByName                       (lorafa/pairing.h)
#pragma once

#include "lorafa/checkpoint.h"
#include "lorafa/create.h"
#include "lorafa/lora_embedding.h"
#include "lorafa/lora_linear.h"
#include "lorafa/lora_pair.h"
#include "lorafa/optimizer.h"
#include "lorafa/options.h"
#include "lorafa/pairing.h"
