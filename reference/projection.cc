#include "reference/projection.h"

#include "reference/bfloat16.h"
#include "reference/pseudo_inverse.h"

namespace lorafa::reference {
namespace {

Eigen::MatrixXd RoundedToBfloat16(const Eigen::MatrixXd& m) {
  return m.unaryExpr([](double x) { return static_cast<double>(RoundToBfloat16(static_cast<float>(x))); });
}

}  // namespace

Eigen::MatrixXd RegularisedGramPinv(const Eigen::MatrixXd& A, double delta) {
  const Eigen::Index r = A.rows();
  Eigen::MatrixXd gram = A * A.transpose() + delta * Eigen::MatrixXd::Identity(r, r);
  return PseudoInverse(gram);
}

Eigen::MatrixXd ProjectedGradient(const Eigen::MatrixXd& A, const Eigen::MatrixXd& grad_B, double scaling,
                                  double delta) {
  return (1.0 / (scaling * scaling)) * grad_B * RegularisedGramPinv(A, delta);
}

Eigen::MatrixXd FullWeightUpdate(const Eigen::MatrixXd& A, const Eigen::MatrixXd& grad_hat, double scaling) {
  return scaling * grad_hat * A;
}

Eigen::MatrixXd PeftBfloat16ProjectedGradient(const Eigen::MatrixXd& A, const Eigen::MatrixXd& grad_B,
                                              double scaling, double delta) {
  const double delta_as_float32 = static_cast<float>(delta);
  Eigen::MatrixXd pinv = RegularisedGramPinv(A, delta_as_float32);
  Eigen::MatrixXd product = RoundedToBfloat16(RoundedToBfloat16(grad_B) * RoundedToBfloat16(pinv));
  // The scalar 1/s² enters the bfloat16 multiply as a float.
  const double inverse_scaling_squared = static_cast<float>(1.0 / (scaling * scaling));
  return RoundedToBfloat16(inverse_scaling_squared * product);
}

}  // namespace lorafa::reference
