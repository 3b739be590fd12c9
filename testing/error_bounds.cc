#include "testing/error_bounds.h"

#include "reference/bfloat16.h"
#include "reference/projection.h"

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

double PinvConditioning(const Eigen::MatrixXd& A, const Eigen::MatrixXd& gram_pinv) {
  const Eigen::Index r = A.rows();
  const Eigen::VectorXd lambda = SingularValuesOf(A * A.transpose() + 1e-8 * Eigen::MatrixXd::Identity(r, r));
  const double kappa = lambda(0) / lambda(lambda.size() - 1);
  return kappa * SingularValuesOf(gram_pinv)(0);
}

Eigen::ArrayXXd ProjectionErrorBound(double pinv_conditioning, const Eigen::MatrixXd& gram_pinv,
                                     const Eigen::MatrixXd& grad, double scaling, double u) {
  const Eigen::Index r = grad.cols();
  const Eigen::VectorXd row_sums = grad.cwiseAbs().rowwise().sum();
  const Eigen::MatrixXd normwise = (64.0 * r * u * pinv_conditioning) * row_sums * Eigen::RowVectorXd::Ones(r);
  const Eigen::MatrixXd product = (r * u / (1 - r * u)) * grad.cwiseAbs() * gram_pinv.cwiseAbs();
  return (normwise + product).array() / (scaling * scaling);
}

Eigen::ArrayXXd ProjectionErrorBound(const Eigen::MatrixXd& A, const Eigen::MatrixXd& gram_pinv,
                                     const Eigen::MatrixXd& grad, double scaling, double u) {
  return ProjectionErrorBound(PinvConditioning(A, gram_pinv), gram_pinv, grad, scaling, u);
}

Eigen::ArrayXXd PeftBfloat16ErrorBound(const Eigen::MatrixXd& A, const Eigen::MatrixXd& grad,
                                       const Eigen::MatrixXd& expected, double scaling, double delta) {
  const Eigen::MatrixXd pinv = reference::RegularisedGramPinv(A, delta);
  const Eigen::ArrayXXd magnitude = (grad.cwiseAbs() * pinv.cwiseAbs()).array() / (scaling * scaling);
  return reference::kBfloat16UnitRoundoff * ((grad.cols() + 1) * magnitude + 2 * expected.array().abs());
}

}  // namespace lorafa::testing
