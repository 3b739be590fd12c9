#include "reference/pseudo_inverse.h"

#include <algorithm>
#include <limits>

namespace lorafa::reference {

Eigen::MatrixXd PseudoInverse(const Eigen::MatrixXd& m, double rtol) {
  if (rtol < 0.0) {
    rtol = std::numeric_limits<double>::epsilon() * static_cast<double>(std::max(m.rows(), m.cols()));
  }
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(m, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const Eigen::VectorXd& sigma = svd.singularValues();  // sorted, largest first
  const double cutoff = sigma.size() > 0 ? rtol * sigma(0) : 0.0;
  Eigen::VectorXd sigma_plus = Eigen::VectorXd::Zero(sigma.size());
  for (Eigen::Index i = 0; i < sigma.size(); ++i) {
    if (sigma(i) > cutoff) sigma_plus(i) = 1.0 / sigma(i);
  }
  return svd.matrixV() * sigma_plus.asDiagonal() * svd.matrixU().transpose();
}

}  // namespace lorafa::reference
