// Data-parallel LoRA-FA with real processes: this test binary spawns 2 or 3 copies of itself as ranks
// (Gloo on 127.0.0.1, a FileStore rendezvous in the test's temporary directory). Each rank trains the
// same float64 LoRA layer for 10 steps on its own shard of a 24-example batch and writes what it ended
// with; the test then compares the ranks with each other and with one-process runs of the same batch.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/torch.h>

#include "lorafa/distributed/gradient_sync.h"
#include "lorafa/distributed/process_group.h"
#include "lorafa/distributed/sharded_optimizer.h"
#include "lorafa/lorafa.h"
#include "testing/eigen_tensor.h"
#include "testing/tensor_compare.h"

extern char** environ;

namespace lorafa::distributed {
namespace {

using lorafa::testing::ToEigen;
using lorafa::testing::WithinBound;

constexpr int64_t kBatch = 24;  // divisible by 2 and 3: every rank gets an equal shard
constexpr int64_t kWidth = 48;  // in = out, so A and B have the same size
constexpr int64_t kRank = 8;
constexpr int kSteps = 10;
constexpr double kScaling = 16.0 / kRank;
constexpr double kUnitRoundoff = std::numeric_limits<double>::epsilon() / 2;  // 2^-53

// The model every rank and every one-process run trains: a frozen 48→48 linear layer with four rank-8
// adapters (four LoRA pairs) and a trainable lora_B bias on the first (an "other" parameter), float64.
const std::vector<std::string> kAdapters = {"default", "second", "third", "fourth"};

struct Model {
  LoraLinear layer{nullptr};
  std::unique_ptr<LoraFAOptimizer> plain;  // built by the caller that wants it
  torch::Tensor A(size_t k) { return layer->lora_A[kAdapters[k]]->as<torch::nn::Linear>()->weight; }
  torch::Tensor B(size_t k) { return layer->lora_B[kAdapters[k]]->as<torch::nn::Linear>()->weight; }
  torch::Tensor bias() { return layer->lora_B["default"]->as<torch::nn::Linear>()->bias; }
  std::vector<LoraPair> pairs() {
    std::vector<LoraPair> pairs;
    for (size_t k = 0; k < kAdapters.size(); ++k) pairs.push_back({"layer." + kAdapters[k], A(k), B(k), kScaling});
    return pairs;
  }
  std::vector<torch::Tensor> others() { return {bias()}; }
  std::vector<torch::Tensor> base() { return {layer->base_layer->weight, layer->base_layer->bias}; }
};

LoraFAOptions Options() { return LoraFAOptions(1e-2).weight_decay(0.01); }

// Parameters from `seed`. The first B starts non-zero so the first forward uses it; the other B start
// at zero, as PEFT initialises them.
Model MakeModel(uint64_t seed) {
  torch::manual_seed(seed);
  Model model;
  model.layer = LoraLinear(LoraLinearOptions(kWidth, kWidth, kRank).lora_alpha(16).lora_bias(true));
  for (size_t k = 1; k < kAdapters.size(); ++k) model.layer->add_adapter(kAdapters[k], kRank, 16);
  model.layer->to(torch::kFloat64);
  torch::NoGradGuard no_grad;
  model.B(0).normal_(0, 0.1);
  model.bias().normal_(0, 0.1);
  for (size_t k = 0; k < kAdapters.size(); ++k) model.A(k).requires_grad_(false);
  for (torch::Tensor& t : model.base()) t.requires_grad_(false);
  return model;
}

// The whole batch: inputs and targets, the same in every process.
std::pair<torch::Tensor, torch::Tensor> Batch() {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(99);
  auto options = torch::TensorOptions().dtype(torch::kFloat64);
  return {at::randn({kBatch, kWidth}, generator, options), at::randn({kBatch, kWidth}, generator, options)};
}

torch::Tensor Shard(const torch::Tensor& t, int rank, int world) {
  const int64_t rows = kBatch / world;
  return t.narrow(0, rank * rows, rows);
}

void Backward(Model& model, const torch::Tensor& x, const torch::Tensor& target) {
  torch::mse_loss(model.layer(x), target).backward();
}

// ---- The rank side: run by the spawned copies of this binary -------------------------------------------

int RunRank() {
  const int rank = std::atoi(std::getenv("RANK"));
  const int world = std::atoi(std::getenv("WORLD_SIZE"));
  const bool sharded = std::string(std::getenv("LORAFA_TEST_MODE")) == "zero1";
  const std::string out = std::getenv("LORAFA_TEST_OUT");

  auto store = c10::make_intrusive<c10d::FileStore>(std::getenv("LORAFA_TEST_STORE"), world);
  ProcessGroupOptions group_options;
  group_options.timeout = std::chrono::seconds(60);
  group_options.gloo_hostname = "127.0.0.1";
  auto group = MakeProcessGroup(store, rank, world, group_options);

  // Every rank but 0 starts from other values: only the broadcast can make them agree.
  Model model = MakeModel(rank == 0 ? 7 : 1000 + rank);
  GradientSynchronizer sync(group, model.pairs(), model.others());
  sync.BroadcastParameters(model.base());
  std::unique_ptr<ShardedLoraFAOptimizer> zero1;
  if (sharded) {
    zero1 = std::make_unique<ShardedLoraFAOptimizer>(group, model.pairs(), model.others(), Options());
  } else {
    model.plain = std::make_unique<LoraFAOptimizer>(model.pairs(), model.others(), Options());
  }
  torch::serialize::OutputArchive saved;
  auto save = [&saved](const std::string& key, const torch::Tensor& t) { saved.write(key, t.detach().clone()); };
  for (size_t k = 0; k < kAdapters.size(); ++k) {
    save("initial/A" + std::to_string(k), model.A(k));
    save("initial/B" + std::to_string(k), model.B(k));
  }
  save("initial/bias", model.bias());
  save("initial/W", model.base()[0]);
  save("initial/b", model.base()[1]);

  const auto [x, target] = Batch();
  for (int step = 0; step < kSteps; ++step) {
    if (sharded) zero1->zero_grad(); else model.plain->zero_grad();
    Backward(model, Shard(x, rank, world), Shard(target, rank, world));
    sync.AverageGradients();
    if (step == 0) {
      for (size_t k = 0; k < kAdapters.size(); ++k) save("grad1/B" + std::to_string(k), model.B(k).grad());
      save("grad1/bias", model.bias().grad());
    }
    if (sharded) zero1->step(); else model.plain->step();
  }
  std::vector<int64_t> owners;
  for (size_t k = 0; k < kAdapters.size(); ++k) {
    save("final/B" + std::to_string(k), model.B(k));
    const LoraFAParamState* state = sharded ? zero1->pair_state(k) : model.plain->pair_state(k);
    if (state) {  // only the owner keeps a pair's moments under ZeRO-1
      save("exp_avg/B" + std::to_string(k), state->exp_avg());
      save("exp_avg_sq/B" + std::to_string(k), state->exp_avg_sq());
    }
    owners.push_back(sharded ? zero1->owner_of_pair(k) : -1);
  }
  owners.push_back(sharded ? zero1->owner_of_other(0) : -1);
  save("final/bias", model.bias());

  bool bucket_holds_A = false;
  for (const auto& bucket : sync.buckets()) {
    for (const torch::Tensor& t : bucket) {
      for (size_t k = 0; k < kAdapters.size(); ++k) bucket_holds_A |= t.is_same(model.A(k));
    }
  }
  const int64_t state_bytes = sharded ? zero1->state_bytes() : model.plain->state_bytes();
  save("facts", torch::tensor({state_bytes, sync.bytes_per_step(), sync.lora_adamw_bytes_per_step(),
                               static_cast<int64_t>(bucket_holds_A)}));
  save("owners", torch::tensor(owners));
  saved.save_to(out);
  return 0;
}

// ---- The test side ---------------------------------------------------------------------------------------

// What one rank wrote.
struct RankResult {
  std::map<std::string, torch::Tensor> tensors;  // by the keys RunRank wrote
  int64_t state_bytes, bytes_per_step, lora_adamw_bytes;
  bool bucket_holds_A;
  std::vector<int64_t> owners;  // per pair, then the bias (−1 without ZeRO-1)
  const torch::Tensor& operator[](const std::string& key) const { return tensors.at(key); }
  bool has(const std::string& key) const { return tensors.count(key) > 0; }
};

RankResult ReadRank(const std::string& path) {
  torch::serialize::InputArchive archive;
  archive.load_from(path);
  RankResult result;
  for (const std::string& key : archive.keys()) {
    torch::Tensor t;
    archive.read(key, t);
    result.tensors[key] = t;
  }
  const torch::Tensor& facts = result["facts"];
  result.state_bytes = facts[0].item<int64_t>();
  result.bytes_per_step = facts[1].item<int64_t>();
  result.lora_adamw_bytes = facts[2].item<int64_t>();
  result.bucket_holds_A = facts[3].item<int64_t>() != 0;
  const torch::Tensor& owners = result["owners"];
  for (int64_t i = 0; i < owners.numel(); ++i) result.owners.push_back(owners[i].item<int64_t>());
  return result;
}

// Spawns `world` ranks of this binary and returns what each wrote. Fails the test if one exits non-zero.
std::vector<RankResult> RunRanks(int world, const std::string& mode) {
  const std::string dir = std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp";
  static int launch = 0;
  const std::string tag = dir + "/dp_" + mode + "_" + std::to_string(world) + "_" + std::to_string(launch++);
  std::vector<pid_t> pids;
  for (int rank = 0; rank < world; ++rank) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string entry = *e;
      if (entry.rfind("RANK=", 0) != 0 && entry.rfind("WORLD_SIZE=", 0) != 0) env_strings.push_back(entry);
    }
    env_strings.push_back("LORAFA_TEST_RANK_PROCESS=1");
    env_strings.push_back("RANK=" + std::to_string(rank));
    env_strings.push_back("WORLD_SIZE=" + std::to_string(world));
    env_strings.push_back("LORAFA_TEST_MODE=" + mode);
    env_strings.push_back("LORAFA_TEST_STORE=" + tag + ".store");
    env_strings.push_back("LORAFA_TEST_OUT=" + tag + ".rank" + std::to_string(rank) + ".pt");
    std::vector<char*> env;
    for (std::string& s : env_strings) env.push_back(s.data());
    env.push_back(nullptr);
    std::string self = "/proc/self/exe";
    char* argv[] = {self.data(), nullptr};
    pid_t pid;
    EXPECT_EQ(posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, env.data()), 0);
    pids.push_back(pid);
  }
  bool all_exited_cleanly = true;
  for (int rank = 0; rank < world; ++rank) {
    int status = 0;
    waitpid(pids[rank], &status, 0);
    const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    EXPECT_TRUE(clean) << "rank " << rank << " of " << world << " failed";
    all_exited_cleanly &= clean;
  }
  std::vector<RankResult> results;
  if (!all_exited_cleanly) return results;
  for (int rank = 0; rank < world; ++rank) results.push_back(ReadRank(tag + ".rank" + std::to_string(rank) + ".pt"));
  return results;
}

