// Optimizer step for many LoRA layers: what one step of each optimizer costs, and the state it keeps.
//
//   lorafa_exact / lorafa_peft_bf16   LoRA-FA (A frozen, B projected) in its two precision modes
//   lorafa_exact_skip_nonfinite       kExact with the non-finite guard on (what the guard costs)
//   hf_adamw_b_only                   the floor: HF-AdamW on B alone (what LoRA-FA adds to is this)
//   hf_adamw_a_and_b                  what standard LoRA pays: HF-AdamW on A and B
//   torch_adamw_a_and_b               torch::optim::AdamW on A and B
//   torch_fused_adamw_a_and_b / _b_only  at::_fused_adamw_ (Python's AdamW(fused=True)) on A and B, or B
//   projection_mm                     one at::mm(g_B, P) per pair into a preallocated result, nothing else
//   lorafa_projection                 the fused CPU kernel's projection alone, ĝ kept as the step keeps it
//   peft_lorafa / python_torch_adamw  PEFT's LoraFAOptimizer and torch.optim.AdamW through Python
// and, for the roofline of a LoRA-FA step:
//   copy_bandwidth                    copying as many bytes as a step must move (read g, m, v, B; write m, v, B)
//   gemm_peak                         a 1024³ GEMM in the same dtype: the attainable GEMM rate
//
// Arguments r (rank), width (square layers width × width) and layers. Counters: state_bytes (optimizer
// state), trained_params, and for lorafa: step_bytes, projection_flops. Time per step is Google
// Benchmark's own.
#include <algorithm>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>
#include <torch/torch.h>

#include "benchmarks/benchmark_main.h"
#include "benchmarks/state_bytes.h"
#include "lorafa/fused_hf_adamw.h"
#include "lorafa/optimizer.h"
#include "testing/parity/peft_bridge.h"

