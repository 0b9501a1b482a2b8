#!/usr/bin/env bash
# make-sample-tree.sh: builds the deterministic sample tree used to self-test cids.mjs and
# export.mjs (and usable by the Rust interop tests as a fixture).
#
# Usage: interop/make-sample-tree.sh OUTDIR      (OUTDIR must not exist)
#
# Contents (file bytes come from a fixed xorshift32 stream, so every run is identical):
#   empty                 0 bytes (raw leaf bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku)
#   hello.txt             "hello\n"
#   exact-256k            262144 bytes  (one kubo-v1 chunk)
#   over-256k             262145 bytes  (two kubo-v1 chunks)
#   exact-1m              1048576 bytes (one unixfs-v1-2025 chunk)
#   over-1m               1048577 bytes (two unixfs-v1-2025 chunks)
#   big-45mib             47185920 bytes (180 kubo-v1 chunks > 174: two-level balanced tree)
#   link-rel -> hello.txt, link-abs -> /nix/store/...-hello-2.12/bin/hello (dangling),
#   nested/a/b/c/deep.txt, nested/empty-dir/ (empty directory)
#   many/                 3000 small files with 64-byte names: a HAMT in both profiles
#   mid/                  2600 small files with 64-byte names: link bytes 2600*(64+36) =
#                         260000 <= 262144 (flat for kubo-v1) but the flat block would be
#                         > 262144 bytes (HAMT for unixfs-v1-2025)
#   manydirs/             3000 subdirectories (64-byte names) holding one file each: Kubo
#                         shards it (3000*(64+36) > 262144); the importer's one-call tree
#                         mode does not (see cids.mjs --mode)
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
out=$1
if [ -e "$out" ]; then
  echo "$0: $out already exists" >&2
  exit 1
fi
mkdir -p "$out"

node --input-type=module - "$out" <<'EOF'
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'

const out = process.argv[2]

// Deterministic bytes: xorshift32 seeded per file, so files differ from each other.
function bytes (len, seed) {
  const buf = Buffer.alloc(len)
  let x = (seed * 2654435761) >>> 0 || 1
  let i = 0
  for (; i + 4 <= len; i += 4) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    buf.writeUInt32LE(x, i)
  }
  for (; i < len; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    buf[i] = x & 0xff
  }
  return buf
}

const file = (rel, data) => {
  mkdirSync(path.dirname(path.join(out, rel)), { recursive: true })
  writeFileSync(path.join(out, rel), data)
}

file('empty', Buffer.alloc(0))
file('hello.txt', 'hello\n')
file('exact-256k', bytes(262144, 1))
file('over-256k', bytes(262145, 2))
file('exact-1m', bytes(1048576, 3))
file('over-1m', bytes(1048577, 4))
file('big-45mib', bytes(45 * 1024 * 1024, 5))
symlinkSync('hello.txt', path.join(out, 'link-rel'))
symlinkSync('/nix/store/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-hello-2.12/bin/hello', path.join(out, 'link-abs'))
file('nested/a/b/c/deep.txt', 'deep\n')
mkdirSync(path.join(out, 'nested/empty-dir'), { recursive: true })

// 64-byte names: 'entry-' + 52 x's ... + '-' + 5 digits = 64 bytes.
const longName = (prefix, i) => {
  const tail = `-${String(i).padStart(5, '0')}`
  return prefix + '-' + 'x'.repeat(64 - prefix.length - 1 - tail.length) + tail
}
for (let i = 0; i < 3000; i++) file(`many/${longName('many', i)}`, `many ${i}\n`)
for (let i = 0; i < 2600; i++) file(`mid/${longName('mid', i)}`, `mid ${i}\n`)
for (let i = 0; i < 3000; i++) file(`manydirs/${longName('dir', i)}/f`, `dir ${i}\n`)
EOF
echo "sample tree written to $out" >&2
