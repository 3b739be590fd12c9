// The shared main() of lorafa's benchmark binaries: Google Benchmark's flags plus
//   --device=cpu|cuda   where tensors live (cuda fails clearly when there is none)
//   --preset=NAME       which sweep to register, one of the binary's presets (smoke: tiny shapes, for
//                       the test that keeps the binaries from rotting)
// Each binary supplies RegisterBenchmarks; results go wherever --benchmark_out says (JSON for report).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <c10/core/Device.h>

namespace lorafa::benchmarks {

struct BenchmarkContext {
  c10::Device device = c10::kCPU;
  std::string preset;       // one of the presets the binary accepts
  bool python_ready = false;  // an embedded interpreter with torch and peft is running
};

// Parses flags (a --preset not in `presets` is an error naming them), starts embedded Python if
// `wants_python` (its failure only disables the rows that need it, which then report the reason),
// registers and runs the benchmarks. Returns the exit code.
int RunBenchmarkMain(int argc, char** argv, bool wants_python, const std::vector<std::string>& presets,
                     const std::function<void(const BenchmarkContext&)>& register_benchmarks);

// Waits for queued device work, so a timed iteration covers what it launched.
void Synchronize(c10::Device device);

}  // namespace lorafa::benchmarks
