#!/usr/bin/env bash
# The store's disk cost and speed with each compression at rest, in one run: issue 20's
# disk target (≤ 0.5 × Σ `zstd -19` of each NAR, decode ≥ 1 GB/s) and issue 19's fresh
# store target (encode ≥ 0.5 × `openssl dgst -sha256`).
#
# For each configuration (compression × chunker) it encodes every NAR of CORPUS, in
# manifest order, into a fresh store through one write session (`narfs encode A B …`),
# then reports:
#   - disk: the LMDB data file as `du` counts it (real blocks on disk, free pages
#     included) and Σ stored values (`narfs stats`: packs, compressed and raw blocks),
#     each as a fraction of Σ `zstd -19 -T1` of each NAR (the seed's publish step;
#     sizes cached by the NAR's sha256 under $XDG_CACHE_HOME/narfs/zstd19, the format
#     `narfs experiment` shares, else measured now);
#   - encode into the fresh store, as a ratio to `openssl dgst -sha256` of the same
#     NARs measured in this run;
#   - decode from the store, every NAR by name, to /dev/null and to a file, as the
#     same ratio, and the packs' read amplification (bytes decompressed / NAR bytes,
#     `narfs decode --pack-stats`: a fresh process per NAR, so its cache starts empty);
# then, for the packed configurations, the same after `narfs store repack` (zstd -19,
# packs of REPACK_BYTES, narfs's default when unset), with the time repack took, and
# the disk once `narfs store compact` has rewritten the file without the pages repack
# freed. Each row ends with decode → null in GB/s and the 1-minute load when it was
# measured (the machine's other work makes every absolute figure noisy: compare the
# ratios).
#
# With REPACKS="name=repack flags;…" each variant repacks its own copy of the same
# first-write store (so variants compare on the same blocks, encoded once), e.g.
# REPACKS="write order 2 MiB=--layout write-order;grouped 4 MiB=--pack-bytes 4194304".
# With AMP_DIR=DIR each decode pass leaves the per-NAR `--pack-stats` lines there.
#
# Usage: benches/disk.sh   (CORPUS=/tmp/narfs-large, built by corpus/build.sh if
# missing; CONFIGS="name=encode flags;…" to choose others; REPACK_BYTES=N)
source "$(dirname "$0")/lib.sh"
CORPUS=${CORPUS:-/tmp/narfs-large}
[ -d "$CORPUS" ] || bash corpus/build.sh large "$CORPUS"
CONFIGS=${CONFIGS:-"pack (default: LZ4), fixed 256 KiB=;pack:1 (zstd -1 packs, the earlier default), fixed 256 KiB=--compression pack:1;pack, fastcdc 4/16/64 KiB=--chunker fastcdc:4096:16384:65536;block (zstd -1 per block, the earlier form), fixed 256 KiB=--compression block"}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/narfs/zstd19
mkdir -p "$CACHE"

NARS=()
if [ -f "$CORPUS/MANIFEST.tsv" ]; then
  while IFS=$'\t' read -r f _; do
    [ -f "$CORPUS/$f" ] && NARS+=("$CORPUS/$f")
  done < <(grep -v '^#' "$CORPUS/MANIFEST.tsv")
