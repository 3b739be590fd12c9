// The memory meter against sizes known by arithmetic: a tensor of n float32 elements holds 4n bytes,
// and the peak of a step that frees its temporaries is the largest moment, not the sum. Sizes are
// multiples of 512 bytes, the CUDA caching allocator's rounding unit, so its figures are exact too.
// Runs on the CPU and, where there is one, on a CUDA device (skipping there otherwise, saying so).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "benchmarks/memory_meter.h"

namespace lorafa::benchmarks {
namespace {

class MemoryMeterOn : public ::testing::TestWithParam<torch::DeviceType> {
 protected:
  void SetUp() override {
    if (GetParam() == torch::kCUDA && !torch::cuda::is_available()) {
      GTEST_SKIP() << "no CUDA device: this instance checks the CUDA meter on a GPU machine";
    }
    meter_ = &MemoryMeter::For(device());  // before the tensors it must see
  }
  torch::Device device() const { return torch::Device(GetParam()); }
  torch::Tensor Floats(int64_t n) const { return torch::empty({n}, torch::TensorOptions(device()).dtype(torch::kFloat32)); }
  MemoryMeter* meter_ = nullptr;
};

INSTANTIATE_TEST_SUITE_P(Devices, MemoryMeterOn, ::testing::Values(torch::kCPU, torch::kCUDA),
                         [](const auto& info) { return info.param == torch::kCPU ? "cpu" : "cuda"; });

TEST_P(MemoryMeterOn, CurrentBytesFollowTensorsExactly) {
  const int64_t before = meter_->CurrentBytes();
  torch::Tensor a = Floats(1 << 20);  // 4 MiB
  EXPECT_EQ(meter_->CurrentBytes() - before, 4 << 20);
  torch::Tensor b = Floats(3 << 18);  // 3 MiB
  EXPECT_EQ(meter_->CurrentBytes() - before, 7 << 20);
  a = torch::Tensor();
  EXPECT_EQ(meter_->CurrentBytes() - before, 3 << 20);
  b = torch::Tensor();
  EXPECT_EQ(meter_->CurrentBytes(), before);
}

TEST_P(MemoryMeterOn, PeakIsTheLargestMomentSinceReset) {
  meter_->ResetPeak();
  const int64_t base = meter_->CurrentBytes();
  {
    torch::Tensor first = Floats(1 << 20);          // 4 MiB
    torch::Tensor second = Floats(1 << 19);         // + 2 MiB = 6 MiB at once
  }
  { torch::Tensor alone = Floats(5 << 18); }        // 5 MiB alone: below the earlier 6
  EXPECT_EQ(meter_->PeakBytes() - base, 6 << 20);
  meter_->ResetPeak();
  EXPECT_EQ(meter_->PeakBytes(), meter_->CurrentBytes());
}

}  // namespace
}  // namespace lorafa::benchmarks
