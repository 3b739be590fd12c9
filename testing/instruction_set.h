// The instruction set a test runs under, for tests that run again under ATEN_CPU_CAPABILITY and
// MKL_ENABLE_INSTRUCTIONS (BUILD's *_avx2 targets): a run that silently kept the machine's best set
// would check nothing new.
#pragma once

#include <string>

namespace lorafa::testing {

// The set ATen, and with it lorafa's CPU kernel, uses: "DEFAULT", "AVX2" or "AVX512".
std::string AtenInstructionSet();

// ATEN_CPU_CAPABILITY upper-cased, or "" when it is not set.
std::string AtenInstructionSetAsked();

// True when ATEN_CPU_CAPABILITY is unset or names the set ATen runs.
bool AtenRunsTheInstructionSetAsked();

// "ATen AVX2 (asked: AVX2), MKL_ENABLE_INSTRUCTIONS=AVX2": one line for a test's output.
std::string InstructionSetSummary();

}  // namespace lorafa::testing
