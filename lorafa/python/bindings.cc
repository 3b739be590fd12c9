// lorafa._C: the Python package's way into lorafa's C++ step. It binds the one functional step
// (lorafa/step.h), the cached projection of a pair (lorafa/projection.h) and the checks of options and
// pairs, so Python runs the same arithmetic as the C++ optimizer. lorafa/python/lorafa/optimizer.py is
// its only caller. C++ errors arrive as Python's ValueError / TypeError / RuntimeError with their message.
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <c10/util/Exception.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>

#include "lorafa/lora_pair.h"
#include "lorafa/options.h"
#include "lorafa/projection.h"
#include "lorafa/step.h"

namespace lorafa {
namespace {

namespace py = pybind11;

Projection ParseProjection(const std::string& name) {
  if (name == "exact") return Projection::kExact;
  if (name == "peft_bf16") return Projection::kPeftBf16;
  TORCH_CHECK_VALUE(false, "projection must be \"exact\" or \"peft_bf16\", got \"", name, "\"");
}

// A param group's hyperparameters as LoraFAOptions, checked (ValidateOptions names the bad value).
LoraFAOptions MakeOptions(const py::dict& group) {
  LoraFAOptions options(group["lr"].cast<double>());
  options.betas(group["betas"].cast<std::tuple<double, double>>())
      .eps(group["eps"].cast<double>())
      .weight_decay(group["weight_decay"].cast<double>())
      .correct_bias(group["correct_bias"].cast<bool>())
      .pinv_delta(group["pinv_delta"].cast<double>())
      .skip_nonfinite(group.contains("skip_nonfinite") && group["skip_nonfinite"].cast<bool>())
      .projection(ParseProjection(group["projection"].cast<std::string>()));
  ValidateOptions(options);
  return options;
}

// One pair's cached projection matrix; Python keeps one per B, outside the optimizer's state_dict
// (it is recomputed from A after a load, bit for bit the same).
class PairProjection {
 public:
  at::Tensor Matrix(const std::string& name, const at::Tensor& A, const at::Tensor& B, double scaling,
                    const at::Tensor& grad_B, const std::string& projection, double pinv_delta) {
    return cache_.Matrix(LoraPair{name, A, B, scaling}, grad_B.scalar_type(), ParseProjection(projection), pinv_delta);
  }
  int64_t pinv_computations() const { return cache_.pinv_computations(); }

