#!/usr/bin/env bash
# //tools:wheels on the wheels `bazel test //...` builds: the configured Python's and one other's.
set -euo pipefail
python=$(cat "${TEST_SRCDIR}/torch/python_executable")
exec "${python}" "${TEST_SRCDIR}/lorafa/tools/wheels.py" --runfiles="${TEST_SRCDIR}" --at_least=2 \
  --out="${TEST_TMPDIR}/wheels" --work_dir="${TEST_TMPDIR}"
