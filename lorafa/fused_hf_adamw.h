// The fused HF-AdamW kernels' common interface: one call updates every listed tensor, reading and
// writing each element once. A LoRA B's update direction is its gradient times the pair's
// projection matrix P = (A Aᵀ + δI)⁺/s², computed row by row inside the kernel (ĝ is never a
// tensor: a few rows at a time in a per-thread L1 buffer, or in registers on CUDA); another
// parameter's is its gradient. Per element, with ĝ the update direction:
//   m ← β1·m + (1−β1)·ĝ;  v ← β2·v + (1−β2)·ĝ·ĝ;  p ← p + (−step_size·m)/(√v + eps);  p ← p + (−lr·wd)·p
// in the operations and order of the per-tensor path (hf_adamw.h), so for float32 and float64, given
// the same ĝ, the result is bit for bit the per-tensor one. bfloat16/half tensors compute in float and
// round once when stored.
#pragma once

#include <vector>

#include <ATen/core/Tensor.h>

namespace lorafa::internal {

// Parallel lists, one entry per tensor to update. All tensors of an entry are contiguous, on one
// device, with one dtype; `projections[i]` is undefined for a parameter without projection, else
// (r × r) for a B of r = numel/size(0) columns, in float for bfloat16/half B, else in B's dtype.
struct FusedUpdateLists {
  std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs, projections;
  std::vector<double> step_sizes;  // HfAdamWStepSize of each entry's step count
};

// The scalars every entry shares.
struct HfAdamWCoefficients {
  double beta1, beta2, eps;
  double decay;  // −lr·wd, applied when weight_decay > 0
  bool has_decay;
};

// CPU: every row of every entry in one at::parallel_for, vectorised with ATen's Vectorized for the
// best instruction set the CPU has (fused_hf_adamw_cpu_kernel.h, compiled once per set).
void FusedHfAdamWCpu(const FusedUpdateLists& lists, const HfAdamWCoefficients& coefficients);

// The CPU kernel's projection alone, ĝ = g (rows × r) · P (r × r) for every entry, with the work units,
// tiles and summation order of FusedHfAdamWCpu, in one parallel_for: into `outs[i]` (g's shape and
// dtype), what the tests compare; or, where `outs[i]` is undefined, into one unit's buffer per thread
// as the step keeps ĝ: the projection part of a step, which the benchmark times against a GEMM.
// Contiguous, non-empty float or double tensors, one dtype for all.
void FusedProjectionCpu(const std::vector<at::Tensor>& grads, const std::vector<at::Tensor>& projections,
                        const std::vector<at::Tensor>& outs);

// CUDA: set by //lorafa/cuda when it is linked; null otherwise (the step then runs per tensor).
using FusedHfAdamWKernel = void (*)(const FusedUpdateLists&, const HfAdamWCoefficients&);
FusedHfAdamWKernel& CudaFusedHfAdamW();

}  // namespace lorafa::internal
