// Pairing named parameters into LoRA pairs by module path and adapter name (never by order).
//
//   PairedParameters paired = PairByName(named, [&](const std::string& module, const std::string& adapter) {
//     return scalings.at(module + "." + adapter);
//   });
//   LoraFAOptimizer optimizer(paired.pairs, paired.others, options);
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "lorafa/lora_pair.h"

namespace lorafa {

struct PairedParameters {
  std::vector<LoraPair> pairs;        // in the order each pair's first member appeared
  std::vector<at::Tensor> others;     // every non-pair parameter that requires grad, in order
};

// `scaling_of(module_path, adapter)` returns s for a pair. Throws c10::ValueError naming the parameter
// for an A without B, a B without A, or two tensors claiming one role. Modifies nothing.
PairedParameters PairByName(const std::vector<std::pair<std::string, at::Tensor>>& named_parameters,
                            const std::function<double(const std::string& module_path,
                                                       const std::string& adapter)>& scaling_of);

}  // namespace lorafa
