#!/usr/bin/env bash
# benches/casync.sh — narfs's chunking strategies and casync side by side, on the
# same NARs, in one table.
#
# Owns: running `narfs experiment --json` over a corpus, running `casync make` over
# the same NARs (in the same order: MANIFEST.tsv's, else by name with versions
# sorted as numbers) into one chunk store per chunk-size setting, counting casync's
# unique chunk bytes (uncompressed, from the .caibx indexes; compressed, as the
# store holds them) and its wall time, and printing all of it with
# benches/casync_table.py.
#
# Usage:
#   bash benches/casync.sh [CORPUS_DIR]        # default: corpus/
#
# Environment:
#   NARFS                 the narfs binary (default: target/release/narfs, built if missing)
#   STRATEGIES            narfs --strategies list (default: narfs's sweep)
#   CASYNC_CHUNK_SIZES    space-separated MIN:AVG:MAX settings for casync
#                         (default: "16384:65536:262144 4096:16384:65536"; the first
#                         is casync's default)
#   CASYNC_COMPRESSIONS   space-separated casync --compression values (default: zstd;
#                         add xz for the slow, small setting)
#   KEEP                  1: keep the work directory (printed) instead of deleting it
#
# Needs: casync (Debian `casync`), python3, cargo (unless NARFS is given).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
CORPUS="$(cd "${1:-$ROOT/corpus}" && pwd)"
NARFS="${NARFS:-$ROOT/target/release/narfs}"
SIZES="${CASYNC_CHUNK_SIZES:-16384:65536:262144 4096:16384:65536}"
COMPRESSIONS="${CASYNC_COMPRESSIONS:-zstd}"

command -v casync >/dev/null || { echo "casync.sh: casync is not installed (apt-get install casync)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "casync.sh: python3 is needed" >&2; exit 1; }
if [ ! -x "$NARFS" ]; then
    (cd "$ROOT" && cargo build --release --bin narfs >&2)
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/narfs-casync.XXXXXX")"
if [ "${KEEP:-0}" = 1 ]; then
    echo "casync.sh: work directory $WORK" >&2
else
    trap 'rm -rf "$WORK"' EXIT
fi

echo "casync.sh: narfs experiment on $CORPUS" >&2
args=(experiment --corpus "$CORPUS" --json "$WORK/narfs.json")
[ -n "${STRATEGIES:-}" ] && args+=(--strategies "$STRATEGIES")
"$NARFS" "${args[@]}" >"$WORK/narfs.txt"

# casync gets the NARs in the order narfs used.
python3 "$HERE/casync_table.py" order "$WORK/narfs.json" >"$WORK/order"
[ -s "$WORK/order" ] || { echo "casync.sh: no NARs in $CORPUS" >&2; exit 1; }

: >"$WORK/casync.tsv"
for size in $SIZES; do
    for comp in $COMPRESSIONS; do
        name="casync:$size:$comp"
        echo "casync.sh: $name" >&2
        store="$WORK/store-$size-$comp"
        idx="$WORK/idx-$size-$comp"
        mkdir -p "$store" "$idx"
        start=$(date +%s.%N)
        while IFS= read -r nar; do
            casync make --compression="$comp" --chunk-size="$size" \
                --store="$store" "$idx/$nar.caibx" "$CORPUS/$nar" >/dev/null
        done <"$WORK/order"
        end=$(date +%s.%N)
        stored_compressed=$(find "$store" -type f -name '*.cacnk' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
        printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$comp" "$idx" "$stored_compressed" \
            "$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')" >>"$WORK/casync.tsv"
    done
done

python3 "$HERE/casync_table.py" table "$CORPUS" "$WORK/narfs.json" "$WORK/casync.tsv" "$WORK/order"
