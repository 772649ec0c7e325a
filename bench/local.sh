#!/usr/bin/env bash
# Local benchmark: lode vs cp / b3sum / git / git-annex / dvc on this machine.
#
#   bench/local.sh                      # builds target/release/lode, full size
#   LODE_BIN=/path/to/lode bench/local.sh
#   QUICK=1 bench/local.sh              # scenario B cut to 10,000 files, REPS=3
#
# Environment knobs:
#   LODE_BIN      lode binary to test (default: cargo build --release, target/release/lode)
#   BENCH_DIR     scratch dir, wiped at start (default /tmp/lode-bench; keep it outside the repo)
#   REPS          recorded repetitions per row (default 5, QUICK: 3); one extra warm-up round first
#   STATUS_REPS   recorded repetitions for the status rows (default 2*REPS)
#   QUICK=1       scenario B with 10,000 files and REPS=3
#   A_SIZE        size of the scenario A file, as understood by `head -c` (default 1G)
#   B_FILES       number of 4 KiB files in scenario B (default 100000, QUICK: 10000)
#   SCENARIOS     which to run, comma list of A,B,status (default A,B,status; status needs B)
#   SLOW_REPS     cap on recorded reps for git-annex and dvc in scenario B (default REPS); they
#                 drop out of the later rounds, the other rows keep alternating. Full size B with
#                 git-annex takes ~18 min per run here (10k files: ~110 s), so a full run is ~2.5 h
#                 with defaults; SLOW_REPS=1 brings it near 1 h.
#   TOOLS         only these rows, comma list of row names (cp,b3sum,git,git-annex,dvc,lode,lode-link,
#                 git-status,lode-status); default: all that are installed
#   RESULTS       markdown output file (default bench/results-local.md next to this script)
#
# Method: every timed run gets a fresh directory prepared untimed (hardlinks of the
# generated data, `init` of the tool), then `sync`, then the timed command. Rows run
# round-robin (rotating start: A B C / B C A / ...), never one tool's block after
# another; round 0 is a warm-up and is not recorded. We report medians because
# this VM's timings are bimodal (memory ballooning). The page cache is warm (no
# cache drop is possible here). Wall time is taken with bash's $EPOCHREALTIME around
# `/usr/bin/time -f %M bash -c CMD`, which also yields the peak RSS of the command.
set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
  REPS=${REPS:-3}
  B_FILES=${B_FILES:-10000}
else
  REPS=${REPS:-5}
  B_FILES=${B_FILES:-100000}
fi
STATUS_REPS=${STATUS_REPS:-$((2 * REPS))}
SLOW_REPS=${SLOW_REPS:-$REPS}
B_PER_DIR=100
A_SIZE=${A_SIZE:-1G}
BENCH_DIR=${BENCH_DIR:-/tmp/lode-bench}
RESULTS=${RESULTS:-$SCRIPT_DIR/results-local.md}
SCENARIOS=",${SCENARIOS:-A,B,status},"
TOOLS=${TOOLS:-}

say() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# ---------------------------------------------------------------- lode binary
if [[ -z ${LODE_BIN:-} ]]; then
  say "LODE_BIN not set: cargo build --release in $REPO_DIR"
  (cd "$REPO_DIR" && cargo build --release) >&2
  LODE_BIN=$REPO_DIR/target/release/lode
fi
[[ -x $LODE_BIN ]] || LODE_BIN=$(command -v "$LODE_BIN" || true)
[[ -n $LODE_BIN && -x $LODE_BIN ]] || die "lode binary not found/executable"
LODE_BIN=$(cd "$(dirname "$LODE_BIN")" && pwd)/$(basename "$LODE_BIN")
export LODE_BIN

