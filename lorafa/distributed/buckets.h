// Tensors travel between ranks in a few flat buffers rather than one message per tensor: a bucket is
// a run of tensors of one device and dtype, up to a byte cap (a tensor larger than the cap goes alone).
// Every rank forms the same buckets from the same tensor list.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <ATen/core/Tensor.h>

namespace lorafa::distributed {

// DistributedDataParallel's default bucket size.
inline constexpr int64_t kDefaultBucketBytes = int64_t{25} << 20;

// Indices into `tensors`, grouped: one group per device and dtype in order of first appearance, each
// cut into buckets of at most `cap_bytes`. Throws c10::ValueError for cap_bytes ≤ 0.
std::vector<std::vector<size_t>> BucketIndices(const std::vector<at::Tensor>& tensors, int64_t cap_bytes);

// Copies `tensors` (one device and dtype) into one flat buffer, lets `communicate` work on it in place,
// and copies the result back into every tensor unless `write_back` is false. Returns the buffer's bytes.
int64_t ThroughFlatBuffer(const std::vector<at::Tensor>& tensors, const std::function<void(at::Tensor&)>& communicate,
                          bool write_back = true);

}  // namespace lorafa::distributed
