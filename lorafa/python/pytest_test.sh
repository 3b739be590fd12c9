#!/usr/bin/env bash
# The Python package's tests, run the way a user gets lorafa: the built wheel pip-installed into a
# fresh folder, then pytest with the configured venv's interpreter (torch, peft, transformers, pytest).
set -euo pipefail

python=$(cat "${TEST_SRCDIR}/torch/python_executable")
if [ ! -x "${python}" ] || ! "${python}" -c 'import torch, peft, pytest' 2>/dev/null; then
  echo "FAIL: no Python with torch, peft and pytest at '${python}'; run tools/setup.sh"
  exit 1
fi
wheel=$(ls "${TEST_SRCDIR}"/lorafa/lorafa/python/wheel_cp*/lorafa-*.whl)
site="${TEST_TMPDIR}/site"
"${python}" -m pip install --quiet --no-deps --no-index --no-compile --target "${site}" "${wheel}"

export PYTHONPATH="${site}:${TEST_SRCDIR}/lorafa/testing/parity:${TEST_SRCDIR}/lorafa/tools"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME="${TEST_TMPDIR}/hf" HOME="${TEST_TMPDIR}"
cd "${TEST_TMPDIR}"  # not the runfiles root, whose lorafa/ folder would shadow the installed package
exec "${python}" -m pytest -q -p no:cacheprovider "${TEST_SRCDIR}/lorafa/lorafa/python/tests"
