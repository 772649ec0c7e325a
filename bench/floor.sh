#!/usr/bin/env bash
# The floor under `lode clone`: the same shapes of data moved by iroh-blobs alone between two
# processes (examples/transfer_floor.rs: the provider serves from memory, the receiver drops
# what iroh-blobs verified, no files), alternated with `lode clone` of the same shapes.
#
#   cargo build --release --example transfer_floor && bench/floor.sh
#   A_SIZE=256M B_FILES=1000 REPS=1 bench/floor.sh   # quick proof run
#
# Safety: re-executes itself under `unshare -n` (root): loopback only. Data is generated.
#
# Knobs: LODE_BIN (default target/release/lode), FLOOR_BIN (default
# target/release/examples/transfer_floor; neither is built here), A_SIZE (default 1G, one
# file), B_FILES (default 10000 files of 64 KiB, 100 per directory), REPS (default 5, after
# one warm-up round), SCENARIOS (default A,B), BENCH_DIR (default /tmp/lode-bench-floor,
# deleted at the end), SETTLE (default 361: seconds to wait after deleting a leftover BENCH_DIR
# at the start and after deleting BENCH_DIR at the end; see bench/sync.sh),
# RESULTS (default bench/results-floor.md).
#
# Method: rows alternate within each round with a rotating start; round 0 is a warm-up;
# medians. Wall time of the whole client process (EPOCHREALTIME around it); every lode clone
# writes into a fresh directory. A's clones (two files each) are deleted right after their
# run, as in bench/sync.sh: the next clone then writes into memory the kernel just freed;
# kept, every clone's 2 GiB of page cache needs memory the VM's balloon has to hand back
# first (about 470 MB/s here, see ../shared/notes/iroh.md), which doubled lode's time in a
# trial. B runs first and keeps its clones until the end: any deletion, even of A's clones
# (a repository's 256 object directories each), slows a B clone's creates for minutes on
# this VM's ext4 (see SETTLE in bench/sync.sh).
set -euo pipefail
export LC_ALL=C
SCRIPT_PATH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
REPO_DIR=$(cd "$(dirname "$SCRIPT_PATH")/.." && pwd)
say() { printf '[floor %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

if [[ ${LODE_FLOOR_NETNS:-} != 1 ]]; then
  say "re-executing in a private network namespace (unshare -n)"
  exec unshare -n -- env LODE_FLOOR_NETNS=1 bash "$SCRIPT_PATH" "$@"
fi
ip link set lo up

A_SIZE=${A_SIZE:-1G}
B_FILES=${B_FILES:-10000}
REPS=${REPS:-5}
SETTLE=${SETTLE:-361}
SCENARIOS=",${SCENARIOS:-A,B},"
BENCH_DIR=${BENCH_DIR:-/tmp/lode-bench-floor}
RESULTS=${RESULTS:-$REPO_DIR/bench/results-floor.md}
LODE_SRC=${LODE_BIN:-$REPO_DIR/target/release/lode}
FLOOR_SRC=${FLOOR_BIN:-$REPO_DIR/target/release/examples/transfer_floor}
[[ -x $LODE_SRC ]] || die "no lode binary at $LODE_SRC (cargo build --release first)"
[[ -x $FLOOR_SRC ]] || die "no transfer_floor at $FLOOR_SRC (cargo build --release --example transfer_floor)"
[[ -n $BENCH_DIR && $BENCH_DIR != / ]] || die "refusing BENCH_DIR=$BENCH_DIR"

if [[ -e $BENCH_DIR ]]; then
  rm -rf -- "$BENCH_DIR"; sync
  say "waiting ${SETTLE}s after deleting the leftover $BENCH_DIR (ext4 scans recently freed inodes)"
  sleep "$SETTLE"
fi
mkdir -p "$BENCH_DIR"/{run,home1,home2}; cd "$BENCH_DIR"
cp "$LODE_SRC" ./lode; cp "$FLOOR_SRC" ./floor
LODE=$BENCH_DIR/lode FLOOR=$BENCH_DIR/floor
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
export LODE_RELAY=disabled LODE_NO_DISCOVERY=true LODE_BIND=127.0.0.1:0
RAW=$BENCH_DIR/raw.tsv; : >"$RAW"

wait_line() {  # file pattern: waits up to 120 s for a line
  for (( i = 0; i < 1200; i++ )); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  die "no '$2' in $1"
}

scenario() {  # name count size
  local name=$1 count=$2 size=$3 src=$BENCH_DIR/src-$1
  say "scenario $name: $count x $size bytes"
  # lode: a committed repository with the same shape of random data, served
  mkdir -p "$src"
  if (( count == 1 )); then head -c "$size" /dev/urandom >"$src/big.bin"
  else
    for (( d = 0; d < (count + 99) / 100; d++ )); do
      mkdir -p "$src/d$d"
      for (( f = d * 100; f < count && f < (d + 1) * 100; f++ )); do
        head -c "$size" /dev/urandom >"$src/d$d/f$f"
      done
    done
  fi
  (cd "$src" && LODE_HOME=$BENCH_DIR/home1 "$LODE" init -q && LODE_HOME=$BENCH_DIR/home1 "$LODE" add -q . \
     && LODE_HOME=$BENCH_DIR/home1 "$LODE" commit -q -m data) >/dev/null
  (cd "$src" && LODE_HOME=$BENCH_DIR/home1 exec "$LODE" serve >"$BENCH_DIR/serve-$name.out" 2>&1) &
  PIDS+=($!)
  wait_line "$BENCH_DIR/serve-$name.out" 'ticket:'
  local ticket; ticket=$(awk '/ticket:/ { print $2; exit }' "$BENCH_DIR/serve-$name.out")
  # floor: the same shape in iroh-blobs' memory store; serves for at most an hour
  "$FLOOR" serve "$count" "$size" 3600 "$BENCH_DIR/hashes-$name" >"$BENCH_DIR/floor-$name.out" 2>&1 &
  PIDS+=($!)
  wait_line "$BENCH_DIR/floor-$name.out" '^floor:'
  local fid faddr
  read -r _ fid faddr < <(grep '^floor:' "$BENCH_DIR/floor-$name.out")
  local rows=(floor lode) r k row s e out
  for (( r = 0; r <= REPS; r++ )); do
    for (( k = 0; k < 2; k++ )); do
      row=${rows[$(( (r + k) % 2 ))]}
      sync
      s=$EPOCHREALTIME
      case $row in
        floor) out=$(timeout 600 "$FLOOR" fetch "$fid" "$faddr" "$BENCH_DIR/hashes-$name");;
        lode) out=$(cd run && LODE_HOME=$BENCH_DIR/home2 timeout 600 "$LODE" --no-progress clone "$ticket" \
                 "$name-$r" --json | jq -r '"\(.seconds) \(.bytes)"');;
      esac
      e=$EPOCHREALTIME
      local wall; wall=$(printf '%.3f' "$(echo "$e - $s" | bc)")
      say "$name/$row round $r: ${wall}s (inner: $out)"
      (( r == 0 )) || printf '%s\t%s\t%s\t%s\n' "$name" "$row" "$wall" "${out% *}" >>"$RAW"
      [[ $row == lode ]] || continue
      if (( count > 1 )); then
        diff -rq -x .lode "$src" "run/$name-$r" >/dev/null || die "$name: clone $r differs from the source"
      else
        cmp -s "$src/big.bin" "run/$name-$r/big.bin" || die "$name: clone $r differs from the source"
        rm -rf -- "run/$name-$r"
      fi
    done
  done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true; PIDS=()
}

