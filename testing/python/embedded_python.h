// Embedded Python for tests, benchmarks and tools that drive PEFT from C++.
//
// One interpreter per process, started from the Python environment the build was configured with
// (.venv by default), so that `import torch` loads the same libtorch the C++ code links. The network
// and the home directory are kept out: HF_HUB_OFFLINE=1 and a throwaway HF_HOME.
//
//   absl::StatusOr<std::unique_ptr<EmbeddedPython>> python = EmbeddedPython::Start();
//   if (!python.ok()) { std::cerr << python.status(); return 1; }
//   pybind11::module_ lorafa = pybind11::module_::import("peft.optimizers.lorafa");
//
// In a gtest binary link //testing/python:gtest_main instead; it starts the interpreter before the
// first test and stops it after the last.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace lorafa::testing {

// The command that installs what embedded Python needs; every failure message names it.
inline constexpr char kSetupCommand[] = "tools/setup.sh";

class EmbeddedPython {
 public:
  // Starts the interpreter, then imports torch and peft.optimizers.lorafa. Fails (FailedPrecondition,
  // naming the setup command) when the environment lacks them. At most one may exist at a time.
  static absl::StatusOr<std::unique_ptr<EmbeddedPython>> Start();

  EmbeddedPython(const EmbeddedPython&) = delete;
  EmbeddedPython& operator=(const EmbeddedPython&) = delete;
  ~EmbeddedPython();

  // The interpreter executable whose environment is in use.
  static std::string Executable();

 private:
  struct Impl;
  explicit EmbeddedPython(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lorafa::testing
