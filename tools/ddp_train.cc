// ddp_train: data-parallel LoRA-FA training of a LoRA stack on a synthetic task, one process per rank,
// over c10d (Gloo on CPU, NCCL with --device=cuda). Reads the launcher's environment, so
//
//   torchrun --no-python --nproc-per-node=2 bazel-bin/tools/ddp_train --steps=20
//
// trains on two processes here, and a second machine joins with --nnodes=2 and MASTER_ADDR set to the
// first. Every rank draws the same global batch each step and trains on its own rows of it. Per step it
// prints the loss (mean over ranks) and the bytes all-reduced; at the end, what LoRA + AdamW would have
// sent, each rank's optimizer state, and a checksum of the trained parameters (equal on every rank).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "lorafa/byte_checksum.h"
#include "lorafa/distributed/gradient_sync.h"
#include "lorafa/distributed/process_group.h"
#include "lorafa/distributed/sharded_optimizer.h"
#include "lorafa/lorafa.h"

ABSL_FLAG(std::string, device, "cpu", "cpu (Gloo) or cuda (NCCL; each rank takes cuda:LOCAL_RANK)");
ABSL_FLAG(int, steps, 20, "training steps");
ABSL_FLAG(int, width, 256, "features of every layer");
ABSL_FLAG(int, layers, 2, "LoRA linear layers in the stack");
ABSL_FLAG(int, lora_r, 16, "adapter rank");
ABSL_FLAG(int, global_batch, 64, "examples per step over all ranks (divisible by WORLD_SIZE)");
ABSL_FLAG(double, lr, 5e-3, "learning rate");
ABSL_FLAG(bool, shard_optimizer_state, false, "ZeRO stage 1: each rank keeps and steps only its share of the state");
ABSL_FLAG(int, timeout_s, 300, "seconds any collective waits for the other ranks before this rank fails");
ABSL_FLAG(double, bucket_mb, 25, "gradient bucket size in MiB");

namespace {

using lorafa::distributed::GradientSynchronizer;
using lorafa::distributed::ShardedLoraFAOptimizer;

// A stack of frozen linear layers with LoRA adapters and tanh between them; the last adapter has a
// trainable lora_B bias, so there is an "other" parameter besides the B matrices.
struct Stack : torch::nn::Module {
  Stack(int layers, int width, int r) {
    for (int l = 0; l < layers; ++l) {
      auto options = lorafa::LoraLinearOptions(width, width, r).lora_alpha(2.0 * r).lora_bias(l + 1 == layers);
      blocks.push_back(register_module("layer" + std::to_string(l), lorafa::LoraLinear(options)));
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    for (size_t l = 0; l < blocks.size(); ++l) x = l + 1 < blocks.size() ? torch::tanh(blocks[l](x)) : blocks[l](x);
    return x;
  }
  // The task: the same stack with every base weight W replaced by W + Δ, Δ = C·A a fixed matrix in the
  // row space of the layer's frozen A — what LoRA-FA's B can learn exactly (B = C/s).
  torch::Tensor teacher(torch::Tensor x, const std::vector<torch::Tensor>& deltas) {
    torch::NoGradGuard no_grad;
    for (size_t l = 0; l < blocks.size(); ++l) {
      const auto& base = blocks[l]->base_layer;
      x = torch::nn::functional::linear(x, base->weight + deltas[l], base->bias);
      if (l + 1 < blocks.size()) x = torch::tanh(x);
    }
    return x;
  }
  std::vector<lorafa::LoraLinear> blocks;
};

// c10's messages carry a backtrace after the first line; a failing rank says the first line.
std::string FirstLine(const std::exception& error) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&error);
  std::string message = c10_error ? c10_error->what_without_backtrace() : error.what();
  return message.substr(0, message.find('\n'));
}

