// √x for a span of floats or doubles, bit for bit as ATen's sqrt of a tensor computes it.
//
// Where LibTorch is built with MKL (the PyPI x86-64 wheels are), ATen's float and double sqrt is MKL
// VML's vsSqrt/vdSqrt in high-accuracy mode (at::vml in ATen/cpu/vml.h), which is within an ulp but
// not always the correctly rounded IEEE square root (0.65% of random float32 inputs differ). The
// per-tensor HF-AdamW path takes √v from it, so the fused kernel calls the same function, found in
// libtorch_cpu (MKL's headers are not shipped with the wheel, hence the declarations here, weak so
// a LibTorch without MKL still links). Without MKL, ATen uses the IEEE square root, and so do we.
#pragma once

#include <cstdint>
#include <limits>

#include <ATen/cpu/vec/vec.h>

extern "C" {
// MKL's LP64 interface: n as MKL_INT (int), mode as MKL_INT64.
__attribute__((weak)) void vmsSqrt(int n, const float* a, float* r, long long mode);
__attribute__((weak)) void vmdSqrt(int n, const double* a, double* r, long long mode);
}

namespace lorafa::internal {

// ATen's mode: VML_HA | VML_FTZDAZ_OFF | VML_ERRMODE_IGNORE (mkl_vml_defines.h).
inline constexpr long long kAtenVmlMode = 0x00000002 | 0x00140000 | 0x00000100;

template <typename C>
void AtenSqrt(const C* x, C* root, int64_t n) {
  static_assert(std::is_same_v<C, float> || std::is_same_v<C, double>);
  const auto mkl = [] {
    if constexpr (std::is_same_v<C, float>) return &vmsSqrt; else return &vmdSqrt;
  }();
  if (mkl != nullptr && n <= std::numeric_limits<int>::max()) {
    mkl(static_cast<int>(n), x, root, kAtenVmlMode);
    return;
  }
  using Vec = at::vec::Vectorized<C>;
  for (int64_t i = 0; i < n; i += Vec::size()) {
    const int64_t count = std::min<int64_t>(Vec::size(), n - i);
    Vec::loadu(x + i, count).sqrt().store(root + i, count);
  }
}

}  // namespace lorafa::internal
