// The LoRA-FA gradient projection of one pair, with its pseudo-inverse cached.
//
// With A frozen, the B-gradient that best reproduces the full-weight gradient G_W (least squares,
// s·ĝ·A ≈ G_W) is ĝ = (1/s²) · g_B · (A Aᵀ + δI)⁺. A does not change between steps, so the r × r
// pseudo-inverse is computed once and kept until A is modified in place, replaced, moved to another
// device or dtype, or δ or the projection mode change.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "lorafa/lora_pair.h"
#include "lorafa/options.h"

namespace lorafa::internal {

class CachedProjection {
 public:
  // ĝ_B for `grad_B` (B's shape and dtype), computed as `mode` says.
  at::Tensor Project(const LoraPair& pair, const at::Tensor& grad_B, Projection mode, double delta);

  // How many times the pseudo-inverse was computed (for tests of the cache).
  int64_t pinv_computations() const { return pinv_computations_; }

 private:
  // What the cached matrix was computed from; any difference means recompute.
  struct Source {
    const void* data = nullptr;
    int64_t version = -1;
    std::vector<int64_t> sizes;
    c10::Device device = c10::kCPU;
    c10::ScalarType grad_dtype = c10::ScalarType::Undefined;
    double delta = 0.0;
    double scaling = 0.0;  // kExact folds 1/s² into the cached matrix
    Projection mode = Projection::kExact;
  };
  bool IsCurrent(const LoraPair& pair, const at::Tensor& grad_B, Projection mode, double delta) const;

  Source source_;
  // kExact: (A Aᵀ + δI)⁺ / s² in the gradient's dtype. kPeftBf16: PEFT's (A Aᵀ + δ·eye)⁺, unscaled.
  at::Tensor cached_;
  at::Tensor inverse_scaling_squared_;  // 1/s² as Python's number operand (kPeftBf16's multiply)
  int64_t pinv_computations_ = 0;
};

}  // namespace lorafa::internal
