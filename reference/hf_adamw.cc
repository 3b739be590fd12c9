#include "reference/hf_adamw.h"

#include <cmath>

namespace lorafa::reference {

double AdamWStepSize(const AdamWHyperparameters& hyper, int64_t step) {
  if (!hyper.correct_bias) return hyper.lr;
  const double t = static_cast<double>(step);
  return hyper.lr * std::sqrt(1.0 - std::pow(hyper.beta2, t)) / (1.0 - std::pow(hyper.beta1, t));
}

void HfAdamWStep(Eigen::MatrixXd& param, const Eigen::MatrixXd& grad, AdamWMoments& moments,
                 const AdamWHyperparameters& hyper) {
  if (moments.step == 0) {
    moments.m = Eigen::MatrixXd::Zero(param.rows(), param.cols());
    moments.v = Eigen::MatrixXd::Zero(param.rows(), param.cols());
  }
  moments.step += 1;
  moments.m = hyper.beta1 * moments.m + (1.0 - hyper.beta1) * grad;
  moments.v = hyper.beta2 * moments.v + (1.0 - hyper.beta2) * grad.cwiseProduct(grad);
  const Eigen::MatrixXd denom = moments.v.cwiseSqrt().array() + hyper.eps;
  param -= AdamWStepSize(hyper, moments.step) * moments.m.cwiseQuotient(denom);
  if (hyper.weight_decay > 0.0) param -= hyper.lr * hyper.weight_decay * param;
}

}  // namespace lorafa::reference
