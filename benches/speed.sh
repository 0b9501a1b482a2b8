#!/usr/bin/env bash
# narfs against the machine's ceilings, in one run: issue 19's table.
#
# For a large-file NAR and a small-file NAR it measures, page cache warm:
#   - the references: `openssl dgst -sha256` of the NAR (the NarHash stream's speed,
#     whole process) and the primitives on one core (benches/benches/primitives.rs:
#     one SHA-256 stream, multi-buffer SHA-256, FastCDC 16/64/256 cut finding, memcpy);
#   - encode with fixed:262144 and fastcdc:16384:65536:262144 to a null sink
#     (--car /dev/null), to a CAR file, into a fresh store and into a store that
#     already holds the blocks;
#   - decode (verifying every block) from the CAR and from the store, to a file and
#     into a pipe (read by `cat >/dev/null`) next to /dev/null (what the pipe costs)
#     and to the pipe's own ceiling (the NAR copied through a pipe grown and written
#     as decode does it, benches/pipe_copy.py),
#     and from the store with
#     --check-nar-hash (the record's NarHash stream, off the path otherwise); next to
#     the disk's own write speed (`dd` of the NAR with O_DIRECT, and through the page
#     cache, each with its fsync), the ceiling of decode → file;
#   - `narfs serve` over loopback: /nar/<root>.nar (decoded from the store against its
#     sealed record: NarSize checked, NarHash not re-hashed) and
#     /ipfs/<root>?format=car, each fetched by curl to
#     /dev/null, next to `python3 -m http.server` sending the NAR file itself and to
#     decode store → /dev/null (what serve decodes, without the socket) in the same run;
#     SERVE_BIN=path serves with another narfs binary (e.g. main's, to compare);
#   - peak anonymous memory (the largest RssAnon of /proc/PID/status, sampled every
#     10 ms: heap and stacks, not the page cache or mapped files) of encode to a CAR
#     file and into a fresh store, and of decode from the CAR and from the store.
# Each figure is the best of ROUNDS runs, in GB/s, as a ratio to openssl and as a
# percentage of its ceiling: encode's is the slowest of (one SHA-256 stream) and (2
# cores' worth of stream + cut finding + multi-buffer leaf hashing + one copy per
# byte); decode's is 2 cores of multi-buffer verification + one copy.
#
# Usage: benches/speed.sh   (LARGE=nar SMALL=nar ROUNDS=2; the default LARGE is a NAR
# of /tmp/narfs-large when it exists, else of 4×256 MiB of random files; the default
# SMALL is a NAR of /usr/share, ~46,000 files here; LARGE=none or SMALL=none skips
# one. ONLY=REGEX runs only the rows whose name matches, e.g. ONLY='CAR file' or
# ONLY='fixed.*(pipe|fresh)'; `decode`, `serve` and `memory` name those sections.
# NARFS=path measures that binary instead of this tree's release build, e.g. main's
# and a branch's in turn.)
source "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-2}
FIXED=fixed:262144
CDC=fastcdc:16384:65536:262144

if [ -z "${LARGE:-}" ]; then
  LARGE=$W/large.nar
  if [ -d /tmp/narfs-large ]; then
    "$N" nar dump /tmp/narfs-large -o "$LARGE"
  else
    mkdir "$W/random"
    for i in 0 1 2 3; do head -c 256M /dev/urandom >"$W/random/f$i"; done
    "$N" nar dump "$W/random" -o "$LARGE"
    rm -r "$W/random"
  fi
fi
if [ -z "${SMALL:-}" ]; then
  SMALL=$W/small.nar
  "$N" nar dump /usr/share -o "$SMALL" 2>/dev/null || "$N" nar dump /usr/lib -o "$SMALL"
fi

# The page cache warm before every timed run, as the issue measures: the files and
# directories in WARM read through, untimed. This machine's DAMON (kdamond, scheme
# `pageout`: page-cache pages not touched for 60 s, up to 128 MiB/s) evicts inputs
# between rows, so a row that follows a long one would otherwise pay disk reads at random.
warm() {
  local f
  for f in ${WARM:-}; do [ -e "$f" ] && find "$f" -type f -exec cat {} + >/dev/null; done
  return 0
}

