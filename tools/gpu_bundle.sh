#!/usr/bin/env bash
# gpu_bundle: writes the self-contained GPU check bundle (tools/gpu_bundle.py says what is in it).
#
#   bazel run //tools:gpu_bundle -- --out=DIR          then, on a GPU machine: DIR/run.sh OUTDIR
set -euo pipefail

out=""
for arg in "$@"; do
  case "${arg}" in
    --out=*) out="${arg#--out=}" ;;
    *) echo "gpu_bundle: unknown argument '${arg}' (use --out=DIR)" >&2; exit 2 ;;
  esac
done
if [ -z "${out}" ]; then echo "usage: bazel run //tools:gpu_bundle -- --out=DIR" >&2; exit 2; fi
# `bazel run` starts us in the runfiles tree; paths the user typed are relative to where they were.
case "${out}" in /*) ;; *) out="${BUILD_WORKING_DIRECTORY:-$PWD}/${out}" ;; esac

runfiles="${RUNFILES_DIR:-${TEST_SRCDIR:-$0.runfiles}}"
python=$(cat "${runfiles}/torch/python_executable" 2>/dev/null || true)
if [ -z "${python}" ] || [ ! -x "${python}" ]; then
  echo "gpu_bundle: no Python at '${python}'; run tools/setup.sh" >&2
  exit 1
fi
exec "${python}" "${runfiles}/lorafa/tools/gpu_bundle.py" --runfiles="${runfiles}" --out="${out}"
