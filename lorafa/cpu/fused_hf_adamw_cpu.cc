// Picks the CPU kernel for the instruction set ATen itself uses on this CPU (at::get_cpu_capability,
// which honours ATEN_CPU_CAPABILITY=default|avx2|avx512).
#include <string>
#include <vector>

#include <ATen/Version.h>
#include <c10/util/Exception.h>

#include "lorafa/fused_hf_adamw.h"

namespace lorafa::internal {
namespace DEFAULT {
void FusedHfAdamWCpuKernel(const FusedUpdateLists& lists, const HfAdamWCoefficients& coefficients);
void FusedProjectionCpuKernel(const std::vector<at::Tensor>& grads, const std::vector<at::Tensor>& projections,
                              const std::vector<at::Tensor>& outs);
}
namespace AVX2 {
void FusedHfAdamWCpuKernel(const FusedUpdateLists& lists, const HfAdamWCoefficients& coefficients);
void FusedProjectionCpuKernel(const std::vector<at::Tensor>& grads, const std::vector<at::Tensor>& projections,
                              const std::vector<at::Tensor>& outs);
}
namespace AVX512 {
void FusedHfAdamWCpuKernel(const FusedUpdateLists& lists, const HfAdamWCoefficients& coefficients);
void FusedProjectionCpuKernel(const std::vector<at::Tensor>& grads, const std::vector<at::Tensor>& projections,
                              const std::vector<at::Tensor>& outs);
}

namespace {
const std::string& Capability() {
  static const std::string capability = at::get_cpu_capability();
  return capability;
}
}  // namespace

void FusedHfAdamWCpu(const FusedUpdateLists& lists, const HfAdamWCoefficients& coefficients) {
  if (Capability() == "AVX512") return AVX512::FusedHfAdamWCpuKernel(lists, coefficients);
  if (Capability() == "AVX2") return AVX2::FusedHfAdamWCpuKernel(lists, coefficients);
  DEFAULT::FusedHfAdamWCpuKernel(lists, coefficients);
}

void FusedProjectionCpu(const std::vector<at::Tensor>& grads, const std::vector<at::Tensor>& projections,
                        const std::vector<at::Tensor>& outs) {
  TORCH_CHECK_VALUE(projections.size() == grads.size() && outs.size() == grads.size(),
                    "FusedProjectionCpu: ", grads.size(), " gradients, ", projections.size(), " matrices and ",
                    outs.size(), " results");
  if (grads.empty()) return;
  for (size_t i = 0; i < grads.size(); ++i) {
    const at::Tensor &grad = grads[i], &projection = projections[i], &out = outs[i];
    TORCH_CHECK_VALUE(
        grad.device().is_cpu() && grad.dim() == 2 && grad.is_contiguous() && grad.numel() > 0 &&
            (grad.scalar_type() == at::kFloat || grad.scalar_type() == at::kDouble) &&
            grad.scalar_type() == grads.front().scalar_type() && projection.scalar_type() == grad.scalar_type() &&
            projection.is_contiguous() && projection.sizes() == at::IntArrayRef({grad.size(1), grad.size(1)}) &&
            (!out.defined() || (out.scalar_type() == grad.scalar_type() && out.is_contiguous() &&
                                out.sizes() == grad.sizes() && out.device().is_cpu())),
        "FusedProjectionCpu: entry ", i, " must be a non-empty contiguous (rows × r) CPU gradient of the list's float "
        "or double dtype, an (r × r) matrix and a (rows × r) result (or none) of its dtype; got ", grad.sizes(), " ",
        grad.scalar_type(), ", ", projection.sizes(), " ", projection.scalar_type(), " and ",
        out.defined() ? c10::str(out.sizes(), " ", out.scalar_type()) : std::string("no result"));
  }
  if (Capability() == "AVX512") AVX512::FusedProjectionCpuKernel(grads, projections, outs);
  else if (Capability() == "AVX2") AVX2::FusedProjectionCpuKernel(grads, projections, outs);
  else DEFAULT::FusedProjectionCpuKernel(grads, projections, outs);
}

FusedHfAdamWKernel& CudaFusedHfAdamW() {
  static FusedHfAdamWKernel kernel = nullptr;
  return kernel;
}

}  // namespace lorafa::internal
