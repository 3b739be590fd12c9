"""Installs lorafa as a relocatable CMake package under --prefix:

  include/lorafa/*.h                the public headers (what lorafa/lorafa.h includes)
  lib/liblorafa.so                  the whole API with the fused CPU and CUDA kernels; RUNPATH $ORIGIN
  lib/lib*.so*                      what liblorafa.so needs that neither LibTorch's wheel nor a base
                                    system provides (Abseil), RUNPATH $ORIGIN
  lib/cmake/lorafa/lorafaConfig.cmake, lorafaConfigVersion.cmake   the imported target lorafa::lorafa

LibTorch itself is not carried: the application finds it with find_package(Torch), and the config checks
that it is the version and C++ ABI lorafa was built against.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "bazel"))
from elf_closure import libraries_to_carry, set_runpath  # noqa: E402

HEADERS = "lorafa/lorafa"  # runfiles folder of //lorafa:public_headers
LIBRARY = "lorafa/lorafa/liblorafa_package.so"
TEMPLATES = "lorafa/tools/cmake"
FACTS = "lorafa/tools/install_facts.json"


def check_headers(headers):
    """Every lorafa header an installed header includes is installed too; none needs Abseil or Python."""
    names = {os.path.basename(h) for h in headers}
    for path in headers:
        with open(path) as source:
            for line in source:
                included = re.match(r'\s*#\s*include\s*[<"]([^>"]+)[>"]', line)
                if not included:
                    continue
                target = included.group(1)
                if target.startswith(("absl/", "pybind11/")) or target == "Python.h":
                    raise SystemExit(f"install: public header {os.path.basename(path)} includes {target}")
                if target.startswith("lorafa/") and os.path.basename(target) not in names:
                    raise SystemExit(f"install: public header {os.path.basename(path)} includes {target}, "
                                     "which is not in //lorafa:public_headers")


def needed(library):
    dynamic = subprocess.run(["readelf", "-d", library], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic)


def from_torch_wheel(soname):
    """Libraries liblorafa.so takes from torch/lib (LibTorch and its OpenMP runtime)."""
    return soname.startswith(("libtorch", "libc10")) or soname == "libgomp.so.1"


def write_template(source, destination, values):
    with open(source) as f:
        text = f.read()
    for key, value in values.items():
        text = text.replace("@%s@" % key, value)
    leftover = re.search(r"@[A-Z0-9_]+@", text)
    if leftover:
        raise SystemExit(f"install: {source} has no value for {leftover.group(0)}")
    with open(destination, "w") as f:
        f.write(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runfiles", required=True)
    parser.add_argument("--prefix", required=True)
    args = parser.parse_args()
    runfiles = args.runfiles
    prefix = os.path.abspath(os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY", ""), args.prefix))
    with open(os.path.join(runfiles, FACTS)) as f:
        facts = json.load(f)

    header_dir = os.path.join(runfiles, HEADERS)
    headers = sorted(os.path.join(header_dir, name) for name in facts["public_headers"])
    check_headers(headers)
    os.makedirs(os.path.join(prefix, "include", "lorafa"), exist_ok=True)
    for header in headers:
        shutil.copyfile(header, os.path.join(prefix, "include", "lorafa", os.path.basename(header)))

    lib = os.path.join(prefix, "lib")
    os.makedirs(lib, exist_ok=True)
    library = os.path.join(lib, "liblorafa.so")
    shutil.copyfile(os.path.join(runfiles, LIBRARY), library)
    os.chmod(library, 0o755)
    # LibTorch (and the CUDA runtime) come from the torch the application links; the rest travels here.
    carried = libraries_to_carry([library])
    needs = needed(library)
    for soname, path in sorted(carried.items()):
        destination = os.path.join(lib, soname)
        shutil.copyfile(path, destination)
        os.chmod(destination, 0o755)
        set_runpath(destination, "$ORIGIN")
    set_runpath(library, "$ORIGIN")
    subprocess.run(["patchelf", "--set-soname", "liblorafa.so", library], check=True)

    cmake_dir = os.path.join(lib, "cmake", "lorafa")
    os.makedirs(cmake_dir, exist_ok=True)
    values = {
        "LORAFA_VERSION": facts["lorafa_version"],
        "TORCH_VERSION": facts["torch_version"],
        "CXX11_ABI": str(facts["cxx11_abi"]),
        "LORAFA_TORCH_NEEDED": ";".join(n for n in needs if from_torch_wheel(n)),
        "LORAFA_NEEDS_CUDART": "TRUE" if "libcudart.so.13" in needs else "FALSE",
    }
    for name in ("lorafaConfig.cmake", "lorafaConfigVersion.cmake"):
        write_template(os.path.join(runfiles, TEMPLATES, name + ".in"), os.path.join(cmake_dir, name), values)

    print(f"install: lorafa {facts['lorafa_version']} in {prefix} (built against LibTorch {facts['torch_version']}):")
    print(f"  {len(headers)} headers, liblorafa.so, {len(carried)} carried libraries ({', '.join(sorted(carried))})")
    print(f"  CMake: find_package(lorafa) with CMAKE_PREFIX_PATH=\"{prefix};<torch.utils.cmake_prefix_path>\"")


if __name__ == "__main__":
    main()
