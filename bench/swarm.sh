#!/usr/bin/env bash
# Swarm benchmark (issue 14): one publisher and N downloaders, each in its own network
# namespace behind a veth link to one bridge, every peer's uplink (egress) shaped with tc tbf,
# all downloaders started at the same instant; lode (`lode serve` + `lode clone`, downloaders
# serving each other) side by side with BitTorrent (aria2c seeding and leeching the same file
# through opentracker on the bridge). Also one lode clone of a big file alone on unshaped
# loopback, with and without --no-share.
#
#   bench/swarm.sh                                   # SIZES="64M 256M", NS="8 16", REPS=3
#   SIZES=64M NS=8 REPS=1 bench/swarm.sh             # quick look
#
# Needs root, iproute2 (ip, tc), unshare (util-linux), and the BitTorrent side:
#   apt-get install aria2 opentracker mktorrent
#
# Safety: the script re-executes itself under `unshare -m -n --propagation private`: the
# bridge, the tracker and every peer's namespace hang off that private network namespace, so
# nothing can reach a real network (lode also runs with relays and address lookup off). Data
# is generated. Every process it starts is killed on exit (trap) and every loop is bounded.
#
# Knobs: LODE_BIN (default target/release/lode, never built here), SIZES (default
# "64M 256M"), NS (downloader counts, default "8 16"; one downloader alone, N=1, is always
# run too), REPS (recorded rounds, default 3), WARMUP (1: one warm-up round first, not
# counted; 0: none), RATE (uplink of every peer, default 50mbit), LODE_SEED (clone --seed, default 30s), TIMEOUT (seconds a scenario
# may take before it is called failed, default 400), LOOP_SIZE (loopback clone, default 1G;
# empty to skip), LOOP_REPS (default REPS), OLD_LODE_BIN (a pre-swarm lode for the loopback
# row, optional), BENCH_DIR (default /tmp/lode-bench-swarm), RESULTS (default
# bench/results-swarm.md).
#
# Method. Round 0 (with WARMUP=1) is a warm-up and not counted; within each round every scenario (N=1 and
# each of NS) runs lode and aria2c one after the other, the order alternating between rounds.
# Per scenario: a fresh publisher (`lode serve` / an aria2c seeder, and a fresh opentracker
# for BitTorrent: Debian's build serves whitelisted torrents only, so the script writes the
# whitelist) is started and ready before the clock starts; then all N downloaders are
# launched (t0 = just before the first launch). A downloader is done when its file is
# complete: lode's checkout renames DEST/big.bin into place; aria2c's
# --on-bt-download-complete hook (run before seeding) writes a marker. A polling loop (50 ms)
# records each instant. Downloaders keep serving (lode --seed, aria2c --seed-time) until all
# are done, then everything is stopped and every copy compared with the source (cmp).
# Publisher bytes: tx_bytes of the publisher's veth inside its namespace, from just before
# t0 to the instant all are done; likewise the sum over the downloaders' veths ("downloaders
# sent", which includes their acknowledgements and control traffic). CPU: user + system time
# of the publisher and the downloaders over the same span, and how busy the machine was
# (/proc/stat; other work on the machine shows there). In the last round lode's
# downloaders are left to finish their --seed time so that their --json reports (bytes sent
# to / received from each peer) are written; the script sums them (with python3, if present).
set -euo pipefail
export LC_ALL=C
SCRIPT_PATH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
REPO_DIR=$(cd "$(dirname "$SCRIPT_PATH")/.." && pwd)
say() { printf '[swarm %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

if [[ ${LODE_SWARM_NETNS:-} != 1 ]]; then
  [[ $(id -u) == 0 ]] || die "needs root (network namespaces, veth links, tc)"
  for t in unshare ip tc aria2c opentracker mktorrent cmp; do
    command -v "$t" >/dev/null ||
      die "$t not found; install the BitTorrent side with: apt-get install aria2 opentracker mktorrent (and iproute2, util-linux)"
  done
  say "re-executing in a private network and mount namespace (unshare -m -n)"
  exec unshare -m -n --propagation private -- env LODE_SWARM_NETNS=1 bash "$SCRIPT_PATH" "$@"
fi
ip link set lo up

SIZES=${SIZES:-64M 256M}
NS=${NS:-8 16}
REPS=${REPS:-3}
WARMUP=${WARMUP:-1}
RATE=${RATE:-50mbit}
LODE_SEED=${LODE_SEED:-30s}
TIMEOUT=${TIMEOUT:-400}
LOOP_SIZE=${LOOP_SIZE-1G}
LOOP_REPS=${LOOP_REPS:-$REPS}
BENCH_DIR=${BENCH_DIR:-/tmp/lode-bench-swarm}
RESULTS=${RESULTS:-$REPO_DIR/bench/results-swarm.md}
RESULTS=$(realpath -m "$RESULTS")
SRC_BIN=${LODE_BIN:-$REPO_DIR/target/release/lode}
[[ -x $SRC_BIN ]] || die "no lode binary at $SRC_BIN (build it with cargo build --release, or set LODE_BIN)"

rm -rf "$BENCH_DIR"; mkdir -p "$BENCH_DIR"; cd "$BENCH_DIR"
B=$BENCH_DIR
cp "$SRC_BIN" ./lode; LODE=$B/lode
OLD=""
if [[ -n ${OLD_LODE_BIN:-} ]]; then cp "$OLD_LODE_BIN" ./lode-old; OLD=$B/lode-old; fi

MAXN=1
for n in $NS; do (( n > MAXN )) && MAXN=$n; done
PEERS=$((MAXN + 1))          # peer 1 is the publisher, 2.. the downloaders
NETNS=()
PIDS=()                      # every long-running process started (killed on exit)
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
}
trap cleanup EXIT

