// RapidCheck runs under gtest, and Abseil's flags, status and strings link.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

ABSL_FLAG(int, smoke_repetitions, 3, "an Abseil flag, to prove the flags library links");

namespace {

absl::StatusOr<int> ParsePositive(int value) {
  if (value <= 0) return absl::InvalidArgumentError("value must be positive");
  return value;
}

}  // namespace

RC_GTEST_PROP(RapidCheckSmoke, JoinThenSplitRoundTripsCommaFreeWords, (std::vector<std::string> words)) {
  for (std::string& word : words) word.erase(std::remove(word.begin(), word.end(), ','), word.end());
  RC_PRE(!words.empty());
  std::vector<std::string> round_trip = absl::StrSplit(absl::StrJoin(words, ","), ',');
  RC_ASSERT(round_trip == words);
}

TEST(AbseilSmoke, StatusOrCarriesValueOrError) {
  EXPECT_EQ(*ParsePositive(absl::GetFlag(FLAGS_smoke_repetitions)), 3);
  EXPECT_EQ(ParsePositive(-1).status().code(), absl::StatusCode::kInvalidArgument);
}