namespace lorafa::benchmarks {
namespace {

namespace py = pybind11;
constexpr double kLearningRate = 1e-4;

struct LoraLayers {
  std::vector<torch::Tensor> A, B;  // A (r, width) frozen, B (width, r), each with a gradient
  double scaling = 2.0;
};

LoraLayers MakeLayers(const benchmark::State& state, c10::Device device, bool a_has_grad) {
  const int64_t r = state.range(0), width = state.range(1), layers = state.range(2);
  torch::manual_seed(0);
  LoraLayers made;
  auto options = torch::TensorOptions(device).dtype(torch::kFloat32);
  for (int64_t i = 0; i < layers; ++i) {
    torch::Tensor a = torch::randn({r, width}, options) / std::sqrt(static_cast<double>(width));
    torch::Tensor b = (0.01 * torch::randn({width, r}, options)).requires_grad_();
    b.mutable_grad() = torch::randn_like(b);
    if (a_has_grad) {
      a.requires_grad_();
      a.mutable_grad() = torch::randn_like(a);
    }
    made.A.push_back(a);
    made.B.push_back(b);
  }
  return made;
}

int64_t Numel(const std::vector<torch::Tensor>& tensors) {
  int64_t count = 0;
  for (const torch::Tensor& t : tensors) count += t.numel();
  return count;
}

// Times optimizer.step() after one warm-up step (state allocated, pseudo-inverses cached).
void TimeSteps(benchmark::State& state, torch::optim::Optimizer& optimizer, c10::Device device, int64_t trained) {
  optimizer.step();
  Synchronize(device);
  for (auto _ : state) {
    optimizer.step();
    Synchronize(device);
  }
  state.counters["state_bytes"] = static_cast<double>(OptimizerStateBytes(optimizer));
  state.counters["trained_params"] = static_cast<double>(trained);
}

// Bytes one LoRA-FA step must move: read g, m, v and B, write m, v and B, once each.
double StepBytes(const std::vector<torch::Tensor>& B) {
  return 7.0 * static_cast<double>(Numel(B)) * static_cast<double>(B.front().element_size());
}

// Flops of the projection ĝ = g·P over every B: 2r per element.
double ProjectionFlops(const benchmark::State& state, const std::vector<torch::Tensor>& B) {
  return 2.0 * static_cast<double>(state.range(0) * Numel(B));
}

void BM_lorafa(benchmark::State& state, c10::Device device, Projection projection, bool skip_nonfinite) {
  LoraLayers layers = MakeLayers(state, device, /*a_has_grad=*/false);
  std::vector<LoraPair> pairs;
  for (size_t i = 0; i < layers.A.size(); ++i) pairs.push_back({std::to_string(i), layers.A[i], layers.B[i], layers.scaling});
  LoraFAOptimizer optimizer(pairs, {},
                            LoraFAOptions(kLearningRate).projection(projection).skip_nonfinite(skip_nonfinite));
  TimeSteps(state, optimizer, device, Numel(layers.B));
  state.counters["step_bytes"] = StepBytes(layers.B);
  state.counters["projection_flops"] = ProjectionFlops(state, layers.B);
}

// Times `call` after one warm-up call.
template <typename Call>
void TimeCalls(benchmark::State& state, c10::Device device, Call call) {
  call();
  Synchronize(device);
  for (auto _ : state) {
    call();
    Synchronize(device);
  }
}

// torch.optim.AdamW(fused=True)'s step: advance the step counts, then one _fused_adamw_ over every list.
void BM_torch_fused_adamw(benchmark::State& state, c10::Device device, bool include_a) {
  LoraLayers layers = MakeLayers(state, device, include_a);
  std::vector<torch::Tensor> params = layers.B;
  if (include_a) params.insert(params.end(), layers.A.begin(), layers.A.end());
  std::vector<torch::Tensor> grads, exp_avgs, exp_avg_sqs, steps;
  for (const torch::Tensor& p : params) {
    grads.push_back(p.grad());
    exp_avgs.push_back(torch::zeros_like(p));
    exp_avg_sqs.push_back(torch::zeros_like(p));
    steps.push_back(torch::zeros({}, torch::TensorOptions(device).dtype(torch::kFloat32)));
  }
  TimeCalls(state, device, [&] {
    torch::NoGradGuard no_grad;
    at::_foreach_add_(steps, 1);
    at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps, kLearningRate, 0.9,
                      0.999, /*weight_decay=*/0.0, /*eps=*/1e-6, /*amsgrad=*/false, /*maximize=*/false);
  });
  state.counters["state_bytes"] = static_cast<double>(2 * Numel(params) * params.front().element_size());
  state.counters["trained_params"] = static_cast<double>(Numel(params));
}

// The projection alone: the GEMM that LoRA-FA adds to an AdamW step on B, with the cached P.
void BM_projection_mm(benchmark::State& state, c10::Device device) {
  LoraLayers layers = MakeLayers(state, device, /*a_has_grad=*/false);
  std::vector<torch::Tensor> projections, results;
  for (size_t i = 0; i < layers.B.size(); ++i) {
    projections.push_back(torch::eye(state.range(0), layers.B[i].options()) / (layers.scaling * layers.scaling));
    results.push_back(torch::empty_like(layers.B[i]));
  }
  TimeCalls(state, device, [&] {
    for (size_t i = 0; i < layers.B.size(); ++i) at::mm_out(results[i], layers.B[i].grad(), projections[i]);
  });
  state.counters["projection_flops"] = ProjectionFlops(state, layers.B);
}

// The fused CPU kernel's projection alone over the same pairs, ĝ kept in one unit's buffer per thread
// as the step keeps it: the GEMM part of a kExact step, timed apart so its rate can be set against
// gemm_peak's.
void BM_lorafa_projection(benchmark::State& state, c10::Device device) {
  LoraLayers layers = MakeLayers(state, device, /*a_has_grad=*/false);
  std::vector<torch::Tensor> grads, projections;
  for (const torch::Tensor& B : layers.B) {
    grads.push_back(B.grad());
    projections.push_back(torch::randn({state.range(0), state.range(0)}, B.options()));
  }
  const std::vector<torch::Tensor> in_unit_buffers(grads.size());  // undefined: ĝ kept as the step keeps it
  TimeCalls(state, device, [&] { internal::FusedProjectionCpu(grads, projections, in_unit_buffers); });
  state.counters["projection_flops"] = ProjectionFlops(state, layers.B);
}

// Copies as many bytes as a LoRA-FA step over these layers moves (7 B-sized tensors' worth, read
// and written half each), in one tensor copy: the memory-bandwidth roof at this working-set size.
void BM_copy_bandwidth(benchmark::State& state, c10::Device device) {
  LoraLayers layers = MakeLayers(state, device, /*a_has_grad=*/false);
  const double bytes = StepBytes(layers.B);
  const int64_t elements = static_cast<int64_t>(bytes / 2 / layers.B.front().element_size());
  torch::Tensor source = torch::ones({elements}, layers.B.front().options()), target = torch::empty_like(source);
  TimeCalls(state, device, [&] { target.copy_(source); });
  state.counters["step_bytes"] = bytes;
  state.SetBytesProcessed(static_cast<int64_t>(bytes) * state.iterations());
}

// A 1024 × 1024 × 1024 GEMM: the attainable GEMM rate of this device and dtype.
void BM_gemm_peak(benchmark::State& state, c10::Device device) {
  constexpr int64_t n = 1024;
  torch::Tensor a = torch::randn({n, n}, torch::TensorOptions(device)), b = torch::randn({n, n}, torch::TensorOptions(device));
  torch::Tensor c = torch::empty({n, n}, torch::TensorOptions(device));
  TimeCalls(state, device, [&] { at::mm_out(c, a, b); });
  state.counters["flops"] = 2.0 * n * n * n;
}

void BM_hf_adamw(benchmark::State& state, c10::Device device, bool include_a) {
  LoraLayers layers = MakeLayers(state, device, include_a);
  std::vector<torch::Tensor> params = layers.B;
  if (include_a) params.insert(params.end(), layers.A.begin(), layers.A.end());
  LoraFAOptimizer optimizer({}, params, LoraFAOptions(kLearningRate));  // no pairs: plain HF-AdamW
  TimeSteps(state, optimizer, device, Numel(params));
}

void BM_torch_adamw_a_and_b(benchmark::State& state, c10::Device device) {
  LoraLayers layers = MakeLayers(state, device, /*a_has_grad=*/true);
  std::vector<torch::Tensor> params = layers.B;
  params.insert(params.end(), layers.A.begin(), layers.A.end());
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(kLearningRate));
  TimeSteps(state, optimizer, device, Numel(params));
}