# ---------------------------------------------------------------- work dir
case "$(cd "$(dirname "$BENCH_DIR")" 2>/dev/null && pwd)/" in
  "$REPO_DIR"/*) die "BENCH_DIR must be outside the repository ($REPO_DIR)";;
esac
[[ $BENCH_DIR == / || -z $BENCH_DIR ]] && die "refusing BENCH_DIR=$BENCH_DIR"

rmtree() {  # git-annex/dvc leave read-only dirs behind
  [[ -e $1 ]] || return 0
  rm -rf -- "$1" 2>/dev/null || { chmod -R u+w -- "$1" 2>/dev/null || true; rm -rf -- "$1"; }
}

rmtree "$BENCH_DIR"
mkdir -p "$BENCH_DIR"/{data,run,tmp}
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
export LODE_HOME=$BENCH_DIR/lode-home
mkdir -p "$LODE_HOME"
LOG=$BENCH_DIR/commands.log
RAW=$BENCH_DIR/raw.tsv
: >"$LOG"; : >"$RAW"
RSS_OUT=$BENCH_DIR/tmp/rss.outer
export RSS_INNER=$BENCH_DIR/tmp/rss.inner

# Hermetic git: no user/system config, fixed identity.
export GIT_CONFIG_NOSYSTEM=1
export GIT_CONFIG_GLOBAL=$BENCH_DIR/gitconfig
git config --file "$GIT_CONFIG_GLOBAL" user.name bench
git config --file "$GIT_CONFIG_GLOBAL" user.email bench@localhost
git config --file "$GIT_CONFIG_GLOBAL" init.defaultBranch main
# dvc: never phone home (analytics, update check).
export DVC_NO_ANALYTICS=1

# ---------------------------------------------------------------- tools present
have() { command -v "$1" >/dev/null 2>&1; }
have git || die "git is required"
HAVE_ANNEX=0; git annex version >/dev/null 2>&1 && HAVE_ANNEX=1
HAVE_DVC=0; have dvc && HAVE_DVC=1
HAVE_B3=0; have b3sum && HAVE_B3=1
TIME_BIN=/usr/bin/time
HAVE_TIME=0; "$TIME_BIN" -f %M -o /dev/null true 2>/dev/null && HAVE_TIME=1
[[ $HAVE_TIME == 1 ]] || say "warning: $TIME_BIN -f %M unusable: no peak RSS column"
[[ $HAVE_ANNEX == 1 ]] || say "git-annex not found: skipping its rows"
[[ $HAVE_DVC == 1 ]] || say "dvc not found: skipping its rows"
[[ $HAVE_B3 == 1 ]] || say "b3sum not found: skipping its rows"

want() {  # row name -> selected by TOOLS and installed?
  local r=$1
  if [[ -n $TOOLS && ",$TOOLS," != *",$r,"* ]]; then return 1; fi
  case $r in
    git-annex) [[ $HAVE_ANNEX == 1 ]];;
    dvc) [[ $HAVE_DVC == 1 ]];;
    b3sum) [[ $HAVE_B3 == 1 ]];;
    *) return 0;;
  esac
}

# ---------------------------------------------------------------- disk check
need_kb=$(( 8 * 1024 * 1024 ))
avail_kb=$(df --output=avail -k "$BENCH_DIR" | tail -1 | tr -d ' ')
(( avail_kb > need_kb )) || say "warning: only $((avail_kb / 1024)) MiB free in $BENCH_DIR (want ~8 GiB)"

# ---------------------------------------------------------------- data
A_FILE=$BENCH_DIR/data/big.bin
B_SRC=$BENCH_DIR/data/small
export A_FILE B_SRC

if [[ $SCENARIOS == *,A,* ]]; then
  say "generating scenario A file ($A_SIZE random bytes)"
  head -c "$A_SIZE" /dev/urandom >"$A_FILE"
fi
if [[ $SCENARIOS == *,B,* ]]; then
  say "generating scenario B tree ($B_FILES x 4 KiB random files, $B_PER_DIR per dir)"
  mkdir -p "$B_SRC"
  left=$B_FILES; d=0
  while (( left > 0 )); do
    n=$(( left < B_PER_DIR ? left : B_PER_DIR ))
    dp=$(printf '%s/d%04d' "$B_SRC" "$d")
    mkdir "$dp"
    # one urandom stream cut into 4 KiB pieces: every file has distinct content
    head -c $(( n * 4096 )) /dev/urandom | split -b 4096 -a 3 -d --additional-suffix=.bin - "$dp/f"
    left=$(( left - n )); d=$(( d + 1 ))
  done
  got=$(find "$B_SRC" -type f | wc -l)
  [[ $got == "$B_FILES" ]] || die "generated $got files, wanted $B_FILES"
fi
sync
# guard: no tool may modify the (hardlinked) source data in place
fingerprint() {
  {
    if [[ -e $A_FILE ]]; then stat -c '%n %s %Y' "$A_FILE"; fi
    if [[ -d $B_SRC ]]; then find "$B_SRC" -type f -printf '%p %s %T@\n' | sort; fi
  } | cksum
}
FP_BEFORE=$(fingerprint)

# ---------------------------------------------------------------- row definitions
declare -A SETUP CMD FIXDIR FAILED KEEPDIR
GIT_INIT='git init -q'
ANNEX_INIT='git init -q && git annex init -q bench >/dev/null'
DVC_INIT='git init -q && dvc init -q && dvc config core.analytics false && dvc config core.check_update false'
LODE_INIT='"$LODE_BIN" init >/dev/null'
# inner /usr/bin/time: peak RSS of `lode add` alone
if [[ $HAVE_TIME == 1 ]]; then
  LODE_ADD='/usr/bin/time -f %M -o "$RSS_INNER" "$LODE_BIN" add'
else
  LODE_ADD='"$LODE_BIN" add'
fi
LODE_COMMIT='"$LODE_BIN" commit -m x'

# Scenario A: one big file
SETUP[A/cp]='mkdir dest'
CMD[A/cp]='cp "$A_FILE" dest/'
SETUP[A/b3sum]=':'
CMD[A/b3sum]='b3sum "$A_FILE"'
SETUP[A/git]="ln \"\$A_FILE\" big.bin && $GIT_INIT"
CMD[A/git]='git add -A && git commit -q -m x'
SETUP[A/git-annex]="ln \"\$A_FILE\" big.bin && $ANNEX_INIT"
CMD[A/git-annex]='git annex add . && git commit -q -m x'
SETUP[A/dvc]="ln \"\$A_FILE\" big.bin && $DVC_INIT"
CMD[A/dvc]='dvc add big.bin'
SETUP[A/lode]="ln \"\$A_FILE\" big.bin && $LODE_INIT"
CMD[A/lode]="$LODE_ADD . && $LODE_COMMIT"
SETUP[A/lode-link]="ln \"\$A_FILE\" big.bin && $LODE_INIT"
CMD[A/lode-link]="$LODE_ADD --link . && $LODE_COMMIT"

# Scenario B: many small files (tree under data/)
SETUP[B/cp]='mkdir dest'
CMD[B/cp]='cp -r "$B_SRC" dest/'
SETUP[B/b3sum]=':'
CMD[B/b3sum]='find "$B_SRC" -type f -print0 | xargs -0 b3sum >/dev/null'
SETUP[B/git]="cp -al \"\$B_SRC\" data && $GIT_INIT"
CMD[B/git]='git add -A && git commit -q -m x'
SETUP[B/git-annex]="cp -al \"\$B_SRC\" data && $ANNEX_INIT"
CMD[B/git-annex]='git annex add . && git commit -q -m x'
SETUP[B/dvc]="cp -al \"\$B_SRC\" data && $DVC_INIT"
CMD[B/dvc]='dvc add data'
SETUP[B/lode]="cp -al \"\$B_SRC\" data && $LODE_INIT"
CMD[B/lode]="$LODE_ADD . && $LODE_COMMIT"
SETUP[B/lode-link]="cp -al \"\$B_SRC\" data && $LODE_INIT"
CMD[B/lode-link]="$LODE_ADD --link . && $LODE_COMMIT"

# Status on the unchanged, committed tree (dirs kept from the last B round)
SETUP[status/git-status]=':'
CMD[status/git-status]='git status --porcelain'
SETUP[status/lode-status]=':'
CMD[status/lode-status]='"$LODE_BIN" status'

# ---------------------------------------------------------------- timing
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }
now() { if [[ -n ${EPOCHREALTIME:-} ]]; then printf '%s' "$EPOCHREALTIME"; else date +%s.%N; fi; }

# run CMD in DIR; sets T (seconds) and RSS (KiB or -); returns the command's status
timed() {
  local dir=$1 cmd=$2 t0 t1 rc=0
  rm -f "$RSS_OUT" "$RSS_INNER"
  if [[ $HAVE_TIME == 1 ]]; then
    t0=${EPOCHREALTIME:-$(date +%s.%N)}
    (cd "$dir" && exec "$TIME_BIN" -f %M -o "$RSS_OUT" bash -c "$cmd") >/dev/null 2>>"$LOG" || rc=$?
    t1=${EPOCHREALTIME:-$(date +%s.%N)}
    RSS=$(tail -n 1 "$RSS_OUT" 2>/dev/null || echo -)
  else
    t0=${EPOCHREALTIME:-$(date +%s.%N)}
    (cd "$dir" && exec bash -c "$cmd") >/dev/null 2>>"$LOG" || rc=$?
    t1=${EPOCHREALTIME:-$(date +%s.%N)}
    RSS=-
  fi
  T=$(elapsed "$t0" "$t1")
  return "$rc"
}

run_one() {  # scenario row round
  local scen=$1 row=$2 r=$3 key="$1/$2" dir fixed=0 inner=-
  if [[ -n ${FIXDIR[$key]:-} ]]; then
    dir=${FIXDIR[$key]}; fixed=1
  else
    dir=$BENCH_DIR/run/$scen-$row-$r
    mkdir -p "$dir"
  fi
  printf '\n### %s round %s: setup: %s\n' "$key" "$r" "${SETUP[$key]}" >>"$LOG"
  if ! (cd "$dir" && bash -c "${SETUP[$key]}") >>"$LOG" 2>&1; then
    FAILED[$key]="setup failed (round $r)"
    say "FAILED setup $key round $r; see $LOG"; tail -n 5 "$LOG" >&2
    [[ $fixed == 1 ]] || rmtree "$dir"
    return 0
  fi
  sync
  printf '### %s round %s: timed: %s\n' "$key" "$r" "${CMD[$key]}" >>"$LOG"
  if ! timed "$dir" "${CMD[$key]}"; then
    FAILED[$key]="command failed (round $r)"
    say "FAILED $key round $r; see $LOG"; tail -n 5 "$LOG" >&2
    [[ $fixed == 1 ]] || rmtree "$dir"
    return 0
  fi
  [[ -s $RSS_INNER ]] && inner=$(tail -n 1 "$RSS_INNER")
  local tag=$r; [[ $r == 0 ]] && tag=warmup
  say "$key round $tag: ${T}s rss=${RSS}KiB"
  [[ $r == 0 ]] || printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$row" "$r" "$T" "$RSS" "$inner" >>"$RAW"
  if [[ $fixed == 0 ]]; then
    if [[ $r == "${LAST_ROUND:-x}" && -n ${KEEP_ROWS[$row]:-} ]]; then
      KEEPDIR[$row]=$dir
    else
      rmtree "$dir"
    fi
  fi
}

# round-robin with rotating start; round 0 = warm-up
run_scenario() {  # scenario reps rows...
  local scen=$1 reps=$2; shift 2
  local rows=("$@") n=$# r k row
  (( n > 0 )) || { say "scenario $scen: no rows selected"; return 0; }
  LAST_ROUND=$reps
  say "scenario $scen: rows=${rows[*]} reps=$reps (+1 warm-up), alternated"
  for (( r = 0; r <= reps; r++ )); do
    for (( k = 0; k < n; k++ )); do
      row=${rows[$(( (r + k) % n ))]}
      [[ -n ${FAILED[$scen/$row]:-} ]] && continue
      if [[ $scen == B && ( $row == git-annex || $row == dvc ) ]] && (( r > SLOW_REPS )); then continue; fi
      run_one "$scen" "$row" "$r"
    done
  done
}

# ---------------------------------------------------------------- stats / report
# prints: median min max rss_median inner_rss_median n runs
stats() {
  awk -F'\t' -v s="$1" -v w="$2" '
    function med(a, n,   i, j, t) {
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t }
      return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
    }
    $1 == s && $2 == w {
      n++; t[n] = $4 + 0; runs = runs (n > 1 ? " " : "") sprintf(($4 < 1 ? "%.3f" : "%.2f"), $4)
      if ($5 != "-" && $5 != "") { m++; r[m] = $5 + 0 }
      if ($6 != "-" && $6 != "") { q++; ir[q] = $6 + 0 }
    }
    END {
      if (!n) exit 1
      for (i = 1; i <= n; i++) c[i] = t[i]
      md = med(c, n); mn = c[1]; mx = c[n]
      printf "%.4f %.4f %.4f %s %s %d %s\n", md, mn, mx, (m ? med(r, m) : "-"), (q ? med(ir, q) : "-"), n, runs
    }' "$RAW"
}

fmt_s() { awk -v x="$1" 'BEGIN { if (x < 1) printf "%.3f", x; else if (x < 100) printf "%.2f", x; else printf "%.1f", x }'; }
fmt_mib() { [[ $1 == - ]] && { printf -- '-'; return; }; awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }

MD=$BENCH_DIR/results.md
table() {  # scenario title reference rows...
  local scen=$1 title=$2 ref=$3; shift 3
  local refmed="" row st md mn mx rss irss n runs ratio
  if st=$(stats "$scen" "$ref"); then refmed=${st%% *}; fi
  {
    printf '\n## %s\n\n' "$title"
    printf '| tool | median s | min s | max s | ratio vs %s | peak RSS MiB | runs (s) |\n' "$ref"
    printf '|---|---:|---:|---:|---:|---:|---|\n'
    for row in "$@"; do
      if st=$(stats "$scen" "$row"); then
        read -r md mn mx rss irss n runs <<<"$st"
        if [[ -n $refmed ]]; then ratio=$(awk -v a="$md" -v b="$refmed" 'BEGIN { r = (b > 0 ? a / b : 0); printf (r < 0.1 ? "%.3fx" : "%.2fx"), r }'); else ratio=n/a; fi
        printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$row" "$(fmt_s "$md")" "$(fmt_s "$mn")" "$(fmt_s "$mx")" "$ratio" "$(fmt_mib "$rss")" "$runs"
      elif [[ -n ${FAILED[$scen/$row]:-} ]]; then
        printf '| %s | FAILED: %s | | | | | |\n' "$row" "${FAILED[$scen/$row]}"
      fi
    done
    for row in "$@"; do
      [[ $row == lode* ]] || continue
      if st=$(stats "$scen" "$row"); then
        read -r md mn mx rss irss n runs <<<"$st"
        [[ $irss != - ]] && printf '\n%s: peak RSS of `lode add` alone (median): %s MiB\n' "$row" "$(fmt_mib "$irss")"
      fi
    done
    printf '\n'
  } >>"$MD"
}

# ---------------------------------------------------------------- harness overhead
OVH_DIR=$BENCH_DIR/tmp
ovh=()
for i in 1 2 3 4 5; do timed "$OVH_DIR" 'true'; ovh+=("$T"); done
OVERHEAD=$(printf '%s\n' "${ovh[@]}" | sort -g | sed -n 3p)

# ---------------------------------------------------------------- run
declare -A KEEP_ROWS=()
rows_A=(); for r in cp b3sum git git-annex dvc lode lode-link; do want "$r" && rows_A+=("$r"); done
rows_B=(); for r in cp b3sum git git-annex dvc lode lode-link; do want "$r" && rows_B+=("$r"); done

if [[ $SCENARIOS == *,A,* ]]; then
  run_scenario A "$REPS" "${rows_A[@]}"
fi
if [[ $SCENARIOS == *,B,* ]]; then
  if [[ $SCENARIOS == *,status,* ]]; then KEEP_ROWS[git]=1; KEEP_ROWS[lode]=1; fi
  run_scenario B "$REPS" "${rows_B[@]}"
fi
rows_S=()
if [[ $SCENARIOS == *,status,* ]]; then
  if [[ -n ${KEEPDIR[git]:-} ]] && want git-status; then
    FIXDIR[status/git-status]=${KEEPDIR[git]}; rows_S+=(git-status)
    [[ -z $(cd "${KEEPDIR[git]}" && git status --porcelain) ]] || say "warning: git status not clean after commit"
  fi
  if [[ -n ${KEEPDIR[lode]:-} ]] && want lode-status; then
    FIXDIR[status/lode-status]=${KEEPDIR[lode]}; rows_S+=(lode-status)
  fi
  if (( ${#rows_S[@]} )); then
    run_scenario status "$STATUS_REPS" "${rows_S[@]}"
  else
    say "status: needs scenario B with git and lode rows; skipped"
  fi
fi

FP_AFTER=$(fingerprint)
[[ $FP_BEFORE == "$FP_AFTER" ]] || say "WARNING: source data changed during the run (a tool wrote through a hardlink)"

# ---------------------------------------------------------------- report
ver() { "$@" 2>/dev/null | head -n 1 || true; }
fstype=$(df -T "$BENCH_DIR" | awk 'NR == 2 { print $2 " (" $1 ")" }')
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
{
  printf '# lode local benchmark\n\n'
  printf -- '- date: %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf -- '- machine: %s cores (nproc), %s RAM, CPU %s\n' "$(nproc)" "$mem" "${cpu:-unknown}"
  printf -- '- kernel: %s\n' "$(uname -sr)"
  printf -- '- bench dir: %s, filesystem %s\n' "$BENCH_DIR" "$fstype"
  printf -- '- lode: %s (%s)\n' "$(ver "$LODE_BIN" --version || true)" "$LODE_BIN"
  printf -- '- git: %s; git-annex: %s; dvc: %s; b3sum: %s; cp: %s\n' \
    "$(ver git --version)" \
    "$([[ $HAVE_ANNEX == 1 ]] && ver git annex version || echo absent)" \
    "$([[ $HAVE_DVC == 1 ]] && ver dvc --version || echo absent)" \
    "$([[ $HAVE_B3 == 1 ]] && ver b3sum --version || echo absent)" \
    "$(ver cp --version)"
  printf -- '- data: A = one %s file of random bytes; B = %s files x 4 KiB random in %s dirs\n' \
    "$A_SIZE" "$B_FILES" "$(( (B_FILES + B_PER_DIR - 1) / B_PER_DIR ))"
  printf -- '- method: page cache warm (no cache drop); fresh dir per run, prepared untimed (hardlinked data, tool init), `sync` before each timed run; rows alternated round-robin with rotating start, 1 warm-up round not recorded; REPS=%s (status: %s, git-annex/dvc in B: %s); medians reported\n' "$REPS" "$STATUS_REPS" "$SLOW_REPS"
  printf -- '- harness overhead per timed run (bash -c under /usr/bin/time, not subtracted): %s ms\n' \
    "$(awk -v x="$OVERHEAD" 'BEGIN { printf "%.1f", x * 1000 }')"
  printf -- '- peak RSS = max over the processes of the whole timed command (e.g. `git add` and `git commit`)\n'
  printf -- '- timed commands: git `add -A && commit`; git-annex `annex add . && commit` (default SHA256E backend); dvc `dvc add` only; lode `add . && commit -m x` (LODE_HOME inside the bench dir)\n'
} >"$MD"
[[ $SCENARIOS == *,A,* && ${#rows_A[@]} -gt 0 ]] && table A "Scenario A: one $A_SIZE file" cp "${rows_A[@]}"
[[ $SCENARIOS == *,B,* && ${#rows_B[@]} -gt 0 ]] && table B "Scenario B: $B_FILES small files (add + commit)" git "${rows_B[@]}"
[[ ${#rows_S[@]} -gt 0 ]] && table status "Status on the unchanged committed tree ($B_FILES files)" git-status "${rows_S[@]}"

mkdir -p "$(dirname "$RESULTS")"
cp "$MD" "$RESULTS"
cat "$MD"
say "results written to $RESULTS; raw timings in $RAW; command log $LOG"

rc=0
for k in "${!FAILED[@]}"; do say "failed: $k: ${FAILED[$k]}"; rc=1; done
exit "$rc"
