// The fused HF-AdamW step on the CPU (interface: lorafa/fused_hf_adamw.h). Compiled once per
// instruction set, as ATen compiles its own kernels: each fused_hf_adamw_cpu_<set>.cc defines
// CPU_CAPABILITY and includes this file, so at::vec::Vectorized is that set's vector.
//
// Work is split into units of about kUnitElements elements — a few rows of one B, or a slice of another
// parameter — and all units of all tensors go through one at::parallel_for, so many small tensors keep
// every core busy. Each element's arithmetic depends only on its own row, never on the split: results
// are the same for any thread count.
#pragma once

#ifndef CPU_CAPABILITY
#error "include through lorafa/cpu/fused_hf_adamw_cpu_{default,avx2,avx512}.cc"
#endif

#include <algorithm>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include "lorafa/cpu/aten_sqrt.h"
#include "lorafa/cpu/project_rows.h"
#include "lorafa/fused_hf_adamw.h"

namespace lorafa::internal::CPU_CAPABILITY {
namespace {

using at::vec::Vectorized;

// A unit's ĝ rows and converted spans stay within L1/L2 (16 KiB of float).
constexpr int64_t kUnitElements = 4096;
// The scalars of one entry's update in the compute type C, converted as ATen converts Python's number
// operands and alpha/value arguments (a plain cast).
template <typename C>
struct Constants {
  Constants(const HfAdamWCoefficients& k, double step_size)
      : beta1(static_cast<C>(k.beta1)),
        one_minus_beta1(static_cast<C>(1.0 - k.beta1)),
        beta2(static_cast<C>(k.beta2)),
        one_minus_beta2(static_cast<C>(1.0 - k.beta2)),
        eps(static_cast<C>(k.eps)),
        neg_step_size(static_cast<C>(-step_size)),
        decay(static_cast<C>(k.decay)),
        has_decay(k.has_decay) {}
  Vectorized<C> beta1, one_minus_beta1, beta2, one_minus_beta2, eps, neg_step_size, decay;
  bool has_decay;
};

// m ← β1·m + (1−β1)·g and v ← β2·v + (1−β2)·g·g for `count` elements at offset i (count ≤ W).
template <typename C>
inline void UpdateMoments(const C* g, C* m, C* v, int64_t i, int64_t count, const Constants<C>& k) {
  using Vec = Vectorized<C>;
  const Vec gi = Vec::loadu(g + i, count);
  const Vec mi = at::vec::fmadd(gi, k.one_minus_beta1, Vec::loadu(m + i, count) * k.beta1);  // m.mul_(β1).add_(g, 1−β1)
  const Vec vi = at::vec::fmadd(k.one_minus_beta2 * gi, gi, Vec::loadu(v + i, count) * k.beta2);  // v.mul_(β2).addcmul_(g, g, 1−β2)
  mi.store(m + i, count);
  vi.store(v + i, count);
}

// p ← p + (−step_size·m)/(√v + eps), then the decay, for `count` elements at offset i, √v in root.
template <typename C>
inline void UpdateParameter(C* p, const C* m, const C* root, int64_t i, int64_t count, const Constants<C>& k) {
  using Vec = Vectorized<C>;
  const Vec denom = Vec::loadu(root + i, count) + k.eps;                                   // .add_(eps)
  Vec pi = Vec::loadu(p + i, count) + k.neg_step_size * Vec::loadu(m + i, count) / denom;  // p.addcdiv_(m, denom, −step)
  if (k.has_decay) pi = at::vec::fmadd(pi, k.decay, pi);                                   // p.add_(p, −lr·wd)
  pi.store(p + i, count);
}

// HF-AdamW on n contiguous elements with update direction g, `root` scratch for √v. Each line is one
// ATen call of the per-tensor path (hf_adamw.cc) with the arithmetic of that call's kernel: add_ with
// alpha is vec::fmadd there; addcmul_ (self + value·t1·t2) is compiled into a fused multiply-add of
// (value·t1)·t2 and self; sqrt is MKL's (aten_sqrt.h); mul_, add_ of eps and addcdiv_
// (self + value·t1/t2) round every operation. Full vectors in the loops, the last partial one after.
// Spans of kSpanElements, so that g, m, v, p and √v (20 KiB of float) stay in L1 from the first pass
// to the second.
constexpr int64_t kSpanElements = 1024;
template <typename C>
void UpdateSpan(C* p, const C* g, C* m, C* v, C* root, int64_t n, const Constants<C>& k) {
  constexpr int64_t W = Vectorized<C>::size();
  for (int64_t begin = 0; begin < n; begin += kSpanElements) {
    const int64_t end = std::min(n, begin + kSpanElements), full = begin + (end - begin) / W * W;
    for (int64_t i = begin; i < full; i += W) UpdateMoments(g, m, v, i, W, k);
    if (full < end) UpdateMoments(g, m, v, full, end - full, k);
    AtenSqrt(v + begin, root + begin, end - begin);  // v.sqrt()
    for (int64_t i = begin; i < full; i += W) UpdateParameter(p, m, root, i, W, k);
    if (full < end) UpdateParameter(p, m, root, full, end - full, k);
  }
}

// A unit of work: rows [begin, end) of a projected entry, or elements [begin, end) of another.
struct Unit {
  int64_t entry, begin, end;
};

// Splits `rows` rows of `row_length` elements of entry `entry` into units of about kUnitElements and
// returns a unit's largest element count.
int64_t AppendUnits(int64_t entry, int64_t rows, int64_t row_length, std::vector<Unit>& units) {
  const int64_t rows_per_unit = std::max<int64_t>(1, kUnitElements / row_length);
  for (int64_t begin = 0; begin < rows; begin += rows_per_unit)
    units.push_back({entry, begin, std::min(rows, begin + rows_per_unit)});
  return rows_per_unit * row_length;
}

// What a unit needs of its tensor, read once per step rather than once per unit.
struct Entry {
  void* p;
  const void* g;
  void* m;
  void* v;
  const void* P;  // null for a parameter without projection
  int64_t row_length;  // r for a projected entry, 1 for another parameter
  double step_size;
  at::ScalarType dtype;
};

// Per-thread scratch: ĝ rows, and compute-type copies of bfloat16/half spans.
template <typename C>
struct Scratch {
  explicit Scratch(int64_t elements)
      : ghat(elements), root(elements), g(elements), p(elements), m(elements), v(elements) {}
  std::vector<C> ghat, root, g, p, m, v;
};

// One unit for storage type S with compute type C. For S == C the update works on the tensors in
// place; reduced-precision storage is converted to C, updated, and rounded back once.
template <typename S, typename C>
void RunUnit(const Entry& entry, const HfAdamWCoefficients& coefficients, const Unit& unit, Scratch<C>& scratch) {
  const Constants<C> k(coefficients, entry.step_size);
  const int64_t row_length = entry.row_length;
  const int64_t offset = unit.begin * row_length, n = (unit.end - unit.begin) * row_length;
  S* p = static_cast<S*>(entry.p) + offset;
  const S* g = static_cast<const S*>(entry.g) + offset;
  S* m = static_cast<S*>(entry.m) + offset;
  S* v = static_cast<S*>(entry.v) + offset;
  const C* P = static_cast<const C*>(entry.P);
  const bool projected = P != nullptr;

  if constexpr (std::is_same_v<S, C>) {
    const C* ghat = g;
    if (projected) {
      ProjectRows(g, P, unit.end - unit.begin, row_length, scratch.ghat.data());
      ghat = scratch.ghat.data();
    }
    UpdateSpan(p, ghat, m, v, scratch.root.data(), n, k);
  } else {
    // bfloat16/half: widened element by element (exact), the spans are small and in cache.
    for (int64_t i = 0; i < n; ++i) {
      scratch.g[i] = static_cast<C>(g[i]);
      scratch.p[i] = static_cast<C>(p[i]);
      scratch.m[i] = static_cast<C>(m[i]);
      scratch.v[i] = static_cast<C>(v[i]);
    }
    const C* ghat = scratch.g.data();
    if (projected) {
      ProjectRows(scratch.g.data(), P, unit.end - unit.begin, row_length, scratch.ghat.data());
      ghat = scratch.ghat.data();
    }
    UpdateSpan(scratch.p.data(), ghat, scratch.m.data(), scratch.v.data(), scratch.root.data(), n, k);
    for (int64_t i = 0; i < n; ++i) {
      p[i] = static_cast<S>(scratch.p[i]);
      m[i] = static_cast<S>(scratch.m[i]);
      v[i] = static_cast<S>(scratch.v[i]);
    }
  }
}

// This thread's scratch for compute type C, made on first use.
struct ThreadScratch {
  int64_t elements;
  std::unique_ptr<Scratch<float>> for_float;
  std::unique_ptr<Scratch<double>> for_double;

