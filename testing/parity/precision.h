// Shared arithmetic of the parity scenarios: dtype names, unit roundoff, the derived bound on how far
// two correct float implementations of LoRA-FA can drift apart, and the result of a comparison.
#pragma once

#include <string>

#include <torch/types.h>

#include "lorafa/options.h"
#include "testing/parity/comparison.h"
#include "testing/parity/scenario.h"

namespace lorafa::parity {

std::string DtypeName(torch::ScalarType dtype);

// u = 2^-(significand bits): 2^-24 for float32, 2^-8 for bfloat16, 2^-53 for float64.
double UnitRoundoff(torch::ScalarType dtype);

// Elementwise bound on |lorafa − other| for a parameter after `steps` HF-AdamW steps whose directions
// differ only by rounding. Per step, in units u of the dtype: the projection's relative error is
// ≤ (r + 10κ)·u < 128u for the well-conditioned A used here, Adam's m/√v doubles a relative error and
// one update moves a coordinate by at most (1−β1)/√(1−β2)·lr < 4·lr for the betas the bound-target
// scenarios use, (0.9, 0.999) → 1024u·lr; the parameter's own update rounds ≤ 8
// times → 8u·|p|. Both sides carry such an error, so twice that, accumulated over the steps.
torch::Tensor UpdateBound(const torch::Tensor& parameter, const LoraFAOptions& options, int steps);

// UpdateBound when both sides form the projected gradient ĝ in bfloat16 but perhaps with different GEMM
// kernels (on a GPU each side's matmul may get its own cuBLAS kernel): both sum exact bf16 products in
// float32 and round once to bfloat16, so their ĝ differ by at most one bfloat16 rounding each, 2·2^-8
// relative. Adam's m/√v doubles that and an update moves a coordinate by < 4·lr: ≤ 16·2^-8·lr per
// step on top of UpdateBound's terms, accumulated over the steps.
torch::Tensor Bfloat16ProductUpdateBound(const torch::Tensor& parameter, const LoraFAOptions& options, int steps);

ScenarioResult ResultOf(const Comparison& comparison, const std::string& dtype, int steps);

}  // namespace lorafa::parity
