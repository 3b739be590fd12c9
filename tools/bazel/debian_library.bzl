"""Debian -dev packages (Abseil, GoogleTest, Google Benchmark, RapidCheck, Eigen) as local repositories.

The headers live in /usr/include, a directory the C++ toolchain already searches, so most targets only
carry link flags; Abseil's come from its pkg-config files because its libraries depend on each other.
A missing package fails the fetch with the command that installs it.
"""

_SETUP_HINT = "run tools/setup.sh (it installs the Debian packages lorafa builds against)"

def _linkopts(rctx, entries):
    """Raw flags ("-lfoo") are kept; anything else is a pkg-config module expanded to its --libs."""
    flags = []
    for entry in entries:
        if entry.startswith("-"):
            flags.append(entry)
            continue
        result = rctx.execute(["pkg-config", "--libs", entry])
        if result.return_code != 0:
            fail("pkg-config module '%s' not found (%s): %s" % (entry, result.stderr.strip(), _SETUP_HINT))
        flags.extend(result.stdout.strip().split(" "))
    return flags

def _debian_library_impl(rctx):
    for header in rctx.attr.check_headers:
        if not rctx.path("/usr/include/" + header).exists:
            fail("/usr/include/%s is missing (Debian package %s): %s" % (header, rctx.attr.package, _SETUP_HINT))
    build = ['package(default_visibility = ["//visibility:public"])\n']
    if rctx.attr.include_dir:
        # Headers outside the toolchain's own search path must be declared to Bazel.
        rctx.symlink(rctx.attr.include_dir, "include")
        build.append('cc_library(name = "%s", hdrs = glob(["include/**"]), includes = ["include"])\n' %
                     rctx.name)
    for target, entries in rctx.attr.targets.items():
        build.append('cc_library(name = "%s", linkopts = %s)\n' % (target, repr(_linkopts(rctx, entries))))
    rctx.file("WORKSPACE", 'workspace(name = "%s")\n' % rctx.name)
    rctx.file("BUILD", "\n".join(build))

debian_library = repository_rule(
    implementation = _debian_library_impl,
    attrs = {
        "package": attr.string(mandatory = True, doc = "the Debian package, for the error message"),
        "check_headers": attr.string_list(doc = "headers under /usr/include that must exist"),
        "include_dir": attr.string(doc = "an include root outside the default search path (Eigen's)"),
        "targets": attr.string_list_dict(doc = "target -> link flags or pkg-config modules"),
    },
    local = True,
)

def debian_libraries():
    debian_library(
        name = "absl",
        package = "libabsl-dev",
        check_headers = ["absl/flags/flag.h", "absl/status/statusor.h"],
        targets = {
            "flags": ["absl_flags", "absl_flags_parse", "absl_flags_usage"],
            "status": ["absl_status", "absl_statusor"],
            "strings": ["absl_strings", "absl_str_format"],
        },
    )
    debian_library(
        name = "googletest",
        package = "libgtest-dev libgmock-dev",
        check_headers = ["gtest/gtest.h", "gmock/gmock.h"],
        targets = {
            "gtest": ["-lgmock", "-lgtest", "-pthread"],
            "gtest_main": ["-lgmock_main", "-lgmock", "-lgtest", "-pthread"],
        },
    )
    debian_library(
        name = "benchmark",
        package = "libbenchmark-dev",
        check_headers = ["benchmark/benchmark.h"],
        targets = {
            "benchmark": ["-lbenchmark", "-pthread"],
            "benchmark_main": ["-lbenchmark_main", "-lbenchmark", "-pthread"],
        },
    )
    debian_library(
        name = "rapidcheck",
        package = "librapidcheck-dev",
        check_headers = ["rapidcheck.h", "rapidcheck/gtest.h"],
        targets = {"rapidcheck": ["-lrapidcheck"]},
    )
    debian_library(
        name = "eigen",
        package = "libeigen3-dev",
        check_headers = ["eigen3/Eigen/Dense"],
        include_dir = "/usr/include/eigen3",
    )
    # Gloo's headers only: c10d's ProcessGroupGloo.hpp includes them; the Gloo code itself is inside
    # the torch wheel's libtorch_cpu, so nothing is linked from the Debian package.
    debian_library(
        name = "gloo",
        package = "libgloo-dev",
        check_headers = ["gloo/context.h", "gloo/rendezvous/store.h", "gloo/transport/device.h"],
        targets = {"headers": []},
    )
