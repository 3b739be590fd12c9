// Accumulates how far lorafa's tensors are from PEFT's (or the reference's) over a run, against
// either a bitwise target or a per-element bound, remembering the first place it was missed.
//
//   Comparison comparison(Comparison::Target::kBitwise);
//   comparison.Add("B of q_proj", /*step=*/3, lorafa_B, peft_B);
//   if (!comparison.passed()) std::cerr << comparison.first_miss();
#pragma once

#include <cstdint>
#include <string>

#include <torch/types.h>

namespace lorafa::parity {

class Comparison {
 public:
  enum class Target { kBitwise, kBound };
  explicit Comparison(Target target) : target_(target) {}

  // Bitwise target: any difference is a miss. Bound target: |actual − expected| ≤ bound elementwise.
  void Add(const std::string& what, int step, const torch::Tensor& actual, const torch::Tensor& expected,
           const torch::Tensor& bound = torch::Tensor());
  // A value both sides report (a loss, a step count).
  void AddScalar(const std::string& what, int step, double actual, double expected, double bound = 0.0);
  // A miss that is not a tensor difference (PEFT raised, a state is missing).
  void Miss(const std::string& why);

  bool passed() const { return first_miss_.empty(); }
  const std::string& first_miss() const { return first_miss_; }
  double max_abs_diff() const { return max_abs_diff_; }
  int64_t max_ulp() const { return max_ulp_; }
  Target target() const { return target_; }

 private:
  Target target_;
  double max_abs_diff_ = 0.0;
  int64_t max_ulp_ = 0;
  std::string first_miss_;
};

}  // namespace lorafa::parity
