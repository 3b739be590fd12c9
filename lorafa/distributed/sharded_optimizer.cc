#include "lorafa/distributed/sharded_optimizer.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <utility>

#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include "lorafa/step.h"

namespace lorafa::distributed {
namespace {

constexpr size_t kNotOwned = std::numeric_limits<size_t>::max();

// What owning a tensor costs a rank: its two moments, and for a pair the r × r projection matrix.
int64_t StateCost(const at::Tensor& trained, int64_t r) {
  return (2 * static_cast<int64_t>(trained.numel()) + r * r) * trained.element_size();
}

}  // namespace

ShardedLoraFAOptimizer::ShardedLoraFAOptimizer(c10::intrusive_ptr<c10d::ProcessGroup> group,
                                               std::vector<LoraPair> pairs, std::vector<at::Tensor> other_params,
                                               LoraFAOptions options, int64_t bucket_bytes)
    : group_(std::move(group)), pairs_(std::move(pairs)), options_(options) {
  TORCH_CHECK_VALUE(group_, "ShardedLoraFAOptimizer needs a process group, got none");
  ValidateOptions(options_);
  ValidatePairs(pairs_, other_params);

  std::vector<int64_t> cost;
  for (const LoraPair& pair : pairs_) {
    trained_.push_back(pair.B);
    cost.push_back(StateCost(pair.B, AsRankRows(pair.A).size(0)));
  }
  for (const at::Tensor& other : other_params) {
    trained_.push_back(other);
    cost.push_back(StateCost(other, 0));
  }
  std::vector<size_t> order(trained_.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&cost](size_t a, size_t b) { return cost[a] > cost[b]; });
  std::vector<int64_t> load(group_->getSize(), 0);
  owner_.assign(trained_.size(), 0);
  for (size_t i : order) {
    const int rank = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    owner_[i] = rank;
    load[rank] += cost[i];
  }

  std::vector<LoraPair> mine;
  std::vector<at::Tensor> my_others;
  local_pair_index_.assign(pairs_.size(), kNotOwned);
  for (size_t i = 0; i < pairs_.size(); ++i) {
    if (owner_[i] != group_->getRank()) continue;
    local_pair_index_[i] = mine.size();
    mine.push_back(pairs_[i]);
  }
  for (size_t i = 0; i < other_params.size(); ++i) {
    if (owner_[pairs_.size() + i] == group_->getRank()) my_others.push_back(other_params[i]);
  }
  if (!mine.empty() || !my_others.empty()) {
    // step() runs the non-finite guard over every gradient before this optimizer sees its share.
    local_ = std::make_unique<LoraFAOptimizer>(std::move(mine), std::move(my_others),
                                               LoraFAOptions(options_).skip_nonfinite(false));
  }
  for (int root = 0; root < group_->getSize(); ++root) {
    owned_by_.emplace_back();
    for (size_t i = 0; i < trained_.size(); ++i) {
      if (owner_[i] == root) owned_by_.back().push_back(trained_[i]);
    }
    owned_buckets_.push_back(BucketIndices(owned_by_.back(), bucket_bytes));
  }
}

void ShardedLoraFAOptimizer::step() {
  c10::NoGradGuard no_grad;
  if (options_.skip_nonfinite()) {
    // The gradients are the same on every rank, so every rank reaches the same decision.
    std::vector<at::Tensor> grads;
    for (const at::Tensor& t : trained_) {
      if (t.grad().defined()) grads.push_back(t.grad());
    }
    if (!GradientsAreFinite(grads)) {
      ++skipped_steps_;
      return;
    }
  }
  if (local_) local_->step();
  for (int root = 0; root < group_->getSize(); ++root) {
    Broadcast(*group_, owned_by_[root], owned_buckets_[root], root);
  }
}

void ShardedLoraFAOptimizer::zero_grad(bool set_to_none) {
  for (at::Tensor& t : trained_) {
    if (!t.mutable_grad().defined()) continue;
    if (set_to_none) {
      t.mutable_grad().reset();
    } else {
      t.mutable_grad().detach_();
      t.mutable_grad().zero_();
    }
  }
}

const LoraFAParamState* ShardedLoraFAOptimizer::pair_state(size_t index) const {
  const size_t local = local_pair_index_.at(index);
  return local == kNotOwned ? nullptr : local_->pair_state(local);
}

}  // namespace lorafa::distributed