bool BitwiseEqual(const torch::Tensor& a, const torch::Tensor& b) {
  return a.defined() && b.defined() && torch::equal(a, b);  // torch::equal: same sizes and values
}

std::string Key(const std::string& prefix, size_t k) { return prefix + std::to_string(k); }

// One process, whole batch, the shards' gradients accumulated in rank order and divided by the world
// size: for two ranks this is the same sum the all-reduce forms (a + b = b + a), so the same numbers.
Model RunAccumulatingShards(int world, std::vector<torch::Tensor>* first_grads) {
  Model model = MakeModel(7);
  model.plain = std::make_unique<LoraFAOptimizer>(model.pairs(), model.others(), Options());
  const auto [x, target] = Batch();
  for (int step = 0; step < kSteps; ++step) {
    model.plain->zero_grad();
    for (int rank = 0; rank < world; ++rank) Backward(model, Shard(x, rank, world), Shard(target, rank, world));
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> grads;
    for (size_t k = 0; k < kAdapters.size(); ++k) grads.push_back(model.B(k).grad());
    grads.push_back(model.bias().grad());
    for (torch::Tensor& g : grads) g.div_(world);
    if (step == 0) {
      for (const torch::Tensor& g : grads) first_grads->push_back(g.clone());
    }
    model.plain->step();
  }
  return model;
}

