#include "lorafa/python/dict_watch.h"

namespace lorafa::python {
namespace {

// Counted under the GIL, as watchers are called and Changes() is read.
uint64_t changes = 0;
// False from the first dict that could not be watched: then no dict is trusted to be unchanged.
bool watching = PY_VERSION_HEX >= 0x030C0000;

#if PY_VERSION_HEX >= 0x030C0000
int CountChange(PyDict_WatchEvent, PyObject*, PyObject*, PyObject*) {
  ++changes;
  return 0;
}

// The interpreter's watcher for lorafa, added at the first use; -1 where none was left (CPython has 8).
int WatcherId() {
  static const int id = [] {
    const int added = PyDict_AddWatcher(CountChange);
    if (added < 0) PyErr_Clear();
    return added;
  }();
  return id;
}
#endif

}  // namespace

void DictWatch::Watch(PyObject* dict) {
#if PY_VERSION_HEX >= 0x030C0000
  if (watching && (WatcherId() < 0 || PyDict_Watch(WatcherId(), dict) < 0)) {
    PyErr_Clear();
    watching = false;
  }
#else
  (void)dict;
#endif
}

uint64_t DictWatch::Changes() {
  if (!watching) ++changes;
  return changes;
}

}  // namespace lorafa::python