// Times `step()` of a Python optimizer built by peft_bridge; the GIL is held throughout, as a Python
// training loop would hold it.
void TimePythonSteps(benchmark::State& state, py::object optimizer, c10::Device device, int64_t trained) {
  py::object step = optimizer.attr("step");
  step();
  Synchronize(device);
  for (auto _ : state) {
    step();
    Synchronize(device);
  }
  state.counters["state_bytes"] = parity::PeftBridge().attr("state_bytes")(optimizer).cast<double>();
  state.counters["trained_params"] = static_cast<double>(trained);
}

void BM_peft_lorafa(benchmark::State& state, c10::Device device) {
  LoraLayers layers = MakeLayers(state, device, /*a_has_grad=*/false);
  std::vector<std::string> names;
  std::vector<torch::Tensor> tensors;
  std::vector<double> scalings;
  py::list grads;
  for (size_t i = 0; i < layers.A.size(); ++i) {
    names.push_back("layers." + std::to_string(i) + ".lora_A.default.weight");
    names.push_back("layers." + std::to_string(i) + ".lora_B.default.weight");
    tensors.insert(tensors.end(), {layers.A[i], layers.B[i]});
    scalings.insert(scalings.end(), {layers.scaling, layers.scaling});
    grads.append(py::none());
    grads.append(layers.B[i].grad());
  }
  py::object run = parity::PeftBridge().attr("PeftOptimizerRun")(names, tensors, scalings, kLearningRate, 0.9,
                                                                  0.999, 1e-6, 0.0, true);
  run.attr("step")(grads);  // gives PEFT's clones their gradients
  TimePythonSteps(state, run.attr("optimizer"), device, Numel(layers.B));
}