class DataParallel : public ::testing::TestWithParam<int> {};

TEST_P(DataParallel, EveryRankEndsBitwiseIdenticalAndOnlyBAndOthersAreAllReduced) {
  const int world = GetParam();
  const std::vector<RankResult> ranks = RunRanks(world, "plain");
  ASSERT_EQ(ranks.size(), static_cast<size_t>(world));
  const RankResult& first = ranks[0];
  // What is all-reduced: four B (48×8) and the lora_B bias (48), never an A (8×48): counted from the buckets.
  const int64_t B_and_bias = (4 * kWidth * kRank + kWidth) * 8, A = 4 * kRank * kWidth * 8;
  for (int rank = 0; rank < world; ++rank) {
    const RankResult& r = ranks[rank];
    for (const auto& [key, value] : first.tensors) {
      EXPECT_TRUE(r.has(key) && BitwiseEqual(r[key], value)) << "rank " << rank << " differs from rank 0 in " << key;
    }
    EXPECT_FALSE(r.bucket_holds_A);
    EXPECT_EQ(r.bytes_per_step, B_and_bias);
    EXPECT_EQ(r.lora_adamw_bytes, B_and_bias + A);
    EXPECT_LE(static_cast<double>(r.bytes_per_step), 0.55 * static_cast<double>(r.lora_adamw_bytes));
  }
  for (size_t k = 0; k < kAdapters.size(); ++k) {
    EXPECT_FALSE(BitwiseEqual(first[Key("final/B", k)], first[Key("initial/B", k)])) << "B" << k << " never moved";
  }
}