# A sleep without a fork: read with a timeout from a FIFO that nobody writes.
mkfifo "$B/nap.fifo"; exec 9<>"$B/nap.fifo"
nap() { read -r -t "$1" -u 9 _ || true; }

# The bridge (10.99.0.254, the tracker's address, unshaped) and one namespace per peer K
# (10.99.0.K) with a veth to the bridge, its uplink shaped to RATE.
ip link add sbr0 type bridge
ip addr add 10.99.0.254/24 dev sbr0
ip link set sbr0 up
ns() { echo "lsb$$-$1"; }
for k in $(seq 1 "$PEERS"); do
  n=$(ns "$k")
  ip netns add "$n"; NETNS+=("$n")
  ip link add "sbh$k" type veth peer name "sbp$k"
  ip link set "sbh$k" master sbr0
  ip link set "sbh$k" up
  ip link set "sbp$k" netns "$n"
  ip netns exec "$n" ip addr add "10.99.0.$k/24" dev "sbp$k"
  ip netns exec "$n" ip link set "sbp$k" up
  ip netns exec "$n" ip link set lo up
  ip netns exec "$n" tc qdisc add dev "sbp$k" root tbf rate "$RATE" burst 32kb latency 400ms
done
say "$PEERS peers on a bridge, every uplink $RATE"
tx() { ip netns exec "$(ns "$1")" cat "/sys/class/net/sbp$1/statistics/tx_bytes"; }
# CPU seconds (user + system) process PID has used so far; "busy idle" ticks of the machine.
cpu_of() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat" 2>/dev/null || echo 0; }
machine() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat; }

# Stops processes PIDS... (TERM, then KILL after 3 s), bounded.
stop() {
  local p
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 60); do
    local alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    (( alive )) || break
    nap 0.05
  done
  for p in "$@"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}

bytes() { numfmt --from=iec "$1"; }
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# Data: per size, a lode repository with one random file big.bin, the same file hard-linked
# into the seeder's directory, and a .torrent (mktorrent's default 256 KiB pieces).
export LODE_RELAY=disabled LODE_NO_DISCOVERY=true
ANNOUNCE=http://10.99.0.254:6969/announce
for s in $SIZES; do
  say "generating $s of data"
  LODE_HOME=$B/owner "$LODE" init -q "$B/ds-$s" >/dev/null
  head -c "$(bytes "$s")" /dev/urandom >"$B/ds-$s/big.bin"
  LODE_HOME=$B/owner "$LODE" -C "$B/ds-$s" add -q .
  LODE_HOME=$B/owner "$LODE" -C "$B/ds-$s" commit -q -m data
  mkdir -p "$B/seed-$s"; ln "$B/ds-$s/big.bin" "$B/seed-$s/big.bin"
  mktorrent -a "$ANNOUNCE" -o "$B/big-$s.torrent" "$B/seed-$s/big.bin" >/dev/null
  # Debian's opentracker serves whitelisted torrents only.
  aria2c -S "$B/big-$s.torrent" | sed -n 's/^Info Hash: //p' >>"$B/whitelist.txt"
