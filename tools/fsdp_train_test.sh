#!/usr/bin/env bash
# tools/fsdp_train.py as a user launches it: the wheel pip-installed into a fresh folder, then torchrun
# with 2 ranks on 127.0.0.1 (Gloo):
#   1. exit 0, the loss goes down, both ranks end with the same trained parameters, and each holds less
#      than 0.35 of AdamW's state on LoRA (B's moments only, about half of A and B's, and half of those
#      rows per rank: about 0.25); it checkpoints every 5 steps through DCP;
#   2. the same run with rank 1 killed (SIGKILL) at step 9, under torchrun --max-restarts=1: it restarts,
#      resumes from the step-5 checkpoint and ends with bitwise the parameters of run 1.
set -euo pipefail

python=$(head -n 1 "$TEST_SRCDIR/torch/python_executable")
work="${TEST_TMPDIR:-$(mktemp -d)}/fsdp"
mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
"$python" -m pip install --quiet --no-deps --no-index --no-compile --target "$work/site" \
  "$(ls "$TEST_SRCDIR"/lorafa/lorafa/python/wheel_cp*/lorafa-*.whl)"
run() {  # run NAME [torchrun flags --] [fsdp_train flags]
  local name=$1 port
  shift
  port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # The c10d rendezvous: each restart is a new round with keys of its own in the store (the static one
  # reuses the first attempt's, and a restarted rank could read a dead peer's address).
  "$python" -m torch.distributed.run --nproc-per-node=2 --rdzv-backend=c10d --rdzv-endpoint="127.0.0.1:$port" \
    --rdzv-id="$name" "$@" \
    > "$work/$name.log" 2>&1 || { cat "$work/$name.log"; fail "torchrun ($name) failed"; }
  cat "$work/$name.log"
}
checksum() { grep -o 'checksum [0-9a-f]*' "$work/$1.log" | sort -u; }
export PYTHONPATH="$work/site" HF_HUB_OFFLINE=1 HOME="$work" OMP_NUM_THREADS=1
cd "$work"
script="$TEST_SRCDIR/lorafa/tools/fsdp_train.py"

echo "== 1. 2 ranks, 15 steps, a checkpoint every 5"
run plain "$script" --steps=15 --checkpoint_dir="$work/plain" --checkpoint_every=5
first=$(awk '/^step 1 /{print $4}' "$work/plain.log")
last=$(awk '/^step 15 /{print $4}' "$work/plain.log")
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.9 * a) }' || fail "loss did not go down: $first -> $last"
[ "$(grep -o 'trained parameters checksum' "$work/plain.log" | wc -l)" -eq 2 ] || fail "expected both ranks' lines"
[ "$(checksum plain | wc -l)" -eq 1 ] || fail "the ranks' parameters differ"
for ratio in $(grep -o '[0-9.]*x AdamW' "$work/plain.log" | cut -dx -f1); do
  awk -v r="$ratio" 'BEGIN { exit !(r < 0.35) }' || fail "a rank holds ${ratio}x AdamW's state, not less than 0.35"
done

echo "== 2. rank 1 killed at step 9, torchrun --max-restarts=1"
run faulted --max-restarts=1 "$script" --steps=15 --checkpoint_dir="$work/faulted" --checkpoint_every=5 --fault=1:9
grep -q "resumed from $work/faulted/step-000005" "$work/faulted.log" || fail "the restart did not resume from step 5"
[ "$(checksum faulted)" = "$(checksum plain)" ] || fail "the restarted run ended elsewhere than the uninterrupted one"
echo "PASS"
