// Known divergences: layouts where PEFT's order-based pairing or its missing-gradient handling is
// wrong. In float64 (where PEFT's autocast does nothing) each case runs PEFT, lorafa and the float64
// reference on the same gradients; it passes when PEFT departs from the reference (raises, or ends
// elsewhere) while lorafa follows it.
#include <functional>
#include <string>
#include <vector>

#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "lorafa/optimizer.h"
#include "lorafa/pairing.h"
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

struct NamedTensor {
  std::string name;  // PEFT's name, in PEFT's named_parameters() order
  torch::Tensor tensor;
};

struct DivergenceCase {
  std::string name;
  std::function<std::vector<NamedTensor>()> layout;
  std::map<std::string, double> scalings;  // "<module>.<adapter>" -> s
  // Whether the trainable tensor `name` gets a gradient at `step`.
  std::function<bool(const std::string& name, int step)> has_grad = [](const std::string&, int) { return true; };
};

torch::Tensor Matrix(int64_t rows, int64_t cols, double scale) {
  return (scale * torch::randn({rows, cols}, torch::kFloat64));
}

// Float64 bound on lorafa vs the reference, as in lorafa/reference_agreement_test.cc: eps × κ (< 5) ×
// ~10 operations a step × steps stays below 1e-12 relative, with lr·t as the floor near zero.
torch::Tensor Float64Bound(const Eigen::MatrixXd& expected, double lr, int step) {
  return 1e-12 * (ToTensor(expected).abs() + lr * step);
}

ScenarioResult RunDivergence(const DivergenceCase& c, int steps) {
  torch::manual_seed(99);
  const LoraFAOptions options(1e-2);
  std::vector<NamedTensor> layout = c.layout();

  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (NamedTensor& entry : layout) named.emplace_back(entry.name, entry.tensor);
  PairedParameters paired = PairByName(named, [&c](const std::string& module, const std::string& adapter) {
    return c.scalings.at(module + "." + adapter);
  });
  LoraFAOptimizer lorafa(paired.pairs, paired.others, options);
  reference::ReferenceLoraFA reference({options.lr(), 0.9, 0.999, options.eps(), 0.0, true}, options.pinv_delta(),
                                       reference::ReferenceProjection::kExact);
  for (const LoraPair& pair : paired.pairs) reference.AddPair(ToEigen(pair.A), ToEigen(pair.B), pair.scaling);
  for (const torch::Tensor& other : paired.others) reference.AddParam(ToEigen(other.view({1, -1})));

  std::vector<std::string> names;
  std::vector<torch::Tensor> tensors;
  std::vector<std::optional<double>> peft_scalings;
  for (const NamedTensor& entry : layout) {
    names.push_back(entry.name);
    tensors.push_back(entry.tensor);
    std::optional<double> s;
    if (entry.name.find(".lora_") != std::string::npos) {
      // PEFT's lookup: module.scaling[adapter] for ".lora_" names (a lora_B bias included).
      std::string module = entry.name.substr(0, entry.name.find(".lora_"));
      std::string rest = entry.name.substr(entry.name.find(".lora_") + 1);
      std::string adapter = rest.substr(rest.find('.') + 1);
      adapter = adapter.substr(0, adapter.find('.'));
      s = c.scalings.at(module + "." + adapter);
    }
    peft_scalings.push_back(s);
  }
  py::object peft = PeftBridge().attr("PeftOptimizerRun")(names, tensors, peft_scalings, options.lr(), 0.9, 0.999,
                                                           options.eps(), 0.0, true);

  auto pair_of = [&paired](const torch::Tensor& t) -> int {
    for (size_t i = 0; i < paired.pairs.size(); ++i) if (paired.pairs[i].B.is_same(t)) return static_cast<int>(i);
    return -1;
  };
  auto other_of = [&paired](const torch::Tensor& t) -> int {
    for (size_t j = 0; j < paired.others.size(); ++j) if (paired.others[j].is_same(t)) return static_cast<int>(j);
    return -1;
  };

  Comparison lorafa_vs_reference(Comparison::Target::kBound);
  std::string peft_outcome;
  for (int t = 1; t <= steps; ++t) {
    std::vector<Eigen::MatrixXd> grad_b(paired.pairs.size()), grad_other(paired.others.size());
    py::list peft_grads;
    for (NamedTensor& entry : layout) {
      const int pair = pair_of(entry.tensor), other = other_of(entry.tensor);
      if ((pair < 0 && other < 0) || !c.has_grad(entry.name, t)) {
        entry.tensor.mutable_grad() = torch::Tensor();
        peft_grads.append(py::none());
        continue;
      }
      entry.tensor.mutable_grad() = torch::randn(entry.tensor.sizes(), torch::kFloat64);
      peft_grads.append(entry.tensor.grad());
      (pair >= 0 ? grad_b[pair] : grad_other[other]) = ToEigen(pair >= 0 ? entry.tensor.grad() : entry.tensor.grad().view({1, -1}));
    }
    lorafa.step();
    reference.Step(grad_b, grad_other);
    if (peft_outcome.empty()) {
      try {
        peft.attr("step")(peft_grads);
      } catch (const py::error_already_set& error) {
        std::string message = error.what();
        peft_outcome = absl::StrCat("PEFT raised at step ", t, ": ", message.substr(0, message.find('\n')));
      }
    }
    for (size_t i = 0; i < paired.pairs.size(); ++i) {
      const Eigen::MatrixXd& expected = reference.pairs()[i].B;
      lorafa_vs_reference.Add(paired.pairs[i].name + " B", t, paired.pairs[i].B, ToTensor(expected),
                              Float64Bound(expected, options.lr(), t));
    }
    for (size_t j = 0; j < paired.others.size(); ++j) {
      const Eigen::MatrixXd& expected = reference.params()[j].value;
      lorafa_vs_reference.Add(absl::StrCat("other ", j), t, paired.others[j].view({1, -1}), ToTensor(expected),
                              Float64Bound(expected, options.lr(), t));
    }
  }

  if (peft_outcome.empty()) {
    // PEFT finished: compare its tensors with the reference's at the end.
    Comparison peft_vs_reference(Comparison::Target::kBound);
    for (size_t index = 0; index < layout.size(); ++index) {
      const int pair = pair_of(layout[index].tensor), other = other_of(layout[index].tensor);
      if (pair < 0 && other < 0) continue;
      const Eigen::MatrixXd& expected = pair >= 0 ? reference.pairs()[pair].B : reference.params()[other].value;
      torch::Tensor peft_tensor = peft.attr("tensor")(index).cast<torch::Tensor>();
      peft_vs_reference.Add(layout[index].name, steps, peft_tensor.reshape(ToTensor(expected).sizes()),
                            ToTensor(expected), Float64Bound(expected, options.lr(), steps));
    }
    peft_outcome = peft_vs_reference.passed()
                       ? "PEFT matched the reference"
                       : absl::StrCat("PEFT ended away from the reference: ", peft_vs_reference.first_miss());
  }
  const bool peft_diverged = peft_outcome.rfind("PEFT matched", 0) != 0;

  ScenarioResult result = ResultOf(lorafa_vs_reference, "float64", steps);
  result.target = "PEFT diverges; lorafa = reference";
  result.passed = lorafa_vs_reference.passed() && peft_diverged;
  result.detail = lorafa_vs_reference.passed() ? peft_outcome : "lorafa left the reference: " + lorafa_vs_reference.first_miss();
  return result;
}

}  // namespace

