#!/usr/bin/env bash
# Versions as diffs (issue 16): what an edit of a big file costs on the wire and in the store,
# lode beside rsync's delta transfer (daemon on loopback), restic and borg (stores). Written
# before content-defined chunking, to be re-run unchanged after it.
#
#   bench/chunks.sh                                              # full size: 1 GiB, REPS=2
#   SIZE_MIB=64 SMALL_FILES=1000 REPS=1 WARMUP=0 bench/chunks.sh  # quick proof run
#
# Scenarios (SCENARIOS, comma list, default all, run in this order):
#   noreg     where nothing repeats: `lode clone` of SMALL_FILES x 64 KiB (first, before this
#             run deletes anything; see SETTLE), `lode add` of a SIZE_MIB random file and its
#             first `lode clone`, alternated (add, clone, add, clone)
#   edit      a SIZE_MIB random file; every round the publisher rewrites EDIT_MIB in the middle
#             and commits, the peer pulls; then the peer rewrites EDIT_MIB in the middle,
#             commits and pushes
#   csv       a SIZE_MIB CSV of sensor rows (bench/chunks.py); each edit appends APPEND_MIB of rows
#   tiff      a multi-page TIFF of FRAME x FRAME 16-bit frames adding up to SIZE_MIB; each edit
#             replaces one frame (new pixels, in place)
#   versions  VERSIONS versions of a SIZE_MIB random file, each after the first with EDIT_MIB
#             rewritten at a random offset (seeded: SEED): size of lode's object store beside
#             restic's and borg's repositories holding the same versions, and the time to store
#             each version (lode add + commit; restic backup; borg create)
#
# Rows of edit, csv and tiff, per round (the state of one round is the next round's start):
#   lode-pull   `lode pull --json` in the peer's clone, after the publisher committed an edit
#   rsync-pull  `rsync -a -I --stats rsync://127.0.0.1/PUB/FILE .` into a copy holding the previous
#               version (delta transfer; alternated with lode-pull, rotating start; -I: never
#               skip the file for an equal size and modification time, as two quick edits can)
#   lode-push   `lode push --json` of the peer's edit to the publisher's `lode serve` (write right
#               granted once, untimed, as in bench/sync.sh scenario D); the push also updates the
#               publisher's working tree, so the next round starts from the pushed file
#   rsync-push  `rsync -a -I --stats FILE rsync://127.0.0.1/DL/` of the same file into the rsync copy
#               (which held the pre-edit version)
# Bytes: lode's own count (`bytes` of pull, `bytes_sent` of push: object bytes moved), rsync's
# --stats (sent + received), and for every row the rx delta of `lo` in /proc/net/dev over the
# timed command: everything on the loopback interface of this private network namespace, both
# directions, with IP/UDP/TCP headers and QUIC framing (nothing else runs in the namespace).
#
# Safety: re-executes itself under `unshare -n` (root): only `lo` exists, no internet. lode runs
# with LODE_RELAY=disabled, LODE_NO_DISCOVERY=true, LODE_BIND=127.0.0.1:0. Data is generated.
#
# Knobs: SIZE_MIB (1024), EDIT_MIB (1), APPEND_MIB (10), VERSIONS (20), SMALL_FILES (10000),
# FRAME (512), REPS (2 recorded rounds), WARMUP (1 round first, not recorded), SEED (16),
# SCENARIOS, LODE_BIN (target/release/lode; never built here; copied into BENCH_DIR at start),
# BENCH_DIR (/tmp/lode-bench-chunks; wiped at start, deleted at the end unless KEEP=1),
# SETTLE (361: seconds the small-files clone waits after this script last deleted files; ext4
# without a journal scans recently freed inodes on every create, see bench/sync.sh), RSYNC_PORT
# (28731), RUN_TIMEOUT (900 s per timed command), RESULTS (bench/results-chunks.md), BASE_BIN
# (unset: another lode build, e.g. the last one before chunking, whose noreg rows then alternate
# with LODE_BIN's in the same run, each with its own repositories and homes: this VM's timings
# drift by more than 10 % between runs, so "within 1.1x" is judged side by side).
#
# Method: page cache warm; `sync` before every timed run; wall time of the whole client process
# ($EPOCHREALTIME around /usr/bin/time); medians over REPS rounds; every received or pushed file
# compared with its source (cmp) after it is timed. restic and borg rows are skipped if absent.
set -euo pipefail
export LC_ALL=C
SCRIPT_PATH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
REPO_DIR=$(cd "$(dirname "$SCRIPT_PATH")/.." && pwd)
say() { printf '[chunks %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# ---------------------------------------------------------------- network namespace
if [[ $(ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | sort -u | tr '\n' ' ') != "lo " ]]; then
  [[ ${LODE_CHUNKS_NETNS:-} == 1 ]] && die "namespace has interfaces other than lo"
  say "re-executing in a private network namespace (unshare -n): loopback only"
  exec unshare -n -- env LODE_CHUNKS_NETNS=1 bash "$SCRIPT_PATH" "$@"
fi
ip link set lo up

# ---------------------------------------------------------------- knobs
SIZE_MIB=${SIZE_MIB:-1024}
EDIT_MIB=${EDIT_MIB:-1}
APPEND_MIB=${APPEND_MIB:-10}
VERSIONS=${VERSIONS:-20}
SMALL_FILES=${SMALL_FILES:-10000}
FRAME=${FRAME:-512}
REPS=${REPS:-2}
WARMUP=${WARMUP:-1}
SEED=${SEED:-16}
SCENARIOS=",${SCENARIOS:-noreg,edit,csv,tiff,versions},"
BENCH_DIR=${BENCH_DIR:-/tmp/lode-bench-chunks}
KEEP=${KEEP:-0}
SETTLE=${SETTLE:-361}
RSYNC_PORT=${RSYNC_PORT:-28731}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}
RESULTS=${RESULTS:-$REPO_DIR/bench/results-chunks.md}
for v in SIZE_MIB EDIT_MIB APPEND_MIB VERSIONS SMALL_FILES FRAME REPS WARMUP SEED SETTLE RUN_TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
(( SIZE_MIB >= 4 * EDIT_MIB && REPS >= 1 && VERSIONS >= 1 )) || die "need SIZE_MIB >= 4 x EDIT_MIB, REPS >= 1, VERSIONS >= 1"
MIB=1048576
SIZE=$(( SIZE_MIB * MIB )); EDIT=$(( EDIT_MIB * MIB ))
ROUNDS=$(( WARMUP + REPS ))
export LODE_BIND=127.0.0.1:0 LODE_RELAY=disabled LODE_NO_DISCOVERY=true

