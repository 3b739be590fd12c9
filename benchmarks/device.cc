#include "benchmarks/device.h"

#include <torch/cuda.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace lorafa::benchmarks {

absl::StatusOr<c10::Device> ParseDevice(const std::string& name) {
  if (name == "cpu") return c10::Device(c10::kCPU);
  if (name != "cuda") return absl::InvalidArgumentError(absl::StrCat("--device must be cpu or cuda, got '", name, "'"));
  if (!torch::cuda::is_available()) {
    return absl::FailedPreconditionError(
        "--device=cuda: this LibTorch sees no CUDA device (no GPU or driver on this machine); run with --device=cpu");
  }
  return c10::Device(c10::kCUDA, 0);
}

}  // namespace lorafa::benchmarks
