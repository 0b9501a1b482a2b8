#!/usr/bin/env bash
# Throughput of `narfs fetch` from a local Kubo gateway next to `curl` of the same
# DAG as one CAR from that gateway (`/ipfs/ROOT?format=car`), in one run. The tree:
# /usr/lib/x86_64-linux-gnu (shared libraries, many files) plus big files of random
# bytes up to $SIZE_MIB MiB in all (default 1024), dumped to one NAR, encoded into a
# narfs store and published into a fresh Kubo daemon (offline, loopback only).
# Timed, each into an empty store:
#   curl CAR          one request for the whole DAG, body to /dev/null (no checks)
#   narfs fetch       default: into an empty store the root, then the whole DAG as one
#                     CAR (else a node's missing leaves as one CAR, 8 requests in flight)
#   narfs fetch --per-block   every block its own ?format=raw request
#   narfs fetch --compress    default, the blocks stored zstd -1 (as `encode` does)
#   narfs fetch again         the same root into the store that holds it: no request,
#                             the walk and the decode only (where the rest goes)
# narfs verifies every block once, on arrival, writes it into its store (as it came,
# unless --compress) and decodes the NAR as blocks arrive to /dev/null; the NarHash it
# reports is checked.
# MB/s are NAR bytes over wall time; the ratio is curl's time over narfs's.
#
# Usage: benches/fetch.sh [SIZE_MIB]   (needs ipfs on PATH or in $HOME/go/bin, curl)
source "$(dirname "$0")/lib.sh"
need_ipfs
SIZE_MIB=${1:-1024}

# The tree, its NAR, the publisher's store; then only the NAR stays.
mkdir -p "$W/tree/big"
cp -a /usr/lib/x86_64-linux-gnu "$W/tree/lib" 2>/dev/null || true
have=$(du -sm "$W/tree" | cut -f1)
i=0
while [ "$have" -lt "$SIZE_MIB" ]; do
  n=$(( SIZE_MIB - have < 96 ? SIZE_MIB - have : 96 ))
  head -c "$((n << 20))" /dev/urandom >"$W/tree/big/random-$i"
  have=$((have + n)); i=$((i + 1))
done
"$N" nar dump "$W/tree" -o "$W/tree.nar"
rm -rf "$W/tree"
bytes=$(stat -c %s "$W/tree.nar")
enc=$("$N" encode --json --store "$W/pub" --name tree "$W/tree.nar")
root=$(echo "$enc" | python3 -c 'import json,sys; print(json.load(sys.stdin)["root"])')
hash=$(echo "$enc" | python3 -c 'import json,sys; print(json.load(sys.stdin)["nar_hash"])')

kubo kubo nofetch
repo=$W/kubo
"$N" publish --store "$W/pub" --ipfs-api "$API" tree >/dev/null
rm -rf "$W/pub"
blocks=$(IPFS_PATH=$repo ipfs dag stat --progress=false --enc=json "$root" | python3 -c 'import json,sys; print(json.load(sys.stdin)["TotalBlocks"])' 2>/dev/null || echo "?")

echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); $(ipfs version)"
echo "NAR: $bytes bytes, DAG $root: $blocks blocks"
printf '%-28s %8s %8s %6s\n' method seconds "MB/s" ratio
# Warm Kubo's caches the same way for every method: one untimed CAR first.
curl -sf -o /dev/null -H 'Accept: application/vnd.ipld.car' "$GW/ipfs/$root?format=car&dag-scope=all"
t=$(now)
curl -sf -o /dev/null -H 'Accept: application/vnd.ipld.car' "$GW/ipfs/$root?format=car&dag-scope=all"
s_curl=$(secs "$t")
printf '%-28s %8s %8s %6s\n' "curl CAR" "$s_curl" "$(mbs "$bytes" "$s_curl")" 1.00
for mode in --per-block --compress default again; do
  args=()
  case $mode in
    default) rm -rf "$W/client" ;;
    again) ;; # everything stored: the walk and the decode alone
    *) rm -rf "$W/client"; args=("$mode") ;;
  esac
  t=$(now)
  "$N" fetch "${args[@]}" --gateway "$GW" --store "$W/client" "$root" 2>"$W/err" >"$W/out"
  s=$(secs "$t")
  grep -q " $hash $bytes\$" "$W/out" || { echo "wrong NAR: $(cat "$W/out")" >&2; exit 1; }
  printf '%-28s %8s %8s %6s\n' "narfs fetch $mode" "$s" "$(mbs "$bytes" "$s")" \
    "$(awk -v a="$s_curl" -v b="$s" 'BEGIN { printf "%.2f", a / b }')"
  sed 's/^/    /' "$W/err"
done
