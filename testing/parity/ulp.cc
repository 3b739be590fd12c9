#include "testing/parity/ulp.h"

#include <limits>

#include <c10/util/Exception.h>

namespace lorafa::parity {
namespace {

// The integer with the same bits as each element, mapped so that integer order is float order:
// non-negative floats keep their bits, negative ones become −(bits without the sign).
torch::Tensor OrderedBits(const torch::Tensor& t) {
  torch::Tensor dense = t.detach().to(torch::kCPU).contiguous();
  switch (dense.scalar_type()) {
    case torch::kFloat: {
      torch::Tensor bits = dense.view(torch::kInt32).to(torch::kInt64);
      return torch::where(bits < 0, -(bits + (int64_t{1} << 31)), bits);
    }
    case torch::kBFloat16:
    case torch::kHalf: {
      torch::Tensor bits = dense.view(torch::kInt16).to(torch::kInt64);
      return torch::where(bits < 0, -(bits + (int64_t{1} << 15)), bits);
    }
    case torch::kDouble: {
      // Drop the sign and keep 62 bits of magnitude so the subtraction below cannot overflow; a
      // float64 distance beyond 2^62 units means "unrelated values" anyway.
      torch::Tensor bits = dense.view(torch::kInt64);
      torch::Tensor magnitude = torch::bitwise_and(bits, std::numeric_limits<int64_t>::max()).div(2, "floor");
      return torch::where(bits < 0, -magnitude, magnitude);
    }
    default:
      TORCH_CHECK_VALUE(false, "MaxUlpDistance: unsupported dtype ", dense.scalar_type());
  }
}

}  // namespace

double MaxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.numel() == 0) return 0.0;
  torch::Tensor diff = (a.detach().to(torch::kCPU, torch::kDouble) - b.detach().to(torch::kCPU, torch::kDouble)).abs();
  if (diff.isnan().any().item<bool>()) return std::numeric_limits<double>::infinity();
  return diff.max().item<double>();
}

int64_t MaxUlpDistance(const torch::Tensor& a, const torch::Tensor& b) {
  TORCH_CHECK_VALUE(a.scalar_type() == b.scalar_type(), "MaxUlpDistance: dtypes differ, ", a.scalar_type(), " vs ",
                    b.scalar_type());
  if (a.numel() == 0) return 0;
  if (a.isnan().any().item<bool>() || b.isnan().any().item<bool>()) return std::numeric_limits<int64_t>::max();
  torch::Tensor distance = (OrderedBits(a) - OrderedBits(b)).abs();
  // float64 magnitudes were halved above; report whole units.
  if (a.scalar_type() == torch::kDouble) distance = distance * 2;
  return distance.max().item<int64_t>();
}

}  // namespace lorafa::parity
