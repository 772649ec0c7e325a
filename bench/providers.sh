#!/usr/bin/env bash
# Clone from 3 providers vs from 1: one big file, each provider in its own network namespace
# behind a veth link whose upload is shaped (tc tbf), so that the provider's link is the
# bottleneck, as for a volunteer mirror on a home or campus uplink. Also run unshaped, where
# all peers share this machine's 2 cores and the CPU is the bottleneck.
#
#   bench/providers.sh                       # 256 MiB file, 400 Mbit/s per provider, 3 rounds
#   SIZE=64M RATE=200mbit REPS=1 bench/providers.sh
#
# Safety: the script re-executes itself under `unshare -n` (root): every namespace it creates
# hangs off that private namespace, so nothing can reach a real network. Data is generated.
#
# Knobs: LODE_BIN (default target/release/lode, never built here), SIZE (default 256M), RATE
# (tc rate per provider, default 400mbit), REPS (recorded rounds, default 3, after one warm-up),
# SHAPES (default "shaped,unshaped"), BENCH_DIR (default /tmp/lode-bench-providers), RESULTS
# (default bench/results-providers.md).
#
# Method: rows alternate within each round (1 provider, 3 providers / 3, 1 / ...), round 0 is
# a warm-up, medians are reported. Wall time of the whole `lode clone` process; every clone
# goes into a fresh directory; the three providers (the origin and two mirrors made with
# `lode mirror add`) stay up for the whole run.
set -euo pipefail
export LC_ALL=C
SCRIPT_PATH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
REPO_DIR=$(cd "$(dirname "$SCRIPT_PATH")/.." && pwd)
say() { printf '[providers %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

if [[ ${LODE_PROVIDERS_NETNS:-} != 1 ]]; then
  say "re-executing in a private network namespace (unshare -n)"
  exec unshare -n -- env LODE_PROVIDERS_NETNS=1 bash "$SCRIPT_PATH" "$@"
fi
ip link set lo up

SIZE=${SIZE:-256M}
RATE=${RATE:-400mbit}
REPS=${REPS:-3}
SHAPES=${SHAPES:-shaped,unshaped}
BENCH_DIR=${BENCH_DIR:-/tmp/lode-bench-providers}
RESULTS=${RESULTS:-$REPO_DIR/bench/results-providers.md}
SRC_BIN=${LODE_BIN:-$REPO_DIR/target/release/lode}
[[ -x $SRC_BIN ]] || die "no lode binary at $SRC_BIN (cargo build --release first)"

rm -rf "$BENCH_DIR"; mkdir -p "$BENCH_DIR"; cd "$BENCH_DIR"
cp "$SRC_BIN" ./lode; LODE=$BENCH_DIR/lode
NS=(lodep1 lodep2 lodep3)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "${NS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
}
trap cleanup EXIT

# One namespace per provider: veth pair 10.88.K.1 (here) <-> 10.88.K.2 (provider).
for k in 1 2 3; do
  n=${NS[$((k-1))]}
  ip netns del "$n" 2>/dev/null || true
  ip netns add "$n"
  ip link add "vh$k" type veth peer name "vp$k"
  ip link set "vp$k" netns "$n"
  ip addr add "10.88.$k.1/24" dev "vh$k"; ip link set "vh$k" up
  ip netns exec "$n" ip addr add "10.88.$k.2/24" dev "vp$k"
  ip netns exec "$n" ip link set "vp$k" up
  ip netns exec "$n" ip link set lo up
done
shape() {  # shape on|off: the providers' upload (their egress) limited to RATE
  for k in 1 2 3; do
    ip netns exec "${NS[$((k-1))]}" tc qdisc del dev "vp$k" root 2>/dev/null || true
    if [[ $1 == on ]]; then
      ip netns exec "${NS[$((k-1))]}" tc qdisc add dev "vp$k" root tbf rate "$RATE" burst 1mb latency 100ms
    fi
  done
}

