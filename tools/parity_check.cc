// parity_check: the release gate. Runs every parity scenario against the installed PEFT and prints
// one row per scenario, then the versions compared. Exit code 0 only if every scenario passes.
//
//   bazel run //tools:parity_check -- --filter='^model/' --steps=10 --json_out=/tmp/parity.json
//   parity_check --device=cuda    # the CUDA scenarios instead: PEFT and lorafa both on the GPU
//   ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 parity_check   # as an AVX2 machine runs it
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include <pybind11/stl.h>
#include <torch/cuda.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "testing/instruction_set.h"
#include "testing/parity/peft_bridge.h"
#include "testing/parity/scenario.h"
#include "testing/python/embedded_python.h"

ABSL_FLAG(std::string, json_out, "", "also write the results as JSON to this path");
ABSL_FLAG(int, steps, 0, "steps per scenario (0: each scenario's default)");
ABSL_FLAG(std::string, filter, "", "run only scenarios whose name matches this regular expression");
ABSL_FLAG(std::string, device, "cpu", "cpu: every scenario (the release gate); cuda: the CUDA scenarios");

namespace {

namespace py = pybind11;
using lorafa::parity::Scenario;
using lorafa::parity::ScenarioResult;

void WriteJson(const std::string& path, const std::vector<std::pair<std::string, ScenarioResult>>& rows,
               const std::map<std::string, std::string>& versions, double seconds) {
  // The interpreter is running anyway: its json module writes the file.
  py::list scenarios;
  for (const auto& [name, result] : rows) {
    py::dict row;
    row["scenario"] = name;
    row["dtype"] = result.dtype;
    row["steps"] = result.steps;
    row["max_abs_diff"] = result.max_abs_diff;
    row["max_ulp"] = result.max_ulp;
    row["target"] = result.target;
    row["passed"] = result.passed;
    row["detail"] = result.detail;
    scenarios.append(row);
  }
  py::dict document;
  document["scenarios"] = scenarios;
  document["versions"] = versions;
  document["wall_seconds"] = seconds;
  document["instruction_sets"] = lorafa::testing::InstructionSetSummary();
  py::object file = py::module_::import("builtins").attr("open")(path, "w");
  py::module_::import("json").attr("dump")(document, file, py::arg("indent") = 2);
  file.attr("close")();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Compares lorafa with the installed PEFT, scenario by scenario.");
  absl::ParseCommandLine(argc, argv);
  const std::string device = absl::GetFlag(FLAGS_device);
  if (device != "cpu" && device != "cuda") {
    std::cerr << "parity_check: --device must be cpu or cuda, got '" << device << "'\n";
    return 2;
  }
  if (device == "cuda" && !torch::cuda::is_available()) {
    std::cerr << "parity_check: --device=cuda: no CUDA device (this LibTorch sees no GPU or driver)\n";
    return 2;
  }
  auto python = lorafa::testing::EmbeddedPython::Start();
  if (!python.ok()) {
    std::cerr << "parity_check: " << python.status() << "\n";
    return 1;
  }

  const std::regex filter(absl::GetFlag(FLAGS_filter));
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::pair<std::string, ScenarioResult>> rows;
  bool all_passed = true;
  absl::PrintF("instruction sets: %s\n", lorafa::testing::InstructionSetSummary());
  absl::PrintF("%-68s %-9s %5s %12s %10s  %s\n", "scenario", "dtype", "steps", "max |diff|", "max ULP", "verdict");
  const std::vector<Scenario> scenarios =
      device == "cuda" ? lorafa::parity::CudaScenarios() : lorafa::parity::AllScenarios();
  for (const Scenario& scenario : scenarios) {
    if (!std::regex_search(scenario.name, filter)) continue;
    const int steps = absl::GetFlag(FLAGS_steps) > 0 ? absl::GetFlag(FLAGS_steps) : scenario.default_steps;
    ScenarioResult result;
    try {
      result = scenario.run(steps);
    } catch (const std::exception& error) {
      result.steps = steps;
      result.detail = std::string("harness error: ") + error.what();
    }
    all_passed = all_passed && result.passed;
    absl::PrintF("%-68s %-9s %5d %12.3g %10d  %s (%s)\n", scenario.name, result.dtype, result.steps,
                 result.max_abs_diff, result.max_ulp, result.passed ? "PASS" : "FAIL", result.target);
    if (!result.detail.empty()) absl::PrintF("    %s\n", result.detail);
    std::fflush(stdout);
    rows.emplace_back(scenario.name, result);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const auto versions = lorafa::parity::PythonVersions();
  absl::PrintF("\n");
  for (const auto& [package, version] : versions) absl::PrintF("%s %s\n", package, version);
  absl::PrintF("%d scenarios in %.1f s: %s\n", static_cast<int>(rows.size()), seconds,
               all_passed ? "all passed" : "SOME FAILED");
  if (!absl::GetFlag(FLAGS_json_out).empty()) WriteJson(absl::GetFlag(FLAGS_json_out), rows, versions, seconds);
  return all_passed && !rows.empty() ? 0 : 1;
}
