// lorafa._C: the Python package's way into lorafa's C++ step. It binds the step of every param group,
// planned in C++ (step_planner.h) and run by the one functional step (lorafa/step.h), and the checks of
// options and pairs, so Python runs the same arithmetic as the C++ optimizer.
// lorafa/python/lorafa/optimizer.py is its only caller. C++ errors arrive as Python's ValueError /
// TypeError / RuntimeError with their message.
#include <string>
#include <vector>

#include <c10/util/Exception.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>

#include "lorafa/lora_pair.h"
#include "lorafa/python/step_planner.h"

namespace lorafa {
namespace {

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
  py::class_<lorafa::python::StepPlanner>(m, "StepPlanner")
      .def(py::init<const std::vector<std::string>&, const std::vector<at::Tensor>&, const std::vector<at::Tensor>&,
                    const std::vector<double>&>(),
           py::arg("names"), py::arg("A"), py::arg("B"), py::arg("scalings"))
      .def("prepare", &lorafa::python::StepPlanner::Prepare, py::arg("groups"), py::arg("state"))
      .def("gradients_are_finite", &lorafa::python::StepPlanner::GradientsAreFinite)
      .def("run", &lorafa::python::StepPlanner::Run);
  m.def("validate_options", [](const py::dict& group) { lorafa::python::OptionsOfGroup(group); }, py::arg("group"));
  m.def("validate_pairs", &lorafa::ValidatePairList, py::arg("names"), py::arg("A"), py::arg("B"),
        py::arg("scalings"), py::arg("others"));
}
