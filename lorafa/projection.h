// The LoRA-FA gradient projection of one pair, with its matrix cached.
//
// With A frozen, the B-gradient that best reproduces the full-weight gradient G_W (least squares,
// s·ĝ·A ≈ G_W) is ĝ = (1/s²) · g_B · (A Aᵀ + δI)⁺. A does not change between steps, so the r × r
// pseudo-inverse is computed once and kept until A is modified in place, replaced, moved to another
// device or dtype, or δ, s or the projection mode change.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/util/SmallVector.h>

#include "lorafa/lora_pair.h"
#include "lorafa/options.h"

namespace lorafa::internal {

// ĝ for `grad_B` (B's shape and dtype) with a pair's cached `matrix`, computed per tensor as `mode`
// says: kExact one mm with (A Aᵀ + δI)⁺/s² in the matrix's dtype; kPeftBf16 PEFT's product and 1/s²
// under bfloat16 autocast. The fused kernel computes kExact's product itself (fused_hf_adamw.h).
at::Tensor ProjectGradient(const at::Tensor& grad_B, const at::Tensor& matrix, Projection mode, double scaling);

class CachedProjection {
 public:
  // The pair's matrix for gradients of `grad_dtype`, recomputed only when its source changed.
  // kExact: (A Aᵀ + δI)⁺/s², contiguous, in float for bfloat16/half gradients, else in their dtype.
  // kPeftBf16: PEFT's (A Aᵀ + δ·eye)⁺, unscaled.
  const at::Tensor& Matrix(const LoraPair& pair, at::ScalarType grad_dtype, Projection mode, double delta);

  // ĝ_B for `grad_B`: ProjectGradient with this pair's matrix.
  at::Tensor Project(const LoraPair& pair, const at::Tensor& grad_B, Projection mode, double delta);

  // How many times the pseudo-inverse was computed (for tests of the cache).
  int64_t pinv_computations() const { return pinv_computations_; }
  // Bytes of the cached matrix (0 before the first step).
  int64_t cached_bytes() const { return cached_.defined() ? static_cast<int64_t>(cached_.nbytes()) : 0; }

 private:
  // What the cached matrix was computed from; any difference means recompute.
  struct Source {
    const void* data = nullptr;
    int64_t version = -1;
    c10::SmallVector<int64_t, 2> sizes;  // A is r × n: held inline, so a check reads no other allocation
    c10::Device device = c10::kCPU;
    c10::ScalarType grad_dtype = c10::ScalarType::Undefined;
    double delta = 0.0;
    double scaling = 0.0;  // kExact folds 1/s² into the cached matrix
    Projection mode = Projection::kExact;
  };
  bool IsCurrent(const LoraPair& pair, at::ScalarType grad_dtype, Projection mode, double delta) const;

  Source source_;
  at::Tensor cached_;
  int64_t pinv_computations_ = 0;
};

}  // namespace lorafa::internal