 private:
  internal::CachedProjection cache_;
};

void ValidatePairList(const std::vector<std::string>& names, const std::vector<at::Tensor>& A,
                      const std::vector<at::Tensor>& B, const std::vector<double>& scalings,
                      const std::vector<at::Tensor>& others) {
  TORCH_CHECK_VALUE(names.size() == A.size() && A.size() == B.size() && B.size() == scalings.size(),
                    "pair lists differ in length: ", names.size(), " names, ", A.size(), " A, ", B.size(),
                    " B, ", scalings.size(), " scalings");
  std::vector<LoraPair> pairs;
  for (size_t i = 0; i < names.size(); ++i) pairs.push_back({names[i], A[i], B[i], scalings[i]});
  ValidatePairs(pairs, others);
}

// A state's step count is a one-element CPU tensor, float32, or float64 under a float64 default dtype,
// as torch's optimizers keep it (a checkpoint may hold either). Read and counted up through its
// pointer: an ATen call per tensor (item, add_) would cost more than the step itself.
void CheckStepCount(const at::Tensor& step) {
  TORCH_CHECK_VALUE(step.is_cpu() && (step.scalar_type() == at::kFloat || step.scalar_type() == at::kDouble) &&
                        step.numel() == 1,
                    "a state's step must be a one-element float32 or float64 CPU tensor, got ", step.scalar_type(),
                    " of ", step.numel(), " elements on ", step.device());
}

int64_t ReadStepCount(const at::Tensor& step) {
  return step.scalar_type() == at::kDouble ? static_cast<int64_t>(*step.const_data_ptr<double>())
                                           : static_cast<int64_t>(*step.const_data_ptr<float>());
}

void CountUp(const at::Tensor& step) {
  if (step.scalar_type() == at::kDouble) {
    *step.data_ptr<double>() += 1.0;
  } else {
    *step.data_ptr<float>() += 1.0f;
  }
}

// The step counts this step will use: each state's count plus one (every count checked first).
std::vector<int64_t> NextSteps(const std::vector<at::Tensor>& steps) {
  for (const at::Tensor& step : steps) CheckStepCount(step);
  std::vector<int64_t> next;
  next.reserve(steps.size());
  for (const at::Tensor& step : steps) next.push_back(ReadStepCount(step) + 1);
  return next;
}

// One param group's step. `step_B` and `step` are the states' step tensors: read here, and counted up
// only once every tensor has been updated.
void Step(const py::dict& group, std::vector<at::Tensor> B, std::vector<at::Tensor> grad_B,
          std::vector<at::Tensor> exp_avg_B, std::vector<at::Tensor> exp_avg_sq_B,
          std::vector<at::Tensor> projection, std::vector<double> scaling, const std::vector<at::Tensor>& step_B,
          std::vector<at::Tensor> params, std::vector<at::Tensor> grads, std::vector<at::Tensor> exp_avg,
          std::vector<at::Tensor> exp_avg_sq, const std::vector<at::Tensor>& step) {
  const LoraFAOptions options = MakeOptions(group);
  LoraFAStepLists lists{std::move(B),       std::move(grad_B),     std::move(exp_avg_B),  std::move(exp_avg_sq_B),
                        std::move(projection), std::move(scaling), NextSteps(step_B),     std::move(params),
                        std::move(grads),   std::move(exp_avg),    std::move(exp_avg_sq), NextSteps(step)};
  py::gil_scoped_release release;  // the step can take a while; other Python threads may run
  LoraFAStep(lists, options);
  for (const auto* counts : {&step_B, &step}) {
    for (const at::Tensor& count : *counts) CountUp(count);
  }
}

}  // namespace
}  // namespace lorafa

PYBIND11_MODULE(_C, m) {
  namespace py = pybind11;
  m.doc() = "lorafa's C++ LoRA-FA step (used by lorafa.LoraFAOptimizer)";
  // torch's own translator may not reach this module (pybind11 keeps translators per build), so the
  // c10 error types are mapped here: the message is the C++ check's.
  py::register_exception_translator([](std::exception_ptr error) {
    try {
      if (error) std::rethrow_exception(error);
    } catch (const c10::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what_without_backtrace());
    } catch (const c10::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what_without_backtrace());
    } catch (const c10::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    }
  });
  py::class_<lorafa::PairProjection>(m, "PairProjection")
      .def(py::init<>())
      .def("matrix", &lorafa::PairProjection::Matrix, py::arg("name"), py::arg("A"), py::arg("B"), py::arg("scaling"),
           py::arg("grad_B"), py::arg("projection"), py::arg("pinv_delta"))
      .def_property_readonly("pinv_computations", &lorafa::PairProjection::pinv_computations);
  m.def("gradients_are_finite", &lorafa::GradientsAreFinite, py::arg("grads"));
  m.def("validate_options", [](const py::dict& group) { lorafa::MakeOptions(group); }, py::arg("group"));
  m.def("validate_pairs", &lorafa::ValidatePairList, py::arg("names"), py::arg("A"), py::arg("B"),
        py::arg("scalings"), py::arg("others"));
  m.def("step", &lorafa::Step, py::arg("group"), py::arg("B"), py::arg("grad_B"), py::arg("exp_avg_B"),
        py::arg("exp_avg_sq_B"), py::arg("projection"), py::arg("scaling"), py::arg("step_B"), py::arg("params"),
        py::arg("grads"), py::arg("exp_avg"), py::arg("exp_avg_sq"), py::arg("step"));
}
