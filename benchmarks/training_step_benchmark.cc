// Full training step (forward + backward + optimizer) of a LoRA transformer-like stack: LoRA-FA
// (lorafa, A frozen) against LoRA + AdamW (A and B trained by torch::optim::AdamW).
//
// Time per step is Google Benchmark's. Memory is measured on one instrumented step, by the allocator
// (benchmarks/memory_meter.h), and reported as counters beside their analytic values:
//   weights_bytes, grad_bytes, state_bytes      tensors held by parameters, gradients, optimizer
//   activation_bytes                            what the forward pass leaves alive for backward
//   peak_bytes                                  the allocator's peak during the step
//   expected_*                                  what the arithmetic says they should be
// Arguments d (width), blocks, r, tokens. Presets:
//   smoke, quick, full   the small stack (benchmarks/lora_stack.h), sequence 64, float32
//   llm                  Llama-2-7B-shaped blocks (benchmarks/llama_stack.h), batch 1, sequences 512 and
//                        2048; bf16 on CUDA, float32 on CPU; memory only: the instrumented step is the
//                        one timed step, and the optimizer state is made by a step on zero gradients.
// The smoke preset runs a tiny Llama block too, so both stacks stay exercised.
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "benchmarks/benchmark_main.h"
#include "benchmarks/llama_stack.h"
#include "benchmarks/lora_stack.h"
#include "benchmarks/memory_meter.h"
#include "benchmarks/state_bytes.h"
#include "lorafa/create.h"
#include "lorafa/lora_names.h"

