// LoraFAStep's routing: what it refuses, and which tensors leave the fused kernel for the per-tensor
// path. The kernels' arithmetic is checked in //testing/properties:fused_step_properties_test.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "lorafa/fused_hf_adamw.h"
#include "lorafa/step.h"

namespace lorafa {
namespace {

LoraFAStepLists OneParameter(const torch::Tensor& param, const torch::Tensor& grad) {
  LoraFAStepLists lists;
  lists.params = {param};
  lists.grads = {grad};
  lists.exp_avg = {torch::zeros_like(param)};
  lists.exp_avg_sq = {torch::zeros_like(param)};
  lists.step = {1};
  return lists;
}

TEST(LoraFAStep, ListsOfDifferentLengthsAreRejectedBeforeAnythingChanges) {
  torch::Tensor param = torch::randn({4, 3});
  const torch::Tensor before = param.clone();
  LoraFAStepLists lists = OneParameter(param, torch::randn({4, 3}));
  lists.step.push_back(2);  // two step counts for one parameter
  EXPECT_THROW(LoraFAStep(lists, LoraFAOptions()), c10::ValueError);
  EXPECT_TRUE(torch::equal(param, before));
  EXPECT_EQ(lists.exp_avg.front().abs().max().item<float>(), 0.0f);

  lists = OneParameter(param, torch::randn({4, 3}));
  lists.grad_B.push_back(torch::randn({4, 3}));  // a pair list without its B
  EXPECT_THROW(LoraFAStep(lists, LoraFAOptions()), c10::ValueError);
  EXPECT_TRUE(torch::equal(param, before));
}

// A parameter the kernel cannot address linearly (a transposed view) takes the per-tensor path, so
// the fused step gives exactly the per-tensor step's numbers for it.
TEST(LoraFAStep, NonContiguousParameterTakesThePerTensorPath) {
  torch::manual_seed(0);
  const torch::Tensor storage = torch::randn({5, 7});
  const torch::Tensor grad = torch::randn({7, 5});
  torch::Tensor fused = storage.clone().t(), per_tensor = storage.clone().t();
  ASSERT_FALSE(fused.is_contiguous());
  LoraFAStepLists fused_lists = OneParameter(fused, grad), per_tensor_lists = OneParameter(per_tensor, grad);
  fused_lists.exp_avg = {torch::zeros({5, 7}).t()};
  per_tensor_lists.exp_avg = {torch::zeros({5, 7}).t()};
  LoraFAStep(fused_lists, LoraFAOptions(1e-2));
  LoraFAStep(per_tensor_lists, LoraFAOptions(1e-2), StepKernel::kPerTensor);
  EXPECT_TRUE(torch::equal(fused, per_tensor));
  EXPECT_TRUE(torch::equal(fused_lists.exp_avg.front(), per_tensor_lists.exp_avg.front()));
  EXPECT_FALSE(torch::equal(fused, storage.t()));  // it did move
}

// FusedProjectionCpu, which the benchmark times as the step's projection, is the step's ĝ bit for bit:
// with β1 = 0 the step leaves m = 0·m + 1·ĝ, exactly ĝ. Ranks with and without a partial vector of
// columns on every instruction set, and row counts that leave partial row tiles.
TEST(FusedProjectionCpu, IsTheProjectionOfTheStep) {
  for (torch::ScalarType dtype : {torch::kFloat32, torch::kFloat64}) {
    for (int64_t r : {1, 3, 8, 17, 32, 64}) {
      torch::manual_seed(r);
      const torch::Tensor grad = torch::randn({37, r}, dtype), P = torch::randn({r, r}, dtype);
      const torch::Tensor out = torch::empty_like(grad);
      internal::FusedProjectionCpu({grad}, {P}, {out});

      LoraFAStepLists lists;
      lists.B = {torch::zeros_like(grad)};
      lists.grad_B = {grad};
      lists.exp_avg_B = {torch::zeros_like(grad)};
      lists.exp_avg_sq_B = {torch::zeros_like(grad)};
      lists.projection = {P};
      lists.scaling = {1.0};
      lists.step_B = {1};
      LoraFAStep(lists, LoraFAOptions(1e-3).betas({0.0, 0.999}));
      EXPECT_TRUE(torch::equal(out, lists.exp_avg_B.front())) << "r " << r << " dtype " << dtype;
    }
  }
}

TEST(FusedProjectionCpu, RejectsAMatrixOfTheWrongShapeNamingIt) {
  const torch::Tensor grad = torch::randn({5, 4}), out = torch::zeros({5, 4});
  try {
    internal::FusedProjectionCpu({grad}, {torch::randn({3, 3})}, {out});
    FAIL() << "no error";
  } catch (const c10::ValueError& error) {
    EXPECT_NE(std::string(error.what()).find("[3, 3]"), std::string::npos) << error.what();
  }
  EXPECT_EQ(out.abs().max().item<float>(), 0.0f);
}

}  // namespace
}  // namespace lorafa
