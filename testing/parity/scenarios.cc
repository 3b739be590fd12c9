#include "testing/parity/scenario.h"

namespace lorafa::parity {

std::vector<Scenario> AllScenarios() {
  std::vector<Scenario> all;
  for (auto part : {OptimizerScenarios, ModelScenarios, DivergenceScenarios, FidelityScenarios}) {
    std::vector<Scenario> scenarios = part();
    all.insert(all.end(), scenarios.begin(), scenarios.end());
  }
  return all;
}

}  // namespace lorafa::parity
