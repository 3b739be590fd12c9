// Full training step (forward + backward + optimizer) of a LoRA transformer-like stack: LoRA-FA
// (lorafa, A frozen) against LoRA + AdamW (A and B trained by torch::optim::AdamW).
//
// Time per step is Google Benchmark's. Memory is measured on one instrumented step before timing, by
// the allocator (benchmarks/memory_meter.h), and reported as counters beside their analytic values:
//   weights_bytes, grad_bytes, state_bytes      tensors held by parameters, gradients, optimizer
//   activation_bytes                            what the forward pass leaves alive for backward
//   peak_bytes                                  the allocator's peak during the step
//   expected_*                                  what the arithmetic says they should be
// Arguments d (width), blocks, r, tokens (batch × sequence, sequence fixed at 64).
#include <memory>
#include <vector>

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "benchmarks/benchmark_main.h"
#include "benchmarks/state_bytes.h"
#include "benchmarks/lora_stack.h"
#include "benchmarks/memory_meter.h"
#include "lorafa/create.h"
#include "lorafa/lora_names.h"

namespace lorafa::benchmarks {
namespace {

constexpr int64_t kSequence = 64;
constexpr double kLearningRate = 1e-4;

enum class Method { kLoraFA, kLoraAdamW };

int64_t Bytes(const std::vector<torch::Tensor>& tensors) {
  int64_t bytes = 0;
  for (const torch::Tensor& t : tensors) bytes += t.defined() ? t.nbytes() : 0;
  return bytes;
}

void BM_training_step(benchmark::State& state, c10::Device device, Method method) {
  const LoraStackOptions shape{state.range(0), state.range(1), state.range(2)};
  const int64_t tokens = state.range(3);
  MemoryMeter& meter = MemoryMeter::For(device);  // before any tensor, so weights are counted too
  torch::manual_seed(0);
  LoraStack stack(shape);
  stack->to(device);
  torch::Tensor x = torch::randn({tokens / kSequence, kSequence, shape.d}, torch::TensorOptions(device));

  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::vector<torch::Tensor> lora_a, lora_b;
  for (const auto& item : stack->named_parameters()) {
    auto name = ParseLoraParameterName(item.key());
    if (name) (name->role == LoraRole::kA ? lora_a : lora_b).push_back(item.value());
  }
  if (method == Method::kLoraFA) {
    optimizer = create_lorafa_optimizer(*stack, LoraFAOptions(kLearningRate));
  } else {
    std::vector<torch::Tensor> trained = lora_b;
    trained.insert(trained.end(), lora_a.begin(), lora_a.end());
    optimizer = std::make_unique<torch::optim::AdamW>(trained, torch::optim::AdamWOptions(kLearningRate));
  }
  auto step = [&] {
    optimizer->zero_grad();
    torch::Tensor loss = stack->forward(x).pow(2).mean();
    loss.backward();
    optimizer->step();
  };
  step();  // warm-up: optimizer state exists from here on
  Synchronize(device);

  // One instrumented step.
  optimizer->zero_grad();
  meter.ResetPeak();
  const int64_t before_forward = meter.CurrentBytes();
  torch::Tensor loss = stack->forward(x).pow(2).mean();
  Synchronize(device);
  const int64_t activations = meter.CurrentBytes() - before_forward;
  loss.backward();
  loss = torch::Tensor();
  std::vector<torch::Tensor> grads;
  for (const torch::Tensor& p : stack->parameters()) grads.push_back(p.grad());
  optimizer->step();
  Synchronize(device);
  const int64_t peak = meter.PeakBytes();

  for (auto _ : state) {
    step();
    Synchronize(device);
  }

  const int64_t weights = Bytes(stack->parameters()), a_bytes = Bytes(lora_a), b_bytes = Bytes(lora_b);
  const int64_t trained = method == Method::kLoraFA ? b_bytes : a_bytes + b_bytes;
  state.counters["weights_bytes"] = static_cast<double>(weights);
  state.counters["grad_bytes"] = static_cast<double>(Bytes(grads));
  state.counters["state_bytes"] = static_cast<double>(OptimizerStateBytes(*optimizer));
  state.counters["activation_bytes"] = static_cast<double>(activations);
  state.counters["peak_bytes"] = static_cast<double>(peak);
  state.counters["expected_grad_bytes"] = static_cast<double>(trained);
  state.counters["expected_state_bytes"] = static_cast<double>(2 * trained);
  // LoRA + AdamW must keep every projection's input for A's gradient; LoRA-FA need not.
  state.counters["expected_extra_saved_bytes"] =
      static_cast<double>(method == Method::kLoraFA ? 0 : stack->ProjectionInputBytes(tokens));
}

void Register(const BenchmarkContext& context) {
  std::vector<std::vector<int64_t>> sweep;  // d, blocks, r, tokens
  if (context.preset == "smoke") {
    sweep = {{32}, {1}, {2}, {64}};
  } else if (context.preset == "quick") {
    sweep = {{256}, {4}, {16}, {512}};
  } else {
    sweep = {{512, 1024}, {8}, {8, 64}, {1024}};
  }
  for (auto [name, method] : {std::pair{"train_lorafa", Method::kLoraFA}, std::pair{"train_lora_adamw", Method::kLoraAdamW}}) {
    auto* bench = benchmark::RegisterBenchmark(name, BM_training_step, context.device, method);
    bench->ArgNames({"d", "blocks", "r", "tokens"})->ArgsProduct(sweep)->Unit(benchmark::kMillisecond);
    if (context.preset != "smoke") bench->Repetitions(3)->ReportAggregatesOnly(true);
  }
}

}  // namespace
}  // namespace lorafa::benchmarks

int main(int argc, char** argv) {
  return lorafa::benchmarks::RunBenchmarkMain(argc, argv, /*wants_python=*/false, lorafa::benchmarks::Register);
}