fi
[ ${#NARS[@]} -gt 0 ] || NARS=("$CORPUS"/*.nar)
NAMES=()
for n in "${NARS[@]}"; do NAMES+=("$(basename "$n" .nar)"); done

# The seed: Σ zstd -19 of each NAR, cached by sha256.
SEED=0 BYTES=0
for n in "${NARS[@]}"; do
  sha=$(sha256sum "$n" | cut -d' ' -f1)
  if [ ! -s "$CACHE/$sha" ]; then
    zstd -19 -T1 -q -c "$n" | wc -c >"$CACHE/$sha.tmp$$" && mv "$CACHE/$sha.tmp$$" "$CACHE/$sha"
  fi
  SEED=$((SEED + $(cat "$CACHE/$sha")))
  BYTES=$((BYTES + $(stat -c %s "$n")))
done

# The reference: openssl over every NAR, whole process each, as decode runs.
# Inputs are read through first, untimed: this machine's DAMON pages out page-cache
# pages untouched for 60 s, and a write session drops what it committed from the cache.
cat "${NARS[@]}" >/dev/null
s=$(now); for n in "${NARS[@]}"; do openssl dgst -sha256 "$n" >/dev/null; done; t=$(secs "$s")
OPENSSL=$(awk -v b="$BYTES" -v t="$t" 'BEGIN { printf "%.3f", b / t / 1e9 }')

echo "corpus: $CORPUS, ${#NARS[@]} NARs, $BYTES bytes; Σ zstd -19: $SEED bytes; openssl dgst -sha256: $OPENSSL GB/s; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| configuration | phase | file (du) × seed | stored × seed | encode × openssl | decode → null × openssl | decode → file × openssl | read ampl. | repack s | decode → null GB/s | load |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"

ratio() { awk -v b="$BYTES" -v t="$1" -v o="$OPENSSL" 'BEGIN { printf "%.2f", b / t / 1e9 / o }'; }
gbs() { awk -v b="$BYTES" -v t="$1" 'BEGIN { printf "%.2f", b / t / 1e9 }'; }
load() { cut -d' ' -f1 /proc/loadavg; }
REPACK=()
[ -n "${REPACK_BYTES:-}" ] && REPACK=(--pack-bytes "$REPACK_BYTES")

# decode_all STORE [TAG]: "null-ratio file-ratio amplification null-GB/s"
decode_all() {
  local st=$1 tag=${2:-} s t1 t2 amp=0 i
  find "$st" -type f -exec cat {} + >/dev/null
  s=$(now)
  for i in "${NAMES[@]}"; do "$N" decode --store "$st" --pack-stats "$i" >/dev/null 2>>"$W/amp"; done
  if [ -n "${AMP_DIR:-}" ] && [ -n "$tag" ]; then
    mkdir -p "$AMP_DIR"
    paste <(printf '%s\n' "${NAMES[@]}") "$W/amp" >"$AMP_DIR/$tag.txt"
  fi
  t1=$(secs "$s")
  find "$st" -type f -exec cat {} + >/dev/null
  s=$(now)
  for i in "${NAMES[@]}"; do "$N" decode --store "$st" -o "$W/out.nar" "$i"; done
  t2=$(secs "$s")
  rm -f "$W/out.nar"
  amp=$(awk -v b="$BYTES" '{ gsub(/[()]/, ""); s += $4 } END { printf "%.2f", s / b }' "$W/amp")
  rm -f "$W/amp"
  echo "$(ratio "$t1") $(ratio "$t2") $amp $(gbs "$t1")"
}

# disk STORE: "file-ratio stored-ratio"
disk() {
  local file stored
  file=$(du -B1 "$1/blocks/data.mdb" | cut -f1)
  stored=$("$N" stats --json --store "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored_bytes"])')
  awk -v f="$file" -v s="$stored" -v z="$SEED" 'BEGIN { printf "%.3f %.3f", f / z, s / z }'
}

IFS=';' read -ra CONFS <<<"$CONFIGS"
for conf in "${CONFS[@]}"; do
  name=${conf%%=*} flags=${conf#*=}
  st=$W/store
  rm -rf "$st"
  s=$(now)
  # shellcheck disable=SC2086
  "$N" encode --store "$st" $flags "${NARS[@]}" >"$W/roots"
  enc=$(ratio "$(secs "$s")")
  # Names, so that decode goes by name as a user would.
  i=0
  while read -r root; do
    "$N" encode --store "$st" $flags --name "${NAMES[$i]}" "${NARS[$i]}" >/dev/null
    i=$((i + 1))
  done <"$W/roots"
  read -r f z <<<"$(disk "$st")"
  read -r dn df amp g <<<"$(decode_all "$st" "${name//[^A-Za-z0-9]/_}-first")"
  echo "| $name | first write | $f | $z | $enc | $dn | $df | $amp | | $g | $(load) |"
  case "$flags" in *"compression block"*) continue ;; esac
  IFS=';' read -ra VARIANTS <<<"${REPACKS:--19=}"
  for variant in "${VARIANTS[@]}"; do
    vname=${variant%%=*} vflags=${variant#*=}
    vs=$W/variant
    rm -rf "$vs"
    cp -a "$st" "$vs"
    s=$(now)
    # shellcheck disable=SC2086
    "$N" store repack --store "$vs" "${REPACK[@]}" $vflags >/dev/null
    rt=$(secs "$s")
    read -r f z <<<"$(disk "$vs")"
    read -r dn df amp g <<<"$(decode_all "$vs" "${name//[^A-Za-z0-9]/_}-${vname//[^A-Za-z0-9]/_}")"
    echo "| $name | after repack $vname | $f | $z | | $dn | $df | $amp | $rt | $g | $(load) |"
    "$N" store compact --store "$vs" >/dev/null
    read -r f z <<<"$(disk "$vs")"
    s=$(now)
    "$N" store verify --store "$vs" >/dev/null
    vt=$(secs "$s")
    echo "| $name | after compact (verify: $vt s) | $f | $z | | | | | | | $(load) |"
    rm -rf "$vs"
  done
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
