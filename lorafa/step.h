// The LoRA-FA step as one function over lists of tensors: the single place that decides how each
// tensor is updated. LoraFAOptimizer owns the state and the cached projections and calls it; any other
// front end (Python, data parallel) hands it its own lists.
//
//   lorafa::LoraFAStepLists lists;           // B, grad_B, moments, projection matrix, step count …
//   lorafa::LoraFAStep(lists, options);      // updates every listed tensor in place
//
// kExact runs the fused kernel on CPU (and on CUDA when //lorafa/cuda is linked): per row of B,
// ĝ = g·P and the HF-AdamW update of that row in one pass. kPeftBf16 computes ĝ as PEFT does (bf16
// autocast GEMM) and then runs the update fused only where that is bit for bit PEFT's (float32 and
// float64); bfloat16/half tensors take PEFT's per-tensor operations. Entries the kernels cannot take
// (non-contiguous tensors, another device) take the per-tensor path, which is also the oracle the
// kernels are tested against (StepKernel::kPerTensor).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "lorafa/options.h"

namespace lorafa {

struct LoraFAStepLists {
  // One entry per LoRA pair whose B has a gradient. `projection` is the pair's cached matrix
  // (internal::CachedProjection::Matrix): (A Aᵀ + δI)⁺/s² for kExact, PEFT's unscaled pinv for kPeftBf16.
  std::vector<at::Tensor> B, grad_B, exp_avg_B, exp_avg_sq_B, projection;
  std::vector<double> scaling;
  std::vector<int64_t> step_B;  // each B's step count, this step included
  // One entry per other parameter with a gradient.
  std::vector<at::Tensor> params, grads, exp_avg, exp_avg_sq;
  std::vector<int64_t> step;
};

enum class StepKernel {
  kFused,      // the fused kernels wherever they apply (the default)
  kPerTensor,  // ATen operations tensor by tensor: PEFT's sequence, the tests' oracle
};

// Updates every B and other parameter in the lists, and their moments, in place. Throws
// c10::ValueError before changing anything if the lists' lengths disagree.
void LoraFAStep(const LoraFAStepLists& lists, const LoraFAOptions& options, StepKernel kernel = StepKernel::kFused);

// The guard of LoraFAOptions::skip_nonfinite: true when no gradient holds NaN or Inf. A front end
// calls it on every gradient of the step (raw g_B, not ĝ) before it touches any state, and skips the
// step when it is false. One read of every gradient (lorafa/gradients_are_finite.cc).
bool GradientsAreFinite(const std::vector<at::Tensor>& grads);

}  // namespace lorafa
