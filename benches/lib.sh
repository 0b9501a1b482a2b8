# benches/lib.sh — what the bench scripts share; sourced, never run.
#
# Owns: the release build of narfs ($N, or $NARFS when set), a work directory ($W) removed on exit with
# every daemon started through `spawn` (their PIDs in PIDS) stopped first, wall-clock
# helpers (`now`, `secs START`, `mbs BYTES SECONDS`), and `kubo NAME [NOFETCH]`: a fresh
# Kubo repo $W/NAME whose offline daemon listens on 127.0.0.1 only (port 0), setting
# API and GW to its RPC and gateway URLs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/go/bin:$PATH" IPFS_TELEMETRY=off
cargo build --release -q --bin narfs
# NARFS=path measures another build (e.g. main's, copied aside) with this checkout's scripts.
N=${NARFS:-$PWD/target/release/narfs}
W=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.3f", e - s }'; }
mbs() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / s / 1e6 }'; }

need_ipfs() {
  command -v ipfs >/dev/null || { echo "$(basename "$0"): needs Kubo's ipfs (.ci/kubo.sh)" >&2; exit 1; }
}

kubo() {
  local repo=$W/$1 nofetch=${2:-}
  IPFS_PATH=$repo ipfs init --profile test --empty-repo >/dev/null
  python3 - "$repo/config" "$nofetch" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p)); local = "/ip4/127.0.0.1/tcp/0"
c["Bootstrap"] = []; c["Addresses"].update(API=local, Gateway=local, Swarm=[local], Announce=[])
c["Routing"]["Type"] = "none"; c["Discovery"]["MDNS"]["Enabled"] = False
c.setdefault("AutoConf", {})["Enabled"] = False; c.setdefault("AutoTLS", {})["Enabled"] = False
if sys.argv[2]:
    c["Gateway"]["NoFetch"] = True
json.dump(c, open(p, "w"))
PY
  IPFS_PATH=$repo ipfs daemon --offline --migrate=false >"$repo.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 600); do [ -s "$repo/api" ] && [ -s "$repo/gateway" ] && break; sleep 0.05; done
  API=$(sed 's#/ip4/\(.*\)/tcp/\(.*\)#http://\1:\2#' "$repo/api")
  GW=$(cat "$repo/gateway")
}
