#include "testing/tensor_compare.h"

namespace lorafa::testing {

::testing::AssertionResult WithinBound(const Eigen::MatrixXd& actual, const Eigen::MatrixXd& expected,
                                       const Eigen::MatrixXd& bound) {
  if (actual.rows() != expected.rows() || actual.cols() != expected.cols()) {
    return ::testing::AssertionFailure() << "shape " << actual.rows() << "x" << actual.cols() << " vs "
                                         << expected.rows() << "x" << expected.cols();
  }
  Eigen::Index worst_row = 0, worst_col = 0;
  double worst_excess = -1.0;
  for (Eigen::Index i = 0; i < actual.rows(); ++i) {
    for (Eigen::Index j = 0; j < actual.cols(); ++j) {
      const double diff = std::abs(actual(i, j) - expected(i, j));
      // NaN fails: !(diff <= bound).
      const double excess = !(diff <= bound(i, j)) ? (std::isnan(diff) ? INFINITY : diff / bound(i, j)) : 0.0;
      if (excess > worst_excess) {
        worst_excess = excess;
        worst_row = i;
        worst_col = j;
      }
    }
  }
  if (worst_excess <= 0.0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "element (" << worst_row << ", " << worst_col << "): actual "
                                       << actual(worst_row, worst_col) << ", expected "
                                       << expected(worst_row, worst_col) << ", |diff| "
                                       << std::abs(actual(worst_row, worst_col) - expected(worst_row, worst_col))
                                       << " > bound " << bound(worst_row, worst_col);
}

::testing::AssertionResult AllClose(const Eigen::MatrixXd& actual, const Eigen::MatrixXd& expected, double atol,
                                    double rtol) {
  Eigen::MatrixXd bound = (atol + rtol * expected.array().abs()).matrix();
  return WithinBound(actual, expected, bound);
}

}  // namespace lorafa::testing
