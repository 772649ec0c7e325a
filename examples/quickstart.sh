#!/usr/bin/env bash
# lode quick start: make a dataset, commit it, change it, look at history, go back in time,
# and verify every byte — all in a temp directory, nothing leaves this machine.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${LODE:-}" ]; then
  (cd "$here" && cargo build --release --quiet)
  LODE="$here/target/release/lode"
fi
work="$(mktemp -d)"
export LODE_HOME="$work/home"   # keys for this demo only
trap 'rm -rf "$work"' EXIT
run() { printf '\n$ lode %s\n' "$*"; "$LODE" "$@"; }
cd "$work"

run init worm-data
cd worm-data
mkdir -p tables tracks
printf 'neuron,class\nAVAL,interneuron\nAVAR,interneuron\n' > tables/neurons.csv
head -c 5000000 /dev/urandom > tracks/day1.bin
echo '*.tmp' > .lodeignore
touch scratch.tmp
run meta title "C. elegans tracking demo"
run meta license CC-BY-4.0
run add .
run status
run commit -m "day 1 recordings"
printf 'RIML,motor\n' >> tables/neurons.csv
head -c 3000000 /dev/urandom > tracks/day2.bin
run add .
run commit -m "day 2 recordings"
run tag v2
run log
run diff HEAD~1 HEAD
run ls
printf '\n$ b3sum tables/neurons.csv   # the id lode shows is the plain BLAKE3 hash\n'
if command -v b3sum >/dev/null; then b3sum tables/neurons.csv; else echo "(b3sum not installed)"; fi
run checkout HEAD~1
run cat HEAD:tables/neurons.csv
run checkout main
run verify
run show

# --- Peer to peer, on this machine only: direct loopback addresses, no relay, no discovery.
export LODE_BIND=127.0.0.1:0 LODE_RELAY=disabled LODE_NO_DISCOVERY=true
printf '\n$ lode serve &   # the lab publishes the dataset\n'
"$LODE" serve > "$work/serve.out" 2>/dev/null &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q '^ticket: ' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
ticket=$(sed -n 's/^ticket: //p' "$work/serve.out")
echo "ticket: $ticket"
cd "$work"
# A collaborator is another device: another identity.
export LODE_HOME="$work/collaborator-home"
run clone "$ticket" collaborator-copy --json
cd collaborator-copy
printf 'AVAR,interneuron\n' >> tables/neurons.csv
run add .
run commit -m "collaborator: fix neuron table"
run push
run get "$ticket" tables/neurons.csv --to "$work/one-file"
export LODE_HOME="$work/home"
cd "$work/worm-data"
printf '\n(back at the lab)\n'
run log -n 2
kill $serve_pid
echo
echo "quick start finished: every step above ran in $work"