export LODE_RELAY=disabled LODE_NO_DISCOVERY=true
say "generating $SIZE of data"
export LODE_HOME=$BENCH_DIR/owner
"$LODE" init -q ds
head -c "$SIZE" /dev/urandom > ds/big.bin
"$LODE" -C ds add -q . && "$LODE" -C ds commit -q -m data
mkdir -p srv; cp -r owner/datasets srv/

# serve_in K HOME ARGS...: runs `lode serve` in provider namespace K; prints its ticket.
serve_in() {
  local k=$1 home=$2; shift 2
  local out=$BENCH_DIR/serve$k.out
  LODE_HOME=$BENCH_DIR/$home LODE_BIND=10.88.$k.2:0 \
    ip netns exec "${NS[$((k-1))]}" "$LODE" serve -q "$@" >"$out" 2>"$BENCH_DIR/serve$k.err" &
  PIDS+=($!)
  for _ in $(seq 1 200); do
    grep -q '^ticket: ' "$out" 2>/dev/null && break
    sleep 0.05
  done
  sed -n 's/^ticket: //p' "$out" | head -1
}
T1=$(serve_in 1 srv "$BENCH_DIR/ds")
[[ -n $T1 ]] || die "origin did not start: $(cat serve1.err)"
for k in 2 3; do
  say "mirror $k: copying the dataset"
  LODE_HOME=$BENCH_DIR/m$k "$LODE" mirror add -q "$T1" >/dev/null
done
T2=$(serve_in 2 m2 --mirrors --follow 0)
T3=$(serve_in 3 m3 --mirrors --follow 0)
[[ -n $T2 && -n $T3 ]] || die "a mirror did not start"
ALL=$(LODE_HOME=$BENCH_DIR/owner "$LODE" -C ds ticket --add "$T2" --add "$T3")
ONE=$T1
say "tickets: one=${ONE:0:20}… all=${ALL:0:20}…"

export LODE_HOME=$BENCH_DIR/client
run() {  # run NAME TICKET -> seconds
  local dest=$BENCH_DIR/dest-$RANDOM$RANDOM
  local t0=$EPOCHREALTIME
  "$LODE" clone -q "$2" "$dest"
  local t1=$EPOCHREALTIME
  cmp -s "$dest/big.bin" ds/big.bin || die "clone differs"
  rm -rf "$dest"
  echo "$t0 $t1" | awk '{ printf "%.3f", $2 - $1 }'
}
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

{
  echo "# Clone from 3 providers vs 1 ($(date -u +%Y-%m-%d))"
  echo
  echo "One $SIZE file; providers: the origin and two mirrors (\`lode mirror add\`), each in"
  echo "its own network namespace behind a veth link. Shaped: each provider's upload limited to"
  echo "$RATE (tc tbf). Unshaped: veth at full speed; every peer shares this machine's 2 cores."
  echo "Whole-process \`lode clone\` wall time, median of $REPS after a warm-up, rows alternated."
  echo
  echo "| link | 1 provider (s) | 3 providers (s) | speed-up | runs (1 / 3) |"
  echo "|---|---:|---:|---:|---|"
} > "$RESULTS.tmp"

IFS=, read -r -a shapes <<< "$SHAPES"
for s in "${shapes[@]}"; do
  if [[ $s == shaped ]]; then shape on; label="shaped, $RATE each"; else shape off; label="unshaped"; fi
  one=(); three=()
  for r in $(seq 0 "$REPS"); do
    if (( r % 2 )); then a=$(run 3 "$ALL"); b=$(run 1 "$ONE"); else b=$(run 1 "$ONE"); a=$(run 3 "$ALL"); fi
    say "$label round $r: 1 provider ${b}s, 3 providers ${a}s"
    if (( r > 0 )); then one+=("$b"); three+=("$a"); fi
  done
  m1=$(printf '%s\n' "${one[@]}" | median); m3=$(printf '%s\n' "${three[@]}" | median)
  ratio=$(awk -v a="$m1" -v b="$m3" 'BEGIN { printf "%.2f", a / b }')
  echo "| $label | $m1 | $m3 | ${ratio}× | ${one[*]} / ${three[*]} |" >> "$RESULTS.tmp"
done
mv "$RESULTS.tmp" "$RESULTS"
cat "$RESULTS"
