#include "testing/parity/precision.h"

#include <cmath>

namespace lorafa::parity {

std::string DtypeName(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat:
      return "float32";
    case torch::kDouble:
      return "float64";
    case torch::kBFloat16:
      return "bfloat16";
    case torch::kHalf:
      return "float16";
    default:
      return c10::toString(dtype);
  }
}

double UnitRoundoff(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kDouble:
      return std::ldexp(1.0, -53);
    case torch::kBFloat16:
      return std::ldexp(1.0, -8);
    case torch::kHalf:
      return std::ldexp(1.0, -11);
    default:
      return std::ldexp(1.0, -24);
  }
}

torch::Tensor UpdateBound(const torch::Tensor& parameter, const LoraFAOptions& options, int steps) {
  const double u = UnitRoundoff(parameter.scalar_type());
  return 2.0 * steps * u * (1024.0 * options.lr() + 8.0 * parameter.detach().to(torch::kDouble).abs());
}

torch::Tensor Bfloat16ProductUpdateBound(const torch::Tensor& parameter, const LoraFAOptions& options, int steps) {
  return UpdateBound(parameter, options, steps) + steps * 16.0 * UnitRoundoff(torch::kBFloat16) * options.lr();
}

ScenarioResult ResultOf(const Comparison& comparison, const std::string& dtype, int steps) {
  ScenarioResult result;
  result.dtype = dtype;
  result.steps = steps;
  result.max_abs_diff = comparison.max_abs_diff();
  result.max_ulp = comparison.max_ulp();
  result.passed = comparison.passed();
  result.target = comparison.target() == Comparison::Target::kBitwise ? "bitwise" : "derived bound";
  result.detail = comparison.first_miss();
  return result;
}

}  // namespace lorafa::parity