# Best wall-clock seconds of ROUNDS runs of "$@" (the inputs warmed, then a setup
# command may run before each via PRE, both untimed).
best() {
  local b=
  for _ in $(seq "$ROUNDS"); do
    warm
    [ -n "${PRE:-}" ] && eval "$PRE"
    local s; s=$(now)
    "$@" >/dev/null
    local t; t=$(secs "$s")
    b=$(awk -v a="${b:-$t}" -v t="$t" 'BEGIN { print (t < a ? t : a) }')
  done
  echo "$b"
}

prim() { awk -v k="$1" '$1 == k { print $2 }' "$W/prim"; }

# Whether the row or section named "$1" is wanted (ONLY unset: all are).
want() { [ -z "${ONLY:-}" ] || [[ "$1" =~ $ONLY ]]; }

# One table row; the last column is the 1-minute load average when it is printed
# (the machine is shared: a figure is worth what its load lets it be).
row() { # name seconds size ceiling_gbs openssl_gbs
  awk -v n="$1" -v s="$2" -v b="$3" -v c="$4" -v o="$5" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
    'BEGIN { g = b / s / 1e9; printf "| %-44s | %6.2f | %5.2f× | %4.0f%% | %5s |\n", n, g, g / o, 100 * g / c, l }'
}

decode_pipe() { "$N" decode "$@" | cat >/dev/null; }

# Peak RssAnon in MiB of the command "$@" (stdout to /dev/null), sampled every 10 ms.
peak_anon() {
  "$@" >/dev/null &
  local pid=$! peak=0 kb
  while kb=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) && [ -n "$kb" ]; do
    [ "$kb" -gt "$peak" ] && peak=$kb
    sleep 0.01
  done
  wait "$pid"
  awk -v k="$peak" 'BEGIN { printf "%.1f", k / 1024 }'
}

# Best seconds of ROUNDS curl downloads of URL to /dev/null (its size checked).
fetch() { # url size
  local b=
  for _ in $(seq "$ROUNDS"); do
    warm
    local out code got t
    out=$(curl -s -o /dev/null -w '%{http_code} %{size_download} %{time_total}' "$1")
    read -r code got t <<<"$out"
    [ "$code" = 200 ] && { [ -z "$2" ] || [ "$got" = "$2" ]; } || { echo "GET $1: $code, $got bytes" >&2; exit 1; }
    b=$(awk -v a="${b:-$t}" -v t="$t" 'BEGIN { print (t < a ? t : a) }')
  done
  echo "$b"
}

# Starts `narfs serve` on the store and python3's http.server on the NAR's directory
# (both on 127.0.0.1, port 0) and prints the serve rows.
serve_rows() { # nar root size dec ossl
  local nar=$1 root=$2 size=$3 dec=$4 ossl=$5
  "${SERVE_BIN:-$N}" serve --store "$W/store" --listen 127.0.0.1:0 >"$W/addr" 2>/dev/null &
  PIDS+=($!)
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  (cd "$(dirname "$nar")" && exec python3 -m http.server "$port" --bind 127.0.0.1 >/dev/null 2>&1) &
  PIDS+=($!)
  for _ in $(seq 100); do [ -s "$W/addr" ] && curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
  local base; base=$(head -1 "$W/addr")
  local py nar_s car_s car_size dec_s
  py=$(fetch "http://127.0.0.1:$port/$(basename "$nar")" "$size")
  nar_s=$(fetch "$base/nar/$root.nar" "$size")
  car_size=$(stat -c %s "$W/out.car")
  car_s=$(fetch "$base/ipfs/$root?format=car" "")
  dec_s=$(best "$N" decode --store "$W/store" "$root" -o /dev/null)
  row "python3 -m http.server (the NAR file)" "$py" "$size" "$dec" "$ossl"
  row "serve /nar/ (store, sealed record)" "$nar_s" "$size" "$dec" "$ossl"
  row "serve /ipfs/?format=car (store)" "$car_s" "$car_size" "$dec" "$ossl"
  row "decode store → /dev/null (serve's decode)" "$dec_s" "$size" "$dec" "$ossl"
  awk -v p="$py" -v n="$nar_s" -v c="$car_s" -v s="$size" -v cs="$car_size" -v d="$dec_s" \
    'BEGIN { printf "\nserve /nar/ at %.2f× and /ipfs/ CAR at %.2f× of python3 -m http.server (bytes per second); /nar/ at %.2f× and CAR at %.2f× of decode store → /dev/null.\n", p / n, (cs / c) / (s / p), d / n, (cs / c) / (s / d) }' >"$W/serve_ratio"
  kill "${PIDS[-1]}" "${PIDS[-2]}" 2>/dev/null || true
}

