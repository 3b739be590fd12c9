// Elementwise comparison of float64 expectations with a stated tolerance, reporting the worst element.
//
//   EXPECT_TRUE(AllClose(ToEigen(B), reference_B, /*atol=*/1e-12, /*rtol=*/1e-12));
#pragma once

#include <Eigen/Dense>
#include <gtest/gtest.h>

namespace lorafa::testing {

// Success iff |actual − expected| ≤ atol + rtol·|expected| everywhere; the failure names the worst
// element, both values and the bound.
::testing::AssertionResult AllClose(const Eigen::MatrixXd& actual, const Eigen::MatrixXd& expected, double atol,
                                    double rtol);

// Same, with a per-element bound.
::testing::AssertionResult WithinBound(const Eigen::MatrixXd& actual, const Eigen::MatrixXd& expected,
                                       const Eigen::MatrixXd& bound);

}  // namespace lorafa::testing
