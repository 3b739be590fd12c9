// Optimizer level: pairs and other parameters built here, handed to PEFT's LoraFAOptimizer (in the
// group layout create_lorafa_optimizer makes) and to lorafa's; the same gradients for every step;
// every B, A, other parameter, moment and step count compared after every step.
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "lorafa/optimizer.h"
#include "testing/parity/comparison.h"
#include "testing/parity/peft_bridge.h"
#include "testing/parity/precision.h"
#include "testing/parity/scenario.h"

namespace lorafa::parity {
namespace {

namespace py = pybind11;

struct OptimizerCase {
  std::string name;
  torch::ScalarType dtype = torch::kFloat32;
  bool peft_bf16_autocast = true;  // PEFT as shipped on a CPU machine
  Projection projection = Projection::kPeftBf16;
  LoraFAOptions options = LoraFAOptions(1e-2);
  bool power_of_two_scalings = false;
  // PEFT's g_B @ pinv summed in k order by fused multiply-adds (peft_bridge.k_order_product), the order
  // of lorafa's CPU projection, instead of in the BLAS library's order.
  bool k_order_peft_product = false;
  Comparison::Target target = Comparison::Target::kBitwise;
  torch::Device device = torch::kCPU;  // where both PEFT's and lorafa's tensors live
};

struct PairShape {
  int64_t r, in, out;
};
const std::vector<PairShape> kPairShapes = {{2, 16, 3}, {4, 40, 7}, {8, 64, 5}};

ScenarioResult RunOptimizerCase(const OptimizerCase& c, int steps) {
  torch::manual_seed(1234);
  std::vector<LoraPair> pairs;
  std::vector<std::string> names;
  std::vector<torch::Tensor> tensors;
  std::vector<std::optional<double>> scalings;
  for (size_t i = 0; i < kPairShapes.size(); ++i) {
    const PairShape& shape = kPairShapes[i];
    // Per-layer scalings as rank_pattern/alpha_pattern give; exact powers of two on request.
    const double s = c.power_of_two_scalings ? std::ldexp(1.0, static_cast<int>(i) - 1) : 1.5 + 0.7 * i;
    // Drawn on the CPU, then moved: every device sees the same numbers.
    torch::Tensor A = torch::randn({shape.r, shape.in}).to(c.device, c.dtype);
    torch::Tensor B = (0.1 * torch::randn({shape.out, shape.r})).to(c.device, c.dtype).requires_grad_();
    std::string module = absl::StrCat("layers.", i, ".q_proj");
    pairs.push_back({module + ".default", A, B, s});
    names.push_back(module + ".lora_A.default.weight");
    names.push_back(module + ".lora_B.default.weight");
    tensors.insert(tensors.end(), {A, B});
    scalings.insert(scalings.end(), {s, s});
  }
  std::vector<torch::Tensor> others = {torch::randn({6, 5}).to(c.device, c.dtype).requires_grad_(),
                                       torch::randn({6}).to(c.device, c.dtype).requires_grad_()};
  for (const char* name : {"head.weight", "head.bias"}) names.push_back(name);
  tensors.insert(tensors.end(), others.begin(), others.end());
  scalings.insert(scalings.end(), {std::nullopt, std::nullopt});

  SetPeftBf16Autocast(c.peft_bf16_autocast);
  auto [beta1, beta2] = c.options.betas();
  py::object peft = PeftBridge().attr("PeftOptimizerRun")(names, tensors, scalings, c.options.lr(), beta1, beta2,
                                                           c.options.eps(), c.options.weight_decay(),
                                                           c.options.correct_bias(), c.k_order_peft_product);
  LoraFAOptimizer lorafa(pairs, others, LoraFAOptions(c.options).projection(c.projection));

  Comparison comparison(c.target);
  // On a GPU each side's bf16 matmul may get its own cuBLAS kernel (see Bfloat16ProductUpdateBound).
  const bool bf16_product_on_gpu = c.device.is_cuda() && c.projection == Projection::kPeftBf16;
  auto bound = [&](const torch::Tensor& parameter, int t) {
    return bf16_product_on_gpu ? Bfloat16ProductUpdateBound(parameter, c.options, t) : UpdateBound(parameter, c.options, t);
  };
  for (int t = 1; t <= steps; ++t) {
    py::list grads;
    for (LoraPair& pair : pairs) {
      pair.B.mutable_grad() = torch::randn(pair.B.sizes()).to(c.device, c.dtype);
      grads.append(py::none());
      grads.append(pair.B.grad());
    }
    for (torch::Tensor& other : others) {
      other.mutable_grad() = torch::randn(other.sizes()).to(c.device, c.dtype);
      grads.append(other.grad());
    }
    peft.attr("step")(grads);
    lorafa.step();

    for (size_t i = 0; i < pairs.size(); ++i) {
      const std::string& b_name = names[2 * i + 1];
      torch::Tensor peft_B = peft.attr("tensor")(2 * i + 1).cast<torch::Tensor>();
      comparison.Add(b_name, t, pairs[i].B, peft_B, bound(peft_B, t));
      comparison.Add(names[2 * i], t, pairs[i].A, peft.attr("tensor")(2 * i).cast<torch::Tensor>());
      auto [peft_step, peft_m, peft_v] = peft.attr("pair_state")(b_name).cast<std::tuple<int64_t, torch::Tensor, torch::Tensor>>();
      const LoraFAParamState& state = *lorafa.pair_state(i);
      comparison.AddScalar(b_name + " step", t, static_cast<double>(state.step()), static_cast<double>(peft_step));
      if (c.target == Comparison::Target::kBitwise) {
        comparison.Add(b_name + " exp_avg", t, state.exp_avg(), peft_m);
        comparison.Add(b_name + " exp_avg_sq", t, state.exp_avg_sq(), peft_v);
      }
    }
    for (size_t j = 0; j < others.size(); ++j) {
      const size_t index = 2 * pairs.size() + j;
      torch::Tensor peft_other = peft.attr("tensor")(index).cast<torch::Tensor>();
      comparison.Add(names[index], t, others[j], peft_other, bound(peft_other, t));
    }
  }
  SetPeftBf16Autocast(true);
  ScenarioResult result = ResultOf(comparison, DtypeName(c.dtype), steps);
  if (c.device.is_cuda() && result.passed) {  // which of the two held is worth knowing
    result.detail = result.max_ulp == 0
                        ? "finding: bitwise equal to PEFT on the GPU"
                        : absl::StrCat("finding: not bitwise (max ", result.max_ulp, " ULP), within the derived bound");
  }
  return result;
}

Scenario MakeOptimizerScenario(OptimizerCase c) {
  return {c.name, 50, [c](int steps) { return RunOptimizerCase(c, steps); }};
}

}  // namespace

std::vector<Scenario> OptimizerScenarios() {
  std::vector<OptimizerCase> cases;
  cases.push_back({"optimizer/float32/peft-bf16"});
  {
    OptimizerCase c{"optimizer/bfloat16/peft-bf16"};
    c.dtype = torch::kBFloat16;
    cases.push_back(c);
  }
  {
    OptimizerCase c{"optimizer/float64/peft-bf16"};  // autocast leaves float64 alone: a float64 path
    c.dtype = torch::kFloat64;
    cases.push_back(c);
  }
  {
    OptimizerCase c{"optimizer/float32/no-bias-correction"};
    c.options.correct_bias(false);
    cases.push_back(c);
  }
  {
    OptimizerCase c{"optimizer/float32/weight-decay"};
    c.options.weight_decay(0.1);
    cases.push_back(c);
  }
  {
    OptimizerCase c{"optimizer/float32/betas-eps"};
    c.options.betas({0.8, 0.99}).eps(1e-8);
    cases.push_back(c);
  }
  {
    // With s a power of two, folding 1/s² into the cached pinv is exact: (g·P)/s² and g·(P/s²) round
    // alike at every step of a sum, so kExact's fused projection must be bitwise PEFT's when both sum
    // in the same order. A BLAS library's order is its own (MKL's AVX2 and AVX-512 kernels differ), so
    // PEFT's product is summed in the fused kernel's k order here; all else is PEFT's as shipped.
    OptimizerCase c{"optimizer/float32/exact-vs-peft-fp32-k-order-product/pow2-scaling"};
    c.peft_bf16_autocast = false;
    c.projection = Projection::kExact;
    c.power_of_two_scalings = true;
    c.k_order_peft_product = true;
    cases.push_back(c);
  }
  {
    OptimizerCase c{"optimizer/float32/exact-vs-peft-fp32"};
    c.peft_bf16_autocast = false;
    c.projection = Projection::kExact;
    c.target = Comparison::Target::kBound;
    cases.push_back(c);
  }
  std::vector<Scenario> scenarios;
  for (const OptimizerCase& c : cases) scenarios.push_back(MakeOptimizerScenario(c));
  return scenarios;
}

std::vector<Scenario> CudaScenarios() {
  std::vector<Scenario> scenarios;
  for (torch::ScalarType dtype : {torch::kFloat32, torch::kBFloat16}) {
    // PEFT on a CUDA machine: its product runs under CUDA bf16 autocast; so does lorafa's kPeftBf16.
    OptimizerCase c{absl::StrCat("cuda/optimizer/", DtypeName(dtype), "/peft-bf16")};
    c.dtype = dtype;
    c.device = torch::Device(torch::kCUDA, 0);
    c.target = Comparison::Target::kBound;
    scenarios.push_back(MakeOptimizerScenario(c));
  }
  {
    // Both in float32 with power-of-two scalings, as the CPU scenario of the same name.
    OptimizerCase c{"cuda/optimizer/float32/exact-vs-peft-fp32/pow2-scaling"};
    c.device = torch::Device(torch::kCUDA, 0);
    c.peft_bf16_autocast = false;
    c.projection = Projection::kExact;
    c.power_of_two_scalings = true;
    c.target = Comparison::Target::kBound;
    scenarios.push_back(MakeOptimizerScenario(c));
  }
  return scenarios;
}

}  // namespace lorafa::parity
