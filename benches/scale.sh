#!/usr/bin/env bash
# benches/scale.sh — a store for a whole binary cache: `narfs import` of synthetic Nix
# file caches (benches/gen_cache.py: realistic item sizes and shapes, NARs
# uncompressed) of SMALL and BIG items, and of SMALL items all under 16 KiB; items/s,
# MB/s, peak RSS and store size of each import (linear when items/s at SMALL and BIG
# agree), then at BIG roots: decode by name (hyperfine, against the same item in a
# store of one root: the difference is the lookup), narinfo lookups under `narfs serve`
# (wrk, random store paths) and both in process (narfs-lookup-latency: median, p99),
# and `store gc` (mark and sweep of everything) time and RSS; then gc at GC_BLOCKS
# blocks (stores made by the bench-only narfs-fill-store: one dag-pb node over 50
# small leaves per item, one item in ten unrooted) with time, peak RSS and peak
# anonymous RSS (sampled from /proc), and `store compact` after it; finally
# `nix copy --to file://` of NIX_N items from a Nix store (a chroot store filled from
# a generated cache) against `narfs import` of the same items, in the same run.
#
# Usage: benches/scale.sh            SMALL=10000 BIG=100000 by default
#        NARFS_BEFORE=/path/to/older/narfs benches/scale.sh   also imports OLD_N
#        (default 2000) items with that binary and this one, for a before/after ratio.
#        GC_BLOCKS="1000000 3000000 10000000" (default; "" for none), NIX_N=1000.
#        ONLY=gc or ONLY=nix: that part alone.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SMALL=${SMALL:-10000}
BIG=${BIG:-100000}
OLD_N=${OLD_N:-2000}
GC_BLOCKS=${GC_BLOCKS-1000000 3000000 10000000}
NIX_N=${NIX_N:-1000}
ONLY=${ONLY:-}
cargo build --release -q -p narfs-benches --bins
FILL=$PWD/target/release/narfs-fill-store
LOOKUP=$PWD/target/release/narfs-lookup-latency
echo "# load: $(uptime)"

# peak CMD...: runs CMD, then prints its wall time, peak RSS and peak anonymous RSS
# (RssAnon sampled every 20 ms: RSS also counts the block table's pages LMDB's
# writer maps, which are page cache shared with every reader, not memory narfs
# holds).
peak() {
  local t0 pid anon=0 a rss
  t0=$(now)
  /usr/bin/time -f "%M" -o "$W/rss" "$@" > "$W/peak.out" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for c in $(pgrep -P "$pid"); do
      a=$(awk '/^RssAnon/ { print $2 }' "/proc/$c/status" 2>/dev/null || echo 0)
      [ "${a:-0}" -gt "$anon" ] && anon=$a
    done
    sleep 0.02
  done
  wait "$pid"
  rss=$(tail -1 "$W/rss")
  echo "$(secs "$t0") s, peak RSS $((rss / 1024)) MB, peak RssAnon $((anon / 1024)) MB: $(head -c 300 "$W/peak.out")"
}

gc_blocks() {
  echo "# gc at GC_BLOCKS blocks (narfs-fill-store; default gc memory 64 MiB)"
  for n in $GC_BLOCKS; do
    local s=$W/s-fill t0
    t0=$(now)
    "$FILL" "$s" "$n" > "$W/fill.out"
    echo "fill $n blocks: $(secs "$t0") s ($(cat "$W/fill.out")), $(du -sb "$s" | cut -f1) bytes"
    echo "gc at $n blocks: $(peak "$N" store gc --store "$s")"
    echo "compact: $(peak "$N" store compact --store "$s")"
    echo "# load: $(uptime)"
    rm -rf "$s"
  done
}

nix_copy() {
  command -v nix >/dev/null || { echo "nix copy: needs nix (apt-get install nix-bin)"; return; }
  echo "# nix copy --to file:// vs narfs import, $NIX_N items (a chroot Nix store filled from a generated cache, not timed)"
  local bytes t0
  bytes=$(gen "$W/c-nix" "$NIX_N" --seed 5 --paths "$W/nix.paths")
  nix --extra-experimental-features nix-command copy --no-check-sigs \
    --from "file://$W/c-nix" --to "local?root=$W/nix-root" $(cat "$W/nix.paths") 2>/dev/null
  for how in "" "?compression=zstd" "?compression=none"; do
    t0=$(now)
    nix --extra-experimental-features nix-command copy --from "local?root=$W/nix-root" \
      --to "file://$W/nix-out${how//[?=]/-}$how" $(cat "$W/nix.paths") 2>/dev/null
    awk -v h="nix copy --to file://${how:-(xz)}" -v n="$NIX_N" -v b="$bytes" -v s="$(secs "$t0")" \
      'BEGIN { printf "%-40s %7.2f s  %7.0f items/s  %6.1f MB/s\n", h, s, n / s, b / s / 1e6 }'
  done
  import "narfs import, same items" "$N" "$W/c-nix" "$W/s-nix" "$NIX_N" "$bytes"
}

