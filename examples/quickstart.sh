#!/usr/bin/env bash
# lode quick start: make a dataset, commit it, change it, look at history, go back in time,
# verify every byte, serve it, clone it as a collaborator who pushes with a capability
# ticket, share a restricted (encrypted) dataset, and list the dataset in a registry where
# others find and clone it by name — all in a temp directory, nothing leaves this machine.
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
serve_pids=()
trap 'kill "${serve_pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
start_serve() {  # start_serve NAME: `lode serve` here in the background; sets $ticket
  "$LODE" serve > "$work/$1.out" 2>/dev/null &
  serve_pids+=($!)
  for _ in $(seq 100); do grep -q '^ticket: ' "$work/$1.out" 2>/dev/null && break; sleep 0.1; done
  ticket=$(sed -n 's/^ticket: //p' "$work/$1.out")
}
printf '\n$ lode serve &   # the lab publishes the dataset\n'
start_serve lab
echo "ticket: $ticket"
cd "$work"
# A collaborator is another device: another identity. It sends the lab its identity card.
export LODE_HOME="$work/collaborator-home"
card=$("$LODE" id --card)
run clone "$ticket" collaborator-copy --json
# The lab grants the collaborator the right to push: a capability ticket bound to its key.
export LODE_HOME="$work/home"
cd "$work/worm-data"
printf '\n$ lode grant <card> --write --expires 7d   # at the lab\n'
write_ticket=$("$LODE" grant "$card" --write --expires 7d --note collaborator --json | sed -n 's/.*"ticket": *"\([^"]*\)".*/\1/p')
echo "$write_ticket"
export LODE_HOME="$work/collaborator-home"
cd "$work/collaborator-copy"
printf 'AVAR,interneuron\n' >> tables/neurons.csv
run add .
run commit -m "collaborator: fix neuron table"
run push --ticket "$write_ticket"
run get "$ticket" tables/neurons.csv --to "$work/one-file"
export LODE_HOME="$work/home"
cd "$work/worm-data"
printf '\n(back at the lab)\n'
run log -n 2
run grants

# --- A restricted dataset: stored and served encrypted; only ticket holders read it.
cd "$work"
run init --private patient-scans
cd patient-scans
printf 'subject,scan\nS01,ok\n' > scans.csv
run add .
run commit -m "scans"
start_serve scans
ticket2=$ticket
printf '\n$ lode grant <card> --read   # the ticket also carries the address\n'
read_ticket=$("$LODE" grant "$card" --read --json | sed -n 's/.*"ticket": *"\([^"]*\)".*/\1/p')
echo "$read_ticket"
cd "$work"
export LODE_HOME="$work/collaborator-home"
run clone "$read_ticket" scans-copy
cat scans-copy/scans.csv
export LODE_HOME="$work/stranger-home"
printf '\n$ lode clone %s stranger-copy   # no ticket: refused\n' "$ticket2"
"$LODE" clone "$ticket2" stranger-copy || true

# --- A registry: people find the dataset by name; entries are signed by the dataset owner.
export LODE_HOME="$work/registry-home"
printf '\n$ lode registry serve &   # anyone can run one; registries replicate to each other\n'
"$LODE" registry serve > "$work/registry.out" 2>/dev/null &
serve_pids+=($!)
for _ in $(seq 100); do grep -q '^registry: ' "$work/registry.out" 2>/dev/null && break; sleep 0.1; done
registry=$(sed -n 's/^registry: //p' "$work/registry.out")
echo "registry: $registry"
export LODE_HOME="$work/home"
cd "$work/worm-data"
run publish worm-data --registry "$registry"
export LODE_HOME="$work/reader-home"
cd "$work"
run search elegans --registry "$registry"
run clone worm-data --registry "$registry" by-name
run get lode://worm-data/tables/neurons.csv --to "$work/by-uri"
cat "$work/by-uri/tables/neurons.csv"
kill "${serve_pids[@]}"
echo
echo "quick start finished: every step above ran in $work"