# B first: A deletes its clones, and even their few hundred inodes (a repository's object
# directories) slow the creates of a B clone for minutes after (see SETTLE).
[[ $SCENARIOS == *,B,* ]] && scenario B "$B_FILES" 65536
[[ $SCENARIOS == *,A,* ]] && scenario A 1 "$(numfmt --from=iec "$A_SIZE")"

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) printf "%.3f\n", a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -F'\t' -v s="$1" -v r="$2" -v c="$3" '$1 == s && $2 == r { print $c }' "$RAW" | median; }
{
  echo "# Transfer floor: iroh-blobs alone vs \`lode clone\` (peers on 127.0.0.1)"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores; lode $("$LODE" --version | awk '{ print $2 }')"
  echo "- floor = examples/transfer_floor.rs: provider serving from iroh-blobs' MemStore, receiver dropping the verified bytes (no files); lode = \`lode clone\` into a fresh directory (object store + working tree)"
  echo "- REPS=$REPS after one warm-up, alternated; medians; whole-process wall time; inner = the floor's own timer (endpoint bind to last byte) / lode's reported transfer seconds"
  echo
  echo "| scenario | floor s | floor inner s | lode clone s | lode transfer s | lode / floor |"
  echo "|---|---:|---:|---:|---:|---:|"
  for sc in A B; do
    [[ $SCENARIOS == *,$sc,* ]] || continue
    f=$(col "$sc" floor 3); l=$(col "$sc" lode 3)
    printf '| %s | %s | %s | %s | %s | %s |\n' \
      "$([[ $sc == A ]] && echo "one $A_SIZE file" || echo "$B_FILES x 64 KiB")" \
      "$f" "$(col "$sc" floor 4)" "$l" "$(col "$sc" lode 4)" "$(printf '%.2fx' "$(echo "scale=4; $l / $f" | bc)")"
  done
} >"$RESULTS"
cat "$RESULTS"
say "results in $RESULTS"
# Deleting B's clones (about 120,000 inodes) slows file creation for minutes (see SETTLE): wait
# here, so that a benchmark started right after this one is not charged for it.
cd /; rm -rf -- "$BENCH_DIR"; sync
if (( SETTLE > 0 )); then
  say "deleted $BENCH_DIR; waiting ${SETTLE}s before exiting (see SETTLE)"
  sleep "$SETTLE"
fi
