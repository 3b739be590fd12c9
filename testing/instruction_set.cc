#include "testing/instruction_set.h"

#include <cctype>
#include <cstdlib>

#include <ATen/Version.h>

namespace lorafa::testing {
namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

}  // namespace

std::string AtenInstructionSet() { return at::get_cpu_capability(); }

std::string AtenInstructionSetAsked() {
  std::string asked = Env("ATEN_CPU_CAPABILITY");
  for (char& c : asked) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return asked;
}

bool AtenRunsTheInstructionSetAsked() {
  const std::string asked = AtenInstructionSetAsked();
  return asked.empty() || asked == AtenInstructionSet();
}

std::string InstructionSetSummary() {
  const std::string asked = AtenInstructionSetAsked(), mkl = Env("MKL_ENABLE_INSTRUCTIONS");
  return "ATen " + AtenInstructionSet() + (asked.empty() ? "" : " (asked: " + asked + ")") +
         ", MKL_ENABLE_INSTRUCTIONS=" + (mkl.empty() ? "(not set: MKL's best)" : mkl);
}

}  // namespace lorafa::testing