void BM_python_torch_adamw(benchmark::State& state, c10::Device device) {
  LoraLayers layers = MakeLayers(state, device, /*a_has_grad=*/true);
  std::vector<torch::Tensor> params = layers.B, grads;
  params.insert(params.end(), layers.A.begin(), layers.A.end());
  for (const torch::Tensor& p : params) grads.push_back(p.grad());
  py::object run = parity::PeftBridge().attr("TorchAdamWRun")(params, grads, kLearningRate);
  TimePythonSteps(state, run.attr("optimizer"), device, Numel(params));
}

void Register(const BenchmarkContext& context) {
  std::vector<int64_t> ranks, widths, layer_counts;
  if (context.preset == "smoke") {
    ranks = {2}, widths = {16}, layer_counts = {1, 2};
  } else if (context.preset == "quick") {
    ranks = {8, 16, 32, 64}, widths = {1024}, layer_counts = {1, 32};
  } else {
    ranks = {8, 16, 32, 64, 128, 256}, widths = {1024, 4096}, layer_counts = {1, 32};
  }
  // A 32-layer model with LoRA on 7 modules has 224 pairs: the GPU goal's case.
  if (context.device.is_cuda() && context.preset != "smoke") layer_counts.push_back(224);
  const c10::Device device = context.device;
  std::vector<benchmark::internal::Benchmark*> all = {
      benchmark::RegisterBenchmark("lorafa_exact", BM_lorafa, device, Projection::kExact, false),
      benchmark::RegisterBenchmark("lorafa_peft_bf16", BM_lorafa, device, Projection::kPeftBf16, false),
      benchmark::RegisterBenchmark("lorafa_exact_skip_nonfinite", BM_lorafa, device, Projection::kExact, true),
      benchmark::RegisterBenchmark("hf_adamw_b_only", BM_hf_adamw, device, false),
      benchmark::RegisterBenchmark("hf_adamw_a_and_b", BM_hf_adamw, device, true),
      benchmark::RegisterBenchmark("torch_adamw_a_and_b", BM_torch_adamw_a_and_b, device),
      benchmark::RegisterBenchmark("torch_fused_adamw_a_and_b", BM_torch_fused_adamw, device, true),
      benchmark::RegisterBenchmark("torch_fused_adamw_b_only", BM_torch_fused_adamw, device, false),
      benchmark::RegisterBenchmark("projection_mm", BM_projection_mm, device),
      benchmark::RegisterBenchmark("copy_bandwidth", BM_copy_bandwidth, device),
  };
  // Rates, set against each other by the report: the best of the repetitions ("min") as well, since a
  // noisy machine only ever slows a run down.
  const auto best = [](const std::vector<double>& times) { return *std::min_element(times.begin(), times.end()); };
  if (device.is_cpu()) {
    all.push_back(benchmark::RegisterBenchmark("lorafa_projection", BM_lorafa_projection, device)->ComputeStatistics("min", best));
  }
  if (context.python_ready) {
    all.push_back(benchmark::RegisterBenchmark("peft_lorafa", BM_peft_lorafa, device));
    all.push_back(benchmark::RegisterBenchmark("python_torch_adamw", BM_python_torch_adamw, device));
  }
  for (auto* bench : all) {
    bench->ArgNames({"r", "width", "layers"})->ArgsProduct({ranks, widths, layer_counts})->Unit(benchmark::kMicrosecond);
    // Medians of several repetitions: the machines are noisy, ratios within one run are what count.
    if (context.preset != "smoke") bench->Repetitions(3)->ReportAggregatesOnly(true);
  }
  // One shape-independent case, named with the same arguments (all 0) so the report parses it alike.
  auto* gemm = benchmark::RegisterBenchmark("gemm_peak", BM_gemm_peak, device);
  gemm->ArgNames({"r", "width", "layers"})->Args({0, 0, 0})->Unit(benchmark::kMicrosecond)->ComputeStatistics("min", best);
  if (context.preset != "smoke") gemm->Repetitions(3)->ReportAggregatesOnly(true);
}

}  // namespace
}  // namespace lorafa::benchmarks

int main(int argc, char** argv) {
  return lorafa::benchmarks::RunBenchmarkMain(argc, argv, /*wants_python=*/true, {"smoke", "quick", "full"},
                                              lorafa::benchmarks::Register);
}
