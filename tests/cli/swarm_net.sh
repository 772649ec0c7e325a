# Network set-up for the swarm tests (sourced by tests/cli/swarm.rs, run under
# `unshare -m -n`): every peer K gets its own network namespace, linked to one bridge in this
# private namespace by a veth pair (10.77.0.K), its uplink (egress) shaped with tc tbf when
# asked. Nothing here can reach a real network. Every process started is killed on exit.
set -u
ip link set lo up
ip link add br0 type bridge
ip link set br0 up
NETNS=()
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
}
trap cleanup EXIT
ns() { echo "lsw$$-$1"; }
# peer K [RATE]: namespace K behind the bridge, uplink shaped to RATE (e.g. 40mbit).
peer() {
  local k=$1 n
  n=$(ns "$k")
  ip netns add "$n" || exit 99
  NETNS+=("$n")
  ip link add "vh$k" type veth peer name "vp$k"
  ip link set "vh$k" master br0
  ip link set "vh$k" up
  ip link set "vp$k" netns "$n"
  ip netns exec "$n" ip addr add "10.77.0.$k/24" dev "vp$k"
  ip netns exec "$n" ip link set "vp$k" up
  ip netns exec "$n" ip link set lo up
  if [[ -n ${2:-} ]]; then
    ip netns exec "$n" tc qdisc add dev "vp$k" root tbf rate "$2" burst 32kb latency 400ms || exit 99
  fi
}
# sent K: bytes peer K's uplink has sent.
sent() { ip netns exec "$(ns "$1")" cat "/sys/class/net/vp$1/statistics/tx_bytes"; }
# in K HOME CMD...: runs lode CMD as peer K with LODE_HOME=HOME, in the background.
in_peer() {
  local k=$1 home=$2
  shift 2
  LODE_HOME=$home LODE_BIND=10.77.0.$k:0 LODE_RELAY=disabled LODE_NO_DISCOVERY=true \
    ip netns exec "$(ns "$k")" "$LODE" "$@" &
  PIDS+=($!)
}
# serve_as K HOME REPO: `lode serve` of REPO as peer K; sets TICKET.
serve_as() {
  local k=$1 home=$2 repo=$3
  in_peer "$k" "$home" serve -q "$repo" >"$W/serve$k.out" 2>"$W/serve$k.err"
  SERVER=$!
  for _ in $(seq 1 200); do
    grep -q '^ticket: ' "$W/serve$k.out" 2>/dev/null && break
    sleep 0.05
  done
  TICKET=$(sed -n 's/^ticket: //p' "$W/serve$k.out" | head -1)
  [[ -n $TICKET ]] || { echo "serve $k did not start: $(cat "$W/serve$k.err")"; exit 1; }
}
# clone_all SEED K...: peers K clone TICKET at once into $W/dK (home $W/hK, --json report in
# $W/cK.json, errors in $W/cK.err, --seed SEED) and are waited for; each failure prints
# failed=PID.
clone_all() {
  local seed=$1 k p
  shift
  local started=()
  for k in "$@"; do
    in_peer "$k" "$W/h$k" clone --json --seed "$seed" "$TICKET" "$W/d$k" >"$W/c$k.json" 2>"$W/c$k.err"
    started+=($!)
  done
  for p in "${started[@]}"; do wait "$p" || echo "failed=$p"; done
}
# dataset HOME DIR SIZE: a repository DIR with one random file big.bin of SIZE.
dataset() {
  LODE_HOME=$1 "$LODE" init -q "$2" >/dev/null
  head -c "$3" /dev/urandom >"$2/big.bin"
  LODE_HOME=$1 "$LODE" -C "$2" add -q . && LODE_HOME=$1 "$LODE" -C "$2" commit -q -m data
}
# dataset_files HOME DIR N SIZE: a repository DIR with N random files of SIZE bytes in files/.
dataset_files() {
  LODE_HOME=$1 "$LODE" init -q "$2" >/dev/null
  mkdir -p "$2/files"
  head -c $(($3 * $4)) /dev/urandom | split -b "$4" -a 4 - "$2/files/f"
  LODE_HOME=$1 "$LODE" -C "$2" add -q . && LODE_HOME=$1 "$LODE" -C "$2" commit -q -m data
}
