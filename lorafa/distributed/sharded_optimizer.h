// ZeRO stage 1 for LoRA-FA: optimizer state sharded over the ranks. Each rank owns a subset of the
// pairs and other parameters, keeps only their moments and cached projection matrices, and steps only
// them — through a LoraFAOptimizer over its subset, so the update is LoraFAStep's, unchanged. Then each
// owner broadcasts its updated parameters. Gradients are averaged first, as in plain data parallel
// (GradientSynchronizer), so every rank's parameters equal plain data parallel's bit for bit while its
// state is about 1/world of it.
//
//   ShardedLoraFAOptimizer optimizer(group, paired.pairs, paired.others, options);
//   GradientSynchronizer sync(group, paired.pairs, paired.others);
//   sync.BroadcastParameters();
//   … backward; sync.AverageGradients(); optimizer.step(); optimizer.zero_grad();
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include "lorafa/distributed/buckets.h"
#include "lorafa/lora_pair.h"
#include "lorafa/optimizer.h"
#include "lorafa/options.h"

namespace lorafa::distributed {

class ShardedLoraFAOptimizer {
 public:
  // Validates options and pairs as LoraFAOptimizer does (c10::ValueError naming the bad value) and
  // assigns owners: largest state first, each to the rank that holds the least so far (ties: lowest rank).
  ShardedLoraFAOptimizer(c10::intrusive_ptr<c10d::ProcessGroup> group, std::vector<LoraPair> pairs,
                         std::vector<at::Tensor> other_params, LoraFAOptions options,
                         int64_t bucket_bytes = kDefaultBucketBytes);

  // Steps the parameters this rank owns, then broadcasts every owner's parameters to the other ranks.
  // The gradients must already be identical on every rank (GradientSynchronizer::AverageGradients). With
  // skip_nonfinite, every gradient (not only the owned ones) is checked, so all ranks skip together.
  void step();
  void zero_grad(bool set_to_none = true);

  // The rank that owns pair `index` / other parameter `index`.
  int owner_of_pair(size_t index) const { return owner_.at(index); }
  int owner_of_other(size_t index) const { return owner_.at(pairs_.size() + index); }
  // The state of pair `index` if this rank owns it and it has stepped, else nullptr.
  const LoraFAParamState* pair_state(size_t index) const;
  // Bytes of optimizer state on this rank (moments and cached projections of what it owns).
  int64_t state_bytes() const { return local_ ? local_->state_bytes() : 0; }
  int64_t skipped_steps() const { return skipped_steps_; }

 private:
  c10::intrusive_ptr<c10d::ProcessGroup> group_;
  std::vector<LoraPair> pairs_;
  std::vector<at::Tensor> trained_;  // every B, then every other parameter
  std::vector<int> owner_;           // per entry of trained_
  std::vector<size_t> local_pair_index_;  // pair index → index among this rank's pairs (or npos)
  std::unique_ptr<LoraFAOptimizer> local_;  // null when this rank owns nothing
  std::vector<std::vector<at::Tensor>> owned_by_;                 // per rank: what it owns, in order
  std::vector<std::vector<std::vector<size_t>>> owned_buckets_;  // per rank: their buckets
  LoraFAOptions options_;
  int64_t skipped_steps_ = 0;
};

}  // namespace lorafa::distributed