gen() { python3 benches/gen_cache.py "$@"; }

# import NAME BINARY CACHE STORE ITEMS NAR_BYTES: one line of figures.
import() {
  local name=$1 bin=$2 cache=$3 store=$4 items=$5 bytes=$6 t0 s rss size
  t0=$(now)
  /usr/bin/time -f "%M" -o "$W/rss" "$bin" import "$cache" --store "$store" >/dev/null
  s=$(secs "$t0")
  rss=$(tail -1 "$W/rss")
  size=$(du -sb "$store" | cut -f1)
  awk -v n="$name" -v i="$items" -v b="$bytes" -v s="$s" -v r="$rss" -v z="$size" 'BEGIN {
    printf "%-22s %7d items %8.1f MB NAR  %7.2f s  %7.0f items/s  %6.1f MB/s  RSS %5.0f MB  store %7.1f MB\n",
      n, i, b / 1e6, s, i / s, b / s / 1e6, r / 1024, z / 1e6 }'
}

if [ "$ONLY" = gc ]; then gc_blocks; exit; fi
if [ "$ONLY" = nix ]; then nix_copy; exit; fi

echo "# generating caches (python, not timed)"
small_bytes=$(gen "$W/c-small" "$SMALL" --seed 1)
tiny_bytes=$(gen "$W/c-tiny" "$SMALL" --seed 2 --max-item 16384)
big_bytes=$(gen "$W/c-big" "$BIG" --seed 3 --paths "$W/big.paths")

echo "# import (one write session, default jobs = CPUs)"
if [ -n "${NARFS_BEFORE:-}" ]; then
  old_bytes=$(gen "$W/c-old" "$OLD_N" --seed 4)
  import "before, $OLD_N items" "$NARFS_BEFORE" "$W/c-old" "$W/s-old-before" "$OLD_N" "$old_bytes"
  import "after, $OLD_N items" "$N" "$W/c-old" "$W/s-old-after" "$OLD_N" "$old_bytes"
fi
import "items < 16 KiB" "$N" "$W/c-tiny" "$W/s-tiny" "$SMALL" "$tiny_bytes"
import "mixed, $SMALL" "$N" "$W/c-small" "$W/s-small" "$SMALL" "$small_bytes"
import "mixed, $BIG" "$N" "$W/c-big" "$W/s-big" "$BIG" "$big_bytes"
"$N" store stats --store "$W/s-big"

echo "# decode by name at $BIG roots vs 1 root (hyperfine; the difference is the lookup)"
name=$(sed -n "$((BIG / 2))p" "$W/big.paths")
"$N" decode "$name" --store "$W/s-big" > "$W/one.nar"
"$N" encode "$W/one.nar" --name "$name" --store "$W/s-one" >/dev/null
hyperfine -N --warmup 3 --runs 40 --output=null \
  -n "decode at $BIG roots" "$N decode $name --store $W/s-big" \
  -n "decode at 1 root" "$N decode $name --store $W/s-one" 2>&1 | grep -E "Time|±|decode at" || true

echo "# narinfo lookups under narfs serve at $BIG roots (wrk, 1 thread, 4 connections, 10 s)"
"$N" serve --store "$W/s-big" --listen 127.0.0.1:0 > "$W/serve.url" 2>"$W/serve.log" &
PIDS+=($!)
for _ in $(seq 200); do [ -s "$W/serve.url" ] && break; sleep 0.05; done
url=$(head -1 "$W/serve.url")
awk -F/ '{ print substr($4, 1, 32) }' "$W/big.paths" > "$W/hashes"
cat > "$W/narinfo.lua" <<LUA
local hashes = {}
for l in io.lines("$W/hashes") do hashes[#hashes + 1] = l end
math.randomseed(7)
request = function() return wrk.format("GET", "/" .. hashes[math.random(#hashes)] .. ".narinfo") end
local bad = 0
response = function(status) if status ~= 200 then bad = bad + 1 end end
done = function() io.write("non-200 answers: " .. bad .. "\n") end
LUA
wrk -t1 -c4 -d10s --latency -s "$W/narinfo.lua" "$url" | grep -E "Latency|50%|99%|Requests/sec|non-200"
echo "# the same two lookups in process (no process start, no HTTP), 10,000 random items each"
"$LOOKUP" "$W/s-big" "$W/big.paths" 10000

echo "# gc at $BIG roots (mark every DAG, sweep nothing)"
echo "gc: $(peak "$N" store gc --store "$W/s-big")"
echo "# load: $(uptime)"
nix_copy
echo "# load: $(uptime)"
gc_blocks
