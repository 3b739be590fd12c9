"""A library's sources compiled as one translation unit.

Each of lorafa's library files includes LibTorch headers whose parse is most of its compile time (a
file of a few hundred lines takes 15–20 s on these machines, nearly all of it in `ATen` and
`torch/nn`). Compiled as one unit, the headers are parsed once: //lorafa:lorafa's 15 files took 163 s
one by one in a cold build, 30 s as one unit. The files stay as they are, one concept each; only how
they are compiled changes. The cost: a change to any of them recompiles the unit.

    unity_source(name = "lorafa_unity", srcs = _SOURCES)
    cc_library(name = "lorafa", srcs = [":lorafa_unity"], textual_hdrs = _SOURCES, ...)

`textual_hdrs` makes the sources inputs of the unit's compile without compiling them on their own.
Names at namespace scope, anonymous namespaces included, must then differ between the files, which
the compiler checks.
"""

def _unity_source_impl(ctx):
    unit = ctx.actions.declare_file(ctx.label.name + ".cc")
    ctx.actions.write(unit, "".join(['#include "%s"\n' % src.short_path for src in ctx.files.srcs]))
    return [DefaultInfo(files = depset([unit]))]

unity_source = rule(
    implementation = _unity_source_impl,
    attrs = {"srcs": attr.label_list(allow_files = [".cc"], mandatory = True, doc = "the sources, in order")},
    doc = "A .cc file that includes each of `srcs`, in order.",
)
