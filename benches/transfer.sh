#!/usr/bin/env bash
# Transfer cost of an update over IPFS, in one table: for each package's version series
# in a corpus (MANIFEST.tsv order: package, then version), the bytes a client that holds
# version N moves to get N+1,
#   narfs fetch    through a Kubo gateway, into the store that holds N: the block bytes
#                  it fetched (every block verified against its CID) and its requests
#   seed           one compressed NAR per item, as `guix publish --ipfs-api` put into
#                  IPFS: the `zstd -19` NAR
#   nix copy       a plain `nix copy --to file://` (xz): the FileSize of its .nar.xz
# The first version of each package is what every method moves in full; it is shown
# per package but left out of the update totals.
#
# The NARs are encoded into a narfs store (default chunker), published into one Kubo
# daemon (offline, loopback only, Gateway.NoFetch), and fetched through its gateway by
# `narfs fetch`, which reports what it fetched and what it reused.
#
# Usage: benches/transfer.sh [CORPUS_DIR]   default corpus/; the large series:
#        bash corpus/build.sh large /tmp/narfs-large && benches/transfer.sh /tmp/narfs-large
# Needs: ipfs (.ci/kubo.sh), nix-store + nix (Debian nix-bin), zstd.
source "$(dirname "$0")/lib.sh"
need_ipfs
CORPUS=$(cd "${1:-corpus}" && pwd)
for tool in nix-store nix zstd; do
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
  root=$("$N" encode --json --store "$W/pub" --name "${f%.nar}" "$CORPUS/$f" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["root"])')
  echo "$f $p $root"
done <"$W/series" >"$W/roots"
"$N" publish --store "$W/pub" --ipfs-api "$API" $(awk '{ sub(/\.nar$/, "", $1); print $1 }' "$W/series") >/dev/null

# The size `nix copy --to file://` gives the item, from the narinfo it writes.
nix_copy_size() {
  local tree=$W/tree-$1 path
  "$N" nar restore "$2" "$tree"
  path=$(nix-store --add "$tree")
  nix --extra-experimental-features nix-command copy --to "file://$W/nixcache" "$path" 2>/dev/null
  awk '/^FileSize:/ { print $2 }' "$W/nixcache/$(basename "$path" | cut -c1-32).narinfo"
  rm -rf "$tree"
}

echo "machine: $(nproc) CPUs; $(ipfs version); corpus $CORPUS"
fmt='%-34s %11s %11s %6s %11s %11s\n'
printf "$fmt" item "NAR" "narfs" reqs "zstd -19" "nix copy"
prev=
tn=0; tz=0; tx=0; tb=0; count=0
while read -r f p root; do
  [ "$p" = "$prev" ] || rm -rf "$W/client"
  line=$("$N" fetch --gateway "$GW" --store "$W/client" "$root" 2>&1 >/dev/null)
  got=$(echo "$line" | sed -n 's/.*fetched [0-9]* blocks (\([0-9]*\) bytes) in \([0-9]*\) requests.*/\1 \2/p')
  [ -n "$got" ] || { echo "transfer.sh: unexpected fetch output: $line" >&2; exit 1; }
  set -- $got
  nar=$(stat -c %s "$CORPUS/$f")
  z=$(zstd -19 -T0 -q -c "$CORPUS/$f" | wc -c)
  x=$(nix_copy_size "$count" "$CORPUS/$f")
  label=${f%.nar}
  if [ "$p" = "$prev" ]; then
    tn=$((tn + $1)); tz=$((tz + z)); tx=$((tx + x)); tb=$((tb + nar))
  else
    label="$label (first)"
  fi
  printf "$fmt" "$label" "$nar" "$1" "$2" "$z" "$x"
  prev=$p; count=$((count + 1))
done <"$W/roots"
printf "$fmt" "updates, total" "$tb" "$tn" "" "$tz" "$tx"
awk -v n="$tn" -v z="$tz" -v x="$tx" -v b="$tb" 'BEGIN {
  printf "updates: narfs moves %.3f of the NAR bytes, %.2f x the zstd -19 NARs, %.2f x nix copy (xz)\n", n / b, n / z, n / x }'
