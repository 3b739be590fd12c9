// Small float64 helpers the properties use to state their tolerances.
#pragma once

#include <Eigen/Dense>

namespace lorafa::testing {

inline constexpr double kFloat64Epsilon = 2.220446049250313e-16;  // 2^-52

// Singular values of m, largest first.
Eigen::VectorXd SingularValuesOf(const Eigen::MatrixXd& m);

// Columns spanning {u : uᵀ·A = 0} (A's left null space), from singular values ≤ 1e-8·σ_max.
Eigen::MatrixXd LeftNullSpace(const Eigen::MatrixXd& A);

}  // namespace lorafa::testing
