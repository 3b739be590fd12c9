#include "testing/eigen_tensor.h"

#include <c10/util/Exception.h>

namespace lorafa::testing {

using RowMajorMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Eigen::MatrixXd ToEigen(const torch::Tensor& tensor) {
  TORCH_CHECK_VALUE(tensor.dim() == 2, "ToEigen needs a 2-D tensor, got shape ", tensor.sizes());
  torch::Tensor dense = tensor.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  return Eigen::Map<const RowMajorMatrix>(dense.data_ptr<double>(), dense.size(0), dense.size(1));
}

torch::Tensor ToTensor(const Eigen::MatrixXd& matrix, torch::ScalarType dtype) {
  RowMajorMatrix row_major = matrix;
  torch::Tensor dense = torch::from_blob(row_major.data(), {matrix.rows(), matrix.cols()}, torch::kFloat64);
  return dense.to(dtype).clone();
}

}  // namespace lorafa::testing
