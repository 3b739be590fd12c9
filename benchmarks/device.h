// --device=cpu|cuda for the benchmark binaries.
#pragma once

#include <string>

#include <c10/core/Device.h>

#include "absl/status/statusor.h"

namespace lorafa::benchmarks {

// "cpu" or "cuda". InvalidArgument for anything else; FailedPrecondition naming the reason when CUDA
// is asked for and LibTorch sees no CUDA device.
absl::StatusOr<c10::Device> ParseDevice(const std::string& name);

}  // namespace lorafa::benchmarks
