#!/usr/bin/env bash
# Volunteering storage managers (issue 19): how long from `lode publish` until the first
# volunteer serves the whole head, beside a hand-run `lode mirror add` of the same data.
#
#   bench/volunteer.sh                                  # 256 MiB file and 2,000 files, REPS=2
#   SIZE_MIB=1024 FILES=10000 bench/volunteer.sh        # the issue's sizes
#
# Datasets (each published under its own name, keyword `benchsubject`):
#   big    one SIZE_MIB random file
#   many   FILES random files of FILE_KIB KiB each, 20 per directory
# Rows, per dataset and round (fresh homes, a fresh registry and publisher each round):
#   volunteer  a storage manager ran `lode mirror volunteer --registry R --subject benchsubject`
#              and `lode serve --mirrors --follow FOLLOW` (serving nothing yet) before; timed from
#              the start of `lode publish NAME --registry R` until the adopted mirror's
#              `.lode/serve.ticket` exists (written by the storage manager's server once it
#              restarted serving the dataset, after the whole head was fetched): the follow round's wait (up to FOLLOW
#              s: a publish does not wake it), the search, the listing of the head's tree, the
#              fetch, the restart
#   hand       a second storage manager runs `lode mirror add TICKET` (timed: the fetch), then
#              `lode serve --mirrors` until it prints its ticket (timed apart: `serve start`)
# Both fetch from the publisher's `lode serve` alone. After each round the mirrors are
# checked: `lode verify` in each mirror directory.
#
# Safety: re-executes itself under `unshare -n` (root): only `lo` exists, no internet. lode runs
# with LODE_RELAY=disabled, LODE_NO_DISCOVERY=true, LODE_BIND=127.0.0.1:0. Data is generated.
#
# Knobs: SIZE_MIB (256), FILES (2000), FILE_KIB (64), REPS (2), FOLLOW (1), LODE_BIN
# (target/release/lode; never built here; copied into BENCH_DIR at start), BENCH_DIR
# (/tmp/lode-bench-volunteer; wiped at start, deleted at the end unless KEEP=1), RESULTS
# (bench/results-volunteer.md), RUN_TIMEOUT (900 s per wait).
#
# Method: page cache warm (data generated just before); `sync` before every timed run; wall time
# ($EPOCHREALTIME); medians over REPS rounds; the load average is recorded with the results.
set -euo pipefail
export LC_ALL=C
SCRIPT_PATH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
REPO_DIR=$(cd "$(dirname "$SCRIPT_PATH")/.." && pwd)
say() { printf '[volunteer %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# ---------------------------------------------------------------- network namespace
if [[ $(ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | sort -u | tr '\n' ' ') != "lo " ]]; then
  [[ ${LODE_VOLUNTEER_NETNS:-} == 1 ]] && die "namespace has interfaces other than lo"
  say "re-executing in a private network namespace (unshare -n): loopback only"
  exec unshare -n -- env LODE_VOLUNTEER_NETNS=1 bash "$SCRIPT_PATH" "$@"
fi
ip link set lo up

# ---------------------------------------------------------------- knobs
SIZE_MIB=${SIZE_MIB:-256}
FILES=${FILES:-2000}
FILE_KIB=${FILE_KIB:-64}
REPS=${REPS:-2}
FOLLOW=${FOLLOW:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}
BENCH_DIR=${BENCH_DIR:-/tmp/lode-bench-volunteer}
RESULTS=${RESULTS:-$REPO_DIR/bench/results-volunteer.md}
LODE_SRC=${LODE_BIN:-$REPO_DIR/target/release/lode}
export LODE_BIND=127.0.0.1:0 LODE_RELAY=disabled LODE_NO_DISCOVERY=true
[[ -x $LODE_SRC ]] || die "no lode binary at $LODE_SRC (build it, or set LODE_BIN)"

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR/bin" "$BENCH_DIR/data"
cp "$LODE_SRC" "$BENCH_DIR/bin/lode"
LODE=$BENCH_DIR/bin/lode
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ ${KEEP:-0} == 1 ]] || rm -rf "$BENCH_DIR"
}
trap cleanup EXIT

# `lode` as home $1 in directory $2.
lode_as() { local home=$1 dir=$2; shift 2; (cd "$dir" && LODE_HOME=$home "$LODE" "$@"); }
now() { echo "$EPOCHREALTIME"; }
json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# Starts `lode ARGS` as home $2 in directory $3, in the background, its stdout in file $1.
start_bg() {
  local out=$1 home=$2 dir=$3; shift 3
  (cd "$dir" && LODE_HOME=$home exec "$LODE" "$@") >"$out" 2>"$out.err" &
  PIDS+=("$!")
}
# Waits until file $1 has a line starting with $2; prints that line without the prefix.
wait_line() {
  local file=$1 prefix=$2 deadline=$((SECONDS + RUN_TIMEOUT))
  until grep -q "^$prefix" "$file" 2>/dev/null; do
    ((SECONDS < deadline)) || die "no '$prefix' line in $file: $(cat "$file.err" 2>/dev/null)"
    sleep 0.05
  done
  grep -m1 "^$prefix" "$file" | sed "s/^$prefix//"
}

