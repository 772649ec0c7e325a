#!/usr/bin/env bash
# Sync benchmark: lode clone / pull / push vs sendme, aria2c (BitTorrent) and rsync, all peers
# on 127.0.0.1 of this machine.
#
#   bench/sync.sh                                  # full size (1 GiB file, 10,000 files)
#   A_SIZE=256M B_FILES=1000 REPS=1 bench/sync.sh  # quick proof run
#
# Safety: the whole run happens inside ONE network namespace that has only the loopback
# interface. The script re-executes itself under `unshare -n` (needs root / CAP_SYS_ADMIN)
# unless it already runs in a namespace whose only interface is `lo`, then brings `lo` up and
# refuses to go on if any other interface, address or route exists. sendme (whose defaults
# send DNS/pkarr traffic to public resolvers) and aria2c therefore cannot reach anything but
# 127.0.0.1. Nothing is downloaded: all data is generated from /dev/urandom.
#
# Environment knobs:
#   LODE_BIN      lode binary (default: target/release/lode of this repo; never built here). It and
#                 sendme are copied into BENCH_DIR at start, so a rebuild mid-run changes nothing
#   SENDME        sendme binary (default: ~/.cargo/bin/sendme, else PATH); rows skipped if absent
#   BENCH_DIR     scratch dir, wiped at start (default /tmp/lode-bench-sync; outside the repo)
#   REPS          recorded rounds per scenario (default 3); one extra warm-up round first
#   PULL_REPS     recorded rounds of the up-to-date pull (default max(10, 2*REPS))
#   PUSH_REPS     recorded pushes (default REPS)
#   A_SIZE        scenario A file size, as understood by `head -c` (default 1G)
#   B_FILES       number of 64 KiB files in scenario B (default 10000, 100 per directory)
#   SCENARIOS     comma list of A,B,C,D,E (default all; C needs A and B's lode rows, D needs B's)
#   TOOLS         only these transfer rows: lode,lode-link,sendme,aria2c,rsync (default: all
#                 installed; lode-link is `lode clone --link`, files hard-linked from the store)
#   VERIFY        1 (default): compare every received copy with the source (untimed)
#   DEFER_RM      scenarios whose run destinations are deleted only after their last round
#                 (default B; 1 = all, 0 = none); others delete each right after its run. On this VM's ext4, creating files
#                 right after thousands were deleted is several times slower (the inode
#                 allocator skips recently freed inodes: `recently_deleted` in `perf`), which with
#                 0 makes every run pay for the previous run's deletion, in proportion to the
#                 files it creates (lode creates two per file: object + working copy)
#   SETTLE        seconds a timed run of scenario B waits after the harness last deleted files
#                 (default 361; 0 = never wait). ext4 without a journal (this VM's /tmp) skips
#                 inodes freed less than 60 s ago, or 360 s while their inode-table block is
#                 dirty (which the run's own creates make it), and scans them on every create:
#                 a run after a deletion pays for it in proportion to the files it creates and
#                 the inodes freed (`sendme receive` deletes its temp store, a file per blob; a
#                 deleted lode clone of scenario A frees its 256 object directories; the
#                 harness deletes deferred destinations and the previous bench dir). A
#                 10,000-file lode clone took 5.3 s instead of 3.3 s after six deleted 1 GiB
#                 clones (bench/floor.sh, trial). The wait is untimed
#   RUN_TIMEOUT   seconds before one timed command is killed (default 900)
#   MAX_SECONDS   time budget for the whole run; later rounds are skipped past it (default 7200)
#   IPERF_SECONDS length of one iperf3 run (default 3)
#   RESULTS       markdown output file (default bench/results-sync.md next to this script)
#
# Method (as bench/local.sh): rows run round-robin with a rotating start (A B C D / B C D A /
# ...), round 0 is a warm-up and is not recorded, medians are reported (this VM's timings are
# bimodal). Every timed run writes into a fresh, empty destination; servers (lode serve,
# sendme send, the aria2c seeder, the rsync daemon, the tracker) are started once per scenario,
# untimed, and stay up across rounds. Wall time is taken with bash's $EPOCHREALTIME around
# `/usr/bin/time -f %M bash -c CMD` (whole client process, including start-up and writing the
# files); the peak RSS of the servers is their VmHWM read from /proc just before they stop.
set -euo pipefail
export LC_ALL=C

SCRIPT_PATH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
SCRIPT_DIR=$(dirname "$SCRIPT_PATH")
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)

say() { printf '[sync %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# ---------------------------------------------------------------- network namespace
only_loopback_links() {  # true when the only network interface is lo
  local links
  links=$(ip -o link show 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | sort -u | tr '\n' ' ')
  [[ $links == "lo " ]]
}
command -v ip >/dev/null || die "ip (iproute2) is required"
if ! only_loopback_links; then
  [[ ${LODE_SYNC_NETNS:-} == 1 ]] && die "inside the new namespace but interfaces other than lo exist"
  command -v unshare >/dev/null || die "unshare (util-linux) is required"
  say "re-executing in a new network namespace (unshare -n): loopback only"
  exec unshare -n -- env LODE_SYNC_NETNS=1 bash "$SCRIPT_PATH" "$@"
fi
ip link set lo up || die "cannot bring lo up"
only_loopback_links || die "network namespace has interfaces other than lo"
bad_addr=$(ip -o addr show | awk '{ print $4 }' | grep -v -E '^(127\.0\.0\.1/8|::1/128)$' || true)
[[ -z $bad_addr ]] || die "unexpected addresses in the namespace: $bad_addr"
bad_route=$(ip -4 route show table main; ip -6 route show table main | grep -v -E '^::1 ' || true)
[[ -z $bad_route ]] || die "unexpected routes in the namespace: $bad_route"
NETNS=$(readlink /proc/self/ns/net)
say "network namespace $NETNS: only lo (127.0.0.1, ::1) is up"

# ---------------------------------------------------------------- knobs
REPS=${REPS:-3}
PULL_REPS=${PULL_REPS:-$(( 2 * REPS > 10 ? 2 * REPS : 10 ))}
PUSH_REPS=${PUSH_REPS:-$REPS}
A_SIZE=${A_SIZE:-1G}
B_FILES=${B_FILES:-10000}
B_FILE_SIZE=65536
B_PER_DIR=100
VERIFY=${VERIFY:-1}
DEFER_RM=${DEFER_RM:-B}
SETTLE=${SETTLE:-361}
LAST_RM=0   # epoch seconds of the harness's last deletion (after its sync)
deleted() { sync; LAST_RM=$(date +%s); }
remove() { rm -rf -- "$@"; deleted; }   # every deletion of the harness goes through here
settle() {  # waits (untimed) until SETTLE seconds have passed since the last deletion
  local wait=$(( LAST_RM + SETTLE - $(date +%s) ))
  (( wait > 0 )) || return 0
  say "waiting ${wait}s: files were deleted less than ${SETTLE}s ago (see SETTLE)"
  sleep "$wait"
}
defers() {  # scen -> are its destinations deleted at the end of the scenario?
  [[ $DEFER_RM == 1 || ",$DEFER_RM," == *",$1,"* ]]
}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}
MAX_SECONDS=${MAX_SECONDS:-7200}
IPERF_SECONDS=${IPERF_SECONDS:-3}
BENCH_DIR=${BENCH_DIR:-/tmp/lode-bench-sync}
RESULTS=${RESULTS:-$SCRIPT_DIR/results-sync.md}
SCENARIOS=",${SCENARIOS:-A,B,C,D,E},"
TOOLS=${TOOLS:-}
RSYNC_PORT=8730
TRACKER_PORT=6969
ARIA_SEED_PORT=6881
ARIA_LEECH_PORT=6891
IPERF_PORT=5201
START_EPOCH=${EPOCHSECONDS:-$(date +%s)}
for v in REPS PULL_REPS PUSH_REPS B_FILES RUN_TIMEOUT MAX_SECONDS IPERF_SECONDS; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
(( REPS >= 1 && B_FILES >= 1 )) || die "REPS and B_FILES must be at least 1"

