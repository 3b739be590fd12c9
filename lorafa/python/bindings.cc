// lorafa._C: the Python package's way into lorafa's C++ step. It binds the step of every param group,
// planned in C++ (step_planner.h) and run by the one functional step (lorafa/step.h), and the checks of
// options and pairs, so Python runs the same arithmetic as the C++ optimizer.
// lorafa/python/lorafa/optimizer.py is its only caller. C++ errors arrive as Python's ValueError /
// TypeError / RuntimeError with their message.
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <c10/util/Exception.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>

#include "lorafa/lora_names.h"
#include "lorafa/lora_pair.h"
#include "lorafa/pairing.h"
#include "lorafa/python/step_planner.h"

namespace lorafa {
namespace {

// PEFT's group layout ("names" and "scaling_factors" aligned with "params") paired by module path and
// adapter with lorafa's own pairing (lorafa/pairing.h), each pair with its B's scaling factor.
std::vector<std::tuple<std::string, at::Tensor, at::Tensor, double>> PairByGroupNames(
    const std::vector<std::string>& names, const std::vector<at::Tensor>& params,
    const std::vector<std::optional<double>>& scaling_factors) {
  TORCH_CHECK_VALUE(names.size() == params.size() && scaling_factors.size() == params.size(),
                    "a param group's 'names' (", names.size(), "), 'params' (", params.size(),
                    ") and 'scaling_factors' (", scaling_factors.size(), ") must be aligned");
  std::vector<std::pair<std::string, at::Tensor>> named;
  std::map<std::string, std::optional<double>> scaling_of_pair;
  for (size_t i = 0; i < names.size(); ++i) {
    named.emplace_back(names[i], params[i]);
    const std::optional<LoraParameterName> lora = ParseLoraParameterName(names[i]);
    if (lora && lora->role == LoraRole::kB) scaling_of_pair[lora->PairKey()] = scaling_factors[i];
  }
  const PairedParameters paired = PairByName(named, [&](const std::string& module, const std::string& adapter) {
    const std::string key = LoraParameterName{module, adapter, LoraRole::kB}.PairKey();
    const std::optional<double>& scaling = scaling_of_pair.at(key);
    TORCH_CHECK_VALUE(scaling.has_value(), "LoRA pair '", key, "': its B has no scaling in 'scaling_factors'");
    return *scaling;
  });
  std::vector<std::tuple<std::string, at::Tensor, at::Tensor, double>> pairs;
  for (const LoraPair& pair : paired.pairs) pairs.emplace_back(pair.name, pair.A, pair.B, pair.scaling);
  return pairs;
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
  py::register_exception<lorafa::python::UnknownParameter>(m, "UnknownParameter", PyExc_ValueError);
  py::class_<lorafa::python::StepPlanner>(m, "StepPlanner")
      .def(py::init<const std::vector<std::string>&, const std::vector<at::Tensor>&, const std::vector<at::Tensor>&,
                    const std::vector<double>&, const std::vector<at::Tensor>&>(),
           py::arg("names"), py::arg("A"), py::arg("B"), py::arg("scalings"), py::arg("others"))
      .def("prepare", &lorafa::python::StepPlanner::Prepare, py::arg("groups"), py::arg("state"))
      .def("gradients_are_finite", &lorafa::python::StepPlanner::GradientsAreFinite)
      .def("run", &lorafa::python::StepPlanner::Run, py::arg("finite") = py::none(), py::arg("keep_gradients") = false);
  m.def("validate_options", [](const py::dict& group) { lorafa::python::OptionsOfGroup(group); }, py::arg("group"));
  m.def("pair_by_group_names", &lorafa::PairByGroupNames, py::arg("names"), py::arg("params"),
        py::arg("scaling_factors"));
}
