#include "testing/eigen_tensor.h"

#include <ATen/ops/from_blob.h>
#include <c10/util/Exception.h>

namespace lorafa::testing {

using RowMajorMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Eigen::MatrixXd ToEigen(const at::Tensor& tensor) {
  TORCH_CHECK_VALUE(tensor.dim() == 2, "ToEigen needs a 2-D tensor, got shape ", tensor.sizes());
  at::Tensor dense = tensor.detach().to(at::kCPU, at::kDouble).contiguous();
  return Eigen::Map<const RowMajorMatrix>(dense.data_ptr<double>(), dense.size(0), dense.size(1));
}

at::Tensor ToTensor(const Eigen::MatrixXd& matrix, at::ScalarType dtype) {
  RowMajorMatrix row_major = matrix;
  at::Tensor dense = at::from_blob(row_major.data(), {matrix.rows(), matrix.cols()}, at::kDouble);
  return dense.to(dtype).clone();
}

}  // namespace lorafa::testing
