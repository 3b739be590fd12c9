#!/usr/bin/env bash
# run.sh of the GPU check bundle (written by `bazel run //tools:gpu_bundle -- --out=DIR`). Needs only a
# Python with torch 2.11; no Bazel, no compiler, no network.
#
#   DIR/run.sh OUTDIR [--budget-s=420] [--smoke]
#
# Python: $LORAFA_PYTHON, else the first python3 on PATH that imports torch. In order, within the budget:
#   0. libraries: every binary and bundled library resolves from the bundle, the torch wheel or the base system
#   a. CUDA correctness: the CUDA kernel's tests (vs the per-tensor path, the CPU kernel and the float64
#      reference, state CPU → CUDA → CPU), the memory meter vs analytic sizes, parity_check --device=cuda
#      (PEFT and lorafa both on the GPU). Without CUDA the tests say "no CUDA device" and the rest is skipped.
#      Then ddp_train and tools/fsdp_train.py (FSDP2): 2 Gloo ranks on the CPU and, with a GPU, 1 NCCL rank.
#   b. parity_check on the CPU: the release gate, proving the bundle is whole.
#   c. the report: --device=cuda (cpu without CUDA), quick preset, then the llm preset if time is left.
# OUTDIR gets at most 8 plain files: report.md, results.json, the charts and run.log.
# --smoke: the report's smoke preset (one iteration of every benchmark), for checking the bundle itself;
#          parity runs in full either way (some scenarios need their steps to show anything).
# Exit 0 when every step that ran passed (steps skipped for want of CUDA or budget are listed, not failed).
set -uo pipefail

bundle=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out="" budget=420 smoke=0
for arg in "$@"; do
  case "${arg}" in
    --budget-s=*) budget="${arg#--budget-s=}" ;;
    --smoke) smoke=1 ;;
    -*) echo "run.sh: unknown flag '${arg}' (use --budget-s=N, --smoke)" >&2; exit 2 ;;
    *) out="${arg}" ;;
  esac
done
if [ -z "${out}" ]; then echo "usage: run.sh OUTDIR [--budget-s=N] [--smoke]" >&2; exit 2; fi
mkdir -p "${out}" && out=$(cd "${out}" && pwd)
work=$(mktemp -d)
log="${out}/run.log"
exec > >(tee "${log}") 2>&1
deadline=$((SECONDS + budget))

# --- the Python, and torch's libraries through it ---
python="${LORAFA_PYTHON:-}"
if [ -z "${python}" ]; then
  for candidate in $(type -ap python3); do
    if "${candidate}" -c 'import torch' 2>/dev/null; then python="${candidate}"; break; fi
  done
fi
if [ -z "${python}" ] || ! "${python}" -c 'import torch' 2>/dev/null; then
  echo "run.sh: no Python that imports torch (set LORAFA_PYTHON)"; exit 1
fi
# The interpreter itself, not a wrapper or link to it: embedded Python finds its venv beside that path.
python=$("${python}" -c 'import sys; print(sys.executable)')
eval "$("${python}" - <<'EOF'
import glob, os, sys, sysconfig, torch
site = os.path.dirname(os.path.dirname(torch.__file__))
libpython = os.path.join(sysconfig.get_config_var("LIBDIR") or "", sysconfig.get_config_var("INSTSONAME") or "")
print(f"torch_version='{torch.__version__}'")
print(f"torch_lib='{os.path.join(os.path.dirname(torch.__file__), 'lib')}'")
print(f"nvidia_libs='{':'.join(sorted(glob.glob(os.path.join(site, 'nvidia', '*', 'lib'))))}'")
print(f"shared_libpython='{libpython if os.path.isfile(libpython) else ''}'")
print(f"cuda={1 if torch.cuda.is_available() else 0}")
print(f"python_version='{sys.version.split()[0]}'")
EOF
)" || { echo "run.sh: ${python} could not describe its torch"; exit 1; }
case "${torch_version}" in
  2.11.*) ;;
  *) echo "run.sh: the bundle was built against torch 2.11; ${python} has torch ${torch_version}"; exit 1 ;;