  template <typename C>
  Scratch<C>& Get() {
    auto& slot = [this]() -> std::unique_ptr<Scratch<C>>& {
      if constexpr (std::is_same_v<C, double>) return for_double; else return for_float;
    }();
    if (!slot) slot = std::make_unique<Scratch<C>>(elements);
    return *slot;
  }
};

}  // namespace

void FusedHfAdamWCpuKernel(const FusedUpdateLists& lists, const HfAdamWCoefficients& coefficients) {
  std::vector<Entry> entries;
  std::vector<Unit> units;
  int64_t largest_unit = 1;
  for (size_t e = 0; e < lists.params.size(); ++e) {
    const at::Tensor& param = lists.params[e];
    if (param.numel() == 0) continue;
    const at::Tensor& projection = lists.projections[e];
    const int64_t rows = projection.defined() ? param.size(0) : param.numel();
    const int64_t row_length = param.numel() / rows;
    TORCH_CHECK(!projection.defined() ||
                    (projection.scalar_type() == at::toOpMathType(param.scalar_type()) && projection.is_contiguous() &&
                     projection.sizes() == at::IntArrayRef({row_length, row_length})),
                "FusedHfAdamWCpu: projection ", projection.sizes(), " of dtype ", projection.scalar_type(),
                " for a parameter ", param.sizes(), " of dtype ", param.scalar_type());
    entries.push_back({param.data_ptr(), lists.grads[e].const_data_ptr(), lists.exp_avgs[e].data_ptr(),
                       lists.exp_avg_sqs[e].data_ptr(), projection.defined() ? projection.const_data_ptr() : nullptr,
                       row_length, lists.step_sizes[e], param.scalar_type()});
    largest_unit =
        std::max(largest_unit, AppendUnits(static_cast<int64_t>(entries.size() - 1), rows, row_length, units));
  }
  at::parallel_for(0, static_cast<int64_t>(units.size()), 1, [&](int64_t first, int64_t last) {
    ThreadScratch scratch{largest_unit, nullptr, nullptr};
    for (int64_t u = first; u < last; ++u) {
      const Unit& unit = units[static_cast<size_t>(u)];
      const Entry& entry = entries[static_cast<size_t>(unit.entry)];
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, entry.dtype, "FusedHfAdamWCpu", [&] {
        using C = at::opmath_type<scalar_t>;
        RunUnit<scalar_t, C>(entry, coefficients, unit, scratch.Get<C>());
      });
    }
  });
}

