#!/usr/bin/env bash
# Transfer cost of an update over IPFS, in one table: for each package's version series
# in a corpus (MANIFEST.tsv order: package, then version), the bytes a client that holds
# version N moves to get N+1,
#   narfs fetch    through a Kubo gateway, into the store that holds N: the block bytes
#                  it fetched (every block verified against its CID) and its requests
#   wire zstd      the same fetch through `narfs serve` as the gateway, zstd negotiated
#                  (Content-Encoding), `--no-delta`: the bytes it received on the wire
#   wire delta     the same fetch through `narfs serve` with narfs's delta transfer (the
#                  default): each changed file zstd-compressed against the previous
#                  version's file at the same path, which the client holds (its default
#                  base: the record of the same package, named by the server's probe)
#   seed           one compressed NAR per item, as `guix publish --ipfs-api` put into
#                  IPFS: the `zstd -19` NAR (the size cached by the NAR's sha256 under
#                  ~/.cache/narfs/zstd19, the experiment's cache, computed if missing)
#   nix copy       a plain `nix copy --to file://` (xz): the FileSize of its .nar.xz
#                  (NIX_COPY=0 skips it: xz -6 of a large corpus takes many minutes)
# The first version of each package is what every method moves in full; it is shown
# per package but left out of the update totals.
#
# Then the speed of `/nar/<cid>.nar.zst` (`narfs serve --nar-compression zstd`, made
# from the store on the fly) against `curl` of the raw NAR files from
# `python3 -m http.server`, both over loopback in the same run: MB of NAR per second.
#
# The NARs are encoded into a narfs store (CHUNKER=fixed:N|fastcdc:MIN:AVG:MAX, else
# the profile's), published into one Kubo daemon (offline, loopback only,
# Gateway.NoFetch), and fetched through its gateway by `narfs fetch`, which reports
# what it fetched and what it reused.
#
# Usage: benches/transfer.sh [CORPUS_DIR]   default corpus/; the large series:
#        bash corpus/build.sh large /tmp/narfs-large && benches/transfer.sh /tmp/narfs-large
# Needs: ipfs (.ci/kubo.sh), nix-store + nix (Debian nix-bin), zstd, curl, python3.
source "$(dirname "$0")/lib.sh"
need_ipfs
CORPUS=$(cd "${1:-corpus}" && pwd)
NIX_COPY=${NIX_COPY:-1}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/narfs/zstd19
for tool in nix-store nix zstd curl python3; do
  command -v $tool >/dev/null || { echo "transfer.sh: needs $tool" >&2; exit 1; }
done
manifest=$CORPUS/MANIFEST.tsv
[ -f "$manifest" ] || manifest=$(ls "$CORPUS"/*MANIFEST.tsv | head -1)

# file package, in the manifest's order, only NARs present.
awk -F'\t' 'NR > 1 { print $1, $2 }' "$manifest" | while read -r f p; do
  [ -f "$CORPUS/$f" ] && echo "$f $p"
done >"$W/series"

kubo kubo nofetch
while read -r f p; do
  root=$("$N" encode --json --store "$W/pub" ${CHUNKER:+--chunker "$CHUNKER"} --name "${f%.nar}" "$CORPUS/$f" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["root"])')
  echo "$f $p $root"
done <"$W/series" >"$W/roots"
"$N" publish --store "$W/pub" --ipfs-api "$API" $(awk '{ sub(/\.nar$/, "", $1); print $1 }' "$W/series") >/dev/null

"$N" serve --store "$W/pub" --listen 127.0.0.1:0 >"$W/serve.url" 2>"$W/serve.log" &
PIDS+=($!)
for _ in $(seq 200); do [ -s "$W/serve.url" ] && break; sleep 0.05; done
SERVE=$(head -1 "$W/serve.url")

# `zstd -19` of a NAR, cached by its sha256 as `narfs experiment` does.
zstd19() {
  local sha z
  sha=$(sha256sum "$1" | cut -d' ' -f1)
  if [ -s "$CACHE/$sha" ]; then cat "$CACHE/$sha"; return; fi
  z=$(zstd -19 -T0 -q -c "$1" | wc -c)
  mkdir -p "$CACHE" && echo "$z" >"$CACHE/$sha.tmp$$" && mv "$CACHE/$sha.tmp$$" "$CACHE/$sha"
  echo "$z"
}

# The size `nix copy --to file://` gives the item, from the narinfo it writes.
nix_copy_size() {
  local tree=$W/tree-$1 path
  "$N" nar restore "$2" "$tree"
  path=$(nix-store --add "$tree")
  nix --extra-experimental-features nix-command copy --to "file://$W/nixcache" "$path" 2>/dev/null
  awk '/^FileSize:/ { print $2 }' "$W/nixcache/$(basename "$path" | cut -c1-32).narinfo"
  rm -rf "$tree"
}

echo "machine: $(nproc) CPUs; $(ipfs version); corpus $CORPUS; chunker ${CHUNKER:-default}; load $(cut -d' ' -f1-3 /proc/loadavg)"
fmt='%-34s %11s %11s %6s %11s %11s %11s %11s\n'
printf "$fmt" item "NAR" "narfs" reqs "wire zstd" "wire delta" "zstd -19" "nix copy"
prev=
tn=0; tw=0; td=0; tz=0; tx=0; tb=0; count=0
# fetch GATEWAY STORE ROOT [ARGS…]: "block-bytes requests wire-bytes" of narfs fetch's
# summary.
fetch() {
  local line got
  line=$("$N" fetch --gateway "$1" --store "$2" "${@:4}" "$3" 2>&1 >/dev/null)
  got=$(echo "$line" | sed -n 's/.*fetched [0-9]* blocks (\([0-9]*\) bytes) in \([0-9]*\) requests (\([0-9]*\) bytes on the wire).*/\1 \2 \3/p')
  [ -n "$got" ] || { echo "transfer.sh: unexpected fetch output: $line" >&2; exit 1; }
  echo "$got"
}
while read -r f p root; do
  [ "$p" = "$prev" ] || rm -rf "$W/client" "$W/client-z" "$W/client-d"
  set -- $(fetch "$GW" "$W/client" "$root" --no-delta)
  blocks=$1 reqs=$2
  set -- $(fetch "$SERVE" "$W/client-z" "$root" --no-delta)
  wire=$3
  set -- $(fetch "$SERVE" "$W/client-d" "$root")
  delta=$3
  nar=$(stat -c %s "$CORPUS/$f")
  z=$(zstd19 "$CORPUS/$f")
  x=-
  [ "$NIX_COPY" = 0 ] || x=$(nix_copy_size "$count" "$CORPUS/$f")
  label=${f%.nar}
  if [ "$p" = "$prev" ]; then
    tn=$((tn + blocks)); tw=$((tw + wire)); td=$((td + delta)); tz=$((tz + z)); tb=$((tb + nar))
    [ "$x" = - ] || tx=$((tx + x))
  else
    label="$label (first)"
  fi
  printf "$fmt" "$label" "$nar" "$blocks" "$reqs" "$wire" "$delta" "$z" "$x"
  prev=$p; count=$((count + 1))
