#!/usr/bin/env bash
# Runs every benchmark once on tiny shapes so the binaries cannot rot, and checks --device=cuda either
# works or says clearly that there is no CUDA device. Asserts no time.
set -euo pipefail
cd "${TEST_SRCDIR}/lorafa/benchmarks"

for binary in optimizer_step_benchmark training_step_benchmark; do
  out="${TEST_TMPDIR}/${binary}.json"
  "./${binary}" --preset=smoke --benchmark_min_time=0 --benchmark_out="${out}" --benchmark_out_format=json
  runs=$(grep -c '"run_name"' "${out}" || true)
  if [ "${runs}" -eq 0 ]; then echo "FAIL: ${binary} ran no benchmark"; exit 1; fi
  if grep -q '"error_occurred": true' "${out}"; then echo "FAIL: ${binary} reported an error"; exit 1; fi
  echo "${binary}: ${runs} benchmarks ran once"
done

# The PEFT rows are part of the optimizer benchmark: they must have run.
grep -q '"run_name": "peft_lorafa' "${TEST_TMPDIR}/optimizer_step_benchmark.json" || {
  echo "FAIL: the PEFT rows did not run (is peft installed? run tools/setup.sh)"; exit 1; }

set +e
message=$(./training_step_benchmark --device=cuda --preset=smoke --benchmark_min_time=0 2>&1)
status=$?
set -e
if [ "${status}" -ne 0 ] && ! grep -q "no CUDA device" <<<"${message}"; then
  echo "FAIL: --device=cuda failed without saying why: ${message}"; exit 1
fi
echo "--device=cuda: exit ${status} ($([ ${status} -eq 0 ] && echo ran on CUDA || echo 'no CUDA device, said so'))"
