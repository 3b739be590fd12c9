#include "lorafa/lora_layer.h"

#include <cmath>

namespace lorafa {

double LoraScaling(double lora_alpha, int64_t r, bool use_rslora) {
  return use_rslora ? lora_alpha / std::sqrt(static_cast<double>(r)) : lora_alpha / static_cast<double>(r);
}

}  // namespace lorafa
