// LoraFAOptimizer: LoRA-FA for LibTorch. A stays frozen; B's gradient is projected onto the one that
// best reproduces the full-weight gradient, ĝ_B = (1/s²) · g_B · (A Aᵀ + δI)⁺, and B takes an HF-style
// AdamW step with it. Every other parameter takes a plain HF-style AdamW step.
//
//   std::vector<lorafa::LoraPair> pairs = {{"q_proj.default", A, B, /*scaling=*/2.0}};
//   lorafa::LoraFAOptimizer optimizer(pairs, /*other_params=*/{}, lorafa::LoraFAOptions(1e-4));
//   loss.backward();
//   optimizer.step();
//   optimizer.zero_grad();
//
// Usually built by create_lorafa_optimizer (lorafa/create.h) from a whole module.
//
// Where it deliberately differs from PEFT's LoraFAOptimizer:
//   - pairs are given explicitly (create_lorafa_optimizer pairs by module path and adapter name), not
//     formed from the order in which parameters named "lora" arrive;
//   - a B whose gradient is undefined is skipped (PEFT raises); A's gradient, if any, is ignored;
//   - (A Aᵀ + δI)⁺ is cached per pair and recomputed only when A changes (PEFT recomputes every step);
//   - the default projection (kExact) runs in the parameters' dtype; PEFT's bf16 autocast is opt-in
//     (Projection::kPeftBf16);
//   - state lives with the B tensor: save/load round-trips, and state follows B to another device or
//     dtype on the next step;
//   - a conv A (r, in, kh, kw) is read as (r, in·kh·kw);
//   - weight_decay < 0 is rejected.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include <torch/optim/optimizer.h>

#include "lorafa/lora_pair.h"
#include "lorafa/options.h"
#include "lorafa/param_state.h"
#include "lorafa/projection.h"

namespace lorafa {

class LoraFAOptimizer : public torch::optim::Optimizer {
 public:
  // Validates everything first (options, pair shapes, devices, dtypes, scaling, no tensor in two
  // roles) and throws c10::ValueError naming the bad value; no tensor is modified. The optimizer has
  // one parameter group: every B, then every other parameter.
  LoraFAOptimizer(std::vector<LoraPair> pairs, std::vector<torch::Tensor> other_params,
                  LoraFAOptions options = {});

  // Calls `closure` (with grad enabled) if given, then updates every B and other parameter that has a
  // gradient. Returns the closure's loss, or an undefined tensor.
  torch::Tensor step(LossClosure closure = nullptr) override;

  // torch::serialize format: the parameter groups' options and each parameter's state, by position,
  // with the checkpoint format version (kCheckpointFormat), the lorafa version that wrote it, the
  // skipped-step count and a checksum of the options and state (torch's archive checks no contents).
  void save(torch::serialize::OutputArchive& archive) const override;
  // Reads an archive written by save() for an optimizer with the same parameters. Throws and leaves
  // this optimizer unchanged if the archive does not fit (missing keys, shapes, invalid options, a
  // format version this lorafa does not read — named with the version that wrote it) or its contents
  // do not match their checksum.
  void load(torch::serialize::InputArchive& archive) override;

  // Steps skipped by LoraFAOptions::skip_nonfinite since construction (or as loaded).
  int64_t skipped_steps() const { return skipped_steps_; }

  const std::vector<LoraPair>& pairs() const { return pairs_; }
  // Every parameter of every group that is not a pair's B, in order: the plain HF-AdamW ones.
  std::vector<torch::Tensor> other_params() const;
  // Bytes of optimizer state this optimizer holds: every moment and every cached projection matrix.
  int64_t state_bytes() const;
  // The pair state of pair `index`, or nullptr before its first step.
  const LoraFAParamState* pair_state(size_t index) const;
  // How often pair `index` computed its pseudo-inverse so far.
  int64_t pinv_computations(size_t index) const { return projections_.at(index).pinv_computations(); }

 private:
  struct CopyStructureTag {};
  // An optimizer over the same tensors and options as `other`, with empty state (for load()).
  LoraFAOptimizer(CopyStructureTag, const LoraFAOptimizer& other);

  // The state of `param`, created as zeros on first use and moved to param's device and dtype.
  LoraFAParamState& StateFor(const torch::Tensor& param);
  void ValidateLoadedState() const;
  // ByteChecksum over every group's options and every state's step and moment bytes, in parameter order.
  uint64_t StateChecksum() const;

  std::vector<LoraPair> pairs_;
  std::vector<internal::CachedProjection> projections_;
  std::unordered_map<const c10::TensorImpl*, size_t> pair_index_of_B_;
  int64_t skipped_steps_ = 0;
};

// The layout save() writes. Archives without a version are format 0: the same layout, before the
// version, the skipped-step count and the checksum were written.
inline constexpr int64_t kCheckpointFormat = 1;

}  // namespace lorafa
