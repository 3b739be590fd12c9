// Moving matrices between LibTorch and the float64 reference (Eigen), exactly.
//
//   Eigen::MatrixXd a = ToEigen(layer->lora_A["default"]->as<torch::nn::Linear>()->weight);
//   torch::Tensor b = ToTensor(reference_b, torch::kFloat32);
#pragma once

#include <Eigen/Dense>
#include <ATen/core/Tensor.h>  // not torch/types.h: 2 s of parsing, not 10

namespace lorafa::testing {

// A 2-D tensor of any floating dtype and device as float64 (every float32/bf16 value is exact in it).
Eigen::MatrixXd ToEigen(const at::Tensor& tensor);

// A CPU tensor of `dtype` holding `matrix` (rounded to dtype).
at::Tensor ToTensor(const Eigen::MatrixXd& matrix, at::ScalarType dtype = at::kDouble);

}  // namespace lorafa::testing
