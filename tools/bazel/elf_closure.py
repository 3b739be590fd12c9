"""Which shared libraries a set of ELF files needs that a target machine will not have.

A target has glibc and GCC's runtime (the base system) and a Python with the torch wheel (torch's
libraries and the nvidia-* CUDA wheels); anything else a binary needs must travel with it. Used by
//tools:gpu_bundle and //tools:install, which ship binaries and a C++ library, where auditwheel (the
wheels' tool, tools/bazel/build_wheel.py) does not apply.
"""

import os
import re
import subprocess

BASE_SYSTEM = re.compile(r"^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|librt|libpthread|libutil|libstdc\+\+|libgcc_s)\.so")
TORCH_WHEEL = re.compile(r"/site-packages/(torch|nvidia)/")
# The torch wheel carries its OpenMP runtime as torch/lib/libgomp.so.1: one runtime per process, the
# one ATen's parallel_for runs on, whichever folder a binary's own link found.
TORCH_WHEEL_SONAMES = {"libgomp.so.1"}


def needed_libraries(path):
    """{soname: resolved path} as the loader resolves them here; raises naming any it cannot find."""
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    output = subprocess.run(["ldd", path], capture_output=True, text=True, env=env, check=True).stdout
    found, missing = {}, []
    for line in output.splitlines():
        match = re.match(r"\s*(\S+) => (.*) \(0x", line)
        if match:
            found[match.group(1)] = match.group(2)
        elif "not found" in line:
            missing.append(line.split()[0])
    if missing:
        raise RuntimeError(f"{path} needs {', '.join(missing)}, which nothing here provides")
    return found


def provided_by_target(soname, path):
    return bool(BASE_SYSTEM.match(soname) or soname in TORCH_WHEEL_SONAMES or TORCH_WHEEL.search(path))


def libraries_to_carry(paths, skip=lambda soname: False):
    """{soname: path} of every library the files need, directly or through each other, that the target
    lacks (and `skip` does not exclude)."""
    carry, pending = {}, list(paths)
    while pending:
        for soname, resolved in needed_libraries(pending.pop()).items():
            if soname not in carry and not provided_by_target(soname, resolved) and not skip(soname):
                carry[soname] = resolved
                pending.append(resolved)
    return carry


def set_runpath(path, runpath):
    subprocess.run(["patchelf", "--set-rpath", runpath, path], check=True)
