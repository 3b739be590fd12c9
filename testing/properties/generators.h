// RapidCheck generators shared by every property: LoRA pair shapes, A with chosen singular values,
// gradient magnitudes, hyperparameters and dtypes. Tensors are made from a generated seed, so a
// counterexample prints as a few small numbers (shape, conditioning, seed) and replays exactly.
//
//   RC_GTEST_PROP(Projection, isFinite, ()) {
//     const PairSpec spec = *genPairSpec();
//     torch::Tensor A = MakeA(spec, torch::kFloat64);
//   }
#pragma once

#include <cstdint>
#include <ostream>
#include <vector>

#include <rapidcheck.h>
#include <torch/types.h>

#include "lorafa/options.h"

namespace lorafa::testing {

// How A's singular values are chosen (A = U·diag(σ)·Vᵀ with random orthonormal U, V).
enum class Conditioning {
  kWell,           // σ ∈ [1, 2]
  kIll,            // σ log-spaced from 1 down to 1e-6 (condition number 1e6)
  kRankDeficient,  // half the σ in [1, 2], the rest exactly 0
  kZero,           // A = 0
  kTiny,           // σ ≈ 1e-5, so A Aᵀ ≈ 1e-10 < δ: where δ = 1e-8 starts to matter
};
void showValue(Conditioning conditioning, std::ostream& os);

struct PairSpec {
  int64_t r = 1, in = 1, out = 1;
  Conditioning conditioning = Conditioning::kWell;
  double scaling = 1.0;     // alpha / r or alpha / √r (rsLoRA), alpha ∈ [1, 64]
  double grad_scale = 1.0;  // gradient magnitude, 10^[-8, 4]
  uint64_t seed = 0;
};
void showValue(const PairSpec& spec, std::ostream& os);

// r ∈ [1, 64], in/out ∈ [1, 256], scaled down with RapidCheck's size so small cases come first.
rc::Gen<PairSpec> genPairSpec();
// Only well-conditioned, full-rank pairs (r ≤ in).
rc::Gen<PairSpec> genWellConditionedPairSpec();
rc::Gen<Conditioning> genConditioning();
// lr ∈ [1e-5, 1e-1], β1 ∈ [0, 0.99], β2 ∈ [0.5, 0.9999], eps ∈ {0} ∪ [1e-10, 1e-4],
// weight decay ∈ {0} ∪ [1e-4, 0.1], correct_bias either way.
rc::Gen<LoraFAOptions> genOptions();
rc::Gen<torch::ScalarType> genDtype();  // float32, float64 or bfloat16

// A (r, in) with the spec's singular values, in `dtype`.
torch::Tensor MakeA(const PairSpec& spec, torch::ScalarType dtype);
// A (rows, cols) matrix of N(0, scale²) entries from `seed`.
torch::Tensor RandomMatrix(int64_t rows, int64_t cols, double scale, uint64_t seed, torch::ScalarType dtype);

}  // namespace lorafa::testing

namespace lorafa {
// How RapidCheck prints generated options (found by argument-dependent lookup).
void showValue(const LoraFAOptions& options, std::ostream& os);
}  // namespace lorafa