TEST_P(DataParallel, FirstAveragedGradientIsTheWholeBatchGradientWithinRounding) {
  const int world = GetParam();
  const std::vector<RankResult> ranks = RunRanks(world, "plain");
  ASSERT_EQ(ranks.size(), static_cast<size_t>(world));
  const RankResult& r = ranks[0];
  // The whole batch in one pass, at the parameters every rank started from (rank 0's, seed 7).
  Model model = MakeModel(7);
  const auto [x, target] = Batch();
  Backward(model, x, target);

  // Both paths compute g_Bk = s·Σ_i δ_i (A_k x_i)ᵀ and g_bias = Σ_i δ_i with δ_i = 2(y_i − t_i)/(N·m), in
  // different summation orders (shards, all-reduce, GEMM blocking). Each computed value lies within
  // γ_K·M of the exact one (Higham §3.1, first order), where M sums the magnitudes of every term:
  //   D_i = 2/(N·m)·(|W||x_i| + |b| + s·Σ_k|B_k|(|A_k||x_i|) + |b_B| + |t_i|)   (δ_i's own rounding)
  //   M_Bk = s·Σ_i (|δ_i| + D_i)(|A_k||x_i|)ᵀ,   M_bias = Σ_i (|δ_i| + D_i)
  // and K = in + 4r + N + 8 counts the longest chain of roundings (A x, the forward sums over in and the
  // four adapters, the batch sum, the all-reduce, ÷ world). The two paths differ by at most 2·γ_K·M.
  torch::NoGradGuard no_grad;
  const double N = kBatch, m = kWidth, K = kWidth + 4 * kRank + kBatch + 8;
  const double gamma = K * kUnitRoundoff / (1 - K * kUnitRoundoff);
  std::vector<torch::Tensor> ax;  // |A_k||x_i|, rows i
  torch::Tensor lora_terms = torch::zeros({kBatch, kWidth}, torch::kFloat64);
  for (size_t k = 0; k < kAdapters.size(); ++k) {
    ax.push_back(x.abs().matmul(r[Key("initial/A", k)].abs().t()));
    lora_terms += kScaling * ax[k].matmul(r[Key("initial/B", k)].abs().t());
  }
  const torch::Tensor delta = 2.0 / (N * m) * (model.layer(x) - target);
  const torch::Tensor D = 2.0 / (N * m) *
                          (x.abs().matmul(r["initial/W"].abs().t()) + r["initial/b"].abs() + lora_terms +
                           r["initial/bias"].abs() + target.abs());
  for (size_t k = 0; k < kAdapters.size(); ++k) {
    const torch::Tensor bound = 2 * gamma * kScaling * (delta.abs() + D).t().matmul(ax[k]);
    EXPECT_TRUE(WithinBound(ToEigen(r[Key("grad1/B", k)]), ToEigen(model.B(k).grad()), ToEigen(bound))) << "B" << k;
    // The averaged gradient is a mean over ranks, not a sum (which Adam's scale invariance would hide).
    EXPECT_GT((r[Key("grad1/B", k)] * world - model.B(k).grad()).abs().max().item<double>(), 1e-6);
  }
  const torch::Tensor bound_bias = 2 * gamma * (delta.abs() + D).sum(0);
  EXPECT_TRUE(WithinBound(ToEigen(r["grad1/bias"].unsqueeze(0)), ToEigen(model.bias().grad().unsqueeze(0)),
                          ToEigen(bound_bias.unsqueeze(0))));
}

