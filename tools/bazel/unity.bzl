"""A library's sources compiled as one translation unit.

Each of lorafa's library files includes LibTorch headers whose parse is most of its compile time (a
file of a few hundred lines takes 15–20 s on these machines, nearly all of it in `ATen` and
`torch/nn`). Compiled as one unit, the headers are parsed once: //lorafa:lorafa's 15 files took 163 s
one by one in a cold build, 30 s as one unit. The files stay as they are, one concept each; only how
they are compiled changes. The cost: a change to any of them recompiles the unit.

    unity_cc_library(name = "lorafa", srcs = [...], ...)   # a cc_library, its .cc files joined
    unity_cc_test(name = "lorafa_test", srcs = [...], ...)  # a cc_test, likewise

The unit is the sources' text, each after a `#line` naming it, so that compiler messages point to the
file and line they come from. The sources are not inputs of any other compile: a dependent's objects
do not depend on them (as `textual_hdrs` would make them). Names at namespace scope, anonymous
namespaces included, must differ between the files. The compiler rejects a name defined twice with one
signature, but two helpers of one name with different parameters become overloads, and a call could
quietly reach the other file's: give such helpers names of their own (MakeModelScenario,
MakeOptimizerScenario). Each file must include its headers by their full path from the workspace root.
"""

def _unity_source_impl(ctx):
    unit = ctx.actions.declare_file(ctx.label.name + ".cc")
    ctx.actions.run_shell(
        inputs = ctx.files.srcs,
        outputs = [unit],
        arguments = [unit.path] + [src.path for src in ctx.files.srcs],
        # printf, not echo: a file that does not end in a newline must not run into the next #line.
        command = 'out="$1"; shift; for f in "$@"; do printf \'#line 1 "%s"\\n\' "$f"; cat "$f"; printf \'\\n\'; done > "$out"',
        mnemonic = "UnitySource",
        progress_message = "Joining %d sources into %s" % (len(ctx.files.srcs), unit.short_path),
    )
    return [DefaultInfo(files = depset([unit]))]

unity_source = rule(
    implementation = _unity_source_impl,
    attrs = {"srcs": attr.label_list(allow_files = [".cc"], mandatory = True, doc = "the sources, in order")},
    doc = "One .cc file: the text of each of `srcs`, in order.",
)

def _joined(rule, name, srcs, testonly, kwargs):
    sources = [src for src in srcs if src.endswith(".cc")]
    unity_source(name = name + "_unity", srcs = sources, testonly = testonly)
    rule(
        name = name,
        srcs = [src for src in srcs if not src.endswith(".cc")] + [":" + name + "_unity"],
        testonly = testonly,
        **kwargs
    )

def unity_cc_library(name, srcs, testonly = False, **kwargs):
    """A cc_library whose .cc files in `srcs` are compiled as one unit (`name`_unity); every other
    argument is cc_library's."""
    _joined(native.cc_library, name, srcs, testonly, kwargs)

def unity_cc_test(name, srcs, **kwargs):
    """A cc_test whose .cc files in `srcs` are compiled as one unit: several test files that would each
    parse LibTorch and pay a LibTorch link become one binary. Every test in them still runs (and
    `--test_filter` picks them by suite); every other argument is cc_test's."""
    _joined(native.cc_test, name, srcs, True, kwargs)
