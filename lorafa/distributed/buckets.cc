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

int64_t ThroughFlatBuffer(const std::vector<at::Tensor>& tensors, const std::function<void(at::Tensor&)>& communicate,
                          bool write_back) {
  if (tensors.empty()) return 0;
  at::Tensor flat = torch::utils::flatten_dense_tensors(tensors);
  communicate(flat);
  if (write_back) {
    const std::vector<at::Tensor> pieces = torch::utils::unflatten_dense_tensors(flat, tensors);
    for (size_t i = 0; i < tensors.size(); ++i) {
      at::Tensor target = tensors[i];  // a handle; copy_ writes the tensor's own storage
      target.copy_(pieces[i]);
    }
  }
  return static_cast<int64_t>(flat.nbytes());
}

}  // namespace lorafa::distributed
