#!/usr/bin/env bash
# `lode serve` at scale: start-up time and memory with many objects, and the server's peak
# memory while a clone of all of them runs (issue 17).
#
#   bench/serve.sh                     # 1,000,000 files of 1 KiB in directories of 100
#   FILES=100000 REPS=5 bench/serve.sh
#
# Knobs: LODE_BIN (default target/release/lode; never built here), FILES (default 1000000),
# PER_DIR (100), REPS (start-ups recorded, default 5, after one warm-up), BENCH_DIR (scratch,
# wiped: default /tmp/lode-serve-bench), CLONE=0 to skip the clone row.
#
# Method: the data is generated once and committed once (reported, not compared). Then:
# 1. the first start (no reachability index yet: it walks the head once), timed until the
#    ticket line is printed, and its VmHWM;
# 2. REPS further starts (the index is current: nothing is walked), same figures, median;
# 3. one clone over loopback from a running server: the clone's wall time and the server's
#    VmHWM (read from /proc just before it stops).
# Everything runs under `unshare -n` (loopback only; iroh relays and discovery off).
set -euo pipefail
export LC_ALL=C
SCRIPT_PATH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
REPO_DIR=$(cd "$(dirname "$SCRIPT_PATH")/.." && pwd)
say() { printf '[serve-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

if [[ ${LODE_SERVE_NETNS:-} != 1 ]]; then
  command -v unshare >/dev/null || die "unshare (util-linux) is required"
  exec unshare -n -- env LODE_SERVE_NETNS=1 bash "$SCRIPT_PATH" "$@"
fi
ip link set lo up 2>/dev/null || true
export LODE_BIND=127.0.0.1:0 LODE_RELAY=disabled LODE_NO_DISCOVERY=true

FILES=${FILES:-1000000}
PER_DIR=${PER_DIR:-100}
REPS=${REPS:-5}
CLONE=${CLONE:-1}
BENCH_DIR=${BENCH_DIR:-/tmp/lode-serve-bench}
LODE_BIN=${LODE_BIN:-$REPO_DIR/target/release/lode}
[[ -x $LODE_BIN ]] || die "lode binary not found at $LODE_BIN (cargo build --release first)"

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"/{ds,home,client}
export LODE_HOME=$BENCH_DIR/home

say "generating $FILES files of 1 KiB in directories of $PER_DIR"
python3 - "$BENCH_DIR/ds" "$FILES" "$PER_DIR" <<'PY'
import os, sys
root, n, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    d = os.path.join(root, "d%05d" % (i // per))
    if i % per == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%07d.bin" % i), "wb") as f:
        f.write(i.to_bytes(8, "little") * 128)
PY
cd "$BENCH_DIR/ds"
"$LODE_BIN" init -q .
t0=$EPOCHREALTIME
"$LODE_BIN" add -q .
"$LODE_BIN" commit -q -m data
t1=$EPOCHREALTIME
say "add + commit: $(echo "$t1 - $t0" | bc) s"
objects=$(find .lode/objects -type f | wc -l)

# start_serve OUTFILE: starts `lode serve -q` in the background (pid in $SERVE_PID), waits
# for its ticket line; the seconds it took go to $TOOK.
start_serve() {
  local out=$1
  : >"$out"
  local t0=$EPOCHREALTIME
  "$LODE_BIN" serve -q >"$out" 2>"$out.err" &
  SERVE_PID=$!
  local deadline=$((SECONDS + 600))
  until grep -q '^ticket: ' "$out"; do
    kill -0 "$SERVE_PID" 2>/dev/null || die "lode serve exited: $(cat "$out.err")"
    ((SECONDS < deadline)) || die "lode serve printed no ticket within 600 s"
    sleep 0.01
  done
  TOOK=$(echo "$EPOCHREALTIME - $t0" | bc)
}
hwm_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
stop_serve() { kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true; SERVE_PID=; }
SERVE_PID=
trap '[[ -n $SERVE_PID ]] && kill "$SERVE_PID" 2>/dev/null' EXIT
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; print m}'; }

rm -f .lode/serve-index.redb
start_serve "$BENCH_DIR/serve.out"; first=$TOOK
first_hwm=$(hwm_mib "$SERVE_PID")
stop_serve
say "first start (index built): ${first} s, ${first_hwm} MiB"

times=() hwms=()
for r in $(seq 0 "$REPS"); do
  start_serve "$BENCH_DIR/serve.out"; t=$TOOK
  h=$(hwm_mib "$SERVE_PID")
  stop_serve
  if ((r > 0)); then times+=("$t"); hwms+=("$h"); fi
  say "start $r$( ((r == 0)) && echo ' (warm-up)'): ${t} s, ${h} MiB"
done
t_med=$(printf '%s\n' "${times[@]}" | median)
h_med=$(printf '%s\n' "${hwms[@]}" | median)

clone_row="(skipped)"
if [[ $CLONE == 1 ]]; then
  start_serve "$BENCH_DIR/serve.out"
  ticket=$(sed -n 's/^ticket: //p' "$BENCH_DIR/serve.out" | head -1)
  t0=$EPOCHREALTIME
  LODE_HOME=$BENCH_DIR/client-home "$LODE_BIN" clone -q "$ticket" "$BENCH_DIR/client/copy"
  t1=$EPOCHREALTIME
  clone_s=$(echo "$t1 - $t0" | bc)
  srv_hwm=$(hwm_mib "$SERVE_PID")
  stop_serve
  got=$(find "$BENCH_DIR/client/copy" -path '*/.lode' -prune -o -type f -print | wc -l)
  [[ $got == "$FILES" ]] || die "the clone has $got files, expected $FILES"
  clone_row="clone ${clone_s} s; server peak ${srv_hwm} MiB during the clone"
fi

cat <<OUT
| objects | first start (walks the head) | later starts, median of $REPS | peak memory at start, median | clone |
|---:|---:|---:|---:|---|
| $objects | ${first} s, ${first_hwm} MiB | ${t_med} s | ${h_med} MiB | $clone_row |
OUT