int Train() {
  const auto launch = lorafa::distributed::LaunchEnvironmentFromEnv();
  const bool cuda = absl::GetFlag(FLAGS_device) == "cuda";
  TORCH_CHECK_VALUE(cuda || absl::GetFlag(FLAGS_device) == "cpu", "--device=", absl::GetFlag(FLAGS_device),
                    " is neither cpu nor cuda");
  const int global_batch = absl::GetFlag(FLAGS_global_batch);
  TORCH_CHECK_VALUE(global_batch > 0 && global_batch % launch.world_size == 0, "--global_batch=", global_batch,
                    " does not split evenly over WORLD_SIZE=", launch.world_size, " ranks");
  const torch::Device device = cuda ? torch::Device(torch::kCUDA, launch.local_rank) : torch::Device(torch::kCPU);
  const auto timeout = std::chrono::seconds(absl::GetFlag(FLAGS_timeout_s));

  lorafa::distributed::ProcessGroupOptions group_options;
  group_options.backend = cuda ? lorafa::distributed::Backend::kNccl : lorafa::distributed::Backend::kGloo;
  group_options.timeout = timeout;
  // Every rank on this machine: Gloo need not find a routable interface.
  if (launch.master_addr == "127.0.0.1" || launch.master_addr == "localhost") group_options.gloo_hostname = "127.0.0.1";
  auto store = lorafa::distributed::ConnectStore(launch, timeout);
  auto group = lorafa::distributed::MakeProcessGroup(store, launch.rank, launch.world_size, group_options);

  // Rank 0's initial values reach every rank through BroadcastParameters; the seed differs per rank so
  // that a missing broadcast would show.
  torch::manual_seed(1 + launch.rank);
  const int width = absl::GetFlag(FLAGS_width), r = absl::GetFlag(FLAGS_lora_r);
  auto stack = std::make_shared<Stack>(absl::GetFlag(FLAGS_layers), width, r);
  stack->to(device);
  const lorafa::LoraFAOptions options = lorafa::LoraFAOptions(absl::GetFlag(FLAGS_lr)).weight_decay(0.0);
  auto plain = lorafa::create_lorafa_optimizer(*stack, options);  // pairs by name, freezes every A
  std::vector<torch::Tensor> frozen;                               // base weights: shared once, never trained
  for (const auto& param : stack->parameters()) {
    if (!param.requires_grad()) frozen.push_back(param);
  }
  const auto bucket_bytes = static_cast<int64_t>(absl::GetFlag(FLAGS_bucket_mb) * (1 << 20));
  GradientSynchronizer sync(group, *plain, bucket_bytes);
  std::unique_ptr<ShardedLoraFAOptimizer> sharded;
  if (absl::GetFlag(FLAGS_shard_optimizer_state)) {
    sharded = std::make_unique<ShardedLoraFAOptimizer>(group, plain->pairs(), plain->other_params(), options,
                                                       bucket_bytes);
    plain.reset();  // this rank keeps only its share of the state
  }
  sync.BroadcastParameters(frozen);

  // The task's Δ per layer, from the broadcast A: the same on every rank.
  torch::manual_seed(12345);
  std::vector<torch::Tensor> deltas;
  for (auto& block : stack->blocks) {
    const torch::Tensor& A = block->lora_A["default"]->as<torch::nn::Linear>()->weight;
    deltas.push_back(torch::randn({width, r}).mul(0.5).to(device).matmul(A.detach()));
  }

  const int rows = global_batch / launch.world_size;
  int step = 0;
  const auto start = std::chrono::steady_clock::now();
  try {
    for (; step < absl::GetFlag(FLAGS_steps); ++step) {
      auto generator = at::make_generator<at::CPUGeneratorImpl>(1000 + step);
      const torch::Tensor x = at::randn({global_batch, width}, generator, torch::TensorOptions()).narrow(0, launch.rank * rows, rows).to(device);
      const torch::Tensor target = stack->teacher(x, deltas);
      if (sharded) sharded->zero_grad(); else plain->zero_grad();
      torch::Tensor loss = torch::mse_loss(stack->forward(x), target);
      loss.backward();
      sync.AverageGradients();
      if (sharded) sharded->step(); else plain->step();

      // The printed loss is averaged too (8 bytes, not counted as gradient traffic).
      std::vector<torch::Tensor> mean_loss{loss.detach().to(torch::kFloat64).reshape({1})};
      group->allreduce(mean_loss)->wait();
      if (launch.rank == 0) {
        std::printf("step %d  loss %.6f  all-reduced %lld bytes\n", step + 1,
                    mean_loss[0].item<double>() / launch.world_size, static_cast<long long>(sync.bytes_per_step()));
        std::fflush(stdout);
      }
    }
  } catch (const std::exception& error) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr,
                 "ddp_train: rank %d failed at step %d, %.1f s into training: %s\n"
                 "ddp_train: (collectives wait at most --timeout_s=%d s for the other ranks: one of them died, "
                 "stopped or fell that far behind)\n",
                 launch.rank, step + 1, seconds, FirstLine(error).c_str(), absl::GetFlag(FLAGS_timeout_s));
    return 1;
  }

  // Equal checksums on every rank mean bitwise-equal trained parameters.
  lorafa::ByteChecksum checksum;
  for (const auto& param : stack->parameters()) {
    if (param.requires_grad()) checksum.Add(param);
  }
  if (launch.rank == 0) {
    std::printf("bytes all-reduced per step: %lld (every B and other parameter); LoRA + AdamW would all-reduce "
                "%lld (A too): %.3fx\n",
                static_cast<long long>(sync.bytes_per_step()), static_cast<long long>(sync.lora_adamw_bytes_per_step()),
                static_cast<double>(sync.bytes_per_step()) / sync.lora_adamw_bytes_per_step());
  }
  const int64_t state_bytes = sharded ? sharded->state_bytes() : plain->state_bytes();
  std::printf("rank %d: optimizer state %lld bytes%s; trained parameters checksum %016llx\n", launch.rank,
              static_cast<long long>(state_bytes), sharded ? " (ZeRO-1 share)" : "",
              static_cast<unsigned long long>(checksum.value()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("data-parallel LoRA-FA on a synthetic task; launch with torchrun --no-python");
  absl::ParseCommandLine(argc, argv);
  try {
    return Train();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "ddp_train: %s\n", FirstLine(error).c_str());
    return 1;
  }
}
