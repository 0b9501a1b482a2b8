#!/usr/bin/env bash
# Throughput of `narfs publish` into a local Kubo, next to Kubo's own ways in, in one
# run: for the corpus (corpus/*.nar) and a bigger tree (/usr/lib/python3.*, dumped to
# one NAR; skipped if absent), each into a fresh Kubo daemon (offline, loopback only):
#   narfs publish     NARs encoded into a narfs store beforehand; timed: the publish
#   ipfs add -r       the same trees (restored from the NARs), --cid-version=1
#   ipfs dag import   the CARs narfs wrote beforehand (`narfs car export`)
# and what publishing again costs: `narfs publish` of roots already pinned, and
# `ipfs dag import` of the same CARs again (Kubo re-reads and rewrites every block).
# MB/s are NAR bytes over wall time; ratios are to `ipfs add -r` of the same run.
#
# Usage: benches/publish.sh          (needs ipfs on PATH or in $HOME/go/bin)
# Every daemon is stopped by its PID on exit, whatever happens.
source "$(dirname "$0")/lib.sh"
need_ipfs

# Trees: set name → directory of NARs.
mkdir -p "$W/sets/corpus"
cp corpus/*.nar "$W/sets/corpus/"
py=$(ls -d /usr/lib/python3.* 2>/dev/null | head -1 || true)
if [ -n "$py" ]; then
  mkdir -p "$W/sets/python"
  "$N" nar dump "$py" -o "$W/sets/python/$(basename "$py").nar"
fi

echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); $(ipfs version)"
printf '%-8s %10s %6s | %-26s %8s %7s %6s\n' set "NAR bytes" NARs method seconds "MB/s" ratio
for set in $(ls "$W/sets"); do
  d=$W/sets/$set
  bytes=$(cat "$d"/*.nar | wc -c)
  count=$(ls "$d"/*.nar | wc -l)
  store=$W/store-$set
  names=()
  mkdir -p "$W/trees-$set" "$W/cars-$set"
  for nar in "$d"/*.nar; do
    name=$(basename "$nar" .nar)
    "$N" encode --store "$store" --name "$name" "$nar" >/dev/null
    "$N" car export --store "$store" "$name" -o "$W/cars-$set/$name.car"
    "$N" nar restore "$nar" "$W/trees-$set/$name"
    names+=("$name")
  done

  kubo "narfs-$set"
  t=$(now); "$N" publish --store "$store" --ipfs-api "$API" "${names[@]}" >"$W/pub-$set"; s_pub=$(secs "$t")
  t=$(now); "$N" publish --store "$store" --ipfs-api "$API" "${names[@]}" >"$W/pub2-$set"; s_pub2=$(secs "$t")
  grep -c "already pinned" "$W/pub2-$set" | grep -qx "$count" || { echo "second publish sent something" >&2; exit 1; }

  kubo "add-$set"
  t=$(now); IPFS_PATH=$W/add-$set ipfs add -r -Q --cid-version=1 --progress=false "$W/trees-$set"/* >/dev/null; s_add=$(secs "$t")

  kubo "car-$set"
  t=$(now); IPFS_PATH=$W/car-$set ipfs dag import --pin-roots "$W/cars-$set"/*.car >/dev/null; s_car=$(secs "$t")
  t=$(now); IPFS_PATH=$W/car-$set ipfs dag import --pin-roots "$W/cars-$set"/*.car >/dev/null; s_car2=$(secs "$t")

  row() { printf '%-8s %10s %6s | %-26s %8s %7s %6s\n' "$set" "$bytes" "$count" "$1" "$2" "$(mbs "$bytes" "$2")" \
    "$(awk -v a="$s_add" -v b="$2" 'BEGIN { printf "%.2f", a / b }')"; }
  row "ipfs add -r (reference)" "$s_add"
  row "narfs publish" "$s_pub"
  row "ipfs dag import (narfs CAR)" "$s_car"
  row "narfs publish, again" "$s_pub2"
  row "ipfs dag import, again" "$s_car2"
  sent=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "bytes") s += substr($(i-1), 2) } END { print s }' "$W/pub-$set")
  echo "           first publish sent $sent bytes of CAR; the second sent 0 (roots already pinned)"
done
echo "ratio = (ipfs add -r seconds) / (method seconds): above 1 is faster than ipfs add -r"