TEST_P(DataParallel, ZeroStage1EqualsPlainDataParallelBitwiseWithAShareOfTheState) {
  const int world = GetParam();
  const std::vector<RankResult> plain = RunRanks(world, "plain");
  const std::vector<RankResult> zero1 = RunRanks(world, "zero1");
  ASSERT_EQ(plain.size(), static_cast<size_t>(world));
  ASSERT_EQ(zero1.size(), static_cast<size_t>(world));
  int64_t sharded_total = 0, largest = 0;
  for (int rank = 0; rank < world; ++rank) {
    EXPECT_EQ(zero1[rank].owners, zero1[0].owners) << "ranks disagree on who owns what";
    for (size_t k = 0; k < kAdapters.size(); ++k) {
      EXPECT_TRUE(BitwiseEqual(zero1[rank][Key("final/B", k)], plain[0][Key("final/B", k)]))
          << "rank " << rank << "'s B" << k;
      const bool owns = zero1[rank].owners[k] == rank;
      EXPECT_EQ(zero1[rank].has(Key("exp_avg/B", k)), owns) << "only B" << k << "'s owner keeps its moments";
      if (owns) {
        EXPECT_TRUE(BitwiseEqual(zero1[rank][Key("exp_avg/B", k)], plain[0][Key("exp_avg/B", k)]));
        EXPECT_TRUE(BitwiseEqual(zero1[rank][Key("exp_avg_sq/B", k)], plain[0][Key("exp_avg_sq/B", k)]));
      }
    }
    EXPECT_TRUE(BitwiseEqual(zero1[rank]["final/bias"], plain[0]["final/bias"])) << "rank " << rank << "'s bias";
    sharded_total += zero1[rank].state_bytes;
    largest = std::max(largest, zero1[rank].state_bytes);
    std::cout << "world " << world << ", rank " << rank << ": optimizer state " << zero1[rank].state_bytes
              << " bytes with ZeRO-1, " << plain[rank].state_bytes << " without\n";
  }
  // The state is split, not copied: the shares add up to the unsharded state. The owners are assigned
  // largest first to the least-loaded rank, so no rank holds more than its 1/world share plus one
  // pair's state (two 48×8 float64 moments and the 8×8 projection matrix).
  EXPECT_EQ(sharded_total, plain[0].state_bytes);
  const int64_t one_pair = (2 * kWidth * kRank + kRank * kRank) * 8;
  EXPECT_LE(largest, plain[0].state_bytes / world + one_pair);
}

