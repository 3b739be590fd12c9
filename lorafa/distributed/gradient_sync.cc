#include "lorafa/distributed/gradient_sync.h"

#include <utility>

#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

namespace lorafa::distributed {
namespace {

int64_t BytesOf(const std::vector<at::Tensor>& tensors) {
  int64_t bytes = 0;
  for (const at::Tensor& t : tensors) bytes += static_cast<int64_t>(t.numel()) * t.element_size();
  return bytes;
}

}  // namespace

GradientSynchronizer::GradientSynchronizer(c10::intrusive_ptr<c10d::ProcessGroup> group,
                                           const std::vector<LoraPair>& pairs,
                                           const std::vector<at::Tensor>& other_params, int64_t bucket_bytes)
    : group_(std::move(group)), bucket_bytes_(bucket_bytes) {
  TORCH_CHECK_VALUE(group_, "GradientSynchronizer needs a process group, got none");
  ValidatePairs(pairs, other_params);
  for (const LoraPair& pair : pairs) {
    frozen_.push_back(pair.A);
    trained_.push_back(pair.B);
    trained_names_.push_back("B of pair '" + pair.name + "'");
  }
  for (size_t i = 0; i < other_params.size(); ++i) {
    trained_.push_back(other_params[i]);
    trained_names_.push_back("other parameter #" + std::to_string(i) + " (shape " +
                             c10::str(other_params[i].sizes()) + ")");
  }
  buckets_ = BucketIndices(trained_, bucket_bytes_);
  trained_bytes_ = BytesOf(trained_);
  frozen_bytes_ = BytesOf(frozen_);
}

GradientSynchronizer::GradientSynchronizer(c10::intrusive_ptr<c10d::ProcessGroup> group,
                                           const LoraFAOptimizer& optimizer, int64_t bucket_bytes)
    : GradientSynchronizer(std::move(group), optimizer.pairs(), optimizer.other_params(), bucket_bytes) {}

void GradientSynchronizer::BroadcastParameters(const std::vector<at::Tensor>& frozen) {
  c10::NoGradGuard no_grad;  // the copies write leaf tensors that require grad
  std::vector<at::Tensor> all = frozen;
  all.insert(all.end(), frozen_.begin(), frozen_.end());
  all.insert(all.end(), trained_.begin(), trained_.end());
  Broadcast(*group_, all, BucketIndices(all, bucket_bytes_), /*root=*/0);
}

void GradientSynchronizer::AverageGradients() {
  std::vector<at::Tensor> grads;
  grads.reserve(trained_.size());
  for (size_t i = 0; i < trained_.size(); ++i) {
    const at::Tensor& grad = trained_[i].grad();
    TORCH_CHECK_VALUE(grad.defined(), "the ", trained_names_[i], " has no gradient on rank ", group_->getRank(),
                      ": in data-parallel training every rank must produce a gradient for every B and other "
                      "trained parameter");
    TORCH_CHECK_VALUE(!grad.is_sparse(), "the ", trained_names_[i], " has a sparse gradient; only dense ones are "
                      "averaged");
    grads.push_back(grad);
  }
  c10::NoGradGuard no_grad;
  AllReduceMean(*group_, grads, buckets_);
}

std::vector<std::vector<at::Tensor>> GradientSynchronizer::buckets() const {
  std::vector<std::vector<at::Tensor>> tensors;
  for (const auto& bucket : buckets_) {
    tensors.emplace_back();
    for (size_t i : bucket) tensors.back().push_back(trained_[i]);
  }
  return tensors;
}

}  // namespace lorafa::distributed
