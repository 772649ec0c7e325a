#!/usr/bin/env bash
# Access-control benchmark: the cost of restricted (age-encrypted) datasets and of tickets.
#
#   bench/access.sh                        # 1 GiB file, REPS=3
#   A_SIZE=256M REPS=1 bench/access.sh     # quick proof run
#
# Rows (same data, same machine, both peers on 127.0.0.1, inside a loopback-only network
# namespace, as bench/sync.sh):
#   clone-public      lode clone of a public dataset holding one A_SIZE file
#   clone-restricted  lode clone --ticket of the same file in a restricted dataset (the
#                     client fetches ciphertext, decrypts it and checks the plaintext)
#   fetch-noticket    an up-to-date `lode fetch` of the public dataset, no ticket
#   fetch-ticket      the same fetch presenting a read ticket (the server verifies the chain
#                     and the client the signed head): the difference is what authorization
#                     adds to a connection
# Method: one untimed warm-up round, then REPS rounds alternating the rows (A B A B) with a
# rotating start; medians. Wall time of the whole client process ($EPOCHREALTIME).
set -euo pipefail
export LC_ALL=C
SCRIPT_PATH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
REPO_DIR=$(cd "$(dirname "$SCRIPT_PATH")/.." && pwd)
say() { printf '[access %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

if [[ $(ip -o link show | awk -F': ' '{print $2}' | sort -u | tr '\n' ' ') != "lo " ]]; then
  [[ ${LODE_ACCESS_NETNS:-} == 1 ]] && die "namespace has interfaces other than lo"
  exec unshare -n -- env LODE_ACCESS_NETNS=1 bash "$SCRIPT_PATH" "$@"
fi
ip link set lo up

REPS=${REPS:-3}
FETCH_REPS=${FETCH_REPS:-20}
A_SIZE=${A_SIZE:-1G}
BENCH_DIR=${BENCH_DIR:-/tmp/lode-bench-access}
RESULTS=${RESULTS:-$REPO_DIR/bench/results-access.md}
LODE_SRC=${LODE_BIN:-$REPO_DIR/target/release/lode}
[[ -x $LODE_SRC ]] || die "build first: cargo build --release"

rm -rf "$BENCH_DIR"; mkdir -p "$BENCH_DIR"/{home/owner,home/reader,run}
cp "$LODE_SRC" "$BENCH_DIR/lode"; LODE=$BENCH_DIR/lode
export LODE_BIND=127.0.0.1:0 LODE_RELAY=disabled LODE_NO_DISCOVERY=true
owner() { LODE_HOME=$BENCH_DIR/home/owner "$LODE" "$@"; }
reader() { LODE_HOME=$BENCH_DIR/home/reader "$LODE" "$@"; }

say "making $A_SIZE of random data"
head -c "$A_SIZE" /dev/urandom > "$BENCH_DIR/big.bin"
for kind in public restricted; do
  flag=; [[ $kind == restricted ]] && flag=--private
  owner init -q $flag "$BENCH_DIR/$kind"
  cp "$BENCH_DIR/big.bin" "$BENCH_DIR/$kind/big.bin"
  owner -C "$BENCH_DIR/$kind" add -q big.bin
  owner -C "$BENCH_DIR/$kind" commit -q -m data
done
rm "$BENCH_DIR/big.bin"

PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
serve() {  # serve REPO VAR: starts `lode serve` (not in a subshell, so the trap stops it)
  local out=$BENCH_DIR/run/serve-$(basename "$1").out
  LODE_HOME=$BENCH_DIR/home/owner "$LODE" -C "$1" serve -q > "$out" 2>"$out.err" &
  PIDS+=($!)
  for _ in $(seq 600); do grep -q '^ticket: ' "$out" 2>/dev/null && break; sleep 0.1; done
  printf -v "$2" '%s' "$(sed -n 's/^ticket: //p' "$out" | head -1)"
  [[ -n ${!2} ]] || { cat "$out.err" >&2; die "lode serve $1 printed no ticket"; }
}
say "serving (the restricted dataset is sealed on the first request: untimed warm-up)"
serve "$BENCH_DIR/public" T_PUB
serve "$BENCH_DIR/restricted" T_RES
CARD=$(reader id --card)
CAP_RES=$(owner -C "$BENCH_DIR/restricted" grant "$CARD" --read --json | sed -n 's/.*"ticket": *"\([^"]*\)".*/\1/p')
RID=$(reader id | head -1)
CAP_PUB=$(owner -C "$BENCH_DIR/public" grant "$RID" --read --json | sed -n 's/.*"ticket": *"\([^"]*\)".*/\1/p')
[[ -n $CAP_RES && -n $CAP_PUB ]] || die "grant failed"

declare -A T
timed() {  # timed ROW CMD...: appends seconds to T[ROW]
  local row=$1; shift
  local s=$EPOCHREALTIME
  "$@" > /dev/null 2> "$BENCH_DIR/run/last.err" || { cat "$BENCH_DIR/run/last.err" >&2; die "$row failed"; }
  local e=$EPOCHREALTIME
  T[$row]+="$(awk -v a="$s" -v b="$e" 'BEGIN{printf "%.4f", b-a}') "
}
clone_row() {  # clone_row ROW ROUND
  local dir=$BENCH_DIR/run/$1-$2
  case $1 in
    clone-public) timed "$1" reader clone -q "$T_PUB" "$dir" ;;
    clone-restricted) timed "$1" reader clone -q "$T_RES" "$dir" --ticket "$CAP_RES" ;;
  esac
  [[ $2 == 0 ]] || cmp -s "$dir/big.bin" "$BENCH_DIR/public/big.bin" || die "$1: copy differs"
  rm -rf "$dir"
}
ROWS=(clone-public clone-restricted)
for round in $(seq 0 "$REPS"); do
  for i in 0 1; do
    row=${ROWS[$(( (i + round) % 2 ))]}
    say "round $round: $row"
    clone_row "$row" "$round"
  done
  [[ $round == 0 ]] && T=()
