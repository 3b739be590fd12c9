// The Python module peft_bridge.py (beside this file), imported into the running embedded interpreter
// from the binary's runfiles. Needs an EmbeddedPython (testing/python/embedded_python.h) to be started.
#pragma once

#include <map>
#include <string>

#include <pybind11/pybind11.h>

namespace lorafa::parity {

// peft_bridge, imported once per process. Throws std::runtime_error when the file cannot be found.
pybind11::module_ PeftBridge();

// torch, peft, transformers and accelerate versions as Python reports them.
std::map<std::string, std::string> PythonVersions();

// PEFT decides on bf16 autocast through a name it imported; this patches that name (on by default).
void SetPeftBf16Autocast(bool enabled);

}  // namespace lorafa::parity
