"""Writes the GPU check bundle: lorafa's benchmark, CUDA test and parity binaries with every shared
library they need that neither the torch wheel nor a base Linux system provides, and run.sh.

    bazel run //tools:gpu_bundle -- --out=DIR        (then, on the GPU machine: DIR/run.sh OUTDIR)

DIR mirrors Bazel's runfiles tree (runfiles/lorafa/...), so the binaries and report.sh find their data
the way they do under `bazel run`; the libraries go to DIR/lib, libpython to DIR/lib/python (run.sh
uses it only when the target's Python has no shared one). Every ELF file's RUNPATH is rewritten to
point inside DIR, so nothing resolves into this checkout; torch's libraries come from LD_LIBRARY_PATH,
which run.sh takes from the target's Python.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

# (runfiles path, kept in the bundle as) — what run.sh runs, in the order it runs them.
BINARIES = [
    "lorafa/lorafa/cuda/fused_hf_adamw_cuda_test",
    "lorafa/lorafa/reference_agreement_test",
    "lorafa/benchmarks/memory_meter_test",
    "lorafa/tools/parity_check",
    "lorafa/benchmarks/optimizer_step_benchmark",
    "lorafa/benchmarks/training_step_benchmark",
]
DATA = [
    "lorafa/testing/parity/peft_bridge.py",
    "lorafa/tools/report.py",
    "lorafa/tools/report.sh",
    "lorafa/tools/gpu_bundle_collect.py",
]
RUN_SCRIPT = "lorafa/tools/gpu_bundle_run.sh"

# Libraries every Linux system has (glibc and GCC's runtime): never bundled.
BASE_SYSTEM = re.compile(r"^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|librt|libpthread|libutil|libstdc\+\+|libgcc_s)\.so")
# The torch wheel and the CUDA libraries it depends on: the target's Python provides them.
TORCH_WHEEL = re.compile(r"/site-packages/(torch|nvidia)/")
LIMIT_BYTES = 48 << 20


def needed_libraries(path):
    """{soname: resolved path} as the loader resolves them today, and the sonames it cannot find."""
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    output = subprocess.run(["ldd", path], capture_output=True, text=True, env=env, check=True).stdout
    found, missing = {}, []
    for line in output.splitlines():
        match = re.match(r"\s*(\S+) => (.*) \(0x", line)
        if match:
            found[match.group(1)] = match.group(2)
        elif "not found" in line:
            missing.append(line.split()[0])
    return found, missing


def bundled_elsewhere(soname, path):
    return BASE_SYSTEM.match(soname) or TORCH_WHEEL.search(path)


def set_runpath(path, runpath):
    subprocess.run(["patchelf", "--set-rpath", runpath, path], check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--runfiles", required=True, help="the runfiles tree that holds the binaries")
    args = parser.parse_args()
    if shutil.which("patchelf") is None:
        sys.exit("gpu_bundle: patchelf is missing; run tools/setup.sh")

    out = os.path.abspath(args.out)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "lib", "python"))

    libraries = {}
    for relative in BINARIES + DATA:
        source = os.path.join(args.runfiles, relative)
        target = os.path.join(out, "runfiles", relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(source, target)
        shutil.copymode(source, target)
        if relative in BINARIES:
            found, missing = needed_libraries(source)
            if missing:
                sys.exit(f"gpu_bundle: {relative} needs {', '.join(missing)}, which nothing here provides")
            libraries.update({n: p for n, p in found.items() if not bundled_elsewhere(n, p)})
            # runfiles/lorafa/<package>/binary → ../ per folder up to DIR, then lib.
            depth = relative.count("/") + 1
            set_runpath(target, "$ORIGIN/" + "../" * depth + "lib")
    shutil.copyfile(os.path.join(args.runfiles, RUN_SCRIPT), os.path.join(out, "run.sh"))
    os.chmod(os.path.join(out, "run.sh"), 0o755)

    # A bundled library can need another (Abseil's depend on each other): close over them.
    pending = list(libraries.items())
    while pending:
        soname, path = pending.pop()
        found, missing = needed_libraries(path)
        if missing:
            sys.exit(f"gpu_bundle: {path} needs {', '.join(missing)}, which nothing here provides")
        for name, resolved in found.items():
            if name not in libraries and not bundled_elsewhere(name, resolved):
                libraries[name] = resolved
                pending.append((name, resolved))

    for soname, path in sorted(libraries.items()):
        folder = os.path.join(out, "lib", "python") if soname.startswith("libpython") else os.path.join(out, "lib")
        target = os.path.join(folder, soname)
        shutil.copyfile(os.path.realpath(path), target)
        os.chmod(target, 0o755)
        # Debug sections are no use on the target and are most of libpython's size.
        subprocess.run(["strip", "--strip-debug", target], check=True)
        set_runpath(target, "$ORIGIN" if folder.endswith("lib") else "$ORIGIN/..")

    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(out) for f in files)
    print(f"gpu_bundle: wrote {out}: {len(BINARIES)} binaries, {len(libraries)} libraries, {total / (1 << 20):.1f} MiB")
    if total > LIMIT_BYTES:
        sys.exit(f"gpu_bundle: {total / (1 << 20):.1f} MiB exceeds the {LIMIT_BYTES >> 20} MiB a GPU call can carry")
    print(f"gpu_bundle: on the GPU machine: {out}/run.sh OUTDIR [--budget-s=420] [--smoke]")


if __name__ == "__main__":
    main()
