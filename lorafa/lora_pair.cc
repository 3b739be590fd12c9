#include "lorafa/lora_pair.h"

#include <cmath>
#include <string>
#include <unordered_map>

#include <c10/util/Exception.h>

namespace lorafa {
namespace {

void ValidatePair(const LoraPair& pair) {
  const std::string& name = pair.name;
  TORCH_CHECK_VALUE(pair.A.defined(), "LoRA pair '", name, "': A is undefined");
  TORCH_CHECK_VALUE(pair.B.defined(), "LoRA pair '", name, "': B is undefined");
  TORCH_CHECK_VALUE(pair.A.is_floating_point() && pair.B.is_floating_point(), "LoRA pair '", name,
                    "': A and B must be floating point, got ", pair.A.scalar_type(), " and ",
                    pair.B.scalar_type());
  TORCH_CHECK_VALUE(pair.A.dim() == 2 || pair.A.dim() == 4, "LoRA pair '", name,
                    "': A must be (r, in) or (r, in, kh, kw), got shape ", pair.A.sizes());
  const int64_t r = pair.A.size(0);
  TORCH_CHECK_VALUE(r > 0 && pair.A.numel() > 0, "LoRA pair '", name, "': A is empty, shape ",
                    pair.A.sizes());
  const bool b_is_matrix = pair.B.dim() == 2 && pair.B.size(1) == r;
  const bool b_is_conv = pair.B.dim() == 4 && pair.B.size(1) == r && pair.B.size(2) == 1 && pair.B.size(3) == 1;
  TORCH_CHECK_VALUE(b_is_matrix || b_is_conv, "LoRA pair '", name, "': B has shape ", pair.B.sizes(),
                    " but A has rank r=", r, "; B must be (out, ", r, ") or (out, ", r, ", 1, 1)");
  TORCH_CHECK_VALUE(pair.A.device() == pair.B.device(), "LoRA pair '", name, "': A is on ",
                    pair.A.device(), " but B is on ", pair.B.device());
  TORCH_CHECK_VALUE(pair.A.scalar_type() == pair.B.scalar_type(), "LoRA pair '", name, "': A is ",
                    pair.A.scalar_type(), " but B is ", pair.B.scalar_type());
  TORCH_CHECK_VALUE(std::isfinite(pair.scaling) && pair.scaling != 0.0, "LoRA pair '", name,
                    "': scaling must be finite and non-zero, got ", pair.scaling);
}

}  // namespace

void ValidatePairs(const std::vector<LoraPair>& pairs, const std::vector<at::Tensor>& other_params) {
  // Every tensor has exactly one role; remember the first one to name it in the message.
  std::unordered_map<const c10::TensorImpl*, std::string> role_of;
  auto claim = [&role_of](const at::Tensor& tensor, std::string role) {
    auto [it, inserted] = role_of.emplace(tensor.unsafeGetTensorImpl(), role);
    TORCH_CHECK_VALUE(inserted, "a tensor appears in two roles: ", it->second, " and ", role);
  };
  for (const LoraPair& pair : pairs) {
    ValidatePair(pair);
    claim(pair.A, "A of LoRA pair '" + pair.name + "'");
    claim(pair.B, "B of LoRA pair '" + pair.name + "'");
  }
  for (size_t i = 0; i < other_params.size(); ++i) {
    TORCH_CHECK_VALUE(other_params[i].defined(), "other parameter ", i, " is undefined");
    TORCH_CHECK_VALUE(other_params[i].is_floating_point(), "other parameter ", i,
                      " must be floating point, got ", other_params[i].scalar_type());
    claim(other_params[i], "other parameter " + std::to_string(i));
  }
}

at::Tensor AsRankRows(const at::Tensor& A) { return A.reshape({A.size(0), -1}); }

}  // namespace lorafa
