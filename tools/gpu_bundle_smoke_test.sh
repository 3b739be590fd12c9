#!/usr/bin/env bash
# The GPU bundle end to end, without a GPU: build it, copy it outside the checkout, run `run.sh --smoke`
# where calling Bazel fails and python3 is found on PATH (as on the GPU machine), then check what it wrote.
set -euo pipefail

runfiles="${TEST_SRCDIR}"
python=$(cat "${runfiles}/torch/python_executable")
fail() { echo "FAIL: $*"; exit 1; }

"${runfiles}/lorafa/tools/gpu_bundle" --out="${TEST_TMPDIR}/built"

# Elsewhere: nothing may point back into the build's folders.
elsewhere=$(mktemp -d)
cp -r "${TEST_TMPDIR}/built" "${elsewhere}/bundle"
rm -rf "${TEST_TMPDIR}/built"
bundle="${elsewhere}/bundle"
[ -z "$(find "${bundle}" -type l)" ] || fail "the bundle holds symbolic links: $(find "${bundle}" -type l | head -3)"
size=$(du -sb "${bundle}" | cut -f1)
[ "${size}" -le $((48 << 20)) ] || fail "the bundle is $((size >> 20)) MiB, over 48 MiB"
if find "${bundle}" -name 'libabsl*' -path '*/lib/*' | grep -q .; then :; else fail "Abseil is not in the bundle"; fi

# A PATH with no Bazel (a `bazel` that fails loudly shadows any real one) and with the venv's python3.
shims="${elsewhere}/shims"
mkdir -p "${shims}"
printf '#!/bin/sh\necho "bazel was called: the bundle must run without it" >&2\nexit 97\n' > "${shims}/bazel"
printf '#!/bin/sh\nexec "%s" "$@"\n' "${python}" > "${shims}/python3"
chmod +x "${shims}/bazel" "${shims}/python3"

out="${elsewhere}/out"
status=0
env -u LORAFA_PYTHON -u RUNFILES_DIR -u TEST_SRCDIR -u RUNFILES_MANIFEST_FILE -u LD_LIBRARY_PATH \
  PATH="${shims}:/usr/bin:/bin" HOME="${elsewhere}" "${bundle}/run.sh" "${out}" --smoke || status=$?
[ "${status}" -eq 0 ] || fail "run.sh --smoke exited ${status}"

log="${out}/run.log"
grep -q "every library resolves from the bundle, the torch wheel or the base system" "${log}" || fail "library check did not pass"
grep -q "bazel was called" "${log}" && fail "something called Bazel"
grep -q "no CUDA device" "${log}" || fail "run.sh did not say there is no CUDA device"
grep -q "b. parity_check (CPU): passed" "${log}" || fail "parity_check on the CPU did not pass"
grep -q "c. report (smoke, cpu): passed" "${log}" || fail "the CPU report did not pass"
for file in report.md results.json run.log; do [ -s "${out}/${file}" ] || fail "${file} missing or empty"; done
count=$(find "${out}" -mindepth 1 | wc -l)
[ "${count}" -le 8 ] || fail "${count} entries in OUTDIR, at most 8 plain files may come back"
[ -z "$(find "${out}" -mindepth 1 ! -type f)" ] || fail "OUTDIR holds something other than plain files"
grep -q "train_lorafa_llama" "${out}/results.json" || fail "the tiny Llama rows did not run"
echo "gpu bundle: $((size >> 20)) MiB, smoke run passed outside the checkout; OUTDIR: $(ls "${out}" | tr '\n' ' ')"
