// HF-style AdamW in float64, one parameter at a time:
//   t ← t + 1;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
//   step_size = lr·√(1−β2ᵗ)/(1−β1ᵗ)  (lr without bias correction)
//   θ ← θ − step_size · m / (√v + eps);  then θ ← θ − lr·wd·θ  (decay after the update)
#pragma once

#include <cstdint>

#include <Eigen/Dense>

namespace lorafa::reference {

struct AdamWHyperparameters {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-6;
  double weight_decay = 0.0;
  bool correct_bias = true;
};

struct AdamWMoments {
  Eigen::MatrixXd m;  // zeros of the parameter's shape before the first step
  Eigen::MatrixXd v;
  int64_t step = 0;
};

// The step size of update number `step` (1-based).
double AdamWStepSize(const AdamWHyperparameters& hyper, int64_t step);

// One update of `param` with `grad`; moments are created on the first call.
void HfAdamWStep(Eigen::MatrixXd& param, const Eigen::MatrixXd& grad, AdamWMoments& moments,
                 const AdamWHyperparameters& hyper);

}  // namespace lorafa::reference
