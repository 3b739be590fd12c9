#include "benchmarks/memory_meter.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include <ATen/Context.h>
#include <ATen/DeviceAccelerator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/CachingDeviceAllocator.h>

namespace lorafa::benchmarks {
namespace {

// Written by hand: LibTorch's CPU allocator keeps no statistics when its profiler is off, and no
// library here wraps it. Kernels require "simple" data pointers (context == data), so the size and the
// wrapped allocator's deleter of each block are kept in a table keyed by its address.
class CountingCpuAllocator final : public c10::Allocator, public MemoryMeter {
 public:
  explicit CountingCpuAllocator(c10::Allocator* wrapped) : wrapped_(wrapped) { instance_ = this; }

  c10::DataPtr allocate(size_t bytes) override {
    c10::DataPtr inner = wrapped_->allocate(bytes);
    void* data = inner.get();
    TORCH_INTERNAL_ASSERT(data == inner.get_context(), "CountingCpuAllocator wraps only simple allocators");
    c10::DeleterFnPtr deleter = inner.get_deleter();
    inner.release_context();  // ownership moves to the table entry
    {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks_[data] = {bytes, deleter};
    }
    const int64_t now = current_.fetch_add(static_cast<int64_t>(bytes)) + static_cast<int64_t>(bytes);
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return {data, data, &Release, c10::Device(c10::kCPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &Release; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }

  int64_t CurrentBytes() const override { return current_.load(); }
  int64_t PeakBytes() const override { return peak_.load(); }
  void ResetPeak() override { peak_.store(current_.load()); }

 private:
  struct Block {
    size_t bytes;
    c10::DeleterFnPtr deleter;
  };
  static void Release(void* data) {
    if (data == nullptr) return;
    Block block;
    {
      std::lock_guard<std::mutex> lock(instance_->mutex_);
      auto it = instance_->blocks_.find(data);
      block = it->second;
      instance_->blocks_.erase(it);
    }
    instance_->current_.fetch_sub(static_cast<int64_t>(block.bytes));
    if (block.deleter) block.deleter(data);
  }

  static CountingCpuAllocator* instance_;
  c10::Allocator* wrapped_;
  std::mutex mutex_;
  std::unordered_map<void*, Block> blocks_;
  std::atomic<int64_t> current_{0};
  std::atomic<int64_t> peak_{0};
};

CountingCpuAllocator* CountingCpuAllocator::instance_ = nullptr;

class CudaMeter final : public MemoryMeter {
 public:
  // The caching allocator has no per-device statistics until CUDA's lazy initialization, and asking for
  // them before it throws ("did you call init?"); a meter made before the first CUDA tensor starts it.
  CudaMeter() { at::globalContext().lazyInitDevice(c10::DeviceType::CUDA); }
  int64_t CurrentBytes() const override { return Stat().current; }
  int64_t PeakBytes() const override { return Stat().peak; }
  void ResetPeak() override { at::accelerator::resetPeakStats(at::accelerator::getDeviceIndex()); }

 private:
  static c10::CachingAllocator::Stat Stat() {
    auto stats = at::accelerator::getDeviceStats(at::accelerator::getDeviceIndex());
    return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)];
  }
};

}  // namespace

MemoryMeter& MemoryMeter::For(c10::Device device) {
  if (device.is_cuda()) {
    static CudaMeter cuda;
    return cuda;
  }
  // Priority above LibTorch's default (0), so every later CPU tensor comes through the counter.
  static CountingCpuAllocator* cpu = [] {
    auto* counting = new CountingCpuAllocator(c10::GetCPUAllocator());
    c10::SetCPUAllocator(counting, /*priority=*/1);
    return counting;
  }();
  return *cpu;
}

}  // namespace lorafa::benchmarks
