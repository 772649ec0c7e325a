#!/usr/bin/env bash
# Many small files: `lode clone` against an rsync daemon, both on loopback, same data.
#
#   bench/land.sh                 # N=100000 files of 1 KiB in directories of 100, REPS=3
#   N=10000 REPS=1 bench/land.sh  # quick proof run
#   FRESH_FS=1 N=1000000 bench/land.sh  # each copy into a fresh ext4 (root: a loop device)
#   SHAPE=flat N=1000000 bench/land.sh   # all files in one directory
#
# Rows:
#   lode   lode clone TICKET DIR (fetch, verify every object, write the object store, check
#          out the working tree; the server is `lode serve`, started once, untimed)
#   rsync  rsync -a rsync://127.0.0.1:PORT/mod/ DIR/ (daemon, no ssh, no verification)
# Method: page cache warm; `sync` before every timed run; one untimed warm-up round, then
# REPS rounds alternating the rows (A B A B) with a rotating start; medians and the ratio
# of the medians. Wall time of the whole client process ($EPOCHREALTIME). Before every timed
# run the source (files and lode's packs) is read once (untimed), so that both servers read
# from the page cache. Every copy is compared with the source (`diff -r`) after it is timed,
# and kept until the end; with FRESH_FS=1 each copy goes instead into an ext4 file system
# made for it (mkfs.ext4, journal on, over a loop device with direct I/O on an image in
# BENCH_DIR) and unmounted after the check, so that no run meets the files of the last
# (see the end of this script) and the disk needs room for one copy only.
set -euo pipefail
export LC_ALL=C
SCRIPT_PATH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
REPO_DIR=$(cd "$(dirname "$SCRIPT_PATH")/.." && pwd)
say() { printf '[land %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

if [[ $(ip -o link show | awk -F': ' '{print $2}' | sort -u | tr '\n' ' ') != "lo " ]]; then
  [[ ${LODE_LAND_NETNS:-} == 1 ]] && die "namespace has interfaces other than lo"
  exec unshare -n -- env LODE_LAND_NETNS=1 bash "$SCRIPT_PATH" "$@"
fi
ip link set lo up

N=${N:-100000}
SHAPE=${SHAPE:-dirs}
[[ $SHAPE == dirs || $SHAPE == flat ]] || die "SHAPE is dirs (directories of 100) or flat"
REPS=${REPS:-3}
BENCH_DIR=${BENCH_DIR:-/tmp/lode-bench-land}
RSYNC_PORT=${RSYNC_PORT:-28730}
LODE_SRC=${LODE_BIN:-$REPO_DIR/target/release/lode}
[[ -x $LODE_SRC ]] || die "build first: cargo build --release"
command -v rsync >/dev/null || die "rsync not found"
FRESH_FS=${FRESH_FS:-0}
if [[ $FRESH_FS == 1 ]]; then
  command -v mkfs.ext4 >/dev/null && command -v losetup >/dev/null \
    || die "FRESH_FS=1 needs mkfs.ext4 and losetup"
  [[ $(id -u) == 0 ]] || die "FRESH_FS=1 needs root (a loop device and a mount)"
fi

rm -rf "$BENCH_DIR"; mkdir -p "$BENCH_DIR"/{home/owner,home/reader,run,srv}
cp "$LODE_SRC" "$BENCH_DIR/lode"; LODE=$BENCH_DIR/lode
export LODE_BIND=127.0.0.1:0 LODE_RELAY=disabled LODE_NO_DISCOVERY=true
owner() { LODE_HOME=$BENCH_DIR/home/owner "$LODE" "$@"; }
reader() { LODE_HOME=$BENCH_DIR/home/reader "$LODE" "$@"; }

say "making $N files of 1 KiB ($SHAPE: in directories of 100, or all in one)"
DATA=$BENCH_DIR/data
mkdir -p "$DATA"
python3 - "$DATA" "$N" "$SHAPE" <<'EOF'
import os, sys
root, n, shape = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if shape == "flat":
    os.mkdir(os.path.join(root, "all"))
    for i in range(n):
        with open(os.path.join(root, "all", f"f{i:07}.bin"), "wb") as f:
            f.write(os.urandom(1024))
    sys.exit(0)
for d in range((n + 99) // 100):
    dd = os.path.join(root, f"d{d:05}")
    os.mkdir(dd)
    for i in range(min(100, n - d * 100)):
        with open(os.path.join(dd, f"f{i:02}.bin"), "wb") as f:
            f.write(os.urandom(1024))
EOF
owner init -q "$DATA"
owner -C "$DATA" add -q .
owner -C "$DATA" commit -q -m data

PIDS=()
MNT=$BENCH_DIR/mnt IMG=$BENCH_DIR/fresh.img LOOP=
drop_fs() {
  if mountpoint -q "$MNT"; then umount "$MNT"; fi
  if [[ -n $LOOP ]]; then losetup -d "$LOOP"; LOOP=; fi
  rm -f "$IMG"
}
# A fresh ext4 at $MNT: 8 KiB of space per file (its block, lode's packs and metadata) and
# 1 GiB more; inodes for every file, its directory and lode's own files.
fresh_fs() {
  drop_fs
  truncate -s $(( N * 8192 + (1 << 30) )) "$IMG"
  LOOP=$(losetup -f --show --direct-io=on "$IMG")
  mkfs.ext4 -q -F -N $(( N + N / 2 + 100000 )) -E lazy_itable_init=0,lazy_journal_init=0 "$LOOP"
  mkdir -p "$MNT"
  mount "$LOOP" "$MNT"
}
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [[ $FRESH_FS == 1 ]]; then drop_fs; fi
}
trap cleanup EXIT
out=$BENCH_DIR/srv/serve.out
LODE_HOME=$BENCH_DIR/home/owner "$LODE" -C "$DATA" serve -q > "$out" 2>"$out.err" &
PIDS+=($!)
for _ in $(seq 1200); do grep -q '^ticket: ' "$out" 2>/dev/null && break; sleep 0.1; done
TICKET=$(sed -n 's/^ticket: //p' "$out" | head -1)
[[ -n $TICKET ]] || { cat "$out.err" >&2; die "lode serve printed no ticket"; }

cat >"$BENCH_DIR/srv/rsyncd.conf" <<EOF
port = $RSYNC_PORT
address = 127.0.0.1
use chroot = no
max connections = 8
lock file = $BENCH_DIR/srv/rsyncd.lock
log file = $BENCH_DIR/srv/rsyncd.log
[mod]
path = $DATA
exclude = .lode/
read only = yes
EOF
rsync --daemon --no-detach --config="$BENCH_DIR/srv/rsyncd.conf" 2>"$BENCH_DIR/srv/rsyncd.err" &
PIDS+=($!)
for _ in $(seq 100); do rsync "rsync://127.0.0.1:$RSYNC_PORT/" >/dev/null 2>&1 && break; sleep 0.1; done

declare -A T
run_row() {  # run_row ROW ROUND: times one clone into an empty directory, then checks it
  local dir=$BENCH_DIR/run/$1-$2 s e
  if [[ $FRESH_FS == 1 ]]; then fresh_fs; dir=$MNT/$1-$2; fi
  tar cf - -C "$DATA" . | cat > /dev/null
  sync
  s=$EPOCHREALTIME
  case $1 in
    lode) reader clone -q "$TICKET" "$dir" ;;
    rsync) mkdir -p "$dir" && rsync -a "rsync://127.0.0.1:$RSYNC_PORT/mod/" "$dir/" ;;
  esac > /dev/null 2> "$BENCH_DIR/run/last.err" || { cat "$BENCH_DIR/run/last.err" >&2; die "$1 failed"; }
  e=$EPOCHREALTIME
  T[$1]+="$(awk -v a="$s" -v b="$e" 'BEGIN{printf "%.3f", b-a}') "
  diff -r -x .lode "$DATA" "$dir" > /dev/null || die "$1: the copy differs from the source"
  if [[ $FRESH_FS == 1 ]]; then drop_fs; fi
}
ROWS=(lode rsync)
for round in $(seq 0 "$REPS"); do
  for i in 0 1; do
    row=${ROWS[$(( (i + round) % 2 ))]}
    say "round $round: $row"
    run_row "$row" "$round"
  done
  [[ $round == 0 ]] && T=()
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2 }'; }
ML=$(echo "${T[lode]}" | median); MR=$(echo "${T[rsync]}" | median)
FS_NOTE=""; [[ $FRESH_FS == 1 ]] && FS_NOTE=", each copy into a fresh ext4"
echo "# Cloning many small files ($(date -u +%Y-%m-%d), $(nproc) cores, N=$N x 1 KiB, SHAPE=$SHAPE, REPS=$REPS$FS_NOTE)"
echo
echo "| row | median s | all runs (s) |"
echo "|---|---|---|"
echo "| lode clone | $ML | ${T[lode]} |"
echo "| rsync daemon | $MR | ${T[rsync]} |"
echo
awk -v l="$ML" -v r="$MR" 'BEGIN{printf "lode / rsync: %.2f (target <= 1.0)\n", l/r}'
# The copies are kept, not deleted between runs: on ext4 without a journal, inodes freed in
# the last minutes are skipped one by one when new ones are allocated, which slows whatever
# runs after a deletion (several seconds for 10,000 files), and deleting them all takes
# minutes. The next run of this script deletes them first.
if [[ $FRESH_FS == 1 ]]; then say "done (each copy was checked on its own file system, then dropped)"
else say "copies left in $BENCH_DIR/run"; fi
