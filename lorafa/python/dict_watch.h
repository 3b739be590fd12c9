// Whether some Python dicts may have changed, told without reading them. CPython 3.12's dict watchers
// call back on every change of a watched dict; the step planner uses them so that a step after an
// unchanged one reads no parameter's state dict (a cache miss or two each, after a step that streamed
// the layers through the caches). Before 3.12, or where the interpreter's watchers are all taken,
// nothing is watched and every dict counts as changed: the planner then reads them all, every step.
#pragma once

#include <Python.h>

#include <cstdint>

namespace lorafa::python {

class DictWatch {
 public:
  // From now on, a change of `dict` (a dict, or an instance of a subclass) counts in Changes().
  static void Watch(PyObject* dict);
  // How many changes of watched dicts there were so far. Where nothing can be watched, a new number at
  // every call, so that no two calls agree.
  static uint64_t Changes();
};

}  // namespace lorafa::python
