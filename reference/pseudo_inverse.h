// Moore–Penrose pseudo-inverse in float64, with torch.linalg.pinv's default cut-off.
//
//   Eigen::MatrixXd p = PseudoInverse(m);  // singular values below eps·max(rows, cols)·σ_max dropped
#pragma once

#include <Eigen/Dense>

namespace lorafa::reference {

// M⁺ = V Σ⁺ Uᵀ from the SVD M = U Σ Vᵀ, where Σ⁺ inverts each singular value σ > rtol·σ_max and
// zeroes the rest. rtol < 0 means torch's default for the matrix: float64 epsilon × max(rows, cols).
Eigen::MatrixXd PseudoInverse(const Eigen::MatrixXd& m, double rtol = -1.0);

}  // namespace lorafa::reference