namespace lorafa::benchmarks {
namespace {

constexpr int64_t kSmallStackSequence = 64;
constexpr double kLearningRate = 1e-4;

enum class Method { kLoraFA, kLoraAdamW };
enum class Architecture { kSmallStack, kLlama };

struct Case {
  c10::Device device = c10::kCPU;
  Method method = Method::kLoraFA;
  Architecture architecture = Architecture::kSmallStack;
  torch::Dtype dtype = torch::kFloat32;
  bool memory_only = false;
};

int64_t Bytes(const std::vector<torch::Tensor>& tensors) {
  int64_t bytes = 0;
  for (const torch::Tensor& t : tensors) bytes += t.defined() ? t.nbytes() : 0;
  return bytes;
}

// What one instrumented step measured.
struct StepMemory {
  int64_t activations = 0, peak = 0, grads = 0;
};

template <typename Stack>
void RunTrainingStep(benchmark::State& state, const Case& c, Stack& stack, int64_t tokens, int64_t sequence) {
  MemoryMeter& meter = MemoryMeter::For(c.device);
  torch::Tensor x = torch::randn({tokens / sequence, sequence, stack->options().d},
                                 torch::TensorOptions(c.device).dtype(c.dtype));

  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::vector<torch::Tensor> lora_a, lora_b;
  for (const auto& item : stack->named_parameters()) {
    auto name = ParseLoraParameterName(item.key());
    if (name) (name->role == LoraRole::kA ? lora_a : lora_b).push_back(item.value());
  }
  if (c.method == Method::kLoraFA) {
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
  auto instrumented_step = [&] {
    StepMemory measured;
    optimizer->zero_grad();
    meter.ResetPeak();
    const int64_t before_forward = meter.CurrentBytes();
    torch::Tensor loss = stack->forward(x).pow(2).mean();
    Synchronize(c.device);
    measured.activations = meter.CurrentBytes() - before_forward;
    loss.backward();
    loss = torch::Tensor();
    std::vector<torch::Tensor> grads;
    for (const torch::Tensor& p : stack->parameters()) grads.push_back(p.grad());
    measured.grads = Bytes(grads);
    optimizer->step();
    Synchronize(c.device);
    measured.peak = meter.PeakBytes();
    return measured;
  };

  // Warm-up, so the optimizer state exists before memory is measured.
  if (c.memory_only) {
    // A step on zero gradients makes the same state as a real one, without a forward or backward.
    for (torch::Tensor& p : stack->parameters()) {
      if (p.requires_grad()) p.mutable_grad() = torch::zeros_like(p);
    }
    optimizer->step();
  } else {
    step();
  }
  Synchronize(c.device);

  StepMemory measured;
  if (c.memory_only) {
    for (auto _ : state) measured = instrumented_step();  // one iteration (registered so)
  } else {
    measured = instrumented_step();
    for (auto _ : state) {
      step();
      Synchronize(c.device);
    }
  }

  const int64_t weights = Bytes(stack->parameters()), a_bytes = Bytes(lora_a), b_bytes = Bytes(lora_b);
  const int64_t trained = c.method == Method::kLoraFA ? b_bytes : a_bytes + b_bytes;
  state.counters["weights_bytes"] = static_cast<double>(weights);
  state.counters["grad_bytes"] = static_cast<double>(measured.grads);
  state.counters["state_bytes"] = static_cast<double>(OptimizerStateBytes(*optimizer));
  state.counters["activation_bytes"] = static_cast<double>(measured.activations);
  state.counters["peak_bytes"] = static_cast<double>(measured.peak);
  state.counters["expected_grad_bytes"] = static_cast<double>(trained);
  state.counters["expected_state_bytes"] = static_cast<double>(2 * trained);
  // LoRA + AdamW must keep every projection's input for A's gradient; LoRA-FA need not.
  state.counters["expected_extra_saved_bytes"] = static_cast<double>(
      c.method == Method::kLoraFA ? 0 : stack->ProjectionInputBytes(tokens, c10::elementSize(c.dtype)));
}

// Llama-2-7B's block shape (d 4096, MLP 11008, 32 heads), or a tiny one with the same proportions.
LlamaStackOptions LlamaShape(int64_t d, int64_t blocks, int64_t r) {
  if (d == 4096) return {4096, 11008, 32, blocks, r};
  return {d, d * 11008 / 4096, d / 128 > 0 ? d / 128 : 1, blocks, r};
}

void BM_training_step(benchmark::State& state, Case c) {
  const int64_t d = state.range(0), blocks = state.range(1), r = state.range(2), tokens = state.range(3);
  MemoryMeter::For(c.device);  // before any tensor, so weights are counted too
  torch::manual_seed(0);
  if (c.architecture == Architecture::kSmallStack) {
    LoraStack stack(LoraStackOptions{d, blocks, r});
    stack->to(c.device, c.dtype);
    RunTrainingStep(state, c, stack, tokens, kSmallStackSequence);
  } else {
    LlamaStack stack(LlamaShape(d, blocks, r));
    stack->to(c.device, c.dtype);
    RunTrainingStep(state, c, stack, tokens, /*sequence=*/tokens);  // batch 1
  }
}

void Register(const BenchmarkContext& context) {
  struct Sweep {
    Architecture architecture;
    std::vector<std::vector<int64_t>> args;  // d, blocks, r, tokens
  };
  std::vector<Sweep> sweeps;
  if (context.preset == "smoke") {
    sweeps = {{Architecture::kSmallStack, {{32}, {1}, {2}, {64}}}, {Architecture::kLlama, {{128}, {1}, {2}, {32}}}};
  } else if (context.preset == "quick") {
    sweeps = {{Architecture::kSmallStack, {{256}, {4}, {16}, {512}}}};
  } else if (context.preset == "llm") {
    sweeps = {{Architecture::kLlama, {{4096}, {1, 2}, {16}, {512, 2048}}}};
  } else {
    sweeps = {{Architecture::kSmallStack, {{512, 1024}, {8}, {8, 64}, {1024}}}};
  }
  const bool memory_only = context.preset == "llm";
  // bf16 as LLMs are fine-tuned on GPUs; float32 on CPU, where bf16 matmuls are slow and rare.
  const torch::Dtype llm_dtype = context.device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
  for (const Sweep& sweep : sweeps) {
    const bool llama = sweep.architecture == Architecture::kLlama;
    for (auto [name, method] : {std::pair{"train_lorafa", Method::kLoraFA}, std::pair{"train_lora_adamw", Method::kLoraAdamW}}) {
      const Case c{context.device, method, sweep.architecture, memory_only ? llm_dtype : torch::kFloat32, memory_only};
      auto* bench = benchmark::RegisterBenchmark((std::string(name) + (llama ? "_llama" : "")).c_str(), BM_training_step, c);
      bench->ArgNames({"d", "blocks", "r", "tokens"})->ArgsProduct(sweep.args)->Unit(benchmark::kMillisecond);
      if (memory_only) {
        bench->Iterations(1);
      } else if (context.preset != "smoke") {
        // A training step varies by 10–25% from one repetition to the next on a shared 2-core machine
        // (allocation, autograd), more than an optimizer step: the median of 9, not of 3.
        bench->Repetitions(9)->ReportAggregatesOnly(true);
      }
    }
  }
}

}  // namespace
}  // namespace lorafa::benchmarks

int main(int argc, char** argv) {
  return lorafa::benchmarks::RunBenchmarkMain(argc, argv, /*wants_python=*/false, {"smoke", "quick", "full", "llm"},
                                              lorafa::benchmarks::Register);
}
