// LibTorch links and computes: a 2x3 by 3x2 matmul whose product is worked out by hand below.
#include <gtest/gtest.h>
#include <torch/torch.h>

TEST(LibTorchSmoke, MatmulOfSmallMatricesMatchesHandComputedProduct) {
  torch::Tensor a = torch::tensor({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}}, torch::kFloat64);
  torch::Tensor b = torch::tensor({{7.0, 8.0}, {9.0, 10.0}, {11.0, 12.0}}, torch::kFloat64);
  // Row 1: 1*7+2*9+3*11 = 58, 1*8+2*10+3*12 = 64; row 2: 4*7+5*9+6*11 = 139, 4*8+5*10+6*12 = 154.
  torch::Tensor expected = torch::tensor({{58.0, 64.0}, {139.0, 154.0}}, torch::kFloat64);
  // Small integers are exact in float64, so the product must be too.
  EXPECT_TRUE(torch::equal(torch::matmul(a, b), expected)) << torch::matmul(a, b);
}
