// Parity scenarios: one definition of each, run by the tests (parity_test) and by the release gate
// (tools/parity_check). Each drives the installed PEFT and lorafa on the same numbers and reports how
// far apart they ended, against the scenario's target.
//
//   for (const Scenario& scenario : AllScenarios()) {
//     ScenarioResult result = scenario.run(scenario.default_steps);
//   }
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lorafa::parity {

struct ScenarioResult {
  std::string dtype;         // parameter dtype, e.g. "float32"
  int steps = 0;
  double max_abs_diff = 0.0;  // over every compared tensor and step
  int64_t max_ulp = 0;
  bool passed = false;
  std::string target;  // what "passed" means: "bitwise", "derived bound", "PEFT diverges; lorafa = reference"
  std::string detail;  // the first miss, or a finding worth reading (e.g. what PEFT raised)
};

struct Scenario {
  std::string name;  // "optimizer/float32/peft-bf16", ...
  int default_steps;
  // Runs with the embedded interpreter already started; throws only for harness failures.
  std::function<ScenarioResult(int steps)> run;
};

// Every scenario, in a fixed order.
std::vector<Scenario> AllScenarios();

// PEFT and lorafa both on the first CUDA device (they need one): run by parity_check --device=cuda.
// Their target is a derived bound; whether they were bitwise is reported as a finding.
std::vector<Scenario> CudaScenarios();

// The parts, one file each.
std::vector<Scenario> OptimizerScenarios();
std::vector<Scenario> ModelScenarios();
std::vector<Scenario> DivergenceScenarios();
std::vector<Scenario> FidelityScenarios();

}  // namespace lorafa::parity