# ---------------------------------------------------------------- data
say "generating data: big ($SIZE_MIB MiB), many ($FILES x $FILE_KIB KiB)"
mkdir -p "$BENCH_DIR/data/big" "$BENCH_DIR/data/many"
head -c $((SIZE_MIB << 20)) /dev/urandom >"$BENCH_DIR/data/big/data.bin"
for ((i = 0; i < FILES; i++)); do
  d=$BENCH_DIR/data/many/d$((i / 20))
  [[ -d $d ]] || mkdir -p "$d"
  head -c $((FILE_KIB << 10)) /dev/urandom >"$d/f$i.bin"
done

declare -A ROWS
run_round() {
  local kind=$1 rep=$2
  local w=$BENCH_DIR/run-$kind-$rep
  mkdir -p "$w"
  # The publisher: a repository of the data, committed and served.
  local pub=$w/pub repo=$w/$kind
  mkdir -p "$pub"
  lode_as "$pub" "$w" init -q "$kind" >/dev/null
  cp -r "$BENCH_DIR/data/$kind/." "$repo/"
  lode_as "$pub" "$repo" meta title "Bench $kind" >/dev/null
  lode_as "$pub" "$repo" meta keywords "benchsubject" >/dev/null
  lode_as "$pub" "$repo" add -q . >/dev/null
  lode_as "$pub" "$repo" commit -q -m "data" >/dev/null
  start_bg "$w/serve.out" "$pub" "$repo" serve
  local ticket; ticket=$(wait_line "$w/serve.out" "ticket: ")
  # A registry.
  mkdir -p "$w/reg"
  start_bg "$w/reg.out" "$w/reg" "$w" registry serve --sync 1
  local reg; reg=$(wait_line "$w/reg.out" "registry: ")
  # The volunteer, serving nothing yet.
  mkdir -p "$w/vol"
  lode_as "$w/vol" "$w" -q mirror volunteer --registry "$reg" --subject benchsubject >/dev/null
  start_bg "$w/vol.out" "$w/vol" "$w" serve --mirrors --follow "$FOLLOW"
  sleep 1
  local id; id=$(lode_as "$pub" "$repo" show --json | json_field dataset)
  [[ -n $id ]] || die "no dataset id"
  # Written by the volunteer's server once it serves the adopted mirror.
  local served=$w/vol/mirrors/$id/.lode/serve.ticket
  sync
  local t0 t1; t0=$(now)
  lode_as "$pub" "$repo" -q publish "bench-$kind-$rep" --registry "$reg" >/dev/null
  local deadline=$((SECONDS + RUN_TIMEOUT))
  until [[ -s $served ]]; do
    ((SECONDS < deadline)) || die "the volunteer did not serve $kind: $(cat "$w/vol.out.err")"
    sleep 0.05
  done
  t1=$(now)
  ROWS[$kind,volunteer]+="$(elapsed "$t0" "$t1") "
  # By hand: mirror add, then serve.
  mkdir -p "$w/hand"
  sync
  t0=$(now)
  lode_as "$w/hand" "$w" mirror add "$ticket" >/dev/null 2>&1
  t1=$(now)
  ROWS[$kind,hand]+="$(elapsed "$t0" "$t1") "
  t0=$(now)
  start_bg "$w/hand.out" "$w/hand" "$w" serve --mirrors
  wait_line "$w/hand.out" "ticket: " >/dev/null
  t1=$(now)
  ROWS[$kind,start]+="$(elapsed "$t0" "$t1") "
  # Both mirrors hold the whole head.
  for h in vol hand; do
    lode_as "$w/$h" "$w/$h/mirrors/$id" verify -q >/dev/null || die "$h mirror of $kind does not verify"
  done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
  rm -rf "$w"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for ((rep = 1; rep <= REPS; rep++)); do
  for kind in big many; do
    say "round $rep: $kind"
    run_round "$kind" "$rep"
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

{
  echo "# bench/volunteer.sh results"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ); SIZE_MIB=$SIZE_MIB FILES=$FILES FILE_KIB=$FILE_KIB REPS=$REPS FOLLOW=$FOLLOW;"
  echo "binary $LODE_SRC; load average before $LOAD_BEFORE, after $LOAD_AFTER; $(nproc) cores."
  echo
  echo "| dataset | publish → first volunteer serves (s) | mirror add by hand (s) | + serve start (s) | runs |"
  echo "|---|---|---|---|---|"
  for kind in big many; do
    v=$(tr ' ' '\n' <<<"${ROWS[$kind,volunteer]}" | grep . | median)
    h=$(tr ' ' '\n' <<<"${ROWS[$kind,hand]}" | grep . | median)
    s=$(tr ' ' '\n' <<<"${ROWS[$kind,start]}" | grep . | median)
    echo "| $kind | $v | $h | $s | volunteer: ${ROWS[$kind,volunteer]}; hand: ${ROWS[$kind,hand]} |"
  done
} | tee "$RESULTS"
