// A number operand passed the way Python passes one.
//
// In Python, `t.mul_(0.9)` wraps 0.9 in a 0-dim "wrapped number" tensor, and the kernel multiplies in
// the dtype's opmath type (float for bfloat16). LibTorch's `t.mul_(Scalar)` on a bfloat16 tensor
// instead rounds 0.9 to bfloat16 (0.8984375) first. To compute what PEFT computes, bit for bit,
// every `tensor op number` below goes through this.
//
//   m.mul_(PythonScalar(beta1));  // as Python's exp_avg.mul_(beta1)
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ScalarOps.h>

namespace lorafa::internal {

inline at::Tensor PythonScalar(double value) {
  at::Tensor wrapped = c10::scalar_to_tensor(value);
  wrapped.unsafeGetTensorImpl()->set_wrapped_number(true);
  return wrapped;
}

}  // namespace lorafa::internal
