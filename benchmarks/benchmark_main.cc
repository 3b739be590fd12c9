#include "benchmarks/benchmark_main.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <thread>

#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <benchmark/benchmark.h>
#include <torch/cuda.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_join.h"
#include "benchmarks/device.h"
#include "testing/python/embedded_python.h"

ABSL_FLAG(std::string, device, "cpu", "cpu or cuda");
ABSL_FLAG(std::string, preset, "quick", "which sweep: smoke, quick, full (and llm for the training step)");

namespace lorafa::benchmarks {

void Synchronize(c10::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

int RunBenchmarkMain(int argc, char** argv, bool wants_python, const std::vector<std::string>& presets,
                     const std::function<void(const BenchmarkContext&)>& register_benchmarks) {
  benchmark::Initialize(&argc, argv);  // takes the --benchmark_* flags
  absl::ParseCommandLine(argc, argv);

  absl::StatusOr<c10::Device> device = ParseDevice(absl::GetFlag(FLAGS_device));
  if (!device.ok()) {
    std::cerr << argv[0] << ": " << device.status().message() << "\n";
    return 2;
  }
  const std::string preset = absl::GetFlag(FLAGS_preset);
  if (std::find(presets.begin(), presets.end(), preset) == presets.end()) {
    std::cerr << argv[0] << ": --preset must be one of " << absl::StrJoin(presets, ", ") << "; got '" << preset << "'\n";
    return 2;
  }

  std::unique_ptr<lorafa::testing::EmbeddedPython> python;
  if (wants_python) {
    auto started = lorafa::testing::EmbeddedPython::Start();
    if (started.ok()) {
      python = *std::move(started);
    } else {
      std::cerr << argv[0] << ": PEFT rows disabled: " << started.status().message() << "\n";
    }
  }
  // What the numbers were measured with, in the JSON's context: two reports from two machines (or one
  // machine under ATEN_CPU_CAPABILITY / MKL_ENABLE_INSTRUCTIONS) differ for these reasons first.
  const char* mkl_instructions = std::getenv("MKL_ENABLE_INSTRUCTIONS");
  benchmark::AddCustomContext("aten_cpu_capability", at::get_cpu_capability());
  benchmark::AddCustomContext("mkl_enable_instructions", mkl_instructions ? mkl_instructions : "(not set)");
  benchmark::AddCustomContext("torch_threads", std::to_string(at::get_num_threads()));
  benchmark::AddCustomContext("hardware_threads", std::to_string(std::thread::hardware_concurrency()));
  register_benchmarks({*device, preset, python != nullptr});
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace lorafa::benchmarks
