// Fidelity: how far lorafa kExact and PEFT as shipped (bf16 autocast) each end from the float64
// reference after N float32 steps on the same gradients. Passes when lorafa stays within the derived
// float32 bound; PEFT's distance is reported beside it, not judged.
#include <string>
#include <vector>

#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lorafa/optimizer.h"
#include "reference/lorafa_optimizer.h"
#include "testing/eigen_tensor.h"
#include "testing/parity/comparison.h"
#include "testing/parity/peft_bridge.h"
#include "testing/parity/precision.h"
#include "testing/parity/scenario.h"

namespace lorafa::parity {
namespace {

namespace py = pybind11;
using lorafa::testing::ToEigen;
using lorafa::testing::ToTensor;

ScenarioResult RunFidelity(int steps) {
  torch::manual_seed(4321);
  const LoraFAOptions options(1e-2);
  struct Shape {
    int64_t r, in, out;
    double s;
  };
  const std::vector<Shape> shapes = {{4, 40, 7, 1.7}, {8, 64, 5, 2.3}};
  std::vector<LoraPair> pairs;
  std::vector<std::string> names;
  std::vector<torch::Tensor> tensors;
  std::vector<std::optional<double>> scalings;
  reference::ReferenceLoraFA reference({options.lr(), 0.9, 0.999, options.eps(), 0.0, true}, options.pinv_delta(),
                                       reference::ReferenceProjection::kExact);
  for (size_t i = 0; i < shapes.size(); ++i) {
    torch::Tensor A = torch::randn({shapes[i].r, shapes[i].in});
    torch::Tensor B = (0.1 * torch::randn({shapes[i].out, shapes[i].r})).requires_grad_();
    pairs.push_back({absl::StrCat("l", i, ".default"), A, B, shapes[i].s});
    reference.AddPair(ToEigen(A), ToEigen(B), shapes[i].s);
    names.insert(names.end(), {absl::StrCat("l", i, ".lora_A.default.weight"), absl::StrCat("l", i, ".lora_B.default.weight")});
    tensors.insert(tensors.end(), {A, B});
    scalings.insert(scalings.end(), {shapes[i].s, shapes[i].s});
  }
  SetPeftBf16Autocast(true);
  py::object peft = PeftBridge().attr("PeftOptimizerRun")(names, tensors, scalings, options.lr(), 0.9, 0.999,
                                                           options.eps(), 0.0, true);
  LoraFAOptimizer lorafa(pairs, {}, LoraFAOptions(options).projection(Projection::kExact));

  Comparison lorafa_vs_float64(Comparison::Target::kBound), peft_vs_float64(Comparison::Target::kBound);
  for (int t = 1; t <= steps; ++t) {
    std::vector<Eigen::MatrixXd> grad_b;
    py::list peft_grads;
    for (LoraPair& pair : pairs) {
      pair.B.mutable_grad() = torch::randn(pair.B.sizes());
      grad_b.push_back(ToEigen(pair.B.grad()));
      peft_grads.append(py::none());
      peft_grads.append(pair.B.grad());
    }
    lorafa.step();
    peft.attr("step")(peft_grads);
    reference.Step(grad_b, {});
    for (size_t i = 0; i < pairs.size(); ++i) {
      torch::Tensor expected = ToTensor(reference.pairs()[i].B);
      // The float32 bound of precision.h, against float64: one side rounds, so half of it.
      // plus half a float32 unit for rounding the float64 value to float32.
      torch::Tensor bound = UpdateBound(expected.to(torch::kFloat), options, t) / 2 +
                            expected.abs() * UnitRoundoff(torch::kFloat);
      // Compared in float32, so ULPs count float32 spacings from the rounded float64 value.
      torch::Tensor expected32 = expected.to(torch::kFloat);
      lorafa_vs_float64.Add(pairs[i].name, t, pairs[i].B.detach(), expected32, bound);
      peft_vs_float64.Add(pairs[i].name, t, peft.attr("tensor")(2 * i + 1).cast<torch::Tensor>(), expected32, bound);
    }
  }
  ScenarioResult result = ResultOf(lorafa_vs_float64, "float32", steps);
  result.detail = absl::StrFormat(
      "after %d steps, max |x - float64| (max float32 ULP): lorafa kExact %.3g (%d), PEFT as shipped %.3g (%d)%s", steps,
      lorafa_vs_float64.max_abs_diff(), lorafa_vs_float64.max_ulp(), peft_vs_float64.max_abs_diff(),
      peft_vs_float64.max_ulp(),
                                  lorafa_vs_float64.passed() ? "" : "; " + lorafa_vs_float64.first_miss());
  return result;
}

}  // namespace

std::vector<Scenario> FidelityScenarios() { return {{"fidelity/float32/vs-float64", 50, RunFidelity}}; }

}  // namespace lorafa::parity
