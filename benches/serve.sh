#!/usr/bin/env bash
# Throughput of `narfs serve` on loopback with real HTTP clients.
#
# Encodes a large NAR (SIZE_MIB of pseudo-random files) into a fresh store, serves it on
# 127.0.0.1 (port 0), and measures with curl: one client fetching /nar/<cid>.nar
# (ROUNDS times), CLIENTS concurrent clients (each must get exactly NarSize bytes with
# status 200; then another round checks every copy's sha256), the CAR of the whole DAG,
# and, when `wrk` is installed (Debian `wrk`), wrk with CLIENTS connections on a 16 MiB
# NAR. Reports
# the server's peak RSS (memory per request is bounded: `Options::readahead` in serve/src/lib.rs).
#
# Usage: benches/serve.sh            (SIZE_MIB=1024 CLIENTS=32 ROUNDS=3 by default)
# Everything stays on 127.0.0.1; the server is killed on exit, whatever happens.
set -euo pipefail
SIZE_MIB=${SIZE_MIB:-1024}
CLIENTS=${CLIENTS:-32}
ROUNDS=${ROUNDS:-3}
cd "$(dirname "$0")/.."
command -v curl >/dev/null || { echo "serve.sh: needs curl" >&2; exit 1; }
cargo build --release -q --bin narfs
N=$PWD/target/release/narfs
W=$(mktemp -d)
PID=
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$W"
}
trap cleanup EXIT

mkdir "$W/tree"
per=$((SIZE_MIB / 4))
for i in 0 1 2 3; do head -c "${per}M" /dev/urandom >"$W/tree/f$i"; done
"$N" nar dump "$W/tree" -o "$W/big.nar"
size=$(stat -c %s "$W/big.nar")
want=$(sha256sum <"$W/big.nar" | cut -d' ' -f1)
root=$("$N" encode --store "$W/store" "$W/big.nar")
rm "$W/big.nar"
# A 16 MiB NAR for wrk, so that its requests complete within the run.
mkdir "$W/small"
head -c 16M /dev/urandom >"$W/small/f"
small=$("$N" nar dump "$W/small" | "$N" encode --store "$W/store" -)

"$N" serve --store "$W/store" --listen 127.0.0.1:0 >"$W/addr" 2>"$W/serve.log" &
PID=$!
for _ in $(seq 100); do [ -s "$W/addr" ] && break; sleep 0.05; done
base=$(head -1 "$W/addr")
url="$base/nar/$root.nar"
echo "NAR: $size bytes, root $root, served at $url"
echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

mbs() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f MB/s", b / s / 1e6 }'; }

for r in $(seq "$ROUNDS"); do
  out=$(curl -s -o /dev/null -w '%{http_code} %{size_download} %{time_total}' "$url")
  read -r code got secs <<<"$out"
  [ "$code" = 200 ] && [ "$got" = "$size" ] || { echo "round $r: status $code, $got bytes" >&2; exit 1; }
  echo "1 client, round $r: ${secs}s, $(mbs "$size" "$secs")"
done
[ "$(curl -s "$url" | sha256sum | cut -d' ' -f1)" = "$want" ] || { echo "wrong bytes" >&2; exit 1; }
echo "1 client: sha256 of the served NAR matches"

start=$(date +%s.%N)
seq "$CLIENTS" | xargs -P "$CLIENTS" -I{} curl -s -o /dev/null -w '%{http_code} %{size_download}\n' "$url" >"$W/codes"
secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')
bad=$(grep -cv "^200 $size\$" "$W/codes" || true)
echo "$CLIENTS clients at once: ${secs}s for $((CLIENTS * size)) bytes, $(mbs $((CLIENTS * size)) "$secs") aggregate, $bad bad"
[ "$bad" = 0 ] || exit 1
seq "$CLIENTS" | xargs -P "$CLIENTS" -I{} sh -c "curl -s '$url' | sha256sum" | cut -d' ' -f1 | sort | uniq -c >"$W/sums"
[ "$(cat "$W/sums" | awk '{print $1, $2}')" = "$CLIENTS $want" ] || { echo "bad copies:"; cat "$W/sums"; exit 1; } >&2
echo "$CLIENTS clients at once: all $CLIENTS copies have the right sha256"

out=$(curl -s -o /dev/null -H 'Accept: application/vnd.ipld.car' -w '%{http_code} %{size_download} %{time_total}' "$base/ipfs/$root")
read -r code got secs <<<"$out"
echo "CAR of the DAG: status $code, $got bytes, ${secs}s, $(mbs "$got" "$secs")"

if command -v wrk >/dev/null; then
  echo "wrk -t2 -c$CLIENTS -d20s on a 16 MiB NAR:"
  wrk -t2 -c"$CLIENTS" -d20s --timeout 60s "$base/nar/$small.nar" | sed 's/^/  /'
else
  echo "(wrk not installed: apt-get install wrk to add a wrk run)"
fi
echo "server peak RSS: $(grep VmHWM /proc/$PID/status | awk '{print $2, $3}')"
