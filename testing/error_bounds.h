// Derived error bounds shared by the example tests (lorafa/) and the properties (testing/properties):
// each bound's derivation is written once, here.
//
//   EXPECT_TRUE(WithinBound(actual, expected, ProjectionErrorBound(A, pinv, grad, s, kFloat64Epsilon).matrix()));
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
// product g·P adds γ_r·(|g||P|)_ij, γ_r = r·u/(1 − r·u), for any summation order (Higham, Accuracy and
// Stability, §3.1): the fused kernel's k-ordered fused multiply-adds and a BLAS GEMM alike.
Eigen::ArrayXXd ProjectionErrorBound(const Eigen::MatrixXd& A, const Eigen::MatrixXd& gram_pinv,
                                     const Eigen::MatrixXd& grad, double scaling, double u);
// κ·‖P‖₂ of the bound above: a function of A alone (two SVDs), so a test stepping a frozen A many times
// computes it once and passes it to the overload below.
double PinvConditioning(const Eigen::MatrixXd& A, const Eigen::MatrixXd& gram_pinv);
Eigen::ArrayXXd ProjectionErrorBound(double pinv_conditioning, const Eigen::MatrixXd& gram_pinv,
                                     const Eigen::MatrixXd& grad, double scaling, double u);

// Elementwise bound on |lorafa's kPeftBf16 ĝ − reference::PeftBfloat16ProjectedGradient| for float32 A
// and g. Both round g and P to bfloat16, multiply, round, scale and round. They can differ where
// LibTorch's float32 pinv and the reference's float64 pinv straddle a bfloat16 rounding point (one
// unit u_b = 2^-8 of that P entry: u_b·(|g||P|)_ij/s²) and where the scaled result rounds (2·u_b·|ĝ|).
// How the CPU's bfloat16 GEMM accumulates is not documented (a shrunk property case, r = 24, showed
// partial sums rounded to bfloat16), so the sum is bounded as bfloat16 recursive summation:
// r·u_b·(|g||P|)/s². Bit-for-bit agreement with PEFT itself is checked in //testing/parity.
Eigen::ArrayXXd PeftBfloat16ErrorBound(const Eigen::MatrixXd& A, const Eigen::MatrixXd& grad,
                                       const Eigen::MatrixXd& expected, double scaling, double delta);

}  // namespace lorafa::testing
