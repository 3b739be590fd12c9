// LoraFAOptimizer's contract: what it changes, what it leaves alone, what it rejects, what it keeps.
#include "lorafa/optimizer.h"

#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/serialize.h>
#include <torch/torch.h>

namespace lorafa {
namespace {

using ::testing::HasSubstr;

// One pair (r = 4, in = 16, out = 6) and one other parameter, float64, with gradients.
struct Fixture {
  torch::Tensor A = torch::randn({4, 16}, torch::kFloat64);
  torch::Tensor B = torch::randn({6, 4}, torch::kFloat64).requires_grad_();
  torch::Tensor other = torch::randn({5}, torch::kFloat64).requires_grad_();

  Fixture() { SetGrads(); }
  void SetGrads() {
    B.mutable_grad() = torch::randn_like(B);
    other.mutable_grad() = torch::randn_like(other);
  }
  std::vector<LoraPair> Pairs() const { return {{"layer.default", A, B, 2.0}}; }
};

// Writes `optimizer` to bytes and reads them into `into`.
void CopyState(const torch::optim::Optimizer& optimizer, torch::optim::Optimizer& into) {
  std::stringstream bytes;
  torch::save(optimizer, bytes);
  torch::load(into, bytes);
}

TEST(LoraFAOptimizer, FrozenAIsBitIdenticalAndHasNoStateWhileBAndOthersMove) {
  torch::manual_seed(0);
  Fixture f;
  torch::Tensor a_before = f.A.clone(), b_before = f.B.detach().clone(), other_before = f.other.detach().clone();
  f.A.mutable_grad() = torch::randn_like(f.A);  // a gradient on A must be ignored
  LoraFAOptimizer optimizer(f.Pairs(), {f.other}, LoraFAOptions(1e-2));
  for (int t = 0; t < 5; ++t) {
    f.SetGrads();
    optimizer.step();
  }
  EXPECT_TRUE(torch::equal(f.A, a_before));
  EXPECT_EQ(optimizer.state().count(f.A.unsafeGetTensorImpl()), 0u);
  EXPECT_FALSE(torch::equal(f.B, b_before));
  EXPECT_FALSE(torch::equal(f.other, other_before));
  ASSERT_NE(optimizer.pair_state(0), nullptr);
  EXPECT_EQ(optimizer.pair_state(0)->step(), 5);
}

TEST(LoraFAOptimizer, BWithoutGradientIsSkippedInsteadOfRaising) {
  torch::manual_seed(1);
  Fixture f;
  f.B.mutable_grad() = torch::Tensor();
  torch::Tensor b_before = f.B.detach().clone();
  LoraFAOptimizer optimizer(f.Pairs(), {f.other});
  optimizer.step();
  EXPECT_TRUE(torch::equal(f.B, b_before));
  EXPECT_EQ(optimizer.pair_state(0), nullptr);
  EXPECT_EQ(optimizer.state().size(), 1u) << "only the other parameter has state";
}

TEST(LoraFAOptimizer, ClosureRunsWithGradEnabledAndItsLossIsReturned) {
  torch::manual_seed(2);
  Fixture f;
  LoraFAOptimizer optimizer(f.Pairs(), {f.other});
  bool grad_mode_in_closure = false;
  torch::Tensor loss = optimizer.step([&] {
    grad_mode_in_closure = torch::GradMode::is_enabled();
    return torch::tensor(3.5);
  });
  EXPECT_TRUE(grad_mode_in_closure);
  EXPECT_EQ(loss.item<double>(), 3.5);
}

TEST(LoraFAOptimizer, PseudoInverseIsComputedOnceWhileAIsUnchanged) {
  torch::manual_seed(3);
  Fixture f;
  LoraFAOptimizer optimizer(f.Pairs(), {});
  for (int t = 0; t < 4; ++t) optimizer.step();
  EXPECT_EQ(optimizer.pinv_computations(0), 1);
}

TEST(LoraFAOptimizer, ModifyingAInPlaceInvalidatesTheCachedPseudoInverse) {
  torch::manual_seed(4);
  Fixture f;
  LoraFAOptimizer cached(f.Pairs(), {});
  cached.step();  // caches (A Aᵀ + δI)⁺ for the original A

  {
    torch::NoGradGuard no_grad;
    f.A.mul_(3.0).add_(0.25);
  }
  // A fresh optimizer with the same moments computes its pseudo-inverse from the modified A.
  torch::Tensor b_twin = f.B.detach().clone().requires_grad_();
  b_twin.mutable_grad() = f.B.grad().clone();
  LoraFAOptimizer fresh({{"layer.default", f.A, b_twin, 2.0}}, {});
  CopyState(cached, fresh);
  {
    torch::NoGradGuard no_grad;
    b_twin.copy_(f.B);
  }

  cached.step();
  fresh.step();
  EXPECT_EQ(cached.pinv_computations(0), 2);
  EXPECT_TRUE(torch::equal(f.B, b_twin));
}

TEST(LoraFAOptimizer, SaveAfterTenStepsLoadAndContinueGiveIdenticalTensors) {
  torch::manual_seed(5);
  Fixture f;
  LoraFAOptions options(1e-2);
  options.weight_decay(0.01);
  LoraFAOptimizer original(f.Pairs(), {f.other}, options);
  std::vector<std::pair<torch::Tensor, torch::Tensor>> grads;
  for (int t = 0; t < 20; ++t) grads.emplace_back(torch::randn_like(f.B), torch::randn_like(f.other));
  auto step_with = [](torch::Tensor& b, torch::Tensor& other, torch::optim::Optimizer& optimizer,
                      const std::pair<torch::Tensor, torch::Tensor>& g) {
    b.mutable_grad() = g.first.clone();
    other.mutable_grad() = g.second.clone();
    optimizer.step();
  };
  for (int t = 0; t < 10; ++t) step_with(f.B, f.other, original, grads[t]);

  torch::Tensor b_copy = f.B.detach().clone().requires_grad_();
  torch::Tensor other_copy = f.other.detach().clone().requires_grad_();
  LoraFAOptimizer restored({{"layer.default", f.A, b_copy, 2.0}}, {other_copy}, LoraFAOptions(5.0));
  CopyState(original, restored);
  EXPECT_EQ(static_cast<const LoraFAOptions&>(restored.param_groups()[0].options()), options);

  for (int t = 10; t < 20; ++t) {
    step_with(f.B, f.other, original, grads[t]);
    step_with(b_copy, other_copy, restored, grads[t]);
  }
  EXPECT_TRUE(torch::equal(f.B, b_copy));
  EXPECT_TRUE(torch::equal(f.other, other_copy));
  EXPECT_TRUE(*original.pair_state(0) == *restored.pair_state(0));
}

TEST(LoraFAOptimizer, StateFollowsParametersToAnotherDtype) {
  torch::manual_seed(6);
  Fixture f;
  LoraFAOptimizer optimizer(f.Pairs(), {});
  optimizer.step();
  {
    torch::NoGradGuard no_grad;
    f.A.set_data(f.A.to(torch::kFloat32));
    f.B.set_data(f.B.to(torch::kFloat32));
  }
  f.B.mutable_grad() = torch::randn_like(f.B);
  optimizer.step();
  EXPECT_EQ(optimizer.pair_state(0)->exp_avg().scalar_type(), torch::kFloat32);
  EXPECT_EQ(optimizer.pair_state(0)->step(), 2);
  EXPECT_EQ(optimizer.pinv_computations(0), 2);
}

// --- Rejected input: a ValueError that names the value, and nothing modified. ---

std::string ConstructionError(const std::vector<LoraPair>& pairs, const std::vector<torch::Tensor>& others,
                              const LoraFAOptions& options) {
  try {
    LoraFAOptimizer optimizer(pairs, others, options);
  } catch (const c10::ValueError& error) {
    return error.what_without_backtrace();
  }
  return "no error";
}

TEST(LoraFAOptimizer, InvalidHyperparametersAreRejectedByName) {
  torch::manual_seed(7);
  Fixture f;
  EXPECT_THAT(ConstructionError(f.Pairs(), {}, LoraFAOptions(-1.0)), HasSubstr("Invalid learning rate: -1"));
  EXPECT_THAT(ConstructionError(f.Pairs(), {}, LoraFAOptions().betas({1.0, 0.999})),
              HasSubstr("Invalid beta parameter at index 0: 1"));
  EXPECT_THAT(ConstructionError(f.Pairs(), {}, LoraFAOptions().betas({0.9, -0.5})),
              HasSubstr("Invalid beta parameter at index 1: -0.5"));
  EXPECT_THAT(ConstructionError(f.Pairs(), {}, LoraFAOptions().eps(-1e-8)), HasSubstr("Invalid epsilon value: -1e-08"));
  EXPECT_THAT(ConstructionError(f.Pairs(), {}, LoraFAOptions().weight_decay(-0.1)),
              HasSubstr("Invalid weight_decay value: -0.1"));
  EXPECT_THAT(ConstructionError(f.Pairs(), {}, LoraFAOptions().pinv_delta(-1.0)),
              HasSubstr("Invalid pinv_delta value: -1"));
  EXPECT_THAT(ConstructionError(f.Pairs(), {}, LoraFAOptions(std::nan(""))), HasSubstr("Invalid learning rate: nan"));
}

TEST(LoraFAOptimizer, MalformedPairsAreRejectedByName) {
  torch::manual_seed(8);
  Fixture f;
  torch::Tensor wrong_rank_b = torch::zeros({6, 3}, torch::kFloat64);
  EXPECT_THAT(ConstructionError({{"q.default", f.A, wrong_rank_b, 2.0}}, {}, {}),
              HasSubstr("LoRA pair 'q.default': B has shape [6, 3] but A has rank r=4"));
  EXPECT_THAT(ConstructionError({{"q.default", f.A, f.B, 0.0}}, {}, {}),
              HasSubstr("LoRA pair 'q.default': scaling must be finite and non-zero, got 0"));
  EXPECT_THAT(ConstructionError({{"q.default", f.A, f.B, std::numeric_limits<double>::infinity()}}, {}, {}),
              HasSubstr("scaling must be finite and non-zero, got inf"));
  EXPECT_THAT(ConstructionError({{"q.default", f.A.to(torch::kFloat32), f.B, 2.0}}, {}, {}),
              HasSubstr("LoRA pair 'q.default': A is Float but B is Double"));
  EXPECT_THAT(ConstructionError({{"q.default", torch::Tensor(), f.B, 2.0}}, {}, {}),
              HasSubstr("LoRA pair 'q.default': A is undefined"));
  EXPECT_THAT(ConstructionError({{"q.default", torch::zeros({2, 3, 4}, torch::kFloat64), f.B, 2.0}}, {}, {}),
              HasSubstr("A must be (r, in) or (r, in, kh, kw), got shape [2, 3, 4]"));
}

TEST(LoraFAOptimizer, ATensorInTwoRolesIsRejected) {
  torch::manual_seed(9);
  Fixture f;
  EXPECT_THAT(ConstructionError(f.Pairs(), {f.B}, {}),
              HasSubstr("a tensor appears in two roles: B of LoRA pair 'layer.default' and other parameter 0"));
  EXPECT_THAT(ConstructionError({{"p", f.A, f.B, 1.0}, {"q", f.A, f.B, 1.0}}, {}, {}),
              HasSubstr("A of LoRA pair 'p' and A of LoRA pair 'q'"));
}

TEST(LoraFAOptimizer, FailedLoadLeavesStateAndOptionsUntouched) {
  torch::manual_seed(10);
  Fixture f;
  LoraFAOptimizer optimizer(f.Pairs(), {f.other}, LoraFAOptions(1e-2));
  for (int t = 0; t < 3; ++t) optimizer.step();
  LoraFAParamState state_before = *optimizer.pair_state(0);

  // An archive from an optimizer whose B has another shape.
  torch::Tensor A = torch::randn({4, 16}, torch::kFloat64);
  torch::Tensor wide_B = torch::randn({9, 4}, torch::kFloat64).requires_grad_();
  torch::Tensor other = torch::randn({5}, torch::kFloat64).requires_grad_();
  wide_B.mutable_grad() = torch::randn_like(wide_B);
  other.mutable_grad() = torch::randn_like(other);
  LoraFAOptimizer mismatched({{"layer.default", A, wide_B, 2.0}}, {other}, LoraFAOptions(0.5));
  mismatched.step();

  try {
    CopyState(mismatched, optimizer);
    FAIL() << "load accepted state of the wrong shape";
  } catch (const c10::ValueError& error) {
    EXPECT_THAT(error.what_without_backtrace(), HasSubstr("loaded optimizer state has shape [9, 4] for a parameter of shape [6, 4]"));
  }
  EXPECT_TRUE(*optimizer.pair_state(0) == state_before);
  EXPECT_EQ(optimizer.param_groups()[0].options().get_lr(), 1e-2);
}

}  // namespace
}  // namespace lorafa