# lode: loopback only, no relay, no address lookup (read by lode's clap options)
export LODE_BIND=127.0.0.1:0 LODE_RELAY=disabled LODE_NO_DISCOVERY=true

# ---------------------------------------------------------------- binaries
LODE_BIN=${LODE_BIN:-$REPO_DIR/target/release/lode}
[[ -x $LODE_BIN ]] || LODE_BIN=$(command -v "$LODE_BIN" || true)
[[ -n $LODE_BIN && -x $LODE_BIN ]] || die "lode binary not found (build it first; this script never runs cargo)"
LODE_BIN=$(cd "$(dirname "$LODE_BIN")" && pwd)/$(basename "$LODE_BIN")
SENDME=${SENDME:-$HOME/.cargo/bin/sendme}
[[ -x $SENDME ]] || SENDME=$(command -v sendme || true)
have() { command -v "$1" >/dev/null 2>&1; }
TIME_BIN=/usr/bin/time
"$TIME_BIN" -f %M -o /dev/null true 2>/dev/null || die "$TIME_BIN (GNU time) is required"
have jq || die "jq is required (JSON output of lode and iperf3)"
HAVE_SENDME=0; [[ -n $SENDME && -x $SENDME ]] && HAVE_SENDME=1
HAVE_ARIA=0; have aria2c && have python3 && HAVE_ARIA=1
HAVE_MKTORRENT=0; have mktorrent && HAVE_MKTORRENT=1
HAVE_RSYNC=0; have rsync && HAVE_RSYNC=1
HAVE_IPERF=0; have iperf3 && HAVE_IPERF=1
[[ $HAVE_SENDME == 1 ]] || say "sendme not found (~/.cargo/bin/sendme or PATH): skipping its rows"
[[ $HAVE_ARIA == 1 ]] || say "aria2c or python3 (local tracker) not found: skipping aria2c rows"
[[ $HAVE_ARIA == 0 || $HAVE_MKTORRENT == 1 ]] || { say "mktorrent not found: skipping aria2c rows"; HAVE_ARIA=0; }
[[ $HAVE_RSYNC == 1 ]] || say "rsync not found: skipping its rows"
[[ $HAVE_IPERF == 1 ]] || say "iperf3 not found: skipping scenario E"

want() {  # transfer row -> selected and installed?
  local r=$1
  if [[ -n $TOOLS && ",$TOOLS," != *",$r,"* ]]; then return 1; fi
  case $r in
    sendme) [[ $HAVE_SENDME == 1 ]];;
    aria2c) [[ $HAVE_ARIA == 1 ]];;
    rsync) [[ $HAVE_RSYNC == 1 ]];;
    *) return 0;;
  esac
}

