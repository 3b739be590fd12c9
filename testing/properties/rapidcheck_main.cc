// main() for the property tests: 1,000 cases per property unless RC_PARAMS says otherwise
// (`bazel test --config=soak` runs 20,000). A failure prints the seed and the shrunk case; replay it
// with RC_PARAMS="reproduce=<string printed>" (see README, "Property-based tests").
#include <cstdlib>

#include <gtest/gtest.h>

int main(int argc, char** argv) {
  setenv("RC_PARAMS", "max_success=1000", /*overwrite=*/0);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
