// Tensors travel between ranks in a few flat buffers rather than one message per tensor: a bucket is
// a run of tensors of one device and dtype, up to a byte cap (a tensor larger than the cap goes alone).
// Every rank forms the same buckets from the same tensor list, then runs the same collectives on them.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

namespace lorafa::distributed {

// DistributedDataParallel's default bucket size.
inline constexpr int64_t kDefaultBucketBytes = int64_t{25} << 20;

// Indices into `tensors`, grouped: one group per device and dtype in order of first appearance, each
// cut into buckets of at most `cap_bytes`. Throws c10::ValueError for cap_bytes ≤ 0.
std::vector<std::vector<size_t>> BucketIndices(const std::vector<at::Tensor>& tensors, int64_t cap_bytes);

// Replaces every tensor with its mean over the group's ranks: per bucket, one flat copy, a sum
// all-reduce, ÷ world size, and the copy back.
void AllReduceMean(c10d::ProcessGroup& group, const std::vector<at::Tensor>& tensors,
                   const std::vector<std::vector<size_t>>& buckets);

// Replaces every tensor with rank `root`'s values: per bucket, one flat copy broadcast from root.
void Broadcast(c10d::ProcessGroup& group, const std::vector<at::Tensor>& tensors,
               const std::vector<std::vector<size_t>>& buckets, int root);

}  // namespace lorafa::distributed
