#include "lorafa/projection.h"

#include <ATen/autocast_mode.h>
#include <ATen/ops/eye.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/linalg_pinv.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/mul.h>
#include <c10/util/Exception.h>

#include "lorafa/python_scalar.h"

namespace lorafa::internal {
namespace {

// torch.autocast(device_type, dtype=bfloat16) as a scope: what PEFT wraps its product in.
class BFloat16Autocast {
 public:
  explicit BFloat16Autocast(c10::DeviceType device_type)
      : device_type_(device_type),
        was_enabled_(at::autocast::is_autocast_enabled(device_type)),
        previous_dtype_(at::autocast::get_autocast_dtype(device_type)) {
    at::autocast::set_autocast_enabled(device_type_, true);
    at::autocast::set_autocast_dtype(device_type_, at::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~BFloat16Autocast() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(device_type_, was_enabled_);
    at::autocast::set_autocast_dtype(device_type_, previous_dtype_);
  }
  BFloat16Autocast(const BFloat16Autocast&) = delete;
  BFloat16Autocast& operator=(const BFloat16Autocast&) = delete;

 private:
  c10::DeviceType device_type_;
  bool was_enabled_;
  at::ScalarType previous_dtype_;
};

// Reduced-precision tensors get their pseudo-inverse and projection in float32: SVD has no bf16/half
// kernels, and the fused kernel computes them in float.
at::ScalarType ComputeDtype(at::ScalarType dtype) { return c10::isReducedFloatingType(dtype) ? at::kFloat : dtype; }

// (A Aᵀ + δI)⁺ / s², in the compute dtype of the gradient.
at::Tensor ExactScaledPinv(const LoraPair& pair, at::ScalarType grad_dtype, double delta) {
  at::Tensor a = AsRankRows(pair.A).to(ComputeDtype(pair.A.scalar_type()));
  at::Tensor gram = at::matmul(a, a.t());
  gram.diagonal().add_(delta);
  return at::linalg_pinv(gram).mul_(1.0 / (pair.scaling * pair.scaling)).to(ComputeDtype(grad_dtype)).contiguous();
}

// PEFT: AA_T = A @ A.T; pinv(AA_T + delta * torch.eye(r).to(A.device)) — eye is float32, so dtype
// promotion decides the result's dtype (float64 stays float64; bf16 A becomes float32).
at::Tensor PeftPinv(const LoraPair& pair, double delta) {
  at::Tensor a = AsRankRows(pair.A);
  at::Tensor aa_t = at::matmul(a, a.t());
  at::Tensor regulariser = at::mul(at::eye(a.size(0), at::kFloat), PythonScalar(delta)).to(a.device());
  return at::linalg_pinv(aa_t + regulariser);
}

}  // namespace

at::Tensor ProjectGradient(const at::Tensor& grad_B, const at::Tensor& matrix, Projection mode, double scaling) {
  // A conv B (out, r, 1, 1) is read as (out, r); a linear B already is.
  const bool is_matrix = grad_B.dim() == 2;
  at::Tensor g = is_matrix ? grad_B : grad_B.reshape({grad_B.size(0), matrix.size(0)});
  at::Tensor projected;
  if (mode == Projection::kExact) {
    projected = at::mm(g.scalar_type() == matrix.scalar_type() ? g : g.to(matrix.scalar_type()), matrix);
  } else {
    BFloat16Autocast autocast(grad_B.device().type());
    // 1/s² as the number operand Python's `* (1 / scaling**2)` passes.
    projected = at::mul(at::matmul(g, matrix), PythonScalar(1.0 / (scaling * scaling)));
  }
  if (projected.scalar_type() != grad_B.scalar_type()) projected = projected.to(grad_B.scalar_type());
  return is_matrix ? projected : projected.view(grad_B.sizes());
}

bool CachedProjection::IsCurrent(const LoraPair& pair, at::ScalarType grad_dtype, Projection mode,
                                 double delta) const {
  return cached_.defined() && source_.data == pair.A.const_data_ptr() && source_.version == pair.A._version() &&
         pair.A.sizes() == c10::IntArrayRef(source_.sizes) && source_.device == pair.A.device() &&
         source_.grad_dtype == grad_dtype && source_.delta == delta && source_.scaling == pair.scaling &&
         source_.mode == mode;
}

const at::Tensor& CachedProjection::Matrix(const LoraPair& pair, at::ScalarType grad_dtype, Projection mode,
                                           double delta) {
  // Checked on every step, so without allocating.
  if (!IsCurrent(pair, grad_dtype, mode, delta)) {
    // A NaN or Inf in A would make every later update of this pair's B NaN, without a word.
    TORCH_CHECK_VALUE(at::isfinite(pair.A).all().item<bool>(), "LoRA pair '", pair.name,
                      "': A holds NaN or Inf, so its pseudo-inverse (A Aᵀ + δI)⁺ cannot be computed");
    cached_ = mode == Projection::kExact ? ExactScaledPinv(pair, grad_dtype, delta) : PeftPinv(pair, delta);
    source_ = {pair.A.const_data_ptr(), pair.A._version(), {pair.A.sizes().begin(), pair.A.sizes().end()},
               pair.A.device(), grad_dtype, delta, pair.scaling, mode};
    ++pinv_computations_;
  }
  return cached_;
}

at::Tensor CachedProjection::Project(const LoraPair& pair, const at::Tensor& grad_B, Projection mode, double delta) {
  return ProjectGradient(grad_B, Matrix(pair, grad_B.scalar_type(), mode, delta), mode, pair.scaling);
}

}  // namespace lorafa::internal
