"""A precompiled header for the files that include <torch/torch.h>.

Parsing LibTorch's whole C++ API takes about 16 of the 35 s that such a test file takes to compile,
and 25 files pay it (twice for those the sanitizer build compiles again). GCC reads a header's
precompiled form instead of the header when the `.gch` sits beside it and was made with the same
options; Bazel 4.2 has no rule for that, so this one compiles the header with the very command line of
a C++ compile in the current configuration (its features, --copt/--cxxopt, the deps' include paths
and defines, PIC as --force_pic makes every object), which GCC requires for the `.gch` to be used.
Where the options differ anyway, GCC parses the header as usual, and -Winvalid-pch says so.

A file uses it with `copts = TORCH_PRECOMPILED_COPTS` and the target in its deps: the header is
included before anything else in the file (`-include`), which is where GCC can use it.
"""

load("@bazel_tools//tools/build_defs/cc:action_names.bzl", "CPP_COMPILE_ACTION_NAME")
load("@bazel_tools//tools/cpp:toolchain_utils.bzl", "find_cpp_toolchain")

TORCH_PRECOMPILED_COPTS = [
    "-include",
    "$(BINDIR)/tools/bazel/torch_precompiled/torch_precompiled.h",
    "-Winvalid-pch",
]

def _precompiled_header_impl(ctx):
    cc_toolchain = find_cpp_toolchain(ctx)
    features = cc_common.configure_features(
        ctx = ctx,
        cc_toolchain = cc_toolchain,
        requested_features = ctx.features,
        unsupported_features = ctx.disabled_features,
    )
    deps = cc_common.merge_cc_infos(cc_infos = [dep[CcInfo] for dep in ctx.attr.deps]).compilation_context

    header = ctx.actions.declare_file("%s/%s.h" % (ctx.label.name, ctx.label.name))
    ctx.actions.write(header, "".join(["#include <%s>\n" % h for h in ctx.attr.includes]))
    precompiled = ctx.actions.declare_file(header.basename + ".gch", sibling = header)

    variables = cc_common.create_compile_variables(
        feature_configuration = features,
        cc_toolchain = cc_toolchain,
        user_compile_flags = ctx.fragments.cpp.copts + ctx.fragments.cpp.cxxopts + ["-x", "c++-header"],
        source_file = header.path,
        output_file = precompiled.path,
        include_directories = deps.includes,
        quote_include_directories = deps.quote_includes,
        system_include_directories = deps.system_includes,
        preprocessor_defines = deps.defines,
        use_pic = True,
    )
    ctx.actions.run(
        executable = cc_common.get_tool_for_action(feature_configuration = features, action_name = CPP_COMPILE_ACTION_NAME),
        arguments = cc_common.get_memory_inefficient_command_line(
            feature_configuration = features,
            action_name = CPP_COMPILE_ACTION_NAME,
            variables = variables,
        ),
        env = cc_common.get_environment_variables(
            feature_configuration = features,
            action_name = CPP_COMPILE_ACTION_NAME,
            variables = variables,
        ),
        inputs = depset([header], transitive = [deps.headers, cc_toolchain.all_files]),
        outputs = [precompiled],
        mnemonic = "CppPrecompileHeader",
        progress_message = "Precompiling %s" % ", ".join(ctx.attr.includes),
    )
    return [
        DefaultInfo(files = depset([header, precompiled])),
        cc_common.merge_cc_infos(cc_infos = [
            CcInfo(compilation_context = cc_common.create_compilation_context(headers = depset([header, precompiled]))),
        ] + [dep[CcInfo] for dep in ctx.attr.deps]),
    ]

precompiled_header = rule(
    implementation = _precompiled_header_impl,
    attrs = {
        "includes": attr.string_list(mandatory = True, doc = "the headers to precompile, as <...> includes"),
        "deps": attr.label_list(providers = [CcInfo], doc = "where those headers come from"),
        "_cc_toolchain": attr.label(default = "@bazel_tools//tools/cpp:current_cc_toolchain"),
    },
    fragments = ["cpp"],
    toolchains = ["@bazel_tools//tools/cpp:toolchain_type"],
    incompatible_use_toolchain_transition = True,
)
