// Small float64 helpers the properties use to state their tolerances.
#pragma once

#include <Eigen/Dense>

namespace lorafa::testing {

inline constexpr double kFloat64Epsilon = 2.220446049250313e-16;  // 2^-52

// Singular values of m, largest first.
Eigen::VectorXd SingularValuesOf(const Eigen::MatrixXd& m);

// Columns spanning {u : uᵀ·A = 0} (A's left null space), from singular values ≤ 1e-8·σ_max.
Eigen::MatrixXd LeftNullSpace(const Eigen::MatrixXd& A);

// Elementwise bound on |Δĝ| for ĝ = (1/s²)·g·P computed in a dtype with unit roundoff u, P = (A Aᵀ + δI)⁺
// (δ = 1e-8). The pseudo-inverse's error is normwise — ‖ΔP‖₂ ≤ 64·r·u·κ·‖P‖₂ from the Gram product and
// the SVD, κ = λ_max/λ_min of A Aᵀ + δI — so an entry of g·ΔP is bounded by Σ_k|g_ik|·‖ΔP‖₂; the
// product g·P adds r·u·(|g||P|)_ij.
Eigen::ArrayXXd ProjectionErrorBound(const Eigen::MatrixXd& A, const Eigen::MatrixXd& gram_pinv,
                                     const Eigen::MatrixXd& grad, double scaling, double u);

}  // namespace lorafa::testing