LODE_SRC=${LODE_BIN:-$REPO_DIR/target/release/lode}
[[ -x $LODE_SRC ]] || die "no lode binary at $LODE_SRC (cargo build --release first; never built here)"
for t in rsync jq python3 cmp; do command -v "$t" >/dev/null || die "$t is required"; done
TIME_BIN=/usr/bin/time
"$TIME_BIN" -f %M -o /dev/null true 2>/dev/null || die "$TIME_BIN (GNU time) is required"
have() { command -v "$1" >/dev/null 2>&1; }
GEN=$REPO_DIR/bench/chunks.py

# ---------------------------------------------------------------- bench dir and deletions
case "$(cd "$(dirname "$BENCH_DIR")" 2>/dev/null && pwd)/" in
  "$REPO_DIR"/*) die "BENCH_DIR must be outside the repository ($REPO_DIR)";;
esac
[[ -n $BENCH_DIR && $BENCH_DIR != / ]] || die "refusing BENCH_DIR=$BENCH_DIR"
STAMP=$BENCH_DIR.deleted   # epoch seconds of this script's last deletion, kept across runs
remove() { rm -rf -- "$@"; sync; date +%s >"$STAMP"; }
settle() {  # waits (untimed) until SETTLE seconds have passed since the last deletion
  local last wait
  last=$(cat "$STAMP" 2>/dev/null || echo 0)
  wait=$(( last + SETTLE - $(date +%s) ))
  (( wait > 0 )) || return 0
  say "waiting ${wait}s: files were deleted less than ${SETTLE}s ago (see SETTLE)"
  sleep "$wait"
}
if [[ -e $BENCH_DIR ]]; then say "deleting the previous $BENCH_DIR"; remove "$BENCH_DIR"; fi
mkdir -p "$BENCH_DIR"/{bin,home/pub,home/peer,tmp}
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
cp "$LODE_SRC" "$BENCH_DIR/bin/lode"
LODE=$BENCH_DIR/bin/lode
LODE_SHA=$(sha256sum "$LODE" | cut -c1-16)
H1=$BENCH_DIR/home/pub H2=$BENCH_DIR/home/peer
pub() { LODE_HOME=$H1 "$LODE" --no-progress "$@"; }
peer() { LODE_HOME=$H2 "$LODE" --no-progress "$@"; }
# The noreg rows also run with BASE_BIN (its own homes and repositories) when it is given.
NOREG_BINS=(new) LODE_BASE=
if [[ -n ${BASE_BIN:-} ]]; then
  [[ -x $BASE_BIN ]] || die "BASE_BIN=$BASE_BIN is not an executable"
  cp "$BASE_BIN" "$BENCH_DIR/bin/lode-base"; LODE_BASE=$BENCH_DIR/bin/lode-base
  mkdir -p "$H1-base" "$H2-base"; NOREG_BINS+=(base)
fi
bin_of() {  # new|base pub|peer ARGS...: run that build as that peer
  local b=$1 who=$2; shift 2
  if [[ $b == new ]]; then "$who" "$@"
  elif [[ $who == pub ]]; then LODE_HOME=$H1-base "$LODE_BASE" --no-progress "$@"
  else LODE_HOME=$H2-base "$LODE_BASE" --no-progress "$@"; fi
}
bin_cmd() {  # new|base pub|peer -> the start of a shell command running that build as that peer
  local home=$H1 bin=$LODE
  [[ $2 == peer ]] && home=$H2
  [[ $1 == base ]] && { home=$home-base; bin=$LODE_BASE; }
  printf 'LODE_HOME=%q %q --no-progress' "$home" "$bin"
}
suffix() { [[ $1 == base ]] && printf '@base' || true; }
export LODE H1 H2 RSYNC_PORT
LOG=$BENCH_DIR/commands.log RAW=$BENCH_DIR/raw.tsv SIZES=$BENCH_DIR/sizes.tsv
XOUT=$BENCH_DIR/tmp/cmd.out RSS_OUT=$BENCH_DIR/tmp/rss.out
: >"$LOG"; : >"$RAW"; : >"$SIZES"
declare -A FAILED=() NOTES=()
note() { NOTES[$1]=$2; say "note: $2"; }

# ---------------------------------------------------------------- background processes
declare -A BG_PID=()
start_bg() {  # NAME DIR CMD... (stdout, stderr in tmp/NAME.{out,err})
  local name=$1 dir=$2; shift 2
  printf '### start %s in %s: %s\n' "$name" "$dir" "$*" >>"$LOG"
  : >"$BENCH_DIR/tmp/$name.out"
  ( cd "$dir" && exec "$@" ) >"$BENCH_DIR/tmp/$name.out" 2>"$BENCH_DIR/tmp/$name.err" </dev/null &
  BG_PID[$name]=$!
}
stop_bg() {
  local pid=${BG_PID[$1]:-} i
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for (( i = 0; i < 100; i++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "BG_PID[$1]"
}
cleanup() { local n; for n in "${!BG_PID[@]}"; do stop_bg "$n"; done; }
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM
wait_for() {  # SECONDS TEST...
  local i secs=$1; shift
  for (( i = 0; i < secs * 10; i++ )); do "$@" && return 0; sleep 0.1; done
  return 1
}

serve() {  # NAME REPO [new|base]: `lode serve` of REPO (publisher identity); sets TICKET
  local name=$1 repo=$2 bin=$LODE home=$H1
  [[ ${3:-new} == base ]] && bin=$LODE_BASE home=$H1-base
  start_bg "$name" "$repo" env LODE_HOME="$home" "$bin" serve
  got_ticket() { grep -q '^ticket: ' "$BENCH_DIR/tmp/$name.out"; }
  wait_for 60 got_ticket || die "lode serve printed no ticket (see $BENCH_DIR/tmp/$name.err)"
  TICKET=$(grep -m1 '^ticket: ' "$BENCH_DIR/tmp/$name.out" | cut -d' ' -f2)
}

RSYNC_CONF=$BENCH_DIR/tmp/rsyncd.conf
start_rsyncd() {  # one read-only module PUB-<scen> (publisher's tree), one writable DL-<scen> (copy)
  local s
  {
    printf 'port = %s\naddress = 127.0.0.1\nuse chroot = no\nuid = root\ngid = root\n' "$RSYNC_PORT"
    printf 'max connections = 8\nlock file = %s/tmp/rsyncd.lock\nlog file = %s/tmp/rsyncd.log\n' "$BENCH_DIR" "$BENCH_DIR"
    for s in edit csv tiff; do
      printf '[pub-%s]\npath = %s/%s/pub\nread only = yes\nexclude = .lode/\n' "$s" "$BENCH_DIR" "$s"
      printf '[dl-%s]\npath = %s/%s/rsync\nread only = no\n' "$s" "$BENCH_DIR" "$s"
    done
  } >"$RSYNC_CONF"
  start_bg rsyncd "$BENCH_DIR/tmp" rsync --daemon --no-detach --config="$RSYNC_CONF"
  listening() { ss -Hlnt "sport = :$RSYNC_PORT" 2>/dev/null | grep -q .; }
  wait_for 20 listening || die "rsync daemon did not start (see $BENCH_DIR/tmp/rsyncd.err)"
}

# ---------------------------------------------------------------- timing
now() { printf '%s' "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }
lo_rx() { awk '{ sub(/:/, " ") } $1 == "lo" { print $2 }' /proc/net/dev; }
# timed DIR CMD : sets T (s), RSS (KiB), LO (bytes on lo); stdout of CMD in $XOUT
timed() {
  local dir=$1 cmd=$2 t0 t1 l0 rc=0
  rm -f "$RSS_OUT"; : >"$XOUT"
  printf '### timed in %s: %s\n' "$dir" "$cmd" >>"$LOG"
  sync
  l0=$(lo_rx); t0=$(now)
  (cd "$dir" && exec timeout -k 5 "$RUN_TIMEOUT" "$TIME_BIN" -f %M -o "$RSS_OUT" bash -c "$cmd") \
    >"$XOUT" 2>>"$LOG" </dev/null || rc=$?
  t1=$(now)
  LO=$(( $(lo_rx) - l0 ))
  RSS=$(tail -n 1 "$RSS_OUT" 2>/dev/null || echo -)
  [[ $RSS =~ ^[0-9]+$ ]] || RSS=-
  T=$(elapsed "$t0" "$t1")
  cat "$XOUT" >>"$LOG"
  return "$rc"
}
json() { jq -r "$1 // \"-\"" "$XOUT" 2>/dev/null || echo -; }
rsync_bytes() {  # sent + received from rsync --stats in $XOUT
  awk '/^Total bytes (sent|received):/ { gsub(/,/, "", $4); n += $4 } END { print n + 0 }' "$XOUT"
}
# record SCEN ROW ROUND BYTES [EXTRA]: one line of raw.tsv (warm-up rounds are marked, not used)
record() {
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  say "$1/$2 round $3: ${T}s bytes=$4 lo=$LO rss=${RSS}KiB load=$load"
  (( $3 < WARMUP )) && return 0
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$T" "$RSS" "$4" "$LO" "$load" "${5:-}" >>"$RAW"
}
fail() { FAILED[$1/$2]=$3; say "FAILED $1/$2: $3 (see $LOG)"; tail -n 5 "$LOG" >&2; }
same() {  # SCEN ROW ROUND A B: the received copy must equal its source
  cmp -s "$4" "$5" && return 0
  fail "$1" "$2" "copy differs from its source after round $3 ($4, $5)"; return 1
}
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- edits
edit_at() {  # FILE OFFSET: EDIT new random bytes at OFFSET, in place
  head -c "$EDIT" /dev/urandom | dd of="$1" bs=1M seek="$2" oflag=seek_bytes conv=notrunc status=none
}
make_data() {  # SCEN PATH
  case $1 in
    edit) head -c "$SIZE" /dev/urandom >"$2";;
    csv) python3 "$GEN" csv-make "$2" "$SIZE" "$SEED";;
    tiff) python3 "$GEN" tiff-make "$2" "$TIFF_FRAMES" "$FRAME";;
  esac
}
change() {  # SCEN PATH N (N: a different number for every edit of the scenario)
  local size
  case $1 in
    edit) size=$(stat -c %s "$2"); edit_at "$2" $(( (size - EDIT) / 2 ));;
    csv) python3 "$GEN" csv-append "$2" $(( APPEND_MIB * MIB )) "$(( SEED + $3 ))";;
    tiff) python3 "$GEN" tiff-replace "$2" $(( (TIFF_FRAMES / 2 + $3 * 7) % TIFF_FRAMES ));;
  esac
}
TIFF_FRAMES=$(( SIZE / (FRAME * FRAME * 2) ))
(( TIFF_FRAMES >= 2 )) || die "SIZE_MIB too small for FRAME=$FRAME"
declare -A FILE_NAME=([edit]=random.bin [csv]=readings.csv [tiff]=stack.tif)
declare -A FILE_BYTES=()

# ---------------------------------------------------------------- scenario: no regression
scenario_noreg() {
  local d=$BENCH_DIR/noreg r k b row rows left n dir cmd
  mkdir -p "$d"/{data,run}
  say "noreg: $SMALL_FILES x 64 KiB random files, 100 per directory"
  left=$SMALL_FILES; k=0
  while (( left > 0 )); do
    n=$(( left < 100 ? left : 100 )); dir=$(printf '%s/data/small/d%04d' "$d" "$k")
    mkdir -p "$dir"
    head -c $(( n * 65536 )) /dev/urandom | split -b 65536 -a 3 -d --additional-suffix=.bin - "$dir/f"
    left=$(( left - n )); k=$(( k + 1 ))
  done
  declare -A ticket=()
  for b in "${NOREG_BINS[@]}"; do   # each binary commits and serves its own repository
    mkdir -p "$d/small-$b"; cp -al "$d/data/small" "$d/small-$b/"
    (cd "$d/small-$b" && bin_of "$b" pub init -q . && bin_of "$b" pub add -q . && bin_of "$b" pub commit -q -m small) >>"$LOG" 2>&1
    serve "serve-small-$b" "$d/small-$b" "$b"; ticket[$b]=$TICKET
  done
  for (( r = 0; r < ROUNDS; r++ )); do  # clones kept until the end: no deletion between them
    for (( k = 0; k < ${#NOREG_BINS[@]}; k++ )); do
      b=${NOREG_BINS[$(( (r + k) % ${#NOREG_BINS[@]} ))]}; row=clone-64KiB-files$(suffix "$b")
      settle
      if timed "$d/run" "$(bin_cmd "$b" peer) clone --json '${ticket[$b]}' small-$b-$r"; then
        record noreg "$row" "$r" "$(json .bytes)" "objects=$(json .objects)"
        diff -rq -x .lode "$d/data/small" "$d/run/small-$b-$r/small" >>"$LOG" 2>&1 \
          || fail noreg "$row" "clone differs from the source (round $r)"
      else fail noreg "$row" "lode clone failed (round $r)"; fi
    done
  done
  for b in "${NOREG_BINS[@]}"; do stop_bg "serve-small-$b"; done

  say "noreg: one ${SIZE_MIB} MiB random file"
  head -c "$SIZE" /dev/urandom >"$d/data/big.bin"
  rows=()
  for b in "${NOREG_BINS[@]}"; do
    mkdir -p "$d/big-$b"; ln "$d/data/big.bin" "$d/big-$b/big.bin"
    (cd "$d/big-$b" && bin_of "$b" pub init -q . && bin_of "$b" pub add -q . && bin_of "$b" pub commit -q -m big) >>"$LOG" 2>&1
    serve "serve-big-$b" "$d/big-$b" "$b"; ticket[$b]=$TICKET
    rows+=("add $b" "clone $b")
  done
  for (( r = 0; r < ROUNDS; r++ )); do
    for (( k = 0; k < ${#rows[@]}; k++ )); do
      read -r row b <<<"${rows[$(( (r + k) % ${#rows[@]} ))]}"
      if [[ $row == add ]]; then   # lode add into a fresh repository (init untimed)
        row=add-1file$(suffix "$b"); dir=$d/run/add-$b-$r
        mkdir -p "$dir"; ln "$d/data/big.bin" "$dir/big.bin"
        (cd "$dir" && bin_of "$b" pub init -q .) >>"$LOG" 2>&1
        if timed "$dir" "$(bin_cmd "$b" pub) add --json big.bin"; then
          record noreg "$row" "$r" "$(json .bytes_stored)"
        else fail noreg "$row" "lode add failed (round $r)"; fi
      else
        row=clone-1file$(suffix "$b"); dir=$d/run/clone-$b-$r
        if timed "$d/run" "$(bin_cmd "$b" peer) clone --json '${ticket[$b]}' clone-$b-$r"; then
          record noreg "$row" "$r" "$(json .bytes)"
          same noreg "$row" "$r" "$d/data/big.bin" "$dir/big.bin" || true
        else fail noreg "$row" "lode clone failed (round $r)"; fi
      fi
      remove "$dir"
    done
  done
  for b in "${NOREG_BINS[@]}"; do stop_bg "serve-big-$b"; done
}

# ---------------------------------------------------------------- scenarios: an edit, moved
run_row() {  # SCEN ROW ROUND
  local s=$1 row=$2 r=$3 d=$BENCH_DIR/$1 f=${FILE_NAME[$1]} dir cmd from to bytes
  [[ -n ${FAILED[$s/$row]:-} ]] && return 0
  case $row in  # where it runs, what it runs, which copy it makes equal to which, its byte count
    lode-pull) dir=$d/peer from=$d/pub/$f to=$d/peer/$f bytes=.bytes
      cmd='LODE_HOME="$H2" "$LODE" --no-progress pull --json';;
    rsync-pull) dir=$d/rsync from=$d/pub/$f to=$d/rsync/$f bytes=rsync
      cmd="rsync -a -I --stats rsync://127.0.0.1:\$RSYNC_PORT/pub-$s/$f ./";;
    lode-push) dir=$d/peer from=$d/peer/$f to=$d/pub/$f bytes=.bytes_sent
      cmd='LODE_HOME="$H2" "$LODE" --no-progress push --json --ticket "$PUSH_CAP"';;
    rsync-push) dir=$d/peer from=$d/peer/$f to=$d/rsync/$f bytes=rsync
      cmd="rsync -a -I --stats $f rsync://127.0.0.1:\$RSYNC_PORT/dl-$s/";;
  esac
  timed "$dir" "$cmd" || { fail "$s" "$row" "command failed (round $r)"; return 0; }
  if [[ $bytes == rsync ]]; then record "$s" "$row" "$r" "$(rsync_bytes)"
  else
    # lode's own split of its time: the transfer's seconds, and any seeding after it.
    record "$s" "$row" "$r" "$(json "$bytes")" \
      "objects=$(json "${bytes/bytes/objects}") transfer_s=$(json .seconds) seeded_s=$(json .swarm.seeded_seconds)"
  fi
  same "$s" "$row" "$r" "$from" "$to" || true
}

scenario_delta() {  # SCEN
  local s=$1 d=$BENCH_DIR/$1 f=${FILE_NAME[$1]} r k rows t0 card
  mkdir -p "$d"/{pub,rsync}
  say "$s: generating $f (${SIZE_MIB} MiB)"
  make_data "$s" "$d/pub/$f"
  FILE_BYTES[$s]=$(stat -c %s "$d/pub/$f")
  t0=$(now)
  (cd "$d/pub" && pub init -q . && pub add -q . && pub commit -q -m v1) >>"$LOG" 2>&1
  say "$s: publisher committed v1 in $(elapsed "$t0" "$(now)")s (untimed)"
  serve "serve-$s" "$d/pub"
  (cd "$d" && peer clone -q "$TICKET" peer) >>"$LOG" 2>&1 || die "$s: the peer's first clone failed"
  cp -p "$d/pub/$f" "$d/rsync/$f"
  card=$(peer id --card)
  PUSH_CAP=$(pub -C "$d/pub" grant "$card" --write --expires 1d --json | jq -r .ticket)
  export PUSH_CAP
  [[ $PUSH_CAP == lodecap1* ]] || die "$s: could not grant the write right to the peer"
  for (( r = 0; r < ROUNDS; r++ )); do
    # the publisher edits and commits; the peer and the rsync copy fetch it
    change "$s" "$d/pub/$f" $(( 2 * r ))
    (cd "$d/pub" && pub add -q . && pub commit -q -m "pub $r") >>"$LOG" 2>&1 || die "$s: publisher commit failed"
    rows=(lode-pull rsync-pull)
    for (( k = 0; k < 2; k++ )); do run_row "$s" "${rows[$(( (r + k) % 2 ))]}" "$r"; done
    # the peer edits and commits; both push it
    change "$s" "$d/peer/$f" $(( 2 * r + 1 ))
    (cd "$d/peer" && peer add -q . && peer commit -q -m "peer $r") >>"$LOG" 2>&1 || die "$s: peer commit failed"
    rows=(lode-push rsync-push)
    for (( k = 0; k < 2; k++ )); do run_row "$s" "${rows[$(( (r + k) % 2 ))]}" "$r"; done
  done
  printf '%s\tpublisher-objects\t%s\n' "$s" "$(du -sb "$d/pub/.lode/objects" | cut -f1)" >>"$SIZES"
  printf '%s\tpublisher-lode\t%s\n' "$s" "$(du -sb "$d/pub/.lode" | cut -f1)" >>"$SIZES"
  stop_bg "serve-$s"
  FILE_BYTES[$s]="${FILE_BYTES[$s]} $(stat -c %s "$d/pub/$f")"
  if [[ $KEEP != 1 ]]; then remove "$d"; fi
}

# ---------------------------------------------------------------- scenario: versions stored
scenario_versions() {
  local d=$BENCH_DIR/versions v k rows off
  mkdir -p "$d"/{work,cache,borg-base}
  export RESTIC_PASSWORD=bench XDG_CACHE_HOME=$d/cache BORG_BASE_DIR=$d/borg-base
  export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
  local tools=(lode)
  if have restic; then restic init -q -r "$d/restic" >>"$LOG" 2>&1 && tools+=(restic); else note restic "restic not installed: its rows skipped"; fi
  if have borg; then borg init -e none "$d/borg" >>"$LOG" 2>&1 && tools+=(borg); else note borg "borg not installed: its rows skipped"; fi
  say "versions: $VERSIONS versions of a ${SIZE_MIB} MiB random file, ${EDIT_MIB} MiB rewritten at a random offset each"
  head -c "$SIZE" /dev/urandom >"$d/work/data.bin"
  (cd "$d/work" && pub init -q .) >>"$LOG" 2>&1
  for (( v = 1; v <= VERSIONS; v++ )); do
    if (( v > 1 )); then
      off=$(awk -v s="$(( SEED * 1000 + v ))" -v n="$(( SIZE - EDIT ))" 'BEGIN { srand(s); printf "%d", rand() * n }')
      edit_at "$d/work/data.bin" "$off"
      printf '### version %s: %s bytes rewritten at offset %s\n' "$v" "$EDIT" "$off" >>"$LOG"
    fi
    rows=("${tools[@]}")
    for (( k = 0; k < ${#rows[@]}; k++ )); do
      case ${rows[$(( (v + k) % ${#rows[@]} ))]} in
        lode) timed "$d/work" "export LODE_HOME=\"\$H1\"; \"\$LODE\" --no-progress add -q data.bin && \"\$LODE\" --no-progress commit -q -m v$v" \
                && record versions lode-add-commit "$(( v - 2 + WARMUP ))" - || fail versions lode "add/commit failed (version $v)";;
        restic) timed "$d/work" "restic -q -r '$d/restic' backup data.bin" \
                && record versions restic-backup "$(( v - 2 + WARMUP ))" - || fail versions restic "backup failed (version $v)";;
        borg) timed "$d/work" "borg create '$d/borg::v$v' data.bin" \
                && record versions borg-create "$(( v - 2 + WARMUP ))" - || fail versions borg "create failed (version $v)";;
      esac
    done
    if (( v == 1 || v == VERSIONS )); then
      printf 'versions\tlode-objects-v%s\t%s\n' "$v" "$(du -sb "$d/work/.lode/objects" | cut -f1)" >>"$SIZES"
      printf 'versions\tlode-all-v%s\t%s\n' "$v" "$(du -sb "$d/work/.lode" | cut -f1)" >>"$SIZES"
      [[ " ${tools[*]} " == *" restic "* ]] && printf 'versions\trestic-repo-v%s\t%s\n' "$v" "$(du -sb "$d/restic" | cut -f1)" >>"$SIZES"
      [[ " ${tools[*]} " == *" borg "* ]] && printf 'versions\tborg-repo-v%s\t%s\n' "$v" "$(du -sb "$d/borg" | cut -f1)" >>"$SIZES"
    fi
  done
  local commits; commits=$(LODE_HOME=$H1 "$LODE" -C "$d/work" log --oneline 2>/dev/null | wc -l)
  printf 'versions\tlode-commits\t%s\n' "$commits" >>"$SIZES"
  if [[ " ${tools[*]} " == *" restic "* ]]; then
    printf 'versions\trestic-snapshots\t%s\n' "$(restic -r "$d/restic" snapshots --json 2>/dev/null | jq length)" >>"$SIZES"
  fi
  if [[ " ${tools[*]} " == *" borg "* ]]; then
    printf 'versions\tborg-archives\t%s\n' "$(borg list --short "$d/borg" 2>/dev/null | wc -l)" >>"$SIZES"
  fi
  if [[ $KEEP != 1 ]]; then remove "$d"; fi
}

# ---------------------------------------------------------------- run
START=$(date -u '+%Y-%m-%d %H:%M UTC')
[[ $SCENARIOS == *,noreg,* ]] && scenario_noreg
if [[ $SCENARIOS =~ ,(edit|csv|tiff), ]]; then start_rsyncd; fi
for s in edit csv tiff; do if [[ $SCENARIOS == *,$s,* ]]; then scenario_delta "$s"; fi; done
stop_bg rsyncd
[[ $SCENARIOS == *,versions,* ]] && scenario_versions
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
# stat SCEN ROW COL -> "median min max n" of a raw.tsv column (4 s, 5 rss, 6 bytes, 7 lo, 8 load)
stat_col() {
  awk -F'\t' -v s="$1" -v w="$2" -v c="$3" '
    $1 == s && $2 == w && $c != "-" && $c != "" { n++; v[n] = $c + 0 }
    END {
      if (!n) { print "- - - 0"; exit }
      for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j+1] = v[j]; v[j+1] = t }
      printf "%.15g %.15g %.15g %d\n", (n % 2) ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2, v[1], v[n], n
    }' "$RAW"
}
runs() { awk -F'\t' -v s="$1" -v w="$2" '$1 == s && $2 == w { printf "%s%.2f", (n++ ? " " : ""), $4 }' "$RAW"; }
fmt_s() { awk -v x="$1" 'BEGIN { if (x == "-") print "-"; else if (x < 1) printf "%.3f", x; else if (x < 100) printf "%.2f", x; else printf "%.1f", x }'; }
fmt_b() {  # bytes, human: KiB below 1 MiB, MiB below 1 GiB, then GiB
  awk -v b="$1" 'BEGIN { if (b == "-") print "-"; else if (b < 1048576) printf "%.1f KiB", b / 1024; else if (b < 1073741824) printf "%.2f MiB", b / 1048576; else printf "%.3f GiB", b / 1073741824 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b != "-" && b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
size_of() { awk -F'\t' -v s="$1" -v k="$2" '$1 == s && $2 == k { print $3 }' "$SIZES"; }
git_rev=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
git_dirty=$(git -C "$REPO_DIR" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo ' (uncommitted changes in the tree)' || true)

MD=$BENCH_DIR/results.md
{
  printf '# Versions as diffs: lode beside rsync, restic and borg (`bench/chunks.sh`)\n\n'
  printf -- '- date: %s (start), %s (end)\n' "$START" "$(date -u '+%H:%M UTC')"
  printf -- '- command: `%s`\n' "SIZE_MIB=$SIZE_MIB EDIT_MIB=$EDIT_MIB APPEND_MIB=$APPEND_MIB VERSIONS=$VERSIONS SMALL_FILES=$SMALL_FILES FRAME=$FRAME REPS=$REPS WARMUP=$WARMUP SEED=$SEED SCENARIOS=${SCENARIOS:1:-1} bench/chunks.sh"
  printf -- '- lode: %s, built from %s%s (%s, modified %s, sha256 %s...)\n' "$("$LODE" --version)" "$git_rev" "$git_dirty" \
    "$LODE_SRC" "$(date -u -r "$LODE_SRC" '+%Y-%m-%d %H:%M UTC')" "$LODE_SHA"
  printf -- '- others: %s; %s; %s\n' "$(rsync --version | head -n 1 | tr -s ' ')" \
    "$(have restic && restic version | head -n 1 || echo 'restic absent')" "$(have borg && borg --version || echo 'borg absent')"
  printf -- '- machine: %s cores, %s RAM, kernel %s; bench dir %s (%s); load average at start %s, at end %s\n' "$(nproc)" \
    "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)" "$(uname -r)" "$BENCH_DIR" \
    "$(df -T "$BENCH_DIR" | awk 'NR == 2 { print $2 }')" "$LOAD_START" "$LOAD_END"
  printf -- '- network: a private namespace (`unshare -n`) with only `lo`; lode with LODE_BIND=127.0.0.1:0, LODE_RELAY=disabled, LODE_NO_DISCOVERY=true; rsync daemon on 127.0.0.1:%s (no ssh)\n' "$RSYNC_PORT"
  printf -- '- method: %s recorded rounds after %s warm-up round(s); medians (min-max); wall time of the whole client process; `sync` before each timed run; every copy compared with its source after it is timed\n' "$REPS" "$WARMUP"
  printf -- '- bytes: "tool bytes" is lode'"'"'s own count (`bytes` of pull/clone, `bytes_sent` of push, `bytes_stored` of add) or rsync'"'"'s `--stats` sent + received; "lo bytes" is the rx delta of `lo` in /proc/net/dev over the timed command (both directions, with headers)\n'
} >"$MD"

delta_table() {  # SCEN TITLE TARGET_BYTES
  local s=$1 row md mn mx n bmd lmd rs_t rs_b pr ref
  {
    printf '\n## %s\n\n' "$2"
    printf 'File: %s bytes at the start, %s bytes at the end. Target after chunking (issue 16): at most %s on the wire, no slower than rsync.\n\n' \
      "${FILE_BYTES[$s]% *}" "${FILE_BYTES[$s]#* }" "$(fmt_b "$3")"
    printf '| row | median s (min-max) | tool bytes (median) | lo bytes (median) | time / rsync | tool bytes / rsync | within target | peak RSS MiB | runs (s) |\n'
    printf '|---|---|---:|---:|---:|---:|---|---:|---|\n'
    for row in lode-pull rsync-pull lode-push rsync-push; do
      if [[ -n ${FAILED[$s/$row]:-} ]]; then printf '| %s | FAILED: %s | | | | | | | |\n' "$row" "${FAILED[$s/$row]}"; continue; fi
      read -r md mn mx n <<<"$(stat_col "$s" "$row" 4)"
      (( n > 0 )) || continue
      read -r bmd _ _ _ <<<"$(stat_col "$s" "$row" 6)"
      read -r lmd _ _ _ <<<"$(stat_col "$s" "$row" 7)"
      ref=rsync-${row#*-}
      read -r rs_t _ _ _ <<<"$(stat_col "$s" "$ref" 4)"
      read -r rs_b _ _ _ <<<"$(stat_col "$s" "$ref" 6)"
      pr=''
      if [[ $row == lode-* ]]; then
        pr=$(awk -v b="$bmd" -v l="$3" -v t="$md" -v r="$rs_t" 'BEGIN {
          if (b == "-") { print "n/a"; exit }
          printf "%s bytes, %s time", (b <= l ? "yes" : "NO"), (r == "-" ? "n/a" : (t <= r ? "yes" : "NO")) }')
      fi
      printf '| %s | %s (%s-%s) | %s | %s | %s | %s | %s | %s | %s |\n' "$row" "$(fmt_s "$md")" "$(fmt_s "$mn")" "$(fmt_s "$mx")" \
        "$(fmt_b "$bmd")" "$(fmt_b "$lmd")" "$([[ $row == lode-* ]] && ratio "$md" "$rs_t" || echo '')" \
        "$([[ $row == lode-* ]] && ratio "$bmd" "$rs_b" || echo '')" "$pr" \
        "$(read -r r _ _ _ <<<"$(stat_col "$s" "$row" 5)"; awk -v k="$r" 'BEGIN { if (k == "-") print "-"; else printf "%.0f", k / 1024 }')" \
        "$(runs "$s" "$row")"
    done
    printf '\nPublisher'"'"'s repository at the end (%s versions committed): `.lode/objects` %s, all of `.lode` %s.\n' \
      "$(( 2 * ROUNDS + 1 ))" "$(fmt_b "$(size_of "$s" publisher-objects)")" "$(fmt_b "$(size_of "$s" publisher-lode)")"
  } >>"$MD"
}
if [[ $SCENARIOS == *,noreg,* ]]; then
  {
    printf '\n## Where nothing repeats: no regression (target after chunking: within 1.1x of these)\n\n'
    printf '| row | median s (min-max) | / base | tool bytes (median) | lo bytes (median) | peak RSS MiB | runs (s) |\n|---|---|---:|---:|---:|---:|---|\n'
    for row in clone-64KiB-files clone-64KiB-files@base add-1file add-1file@base clone-1file clone-1file@base; do
      if [[ -n ${FAILED[noreg/$row]:-} ]]; then printf '| %s | FAILED: %s | | | | | |\n' "$row" "${FAILED[noreg/$row]}"; continue; fi
      read -r md mn mx n <<<"$(stat_col noreg "$row" 4)"
      (( n > 0 )) || continue
      read -r bmd _ _ _ <<<"$(stat_col noreg "$row" 6)"
      read -r lmd _ _ _ <<<"$(stat_col noreg "$row" 7)"
      read -r rmd _ _ _ <<<"$(stat_col noreg "$row" 5)"
      base=''
      if [[ $row != *@base ]]; then read -r base _ _ n <<<"$(stat_col noreg "$row@base" 4)"; (( n > 0 )) && base=$(ratio "$md" "$base") || base=''; fi
      printf '| %s | %s (%s-%s) | %s | %s | %s | %s | %s |\n' "$row" "$(fmt_s "$md")" "$(fmt_s "$mn")" "$(fmt_s "$mx")" "$base" \
        "$(fmt_b "$bmd")" "$(fmt_b "$lmd")" "$(awk -v k="$rmd" 'BEGIN { if (k == "-") print "-"; else printf "%.0f", k / 1024 }')" "$(runs noreg "$row")"
    done
    printf '\nclone-64KiB-files: `lode clone` of %s random files of 64 KiB (100 per directory); add-1file: `lode add` of one %s MiB random file into a fresh repository; clone-1file: first `lode clone` of it. %s\n' "$SMALL_FILES" "$SIZE_MIB" \
      "$([[ -n $LODE_BASE ]] && printf 'Rows @base: the same with BASE_BIN (%s, sha256 %s...), alternated with lode; / base = median / median of its @base row.' "$BASE_BIN" "$(sha256sum "$LODE_BASE" | cut -c1-16)")"
  } >>"$MD"
fi
[[ $SCENARIOS == *,edit,* ]] && delta_table edit "A ${EDIT_MIB} MiB edit in the middle of a ${SIZE_MIB} MiB random file" $(( 2 * MIB + SIZE / 200 ))
[[ $SCENARIOS == *,csv,* ]] && delta_table csv "${APPEND_MIB} MiB of rows appended to a ${SIZE_MIB} MiB CSV" $(( (APPEND_MIB + 1) * MIB ))
[[ $SCENARIOS == *,tiff,* ]] && delta_table tiff "One frame replaced in a TIFF stack of $TIFF_FRAMES frames of ${FRAME}x${FRAME} 16-bit ($(( FRAME * FRAME * 2 / 1024 )) KiB each)" $(( 2 * MIB + SIZE / 200 ))
if [[ $SCENARIOS == *,versions,* ]]; then
  lode_end=$(size_of versions "lode-objects-v$VERSIONS")
  {
    printf '\n## %s versions of a %s MiB random file, %s MiB rewritten at a random offset in each after the first\n\n' "$VERSIONS" "$SIZE_MIB" "$EDIT_MIB"
    printf 'Target after chunking (issue 16): lode'"'"'s store at most %s.\n\n' "$(fmt_b $(( SIZE + SIZE * 5 / 100 )))"
    printf '| store | after version 1 | after version %s | / lode | time to store one edited version (2..N), median s (min-max) |\n|---|---:|---:|---:|---|\n' "$VERSIONS"
    for t in lode:lode-objects:lode-add-commit "lode (all of .lode):lode-all:lode-add-commit" restic:restic-repo:restic-backup borg:borg-repo:borg-create; do
      IFS=: read -r name key row <<<"$t"; [[ $name == lode* && $t != lode:* ]] && row=-
      a=$(size_of versions "$key-v1"); b=$(size_of versions "$key-v$VERSIONS")
      [[ -n $b ]] || continue
      read -r md mn mx n <<<"$(stat_col versions "$row" 4)"
      printf '| %s | %s | %s | %s | %s |\n' "$name" "$(fmt_b "$a")" "$(fmt_b "$b")" "$(ratio "$b" "$lode_end")" \
        "$( (( n > 0 )) && printf '%s (%s-%s)' "$(fmt_s "$md")" "$(fmt_s "$mn")" "$(fmt_s "$mx")" || echo '(as above)')"
    done
    printf '\nlode: `du -sb .lode/objects`, and of all of `.lode` (objects, database; commits: %s); restic: `du -sb` of the repository (`restic backup`, default settings, %s snapshots); borg: `du -sb` of the repository (`borg init -e none`, `borg create` defaults: lz4, buzhash chunks of about 2 MiB; %s archives). Each version is timed as `lode add data.bin && lode commit`, `restic backup data.bin`, `borg create REPO::vN data.bin`, alternated.\n' \
      "$(size_of versions lode-commits)" "$(size_of versions restic-snapshots)" "$(size_of versions borg-archives)"
  } >>"$MD"
fi
if (( ${#NOTES[@]} )); then
  { printf '\n## Notes\n\n'; for k in "${!NOTES[@]}"; do printf -- '- %s\n' "${NOTES[$k]}"; done; } >>"$MD"
fi
printf '\nRaw rows (scenario, row, round, seconds, peak RSS KiB, tool bytes, lo bytes, load, extra):\n\n```\n' >>"$MD"
cat "$RAW" >>"$MD"
printf '```\n' >>"$MD"

mkdir -p "$(dirname "$RESULTS")"
cp "$MD" "$RESULTS"
cat "$MD"
say "results written to $RESULTS"
if [[ $KEEP != 1 ]]; then remove "$BENCH_DIR"; say "deleted $BENCH_DIR (KEEP=1 keeps it)"; fi
rc=0
for k in "${!FAILED[@]}"; do say "failed: $k: ${FAILED[$k]}"; rc=1; done
exit "$rc"
