// Real memory figures for the benchmarks: current and peak bytes held by LibTorch's allocator.
//
// CPU: a counting wrapper around LibTorch's CPU allocator, installed on first use; it counts every
// tensor allocated after that (memory that oneDNN or BLAS take with their own malloc is not seen).
// CUDA: the caching allocator's own statistics (allocated bytes, current and peak).
//
//   MemoryMeter& meter = MemoryMeter::For(device);
//   meter.ResetPeak();
//   ... train one step ...
//   int64_t peak = meter.PeakBytes();
#pragma once

#include <cstdint>

#include <c10/core/Device.h>

namespace lorafa::benchmarks {

class MemoryMeter {
 public:
  virtual ~MemoryMeter() = default;
  // The meter for `device`'s type; the CPU one starts counting the first time it is asked for.
  static MemoryMeter& For(c10::Device device);

  virtual int64_t CurrentBytes() const = 0;
  virtual int64_t PeakBytes() const = 0;
  // From now on the peak is measured from the current level.
  virtual void ResetPeak() = 0;
};

}  // namespace lorafa::benchmarks