std::vector<Scenario> DivergenceScenarios() {
  std::vector<DivergenceCase> cases;
  {
    // PEFT's named_parameters order: every lora_A (all adapters), then every lora_B.
    DivergenceCase c{"divergence/two-adapters-one-layer"};
    c.layout = [] {
      return std::vector<NamedTensor>{
          {"q.lora_A.default.weight", Matrix(2, 16, 1.0)},
          {"q.lora_A.fr.weight", Matrix(3, 16, 1.0)},
          {"q.lora_B.default.weight", Matrix(5, 2, 0.1).requires_grad_()},
          {"q.lora_B.fr.weight", Matrix(5, 3, 0.1).requires_grad_()},
      };
    };
    c.scalings = {{"q.default", 2.0}, {"q.fr", 3.0}};
    cases.push_back(c);
  }
  {
    DivergenceCase c{"divergence/lora-b-bias"};
    c.layout = [] {
      return std::vector<NamedTensor>{
          {"q.lora_A.default.weight", Matrix(2, 16, 1.0)},
          {"q.lora_B.default.weight", Matrix(5, 2, 0.1).requires_grad_()},
          {"q.lora_B.default.bias", torch::randn({5}, torch::kFloat64).mul(0.1).requires_grad_()},
      };
    };
    c.scalings = {{"q.default", 2.0}};
    cases.push_back(c);
  }
  {
    DivergenceCase c{"divergence/b-without-grad"};
    c.layout = [] {
      return std::vector<NamedTensor>{
          {"q.lora_A.default.weight", Matrix(2, 16, 1.0)},
          {"q.lora_B.default.weight", Matrix(5, 2, 0.1).requires_grad_()},
          {"k.lora_A.default.weight", Matrix(3, 16, 1.0)},
          {"k.lora_B.default.weight", Matrix(4, 3, 0.1).requires_grad_()},
      };
    };
    c.scalings = {{"q.default", 2.0}, {"k.default", 2.0}};
    // k's B gets no gradient at step 2 (say, its layer was skipped in that forward pass).
    c.has_grad = [](const std::string& name, int step) { return !(name.rfind("k.", 0) == 0 && step == 2); };
    cases.push_back(c);
  }
  std::vector<Scenario> scenarios;
  for (const DivergenceCase& c : cases) {
    scenarios.push_back({c.name, 5, [c](int steps) { return RunDivergence(c, steps); }});
  }
  return scenarios;
}

}  // namespace lorafa::parity
