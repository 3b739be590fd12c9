#include "testing/parity/ulp.h"

#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace lorafa::parity {
namespace {

TEST(MaxUlpDistance, CountsRepresentableValuesBetween) {
  const float one = 1.0f;
  const float two_up = std::nextafter(std::nextafter(one, 2.0f), 2.0f);
  EXPECT_EQ(MaxUlpDistance(torch::tensor({one}), torch::tensor({one})), 0);
  EXPECT_EQ(MaxUlpDistance(torch::tensor({one}), torch::tensor({two_up})), 2);
  // Across zero: the smallest positive and negative subnormals are 2 apart (with ±0 counted once).
  const float tiny = std::nextafter(0.0f, 1.0f);
  EXPECT_EQ(MaxUlpDistance(torch::tensor({tiny}), torch::tensor({-tiny})), 2);
  EXPECT_EQ(MaxUlpDistance(torch::tensor({0.0f}), torch::tensor({-0.0f})), 0);
}

TEST(MaxUlpDistance, Bfloat16UnitsAreBfloat16Spacings) {
  // Above 1, bfloat16 values are 2^-7 apart: 1 + 2^-6 is two bfloat16 units from 1.
  torch::Tensor a = torch::tensor({1.0}).to(torch::kBFloat16);
  torch::Tensor b = torch::tensor({1.0 + std::ldexp(1.0, -6)}).to(torch::kBFloat16);
  EXPECT_EQ(MaxUlpDistance(a, b), 2);
}

TEST(MaxAbsDiff, IsTheLargestElementwiseGap) {
  EXPECT_DOUBLE_EQ(MaxAbsDiff(torch::tensor({1.0, 2.0, 3.0}), torch::tensor({1.5, 2.0, 1.0})), 2.0);
}

}  // namespace
}  // namespace lorafa::parity
