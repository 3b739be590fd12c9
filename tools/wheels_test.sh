#!/usr/bin/env bash
# //tools:wheels on the wheels `bazel test //...` builds: the configured Python's and one other's.
set -euo pipefail
python=$(cat "${TEST_SRCDIR}/torch/python_executable")
# uv's cache (what the venvs' torch and peft link to) stays inside the test's folder and goes with it.
export UV_CACHE_DIR="${TEST_TMPDIR}/uv-cache"
trap 'rm -rf "${UV_CACHE_DIR}"' EXIT
"${python}" "${TEST_SRCDIR}/lorafa/tools/wheels.py" --runfiles="${TEST_SRCDIR}" --at_least=2 \
  --out="${TEST_TMPDIR}/wheels" --work_dir="${TEST_TMPDIR}"
