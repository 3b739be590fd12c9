// One LibTorch in the process: the embedded interpreter imports the same torch (and the real peft),
// and a tensor made in C++ is the same storage when Python modifies it.
#include <string>

#include <gtest/gtest.h>
#include <pybind11/eval.h>
#include <torch/csrc/utils/pybind.h>
#include <torch/torch.h>
#include <torch/version.h>

namespace py = pybind11;

TEST(EmbeddedPythonSmoke, PythonTorchVersionMatchesTheHeadersWeCompiledAgainst) {
  std::string python_version = py::module_::import("torch").attr("__version__").cast<std::string>();
  // The wheel reports "2.11.0+cu130"; the C++ headers carry the release without the local tag.
  std::string release = python_version.substr(0, python_version.find('+'));
  EXPECT_EQ(release, TORCH_VERSION) << "Python torch " << python_version;
}

TEST(EmbeddedPythonSmoke, PeftShipsTheLoraFaOptimizer) {
  py::module_ lorafa = py::module_::import("peft.optimizers.lorafa");
  EXPECT_TRUE(py::hasattr(lorafa, "LoraFAOptimizer"));
  EXPECT_TRUE(py::hasattr(lorafa, "create_lorafa_optimizer"));
}

TEST(EmbeddedPythonSmoke, TensorPassedToPythonSharesStorageWithCpp) {
  torch::Tensor tensor = torch::zeros({4}, torch::kFloat32);
  py::dict scope;
  py::exec("def bump(t):\n    t.add_(1.5)\n    return t.data_ptr()\n", scope);
  auto python_data_ptr = scope["bump"](tensor).cast<std::intptr_t>();

  EXPECT_EQ(python_data_ptr, reinterpret_cast<std::intptr_t>(tensor.data_ptr()));
  // 0 + 1.5 is exact in float32: Python's in-place add is visible here only if storage is shared.
  EXPECT_TRUE(torch::equal(tensor, torch::full({4}, 1.5f)));
}
