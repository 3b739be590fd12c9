#!/usr/bin/env bash
# Launcher of the user commands written in Python: //tools:<name> runs tools/<name>.py (the name is this
# file's, as Bazel installs it for each target) with the configured venv's Python and the runfiles tree.
#
#   bazel run //tools:gpu_bundle -- --out=DIR        bazel run //tools:install -- --prefix=DIR
#
# The scripts resolve relative paths against BUILD_WORKING_DIRECTORY, where the user typed the command.
set -euo pipefail

name=$(basename "$0")
runfiles="${RUNFILES_DIR:-${TEST_SRCDIR:-$0.runfiles}}"
python=$(cat "${runfiles}/torch/python_executable" 2>/dev/null || true)
if [ -z "${python}" ] || [ ! -x "${python}" ]; then
  echo "${name}: no Python at '${python}'; run tools/setup.sh" >&2
  exit 1
fi
exec "${python}" "${runfiles}/lorafa/tools/${name}.py" --runfiles="${runfiles}" "$@"
