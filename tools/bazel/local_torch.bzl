"""LibTorch, torch's Python bridge and an embeddable CPython, all taken from one Python environment.

The interpreter is $LORAFA_PYTHON, else <workspace>/.venv/bin/python3 (made by tools/setup.sh). It is
asked where torch and Python live; those directories are symlinked into this repository so Bazel sees
the headers, and libraries are linked by absolute path with an rpath, because Bazel's _solib symlink
folders break the $ORIGIN lookups inside torch's own libraries.

One process holds one LibTorch: C++ code and the embedded `import torch` load the same torch/lib.
"""

_SETUP_HINT = "run tools/setup.sh (it creates .venv with the pinned torch and peft), or set LORAFA_PYTHON"

_QUERY = """
import json, os, sys, sysconfig
try:
    import torch
except ImportError as error:
    print(json.dumps({"error": "import torch failed: %s" % error}))
    sys.exit(0)
# Real paths, so that every checkout whose .venv links to the same environment names the same paths
# (and Bazel's disk cache serves them all).
torch_dir = os.path.realpath(os.path.dirname(torch.__file__))
# The CUDA toolkit of PyPI's nvidia-* wheels (nvcc pinned in tools/requirements.txt), if installed.
cuda_root = ""
try:
    import nvidia
    for base in nvidia.__path__:
        candidate = os.path.join(base, "cu13")
        if os.path.exists(os.path.join(candidate, "bin", "nvcc")):
            cuda_root = os.path.realpath(candidate)
except ImportError:
    pass
# NCCL's header, from the nvidia-nccl wheel torch depends on (lorafa/distributed's NCCL group).
nccl_include = ""
try:
    import nvidia.nccl
    for base in nvidia.nccl.__path__:
        if os.path.exists(os.path.join(base, "include", "nccl.h")):
            nccl_include = os.path.realpath(os.path.join(base, "include"))
except ImportError:
    pass
print(json.dumps({
    "cuda_root": cuda_root,
    "nccl_include": nccl_include,
    "torch_version": torch.__version__,
    "torch_cuda": torch.version.cuda or "",
    "torch_include": os.path.join(torch_dir, "include"),
    "torch_lib": os.path.join(torch_dir, "lib"),
    "cxx11_abi": int(torch.compiled_with_cxx11_abi()),
    "python_include": sysconfig.get_paths()["include"],
    "python_libdir": sysconfig.get_config_var("LIBDIR"),
    "python_ldversion": sysconfig.get_config_var("LDVERSION"),
    "python_shared": int(sysconfig.get_config_var("Py_ENABLE_SHARED") or 0),
    # The venv's own interpreter path (its pyvenv.cfg puts its site-packages on sys.path), through the
    # venv's real folder.
    "python_executable": os.path.join(os.path.realpath(sys.prefix), "bin", os.path.basename(sys.executable))
    if sys.prefix != sys.base_prefix else sys.executable,
}))
"""

