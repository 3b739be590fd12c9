// LoraLinear and create_lorafa_optimizer: PEFT's names, pairing by name, freezing, and rejections.
#include "lorafa/create.h"

#include <map>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "lorafa/lora_embedding.h"
#include "lorafa/lora_linear.h"

namespace lorafa {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::map<std::string, torch::Tensor> ParametersByName(torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> by_name;
  for (const auto& item : module.named_parameters()) by_name[item.key()] = item.value();
  return by_name;
}

std::vector<std::string> Names(const std::map<std::string, torch::Tensor>& by_name) {
  std::vector<std::string> names;
  for (const auto& [name, tensor] : by_name) names.push_back(name);
  return names;
}

TEST(LoraLinear, ParametersAreNamedAsPeftNamesThem) {
  LoraLinear layer(LoraLinearOptions(8, 4, 2));
  EXPECT_THAT(Names(ParametersByName(*layer)),
              ElementsAre("base_layer.bias", "base_layer.weight", "lora_A.default.weight", "lora_B.default.weight"));
  EXPECT_FALSE(layer->base_layer->weight.requires_grad());
  EXPECT_TRUE(torch::equal(layer->lora_B["default"]->as<torch::nn::Linear>()->weight, torch::zeros({4, 2})));
}

TEST(LoraLinear, ForwardIsBasePlusScaledLowRankUpdate) {
  torch::manual_seed(20);
  LoraLinear layer(LoraLinearOptions(8, 4, 2).lora_alpha(6).use_rslora(true));
  auto by_name = ParametersByName(*layer);
  {
    torch::NoGradGuard no_grad;
    by_name["lora_B.default.weight"].normal_();
  }
  torch::Tensor x = torch::randn({3, 8});
  const double s = 6.0 / std::sqrt(2.0);  // rsLoRA: alpha / √r
  EXPECT_DOUBLE_EQ(layer->scaling(), s);
  torch::Tensor expected = torch::nn::functional::linear(x, by_name["base_layer.weight"], by_name["base_layer.bias"]) +
                           torch::matmul(torch::matmul(x, by_name["lora_A.default.weight"].t()),
                                         by_name["lora_B.default.weight"].t()) * s;
  // Same operations in the same order up to matmul association: float32 products of 8 terms, so a few
  // units of 2^-24 relative to |x|·|W| ≈ O(10): 1e-5 absolute.
  EXPECT_TRUE(torch::allclose(layer->forward(x), expected, /*rtol=*/0, /*atol=*/1e-5));
}

TEST(CreateLorafaOptimizer, PairsEveryAdapterOfALayerByName) {
  LoraLinear layer(LoraLinearOptions(16, 4, 2).lora_alpha(8));
  layer->add_adapter("fr", /*r=*/3, /*lora_alpha=*/9);
  auto optimizer = create_lorafa_optimizer(*layer);
  auto by_name = ParametersByName(*layer);
  ASSERT_EQ(optimizer->pairs().size(), 2u);
  std::map<std::string, LoraPair> pairs;
  for (const LoraPair& pair : optimizer->pairs()) pairs[pair.name] = pair;
  // Order-based pairing (PEFT) would see A_default, A_fr, B_default, B_fr and pair A_default with A_fr.
  EXPECT_TRUE(pairs["default"].A.is_same(by_name["lora_A.default.weight"]));
  EXPECT_TRUE(pairs["default"].B.is_same(by_name["lora_B.default.weight"]));
  EXPECT_TRUE(pairs["fr"].A.is_same(by_name["lora_A.fr.weight"]));
  EXPECT_TRUE(pairs["fr"].B.is_same(by_name["lora_B.fr.weight"]));
  EXPECT_DOUBLE_EQ(pairs["default"].scaling, 8.0 / 2);
  EXPECT_DOUBLE_EQ(pairs["fr"].scaling, 9.0 / 3);
  EXPECT_FALSE(by_name["lora_A.default.weight"].requires_grad());
  EXPECT_FALSE(by_name["lora_A.fr.weight"].requires_grad());
}

TEST(CreateLorafaOptimizer, LoraBBiasGoesOnTheAdamWPathWithoutShiftingPairs) {
  LoraLinear layer(LoraLinearOptions(16, 4, 2).lora_bias(true));
  auto optimizer = create_lorafa_optimizer(*layer);
  auto by_name = ParametersByName(*layer);
  ASSERT_EQ(optimizer->pairs().size(), 1u);
  EXPECT_TRUE(optimizer->pairs()[0].B.is_same(by_name["lora_B.default.weight"]));
  const auto& params = optimizer->param_groups()[0].params();
  ASSERT_EQ(params.size(), 2u);  // B, then the bias
  EXPECT_TRUE(params[1].is_same(by_name["lora_B.default.bias"]));
}

// A layer with an extra trainable "lora" parameter, like DoRA's magnitude vector.
struct DoraLikeImpl : LoraLinearImpl {
  DoraLikeImpl() : LoraLinearImpl(LoraLinearOptions(16, 4, 2)) {
    magnitude = register_parameter("lora_magnitude_vector", torch::ones({4}));
  }
  torch::Tensor magnitude;
};

TEST(CreateLorafaOptimizer, ExtraLoraNamedParametersDoNotShiftPairs) {
  auto layer = std::make_shared<DoraLikeImpl>();
  auto optimizer = create_lorafa_optimizer(*layer);
  ASSERT_EQ(optimizer->pairs().size(), 1u);
  EXPECT_TRUE(optimizer->pairs()[0].A.is_same(layer->lora_A["default"]->as<torch::nn::Linear>()->weight));
  const auto& params = optimizer->param_groups()[0].params();
  EXPECT_TRUE(params.back().is_same(layer->magnitude));
}

TEST(CreateLorafaOptimizer, NestedLayersArePairedWithinTheirOwnModule) {
  torch::nn::Sequential model(LoraLinear(LoraLinearOptions(8, 8, 2)), LoraLinear(LoraLinearOptions(8, 8, 4)));
  auto optimizer = create_lorafa_optimizer(*model);
  ASSERT_EQ(optimizer->pairs().size(), 2u);
  EXPECT_EQ(optimizer->pairs()[0].name, "0.default");
  EXPECT_EQ(optimizer->pairs()[0].A.size(0), 2);
  EXPECT_EQ(optimizer->pairs()[1].name, "1.default");
  EXPECT_EQ(optimizer->pairs()[1].A.size(0), 4);
}

TEST(CreateLorafaOptimizer, EmbeddingAdaptersArePairedAndTheirAFrozen) {
  LoraEmbedding embed(LoraEmbeddingOptions(/*num_embeddings=*/10, /*dim=*/6, /*r=*/2).lora_alpha(4));
  auto by_name = ParametersByName(*embed);
  EXPECT_THAT(Names(by_name), ElementsAre("base_layer.weight", "lora_embedding_A.default", "lora_embedding_B.default"));
  auto optimizer = create_lorafa_optimizer(*embed);
  ASSERT_EQ(optimizer->pairs().size(), 1u);
  EXPECT_TRUE(optimizer->pairs()[0].A.is_same(by_name["lora_embedding_A.default"]));
  EXPECT_TRUE(optimizer->pairs()[0].B.is_same(by_name["lora_embedding_B.default"]));
  EXPECT_DOUBLE_EQ(optimizer->pairs()[0].scaling, 2.0);
  // PEFT leaves lora_embedding_A trainable; lorafa freezes every A.
  EXPECT_FALSE(by_name["lora_embedding_A.default"].requires_grad());
}

// A module with LoRA-named parameters but no LoraLayer, so an unpaired name can be built.
struct LooseParameters : torch::nn::Module {};

TEST(CreateLorafaOptimizer, UnpairedMatricesAreRejectedByNameAndNothingIsFrozen) {
  auto module = std::make_shared<LooseParameters>();
  auto lora_a = std::make_shared<LooseParameters>();
  auto adapter = std::make_shared<LooseParameters>();
  torch::Tensor a = adapter->register_parameter("weight", torch::randn({2, 4}));
  lora_a->register_module("default", adapter);
  module->register_module("lora_A", lora_a);
  try {
    create_lorafa_optimizer(*module);
    FAIL() << "an A without B was accepted";
  } catch (const c10::ValueError& error) {
    EXPECT_THAT(error.what_without_backtrace(), HasSubstr("LoRA parameter 'lora_A.default.weight' has no matching B"));
  }
  EXPECT_TRUE(a.requires_grad()) << "validation must come before freezing";
}

TEST(CreateLorafaOptimizer, RejectedOptionsLeaveTheModelUntouched) {
  LoraLinear layer(LoraLinearOptions(16, 4, 2));
  EXPECT_THROW(create_lorafa_optimizer(*layer, LoraFAOptions(-1.0)), c10::ValueError);
  EXPECT_TRUE(layer->lora_A["default"]->as<torch::nn::Linear>()->weight.requires_grad());
}

TEST(CreateLorafaOptimizer, TrainingReducesTheLossOfALoraLinear) {
  torch::manual_seed(21);
  LoraLinear layer(LoraLinearOptions(16, 4, 4).lora_alpha(8));
  auto optimizer = create_lorafa_optimizer(*layer, LoraFAOptions(1e-2));
  torch::Tensor x = torch::randn({32, 16});
  torch::Tensor target = torch::randn({32, 4});
  auto loss_now = [&] { return torch::mse_loss(layer->forward(x), target); };
  const double initial = loss_now().item<double>();
  for (int t = 0; t < 50; ++t) {
    optimizer->zero_grad();
    loss_now().backward();
    optimizer->step();
  }
  EXPECT_LT(loss_now().item<double>(), initial);
}

}  // namespace
}  // namespace lorafa
