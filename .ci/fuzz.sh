#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and fails on any crash,
# hang (> FUZZ_TIMEOUT s for one input) or out-of-memory. Prints, per target, the
# executions per second, the total executions and the coverage reached.
#
# Usage: .ci/fuzz.sh [TARGET...]          (default: every target `cargo fuzz list` shows)
# Environment:
#   FUZZ_SECONDS    time per target, in seconds (default 30)
#   FUZZ_TIMEOUT    longest time one input may take, in seconds (default 10)
#   FUZZ_SANITIZER  none (default) or address; address needs RUSTC_BOOTSTRAP=1 on
#                   stable, which this script then sets
#
# Seeds: small NARs cut out of corpus/*.nar (restored, then subtrees dumped again)
# and CARs encoded from them, generated here at run time into a temporary directory;
# plus the tiny hand-made dag-pb blocks in fuzz/seeds/. What the fuzzers add is kept
# in fuzz/corpus/TARGET (git-ignored), crashes in fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${FUZZ_SECONDS:-30}"
timeout="${FUZZ_TIMEOUT:-10}"
sanitizer="${FUZZ_SANITIZER:-none}"

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

if [ "$sanitizer" != none ]; then
  export RUSTC_BOOTSTRAP=1
fi
# cargo caches rustc's probe without regard to RUSTC_BOOTSTRAP: a stale probe from
# a run with the other setting makes the build fail.
rm -f fuzz/target/.rustc_info.json

# -a: debug assertions and overflow checks, so that arithmetic overflow is a crash.
flags=(-s "$sanitizer" -a)
echo "== building the fuzz targets (sanitizer: $sanitizer)"
cargo fuzz build "${flags[@]}"

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

# --- seeds -------------------------------------------------------------------
seeds="$(mktemp -d)"
trap 'rm -rf "$seeds"' EXIT
make_seeds() {
  mkdir -p "$seeds/nar_reader" "$seeds/car_reader" "$seeds/trees"
  cargo build -q --bin narfs || return 1
  local narfs=target/debug/narfs i=0 n=0 p
  for nar in corpus/attrs-24.3.0.nar corpus/tzdata-2024.2.nar \
    'corpus/openssl-3.0.22-1~deb12u2.nar'; do
    [ -f "$nar" ] || continue
    i=$((i + 1))
    "$narfs" nar restore "$nar" "$seeds/trees/$i" || return 1
  done
  # Subtrees small enough to be useful seeds: symlinks, small files, small directories.
  while IFS= read -r p; do
    "$narfs" nar dump "$p" -o "$seeds/nar_reader/s$n.nar" || continue
    if [ "$(stat -c %s "$seeds/nar_reader/s$n.nar")" -gt 16384 ]; then
      rm -f "$seeds/nar_reader/s$n.nar"
      continue
    fi
    n=$((n + 1))
    [ "$n" -ge 80 ] && break
  done < <(find "$seeds/trees" -mindepth 1 -maxdepth 5 | sort -R --random-source=<(yes))
  # CARs of a few of them, with small chunks so that files have several leaves.
  local k=0
  for s in "$seeds"/nar_reader/s*.nar; do
    "$narfs" encode --chunker fixed:512 --car "$seeds/car_reader/c$k.car" "$s" \
      >/dev/null 2>&1 || continue
    k=$((k + 1))
    [ "$k" -ge 20 ] && break
  done
  echo "seeds: $n NARs, $k CARs"
}
make_seeds || echo "warning: could not make seeds from corpus/ (fuzzing without them)"

# --- runs --------------------------------------------------------------------
failed=()
summary=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "$seeds/$t"
  dirs=("fuzz/corpus/$t" "$seeds/$t")
  [ -d "fuzz/seeds/$t" ] && dirs+=("fuzz/seeds/$t")
  log="$seeds/$t.log"
  echo "== fuzzing $t for ${secs}s"
  status=0
  cargo fuzz run "${flags[@]}" "$t" "${dirs[@]}" -- \
    -max_total_time="$secs" -timeout="$timeout" -rss_limit_mb=4096 \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)"
  line="$(printf '%-14s %10s execs/s %12s execs  %s' "$t" "${rate:-?}" "${execs:-?}" "${cov:-}")"
  if [ "$status" -ne 0 ]; then
    failed+=("$t")
    line="$line  FAILED (exit $status)"
    echo "---- $t: what libFuzzer reported"
    grep -E -A12 "panicked at|ERROR: libFuzzer|SUMMARY" "$log" | head -60 || tail -40 "$log"
    ls "fuzz/artifacts/$t" 2>/dev/null | sed "s|^|artifact: fuzz/artifacts/$t/|" || true
  fi
  echo "$line"
  summary+=("$line")
done

echo "== fuzz summary (${secs}s per target)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]}" >&2
  echo "reproduce: cargo fuzz run ${flags[*]} TARGET fuzz/artifacts/TARGET/FILE" >&2
  exit 1
fi
