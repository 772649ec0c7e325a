#!/usr/bin/env bash
# Local commands at many files: lode vs git, side by side (issue 17).
#
#   bench/scale.sh                 # 100,000 files; builds target/release/lode
#   bench/scale.sh 1000000         # a million files
#   LODE_BIN=/path/to/lode REPS=3 bench/scale.sh
#
# Two trees of N files of 1 KiB (distinct random bytes): "dirs" in directories of 100, and
# "flat", one directory of N. For each, rows run in turn, lode then git, REPS times after
# one warm-up round (A B A B ...; medians reported, and the median of the pairwise ratios):
#   add+commit  a fresh repository (init untimed) over a hard-linked copy of the tree;
#               lode: `lode add . && lode commit`, git: `git add -A && git commit`
#   status      nothing changed, on the repository the last add+commit made
# Time is wall seconds, memory the peak RSS of the largest process (`/usr/bin/time -f %M`).
#
# Environment: LODE_BIN, BENCH_DIR (default /tmp/lode-scale, wiped), REPS (default 5),
# SHAPES (default "dirs flat"), RESULTS (markdown file, default bench/results-scale.md),
# SETTLE (seconds to wait after each untimed preparation, for the disk to finish the
# write-back and deletions of the round before; default 0).
set -euo pipefail
export LC_ALL=C

N=${1:-100000}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
REPS=${REPS:-5}
SHAPES=${SHAPES:-dirs flat}
BENCH_DIR=${BENCH_DIR:-/tmp/lode-scale}
SETTLE=${SETTLE:-0}
RESULTS=${RESULTS:-$SCRIPT_DIR/results-scale.md}

say() { printf '[scale %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

if [[ -z ${LODE_BIN:-} ]]; then
  say "LODE_BIN not set: cargo build --release in $REPO_DIR"
  (cd "$REPO_DIR" && cargo build --release) >&2
  LODE_BIN=$REPO_DIR/target/release/lode
fi
[[ -x $LODE_BIN ]] || die "lode binary $LODE_BIN not found"
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) is required for peak memory"
command -v git >/dev/null || die "git is required"
[[ $BENCH_DIR == / || -z $BENCH_DIR ]] && die "refusing BENCH_DIR=$BENCH_DIR"

rm -rf -- "$BENCH_DIR"
mkdir -p "$BENCH_DIR"/{data,run}
export LODE_HOME=$BENCH_DIR/lode-home
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=$BENCH_DIR/gitconfig
git config --file "$GIT_CONFIG_GLOBAL" user.name bench
git config --file "$GIT_CONFIG_GLOBAL" user.email bench@localhost
git config --file "$GIT_CONFIG_GLOBAL" init.defaultBranch main
# No background `git gc --auto` writing into a repository the script is about to remove.
git config --file "$GIT_CONFIG_GLOBAL" gc.auto 0
git config --file "$GIT_CONFIG_GLOBAL" maintenance.auto false
RAW=$BENCH_DIR/raw.tsv
: >"$RAW"

# N files of 1 KiB, each distinct: one stream of random bytes cut into files by Python
# (far faster than one `head` per file).
gen() {  # gen DIR PER_DIR (0: flat)
  python3 - "$1" "$N" "$2" <<'EOF'
import os, sys
root, n, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(root, exist_ok=True)
with open("/dev/urandom", "rb") as r:
    for i in range(n):
        d = root if per == 0 else os.path.join(root, "d%06d" % (i // per))
        if per and i % per == 0:
            os.mkdir(d)
        with open(os.path.join(d, "f%07d.bin" % i), "wb") as f:
            f.write(r.read(1024))
EOF
}

# run NAME SHAPE CMD...: times CMD in the current directory, records wall s and peak KiB.
run() {
  local name=$1 shape=$2 round=$3; shift 3
  local out=$BENCH_DIR/time.out
  /usr/bin/time -f '%e %M' -o "$out" "$@" >/dev/null 2>"$BENCH_DIR/stderr" \
    || { cat "$BENCH_DIR/stderr" >&2; die "$name failed: $*"; }
  read -r wall kib <"$out"
  (( round > 0 )) && printf '%s\t%s\t%s\t%s\t%s\n' "$shape" "$name" "$round" "$wall" "$kib" >>"$RAW"
  say "$shape $name round $round: ${wall}s $((kib / 1024)) MiB"
}

fresh() {  # fresh TOOL SHAPE: a new work dir with a hard-linked copy of the data
  local w=$BENCH_DIR/run/$1-$2
  rm -rf -- "$w"
  cp -al "$BENCH_DIR/data/$2" "$w"
  cd "$w"
  if [[ $1 == lode ]]; then "$LODE_BIN" init -q >/dev/null; else git init -q; fi
  sync
  sleep "$SETTLE"
}

for shape in $SHAPES; do
  case $shape in
    dirs) per=100;; flat) per=0;;
    *) die "unknown shape $shape";;
  esac
  say "generating $shape: $N files of 1 KiB"
  gen "$BENCH_DIR/data/$shape" "$per"
  for round in $(seq 0 "$REPS"); do
    fresh lode "$shape"
    run lode-add+commit "$shape" "$round" sh -c '"$0" add . && "$0" commit -m bench' "$LODE_BIN"
    fresh git "$shape"
    run git-add+commit "$shape" "$round" sh -c 'git add -A && git commit -q -m bench'
  done
  for round in $(seq 0 "$REPS"); do
    cd "$BENCH_DIR/run/lode-$shape"; run lode-status "$shape" "$round" "$LODE_BIN" status
    cd "$BENCH_DIR/run/git-$shape"; run git-status "$shape" "$round" git status
  done
  cd "$BENCH_DIR"
  rm -rf -- "$BENCH_DIR/run/lode-$shape" "$BENCH_DIR/run/git-$shape" "$BENCH_DIR/data/$shape"
done

# Medians per row and of the pairwise ratios lode/git (round by round).
python3 - "$RAW" "$N" "$REPS" >"$RESULTS" <<'EOF'
import sys, statistics as st, collections
raw, n, reps = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = collections.defaultdict(dict)
for line in open(raw):
    shape, name, rnd, wall, kib = line.split("\t")
    rows[(shape, name)][int(rnd)] = (float(wall), int(kib) / 1024)
print(f"# bench/scale.sh {n}: {n:,} files of 1 KiB, medians of {reps} runs (A B A B)\n")
print("| tree | step | lode s | git s | time lode/git | lode MiB | git MiB | memory lode/git |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for shape in ("dirs", "flat"):
    for step in ("add+commit", "status"):
        a, b = rows.get((shape, "lode-" + step)), rows.get((shape, "git-" + step))
        if not a or not b:
            continue
        common = sorted(set(a) & set(b))
        med = lambda d, i: st.median(d[r][i] for r in common)
        ratio = lambda i: st.median(a[r][i] / b[r][i] for r in common)
        label = "directories of 100" if shape == "dirs" else "one flat directory"
        print(f"| {label} | {step} | {med(a,0):.2f} | {med(b,0):.2f} | {ratio(0):.2f} "
              f"| {med(a,1):.0f} | {med(b,1):.0f} | {ratio(1):.2f} |")
EOF
cat "$RESULTS"
