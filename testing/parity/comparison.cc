#include "testing/parity/comparison.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "testing/parity/ulp.h"

namespace lorafa::parity {

void Comparison::Add(const std::string& what, int step, const torch::Tensor& actual_anywhere,
                     const torch::Tensor& expected_anywhere, const torch::Tensor& bound_anywhere) {
  // Compared on the CPU, whatever device each side ran on.
  const torch::Tensor actual = actual_anywhere.detach().cpu(), expected = expected_anywhere.detach().cpu();
  const torch::Tensor bound = bound_anywhere.defined() ? bound_anywhere.cpu() : bound_anywhere;
  if (actual.sizes() != expected.sizes() || actual.scalar_type() != expected.scalar_type()) {
    Miss(absl::StrCat(what, " at step ", step, ": shape or dtype differs"));
    return;
  }
  const double diff = MaxAbsDiff(actual, expected);
  max_abs_diff_ = std::max(max_abs_diff_, diff);
  max_ulp_ = std::max(max_ulp_, MaxUlpDistance(actual, expected));
  bool within = false;
  if (target_ == Target::kBitwise || !bound.defined()) {
    within = diff == 0.0;
  } else {
    torch::Tensor excess = (actual.to(torch::kDouble) - expected.to(torch::kDouble)).abs() - bound.to(torch::kDouble);
    within = !excess.isnan().any().item<bool>() && excess.max().item<double>() <= 0.0;
  }
  if (!within) Miss(absl::StrCat(what, " at step ", step, ": max |diff| ", diff));
}

void Comparison::AddScalar(const std::string& what, int step, double actual, double expected, double bound) {
  const double diff = std::abs(actual - expected);
  max_abs_diff_ = std::max(max_abs_diff_, diff);
  const bool within = target_ == Target::kBitwise ? actual == expected : diff <= bound;
  if (!within) Miss(absl::StrCat(what, " at step ", step, ": ", actual, " vs ", expected));
}

void Comparison::Miss(const std::string& why) {
  if (first_miss_.empty()) first_miss_ = why;
}

}  // namespace lorafa::parity
