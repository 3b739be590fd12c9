// Parameters sharded by FSDP2 (torch.distributed.fsdp.fully_shard) are DTensors: a wrapper with the
// global shape whose data is the rank's local shard. The step works on the local shards: HF-AdamW is
// elementwise and ĝ = g·P is row-local, so a B sharded by rows steps its own rows with the whole P.
#pragma once

#include <Python.h>

#include <ATen/core/Tensor.h>

namespace lorafa::python {

// The tensors the step reads and writes: a DTensor's local shard (no communication), else the tensor.
class LocalView {
 public:
  // Finds the DTensor class if torch.distributed.tensor is imported; without it there is no DTensor,
  // and each question below costs a pointer comparison.
  LocalView();

  bool IsDTensor(PyObject* object) const;
  // `tensor` must be a torch.Tensor (a DTensor is one).
  at::Tensor Of(PyObject* tensor) const;
  // A parameter's gradient, the local shard of a DTensor's; undefined when it has none.
  at::Tensor GradientOf(PyObject* param) const;

 private:
  PyTypeObject* dtensor_;
};

}  // namespace lorafa::python
