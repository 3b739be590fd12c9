"""Repositories that Bazel 4.2.3 would download, replaced by local forwarders (no network here).

See tools/bazel/stubs/ for their contents. Each stub is a repository holding a few files copied from
this workspace, so the stubs carry no nested WORKSPACE inside the main tree.
"""

def _stub_repository_impl(rctx):
    rctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % rctx.name)
    if "BUILD" not in rctx.attr.files.values():
        rctx.file("BUILD", "")
    for label, path in rctx.attr.files.items():
        rctx.symlink(label, path)
        package = path.rpartition("/")[0]
        if package and not rctx.path(package + "/BUILD").exists:
            rctx.file(package + "/BUILD", "exports_files(glob([\"*.bzl\"]))\n")

stub_repository = repository_rule(
    implementation = _stub_repository_impl,
    attrs = {"files": attr.label_keyed_string_dict(allow_files = True, doc = "file -> path in the repository")},
    local = True,
)

def offline_stub_repositories():
    stub_repository(
        name = "rules_cc",
        files = {"//tools/bazel:stubs/rules_cc_defs.bzl": "cc/defs.bzl"},
    )
    stub_repository(
        name = "rules_java",
        files = {"//tools/bazel:stubs/rules_java_defs.bzl": "java/defs.bzl"},
    )
    stub_repository(
        name = "remote_coverage_tools",
        files = {"//tools/bazel:stubs/remote_coverage_tools.BUILD": "BUILD"},
    )