INSTANTIATE_TEST_SUITE_P(Ranks, DataParallel, ::testing::Values(2, 3),
                         [](const auto& info) { return std::to_string(info.param) + "Ranks"; });

TEST(DataParallelTwoRanks, EqualsOneProcessAccumulatingTheShardsBitwise) {
  const std::vector<RankResult> ranks = RunRanks(2, "plain");
  ASSERT_EQ(ranks.size(), 2u);
  std::vector<torch::Tensor> first_grads;
  Model one = RunAccumulatingShards(2, &first_grads);
  for (size_t k = 0; k < kAdapters.size(); ++k) {
    EXPECT_TRUE(BitwiseEqual(ranks[0][Key("grad1/B", k)], first_grads[k])) << "B" << k << "'s first gradient";
    EXPECT_TRUE(BitwiseEqual(ranks[0][Key("final/B", k)], one.B(k))) << "B" << k;
    EXPECT_TRUE(BitwiseEqual(ranks[0][Key("exp_avg_sq/B", k)], one.plain->pair_state(k)->exp_avg_sq()));
  }
  EXPECT_TRUE(BitwiseEqual(ranks[0]["final/bias"], one.bias()));
}

TEST(DataParallelThreeRanks, FirstGradientEqualsOneProcessAccumulationWithinTheReorderedSum) {
  const std::vector<RankResult> ranks = RunRanks(3, "plain");
  ASSERT_EQ(ranks.size(), 3u);
  std::vector<torch::Tensor> first_grads;
  RunAccumulatingShards(3, &first_grads);
  // Three shard gradients summed in another order: |Δ| ≤ γ_2·Σ_r|g_r| ≤ 2u·Σ_r|g_r| (Higham §3.1), and
  // the ÷3 rounds once more on each side: 2u·|g|. Bound 4u·(Σ_r|g_r|/3 + |g|), with the g_r recomputed here.
  Model model = MakeModel(7);
  const auto [x, target] = Batch();
  std::vector<torch::Tensor> sum_abs(kAdapters.size());
  for (int rank = 0; rank < 3; ++rank) {
    for (size_t k = 0; k < kAdapters.size(); ++k) model.B(k).mutable_grad().reset();
    Backward(model, Shard(x, rank, 3), Shard(target, rank, 3));
    for (size_t k = 0; k < kAdapters.size(); ++k) {
      sum_abs[k] = rank == 0 ? model.B(k).grad().abs() : sum_abs[k] + model.B(k).grad().abs();
    }
  }
  for (size_t k = 0; k < kAdapters.size(); ++k) {
    const torch::Tensor bound = 4 * kUnitRoundoff * (sum_abs[k] / 3 + first_grads[k].abs());
    EXPECT_TRUE(WithinBound(ToEigen(ranks[0][Key("grad1/B", k)]), ToEigen(first_grads[k]), ToEigen(bound))) << "B" << k;
  }
}

TEST(LaunchEnvironment, NamesTheMissingOrBadVariable) {
  setenv("WORLD_SIZE", "2", 1);
  setenv("RANK", "2", 1);
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv("MASTER_PORT", "29500", 1);
  EXPECT_THROW(
      {
        try {
          LaunchEnvironmentFromEnv();
        } catch (const c10::ValueError& e) {
          EXPECT_NE(std::string(e.what()).find("RANK=2 is outside [0, WORLD_SIZE=2)"), std::string::npos) << e.what();
          throw;
        }
      },
      c10::ValueError);
  setenv("RANK", "1", 1);
  setenv("MASTER_PORT", "http", 1);
  EXPECT_THROW(LaunchEnvironmentFromEnv(), c10::ValueError);
  setenv("MASTER_PORT", "29500", 1);
  unsetenv("MASTER_ADDR");
  EXPECT_THROW(LaunchEnvironmentFromEnv(), c10::ValueError);
  setenv("MASTER_ADDR", "10.0.0.1", 1);
  const LaunchEnvironment launch = LaunchEnvironmentFromEnv();
  EXPECT_EQ(launch.rank, 1);
  EXPECT_EQ(launch.world_size, 2);
  EXPECT_EQ(launch.local_rank, 1);
  EXPECT_EQ(launch.master_port, 29500);
  EXPECT_FALSE(launch.agent_store);
  for (const char* name : {"WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT"}) unsetenv(name);
}

