"""lorafa's wheels, one per CPython, each checked as a user would use it.

    bazel run //tools:wheels -- --out=DIR [--python=3.10,3.11,3.12,3.13]

Copies each built wheel (//lorafa/python:wheel*, tagged by auditwheel) into DIR, then for each: a fresh
venv of its Python, torch and peft from the index, `pip install` of the wheel, `pip check`, and
tools/wheel_smoke.py in it (import lorafa, a few steps of a PEFT tiny Llama, lorafa.__version__).
Prints a table of Python, tag, size and result, and exits non-zero if any wheel failed.
"""

import argparse
import concurrent.futures
import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile

# What the wheel is checked with: the torch it was built for (its own Requires-Dist pins it) and the
# peft whose optimizer it replaces, as tools/requirements.txt pins them.
CHECKED_WITH = ["torch==2.11.0", "peft==0.21.2"]


def wheel_tag(path):
    """(python tag, platform tag) from a wheel's file name: name-version-python-abi-platform.whl."""
    parts = os.path.basename(path)[:-len(".whl")].split("-")
    return parts[2], parts[4]


def built_wheels(runfiles):
    """{cp3X: (wheel path, interpreter path)} for every wheel in the runfiles."""
    found = {}
    for wheel in glob.glob(os.path.join(runfiles, "lorafa/lorafa/python/wheel_cp*/lorafa-*.whl")):
        python_tag, _ = wheel_tag(wheel)
        with open(os.path.join(runfiles, "pythons", python_tag, "python_executable")) as f:
            found[python_tag] = (wheel, f.read().strip())
    return found


def check(wheel, interpreter, work, version):
    """Installs the wheel into a fresh venv of its Python and runs the smoke script there; returns
    (passed, the last lines of output)."""
    venv = os.path.join(work, "venv-" + wheel_tag(wheel)[0])
    shutil.rmtree(venv, ignore_errors=True)
    smoke = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wheel_smoke.py")
    python = os.path.join(venv, "bin", "python")
    steps = [
        [interpreter, "-m", "venv", venv],
        # torch and its CUDA wheels are 4.7 GB: pip unpacked them in about a minute per venv, where uv
        # links them from its cache in seconds (the same files from the same index). --system-certs: the
        # machine's certificate store, which pip and the rest of the system trust, not uv's own roots.
        [sys.executable, "-m", "uv", "pip", "install", "--quiet", "--system-certs", "--python", python, *CHECKED_WITH],
        # lorafa's own wheel as a user installs it, by pip, with no index: pip itself checks that the
        # wheel's tags fit this Python and that what it requires is met by the torch and peft installed.
        [python, "-m", "pip", "install", "--quiet", "--no-index", "--no-compile", wheel, *CHECKED_WITH],
        [python, "-m", "pip", "check"],
        [python, smoke, "--expect_version=" + version],
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["HF_HUB_OFFLINE"] = "1"
    try:
        for step in steps:
            # From the work folder: no source tree named lorafa/ may shadow the installed package.
            done = subprocess.run(step, cwd=work, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
                return False, f"`{' '.join(os.path.basename(s) for s in step[:4])}` failed: " + " | ".join(tail)
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # torch and its CUDA wheels: links into uv's cache, or 4.7 GB of copies
    smoke = json.loads(done.stdout.strip().splitlines()[-1])
    losses = smoke["losses"]
    return True, f"loss {losses[0]:.3f} → {losses[-1]:.3f} in {len(losses)} steps, torch {smoke['torch']}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runfiles", required=True)
    parser.add_argument("--out", required=True, help="folder for the wheels (relative to where bazel run was typed)")
    parser.add_argument("--python", default="", help="comma-separated CPython versions, e.g. 3.10,3.13 (default: all built)")
    parser.add_argument("--at_least", type=int, default=1, help="fail unless this many Pythons were checked")
    parser.add_argument("--work_dir", default="", help="where the venvs are made (default: a temporary folder)")
    args = parser.parse_args()

    if importlib.util.find_spec("uv") is None:
        sys.exit(f"wheels: {sys.executable} has no uv (tools/requirements.txt): run tools/setup.sh")
    built = built_wheels(args.runfiles)
    wanted = ["cp" + v.strip().replace(".", "") for v in args.python.split(",") if v.strip()] or sorted(built)
    missing = [tag for tag in wanted if tag not in built]
    if missing:
        sys.exit(f"wheels: no wheel for {', '.join(missing)}: no CPython of that version with its headers was "
                 f"found when building (pyenv's versions, or Debian's /usr/bin/python3.X with python3.X-dev); "
                 f"built: {', '.join(sorted(built)) or 'none'}")
    if len(wanted) < args.at_least:
        sys.exit(f"wheels: {len(wanted)} Python(s) to check ({', '.join(wanted)}), at least {args.at_least} "
                 "are needed: install another CPython with its headers (e.g. Debian's python3-dev)")

    out = os.path.abspath(os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY", ""), args.out))
    os.makedirs(out, exist_ok=True)
    work = args.work_dir or tempfile.mkdtemp(prefix="lorafa-wheels-")
    version = os.path.basename(built[wanted[0]][0]).split("-")[1]

    copies = {}
    for tag in wanted:
        copies[tag] = os.path.join(out, os.path.basename(built[tag][0]))
        shutil.copyfile(built[tag][0], copies[tag])
    # Two at a time: each is mostly waiting, on the index and on the disk.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(wanted, pool.map(lambda tag: check(copies[tag], built[tag][1], work, version), wanted)))
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)

    print("| Python | tag | size | result |")
    print("|---|---|---|---|")
    for tag in wanted:
        passed, detail = results[tag]
        size_kib = os.path.getsize(copies[tag]) / 1024
        python = f"{tag[2]}.{tag[3:]}"
        print(f"| {python} | {wheel_tag(copies[tag])[1]} | {size_kib:,.0f} KiB | {'pass' if passed else 'FAIL'}: {detail} |")
    print(f"wheels in {out}")
    if not all(passed for passed, _ in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
