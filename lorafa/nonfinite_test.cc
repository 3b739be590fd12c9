// Non-finite numbers: the skip_nonfinite guard (a bad step changes nothing and the next one proceeds as
// if it never happened), PEFT's behaviour when the guard is off, and a non-finite A named as an error.
#include <limits>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "lorafa/optimizer.h"

namespace lorafa {
namespace {

using ::testing::HasSubstr;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Two pairs and one other parameter (float32), and the gradients of a few steps drawn up front, so two
// optimizers can be fed the same numbers.
struct Problem {
  std::vector<LoraPair> pairs;
  torch::Tensor other;
  std::vector<std::vector<torch::Tensor>> grads;  // per step: grad of B0, B1, other

  explicit Problem(int steps) {
    torch::manual_seed(21);
    for (auto [r, in, out] : {std::tuple{2, 16, 3}, std::tuple{4, 40, 7}}) {
      pairs.push_back({"layer" + std::to_string(pairs.size()) + ".default", torch::randn({r, in}),
                       (0.1 * torch::randn({out, r})).requires_grad_(), 1.5});
    }
    other = torch::randn({5}).requires_grad_();
    for (int t = 0; t < steps; ++t) {
      grads.push_back({torch::randn_like(pairs[0].B), torch::randn_like(pairs[1].B), torch::randn_like(other)});
    }
  }
  // Independent copies of the tensors (same values), for a twin optimizer.
  Problem Twin() const {
    Problem twin(0);
    twin.pairs = pairs;
    for (LoraPair& pair : twin.pairs) pair.B = pair.B.detach().clone().requires_grad_();
    twin.other = other.detach().clone().requires_grad_();
    twin.grads = grads;
    return twin;
  }
  void SetGrads(const std::vector<torch::Tensor>& step) {
    pairs[0].B.mutable_grad() = step[0].clone();
    pairs[1].B.mutable_grad() = step[1].clone();
    other.mutable_grad() = step[2].clone();
  }
  std::vector<torch::Tensor> Trained() const { return {pairs[0].B, pairs[1].B, other}; }
};

LoraFAOptions Guarded() { return LoraFAOptions(1e-2).weight_decay(0.1).skip_nonfinite(true); }

std::vector<torch::Tensor> StateTensors(const LoraFAOptimizer& optimizer, const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> tensors;
  for (const torch::Tensor& p : params) {
    const auto& state = static_cast<const LoraFAParamState&>(*optimizer.state().at(p.unsafeGetTensorImpl()));
    tensors.insert(tensors.end(), {state.exp_avg().clone(), state.exp_avg_sq().clone(),
                                   torch::tensor(state.step())});
  }
  return tensors;
}

void ExpectAllEqual(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "tensor " << i;
}

// A NaN or Inf anywhere — a B's raw gradient, another parameter's — skips the whole step.
class SkipNonfinite : public ::testing::TestWithParam<std::tuple<int, double>> {};

TEST_P(SkipNonfinite, BadStepChangesNothingAndTheRunContinuesAsIfItNeverHappened) {
  const auto [poisoned, value] = GetParam();
  Problem guarded(4);
  Problem twin = guarded.Twin();
  LoraFAOptimizer optimizer(guarded.pairs, {guarded.other}, Guarded());
  LoraFAOptimizer never_saw_it(twin.pairs, {twin.other}, Guarded());

  guarded.SetGrads(guarded.grads[0]);
  twin.SetGrads(twin.grads[0]);
  optimizer.step();
  never_saw_it.step();

  std::vector<torch::Tensor> bad = guarded.grads[1];
  bad[poisoned] = bad[poisoned].clone();
  bad[poisoned].view({-1})[0] = value;
  guarded.SetGrads(bad);
  std::vector<torch::Tensor> params_before;
  for (const torch::Tensor& p : guarded.Trained()) params_before.push_back(p.detach().clone());
  const std::vector<torch::Tensor> state_before = StateTensors(optimizer, guarded.Trained());
  optimizer.step();
  EXPECT_EQ(optimizer.skipped_steps(), 1);
  ExpectAllEqual(guarded.Trained(), params_before);
  ExpectAllEqual(StateTensors(optimizer, guarded.Trained()), state_before);

  for (int t = 2; t < 4; ++t) {  // the twin takes the same finite steps, without the bad one between
    guarded.SetGrads(guarded.grads[t]);
    twin.SetGrads(twin.grads[t]);
    optimizer.step();
    never_saw_it.step();
  }
  ExpectAllEqual(guarded.Trained(), twin.Trained());
  ExpectAllEqual(StateTensors(optimizer, guarded.Trained()), StateTensors(never_saw_it, twin.Trained()));
  EXPECT_EQ(never_saw_it.skipped_steps(), 0);
}

INSTANTIATE_TEST_SUITE_P(PoisonedGradient, SkipNonfinite,
                         ::testing::Combine(::testing::Values(0, 1, 2), ::testing::Values(kNaN, kInf, -kInf)));

TEST(SkipNonfinite, FirstStepSkippedCreatesNoState) {
  Problem problem(1);
  LoraFAOptimizer optimizer(problem.pairs, {problem.other}, Guarded());
  std::vector<torch::Tensor> bad = problem.grads[0];
  bad[2] = torch::full_like(bad[2], kNaN);
  problem.SetGrads(bad);
  optimizer.step();
  EXPECT_EQ(optimizer.skipped_steps(), 1);
  EXPECT_TRUE(optimizer.state().empty());
}

TEST(SkipNonfinite, OffByDefaultNaNSpreadsAsInPeft) {
  Problem problem(1);
  LoraFAOptimizer optimizer(problem.pairs, {problem.other}, LoraFAOptions(1e-2));
  std::vector<torch::Tensor> bad = problem.grads[0];
  bad[0] = bad[0].clone();
  bad[0].view({-1})[0] = kNaN;
  problem.SetGrads(bad);
  optimizer.step();
  EXPECT_EQ(optimizer.skipped_steps(), 0);
  EXPECT_TRUE(problem.pairs[0].B.isnan().any().item<bool>());
}

TEST(NonfiniteA, IsAnErrorNamingThePairAndChangesNothing) {
  Problem problem(2);
  LoraFAOptimizer optimizer(problem.pairs, {problem.other}, LoraFAOptions(1e-2));
  problem.SetGrads(problem.grads[0]);
  optimizer.step();
  std::vector<torch::Tensor> params_before;
  for (const torch::Tensor& p : problem.Trained()) params_before.push_back(p.detach().clone());
  const std::vector<torch::Tensor> state_before = StateTensors(optimizer, problem.Trained());
  for (double value : {kNaN, kInf}) {
    problem.pairs[1].A.index_put_({0, 0}, value);  // in place: the cached pseudo-inverse must be recomputed
    problem.SetGrads(problem.grads[1]);
    try {
      optimizer.step();
      ADD_FAILURE() << "a non-finite A was accepted";
    } catch (const c10::ValueError& error) {
      EXPECT_THAT(error.what(), HasSubstr("LoRA pair 'layer1.default'"));
      EXPECT_THAT(error.what(), HasSubstr("NaN or Inf"));
    }
    ExpectAllEqual(problem.Trained(), params_before);
    ExpectAllEqual(StateTensors(optimizer, problem.Trained()), state_before);
  }
}

}  // namespace
}  // namespace lorafa
