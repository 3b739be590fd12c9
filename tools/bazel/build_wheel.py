"""Writes lorafa's Python wheel from the package sources and the built extension module.

The extension is made installable the way auditwheel would: it must not name libpython (the
interpreter provides those symbols), libraries neither the base system nor the torch wheel provides
(Abseil) travel in lorafa/.libs, and its RUNPATH looks only there and in torch/lib (which also holds
the libgomp.so.1 it needs).
Entries are sorted and dated 1980-01-01, so the same inputs give the same bytes.
"""

import argparse
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from elf_closure import libraries_to_carry, needed_libraries, set_runpath  # noqa: E402

LIBS = ".libs"  # inside the package, beside the extension


def patch_extension(path, libs_dir):
    needed = needed_libraries(path)
    if "libtorch_cpu.so" not in needed:
        raise SystemExit(f"build_wheel: {path} does not link the torch wheel's libtorch_cpu")
    for soname in needed:
        if soname.startswith("libpython"):
            subprocess.run(["patchelf", "--remove-needed", soname, path], check=True)
    carried = libraries_to_carry([path], skip=lambda soname: soname.startswith("libpython"))
    os.makedirs(libs_dir, exist_ok=True)
    for soname, source in carried.items():
        target = os.path.join(libs_dir, soname)
        shutil.copyfile(os.path.realpath(source), target)
        subprocess.run(["strip", "--strip-debug", target], check=True)
        set_runpath(target, "$ORIGIN")
    set_runpath(path, f"$ORIGIN/{LIBS}:$ORIGIN/../torch/lib")
    return sorted(carried)


def record_line(root, relative):
    with open(os.path.join(root, relative), "rb") as f:
        data = f.read()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{relative},sha256={digest},{len(data)}"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--torch_version", required=True, help="the torch the extension links, e.g. 2.11.0")
    parser.add_argument("--python_tag", required=True, help="e.g. cp312")
    parser.add_argument("--extension_suffix", required=True, help="e.g. .cpython-312-x86_64-linux-gnu.so")
    parser.add_argument("--extension", required=True)
    parser.add_argument("--source", action="append", default=[])
    args = parser.parse_args()

    root = tempfile.mkdtemp()
    package = os.path.join(root, "lorafa")
    os.makedirs(package)
    for source in args.source:
        shutil.copyfile(source, os.path.join(package, os.path.basename(source)))
    with open(os.path.join(package, "_version.py"), "w") as f:
        f.write(f'__version__ = "{args.version}"\nTORCH_VERSION = "{args.torch_version}"\n')
    extension = os.path.join(package, "_C" + args.extension_suffix)
    shutil.copyfile(args.extension, extension)
    os.chmod(extension, 0o755)
    carried = patch_extension(extension, os.path.join(package, LIBS))

    dist_info = f"lorafa-{args.version}.dist-info"
    os.makedirs(os.path.join(root, dist_info))
    python = f"{args.python_tag[2]}.{args.python_tag[3:]}"
    metadata = {
        "METADATA": "\n".join([
            "Metadata-Version: 2.1", "Name: lorafa", f"Version: {args.version}",
            "Summary: The LoRA-FA optimizer with lorafa's C++ step", f"Requires-Python: =={python}.*",
            f"Requires-Dist: torch=={args.torch_version}", "",
            f"LoRA-FA for PyTorch (torch {args.torch_version}); carries {', '.join(carried) or 'no other library'}.", ""]),
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

    with zipfile.ZipFile(args.out, "w", zipfile.ZIP_DEFLATED) as wheel:
        for relative in files:
            info = zipfile.ZipInfo(relative, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if relative.endswith(".so") or ".so." in relative else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(os.path.join(root, relative), "rb") as f:
                wheel.writestr(info, f.read())
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
