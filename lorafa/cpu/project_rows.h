// ĝ = g·P for rows of a LoRA B's gradient, on the CPU: out (rows × r) = g (rows × r) · P (r × r).
// Included by fused_hf_adamw_cpu_kernel.h, once per instruction set (CPU_CAPABILITY).
//
// Every element is summed in k order by at::vec::fmadd from zero, whatever the tile: a fused
// multiply-add on AVX2 and AVX-512, a multiply then an add on the DEFAULT set. So a row's result does
// not depend on which rows share its tile, nor on how rows are split between threads.
//
// The register tile is sized per instruction set so that, in the k loop, its accumulators, one row of
// P and the broadcast g all stay in registers, with full-vector loads only and no call: P's last
// partial vector of columns (r not a multiple of the vector width) is a tile of its own, after the
// full columns, whose loads are masked.
#pragma once

#ifndef CPU_CAPABILITY
#error "include through lorafa/cpu/fused_hf_adamw_cpu_kernel.h"
#endif

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include <ATen/cpu/vec/vec.h>

namespace lorafa::internal::CPU_CAPABILITY {
namespace {

#if defined(CPU_CAPABILITY_AVX512)
// 32 zmm registers: 6 × 4 = 24 accumulators, 4 for P's row, 1 for the broadcast g. When r is one or
// two whole vectors (16 or 32 floats), 12 rows × 2: as many accumulators, and a k loop twice as long
// against the tile's fixed cost (zeroing, stores, call). Not with a partial vector: its mask and 12
// row pointers do not fit the general registers.
constexpr int kTileRows = 6;
constexpr int kTileVectors = 4;
constexpr int kNarrowTileRows = 12;
constexpr int kNarrowTileVectors = 2;
#elif defined(CPU_CAPABILITY_AVX2)
// 16 ymm registers: 3 × 4 = 12 accumulators, 3 for P's row (the fourth vector is read by the FMAs
// themselves), 1 for the broadcast g. Each broadcast feeds 4 FMAs: at r = 64 this ran at MKL's AVX2
// sgemm rate where 6 × 2 (each broadcast feeding 2) ran 28% below it. When r is one or two whole
// vectors, 6 × 2: as many accumulators, where a 3-row tile would have only 3 or 6.
constexpr int kTileRows = 3;
constexpr int kTileVectors = 4;
constexpr int kNarrowTileRows = 6;
constexpr int kNarrowTileVectors = 2;
#else
// DEFAULT: a Vectorized is an array of two SSE registers (16 of them): 4 × 1 accumulators, P's row,
// the broadcast.
constexpr int kTileRows = 4;
constexpr int kTileVectors = 1;
constexpr int kNarrowTileRows = kTileRows;
constexpr int kNarrowTileVectors = kTileVectors;
#endif

// The first `count` (< size) lanes at p, the others zero; and their store. ATen's AVX2 loadu/store with
// a count copy through a stack buffer with memcpy, a call that spills every register of the tile; AVX
// has masked loads and stores for this. AVX-512's loadu/store with a count are masked already, and the
// DEFAULT set's vectors are plain arrays.
#if defined(CPU_CAPABILITY_AVX2)
inline __m256i LaneMask32(int64_t count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256i LaneMask64(int64_t count) {
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(count), _mm256_setr_epi64x(0, 1, 2, 3));
}
inline at::vec::Vectorized<float> LoadFirst(const float* p, int64_t count) {
  return _mm256_maskload_ps(p, LaneMask32(count));
}
inline at::vec::Vectorized<double> LoadFirst(const double* p, int64_t count) {
  return _mm256_maskload_pd(p, LaneMask64(count));
}
inline void StoreFirst(float* p, const at::vec::Vectorized<float>& x, int64_t count) {
  _mm256_maskstore_ps(p, LaneMask32(count), x);
}
inline void StoreFirst(double* p, const at::vec::Vectorized<double>& x, int64_t count) {
  _mm256_maskstore_pd(p, LaneMask64(count), x);
}
#else
template <typename C>
at::vec::Vectorized<C> LoadFirst(const C* p, int64_t count) {
  return at::vec::Vectorized<C>::loadu(p, count);
}
template <typename C>
void StoreFirst(C* p, const at::vec::Vectorized<C>& x, int64_t count) {
  x.store(p, count);
}
#endif

// out[i, j + x·W + lane] for kRows rows and kVectors vectors of columns starting at column j. With
// kPartial, the tile is the single last vector of columns, of which `count` are P's.
template <typename C, int kRows, int kVectors, bool kPartial>
void ProjectTile(const C* g, const C* P, int64_t r, int64_t j, int64_t count, C* out) {
  static_assert(!kPartial || kVectors == 1, "a partial tile is one vector wide");
  using Vec = at::vec::Vectorized<C>;
  constexpr int64_t W = Vec::size();
  // Fully unrolled so the accumulators live in registers.
  Vec acc[kRows][kVectors];
#pragma GCC unroll 16
  for (int row = 0; row < kRows; ++row)
#pragma GCC unroll 4
    for (int x = 0; x < kVectors; ++x) acc[row][x] = Vec(C(0));
  for (int64_t k = 0; k < r; ++k) {
    const C* p_row = P + k * r + j;
    Vec pk[kVectors];
    if constexpr (kPartial) {
      pk[0] = LoadFirst(p_row, count);
    } else {
#pragma GCC unroll 4
      for (int x = 0; x < kVectors; ++x) pk[x] = Vec::loadu(p_row + x * W);
    }
#pragma GCC unroll 16
    for (int row = 0; row < kRows; ++row) {
      const Vec gk(g[row * r + k]);
#pragma GCC unroll 4
      for (int x = 0; x < kVectors; ++x) acc[row][x] = at::vec::fmadd(gk, pk[x], acc[row][x]);
    }
  }
  // Stored through copies: a store() of acc itself would take its address and keep it in memory.
#pragma GCC unroll 16
  for (int row = 0; row < kRows; ++row) {
#pragma GCC unroll 4
    for (int x = 0; x < kVectors; ++x) {
      const Vec result = acc[row][x];
      if constexpr (kPartial) {
        StoreFirst(out + row * r + j, result, count);
      } else {
        result.store(out + row * r + j + x * W);
      }
    }
  }
}

// Every column of kRows rows: tiles of kVectors vectors, then the remaining full vectors, then the
// partial vector.
template <typename C, int kRows, int kVectors>
void ProjectRowBlock(const C* g, const C* P, int64_t r, C* out) {
  constexpr int64_t W = at::vec::Vectorized<C>::size();
  const int64_t full_columns = r / W * W;
  int64_t j = 0;
  for (; j + kVectors * W <= full_columns; j += kVectors * W) ProjectTile<C, kRows, kVectors, false>(g, P, r, j, W, out);
  switch ((full_columns - j) / W) {  // the full vectors left, fewer than kVectors
    case 3: if constexpr (kVectors > 3) ProjectTile<C, kRows, 3, false>(g, P, r, j, W, out); break;
    case 2: if constexpr (kVectors > 2) ProjectTile<C, kRows, 2, false>(g, P, r, j, W, out); break;
    case 1: if constexpr (kVectors > 1) ProjectTile<C, kRows, 1, false>(g, P, r, j, W, out); break;
    default: break;
  }
  // ProjectRows gives taller blocks than kTileRows whole vectors only.
  if constexpr (kRows <= kTileRows) {
    if (full_columns < r) ProjectTile<C, kRows, 1, true>(g, P, r, full_columns, r - full_columns, out);
  }
}

// Rows by blocks of kTileRows, then the rows left over, one block of their count.
template <typename C>
void ProjectRowsByTile(const C* g, const C* P, int64_t rows, int64_t r, C* out) {
  int64_t row = 0;
  for (; row + kTileRows <= rows; row += kTileRows)
    ProjectRowBlock<C, kTileRows, kTileVectors>(g + row * r, P, r, out + row * r);
  g += row * r;
  out += row * r;
  switch (rows - row) {
    case 5: if constexpr (kTileRows > 5) ProjectRowBlock<C, 5, kTileVectors>(g, P, r, out); break;
    case 4: if constexpr (kTileRows > 4) ProjectRowBlock<C, 4, kTileVectors>(g, P, r, out); break;
    case 3: ProjectRowBlock<C, 3, kTileVectors>(g, P, r, out); break;
    case 2: ProjectRowBlock<C, 2, kTileVectors>(g, P, r, out); break;
    case 1: ProjectRowBlock<C, 1, kTileVectors>(g, P, r, out); break;
    default: break;
  }
}

// out (rows × r) = g (rows × r) · P (r × r). Where r is at most kNarrowTileVectors whole vectors and
// the set has a taller tile for that, its blocks first; the rows left over by the usual tiles.
template <typename C>
void ProjectRows(const C* g, const C* P, int64_t rows, int64_t r, C* out) {
  constexpr int64_t W = at::vec::Vectorized<C>::size();
  int64_t row = 0;
  if constexpr (kNarrowTileRows != kTileRows) {
    if (r <= kNarrowTileVectors * W && r % W == 0) {
      for (; row + kNarrowTileRows <= rows; row += kNarrowTileRows)
        ProjectRowBlock<C, kNarrowTileRows, kNarrowTileVectors>(g + row * r, P, r, out + row * r);
    }
  }
  ProjectRowsByTile(g + row * r, P, rows - row, r, out + row * r);
}

}  // namespace
}  // namespace lorafa::internal::CPU_CAPABILITY
