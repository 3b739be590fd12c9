#include "testing/parity/peft_bridge.h"

#include <filesystem>
#include <memory>
#include <stdexcept>

#include <pybind11/stl.h>

#include "tools/cpp/runfiles/runfiles.h"

namespace lorafa::parity {
namespace {

namespace py = pybind11;
using bazel::tools::cpp::runfiles::Runfiles;

constexpr char kBridgeRunfile[] = "lorafa/testing/parity/peft_bridge.py";

std::string BridgeDirectory() {
  std::string error;
  // Tests find runfiles through TEST_SRCDIR; a binary started by `bazel run` or by hand through the
  // <binary>.runfiles folder beside its own path.
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::unique_ptr<Runfiles> runfiles(Runfiles::Create(self, &error));
  if (!runfiles) throw std::runtime_error("cannot locate runfiles: " + error);
  std::string path = runfiles->Rlocation(kBridgeRunfile);
  return path.substr(0, path.rfind('/'));
}

}  // namespace

py::module_ PeftBridge() {
  py::module_ sys = py::module_::import("sys");
  py::list path = sys.attr("path");
  std::string directory = BridgeDirectory();
  if (!path.contains(directory)) path.insert(0, directory);
  return py::module_::import("peft_bridge");
}

std::map<std::string, std::string> PythonVersions() {
  return PeftBridge().attr("versions")().cast<std::map<std::string, std::string>>();
}

void SetPeftBf16Autocast(bool enabled) { PeftBridge().attr("set_peft_bf16_autocast")(enabled); }

}  // namespace lorafa::parity
