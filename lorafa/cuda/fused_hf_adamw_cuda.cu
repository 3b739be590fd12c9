// The fused HF-AdamW step on CUDA (interface: lorafa/fused_hf_adamw.h), on torch's multi-tensor apply:
// one launch covers up to 30 pairs (or 36 other parameters) of one dtype and rank, each block one
// 65536-element chunk of one tensor. Per element of B: ĝ = Σ_k g[row, k]·P[k, col] in k order with
// fused multiply-adds from zero (the CPU kernel's order, so both give the same ĝ), P in shared memory
// for r ≤ 64, then the update of m, v and B — each element read and written once.
//
// The update is written as ATen's CUDA kernels compute the per-tensor path (hf_adamw.cc): nvcc
// contracts add_'s self + alpha·other into a fused multiply-add there, written out here as fma;
// addcmul_ and addcdiv_ are ATen's own pointwise_op_impl, called here as there: fma(value, t1·t2 or
// t1/t2, self) with the product or quotient rounded first (for a value of 1, fma(t1, t2, self) and
// self + t1/t2); mul_, sqrt (IEEE on CUDA) and add_ of eps round each operation.
#include <functional>
#include <map>
#include <tuple>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/native/cuda/DeviceAddCmulCdiv.cuh>
#include <ATen/native/cuda/MultiTensorApply.cuh>
#include <c10/cuda/CUDAGuard.h>

#include "lorafa/fused_hf_adamw.h"

