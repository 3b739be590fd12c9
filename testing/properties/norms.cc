#include "testing/properties/norms.h"

namespace lorafa::testing {

Eigen::VectorXd SingularValuesOf(const Eigen::MatrixXd& m) {
  return Eigen::JacobiSVD<Eigen::MatrixXd>(m).singularValues();
}

Eigen::MatrixXd LeftNullSpace(const Eigen::MatrixXd& A) {
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(A, Eigen::ComputeFullU);
  const Eigen::VectorXd& sigma = svd.singularValues();
  const double cutoff = sigma.size() > 0 ? 1e-8 * sigma(0) : 0.0;
  Eigen::Index rank = 0;
  while (rank < sigma.size() && sigma(rank) > cutoff) ++rank;
  return svd.matrixU().rightCols(A.rows() - rank);
}

}  // namespace lorafa::testing