TEST(Buckets, GroupByDtypeAndCapBytes) {
  std::vector<torch::Tensor> tensors = {torch::zeros({10}), torch::zeros({10}, torch::kFloat64), torch::zeros({20}),
                                        torch::zeros({5})};
  // float32 first (40, 80, 20 bytes), then float64. With a 100-byte cap 40 + 80 does not fit, 80 + 20 does.
  EXPECT_EQ(BucketIndices(tensors, 100), (std::vector<std::vector<size_t>>{{0}, {2, 3}, {1}}));
  EXPECT_EQ(BucketIndices(tensors, 1 << 20), (std::vector<std::vector<size_t>>{{0, 2, 3}, {1}}));
  EXPECT_EQ(BucketIndices(tensors, 8), (std::vector<std::vector<size_t>>{{0}, {2}, {3}, {1}}));
  EXPECT_THROW(BucketIndices(tensors, 0), c10::ValueError);
}

// One rank in this process is enough for the checks that happen before any communication.
c10::intrusive_ptr<c10d::ProcessGroup> SingleRankGroup() {
  ProcessGroupOptions options;
  options.gloo_hostname = "127.0.0.1";
  return MakeProcessGroup(c10::make_intrusive<c10d::HashStore>(), 0, 1, options);
}

TEST(GradientSynchronizer, NamesAParameterWithoutGradientAndChangesNothing) {
  Model model = MakeModel(7);
  GradientSynchronizer sync(SingleRankGroup(), model.pairs(), model.others());
  const auto [x, target] = Batch();
  Backward(model, x, target);
  model.B(2).mutable_grad().reset();  // as if this rank never used the third adapter
  const torch::Tensor grad_before = model.B(0).grad().clone();
  try {
    sync.AverageGradients();
    ADD_FAILURE() << "a missing gradient was accepted";
  } catch (const c10::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("B of pair 'layer.third' has no gradient on rank 0"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(BitwiseEqual(model.B(0).grad(), grad_before)) << "a gradient changed before the error";
}

TEST(ShardedLoraFAOptimizer, RejectsBadOptionsNamingThem) {
  Model model = MakeModel(7);
  try {
    ShardedLoraFAOptimizer(SingleRankGroup(), model.pairs(), model.others(), LoraFAOptions(-1e-3));
    ADD_FAILURE() << "a negative learning rate was accepted";
  } catch (const c10::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("-0.001"), std::string::npos) << e.what();
  }
}

TEST(MakeProcessGroup, RejectsBadRankAndMissingNccl) {
  auto store = c10::make_intrusive<c10d::HashStore>();
  EXPECT_THROW(MakeProcessGroup(store, 2, 2, {}), c10::ValueError);
  ProcessGroupOptions nccl;
  nccl.backend = Backend::kNccl;
  try {
    MakeProcessGroup(store, 0, 1, nccl);
    ADD_FAILURE() << "NCCL without //lorafa/distributed:nccl";
  } catch (const c10::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("//lorafa/distributed:nccl"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lorafa::distributed

int main(int argc, char** argv) {
  // One thread in every process of this test, ranks and the one-process reference alike: MKL's GEMM
  // and LAPACK (the pseudo-inverse) may split their sums by thread count, which MKL_DYNAMIC lets vary
  // with the machine's load; sequential, both sides run the same operations in the same order.
  at::set_num_threads(1);
  if (std::getenv("LORAFA_TEST_RANK_PROCESS") != nullptr) return lorafa::distributed::RunRank();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