void FusedProjectionCpuKernel(const std::vector<at::Tensor>& grads, const std::vector<at::Tensor>& projections,
                              const std::vector<at::Tensor>& outs) {
  // The step's units over every entry, in one parallel_for, as FusedHfAdamWCpuKernel runs them.
  std::vector<Unit> units;
  int64_t largest_unit = 1;
  for (size_t e = 0; e < grads.size(); ++e) {
    largest_unit =
        std::max(largest_unit, AppendUnits(static_cast<int64_t>(e), grads[e].size(0), grads[e].size(1), units));
  }
  AT_DISPATCH_FLOATING_TYPES(grads.front().scalar_type(), "FusedProjectionCpu", [&] {
    at::parallel_for(0, static_cast<int64_t>(units.size()), 1, [&](int64_t first, int64_t last) {
      // Without a result tensor, each unit's rows go to one unit's buffer, as the step's ĝ does.
      std::vector<scalar_t> unit_buffer(largest_unit);
      for (int64_t u = first; u < last; ++u) {
        const Unit& unit = units[static_cast<size_t>(u)];
        const at::Tensor& grad = grads[static_cast<size_t>(unit.entry)];
        const at::Tensor& out = outs[static_cast<size_t>(unit.entry)];
        const int64_t r = grad.size(1);
        scalar_t* result = out.defined() ? out.data_ptr<scalar_t>() + unit.begin * r : unit_buffer.data();
        ProjectRows(grad.const_data_ptr<scalar_t>() + unit.begin * r,
                    projections[static_cast<size_t>(unit.entry)].const_data_ptr<scalar_t>(), unit.end - unit.begin,
                    r, result);
      }
    });
  });
}

}  // namespace lorafa::internal::CPU_CAPABILITY
