// Picks the CPU kernel for the instruction set ATen itself uses on this CPU (at::get_cpu_capability,
// which honours ATEN_CPU_CAPABILITY=default|avx2|avx512).
#include <string>

#include <ATen/Version.h>
#include <c10/util/Exception.h>

#include "lorafa/fused_hf_adamw.h"

namespace lorafa::internal {
namespace DEFAULT {
void FusedHfAdamWCpuKernel(const FusedUpdateLists& lists, const HfAdamWCoefficients& coefficients);
void FusedProjectionCpuKernel(const at::Tensor& grad, const at::Tensor& projection, const at::Tensor& out);
}
namespace AVX2 {
void FusedHfAdamWCpuKernel(const FusedUpdateLists& lists, const HfAdamWCoefficients& coefficients);
void FusedProjectionCpuKernel(const at::Tensor& grad, const at::Tensor& projection, const at::Tensor& out);
}
namespace AVX512 {
void FusedHfAdamWCpuKernel(const FusedUpdateLists& lists, const HfAdamWCoefficients& coefficients);
void FusedProjectionCpuKernel(const at::Tensor& grad, const at::Tensor& projection, const at::Tensor& out);
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

void FusedProjectionCpu(const at::Tensor& grad, const at::Tensor& projection, const at::Tensor& out) {
  TORCH_CHECK_VALUE(grad.device().is_cpu() && grad.dim() == 2 && grad.is_contiguous() &&
                        (grad.scalar_type() == at::kFloat || grad.scalar_type() == at::kDouble) &&
                        projection.scalar_type() == grad.scalar_type() && projection.is_contiguous() &&
                        projection.sizes() == at::IntArrayRef({grad.size(1), grad.size(1)}) &&
                        (!out.defined() || (out.scalar_type() == grad.scalar_type() && out.is_contiguous() &&
                                            out.sizes() == grad.sizes() && out.device().is_cpu())),
                    "FusedProjectionCpu: contiguous float or double CPU tensors, a (rows × r) gradient, an (r × r) "
                    "matrix and a (rows × r) result of its dtype (or none); got ", grad.sizes(), " ",
                    grad.scalar_type(), ", ", projection.sizes(), " ", projection.scalar_type(), " and ",
                    out.defined() ? out.sizes() : at::IntArrayRef{}, out.defined() ? " " : "no result",
                    out.defined() ? c10::toString(out.scalar_type()) : "");
  if (grad.numel() == 0) return;
  if (Capability() == "AVX512") AVX512::FusedProjectionCpuKernel(grad, projection, out);
  else if (Capability() == "AVX2") AVX2::FusedProjectionCpuKernel(grad, projection, out);
  else DEFAULT::FusedProjectionCpuKernel(grad, projection, out);
}

FusedHfAdamWKernel& CudaFusedHfAdamW() {
  static FusedHfAdamWKernel kernel = nullptr;
  return kernel;
}

}  // namespace lorafa::internal
