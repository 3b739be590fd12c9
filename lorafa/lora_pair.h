// One LoRA adapter on one layer, as the optimizer sees it: frozen A, trained B, and the layer's scaling.
//
//   LoraPair pair{"encoder.q_proj.default", layer->lora_A_weight(), layer->lora_B_weight(), 2.0};
#pragma once

#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace lorafa {

struct LoraPair {
  std::string name;  // for messages and reports, e.g. "model.layers.0.q_proj.default"
  at::Tensor A;      // (r, in) or, for a conv layer, (r, in, kh, kw) — read as (r, in·kh·kw)
  at::Tensor B;      // (out, r) or (out, r, 1, 1)
  double scaling;    // s in W x + s·B A x: lora_alpha / r, or lora_alpha / √r with rsLoRA
};

// Throws c10::ValueError naming the pair and the bad value when a pair is malformed (undefined or
// non-floating tensors, shapes that disagree on r, A and B on different devices or dtypes, scaling
// zero or not finite) or a tensor has two roles (A of one pair and B of another, a B listed twice,
// an "other" parameter that is also an A or B).
void ValidatePairs(const std::vector<LoraPair>& pairs, const std::vector<at::Tensor>& other_params);

// A as the (r, n) matrix the projection works with.
at::Tensor AsRankRows(const at::Tensor& A);

}  // namespace lorafa
