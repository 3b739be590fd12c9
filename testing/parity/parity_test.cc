// Every parity scenario as a test: lorafa against the installed PEFT (and the float64 reference).
// Runs inside one embedded interpreter (//testing/python:gtest_main).
#include <iostream>
#include <string>

#include <gtest/gtest.h>

#include "testing/instruction_set.h"
#include "testing/parity/scenario.h"

namespace lorafa::parity {
namespace {

// parity_avx2_test asks for AVX2: the scenarios must then run on it, not on the machine's best set.
TEST(InstructionSet, IsTheOneAsked) {
  std::cout << "instruction sets: " << testing::InstructionSetSummary() << "\n";
  EXPECT_TRUE(testing::AtenRunsTheInstructionSetAsked()) << testing::InstructionSetSummary();
}

class ParityTest : public ::testing::TestWithParam<Scenario> {};

TEST_P(ParityTest, MeetsItsTarget) {
  const Scenario& scenario = GetParam();
  ScenarioResult result = scenario.run(scenario.default_steps);
  EXPECT_TRUE(result.passed) << scenario.name << " (" << result.dtype << ", " << result.steps
                             << " steps) missed its target \"" << result.target << "\": max |diff| "
                             << result.max_abs_diff << ", max ULP " << result.max_ulp << "; " << result.detail;
  RecordProperty("max_abs_diff", std::to_string(result.max_abs_diff));
  RecordProperty("max_ulp", std::to_string(result.max_ulp));
}

std::string TestName(const ::testing::TestParamInfo<Scenario>& info) {
  std::string name = info.param.name;
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(AllScenarios, ParityTest, ::testing::ValuesIn(AllScenarios()), TestName);

}  // namespace
}  // namespace lorafa::parity