measure() { # label nar
  local label=$1 nar=$2 size
  size=$(stat -c %s "$nar")
  # The NAR, and the store and CAR once they exist (a write session drops what it
  # committed from the cache, store/src/uncache.rs).
  WARM="$nar $W/store $W/out.car"
  warm
  cargo bench -q -p narfs-benches --bench primitives -- "$nar" >"$W/prim" 2>/dev/null
  local sha mb256 mb64 cdc cpy ossl
  sha=$(prim sha256-stream); mb256=$(prim sha256-multibuffer-256k); mb64=$(prim sha256-multibuffer-64k)
  cdc=$(prim fastcdc-16-64-256); cpy=$(prim memcpy)
  ossl=$(awk -v b="$size" -v s="$(best openssl dgst -sha256 "$nar")" 'BEGIN { print b / s / 1e9 }')
  # Encode: one core runs the NarHash stream; both cores share all the work.
  local enc_fixed enc_cdc dec
  enc_fixed=$(awk -v s="$sha" -v m="$mb256" -v c="$cpy" \
    'BEGIN { t = 2 / (1/s + 1/m + 1/c); print (t < s ? t : s) }')
  enc_cdc=$(awk -v s="$sha" -v m="$mb64" -v k="$cdc" -v c="$cpy" \
    'BEGIN { t = 2 / (1/s + 1/k + 1/m + 1/c); print (t < s ? t : s) }')
  dec=$(awk -v m="$mb256" -v c="$cpy" 'BEGIN { print 2 / (1/m + 1/c) }')
  echo
  echo "### $label: $(basename "$nar"), $size bytes, $("$N" nar ls -R "$nar" 2>/dev/null | grep -c '^-r' || true) files; load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "Primitives on one core (GB/s): SHA-256 stream $sha, multi-buffer $mb256 (256 KiB leaves) / $mb64 (64 KiB), FastCDC 16/64/256 $cdc, memcpy $cpy; openssl dgst -sha256 (whole process) $(printf %.2f "$ossl")."
  echo "Ceilings (GB/s): encode fixed $(printf %.2f "$enc_fixed"), encode FastCDC $(printf %.2f "$enc_cdc"), decode $(printf %.2f "$dec")."
  echo
  echo "| narfs | GB/s | × openssl | % of ceiling | load |"
  echo "|---|---:|---:|---:|---:|"
  for spec in "$FIXED" "$CDC"; do
    local c=$enc_fixed; [ "$spec" = "$CDC" ] && c=$enc_cdc
    want "encode $spec → null" &&
      row "encode $spec → null" "$(best "$N" encode --chunker "$spec" --car /dev/null "$nar")" "$size" "$c" "$ossl"
    # A new CAR file each time, as decode → file writes a new NAR: replacing the CAR
    # of the row before would time the file system freeing it inside the rename
    # (ext4 with online discard here: 0.4 s for a 1.27 GB CAR), not the encode.
    want "encode $spec → CAR file" &&
      row "encode $spec → CAR file" "$(PRE="rm -f '$W/out.car'" best "$N" encode --chunker "$spec" --car "$W/out.car" "$nar")" "$size" "$c" "$ossl"
    want "encode $spec → CAR pipe" &&
      row "encode $spec → CAR pipe" "$(best sh -c "'$N' encode --chunker '$spec' --car /dev/stdout '$nar' | cat >/dev/null")" "$size" "$c" "$ossl"
    want "encode $spec → fresh store" &&
      row "encode $spec → fresh store" "$(PRE="rm -rf '$W/store'" best "$N" encode --chunker "$spec" --store "$W/store" "$nar")" "$size" "$c" "$ossl"
    # Without the fresh-store row before it (ONLY), the store is filled first, untimed.
    want "encode $spec → store holding it" && ! want "encode $spec → fresh store" &&
      "$N" encode --chunker "$spec" --store "$W/store" "$nar" >/dev/null
    want "encode $spec → store holding it" &&
      row "encode $spec → store holding it" "$(best "$N" encode --chunker "$spec" --store "$W/store" "$nar")" "$size" "$c" "$ossl"
  done
  if ! want decode && ! want serve && ! want memory; then
    rm -rf "$W/store" "$W/out.car"
    return
  fi
  local root; root=$("$N" encode --chunker "$FIXED" --car "$W/out.car" --store "$W/store" "$nar")
  if want decode; then
    # The disk's own write speed, the ceiling of decode → file (which writes around the
    # page cache and fsyncs): the NAR copied by dd with and without the page cache.
    local dd_direct dd_cached car_file store_file
    dd_direct=$(PRE="rm -f '$W/dd.nar'" best dd if="$nar" of="$W/dd.nar" bs=4M oflag=direct conv=fsync status=none)
    dd_cached=$(PRE="rm -f '$W/dd.nar'" best dd if="$nar" of="$W/dd.nar" bs=4M conv=fsync status=none)
    rm -f "$W/dd.nar"
    row "disk: dd bs=4M oflag=direct conv=fsync" "$dd_direct" "$size" "$dec" "$ossl"
    row "disk: dd bs=4M conv=fsync (page cache)" "$dd_cached" "$size" "$dec" "$ossl"
    # The pipe's own ceiling: the NAR copied into a pipe grown and written as decode
    # grows and writes it, read by the same `cat` (benches/pipe_copy.py).
    local pipe_copy car_pipe store_pipe
    pipe_copy=$(best sh -c "python3 benches/pipe_copy.py '$nar' | cat >/dev/null")
    row "pipe: the NAR copied through it (ceiling)" "$pipe_copy" "$size" "$dec" "$ossl"
    car_file=$(PRE="rm -f '$W/out.nar'" best "$N" decode --car "$W/out.car" "$root" -o "$W/out.nar")
    row "decode CAR → file" "$car_file" "$size" "$dec" "$ossl"
    cmp "$W/out.nar" "$nar"
    car_pipe=$(best decode_pipe --car "$W/out.car" "$root")
    row "decode CAR → pipe" "$car_pipe" "$size" "$dec" "$ossl"
    row "decode CAR → /dev/null" "$(best "$N" decode --car "$W/out.car" "$root" -o /dev/null)" "$size" "$dec" "$ossl"
    store_file=$(PRE="rm -f '$W/out.nar'" best "$N" decode --store "$W/store" "$root" -o "$W/out.nar")
    row "decode store → file" "$store_file" "$size" "$dec" "$ossl"
    store_pipe=$(best decode_pipe --store "$W/store" "$root")
    row "decode store → pipe" "$store_pipe" "$size" "$dec" "$ossl"
    row "decode store → /dev/null" "$(best "$N" decode --store "$W/store" "$root" -o /dev/null)" "$size" "$dec" "$ossl"
    row "decode store → pipe --check-nar-hash" "$(best decode_pipe --store "$W/store" "$root" --check-nar-hash)" "$size" "$dec" "$ossl"
    cmp "$W/out.nar" "$nar"
    awk -v d="$dd_direct" -v c="$dd_cached" -v f="$car_file" -v s="$store_file" \
      'BEGIN { printf "\ndecode → file against the disk (dd, same run): CAR %.2f× of oflag=direct, %.2f× of page cache + fsync; store %.2f×, %.2f×.\n", d / f, c / f, d / s, c / s }'
    awk -v p="$pipe_copy" -v c="$car_pipe" -v s="$store_pipe" \
      'BEGIN { printf "decode → pipe against the pipe’s own ceiling (a plain copy through it, same run): CAR %.2f×, store %.2f×.\n", p / c, p / s }'
    echo
  fi
  if want serve; then
    serve_rows "$nar" "$root" "$size" "$dec" "$ossl"
    cat "$W/serve_ratio"
  fi
  echo
  want memory && echo "Peak anonymous memory (MiB, RssAnon sampled every 10 ms): encode $FIXED → CAR file $(peak_anon "$N" encode --chunker "$FIXED" --car "$W/mem.car" "$nar"), → fresh store $(rm -rf "$W/mstore"; peak_anon "$N" encode --chunker "$FIXED" --store "$W/mstore" "$nar"); decode CAR → file $(peak_anon "$N" decode --car "$W/out.car" "$root" -o "$W/out.nar"), store → file $(peak_anon "$N" decode --store "$W/store" "$root" -o "$W/out.nar")."
  rm -rf "$W/store" "$W/mstore" "$W/out.car" "$W/mem.car" "$W/out.nar"
}

echo "## narfs speed, $(date -u +%F), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
[ "$LARGE" = none ] || measure "Large-file NAR" "$LARGE"
[ "$SMALL" = none ] || measure "Small-file NAR" "$SMALL"
