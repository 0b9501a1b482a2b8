#!/usr/bin/env bash
# What `narfs store repack` costs an operator whose cache grows one version at a time:
# a store of CORPUS's NARs but the last STEPS (manifest order, FastCDC 4/16/64 KiB,
# each encoded by name), repacked in full; then, for each variant of repack, a copy of
# that store gets each step's NAR added and is repacked again after each. Per step and
# variant: packs replaced and written, bytes written (what a mirror of the store's
# packs must fetch again), the repack's time, the store's stored bytes × Σ `zstd -19`
# of the NARs in it, and the read amplification of decoding every item (bytes of packs
# decompressed / NAR bytes, `narfs decode --pack-stats`, a fresh process per NAR).
#
# Usage: benches/repack_update.sh   (CORPUS=/tmp/narfs-large; STEPS=2: the manifest's
# last NARs are added one at a time, or ADD="numpy-1.26.4 scipy-1.13.1" names them;
# VARIANTS="name=repack flags;…", default "full=;incremental=--incremental")
source "$(dirname "$0")/lib.sh"
CORPUS=${CORPUS:-/tmp/narfs-large}
[ -d "$CORPUS" ] || bash corpus/build.sh large "$CORPUS"
STEPS=${STEPS:-2}
VARIANTS=${VARIANTS:-"full=;incremental=--incremental"}
CHUNKER=${CHUNKER:-fastcdc:4096:16384:65536}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/narfs/zstd19
mkdir -p "$CACHE"

NARS=()
while IFS=$'\t' read -r f _; do
  [ -f "$CORPUS/$f" ] && NARS+=("$CORPUS/$f")
done < <(grep -v '^#' "$CORPUS/MANIFEST.tsv" | grep -v '^file')
# ADD="name …": those NARs are the steps, in that order, the others the base.
if [ -n "${ADD:-}" ]; then
  read -ra STEP_NAMES <<<"$ADD"
  KEEP=() LATER=()
  for n in "${NARS[@]}"; do
    case " $ADD " in *" $(basename "$n" .nar) "*) ;; *) KEEP+=("$n") ;; esac
  done
  for a in "${STEP_NAMES[@]}"; do LATER+=("$CORPUS/$a.nar"); done
  NARS=("${KEEP[@]}" "${LATER[@]}")
  STEPS=${#LATER[@]}
fi
BASE=$((${#NARS[@]} - STEPS))
name() { basename "$1" .nar; }

# zstd19 NAR: its `zstd -19 -T1` size, cached by sha256 (the format disk.sh shares).
zstd19() {
  local sha
  sha=$(sha256sum "$1" | cut -d' ' -f1)
  if [ ! -s "$CACHE/$sha" ]; then
    zstd -19 -T1 -q -c "$1" | wc -c >"$CACHE/$sha.tmp$$" && mv "$CACHE/$sha.tmp$$" "$CACHE/$sha"
  fi
  cat "$CACHE/$sha"
}

# measure STORE COUNT: "stored×seed amplification" over the first COUNT NARs.
measure() {
  local st=$1 count=$2 seed=0 bytes=0 i stored
  : >"$W/amp"
  for ((i = 0; i < count; i++)); do
    seed=$((seed + $(zstd19 "${NARS[$i]}")))
    bytes=$((bytes + $(stat -c %s "${NARS[$i]}")))
    "$N" decode --store "$st" --pack-stats "$(name "${NARS[$i]}")" >/dev/null 2>>"$W/amp"
  done
  stored=$("$N" stats --json --store "$st" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored_bytes"])')
  awk -v s="$stored" -v z="$seed" -v b="$bytes" '{ gsub(/[()]/, ""); a += $4 }
    END { printf "%.3f %.2f", s / z, a / b }' "$W/amp"
}

# repack STORE FLAGS…: prints "json seconds"
repack() {
  local st=$1 s out
  shift
  s=$(now)
  out=$("$N" store repack --json --store "$st" "$@")
  echo "$out $(secs "$s")"
}

row() { # phase variant json seconds count store
  local j=$3 t=$4
  read -r z a <<<"$(measure "$6" "$5")"
  python3 - "$1" "$2" "$j" "$t" "$z" "$a" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import json, sys
phase, variant, j, t, z, a, load = sys.argv[1:]
r = json.loads(j)
total = r["packs_written"] + r["packs_kept"]
print(f"| {phase} | {variant} | {r['packs_read']} | {r['packs_written']} | {r['packs_kept']} "
      f"| {r['packs_written'] / max(total, 1):.2f} | {r['bytes_after'] / 2**20:.1f} "
      f"| {r['blocks_moved']} | {float(t):.1f} | {z} | {a} | {load} |")
PY
}

echo "corpus: $CORPUS, base ${BASE} NARs then $STEPS added one at a time ($CHUNKER); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| phase | repack | packs replaced | packs written | packs kept | written / packs after | MiB written | blocks moved | repack s | stored × seed | read ampl. | load |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
base=$W/base
s=$(now)
for ((i = 0; i < BASE; i++)); do
  "$N" encode --store "$base" --chunker "$CHUNKER" --name "$(name "${NARS[$i]}")" "${NARS[$i]}" >/dev/null
done
echo "encode of the base: $(secs "$s") s" >&2
read -r j t <<<"$(repack "$base")"
row "base ($BASE items), first repack" full "$j" "$t" "$BASE" "$base"
IFS=';' read -ra VS <<<"$VARIANTS"
for v in "${VS[@]}"; do
  vname=${v%%=*} vflags=${v#*=}
  st=$W/$vname
  cp -a "$base" "$st"
  for ((i = BASE; i < ${#NARS[@]}; i++)); do
    n=${NARS[$i]}
    "$N" encode --store "$st" --chunker "$CHUNKER" --name "$(name "$n")" "$n" >/dev/null
    # shellcheck disable=SC2086
    read -r j t <<<"$(repack "$st" $vflags)"
    row "+ $(name "$n")" "$vname" "$j" "$t" "$((i + 1))" "$st"
  done
  # shellcheck disable=SC2086
  read -r j t <<<"$(repack "$st" $vflags)"
  row "again, nothing added" "$vname" "$j" "$t" "${#NARS[@]}" "$st"
  "$N" store verify --store "$st" >/dev/null
  rm -rf "$st"
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
