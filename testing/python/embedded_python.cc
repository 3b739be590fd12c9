#include "testing/python/embedded_python.h"

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include <pybind11/embed.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "python_location.h"

namespace lorafa::testing {
namespace {

namespace py = pybind11;

std::atomic<bool> interpreter_running{false};

// A fresh directory for HF_HOME, under Bazel's per-test temp dir when there is one.
std::filesystem::path MakeScratchHome() {
  const char* test_tmp = std::getenv("TEST_TMPDIR");
  std::string pattern = absl::StrCat(test_tmp ? test_tmp : "/tmp", "/lorafa-hf-home-XXXXXX");
  return mkdtemp(pattern.data()) ? std::filesystem::path(pattern) : std::filesystem::path();
}

absl::Status ImportOrExplain(const char* module) {
  try {
    py::module_::import(module);
    return absl::OkStatus();
  } catch (const py::error_already_set& error) {
    return absl::FailedPreconditionError(
        absl::StrCat("Python at ", EmbeddedPython::Executable(), " cannot import ", module, ": ",
                     error.what(), "\nRun ", kSetupCommand, " to install the pinned torch and peft."));
  }
}

}  // namespace

// Hidden like the pybind11 types it holds.
struct __attribute__((visibility("hidden"))) EmbeddedPython::Impl {
  std::filesystem::path scratch_home;
  std::unique_ptr<py::scoped_interpreter> interpreter;
};

std::string EmbeddedPython::Executable() {
  const char* from_env = std::getenv("LORAFA_PYTHON");
  return from_env && *from_env ? from_env : lorafa_build::kPythonExecutable;
}

absl::StatusOr<std::unique_ptr<EmbeddedPython>> EmbeddedPython::Start() {
  if (interpreter_running.exchange(true)) {
    return absl::FailedPreconditionError("an embedded Python interpreter is already running");
  }
  std::string executable = Executable();
  if (!std::filesystem::exists(executable)) {
    interpreter_running = false;
    return absl::FailedPreconditionError(
        absl::StrCat("no Python at ", executable, "; run ", kSetupCommand, " (or set LORAFA_PYTHON)"));
  }

  auto impl = std::make_unique<Impl>();
  impl->scratch_home = MakeScratchHome();
  // Nothing reaches the network or the user's cache: hubs are offline, caches are throwaway.
  setenv("HF_HUB_OFFLINE", "1", /*overwrite=*/1);
  setenv("TRANSFORMERS_OFFLINE", "1", 1);
  setenv("HF_HUB_DISABLE_TELEMETRY", "1", 1);
  setenv("HF_HOME", impl->scratch_home.c_str(), 1);

  // Naming the venv's interpreter as the program makes CPython read the pyvenv.cfg beside it,
  // which puts the venv's site-packages (torch, peft) on sys.path.
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  PyConfig_SetBytesString(&config, &config.program_name, executable.c_str());
  config.install_signal_handlers = 0;  // leave SIGINT to the host binary
  impl->interpreter = std::make_unique<py::scoped_interpreter>(&config, 0, nullptr, false);

  // torch first: it registers the tensor type caster before any tensor crosses.
  for (const char* module : {"torch", "peft.optimizers.lorafa"}) {
    if (absl::Status imported = ImportOrExplain(module); !imported.ok()) {
      EmbeddedPython failed(std::move(impl));
      return imported;
    }
  }
  return std::unique_ptr<EmbeddedPython>(new EmbeddedPython(std::move(impl)));
}

EmbeddedPython::EmbeddedPython(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

EmbeddedPython::~EmbeddedPython() {
  impl_->interpreter.reset();
  std::error_code ignored;
  if (!impl_->scratch_home.empty()) std::filesystem::remove_all(impl_->scratch_home, ignored);
  interpreter_running = false;
}

}  // namespace lorafa::testing
