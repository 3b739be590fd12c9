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
  return ProjectedGradientWithPinv(RegularisedGramPinv(A, delta), grad_B, scaling);
}

Eigen::MatrixXd ProjectedGradientWithPinv(const Eigen::MatrixXd& gram_pinv, const Eigen::MatrixXd& grad_B,
                                          double scaling) {
  return (1.0 / (scaling * scaling)) * grad_B * gram_pinv;
}

Eigen::MatrixXd FullWeightUpdate(const Eigen::MatrixXd& A, const Eigen::MatrixXd& grad_hat, double scaling) {
  return scaling * grad_hat * A;
}

Eigen::MatrixXd PeftBfloat16ProjectedGradient(const Eigen::MatrixXd& A, const Eigen::MatrixXd& grad_B,
                                              double scaling, double delta) {
  const double delta_as_float32 = static_cast<float>(delta);
  return PeftBfloat16ProjectedGradientWithPinv(RegularisedGramPinv(A, delta_as_float32), grad_B, scaling);
}

Eigen::MatrixXd PeftBfloat16ProjectedGradientWithPinv(const Eigen::MatrixXd& pinv, const Eigen::MatrixXd& grad_B,
                                                      double scaling) {
  Eigen::MatrixXd product = RoundedToBfloat16(RoundedToBfloat16(grad_B) * RoundedToBfloat16(pinv));
  // The scalar 1/s² enters the bfloat16 multiply as a float.
  const double inverse_scaling_squared = static_cast<float>(1.0 / (scaling * scaling));
  return RoundedToBfloat16(inverse_scaling_squared * product);
}

}  // namespace lorafa::reference