_BUILD = """
package(default_visibility = ["//visibility:public"])

# LibTorch's C++ API (ATen, c10, torch::nn, torch::optim).
cc_library(
    name = "libtorch",
    hdrs = glob(["include/**/*.h", "include/**/*.hpp", "include/**/*.cuh"], exclude = ["include/pybind11/**"]),
    includes = ["include", "include/torch/csrc/api/include"],
    defines = ["_GLIBCXX_USE_CXX11_ABI={cxx11_abi}"],
    linkopts = [
        "-L{torch_lib}",
        "-Wl,-rpath,{torch_lib}",
        # libtorch.so pulls in the CUDA backend when the wheel has one; keep it although no symbol
        # of it is referenced, so --device=cuda finds its kernels.
        "-Wl,--no-as-needed",
        "-ltorch",
        "-Wl,--as-needed",
        "-ltorch_cpu",
        "-lc10",
    ],
)

# CPython headers and libpython, for embedding an interpreter in a C++ binary.
cc_library(
    name = "python_embed",
    hdrs = glob(["python_include/**/*.h"]),
    includes = ["python_include"],
    linkopts = [
        "-L{python_libdir}",
        "-Wl,-rpath,{python_libdir}",
        # libtorch_python.so resolves Python's symbols from the process without naming libpython as a
        # dependency, so keep libpython linked even when the binary itself uses none of its symbols.
        "-Wl,--no-as-needed",
        "-lpython{python_ldversion}",
        "-Wl,--as-needed",
        "-ldl",
        "-lm",
    ],
)

# torch's pybind11 (the one its tensor caster is compiled against) and libtorch_python, for an extension
# module: add one Python's headers (@pythons//:cpXY); the interpreter that imports it provides Python.
cc_library(
    name = "torch_python_extension",
    hdrs = glob(["include/pybind11/**/*.h"]),
    deps = [":libtorch"],
    linkopts = ["-ltorch_python"],
)

# The same for a C++ binary that embeds this environment's interpreter.
cc_library(
    name = "torch_python",
    deps = [":torch_python_extension", ":python_embed"],
)

# LibTorch's CUDA side and the CUDA runtime, for code compiled with nvcc (lorafa/cuda). The wheel
# carries libtorch_cuda and libc10_cuda; the runtime comes from the nvidia-cuda-runtime wheel.
cc_library(
    name = "torch_cuda",
    hdrs = glob(["cuda/include/**/*.h", "cuda/include/**/*.hpp", "cuda/include/**/*.cuh"]),
    includes = ["cuda/include", "cuda/include/cccl"],
    deps = [":libtorch"],
    linkopts = [
        "-L{cuda_root}/lib",
        "-Wl,-rpath,{cuda_root}/lib",
        "-ltorch_cuda",
        "-lc10_cuda",
        "-l:libcudart.so.13",
    ],
)

# c10d's NCCL process group header and NCCL's own (lorafa/distributed:nccl); the code is in libtorch_cuda.
cc_library(
    name = "c10d_nccl",
    hdrs = glob(["nccl/include/*.h"]),
    includes = ["nccl/include"],
    defines = ["USE_C10D_NCCL"],
    deps = [":torch_cuda"],
)

# What an nvcc compile reads: torch's and CUDA's headers.
filegroup(
    name = "cuda_compile_inputs",
    srcs = glob(["include/**", "cuda/include/**"]),
)

# nvcc for genrules: `$(location @torch//:nvcc) …`; fails naming the setup command when missing.
exports_files(["nvcc"])

# Where the interpreter behind this build lives, so embedded Python uses the same environment.
cc_library(
    name = "python_location",
    hdrs = ["python_location.h"],
)

# The same path as a one-line file, for scripts (tools/report.sh).
exports_files(["python_executable"])
"""

_PYTHON_LOCATION_H = """// Generated by //tools/bazel:local_torch.bzl. The environment this build was configured from.
#pragma once

namespace lorafa_build {{
inline constexpr char kPythonExecutable[] = "{python_executable}";
inline constexpr char kTorchVersion[] = "{torch_version}";
}}  // namespace lorafa_build
"""

_TORCH_BZL = """# Generated by //tools/bazel:local_torch.bzl from the configured torch.
TORCH_VERSION = "{torch_version}"
CXX11_ABI = {cxx11_abi}
"""

def _local_torch_impl(rctx):
    workspace_root = rctx.path(Label("//:WORKSPACE")).dirname
    python = rctx.os.environ.get("LORAFA_PYTHON", "%s/.venv/bin/python3" % workspace_root)
    if not rctx.path(python).exists:
        fail("No Python at %s: %s" % (python, _SETUP_HINT))
    result = rctx.execute([python, "-c", _QUERY])
    if result.return_code != 0:
        fail("%s could not describe its torch (%s): %s" % (python, result.stderr.strip(), _SETUP_HINT))
    found = json.decode(result.stdout.strip().splitlines()[-1])
    if "error" in found:
        fail("%s: %s: %s" % (python, found["error"], _SETUP_HINT))
    if not found["python_shared"]:
        fail("%s has no shared libpython, so it cannot be embedded: %s" % (python, _SETUP_HINT))

    python = found["python_executable"]  # a venv's bin/python3 in its real folder
    rctx.symlink(found["torch_include"], "include")
    rctx.symlink(found["python_include"], "python_include")
    rctx.file("WORKSPACE", 'workspace(name = "%s")\n' % rctx.name)
    rctx.file("BUILD", _BUILD.format(**found))
    rctx.file("python_location.h", _PYTHON_LOCATION_H.format(**found))
    rctx.file("python_executable", python + "\n")
    # For BUILD files that record the torch they build against (the wheel's requirement, the CMake package).
    rctx.file("torch.bzl", _TORCH_BZL.format(**found))
    if found["nccl_include"]:
        rctx.symlink(found["nccl_include"], "nccl/include")
    else:
        rctx.file("nccl/include/.none", "")
    if found["cuda_root"]:
        rctx.symlink(found["cuda_root"], "cuda")
        rctx.file("nvcc", "#!/bin/sh\nexec '%s/bin/nvcc' \"$@\"\n" % found["cuda_root"], executable = True)
    else:
        rctx.file("cuda/include/.none", "")
        rctx.file("nvcc", "#!/bin/sh\necho 'nvcc: not installed; %s' >&2\nexit 1\n" % _SETUP_HINT, executable = True)

local_torch = repository_rule(
    implementation = _local_torch_impl,
    environ = ["LORAFA_PYTHON"],
    local = True,
    configure = True,  # `bazel sync --configure` reads the machine anew (tools/setup.sh, after a new venv)
)