esac
# The target's own libpython if it has one (beside it, its stdlib), else the bundled one.
python_libs="${bundle}/lib/python"
[ -n "${shared_libpython}" ] && python_libs=$(dirname "${shared_libpython}")
export LD_LIBRARY_PATH="${bundle}/lib:${python_libs}:${torch_lib}${nvidia_libs:+:${nvidia_libs}}"
export RUNFILES_DIR="${bundle}/runfiles" LORAFA_PYTHON="${python}"
echo "run.sh: Python ${python_version} at ${python}, torch ${torch_version}, CUDA device: $([ "${cuda}" = 1 ] && echo yes || echo no)"
echo "run.sh: libpython from ${python_libs}; budget ${budget} s$([ "${smoke}" = 1 ] && echo ', smoke')"

summary=() failed=0
# step NAME SECONDS_CAP COMMAND...: runs within what is left of the budget and records the outcome.
step() {
  local name="$1" cap="$2"; shift 2
  local left=$((deadline - SECONDS))
  if [ "${left}" -le 5 ]; then summary+=("${name}: not run (budget spent)"); return; fi
  [ "${cap}" -gt "${left}" ] && cap="${left}"
  echo; echo "=== ${name} (at most ${cap} s)"
  local start=${SECONDS} status
  if declare -F "$1" >/dev/null; then "$@"; else timeout --kill-after=10 "${cap}" "$@"; fi
  status=$?
  if [ "${status}" -eq 0 ]; then
    summary+=("${name}: passed in $((SECONDS - start)) s")
  else
    [ "${status}" -eq 124 ] && summary+=("${name}: FAILED (timed out after ${cap} s)") || summary+=("${name}: FAILED (exit ${status})")
    failed=1
  fi
}
skip() { echo; echo "=== $1: skipped: $2"; summary+=("$1: skipped ($2)"); }

# --- 0. libraries ---
check_libraries() {
  local file line bad=0
  for file in $(find "${bundle}/runfiles" "${bundle}/lib" -type f -perm -u+x ! -name '*.sh' ! -name '*.py'); do
    while read -r line; do
      case "${line}" in
        *"not found"*) echo "  ${file#${bundle}/}: ${line}"; bad=1 ;;
        "statically linked") ;;  # a library that needs no other
        *"=> ${bundle}/"* | *"=> ${torch_lib}/"* | *"/site-packages/nvidia/"* | *"=> ${python_libs}/"*) ;;
        linux-vdso* | *"ld-linux-x86-64"* | libc.so* | libm.so* | libdl.so* | librt.so* | libpthread.so* | \
        libutil.so* | libstdc++.so* | libgcc_s.so*) ;;
        *) echo "  ${file#${bundle}/}: resolved outside the bundle, the torch wheel and the base system: ${line}"; bad=1 ;;
      esac
    done < <(ldd "${file}" | sed 's/^[[:space:]]*//')
  done
  [ "${bad}" -eq 0 ] && echo "every library resolves from the bundle, the torch wheel or the base system"
  return "${bad}"
}
step "0. libraries" 60 check_libraries

# --- a. CUDA correctness ---
binaries="${bundle}/runfiles/lorafa"
for test in lorafa/cuda/fused_hf_adamw_cuda_test lorafa/reference_agreement_test benchmarks/memory_meter_test; do
  # Without CUDA these still run: they load, check what needs no GPU and say "no CUDA device" for the rest.
  step "a. ${test##*/}" 120 "${binaries}/${test}"
done
if [ "${cuda}" = 1 ]; then
  step "a. parity_check --device=cuda" 120 "${binaries}/tools/parity_check" --device=cuda \
    --json_out="${work}/parity_cuda.json"
else
  skip "a. parity_check --device=cuda" "no CUDA device"
fi