done
cat >"$B/done-hook.sh" <<'EOF'
#!/bin/sh
# aria2c --on-bt-download-complete: GID, number of files, path of the first file.
date +%s.%N >"$3.done"
EOF
chmod +x "$B/done-hook.sh"

# Common aria2c options: tracker only (no DHT, no local discovery), peer exchange on,
# re-announce every 5 s, look for more peers whenever below 100 MiB/s, unlimited upload.
ARIA=(aria2c --enable-dht=false --enable-dht6=false --bt-enable-lpd=false
  --enable-peer-exchange=true --bt-tracker-interval=5 --bt-request-peer-speed-limit=100M
  --max-overall-upload-limit=0 --file-allocation=none --disable-ipv6=true
  --summary-interval=0 --console-log-level=warn --seed-ratio=0.0 --seed-time=10
  --auto-save-interval=0 --check-certificate=false)

# run_scenario TOOL SIZE N ROUND: sets OUT to
#   all_done median_done publisher_tx downloaders_tx ok_count per-peer-times...
# (a global, not a command substitution, so that the EXIT trap sees every process started)
# and leaves lode's --json reports in $W when ROUND is the last one.
run_scenario() {
  local tool=$1 s=$2 n=$3 round=$4
  local W=$B/run-$tool-$s-$n-$round
  rm -rf "$W"; mkdir -p "$W"
  local pub="" tracker="" pids=() marks=() k
  if [[ $tool == lode ]]; then
    LODE_HOME=$B/owner LODE_BIND=10.99.0.1:0 \
      ip netns exec "$(ns 1)" "$LODE" serve -q "$B/ds-$s" >"$W/serve.out" 2>"$W/serve.err" &
    pub=$!; PIDS+=("$pub")
    for _ in $(seq 1 400); do grep -q '^ticket: ' "$W/serve.out" 2>/dev/null && break; nap 0.05; done
    local ticket; ticket=$(sed -n 's/^ticket: //p' "$W/serve.out" | head -1)
    [[ -n $ticket ]] || die "lode serve did not start: $(cat "$W/serve.err")"
  else
    mkdir -p "$W/tracker"
    cp "$B/whitelist.txt" "$W/tracker/"
    (cd "$W/tracker" && exec opentracker -i 10.99.0.254 -p 6969 -P 6969 -d / \
      -w "$W/tracker/whitelist.txt") >"$W/tracker.out" 2>&1 &
    tracker=$!; PIDS+=("$tracker")
    local up=0
    for _ in $(seq 1 100); do
      (exec 3<>/dev/tcp/10.99.0.254/6969) 2>/dev/null && { up=1; break; }; nap 0.05
    done
    (( up )) || die "opentracker did not start: $(cat "$W/tracker.out")"
    ip netns exec "$(ns 1)" "${ARIA[@]}" --bt-seed-unverified=true --dir="$B/seed-$s" \
      --log="$W/seed.log" --log-level=info "$B/big-$s.torrent" >"$W/seed.out" 2>&1 &
    pub=$!; PIDS+=("$pub")
    # Ready once the seeder's first announce got its answer.
    local ready=0
    for _ in $(seq 1 400); do
      grep -q 'DefaultBtAnnounce' "$W/seed.log" 2>/dev/null && { ready=1; break; }
      nap 0.05
    done
    (( ready )) || die "the aria2c seeder got no tracker answer: see $W/seed.log"
    grep -q 'Tracker returned failure' "$W/seed.log" && die "tracker refused the seeder: see $W/seed.log"
  fi
  nap 0.5
  local tx0=(); for k in $(seq 1 $((n + 1))); do tx0[k]=$(tx "$k"); done
  local pubcpu0 m0; pubcpu0=$(cpu_of "$pub"); m0=$(machine)
  local t0=$EPOCHREALTIME
  for k in $(seq 2 $((n + 1))); do
    if [[ $tool == lode ]]; then
      LODE_HOME=$B/home$k LODE_BIND=10.99.0.$k:0 \
        ip netns exec "$(ns "$k")" "$LODE" clone --json --seed "$LODE_SEED" "$ticket" "$W/d$k" \
        >"$W/c$k.json" 2>"$W/c$k.err" &
      marks[k]=$W/d$k/big.bin
    else
      ip netns exec "$(ns "$k")" "${ARIA[@]}" --dir="$W/d$k" \
        --on-bt-download-complete="$B/done-hook.sh" "$B/big-$s.torrent" \
        >"$W/c$k.out" 2>&1 &
      marks[k]=$W/d$k/big.bin.done
    fi
    pids[k]=$!; PIDS+=("$!")
  done
  local done_at=() left=$n failed=0
  local limit=$((TIMEOUT * 20))
  for _ in $(seq 1 "$limit"); do
    local now=$EPOCHREALTIME
    for k in $(seq 2 $((n + 1))); do
      [[ -n ${done_at[k]:-} ]] && continue
      if [[ -e ${marks[k]} ]]; then
        done_at[k]=$(awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.2f", b - a }'); left=$((left - 1))
      elif ! kill -0 "${pids[k]}" 2>/dev/null; then
        done_at[k]=fail; left=$((left - 1)); failed=$((failed + 1))
      fi
    done
    (( left == 0 )) && break
    nap 0.05
  done
  local m1; m1=$(machine)
  # CPU the publisher and downloaders used until all were done, and how busy the machine was.
  local cpu; cpu=$(cpu_of "$pub")
  cpu=$(awk -v a="$cpu" -v b="$pubcpu0" 'BEGIN { print a - b }')
  for k in $(seq 2 $((n + 1))); do cpu=$(awk -v a="$cpu" -v b="$(cpu_of "${pids[k]}")" 'BEGIN { print a + b }'); done
  local busy; busy=$(echo "$m0 $m1" | awk '{ b = $3 - $1; i = $4 - $2; printf "%d%%", (b + i) ? 100 * b / (b + i) : 0 }')
  CPU="$(printf '%.1f' "$cpu") $busy"
  local tx1=(); for k in $(seq 1 $((n + 1))); do tx1[k]=$(tx "$k"); done
  local times=() ok=0
  for k in $(seq 2 $((n + 1))); do
    times+=("${done_at[k]:-timeout}")
  done
  # Stop: lode's downloaders finish their --seed time in the last round (for the JSON).
  local dl=("${pids[@]}")
  if [[ $tool == lode && $round == "$REPS" ]]; then
    local secs=${LODE_SEED%s}
    for _ in $(seq 1 $(((secs + 20) * 20))); do
      local alive=0; for p in "${dl[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
      (( alive )) || break
      nap 0.05
    done
  fi
  stop "${dl[@]}"
  stop "$pub"
  [[ -n $tracker ]] && stop "$tracker"
  for k in $(seq 2 $((n + 1))); do
    if cmp -s "$W/d$k/big.bin" "$B/ds-$s/big.bin"; then ok=$((ok + 1)); else
      say "$tool $s N=$n round $round: downloader $k has no correct copy (${done_at[k]:-timeout})"
    fi
  done
  local all pubtx dltx=0 size
  size=$(bytes "$s")
  if (( ok == n )); then
    all=$(printf '%s\n' "${times[@]}" | sort -n | tail -1)
  else
    all="fail($ok/$n)"
  fi
  local med; med=$(printf '%s\n' "${times[@]}" | grep -E '^[0-9.]+$' | median)
  pubtx=$(( tx1[1] - tx0[1] ))
  for k in $(seq 2 $((n + 1))); do dltx=$(( dltx + tx1[k] - tx0[k] )); done
  local pubx dlx
  pubx=$(awk -v a="$pubtx" -v b="$size" 'BEGIN { printf "%.2f", a / b }')
  dlx=$(awk -v a="$dltx" -v b="$size" 'BEGIN { printf "%.2f", a / b }')
  # Keep the reports, drop the copies.
  for k in $(seq 2 $((n + 1))); do rm -rf "$W/d$k"; done
  OUT="$all $med $pubx $dlx $ok ${times[*]}"
}

# json_sums DIR N: "sent_total received_from_publisher received_from_downloaders" (bytes)
# summed over the downloaders' --json reports (python3 if present, else "-").
json_sums() {
  local W=$1 n=$2 pubid
  pubid=$(LODE_HOME=$B/owner "$LODE" id --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["device"][:10])' 2>/dev/null) || { echo "- - -"; return; }
  python3 - "$W" "$n" "$pubid" <<'EOF' 2>/dev/null || echo "- - -"
import json, sys
w, n, pub = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sent = from_pub = from_dl = 0
missing = 0
for k in range(2, n + 2):
    try:
        r = json.load(open(f"{w}/c{k}.json"))
    except Exception:
        missing += 1
        continue
    sw = r.get("swarm") or {}
    sent += sum(sw.get("sent_to", {}).values())
    for p, b in sw.get("received_from", {}).items():
        if p == pub:
            from_pub += b
        else:
            from_dl += b
print(sent, from_pub, from_dl, missing)
EOF
}

declare -A RAW MED
LINES=()
SCEN=(1 $NS)
for s in $SIZES; do
  size=$(bytes "$s")
  for r in $(seq $((WARMUP ? 0 : 1)) "$REPS"); do
    for n in "${SCEN[@]}"; do
      if (( r % 2 )); then order=(aria2c lode); else order=(lode aria2c); fi
      for tool in "${order[@]}"; do
        load=$(cut -d' ' -f1-3 /proc/loadavg)
        run_scenario "$tool" "$s" "$n" "$r"
        read -r all med pubx dlx ok times <<<"$OUT"
        extra=""
        if [[ $tool == lode && $r == "$REPS" ]]; then
          read -r jsent jpub jdl jmiss <<<"$(json_sums "$B/run-$tool-$s-$n-$r" "$n")"
          if [[ $jsent != - ]]; then
            extra=" json: downloaders sent $(awk -v a="$jsent" -v b="$size" 'BEGIN { printf "%.2f", a / b }')×, received from publisher $(awk -v a="$jpub" -v b="$size" 'BEGIN { printf "%.2f", a / b }')×, from downloaders $(awk -v a="$jdl" -v b="$size" 'BEGIN { printf "%.2f", a / b }')× (reports missing: $jmiss)"
          fi
        fi
        tag=$([[ $r == 0 ]] && echo warm-up || echo "round $r")
        read -r cpus busy <<<"$CPU"
        say "$s N=$n $tool $tag: all done ${all}s, median ${med}s, publisher ${pubx}×, downloaders ${dlx}×, CPU ${cpus}s, machine busy $busy$extra"
        LINES+=("| $s | $n | $tool | $tag | $all | $med | $pubx | $dlx | $cpus | $busy | $load | ${times// / } |$extra")
        if (( r > 0 )); then
          RAW[$s,$n,$tool,all]+="$all "; RAW[$s,$n,$tool,med]+="$med "
          RAW[$s,$n,$tool,pub]+="$pubx "; RAW[$s,$n,$tool,dl]+="$dlx "
          RAW[$s,$n,$tool,cpu]+="$cpus "
        fi
      done
    done
  done
done

# Loopback: one clone of LOOP_SIZE alone, unshaped, whole process, shared vs --no-share.
LOOPLINES=()
declare -A LOOPT
if [[ -n $LOOP_SIZE ]]; then
  say "loopback: generating $LOOP_SIZE"
  LODE_HOME=$B/owner "$LODE" init -q "$B/ds-loop" >/dev/null
  head -c "$(bytes "$LOOP_SIZE")" /dev/urandom >"$B/ds-loop/big.bin"
  LODE_HOME=$B/owner "$LODE" -C "$B/ds-loop" add -q .
  LODE_HOME=$B/owner "$LODE" -C "$B/ds-loop" commit -q -m data
  LODE_HOME=$B/owner LODE_BIND=127.0.0.1:0 "$LODE" serve -q "$B/ds-loop" >"$B/loop-serve.out" 2>"$B/loop-serve.err" &
  PIDS+=("$!"); LSERVE=$!
  for _ in $(seq 1 400); do grep -q '^ticket: ' "$B/loop-serve.out" 2>/dev/null && break; nap 0.05; done
  LT=$(sed -n 's/^ticket: //p' "$B/loop-serve.out" | head -1)
  [[ -n $LT ]] || die "loopback serve did not start: $(cat "$B/loop-serve.err")"
  loop_run() {  # loop_run BIN ARGS... -> seconds (whole clone process)
    local bin=$1; shift
    local dest=$B/loop-dest
    rm -rf "$dest"
    local t0=$EPOCHREALTIME
    LODE_HOME=$B/loop-client LODE_BIND=127.0.0.1:0 timeout 300 "$bin" clone -q "$@" "$LT" "$dest" \
      >/dev/null 2>"$B/loop-clone.err" || { echo fail; return; }
    local t1=$EPOCHREALTIME
    cmp -s "$dest/big.bin" "$B/ds-loop/big.bin" || { echo fail; return; }
    rm -rf "$dest"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
  }
  kinds=(share no-share); [[ -n $OLD ]] && kinds+=(pre-swarm)
  for r in $(seq 0 "$LOOP_REPS"); do
    order=("${kinds[@]}"); (( r % 2 )) && order=($(printf '%s\n' "${kinds[@]}" | tac))
    for kind in "${order[@]}"; do
      case $kind in
        share) t=$(loop_run "$LODE") ;;
        no-share) t=$(loop_run "$LODE" --no-share) ;;
        pre-swarm) t=$(loop_run "$OLD") ;;
      esac
      say "loopback $LOOP_SIZE $kind round $r: ${t}s"
      (( r > 0 )) && LOOPT[$kind]+="$t "
    done
  done
  stop "$LSERVE"