done <"$W/roots"
[ "$NIX_COPY" = 0 ] && tx=-
printf "$fmt" "updates, total" "$tb" "$tn" "" "$tw" "$td" "$tz" "$tx"
awk -v n="$tn" -v w="$tw" -v d="$td" -v z="$tz" -v x="$tx" -v b="$tb" 'BEGIN {
  printf "updates: narfs moves %.3f of the NAR bytes, %.2f x the zstd -19 NARs", n / b, n / z
  if (x != "-") printf ", %.2f x nix copy (xz)", n / x
  printf "\nupdates compressed on the wire (narfs serve, zstd): %.3f of the NAR bytes, %.3f x the zstd -19 NARs\n", w / b, w / z
  printf "updates with the delta transfer (narfs serve, delta): %.3f of the NAR bytes, %.3f x the zstd -19 NARs\n", d / b, d / z }'

# /nar/<cid>.nar.zst from narfs serve --nar-compression zstd vs the raw NARs from
# python3 -m http.server, every NAR of the corpus once each, one after the other.
"$N" serve --store "$W/pub" --listen 127.0.0.1:0 --nar-compression zstd >"$W/zserve.url" 2>>"$W/serve.log" &
PIDS+=($!)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$CORPUS" && exec python3 -m http.server --bind 127.0.0.1 "$port" >/dev/null 2>&1) &
PIDS+=($!)
for _ in $(seq 200); do [ -s "$W/zserve.url" ] && curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
ZSERVE=$(head -1 "$W/zserve.url")
total=$(awk '{ print $1 }' "$W/roots" | (cd "$CORPUS" && xargs stat -c %s) | awk '{ s += $1 } END { print s }')
echo "load before /nar: $(cut -d' ' -f1-3 /proc/loadavg)"
t=$(now); zbytes=0
while read -r f p root; do
  b=$(curl -sS -o /dev/null -w '%{size_download}' "$ZSERVE/nar/$root.nar.zst")
  zbytes=$((zbytes + b))
done <"$W/roots"
tz=$(secs "$t")
t=$(now)
while read -r f p root; do
  curl -sS -o /dev/null "http://127.0.0.1:$port/$f"
done <"$W/roots"
tr=$(secs "$t")
echo "load after /nar: $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v n="$total" -v z="$zbytes" -v tz="$tz" -v tr="$tr" 'BEGIN {
  printf "/nar zstd (narfs serve --nar-compression zstd): %.1f MB/s of NAR (%.1f s, %.3f of the NAR bytes on the wire)\n", n / tz / 1e6, tz, z / n
  printf "raw NARs (python3 -m http.server + curl):       %.1f MB/s (%.1f s); ratio %.2f\n", n / tr / 1e6, tr, tr / tz }'
