#include "lorafa/lora_names.h"

#include <gtest/gtest.h>

namespace lorafa {
namespace {

TEST(ParseLoraParameterName, LinearAAndBShareAPairKey) {
  auto a = ParseLoraParameterName("model.layers.0.q_proj.lora_A.default.weight");
  auto b = ParseLoraParameterName("model.layers.0.q_proj.lora_B.default.weight");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->module_path, "model.layers.0.q_proj");
  EXPECT_EQ(a->adapter, "default");
  EXPECT_EQ(a->role, LoraRole::kA);
  EXPECT_EQ(b->role, LoraRole::kB);
  EXPECT_EQ(a->PairKey(), "model.layers.0.q_proj.default");
  EXPECT_EQ(a->PairKey(), b->PairKey());
}

TEST(ParseLoraParameterName, AdaptersOfOneLayerGetDifferentKeys) {
  auto first = ParseLoraParameterName("q.lora_A.default.weight");
  auto second = ParseLoraParameterName("q.lora_A.fr.weight");
  ASSERT_TRUE(first && second);
  EXPECT_NE(first->PairKey(), second->PairKey());
}

TEST(ParseLoraParameterName, EmbeddingMatricesHaveNoWeightSuffix) {
  auto a = ParseLoraParameterName("embed_tokens.lora_embedding_A.default");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->module_path, "embed_tokens");
  EXPECT_EQ(a->role, LoraRole::kA);
  EXPECT_FALSE(ParseLoraParameterName("embed_tokens.lora_embedding_A.default.weight"));
}

TEST(ParseLoraParameterName, RootModuleHasEmptyPath) {
  auto b = ParseLoraParameterName("lora_B.default.weight");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->module_path, "");
  EXPECT_EQ(b->PairKey(), "default");
}

TEST(ParseLoraParameterName, NonMatrixLoraParametersAreNotPairMembers) {
  EXPECT_FALSE(ParseLoraParameterName("q.lora_B.default.bias"));
  EXPECT_FALSE(ParseLoraParameterName("q.lora_magnitude_vector.default.weight"));
  EXPECT_FALSE(ParseLoraParameterName("q.base_layer.weight"));
  EXPECT_FALSE(ParseLoraParameterName("q.lora_A..weight"));
  EXPECT_FALSE(ParseLoraParameterName("q.my_lora_A.default.weight"));
}

}  // namespace
}  // namespace lorafa