fi

{
  echo "# Swarm: publisher + N downloaders vs BitTorrent ($(date -u +%Y-%m-%d\ %H:%M) UTC)"
  echo
  echo "\`$(basename "$SCRIPT_PATH")\` with SIZES=\"$SIZES\" NS=\"$NS\" REPS=$REPS RATE=$RATE LODE_SEED=$LODE_SEED."
  echo "Every peer in its own network namespace, uplink shaped to $RATE (tc tbf, burst 32kb,"
  echo "latency 400ms); opentracker on the bridge, unshaped. Times in seconds from the launch"
  echo "of the downloaders; publisher / downloaders sent = veth tx bytes over the file size;"
  echo "CPU s = CPU time (user + system) of the publisher and all downloaders from the launch to"
  echo "the instant all were done; machine busy = share of both cores busy (all processes) then."
  echo "$("$LODE" --version 2>/dev/null || echo "lode ?") (sha256 $(sha256sum "$LODE" | cut -c1-12)); $(aria2c --version | head -1); $(nproc) cores."
  echo
  echo "## Medians (of $REPS rounds$( ((WARMUP)) && echo ' after a warm-up'))"
  echo
  echo "| size | N | tool | all done | median peer done | publisher sent | downloaders sent | CPU s | all-done runs |"
  echo "|---|---:|---|---:|---:|---:|---:|---:|---|"
  for s in $SIZES; do
    for n in "${SCEN[@]}"; do
      for tool in lode aria2c; do
        a=${RAW[$s,$n,$tool,all]:-}
        ma=$(printf '%s\n' $a | grep -E '^[0-9.]+$' | median || true)
        nf=$(printf '%s\n' $a | grep -vcE '^[0-9.]+$' || true)
        [[ $nf != 0 ]] && ma="$ma ($nf failed)"
        mm=$(printf '%s\n' ${RAW[$s,$n,$tool,med]:-} | grep -E '^[0-9.]+$' | median || true)
        mp=$(printf '%s\n' ${RAW[$s,$n,$tool,pub]:-} | median)
        md=$(printf '%s\n' ${RAW[$s,$n,$tool,dl]:-} | median)
        mc=$(printf '%s\n' ${RAW[$s,$n,$tool,cpu]:-} | median)
        echo "| $s | $n | $tool | $ma | $mm | ${mp}× | ${md}× | $mc | $a|"
      done
    done
  done
  echo
  echo "## Every run"
  echo
  echo "| size | N | tool | round | all done | median | publisher × | downloaders × | CPU s | machine busy | load (1/5/15 min) | per-downloader done (s) |"
  echo "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---|---|"
  printf '%s\n' "${LINES[@]}"
  if [[ -n $LOOP_SIZE ]]; then
    echo
    echo "## One clone of $LOOP_SIZE alone, unshaped loopback (whole process, median of $LOOP_REPS)"
    echo
    echo "| clone | median | runs |"
    echo "|---|---:|---|"
    for kind in share no-share pre-swarm; do
      [[ -n ${LOOPT[$kind]:-} ]] || continue
      echo "| $kind | $(printf '%s\n' ${LOOPT[$kind]} | grep -E '^[0-9.]+$' | median) | ${LOOPT[$kind]}|"
    done
  fi
} >"$RESULTS.tmp"
mv "$RESULTS.tmp" "$RESULTS"
cat "$RESULTS"