done

say "up-to-date fetches, with and without a ticket"
reader clone -q "$T_PUB" "$BENCH_DIR/run/f-none"
reader clone -q "$T_PUB" "$BENCH_DIR/run/f-cap" --ticket "$CAP_PUB"
FROWS=(fetch-noticket fetch-ticket)
for round in $(seq 0 "$FETCH_REPS"); do
  for i in 0 1; do
    row=${FROWS[$(( (i + round) % 2 ))]}
    case $row in
      fetch-noticket) timed "$row" reader -C "$BENCH_DIR/run/f-none" fetch -q ;;
      fetch-ticket) timed "$row" reader -C "$BENCH_DIR/run/f-cap" fetch -q ;;
    esac
  done
  [[ $round == 0 ]] && { T[fetch-noticket]=; T[fetch-ticket]=; }
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else printf "%.4f\n", (a[NR/2]+a[NR/2+1])/2 }'; }
MP=$(echo "${T[clone-public]}" | median); MR=$(echo "${T[clone-restricted]}" | median)
FN=$(echo "${T[fetch-noticket]}" | median); FT=$(echo "${T[fetch-ticket]}" | median)
{
  echo "# Access-control benchmark ($(date -u +%Y-%m-%d), $(nproc) cores, A_SIZE=$A_SIZE, REPS=$REPS, FETCH_REPS=$FETCH_REPS)"
  echo
  echo "| row | median s | all runs (s) |"
  echo "|---|---|---|"
  for r in clone-public clone-restricted fetch-noticket fetch-ticket; do
    echo "| $r | $(echo "${T[$r]}" | median) | ${T[$r]} |"
  done
  echo
  awk -v p="$MP" -v r="$MR" 'BEGIN{printf "Restricted clone throughput / public clone throughput: %.2f (target >= 0.8)\n\n", p/r}'
  awk -v n="$FN" -v t="$FT" 'BEGIN{printf "Authorization adds %.1f ms to an up-to-date fetch (whole process; target < 5 ms)\n", (t-n)*1000}'
} | tee "$RESULTS"
