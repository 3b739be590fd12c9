#include "lorafa/python/sharded.h"

#include <c10/util/Exception.h>
#include <pybind11/pybind11.h>
#include <torch/csrc/autograd/python_variable.h>

namespace lorafa::python {
namespace {

// The DTensor class once torch.distributed.tensor is imported (by whoever shards a model), else null.
PyTypeObject* FindDTensorType() {
  static PyTypeObject* type = nullptr;
  if (type != nullptr) return type;
  static PyObject* const name = PyUnicode_InternFromString("torch.distributed.tensor");
  PyObject* module = PyImport_GetModule(name);
  if (module == nullptr) {
    PyErr_Clear();
    return nullptr;
  }
  PyObject* dtensor = PyObject_GetAttrString(module, "DTensor");
  Py_DECREF(module);
  if (dtensor == nullptr || !PyType_Check(dtensor)) {
    PyErr_Clear();
    Py_XDECREF(dtensor);
    return nullptr;
  }
  type = reinterpret_cast<PyTypeObject*>(dtensor);  // kept for the life of the process
  return type;
}

// object.<name>, which must be a tensor or None.
pybind11::object TensorAttribute(PyObject* object, const char* name) {
  pybind11::object value = pybind11::reinterpret_steal<pybind11::object>(PyObject_GetAttrString(object, name));
  if (!value) throw pybind11::error_already_set();
  TORCH_CHECK_TYPE(value.is_none() || THPVariable_Check(value.ptr()), "a DTensor's ", name, " is not a tensor");
  return value;
}

}  // namespace

LocalView::LocalView() : dtensor_(FindDTensorType()) {}

bool LocalView::IsDTensor(PyObject* object) const {
  return dtensor_ != nullptr && PyObject_TypeCheck(object, dtensor_);
}

at::Tensor LocalView::Of(PyObject* tensor) const {
  if (IsDTensor(tensor)) return THPVariable_Unpack(TensorAttribute(tensor, "_local_tensor").ptr());
  return THPVariable_Unpack(tensor);
}

at::Tensor LocalView::GradientOf(PyObject* param) const {
  // TensorImpl's own grad(): Tensor::grad() asks autograd first whether the tensor is a leaf, a virtual
  // call for a warning that a parameter never needs.
  if (!IsDTensor(param)) return THPVariable_Unpack(param).unsafeGetTensorImpl()->grad();
  const pybind11::object grad = TensorAttribute(param, "grad");
  return grad.is_none() ? at::Tensor() : Of(grad.ptr());
}

}  // namespace lorafa::python
