#!/usr/bin/env bash
# ddp_train end to end, every process on 127.0.0.1:
#   1. torchrun --no-python with 2 ranks: exit 0, loss goes down, both ranks end with the same parameters,
#      and the gradient traffic is at most 0.55× LoRA + AdamW's;
#   2. 3 ranks launched by hand, plain and with ZeRO-1: all six processes end with the same parameters,
#      and the ZeRO-1 shares of the optimizer state add up to one unsharded copy;
#   3. a rank killed (SIGKILL) and a rank stopped (SIGSTOP) mid-run: the others exit non-zero, naming the
#      failure and the timeout, within the timeout and a margin.
set -euo pipefail

train="$TEST_SRCDIR/lorafa/tools/ddp_train"
python=$(head -n 1 "$TEST_SRCDIR/torch/python_executable")
work="${TEST_TMPDIR:-$(mktemp -d)}/ddp"
mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
checksums() { grep -ho 'checksum [0-9a-f]*' "$@" | sort -u; }

echo "== 1. torchrun, 2 ranks"
OMP_NUM_THREADS=1 "$python" -m torch.distributed.run --no-python --nproc-per-node=2 --master-addr=127.0.0.1 \
  --master-port="$(free_port)" "$train" --steps=20 --timeout_s=60 > "$work/torchrun.log" 2>&1 \
  || { cat "$work/torchrun.log"; fail "torchrun run failed"; }
cat "$work/torchrun.log"
[ "$(grep -c 'trained parameters checksum' "$work/torchrun.log")" -eq 2 ] || fail "expected both ranks' checksums"
[ "$(checksums "$work/torchrun.log" | wc -l)" -eq 1 ] || fail "the two ranks ended with different parameters"
first=$(awk '/^step 1 /{print $4}' "$work/torchrun.log")
last=$(awk '/^step 20 /{print $4}' "$work/torchrun.log")
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.7 * a) }' || fail "loss did not go down: $first -> $last"
ratio=$(grep -o '[0-9.]*x$' "$work/torchrun.log" | tr -d x)
awk -v r="$ratio" 'BEGIN { exit !(r <= 0.55) }' || fail "all-reduced $ratio of LoRA + AdamW's bytes, more than 0.55"

# Starts rank $1 of $2 on port $3 with the remaining flags, output to $work/<name>.rank<r>.log; appends
# its pid to `pids` (a child of this shell, so `wait` gets its exit status).
launch() {
  local rank=$1 world=$2 port=$3 name=$4
  shift 4
  RANK=$rank WORLD_SIZE=$world LOCAL_RANK=$rank MASTER_ADDR=127.0.0.1 MASTER_PORT=$port OMP_NUM_THREADS=1 \
    "$train" "$@" > "$work/$name.rank$rank.log" 2>&1 &
  pids+=($!)
}

echo "== 2. 3 ranks by hand, plain and ZeRO-1"
for mode in plain zero1; do
  flags=(--steps=6 --global_batch=48 --timeout_s=60)
  [ "$mode" = zero1 ] && flags+=(--shard_optimizer_state)
  port=$(free_port)
  pids=()
  for rank in 0 1 2; do launch "$rank" 3 "$port" "$mode" "${flags[@]}"; done
  for rank in 0 1 2; do
    wait "${pids[$rank]}" || { cat "$work/$mode.rank$rank.log"; fail "$mode rank $rank failed"; }
  done
  grep -h 'rank .: optimizer state' "$work/$mode".rank*.log
done
[ "$(checksums "$work"/plain.rank*.log "$work"/zero1.rank*.log | wc -l)" -eq 1 ] \
  || fail "plain and ZeRO-1 ranks ended with different parameters: $(checksums "$work"/*.rank*.log)"
plain_state=$(grep -ho 'optimizer state [0-9]*' "$work/plain.rank0.log" | awk '{print $3}')
shares=$(grep -ho 'optimizer state [0-9]*' "$work"/zero1.rank*.log | awk '{s += $3} END {print s}')
[ "$shares" -eq "$plain_state" ] || fail "ZeRO-1 shares add up to $shares bytes, not the unsharded $plain_state"

# Runs 3 ranks with a 5 s timeout, sends signal $1 to rank 2 once rank 0 has stepped, and expects ranks 0
# and 1 to fail with the message within 5 s plus a margin for a loaded machine.
expect_survivors_fail() {
  local signal=$1 name=$2 port
  port=$(free_port)
  pids=()
  for rank in 0 1 2; do launch "$rank" 3 "$port" "$name" --steps=100000000 --global_batch=48 --timeout_s=5; done
  for _ in $(seq 600); do grep -q '^step 3 ' "$work/$name.rank0.log" && break; sleep 0.1; done
  grep -q '^step 3 ' "$work/$name.rank0.log" || { cat "$work/$name".rank*.log; fail "$name: training never started"; }
  local start=$SECONDS
  kill "-$signal" "${pids[2]}"
  for rank in 0 1; do
    local rc=0
    timeout 60 tail --pid="${pids[$rank]}" -f /dev/null || fail "$name: rank $rank still running 60 s after the signal"
    wait "${pids[$rank]}" || rc=$?
    [ "$rc" -ne 0 ] || fail "$name: rank $rank exited 0"
    grep -q "ddp_train: rank $rank failed at step" "$work/$name.rank$rank.log" || { cat "$work/$name.rank$rank.log"; fail "$name: rank $rank did not say it failed"; }
    grep -q -- "--timeout_s=5 s" "$work/$name.rank$rank.log" || fail "$name: rank $rank did not name the timeout"
    grep "ddp_train: rank $rank failed" "$work/$name.rank$rank.log"
  done
  local waited=$((SECONDS - start))
  echo "$name: ranks 0 and 1 failed ${waited} s after rank 2 was sent SIG$signal"
  [ "$waited" -le 35 ] || fail "$name: survivors took ${waited} s to fail with a 5 s timeout"
  kill -CONT "${pids[2]}" 2>/dev/null || true
  kill -KILL "${pids[2]}" 2>/dev/null || true
  wait "${pids[2]}" 2>/dev/null || true
}

echo "== 3. a rank killed, a rank stopped"
expect_survivors_fail KILL killed
expect_survivors_fail STOP stopped
echo "PASS"