namespace lorafa {
namespace {

// A pseudo-inverse that cannot be computed (here: a non-finite A) throws before any parameter or
// state changes, also for pairs listed before the failing one.
TEST(LoraFAOptimizer, FailingPseudoInverseLeavesEveryTensorAndStateUntouched) {
  torch::manual_seed(11);
  Fixture f;
  torch::Tensor A2 = torch::randn({3, 8}, torch::kFloat64);
  torch::Tensor B2 = torch::randn({5, 3}, torch::kFloat64).requires_grad_();
  B2.mutable_grad() = torch::randn_like(B2);
  LoraFAOptimizer optimizer({{"first", f.A, f.B, 2.0}, {"second", A2, B2, 2.0}}, {f.other}, LoraFAOptions(1e-2));
  optimizer.step();
  const torch::Tensor B_before = f.B.detach().clone(), B2_before = B2.detach().clone(),
                      other_before = f.other.detach().clone();
  const torch::Tensor m_before = optimizer.pair_state(0)->exp_avg().clone();
  A2.index_put_({0, 0}, std::numeric_limits<double>::quiet_NaN());  // in place: the cache must recompute
  EXPECT_THROW(optimizer.step(), c10::Error);
  EXPECT_EQ(optimizer.pair_state(0)->step(), 1);
  EXPECT_EQ(optimizer.pair_state(1)->step(), 1);
  EXPECT_TRUE(torch::equal(f.B, B_before));
  EXPECT_TRUE(torch::equal(B2, B2_before));
  EXPECT_TRUE(torch::equal(f.other, other_before));
  EXPECT_TRUE(torch::equal(optimizer.pair_state(0)->exp_avg(), m_before));
}

}  // namespace
}  // namespace lorafa
