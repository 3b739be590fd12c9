#!/usr/bin/env bash
# tools/fsdp_train.py as a user launches it: the wheel pip-installed into a fresh folder, then torchrun
# with 2 ranks on 127.0.0.1 (Gloo): exit 0, the loss goes down, both ranks end with the same trained
# parameters, and each holds less than 0.35 of AdamW's state on LoRA (B's moments only, about half of
# A and B's, and half of those rows per rank: about 0.25).
set -euo pipefail

python=$(head -n 1 "$TEST_SRCDIR/torch/python_executable")
work="${TEST_TMPDIR:-$(mktemp -d)}/fsdp"
mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
"$python" -m pip install --quiet --no-deps --no-index --no-compile --target "$work/site" \
  "$(ls "$TEST_SRCDIR"/lorafa/lorafa/python/lorafa-*.whl)"
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export PYTHONPATH="$work/site" HF_HUB_OFFLINE=1 HOME="$work" OMP_NUM_THREADS=1
cd "$work"
"$python" -m torch.distributed.run --nproc-per-node=2 --master-addr=127.0.0.1 --master-port="$port" \
  "$TEST_SRCDIR/lorafa/tools/fsdp_train.py" --steps=15 > "$work/log" 2>&1 || { cat "$work/log"; fail "torchrun failed"; }
cat "$work/log"
first=$(awk '/^step 1 /{print $4}' "$work/log")
last=$(awk '/^step 15 /{print $4}' "$work/log")
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.9 * a) }' || fail "loss did not go down: $first -> $last"
[ "$(grep -c 'trained parameters checksum' "$work/log")" -eq 2 ] || fail "expected both ranks' lines"
[ "$(grep -o 'checksum [0-9a-f]*' "$work/log" | sort -u | wc -l)" -eq 1 ] || fail "the ranks' parameters differ"
for ratio in $(grep -o '[0-9.]*x AdamW' "$work/log" | cut -dx -f1); do
  awk -v r="$ratio" 'BEGIN { exit !(r < 0.35) }' || fail "a rank holds ${ratio}x AdamW's state, not less than 0.35"
done
echo "PASS"
