#!/usr/bin/env bash
# install: lorafa as a CMake package for C++ projects outside Bazel (tools/install.py says what goes where).
#
#   bazel run //tools:install -- --prefix=DIR     then in CMake: find_package(lorafa) with DIR on CMAKE_PREFIX_PATH
set -euo pipefail

prefix=""
for arg in "$@"; do
  case "${arg}" in
    --prefix=*) prefix="${arg#--prefix=}" ;;
    *) echo "install: unknown argument '${arg}' (use --prefix=DIR)" >&2; exit 2 ;;
  esac
done
if [ -z "${prefix}" ]; then echo "usage: bazel run //tools:install -- --prefix=DIR" >&2; exit 2; fi
# `bazel run` starts us in the runfiles tree; paths the user typed are relative to where they were.
case "${prefix}" in /*) ;; *) prefix="${BUILD_WORKING_DIRECTORY:-$PWD}/${prefix}" ;; esac

runfiles="${RUNFILES_DIR:-${TEST_SRCDIR:-$0.runfiles}}"
python=$(cat "${runfiles}/torch/python_executable" 2>/dev/null || true)
if [ -z "${python}" ] || [ ! -x "${python}" ]; then
  echo "install: no Python at '${python}'; run tools/setup.sh" >&2
  exit 1
fi
exec "${python}" "${runfiles}/lorafa/tools/install.py" --runfiles="${runfiles}" --prefix="${prefix}"