free_port() { "${python}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Data parallel: `ddp_train` as WORLD ranks on this machine, which must end with the same parameters.
ddp_train_ranks() {
  local device="$1" world="$2" port rank pids=() status=0
  port=$(free_port)
  for rank in $(seq 0 $((world - 1))); do
    RANK=${rank} WORLD_SIZE=${world} LOCAL_RANK=${rank} MASTER_ADDR=127.0.0.1 MASTER_PORT=${port} \
      "${binaries}/tools/ddp_train" --device="${device}" --steps=10 --timeout_s=60 > "${work}/ddp_${device}_${rank}.log" 2>&1 &
    pids+=($!)
  done
  for rank in $(seq 0 $((world - 1))); do wait "${pids[${rank}]}" || status=1; done
  cat "${work}"/ddp_"${device}"_*.log
  [ "${status}" -eq 0 ] && [ "$(grep -ho 'checksum [0-9a-f]*' "${work}"/ddp_"${device}"_*.log | sort -u | wc -l)" -eq 1 ]
}
step "a. ddp_train (Gloo, 2 ranks on the CPU)" 60 ddp_train_ranks cpu 2
if [ "${cuda}" = 1 ]; then
  step "a. ddp_train --device=cuda (NCCL, 1 rank)" 120 ddp_train_ranks cuda 1
else
  skip "a. ddp_train --device=cuda" "no CUDA device"
fi

# FSDP2: tools/fsdp_train.py under torchrun, with the bundled wheel installed into a scratch folder; the
# ranks must end with the same parameters.
fsdp_train_ranks() {
  local device="$1" world="$2" site="${work}/fsdp_site" port status=0
  if [ ! -d "${site}" ]; then
    "${python}" -m pip install --quiet --no-deps --no-index --no-compile --target "${site}" \
      "${binaries}"/lorafa/python/wheel_cp*/lorafa-*.whl || return 1
  fi
  port=$(free_port)
  PYTHONPATH="${site}" HF_HUB_OFFLINE=1 "${python}" -m torch.distributed.run --nproc-per-node="${world}" \
    --master-addr=127.0.0.1 --master-port="${port}" "${binaries}/tools/fsdp_train.py" --device="${device}" \
    --steps=10 > "${work}/fsdp_${device}.log" 2>&1 || status=1
  cat "${work}/fsdp_${device}.log"
  [ "${status}" -eq 0 ] && [ "$(grep -o 'checksum [0-9a-f]*' "${work}/fsdp_${device}.log" | sort -u | wc -l)" -eq 1 ]
}
step "a. fsdp_train (Gloo, 2 ranks on the CPU)" 90 fsdp_train_ranks cpu 2
if [ "${cuda}" = 1 ]; then
  step "a. fsdp_train --device=cuda (NCCL, 1 rank)" 120 fsdp_train_ranks cuda 1
else
  skip "a. fsdp_train --device=cuda" "no CUDA device"
fi

# --- b. the release gate on the CPU ---
step "b. parity_check (CPU)" 240 "${binaries}/tools/parity_check" --json_out="${work}/parity_cpu.json"

# --- c. the report ---
device=cpu
[ "${cuda}" = 1 ] && device=cuda
[ "${cuda}" = 1 ] || echo "run.sh: no CUDA device: the report runs on the CPU"
export MPLCONFIGDIR="${work}/mpl" XDG_CACHE_HOME="${work}/cache"
reports=()
if [ "${smoke}" = 1 ]; then
  step "c. report (smoke, ${device})" 300 "${binaries}/tools/report.sh" --out="${work}/smoke" --preset=smoke --device="${device}"
  [ -f "${work}/smoke/report.md" ] && reports+=(smoke)
else
  step "c. report (quick, ${device})" 300 "${binaries}/tools/report.sh" --out="${work}/quick" --preset=quick --device="${device}"
  [ -f "${work}/quick/report.md" ] && reports+=(quick)
  # The llm preset took 82 s on a 2-core CPU in float32 (one step per case); it needs about that on a GPU too.
  if [ $((deadline - SECONDS)) -ge 90 ]; then
    step "c. report (llm, ${device})" 300 "${binaries}/tools/report.sh" --out="${work}/llm" --preset=llm --device="${device}"
    [ -f "${work}/llm/report.md" ] && reports+=(llm)
  else
    skip "c. report (llm, ${device})" "less than 90 s of the budget left"
  fi
fi

echo; echo "=== summary"
printf '%s\n' "${summary[@]}"
"${python}" "${binaries}/tools/gpu_bundle_collect.py" --work="${work}" --out="${out}" --reports="${reports[*]}" \
  --summary="$(printf '%s\n' "${summary[@]}")" || failed=1
rm -rf "${work}"
exit "${failed}"
