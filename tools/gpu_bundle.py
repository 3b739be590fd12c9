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
import glob
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "bazel"))
from elf_closure import libraries_to_carry, set_runpath  # noqa: E402

# Runfiles paths of what run.sh runs, in the order it runs them, and of their data.
BINARIES = [
    "lorafa/lorafa/cuda/fused_hf_adamw_cuda_test",
    "lorafa/lorafa/reference_agreement_test",
    "lorafa/benchmarks/memory_meter_test",
    "lorafa/tools/parity_check",
    "lorafa/tools/ddp_train",
    "lorafa/benchmarks/optimizer_step_benchmark",
    "lorafa/benchmarks/training_step_benchmark",
]
DATA = [
    "lorafa/benchmarks/python_step_benchmark.py",
    "lorafa/testing/parity/peft_bridge.py",
    "lorafa/tools/report.py",
    "lorafa/tools/report.sh",
    "lorafa/tools/gpu_bundle_collect.py",
    "lorafa/tools/fsdp_train.py",
]
RUN_SCRIPT = "lorafa/tools/gpu_bundle_run.sh"

LIMIT_BYTES = 48 << 20


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="the bundle's folder (replaced if it exists)")
    parser.add_argument("--runfiles", required=True, help="the runfiles tree that holds the binaries")
    args = parser.parse_args()
    if shutil.which("patchelf") is None:
        sys.exit("gpu_bundle: patchelf is missing; run tools/setup.sh")

    out = os.path.abspath(os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY", ""), args.out))
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "lib", "python"))

    binaries = []
    wheels = glob.glob(os.path.join(args.runfiles, "lorafa/lorafa/python/wheel_cp*/lorafa-*.whl"))
    for relative in BINARIES + DATA + [os.path.relpath(w, args.runfiles) for w in wheels]:
        source = os.path.join(args.runfiles, relative)
        target = os.path.join(out, "runfiles", relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(source, target)
        shutil.copymode(source, target)
        if relative in BINARIES:
            binaries.append(source)
            # runfiles/lorafa/<package>/binary → ../ per folder up to DIR, then lib.
            depth = relative.count("/") + 1
            set_runpath(target, "$ORIGIN/" + "../" * depth + "lib")
    shutil.copyfile(os.path.join(args.runfiles, RUN_SCRIPT), os.path.join(out, "run.sh"))
    os.chmod(os.path.join(out, "run.sh"), 0o755)

    try:
        libraries = libraries_to_carry(binaries)
    except RuntimeError as error:
        sys.exit(f"gpu_bundle: {error}")

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
