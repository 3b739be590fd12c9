#include "lorafa/hf_adamw.h"

#include <cmath>

#include "lorafa/python_scalar.h"

namespace lorafa::internal {

double HfAdamWStepSize(const LoraFAOptions& options, int64_t step) {
  double step_size = options.lr();
  if (options.correct_bias()) {
    const auto [beta1, beta2] = options.betas();
    const double bias_correction1 = 1.0 - std::pow(beta1, static_cast<double>(step));
    const double bias_correction2 = 1.0 - std::pow(beta2, static_cast<double>(step));
    step_size = step_size * std::sqrt(bias_correction2) / bias_correction1;
  }
  return step_size;
}

double HfAdamWDecayFactor(const LoraFAOptions& options) { return -options.lr() * options.weight_decay(); }

HfAdamWOperands::HfAdamWOperands(const LoraFAOptions& options)
    : beta1(PythonScalar(std::get<0>(options.betas()))),
      beta2(PythonScalar(std::get<1>(options.betas()))),
      eps(PythonScalar(options.eps())) {}

void HfAdamWUpdate(at::Tensor& param, const at::Tensor& grad, at::Tensor& m, at::Tensor& v, double step_size,
                   const LoraFAOptions& options, const HfAdamWOperands& operands) {
  const auto [beta1, beta2] = options.betas();
  // Number operands as Python passes them (see python_scalar.h); alpha/value arguments are Scalars
  // in both languages already.
  m.mul_(operands.beta1).add_(grad, 1.0 - beta1);
  v.mul_(operands.beta2).addcmul_(grad, grad, 1.0 - beta2);
  at::Tensor denom = v.sqrt().add_(operands.eps);
  param.addcdiv_(m, denom, -step_size);

  // Decoupled weight decay on the updated weights.
  if (options.weight_decay() > 0.0) param.add_(param, HfAdamWDecayFactor(options));
}

}  // namespace lorafa::internal
