// Data-parallel LoRA-FA: every rank holds the whole model and a shard of the batch. A is frozen, so
// after backward only the gradients of B and of the other trainable parameters are averaged over the
// ranks — half of what LoRA with AdamW (which trains A too) would send. The projection is linear, so
// projecting the averaged g_B equals averaging the projected gradients: with identical gradients,
// every rank then takes the identical step.
//
//   auto optimizer = lorafa::create_lorafa_optimizer(model, options);
//   lorafa::distributed::GradientSynchronizer sync(group, *optimizer);
//   sync.BroadcastParameters(base_weights);  // once: rank 0's A, B, other and base weights everywhere
//   for (...) {
//     optimizer->zero_grad();
//     loss_on_this_ranks_shard.backward();
//     sync.AverageGradients();               // g ← mean over ranks, for every B and other parameter
//     optimizer->step();
//   }
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include "lorafa/distributed/buckets.h"
#include "lorafa/lora_pair.h"
#include "lorafa/optimizer.h"

namespace lorafa::distributed {

class GradientSynchronizer {
 public:
  // The trained tensors are every pair's B and every other parameter; their gradients are bucketed
  // here, once. Throws c10::ValueError for a null group, a bad bucket size, or malformed pairs
  // (ValidatePairs).
  GradientSynchronizer(c10::intrusive_ptr<c10d::ProcessGroup> group, const std::vector<LoraPair>& pairs,
                       const std::vector<at::Tensor>& other_params, int64_t bucket_bytes = kDefaultBucketBytes);
  // The optimizer's pairs and other parameters.
  GradientSynchronizer(c10::intrusive_ptr<c10d::ProcessGroup> group, const LoraFAOptimizer& optimizer,
                       int64_t bucket_bytes = kDefaultBucketBytes);

  // Copies rank 0's A, B and other parameters, and `frozen` (what else every rank must share: the
  // frozen base weights, buffers), to every rank. Call once, before training: it is the only time A is
  // communicated.
  void BroadcastParameters(const std::vector<at::Tensor>& frozen = {});

  // Replaces every rank's gradient of every B and other parameter with the mean over the ranks (one
  // sum all-reduce per bucket, then ÷ world size). Throws c10::ValueError naming the parameter, before
  // communicating, when one has no gradient on this rank: every rank must produce every gradient
  // (the other ranks then wait for this one until the process group's timeout).
  void AverageGradients();

  // Bytes one AverageGradients all-reduces: every B's and other parameter's gradient.
  int64_t bytes_per_step() const { return trained_bytes_; }
  // Bytes LoRA with AdamW would all-reduce for the same model: the above plus every A's gradient.
  int64_t lora_adamw_bytes_per_step() const { return trained_bytes_ + frozen_bytes_; }
  // The tensors whose gradients each bucket carries (never an A).
  std::vector<std::vector<at::Tensor>> buckets() const;

 private:
  c10::intrusive_ptr<c10d::ProcessGroup> group_;
  std::vector<at::Tensor> frozen_;          // every A
  std::vector<at::Tensor> trained_;         // every B, then every other parameter
  std::vector<std::string> trained_names_;  // for messages
  std::vector<std::vector<size_t>> buckets_;
  int64_t bucket_bytes_;
  int64_t trained_bytes_ = 0;
  int64_t frozen_bytes_ = 0;
};

}  // namespace lorafa::distributed