namespace lorafa::internal {
namespace {

using at::native::TensorListScalarListMetadata;

// P in shared memory up to this rank (64² floats = 16 KiB, doubles 32 KiB: within the static 48 KiB).
constexpr int64_t kMaxSharedRank = 64;

template <typename C>
struct Coefficients {
  C beta1, one_minus_beta1, beta2, one_minus_beta2, eps, decay;
  bool has_decay;
};

template <typename C>
Coefficients<C> CoefficientsFor(const HfAdamWCoefficients& k) {
  return {static_cast<C>(k.beta1), static_cast<C>(1.0 - k.beta1), static_cast<C>(k.beta2), static_cast<C>(1.0 - k.beta2),
          static_cast<C>(k.eps),   static_cast<C>(k.decay),       k.has_decay};
}

template <typename T, typename C>
__device__ __forceinline__ void UpdateElement(T& p, C ghat, T& m, T& v, C neg_step_size, const Coefficients<C>& k) {
  using at::native::pointwise_op_impl;
  const C mi = fma(k.one_minus_beta1, ghat, static_cast<C>(m) * k.beta1);  // m.mul_(β1).add_(g, 1−β1)
  const C vi = pointwise_op_impl<C>(static_cast<C>(v) * k.beta2, ghat, ghat, k.one_minus_beta2,
                                    std::multiplies<C>());                 // v.mul_(β2).addcmul_(g, g, 1−β2)
  const C denom = sqrt(vi) + k.eps;                                        // v.sqrt().add_(eps)
  C pi = pointwise_op_impl<C>(static_cast<C>(p), mi, denom, neg_step_size,
                              std::divides<C>());                          // p.addcdiv_(m, denom, −step)
  if (k.has_decay) pi = fma(k.decay, pi, pi);                              // p.add_(p, −lr·wd)
  m = static_cast<T>(mi);
  v = static_cast<T>(vi);
  p = static_cast<T>(pi);
}

// This block's chunk [begin, end) of its tensor, and the tensor's param, grad, exp_avg, exp_avg_sq
// (lists 0–3 of every launch) and −step_size (the tensor's scalar).
template <typename T, int depth>
struct Chunk {
  using opmath_t = at::opmath_type<T>;
  __device__ __forceinline__ Chunk(int chunk_size, TensorListScalarListMetadata<opmath_t, depth>& tl)
      : tensor(tl.block_to_tensor[blockIdx.x]),
        begin(static_cast<int64_t>(tl.block_to_chunk[blockIdx.x]) * chunk_size),
        end(min(tl.numel_for_tensor[tensor], begin + chunk_size)),
        p(static_cast<T*>(const_cast<void*>(tl.addresses[0][tensor]))),
        g(static_cast<const T*>(tl.addresses[1][tensor])),
        m(static_cast<T*>(const_cast<void*>(tl.addresses[2][tensor]))),
        v(static_cast<T*>(const_cast<void*>(tl.addresses[3][tensor]))),
        neg_step_size(-tl.scalar_vals[tensor]) {}
  int tensor;
  int64_t begin, end;
  T* p;
  const T* g;
  T *m, *v;
  opmath_t neg_step_size;
};

// Lists: param, grad, exp_avg, exp_avg_sq; the scalar of each tensor is its step size.
template <typename T>
struct UpdateFunctor {
  using opmath_t = at::opmath_type<T>;
  __device__ __forceinline__ void operator()(int chunk_size, TensorListScalarListMetadata<opmath_t, 4>& tl,
                                             Coefficients<opmath_t> k) {
    const Chunk<T, 4> c(chunk_size, tl);
    for (int64_t i = c.begin + threadIdx.x; i < c.end; i += blockDim.x) {
      UpdateElement(c.p[i], static_cast<opmath_t>(c.g[i]), c.m[i], c.v[i], c.neg_step_size, k);
    }
  }
};

// Lists: B, grad_B, exp_avg, exp_avg_sq and the pair's P (r × r, opmath); every B of a launch has rank r.
template <typename T>
struct ProjectedUpdateFunctor {
  using opmath_t = at::opmath_type<T>;
  __device__ __forceinline__ void operator()(int chunk_size, TensorListScalarListMetadata<opmath_t, 5>& tl, int64_t r,
                                             Coefficients<opmath_t> k) {
    const Chunk<T, 5> c(chunk_size, tl);
    const opmath_t* P = static_cast<const opmath_t*>(tl.addresses[4][c.tensor]);

    __shared__ opmath_t shared_P[kMaxSharedRank * kMaxSharedRank];
    const bool in_shared = r <= kMaxSharedRank;  // the same for the whole block
    if (in_shared) {
      for (int64_t i = threadIdx.x; i < r * r; i += blockDim.x) shared_P[i] = P[i];
      __syncthreads();
      P = shared_P;
    }
    // Consecutive threads take consecutive columns of a row: g[row, k] is one broadcast load per warp,
    // P[k, col] consecutive addresses.
    for (int64_t i = c.begin + threadIdx.x; i < c.end; i += blockDim.x) {
      const int64_t row = i / r, col = i - row * r;
      const T* g_row = c.g + row * r;
      opmath_t ghat = 0;
      for (int64_t j = 0; j < r; ++j) ghat = fma(static_cast<opmath_t>(g_row[j]), P[j * r + col], ghat);
      UpdateElement(c.p[i], ghat, c.m[i], c.v[i], c.neg_step_size, k);
    }
  }
};

void FusedHfAdamWCuda(const FusedUpdateLists& lists, const HfAdamWCoefficients& coefficients) {
  // One multi-tensor launch series per (device, dtype, rank); rank 0 for parameters without projection.
  struct Group {
    std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs, projections;
    std::vector<c10::Scalar> step_sizes;
  };
  std::map<std::tuple<int, int, int64_t>, Group> groups;
  for (size_t e = 0; e < lists.params.size(); ++e) {
    const at::Tensor& param = lists.params[e];
    if (param.numel() == 0) continue;
    const bool projected = lists.projections[e].defined();
    const int64_t r = projected ? param.numel() / param.size(0) : 0;
    Group& group = groups[{param.get_device(), static_cast<int>(param.scalar_type()), r}];
    group.params.push_back(param);
    group.grads.push_back(lists.grads[e]);
    group.exp_avgs.push_back(lists.exp_avgs[e]);
    group.exp_avg_sqs.push_back(lists.exp_avg_sqs[e]);
    if (projected) group.projections.push_back(lists.projections[e]);
    group.step_sizes.emplace_back(lists.step_sizes[e]);
  }
  for (auto& entry : groups) {
    Group& group = entry.second;
    const int64_t r = std::get<2>(entry.first);
    const c10::cuda::CUDAGuard device_guard(group.params.front().device());
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, group.params.front().scalar_type(), "FusedHfAdamWCuda", [&] {
      using C = at::opmath_type<scalar_t>;
      const Coefficients<C> k = CoefficientsFor<C>(coefficients);
      if (r == 0) {
        std::vector<std::vector<at::Tensor>> tensor_lists{group.params, group.grads, group.exp_avgs, group.exp_avg_sqs};
        at::native::multi_tensor_apply<4, C>(tensor_lists, group.step_sizes, UpdateFunctor<scalar_t>(), k);
      } else {
        std::vector<std::vector<at::Tensor>> tensor_lists{group.params, group.grads, group.exp_avgs, group.exp_avg_sqs,
                                                          group.projections};
        at::native::multi_tensor_apply<5, C>(tensor_lists, group.step_sizes, ProjectedUpdateFunctor<scalar_t>(), r, k);
      }
    });
  }
}

// Linking //lorafa/cuda (alwayslink) makes LoraFAStep send CUDA tensors here.
const bool kRegistered = [] {
  CudaFusedHfAdamW() = &FusedHfAdamWCuda;
  return true;
}();

}  // namespace
}  // namespace lorafa::internal
