// A checksum of raw bytes that every process computes alike: 64-bit FNV-1a. Written by hand because the
// kept libraries' hashes are salted per process (absl::Hash) or not exported (torch's miniz crc32).
// Used by checkpoints (LoraFAOptimizer's state checksum) and to compare parameters across ranks.
//
//   lorafa::ByteChecksum checksum;
//   for (const at::Tensor& t : tensors) checksum.Add(t);
//   uint64_t value = checksum.value();
#pragma once

#include <cstddef>
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace lorafa {

class ByteChecksum {
 public:
  void Add(const void* data, size_t size) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < size; ++i) hash_ = (hash_ ^ bytes[i]) * 1099511628211ull;
  }
  // The tensor's elements in row-major order, wherever it lives.
  void Add(const at::Tensor& tensor) {
    const at::Tensor bytes = tensor.detach().contiguous().cpu();
    Add(bytes.const_data_ptr(), bytes.nbytes());
  }
  template <typename T>
  void AddValue(const T& value) {
    Add(&value, sizeof value);
  }
  uint64_t value() const { return hash_; }

 private:
  uint64_t hash_ = 14695981039346656037ull;  // FNV-1a's offset basis
};

}  // namespace lorafa
