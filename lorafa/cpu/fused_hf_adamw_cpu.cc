// Picks the CPU kernel for the instruction set ATen itself uses on this CPU (at::get_cpu_capability,
// which honours ATEN_CPU_CAPABILITY=default|avx2|avx512).
#include <string>

#include <ATen/Version.h>

#include "lorafa/fused_hf_adamw.h"

namespace lorafa::internal {
namespace DEFAULT {
void FusedHfAdamWCpuKernel(const FusedUpdateLists& lists, const HfAdamWCoefficients& coefficients);
}
namespace AVX2 {
void FusedHfAdamWCpuKernel(const FusedUpdateLists& lists, const HfAdamWCoefficients& coefficients);
}
namespace AVX512 {
void FusedHfAdamWCpuKernel(const FusedUpdateLists& lists, const HfAdamWCoefficients& coefficients);
}

void FusedHfAdamWCpu(const FusedUpdateLists& lists, const HfAdamWCoefficients& coefficients) {
  static const std::string capability = at::get_cpu_capability();
  if (capability == "AVX512") return AVX512::FusedHfAdamWCpuKernel(lists, coefficients);
  if (capability == "AVX2") return AVX2::FusedHfAdamWCpuKernel(lists, coefficients);
  DEFAULT::FusedHfAdamWCpuKernel(lists, coefficients);
}

FusedHfAdamWKernel& CudaFusedHfAdamW() {
  static FusedHfAdamWKernel kernel = nullptr;
  return kernel;
}

}  // namespace lorafa::internal
