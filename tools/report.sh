#!/usr/bin/env bash
# report: runs lorafa's benchmarks and writes report.md, results.json and charts.
#
#   bazel run //tools:report                                  # quick preset, CPU, into ./lorafa-report
#   bazel run //tools:report -- --out=/tmp/r --preset=full --device=cuda
#
#   bazel run //tools:report -- --preset=llm                  # Llama-2-7B-shaped blocks: training memory only
#
# Flags: --out=DIR (default lorafa-report), --preset=smoke|quick|full|llm (default quick),
#        --device=cpu|cuda (default cpu). Python with matplotlib: $LORAFA_PYTHON, else the workspace's .venv.
# The llm preset runs only the training-step benchmark (about 1.5 minutes on a 2-core CPU).
set -euo pipefail

out=lorafa-report preset=quick device=cpu
for arg in "$@"; do
  case "${arg}" in
    --out=*) out="${arg#--out=}" ;;
    --preset=*) preset="${arg#--preset=}" ;;
    --device=*) device="${arg#--device=}" ;;
    *) echo "report: unknown argument '${arg}' (use --out=, --preset=, --device=)" >&2; exit 2 ;;
  esac
done

# `bazel run` starts us in the runfiles tree; paths the user typed are relative to where they were.
here="${BUILD_WORKING_DIRECTORY:-$PWD}"
case "${out}" in /*) ;; *) out="${here}/${out}" ;; esac
mkdir -p "${out}"
# matplotlib and fontconfig want writable cache folders; a sandboxed HOME may have none.
export MPLCONFIGDIR="${MPLCONFIGDIR:-$(mktemp -d)}" XDG_CACHE_HOME="${XDG_CACHE_HOME:-$(mktemp -d)}"

# Runfiles: beside the script under `bazel run`, TEST_SRCDIR in a test.
runfiles="${RUNFILES_DIR:-${TEST_SRCDIR:-$0.runfiles}}"
bin="${runfiles}/lorafa/benchmarks"
tool_dir="${runfiles}/lorafa/tools"

# The interpreter the build was configured with (it has matplotlib), unless LORAFA_PYTHON says otherwise.
python="${LORAFA_PYTHON:-$(cat "${runfiles}/torch/python_executable" 2>/dev/null || true)}"
if [ -z "${python}" ] || [ ! -x "${python}" ]; then
  echo "report: no Python at '${python}'; run tools/setup.sh (or set LORAFA_PYTHON)" >&2
  exit 1
fi

benchmarks=(optimizer_step_benchmark training_step_benchmark)
[ "${preset}" = llm ] && benchmarks=(training_step_benchmark)
python_rows=1
[ "${preset}" = llm ] && python_rows=0
step=0 steps=$((${#benchmarks[@]} + python_rows + 1))
json_flags=()
# The smoke preset checks that every case runs and the report is written: one iteration each.
timing_flags=()
[ "${preset}" = smoke ] && timing_flags=(--benchmark_min_time=0)
for benchmark in "${benchmarks[@]}"; do
  step=$((step + 1))
  echo "report: [${step}/${steps}] ${benchmark} (${preset}, ${device}) — one line per case as it finishes"
  # Every case's repetitions in random interleaved order, not back to back: a slow spell of the machine
  # then falls on the cases of a ratio alike, instead of on one of them.
  "${bin}/${benchmark}" --preset="${preset}" --device="${device}" --benchmark_enable_random_interleaving=true \
    "${timing_flags[@]}" --benchmark_out="${out}/${benchmark}.json" --benchmark_out_format=json
  json_flags+=("--${benchmark%_step_benchmark}_json=${out}/${benchmark}.json")
done
if [ "${python_rows}" = 1 ]; then
  # lorafa from Python as a user gets it: the wheel installed into a scratch folder.
  step=$((step + 1))
  echo "report: [${step}/${steps}] python_step_benchmark (${preset}, ${device}): lorafa from Python, PEFT, fused AdamW"
  site=$(mktemp -d)
  "${python}" -m pip install --quiet --no-deps --no-index --no-compile --target "${site}" \
    "${runfiles}"/lorafa/lorafa/python/wheel_cp*/lorafa-*.whl
  PYTHONPATH="${site}" HF_HUB_OFFLINE=1 "${python}" "${bin}/python_step_benchmark.py" --preset="${preset}" \
    --device="${device}" --out="${out}/python_step_benchmark.json"
  json_flags+=("--python_json=${out}/python_step_benchmark.json")
  rm -rf "${site}"
fi
echo "report: [${steps}/${steps}] writing the report"
"${python}" "${tool_dir}/report.py" "${json_flags[@]}" --out="${out}" --device="${device}" --preset="${preset}"
echo "report: open ${out}/report.md"
