// The LoRA-FA projection and the least-squares view of it, in float64.
//
// With A frozen, s·B·A is the LoRA update and g_B = s · G_W · Aᵀ is B's gradient (G_W: the full-weight
// gradient). The B-gradient ĝ whose update s·ĝ·A is closest to G_W in Frobenius norm is
//     ĝ = (1/s) · G_W · Aᵀ (A Aᵀ)⁺ = (1/s²) · g_B · (A Aᵀ)⁺,
// and s·ĝ·A = G_W · Aᵀ(A Aᵀ)⁺A is G_W projected onto A's row space. LoRA-FA adds δI before inverting.
#pragma once

#include <Eigen/Dense>

namespace lorafa::reference {

// (A Aᵀ + δI)⁺, with torch's default pinv cut-off.
Eigen::MatrixXd RegularisedGramPinv(const Eigen::MatrixXd& A, double delta);

// ĝ_B = (1/s²) · g_B · (A Aᵀ + δI)⁺.  A: (r, n), grad_B: (m, r).
Eigen::MatrixXd ProjectedGradient(const Eigen::MatrixXd& A, const Eigen::MatrixXd& grad_B, double scaling,
                                  double delta);

// The same with (A Aᵀ + δI)⁺ already formed.
Eigen::MatrixXd ProjectedGradientWithPinv(const Eigen::MatrixXd& gram_pinv, const Eigen::MatrixXd& grad_B,
                                          double scaling);

// The full-weight-space update that B's gradient ĝ stands for: s · ĝ · A, shape (m, n).
Eigen::MatrixXd FullWeightUpdate(const Eigen::MatrixXd& A, const Eigen::MatrixXd& grad_hat, double scaling);

// PEFT's bfloat16 path as PyTorch computes it on a CPU for float32 parameters: δ becomes the float32
// nearest 1e-8, the r × r pseudo-inverse is exact (float64 here), then g_B and the pseudo-inverse are
// rounded to bfloat16, multiplied (exactly here), rounded to bfloat16, scaled by 1/s² and rounded again.
Eigen::MatrixXd PeftBfloat16ProjectedGradient(const Eigen::MatrixXd& A, const Eigen::MatrixXd& grad_B,
                                              double scaling, double delta);

// The same with (A Aᵀ + δ_f32·I)⁺ already formed (δ_f32: δ rounded to float32).
Eigen::MatrixXd PeftBfloat16ProjectedGradientWithPinv(const Eigen::MatrixXd& gram_pinv, const Eigen::MatrixXd& grad_B,
                                                      double scaling);

}  // namespace lorafa::reference