# ---------------------------------------------------------------- work dir
case "$(cd "$(dirname "$BENCH_DIR")" 2>/dev/null && pwd)/" in
  "$REPO_DIR"/*) die "BENCH_DIR must be outside the repository ($REPO_DIR)";;
esac
[[ $BENCH_DIR == / || -z $BENCH_DIR ]] && die "refusing BENCH_DIR=$BENCH_DIR"
if [[ -e $BENCH_DIR ]]; then remove "$BENCH_DIR"; fi
mkdir -p "$BENCH_DIR"/{data,srv,run,tmp,home/server,home/client}
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
H1=$BENCH_DIR/home/server   # LODE_HOME of the serving peer
H2=$BENCH_DIR/home/client   # LODE_HOME of the cloning peer (another device identity)
LOG=$BENCH_DIR/commands.log
RAW=$BENCH_DIR/raw.tsv
SRVRAW=$BENCH_DIR/servers.tsv
: >"$LOG"; : >"$RAW"; : >"$SRVRAW"
RSS_OUT=$BENCH_DIR/tmp/rss.out
XOUT=$BENCH_DIR/tmp/cmd.stdout
# Freeze the binaries: a rebuild or reinstall during the run must not mix two versions.
mkdir -p "$BENCH_DIR/bin"
LODE_SRC=$LODE_BIN
LODE_MTIME=$(date -u -r "$LODE_SRC" '+%Y-%m-%d %H:%M:%S UTC')
cp "$LODE_SRC" "$BENCH_DIR/bin/lode"
LODE_BIN=$BENCH_DIR/bin/lode
"$LODE_BIN" --version >/dev/null 2>&1 || die "copied lode binary does not run (was $LODE_SRC being rewritten?)"
LODE_SHA=$(sha256sum "$LODE_BIN" | cut -c1-16)
if [[ $HAVE_SENDME == 1 ]]; then
  cp "$SENDME" "$BENCH_DIR/bin/sendme"; SENDME=$BENCH_DIR/bin/sendme
  "$SENDME" --version >/dev/null 2>&1 || die "copied sendme binary does not run"
fi
export LODE_BIN SENDME H1 H2 XOUT RSYNC_PORT
declare -A FAILED=() NOTES=()
note() { NOTES[$1]=$2; say "note: $2"; }

# ---------------------------------------------------------------- background processes
declare -A BG_PID=()
cleanup() {
  local name pid i
  for name in "${!BG_PID[@]}"; do
    pid=${BG_PID[$name]}
    kill -TERM "$pid" 2>/dev/null || continue
  done
  for name in "${!BG_PID[@]}"; do
    pid=${BG_PID[$name]}
    for (( i = 0; i < 50; i++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  BG_PID=()
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# start_bg NAME DIR CMD... : CMD runs in DIR (exec'd, so $! is its pid); stdout/stderr in srv/NAME.{out,err}
start_bg() {
  local name=$1 dir=$2; shift 2
  printf '### start %s in %s: %s\n' "$name" "$dir" "$*" >>"$LOG"
  : >"$BENCH_DIR/srv/$name.out"   # exists before the first poll for a ticket
  ( cd "$dir" && exec "$@" ) >"$BENCH_DIR/srv/$name.out" 2>"$BENCH_DIR/srv/$name.err" </dev/null &
  BG_PID[$name]=$!
}
alive() { [[ -n ${BG_PID[$1]:-} ]] && kill -0 "${BG_PID[$1]}" 2>/dev/null; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo -; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
idle_cpu_pct() {  # CPU use of an idle server over 1 s, in % of one core
  local pid=${BG_PID[$1]} a b hz
  hz=$(getconf CLK_TCK)
  a=$(cpu_ticks "$pid"); sleep 1; b=$(cpu_ticks "$pid")
  awk -v a="$a" -v b="$b" -v hz="$hz" 'BEGIN { printf "%.0f", (b - a) * 100 / hz }'
}
# stop_bg NAME [SIGNAL] : signal, wait (at most 10 s), then SIGKILL
stop_bg() {
  local name=$1 sig=${2:-TERM} pid i
  pid=${BG_PID[$name]:-}
  [[ -n $pid ]] || return 0
  kill -"$sig" "$pid" 2>/dev/null || true
  for (( i = 0; i < 100; i++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name did not stop on SIG$sig within 10 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  unset "BG_PID[$name]"
}
# record a server's VmHWM and idle CPU (scenario, name); call while it runs
record_server() {
  local scen=$1 name=$2 label=$3
  alive "$name" || { printf '%s\t%s\t-\t-\n' "$scen" "$label" >>"$SRVRAW"; return 0; }
  printf '%s\t%s\t%s\t%s\n' "$scen" "$label" "$(hwm_kib "${BG_PID[$name]}")" "${IDLE_CPU[$name]:--}" >>"$SRVRAW"
}
declare -A IDLE_CPU=()
# wait_for NAME SECONDS TEST... : poll TEST every 0.1 s while NAME is alive, at most SECONDS
wait_for() {
  local name=$1 secs=$2 i; shift 2
  for (( i = 0; i < secs * 10; i++ )); do
    "$@" && return 0
    if [[ -n $name ]] && ! alive "$name"; then return 1; fi
    sleep 0.1
  done
  return 1
}
port_listening() { ss -Hlnt "sport = :$1" 2>/dev/null | grep -q .; }

# ---------------------------------------------------------------- data
A_FILE=$BENCH_DIR/data/big.bin
B_SRC=$BENCH_DIR/data/small
export A_FILE B_SRC
if [[ $SCENARIOS == *,A,* ]]; then
  say "generating scenario A file ($A_SIZE random bytes)"
  head -c "$A_SIZE" /dev/urandom >"$A_FILE"
  A_BYTES=$(stat -c %s "$A_FILE")
fi
if [[ $SCENARIOS == *,B,* ]]; then
  say "generating scenario B tree ($B_FILES x 64 KiB random files, $B_PER_DIR per dir)"
  mkdir -p "$B_SRC"
  left=$B_FILES; d=0
  while (( left > 0 )); do
    n=$(( left < B_PER_DIR ? left : B_PER_DIR ))
    dp=$(printf '%s/d%04d' "$B_SRC" "$d")
    mkdir "$dp"
    head -c $(( n * B_FILE_SIZE )) /dev/urandom | split -b "$B_FILE_SIZE" -a 3 -d --additional-suffix=.bin - "$dp/f"
    left=$(( left - n )); d=$(( d + 1 ))
  done
  got=$(find "$B_SRC" -type f | wc -l)
  [[ $got == "$B_FILES" ]] || die "generated $got files, wanted $B_FILES"
  B_BYTES=$(( B_FILES * B_FILE_SIZE ))
fi
sync
fingerprint() {
  {
    if [[ -e $A_FILE ]]; then stat -c '%n %s %Y' "$A_FILE"; fi
    if [[ -d $B_SRC ]]; then find "$B_SRC" -type f -printf '%p %s %T@\n' | sort; fi
  } | cksum
}
FP_BEFORE=$(fingerprint)

# ---------------------------------------------------------------- timing
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }
now() { printf '%s' "${EPOCHREALTIME:-$(date +%s.%N)}"; }
# timed DIR CMD : sets T (s) and RSS (KiB); the command's stdout goes to $XOUT
timed() {
  local dir=$1 cmd=$2 t0 t1 rc=0
  rm -f "$RSS_OUT"; : >"$XOUT"
  t0=$(now)
  (cd "$dir" && exec timeout -k 5 "$RUN_TIMEOUT" "$TIME_BIN" -f %M -o "$RSS_OUT" bash -c "$cmd") \
    >"$XOUT" 2>>"$LOG" </dev/null || rc=$?
  t1=$(now)
  RSS=$(tail -n 1 "$RSS_OUT" 2>/dev/null || echo -)
  [[ $RSS =~ ^[0-9]+$ ]] || RSS=-
  T=$(elapsed "$t0" "$t1")
  (( rc != 124 )) || say "timed out after ${RUN_TIMEOUT}s: $cmd"
  return "$rc"
}
over_budget() { (( ${EPOCHSECONDS:-$(date +%s)} - START_EPOCH > MAX_SECONDS )); }

# ---------------------------------------------------------------- servers
RSYNC_CONF=$BENCH_DIR/srv/rsyncd.conf
start_rsyncd() {
  cat >"$RSYNC_CONF" <<EOF
port = $RSYNC_PORT
address = 127.0.0.1
use chroot = no
uid = root
gid = root
max connections = 8
lock file = $BENCH_DIR/srv/rsyncd.lock
log file = $BENCH_DIR/srv/rsyncd.log
[mod]
path = $BENCH_DIR/data
read only = yes
EOF
  start_bg rsyncd "$BENCH_DIR/srv" rsync --daemon --no-detach --config="$RSYNC_CONF"
  wait_for rsyncd 20 port_listening "$RSYNC_PORT" || { note rsyncd "rsync daemon did not start (see srv/rsyncd.err)"; return 1; }
}

TRACKER=$BENCH_DIR/srv/tracker.py
TRACKER_STATE=$BENCH_DIR/srv/tracker.state
start_tracker() {
  cat >"$TRACKER" <<'EOF'
"""Minimal BitTorrent HTTP tracker for a loopback benchmark: compact peer lists, no scrape."""
import os, socket, struct, sys, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST, PORT, STATE = sys.argv[1], int(sys.argv[2]), sys.argv[3]
swarms = {}  # info_hash -> {peer_id: (ip, port, left, last_seen)}
lock = threading.Lock()

def benc(x):
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, bytes):
        return b"%d:%s" % (len(x), x)
    if isinstance(x, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in x.items())
        return b"d" + b"".join(benc(k) + benc(v) for k, v in items) + b"e"
    raise TypeError(type(x))

def dump():
    tmp = STATE + ".tmp"
    with open(tmp, "w") as f:
        for ih, peers in swarms.items():
            for ip, port, left, _ in peers.values():
                f.write(f"{ih.hex()} {ip} {port} {left}\n")
    os.replace(tmp, STATE)

class Announce(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, d):
        body = benc(d)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query, keep_blank_values=True, encoding="latin-1")
        one = lambda k, d=None: q[k][0] if k in q else d
        if url.path != "/announce" or not all(k in q for k in ("info_hash", "peer_id", "port")):
            return self.reply({"failure reason": "bad announce"})
        ih, pid = one("info_hash").encode("latin-1"), one("peer_id").encode("latin-1")
        port, left, event = int(one("port")), int(one("left", "0") or 0), one("event", "")
        now = time.time()
        with lock:
            swarm = swarms.setdefault(ih, {})
            for k in [k for k, v in swarm.items() if now - v[3] > 60]:
                del swarm[k]
            if event == "stopped":
                swarm.pop(pid, None)
            else:
                swarm[pid] = (self.client_address[0], port, left, now)
            peers = b"".join(socket.inet_aton(v[0]) + struct.pack(">H", v[1])
                             for k, v in swarm.items() if k != pid)
            seeds = sum(1 for v in swarm.values() if v[2] == 0)
            dump()
        self.reply({"interval": 2, "min interval": 1, "complete": seeds,
                    "incomplete": len(swarm) - seeds, "peers": peers})

ThreadingHTTPServer((HOST, PORT), Announce).serve_forever()
EOF
  : >"$TRACKER_STATE"
  start_bg tracker "$BENCH_DIR/srv" python3 "$TRACKER" 127.0.0.1 "$TRACKER_PORT" "$TRACKER_STATE"
  wait_for tracker 20 port_listening "$TRACKER_PORT" || { note tracker "local tracker did not start (see srv/tracker.err)"; return 1; }
}

ARIA_COMMON=(--no-conf=true --enable-dht=false --enable-dht6=false --bt-enable-lpd=false
  --enable-peer-exchange=false --disable-ipv6=true --console-log-level=warn --summary-interval=0
  --bt-save-metadata=false --file-allocation=none --auto-file-renaming=false --stop-with-process=$$)
export ARIA_LEECH_OPTS="${ARIA_COMMON[*]} --seed-time=0 --listen-port=$ARIA_LEECH_PORT --bt-stop-timeout=$RUN_TIMEOUT --download-result=hide"

torrent_piece_exp() {  # about 1000-4000 pieces: 2^18 (256 KiB) .. 2^24 (16 MiB)
  awk -v s="$1" 'BEGIN { e = 18; while (e < 24 && s / 2^e > 4000) e++; print e }'
}

# start_aria_seed SCEN PATH : makes srv/SCEN.torrent and seeds PATH (hard-linked copy) from srv/aria-SCEN
start_aria_seed() {
  local scen=$1 path=$2 name ih e size
  name=$(basename "$path")
  size=$(du -sb "$path" | cut -f1)
  e=$(torrent_piece_exp "$size")
  TORRENT[$scen]=$BENCH_DIR/srv/$scen.torrent
  mktorrent -a "http://127.0.0.1:$TRACKER_PORT/announce" -l "$e" -d -o "${TORRENT[$scen]}" "$path" >>"$LOG" 2>&1 \
    || { note "aria-$scen" "mktorrent failed for scenario $scen"; return 1; }
  ih=$(aria2c -S "${TORRENT[$scen]}" 2>/dev/null | awk '/^Info Hash:/ { print $3 }')
  mkdir -p "$BENCH_DIR/srv/aria-$scen"
  cp -al "$path" "$BENCH_DIR/srv/aria-$scen/$name"
  start_bg "aria-seed-$scen" "$BENCH_DIR/srv/aria-$scen" aria2c "${ARIA_COMMON[@]}" -V --seed-ratio=0.0 \
    --listen-port="$ARIA_SEED_PORT" --dir=. "${TORRENT[$scen]}"
  # ready when the tracker has seen the seeder announce with nothing left to download
  seeded() { grep -q "^$ih .* $ARIA_SEED_PORT 0\$" "$TRACKER_STATE"; }
  if ! wait_for "aria-seed-$scen" 300 seeded; then
    note "aria-$scen" "aria2c seeder for $scen not ready (see srv/aria-seed-$scen.{out,err})"
    stop_bg "aria-seed-$scen"; return 1
  fi
  say "aria2c seeding $scen (piece 2^$e bytes, info hash $ih)"
  IDLE_CPU[aria-seed-$scen]=$(idle_cpu_pct "aria-seed-$scen")
}

# start_lode_serve SCEN PATH : repository srv/lode-SCEN holding PATH (hard-linked), committed, served
start_lode_serve() {
  local scen=$1 path=$2 dir=$BENCH_DIR/srv/lode-$scen t0
  mkdir -p "$dir"
  cp -al "$path" "$dir/"
  t0=$(now)
  if ! (cd "$dir" && export LODE_HOME=$H1 && "$LODE_BIN" init . && "$LODE_BIN" --no-progress add . \
        && "$LODE_BIN" commit -m x) >>"$LOG" 2>&1; then
    note "lode-$scen" "lode init/add/commit failed for scenario $scen"; return 1
  fi
  say "lode repository for $scen committed in $(elapsed "$t0" "$(now)")s (untimed)"
  start_bg "lode-serve-$scen" "$dir" env LODE_HOME="$H1" "$LODE_BIN" serve
  got_ticket() { grep -q '^ticket: ' "$BENCH_DIR/srv/lode-serve-$scen.out"; }
  if ! wait_for "lode-serve-$scen" 60 got_ticket; then
    note "lode-$scen" "lode serve printed no ticket for $scen (see srv/lode-serve-$scen.err)"
    stop_bg "lode-serve-$scen"; return 1
  fi
  LODE_TICKET[$scen]=$(grep -m1 '^ticket: ' "$BENCH_DIR/srv/lode-serve-$scen.out" | cut -d' ' -f2)
  IDLE_CPU[lode-serve-$scen]=$(idle_cpu_pct "lode-serve-$scen")
}

SENDME_SEND_FLAGS=() SENDME_RECV_FLAGS=()
sendme_flags() {
  local help
  help=$("$SENDME" send --help 2>&1 || true)
  if grep -q -- '--relay' <<<"$help"; then SENDME_SEND_FLAGS+=(--relay disabled); SENDME_RECV_FLAGS+=(--relay disabled)
  else note sendme-relay "sendme has no --relay flag: relay could not be disabled (namespace still blocks it)"; fi
  if grep -q -- '--no-progress' <<<"$help"; then SENDME_SEND_FLAGS+=(--no-progress); SENDME_RECV_FLAGS+=(--no-progress); fi
  if [[ -n ${SENDME_TICKET_TYPE:-} ]]; then SENDME_SEND_FLAGS+=(--ticket-type "$SENDME_TICKET_TYPE"); fi
  export SENDME_RECV="${SENDME_RECV_FLAGS[*]}"
}
# start_sendme SCEN PATH : `sendme send PATH` from srv/sendme-SCEN
start_sendme() {
  local scen=$1 path=$2 dir=$BENCH_DIR/srv/sendme-$scen
  mkdir -p "$dir"
  start_bg "sendme-$scen" "$dir" "$SENDME" send "${SENDME_SEND_FLAGS[@]}" "$path"
  got_ticket() { grep -q 'receive [A-Za-z0-9]' "$BENCH_DIR/srv/sendme-$scen.out"; }
  if ! wait_for "sendme-$scen" 300 got_ticket; then
    note "sendme-$scen" "sendme send printed no ticket for $scen (see srv/sendme-$scen.{out,err})"
    stop_bg "sendme-$scen" INT; return 1
  fi
  SENDME_TICKET[$scen]=$(sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$BENCH_DIR/srv/sendme-$scen.out" \
    | grep -m1 -o 'receive [A-Za-z0-9]*' | cut -d' ' -f2)
  local cpu
  cpu=$(idle_cpu_pct "sendme-$scen")
  IDLE_CPU[sendme-$scen]=$cpu
  (( cpu < 30 )) || note "sendme-busy-$scen" \
    "idle sendme sender uses $cpu% CPU in $scen (keyboard loop without a TTY?): its rows compete for the CPU"
}

declare -A TORRENT=() LODE_TICKET=() SENDME_TICKET=()

# ---------------------------------------------------------------- transfer rows
# Each row: a command run in a fresh dir run/SCEN-ROW-ROUND whose result lands in ./dest/NAME.
declare -A KEEP=()
row_cmd() {  # scen row -> CMD (and PREP: untimed shell run before it in the run dir)
  local scen=$1 row=$2 name
  [[ $scen == A ]] && name=big.bin || name=small
  PREP='mkdir dest'
  case $row in
    lode)
      PREP=':'   # lode clone creates dest itself
      CMD="LODE_HOME=\"\$H2\" \"\$LODE_BIN\" --no-progress clone \"${LODE_TICKET[$scen]}\" dest --json";;
    lode-link)
      PREP=':'
      CMD="LODE_HOME=\"\$H2\" \"\$LODE_BIN\" --no-progress clone --link \"${LODE_TICKET[$scen]}\" dest --json";;
    sendme)
      CMD="cd dest && \"\$SENDME\" receive \$SENDME_RECV \"${SENDME_TICKET[$scen]}\"";;
    aria2c)
      CMD="aria2c \$ARIA_LEECH_OPTS --dir=dest \"${TORRENT[$scen]}\"";;
    rsync)
      CMD="rsync -a \"rsync://127.0.0.1:\$RSYNC_PORT/mod/$name\" dest/";;
  esac
  RESULT=dest/$name
}
verify_copy() {  # scen path
  if [[ $1 == A ]]; then cmp -s "$A_FILE" "$2"
  else diff -rq -x .lode "$B_SRC" "$2" >>"$LOG" 2>&1; fi
}
json_field() { jq -r "$1 // \"-\"" "$XOUT" 2>/dev/null || echo -; }

run_transfer() {  # scen row round
  local scen=$1 row=$2 r=$3 key="$1/$2" dir extra=-
  dir=$BENCH_DIR/run/$scen-$row-$r
  mkdir -p "$dir"
  row_cmd "$scen" "$row"
  printf '\n### %s round %s: prep: %s\n### timed: %s\n' "$key" "$r" "$PREP" "$CMD" >>"$LOG"
  (cd "$dir" && bash -c "$PREP") >>"$LOG" 2>&1
  sync
  [[ $scen == B ]] && settle
  if ! timed "$dir" "$CMD"; then
    FAILED[$key]="command failed (round $r)"
    say "FAILED $key round $r; see $LOG"; tail -n 5 "$LOG" >&2
    remove "$dir"; return 0
  fi
  cat "$XOUT" >>"$LOG"
  [[ $row == sendme ]] && deleted   # its receive deletes its temp store (a file per blob)
  if [[ $VERIFY == 1 ]] && ! verify_copy "$scen" "$dir/$RESULT"; then
    FAILED[$key]="received copy differs from the source (round $r)"
    say "FAILED $key round $r: copy differs"
    remove "$dir"; return 0
  fi
  if [[ $row == lode ]]; then
    extra="objects=$(json_field .objects);bytes=$(json_field .bytes);seconds=$(json_field .seconds)"
  fi
  local tag=$r; [[ $r == 0 ]] && tag=warmup
  say "$key round $tag: ${T}s rss=${RSS}KiB"
  [[ $r == 0 ]] || printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$row" "$r" "$T" "$RSS" "$extra" >>"$RAW"
  if [[ $r == "$LAST_ROUND" && ( $row == lode || $row == rsync ) ]]; then
    KEEP[$scen/$row]=$dir/dest
  elif defers "$scen"; then
    DEFERRED+=("$dir")
  else
    # even a clone of scenario A counts: its object store has 256 directories
    remove "$dir"
  fi
}
DEFERRED=()
remove_deferred() {  # deletes the destinations kept back during a scenario
  (( ${#DEFERRED[@]} > 0 )) || return 0
  say "removing ${#DEFERRED[@]} destinations of the scenario (DEFER_RM=$DEFER_RM)"
  remove "${DEFERRED[@]}"; DEFERRED=()
}

# Other users' work on this shared machine (a build, another benchmark, a big rm) inflates
# timings. Before every timed run, sample the CPU time of all user-space processes outside this
# network namespace and name those that used at least 20 % of a core since the previous sample,
# so that the report can flag the scenarios they overlapped. (No forks: `-ef` compares the
# namespace inodes.)
declare -A BUSY=() PREV_TICKS=()
PREV_US=0
CLK_TCK=$(getconf CLK_TCK)
foreign_busy() {
  local f line rest pid fld ticks prev now_us dt_us out=()
  local -A cur=()
  now_us=${EPOCHREALTIME/./}
  dt_us=$(( now_us - PREV_US ))
  for f in /proc/[0-9]*/stat; do
    IFS= read -r line 2>/dev/null <"$f" || continue
    rest=${line##*) }
    read -r -a fld <<<"$rest"   # 0 state, 1 ppid, 11 utime, 12 stime
    [[ ${fld[1]} == 2 || ${fld[1]} == 0 ]] && continue   # kernel threads
    pid=${f#/proc/}; pid=${pid%/stat}
    [[ /proc/$pid/ns/net -ef /proc/self/ns/net ]] && continue
    ticks=$(( fld[11] + fld[12] )); cur[$pid]=$ticks
    (( PREV_US > 0 )) || continue
    prev=${PREV_TICKS[$pid]:-0}
    if (( (ticks - prev) * 5000000 >= dt_us * CLK_TCK )); then
      line=${line#*(}; out+=("${line%)*}")
    fi
  done
  PREV_TICKS=()
  for pid in "${!cur[@]}"; do PREV_TICKS[$pid]=${cur[$pid]}; done
  PREV_US=$now_us
  (( ${#out[@]} )) || return 0
  printf '%s\n' "${out[@]}" | sort -u | tr '\n' ' '
}
mark_busy() {  # scen round
  local b
  foreign_busy >"$BENCH_DIR/tmp/busy"
  b=$(<"$BENCH_DIR/tmp/busy")
  [[ -z $b || $1 == prime || ${BUSY[$1]:-} == *"(before round $2)"* ]] || BUSY[$1]="${BUSY[$1]:-}$b(before round $2) "
}

# round-robin with rotating start; round 0 = warm-up. ROUND_FN scen row round runs one.
run_rounds() {  # scen reps fn rows...
  local scen=$1 reps=$2 fn=$3; shift 3
  local rows=("$@") n=$# r k row
  (( n > 0 )) || { say "scenario $scen: no rows"; return 0; }
  LAST_ROUND=$reps
  say "scenario $scen: rows=${rows[*]} reps=$reps (+1 warm-up), alternated"
  mark_busy prime 0
  for (( r = 0; r <= reps; r++ )); do
    if over_budget; then note "budget-$scen" "time budget MAX_SECONDS=$MAX_SECONDS spent: scenario $scen stopped before round $r"; break; fi
    for (( k = 0; k < n; k++ )); do
      row=${rows[$(( (r + k) % n ))]}
      [[ -n ${FAILED[$scen/$row]:-} ]] && continue
      mark_busy "$scen" "$r"
      "$fn" "$scen" "$row" "$r"
    done
  done
  remove_deferred
}

# scenario C rows: up-to-date pull in a kept clone; rsync of an unchanged tree for reference
run_pull() {  # C row round
  local row=$2 r=$3 key="C/$2" dir cmd extra=-
  case $row in
    pull-A) dir=${KEEP[A/lode]}; cmd='LODE_HOME="$H2" "$LODE_BIN" --no-progress pull --json';;
    pull-B) dir=${KEEP[B/lode]}; cmd='LODE_HOME="$H2" "$LODE_BIN" --no-progress pull --json';;
    rsync-noop-B) dir=${KEEP[B/rsync]}; cmd='rsync -a "rsync://127.0.0.1:$RSYNC_PORT/mod/small" ./';;
  esac
  printf '\n### %s round %s: timed in %s: %s\n' "$key" "$r" "$dir" "$cmd" >>"$LOG"
  if ! timed "$dir" "$cmd"; then
    FAILED[$key]="command failed (round $r)"; say "FAILED $key round $r; see $LOG"; tail -n 5 "$LOG" >&2; return 0
  fi
  cat "$XOUT" >>"$LOG"
  [[ $row == pull-* ]] && extra="objects=$(json_field .objects);bytes=$(json_field .bytes)"
  local tag=$r; [[ $r == 0 ]] && tag=warmup
  say "$key round $tag: ${T}s rss=${RSS}KiB $extra"
  [[ $r == 0 ]] || printf 'C\t%s\t%s\t%s\t%s\t%s\n' "$row" "$r" "$T" "$RSS" "$extra" >>"$RAW"
}

# scenario D: change one 64 KiB file in the kept B clone, commit (untimed), push (timed)
run_push() {  # D push round
  local r=$3 key=D/push dir=${KEEP[B/lode]} f rel extra
  rel=$(cd "$dir" && find small -type f -name '*.bin' | sort | sed -n "$(( r % B_FILES + 1 ))p")
  f=$dir/$rel
  head -c "$B_FILE_SIZE" /dev/urandom >"$f.new" && mv "$f.new" "$f"
  printf '\n### %s round %s: changed %s; add + commit (untimed)\n' "$key" "$r" "$rel" >>"$LOG"
  if ! (cd "$dir" && export LODE_HOME=$H2 && "$LODE_BIN" --no-progress add . && "$LODE_BIN" commit -m y) >>"$LOG" 2>&1; then
    FAILED[$key]="add/commit failed (round $r)"; say "FAILED $key round $r"; return 0
  fi
  sync
  printf '### timed: lode push --json\n' >>"$LOG"
  if ! timed "$dir" 'LODE_HOME="$H2" "$LODE_BIN" --no-progress push --json ${PUSH_CAP:+--ticket "$PUSH_CAP"}'; then
    FAILED[$key]="push failed (round $r)"; say "FAILED $key round $r; see $LOG"; tail -n 5 "$LOG" >&2; return 0
  fi
  cat "$XOUT" >>"$LOG"
  extra="bytes_sent=$(json_field .bytes_sent);objects_sent=$(json_field .objects_sent);file=$B_FILE_SIZE"
  local tag=$r; [[ $r == 0 ]] && tag=warmup
  say "$key round $tag: ${T}s rss=${RSS}KiB $extra"
  [[ $r == 0 ]] || printf 'D\tpush\t%s\t%s\t%s\t%s\n' "$r" "$T" "$RSS" "$extra" >>"$RAW"
  LAST_PUSHED=$rel
}

# scenario E: iperf3, one stream over loopback
run_iperf() {  # E iperf3 round
  local r=$3 bps
  if ! timed "$BENCH_DIR/tmp" "iperf3 -c 127.0.0.1 -p $IPERF_PORT -P 1 -t $IPERF_SECONDS -J"; then
    FAILED[E/iperf3]="iperf3 client failed (round $r)"; return 0
  fi
  bps=$(jq -r '.end.sum_received.bits_per_second // empty' "$XOUT" 2>/dev/null || true)
  [[ -n $bps ]] || { FAILED[E/iperf3]="no iperf3 result (round $r)"; return 0; }
  local tag=$r; [[ $r == 0 ]] && tag=warmup
  say "E/iperf3 round $tag: $(awk -v b="$bps" 'BEGIN { printf "%.2f", b / 8e9 }') GB/s"
  [[ $r == 0 ]] || printf 'E\tiperf3\t%s\t%s\t-\tbps=%s\n' "$r" "$T" "$bps" >>"$RAW"
}

# ---------------------------------------------------------------- harness overhead
ovh=()
for i in 1 2 3 4 5; do timed "$BENCH_DIR/tmp" 'true'; ovh+=("$T"); done
OVERHEAD=$(printf '%s\n' "${ovh[@]}" | sort -g | sed -n 3p)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- run
[[ $HAVE_SENDME == 1 ]] && sendme_flags
if [[ $HAVE_RSYNC == 1 ]] && want rsync && [[ $SCENARIOS == *,[AB],* ]]; then start_rsyncd || HAVE_RSYNC=0; fi
if [[ $HAVE_ARIA == 1 ]] && want aria2c && [[ $SCENARIOS == *,[AB],* ]]; then start_tracker || HAVE_ARIA=0; fi

transfer_scenario() {  # scen path
  local scen=$1 path=$2 rows=() row
  if want lode || want lode-link; then
    if start_lode_serve "$scen" "$path"; then
      want lode && rows+=(lode)
      want lode-link && rows+=(lode-link)
    else FAILED[$scen/lode]="server setup failed"; FAILED[$scen/lode-link]="server setup failed"; fi
  fi
  want sendme && { start_sendme "$scen" "$path" && rows+=(sendme) || FAILED[$scen/sendme]="sender setup failed"; }
  want aria2c && { start_aria_seed "$scen" "$path" && rows+=(aria2c) || FAILED[$scen/aria2c]="seeder setup failed"; }
  want rsync && rows+=(rsync)
  ROWS[$scen]="${rows[*]}"
  run_rounds "$scen" "$REPS" run_transfer "${rows[@]}"
  record_server "$scen" "lode-serve-$scen" "lode serve"
  record_server "$scen" "sendme-$scen" "sendme send"
  record_server "$scen" "aria-seed-$scen" "aria2c seeder"
  # lode serve stays up for the pull (C) and push (D) scenarios
  alive "sendme-$scen" && stop_bg "sendme-$scen" INT
  alive "aria-seed-$scen" && stop_bg "aria-seed-$scen"
  return 0
}
declare -A ROWS=()
[[ $SCENARIOS == *,A,* ]] && transfer_scenario A "$A_FILE"
[[ $SCENARIOS == *,B,* ]] && transfer_scenario B "$B_SRC"

if [[ $SCENARIOS == *,C,* ]]; then
  rows_C=()
  [[ -n ${KEEP[A/lode]:-} ]] && alive lode-serve-A && rows_C+=(pull-A)
  [[ -n ${KEEP[B/lode]:-} ]] && alive lode-serve-B && rows_C+=(pull-B)
  [[ -n ${KEEP[B/rsync]:-} ]] && alive rsyncd && rows_C+=(rsync-noop-B)
  if (( ${#rows_C[@]} )); then run_rounds C "$PULL_REPS" run_pull "${rows_C[@]}"
  else note C "scenario C needs the lode rows of A and/or B: skipped"; fi
fi
if [[ $SCENARIOS == *,D,* ]]; then
  if [[ -n ${KEEP[B/lode]:-} ]] && alive lode-serve-B; then
    # Pushing needs the write right: the owner grants it to the cloning identity (untimed).
    card=$(LODE_HOME=$H2 "$LODE_BIN" id --card)
    export PUSH_CAP
    PUSH_CAP=$(LODE_HOME=$H1 "$LODE_BIN" -C "$BENCH_DIR/srv/lode-B" grant "$card" --write --expires 1d --json | jq -r .ticket)
    [[ $PUSH_CAP == lodecap1* ]] || note D "could not grant the write right for scenario D"
    run_rounds D "$PUSH_REPS" run_push push
    # check that the server now holds the pushed file: fresh clone, compare (untimed)
    if [[ $VERIFY == 1 && -n ${LAST_PUSHED:-} && -z ${FAILED[D/push]:-} ]]; then
      vdir=$BENCH_DIR/run/D-verify
      if (cd "$BENCH_DIR/run" && LODE_HOME=$H2 timeout "$RUN_TIMEOUT" "$LODE_BIN" --no-progress clone \
            "${LODE_TICKET[B]}" D-verify) >>"$LOG" 2>&1 \
         && cmp -s "${KEEP[B/lode]}/$LAST_PUSHED" "$vdir/$LAST_PUSHED"; then
        say "D: a fresh clone from the server has the pushed $LAST_PUSHED"
      else
        FAILED[D/push]="a fresh clone from the server lacks the pushed change"
      fi
      remove "$vdir"
    fi
  else
    note D "scenario D needs the lode row of B: skipped"
  fi
fi
if alive lode-serve-A; then record_server C-D "lode-serve-A" "lode serve A (end)"; stop_bg lode-serve-A TERM; fi
if alive lode-serve-B; then record_server C-D "lode-serve-B" "lode serve B (end)"; stop_bg lode-serve-B TERM; fi
alive rsyncd && stop_bg rsyncd
alive tracker && stop_bg tracker

if [[ $SCENARIOS == *,E,* && $HAVE_IPERF == 1 ]]; then
  start_bg iperf3 "$BENCH_DIR/tmp" iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT"
  if wait_for iperf3 20 port_listening "$IPERF_PORT"; then
    run_rounds E "$REPS" run_iperf iperf3
  else
    note E "iperf3 server did not start"
  fi
  stop_bg iperf3
fi
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

FP_AFTER=$(fingerprint)
[[ $FP_BEFORE == "$FP_AFTER" ]] || note fp "WARNING: source data changed during the run (a tool wrote through a hard link)"

# ---------------------------------------------------------------- statistics
# stats SCEN ROW -> "median min max rss_median n runs"
stats() {
  awk -F'\t' -v s="$1" -v w="$2" '
    function med(a, n,   i, j, t) {
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t }
      return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
    }
    $1 == s && $2 == w {
      n++; t[n] = $4 + 0; runs = runs (n > 1 ? " " : "") sprintf(($4 < 1 ? "%.3f" : "%.2f"), $4)
      if ($5 != "-" && $5 != "") { m++; r[m] = $5 + 0 }
    }
    END {
      if (!n) exit 1
      for (i = 1; i <= n; i++) c[i] = t[i]
      md = med(c, n); mn = c[1]; mx = c[n]
      printf "%.4f %.4f %.4f %s %d %s\n", md, mn, mx, (m ? med(r, m) : "-"), n, runs
    }' "$RAW"
}
# xstat SCEN ROW FIELD -> "median min max" of a key=value field of the extra column
xstat() {
  awk -F'\t' -v s="$1" -v w="$2" -v f="$3" '
    $1 == s && $2 == w {
      k = split($6, kv, ";")
      for (i = 1; i <= k; i++) { split(kv[i], p, "="); if (p[1] == f && p[2] != "-") { n++; v[n] = p[2] + 0 } }
    }
    END {
      if (!n) { print "- - -"; exit }
      for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j+1] = v[j]; v[j+1] = t }
      md = (n % 2) ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2
      printf "%.15g %.15g %.15g\n", md, v[1], v[n]
    }' "$RAW"
}
fmt_s() { awk -v x="$1" 'BEGIN { if (x < 1) printf "%.3f", x; else if (x < 100) printf "%.2f", x; else printf "%.1f", x }'; }
fmt_mib() { [[ $1 == - ]] && { printf -- '-'; return; }; awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
fmt_mbs() { awk -v b="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", b / s / 1e6; else printf "-" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else printf "n/a" }'; }

MD=$BENCH_DIR/results.md
transfer_table() {  # scen title bytes
  local scen=$1 title=$2 bytes=$3 refmed="" row st md mn mx rss n runs
  if st=$(stats "$scen" lode); then refmed=${st%% *}; fi
  {
    printf '\n## %s\n\n' "$title"
    printf '| tool | median s | min s | max s | MB/s (median) | tool / lode | client peak RSS MiB | runs (s) |\n'
    printf '|---|---:|---:|---:|---:|---:|---:|---|\n'
    for row in lode lode-link sendme aria2c rsync; do
      if st=$(stats "$scen" "$row"); then
        read -r md mn mx rss n runs <<<"$st"
        printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$row" "$(fmt_s "$md")" "$(fmt_s "$mn")" \
          "$(fmt_s "$mx")" "$(fmt_mbs "$bytes" "$md")" "$( [[ -n $refmed ]] && ratio "$md" "$refmed" || echo n/a)" \
          "$(fmt_mib "$rss")" "$runs"
      elif [[ -n ${FAILED[$scen/$row]:-} ]]; then
        printf '| %s | FAILED: %s | | | | | | |\n' "$row" "${FAILED[$scen/$row]}"
      elif ! want "$row"; then
        printf '| %s | not run (not installed or not selected) | | | | | | |\n' "$row"
      fi
    done
    if stats "$scen" lode >/dev/null; then
      read -r o _ _ <<<"$(xstat "$scen" lode objects)"
      read -r b _ _ <<<"$(xstat "$scen" lode bytes)"
      read -r s smin smax <<<"$(xstat "$scen" lode seconds)"
      printf '\n`lode clone --json` (medians): %s objects, %s bytes received, transfer %s s (min %s, max %s) as lode reports it.\n' \
        "$o" "$b" "$s" "$smin" "$smax"
    fi
    printf '\nServer side, whole scenario (VmHWM = peak RSS; idle CPU = %% of one core over 1 s before the first client):\n\n'
    printf '| server | peak RSS MiB | idle CPU %% |\n|---|---:|---:|\n'
    awk -F'\t' -v s="$scen" '$1 == s { printf "| %s | %s | %s |\n", $2, ($3 == "-" ? "-" : sprintf("%.0f", $3 / 1024)), $4 }' "$SRVRAW"
  } >>"$MD"
}

pull_table() {
  local row st md mn mx rss n runs b
  {
    printf '\n## Scenario C: up-to-date `lode pull` (nothing to fetch), target < 200 ms\n\n'
    printf '| row | median ms | min ms | max ms | bytes fetched (max) | peak RSS MiB | verdict | runs (s) |\n'
    printf '|---|---:|---:|---:|---:|---:|---|---|\n'
    for row in pull-A pull-B rsync-noop-B; do
      if st=$(stats C "$row"); then
        read -r md mn mx rss n runs <<<"$st"
        b=-; verdict='(reference)'
        if [[ $row == pull-* ]]; then
          read -r _ _ b <<<"$(xstat C "$row" bytes)"
          verdict=$(awk -v m="$md" 'BEGIN { print (m < 0.2 ? "meets target" : "MISSES target") }')
        fi
        printf '| %s | %.0f | %.0f | %.0f | %s | %s | %s | %s |\n' "$row" \
          "$(awk -v x="$md" 'BEGIN { print x * 1000 }')" "$(awk -v x="$mn" 'BEGIN { print x * 1000 }')" \
          "$(awk -v x="$mx" 'BEGIN { print x * 1000 }')" "$b" "$(fmt_mib "$rss")" "$verdict" "$runs"
      elif [[ -n ${FAILED[C/$row]:-} ]]; then
        printf '| %s | FAILED: %s | | | | | | |\n' "$row" "${FAILED[C/$row]}"
      fi
    done
    printf '\npull-A: clone of scenario A (one file); pull-B: clone of scenario B (%s files); rsync-noop-B: `rsync -a` of the unchanged B tree into a complete copy (for scale, not a target).\n' "$B_FILES"
  } >>"$MD"
}

push_table() {
  local st md mn mx rss n runs bs bmin bmax limit verdict
  st=$(stats D push) || { [[ -n ${FAILED[D/push]:-} ]] && printf '\n## Scenario D: push of one changed file\n\nFAILED: %s\n' "${FAILED[D/push]}" >>"$MD"; return 0; }
  read -r md mn mx rss n runs <<<"$st"
  read -r bs bmin bmax <<<"$(xstat D push bytes_sent)"
  limit=$(( B_FILE_SIZE + 65536 ))
  verdict=$(awk -v m="$bmax" -v l="$limit" 'BEGIN { print (m != "-" && m <= l ? "meets target" : "MISSES target") }')
  {
    printf '\n## Scenario D: `lode push` after changing one %s-byte file of %s\n\n' "$B_FILE_SIZE" "$B_FILES"
    printf '| median s | min s | max s | bytes_sent median | bytes_sent max | file size | target (file + 64 KiB) | verdict | peak RSS MiB | runs (s) |\n'
    printf '|---:|---:|---:|---:|---:|---:|---:|---|---:|---|\n'
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(fmt_s "$md")" "$(fmt_s "$mn")" "$(fmt_s "$mx")" \
      "$bs" "$bmax" "$B_FILE_SIZE" "$limit" "$verdict" "$(fmt_mib "$rss")" "$runs"
    [[ -n ${FAILED[D/push]:-} ]] && printf '\nFAILED: %s\n' "${FAILED[D/push]}"
    printf '\nEach round overwrites a different file with new random bytes, then `lode add . && lode commit` (untimed), then the timed `lode push --json`; `bytes_sent` is what the serving peer fetched.\n'
  } >>"$MD"
}

iperf_table() {
  local st md mn mx rss n runs g gmin gmax lode_md
  st=$(stats E iperf3) || { [[ -n ${FAILED[E/iperf3]:-} ]] && printf '\n## Scenario E: iperf3\n\nFAILED: %s\n' "${FAILED[E/iperf3]}" >>"$MD"; return 0; }
  read -r g gmin gmax <<<"$(xstat E iperf3 bps)"
  {
    printf '\n## Scenario E: loopback ceiling (iperf3, one TCP stream, %s s per run)\n\n' "$IPERF_SECONDS"
    printf '| median GB/s | min GB/s | max GB/s |\n|---:|---:|---:|\n'
    printf '| %.2f | %.2f | %.2f |\n' "$(awk -v b="$g" 'BEGIN { print b / 8e9 }')" \
      "$(awk -v b="$gmin" 'BEGIN { print b / 8e9 }')" "$(awk -v b="$gmax" 'BEGIN { print b / 8e9 }')"
    if lode_md=$(stats A lode); then
      printf '\nlode clone of scenario A, whole process: %s MB/s = %s%% of this ceiling.\n' \
        "$(fmt_mbs "$A_BYTES" "${lode_md%% *}")" \
        "$(awk -v b="$A_BYTES" -v s="${lode_md%% *}" -v g="$g" 'BEGIN { printf "%.0f", 100 * (b / s) / (g / 8) }')"
    fi
  } >>"$MD"
}

# ---------------------------------------------------------------- report
ver() { "$@" 2>&1 | head -n 1 || true; }
fstype=$(df -T "$BENCH_DIR" | awk 'NR == 2 { print $2 " (" $1 ")" }')
fs_features() {  # whether the bench dir's ext4 has a journal (jbd2 lists the journaled ones)
  local dev; dev=$(basename "$(df "$BENCH_DIR" | awk 'NR == 2 { print $1 }')")
  if [[ ! -d /proc/fs/ext4/$dev ]]; then echo 'not ext4'
  elif compgen -G "/proc/fs/jbd2/$dev-*" >/dev/null; then echo 'ext4 with a journal'
  else echo 'ext4 without a journal'; fi
}
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
{
  printf '# lode sync benchmark (peers on 127.0.0.1)\n\n'
  printf -- '- date: %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf -- '- machine: %s cores (nproc), %s RAM, CPU %s\n' "$(nproc)" "$mem" "${cpu:-unknown}"
  printf -- '- kernel: %s; load average (1/5/15 min) at start %s, at end %s\n' "$(uname -sr)" "$LOAD_START" "$LOAD_END"
  printf -- '- bench dir: %s, filesystem %s\n' "$BENCH_DIR" "$fstype"
  printf -- '- network: every process ran in one network namespace (`unshare -n`) with only `lo` up; lode with LODE_BIND=127.0.0.1:0, LODE_RELAY=disabled, LODE_NO_DISCOVERY=true\n'
  printf -- '- lode: %s (%s, modified %s, sha256 %s..., copied to the bench dir at start)\n' "$(ver "$LODE_BIN" --version)" "$LODE_SRC" "$LODE_MTIME" "$LODE_SHA"
  printf -- '- sendme: %s; flags send `%s`, receive `%s`\n' \
    "$([[ $HAVE_SENDME == 1 ]] && ver "$SENDME" --version || echo absent)" "${SENDME_SEND_FLAGS[*]:-}" "${SENDME_RECV_FLAGS[*]:-}"
  printf -- '- aria2c: %s (BitTorrent; local HTTP tracker on 127.0.0.1:%s, DHT, LPD and PEX off, `--file-allocation=none`; torrents by %s, piece size aiming at 1,000-4,000 pieces)\n' \
    "$(have aria2c && ver aria2c --version || echo absent)" "$TRACKER_PORT" "$(have mktorrent && ver mktorrent -h || echo 'mktorrent absent')"
  printf -- '- rsync: %s (daemon on 127.0.0.1:%s, `rsync -a`, no ssh)\n' "$(have rsync && ver rsync --version || echo absent)" "$RSYNC_PORT"
  printf -- '- iperf3: %s\n' "$(have iperf3 && ver iperf3 --version || echo absent)"
  printf -- '- data: A = one %s file of random bytes; B = %s files x 64 KiB random in %s dirs (%s MiB)\n' \
    "$A_SIZE" "$B_FILES" "$(( (B_FILES + B_PER_DIR - 1) / B_PER_DIR ))" "$(( B_FILES * B_FILE_SIZE / 1048576 ))"
  printf -- '- method: page cache warm; servers started once per scenario (untimed: lode init/add/commit + serve, sendme send, aria2c -V seeding, rsync daemon); every timed run is a whole client process writing into an empty destination, `sync` before it; rows alternated with a rotating start, 1 warm-up round not recorded; REPS=%s, PULL_REPS=%s, PUSH_REPS=%s; medians; every received copy compared with the source (VERIFY=%s); destinations deleted %s\n' \
    "$REPS" "$PULL_REPS" "$PUSH_REPS" "$VERIFY" "after the last round of the scenario for $([[ $DEFER_RM == 1 ]] && echo every scenario || echo "$DEFER_RM"), right after each run otherwise (DEFER_RM)"
  printf -- '- a timed run of scenario B starts at least SETTLE=%s s after the harness last deleted files (the previous bench dir, a sendme receive'"'"'s temp store, deleted destinations): untimed waits, because ext4 without a journal scans recently freed inodes on every create (here: %s)\n' \
    "$SETTLE" "$(fs_features)"
  printf -- '- aria2c works in 1 s timer ticks: after the tracker answers it connects on the next tick and its final "stopped" announce waits for another, so about 3 s of every aria2c run is fixed cost (seen in its --log-level=info log on this machine, 16 MiB file: 3.1-4.1 s)\n'
  printf -- '- "tool / lode" = tool median / lode median: 2.00x means lode took half the time\n'
  printf -- '- harness overhead per timed run (timeout + /usr/bin/time + bash -c, not subtracted): %s ms\n' \
    "$(awk -v x="$OVERHEAD" 'BEGIN { printf "%.1f", x * 1000 }')"
} >"$MD"
[[ $SCENARIOS == *,A,* ]] && transfer_table A "Scenario A: one $A_SIZE file" "$A_BYTES"
[[ $SCENARIOS == *,B,* ]] && transfer_table B "Scenario B: $B_FILES files of 64 KiB" "$B_BYTES"
if [[ $SCENARIOS == *,C,* || $SCENARIOS == *,D,* ]] && grep -q '^C-D' "$SRVRAW"; then
  {
    printf '\nlode serve peak RSS at the end (after clones, pulls and pushes):'
    awk -F'\t' '$1 == "C-D" { printf " %s %s MiB;", $2, ($3 == "-" ? "-" : sprintf("%.0f", $3 / 1024)) }' "$SRVRAW"
    printf '\n'
  } >>"$MD"
fi
[[ $SCENARIOS == *,C,* ]] && pull_table
[[ $SCENARIOS == *,D,* ]] && push_table
[[ $SCENARIOS == *,E,* ]] && iperf_table
for k in A B C D E; do
  [[ -n ${BUSY[$k]:-} ]] && NOTES[busy-$k]="WARNING: processes outside this benchmark were running during scenario $k (>= 20 % of a core between consecutive runs: ${BUSY[$k]% }); its timings may be inflated: rerun on a quiet machine"
done
if (( ${#NOTES[@]} )); then
  { printf '\n## Notes\n\n'; for k in "${!NOTES[@]}"; do printf -- '- %s\n' "${NOTES[$k]}"; done; } >>"$MD"
fi

mkdir -p "$(dirname "$RESULTS")"
cp "$MD" "$RESULTS"
cat "$MD"
say "results written to $RESULTS; raw timings in $RAW; command log $LOG"

rc=0
for k in "${!FAILED[@]}"; do say "failed: $k: ${FAILED[$k]}"; rc=1; done
exit "$rc"
