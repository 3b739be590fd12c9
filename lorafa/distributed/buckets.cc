#include "lorafa/distributed/buckets.h"

#include <utility>

#include <c10/util/Exception.h>
#include <torch/csrc/utils/tensor_flatten.h>

namespace lorafa::distributed {

std::vector<std::vector<size_t>> BucketIndices(const std::vector<at::Tensor>& tensors, int64_t cap_bytes) {
  TORCH_CHECK_VALUE(cap_bytes > 0, "bucket size ", cap_bytes, " bytes is not positive");
  // Group by (device, dtype) keeping first-appearance order, so every rank forms the same buckets.
  std::vector<std::pair<std::pair<c10::Device, c10::ScalarType>, std::vector<size_t>>> groups;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto key = std::make_pair(tensors[i].device(), tensors[i].scalar_type());
    auto group = groups.begin();
    while (group != groups.end() && group->first != key) ++group;
    if (group == groups.end()) group = groups.insert(groups.end(), {key, {}});
    group->second.push_back(i);
  }
  std::vector<std::vector<size_t>> buckets;
  for (const auto& [key, members] : groups) {
    buckets.emplace_back();  // each device and dtype starts a bucket of its own
    int64_t bytes = 0;
    for (size_t i : members) {
      const int64_t size = static_cast<int64_t>(tensors[i].numel()) * tensors[i].element_size();
      if (!buckets.back().empty() && bytes + size > cap_bytes) {
        buckets.emplace_back();
        bytes = 0;
      }
      buckets.back().push_back(i);
      bytes += size;
    }
  }
  return buckets;
}

namespace {

// Copies the bucket's tensors into one flat buffer, lets `communicate` work on it in place, and copies
// the result back into every tensor unless `write_back` is false.
template <typename Communicate>
void ThroughFlatBuffer(const std::vector<at::Tensor>& tensors, const std::vector<size_t>& bucket,
                       Communicate communicate, bool write_back = true) {
  std::vector<at::Tensor> members;
  members.reserve(bucket.size());
  for (size_t i : bucket) members.push_back(tensors[i]);
  at::Tensor flat = torch::utils::flatten_dense_tensors(members);
  std::vector<at::Tensor> message{flat};
  communicate(message);
  if (!write_back) return;
  const std::vector<at::Tensor> pieces = torch::utils::unflatten_dense_tensors(flat, members);
  for (size_t i = 0; i < members.size(); ++i) members[i].copy_(pieces[i]);  // writes the tensor's own storage
}

}  // namespace

void AllReduceMean(c10d::ProcessGroup& group, const std::vector<at::Tensor>& tensors,
                   const std::vector<std::vector<size_t>>& buckets) {
  for (const auto& bucket : buckets) {
    ThroughFlatBuffer(tensors, bucket, [&group](std::vector<at::Tensor>& message) {
      group.allreduce(message, c10d::AllreduceOptions{})->wait();  // ReduceOp::SUM: Gloo has no AVG
      message.front().div_(group.getSize());
    });
  }
}

void Broadcast(c10d::ProcessGroup& group, const std::vector<at::Tensor>& tensors,
               const std::vector<std::vector<size_t>>& buckets, int root) {
  c10d::BroadcastOptions options;
  options.rootRank = root;
  for (const auto& bucket : buckets) {
    ThroughFlatBuffer(
        tensors, bucket,
        [&group, &options](std::vector<at::Tensor>& message) { group.broadcast(message, options)->wait(); },
        /*write_back=*/group.getRank() != root);
  }
}

}  // namespace lorafa::distributed
