#!/usr/bin/env python3
"""Writes a synthetic Nix file binary cache (as `nix copy --to file://DIR` lays it out,
NARs uncompressed) of N store items for benches/scale.sh.

Usage: gen_cache.py DIR N [--seed S] [--max-item BYTES] [--paths FILE]

Item shapes follow a rough binary-cache mix: 70% one file, 25% a directory of 2-10
files, 5% of 11-100 (a symlink in one of ten); item sizes log-normal around 4 KiB
(90% under ~28 KiB, 99% under ~140 KiB), plus one item in a thousand of 1-8 MiB
(--max-item caps every item, e.g. 16384 for the "small items" run). File bytes are
slices of a 16 MiB pool (half text-like, half random, so zstd finds some to save) at
random offsets behind a unique 16-byte header, so no two files are equal. A few
References to earlier items, as real closures have. Deterministic for a seed.
"""

import hashlib
import os
import random
import struct
import sys

ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"


def nix32(digest: bytes) -> str:
    """Nix's base32 (least significant 5 bits first, as nix-hash prints)."""
    n = len(digest) * 8
    out = []
    for k in range((n - 1) // 5, -1, -1):
        b = k * 5
        i, j = b // 8, b % 8
        c = digest[i] >> j
        if i + 1 < len(digest):
            c |= digest[i + 1] << (8 - j)
        out.append(ALPHABET[c & 0x1F])
    return "".join(out)


def s(b: bytes) -> bytes:
    """A NAR string: length, bytes, zero padding to 8."""
    return struct.pack("<Q", len(b)) + b + b"\0" * (-len(b) % 8)


def nar_file(data: bytes, executable: bool) -> bytes:
    out = s(b"(") + s(b"type") + s(b"regular")
    if executable:
        out += s(b"executable") + s(b"")
    return out + s(b"contents") + s(data) + s(b")")


def nar_item(files, link):
    """The NAR of one file, or of a directory of (name, data, exec) and a symlink."""
    if len(files) == 1 and link is None:
        return s(b"nix-archive-1") + nar_file(files[0][1], files[0][2])
    entries = [(name, nar_file(data, ex)) for name, data, ex in files]
    if link is not None:
        entries.append((b"link", s(b"(") + s(b"type") + s(b"symlink") + s(b"target") + s(link) + s(b")")))
    entries.sort()
    out = s(b"nix-archive-1") + s(b"(") + s(b"type") + s(b"directory")
    for name, node in entries:
        out += s(b"entry") + s(b"(") + s(b"name") + s(name) + s(b"node") + node + s(b")")
    return out + s(b")")


def main():
    args = sys.argv[1:]
    out, n = args[0], int(args[1])
    seed = int(args[args.index("--seed") + 1]) if "--seed" in args else 1
    max_item = int(args[args.index("--max-item") + 1]) if "--max-item" in args else 1 << 62
    rng = random.Random(seed)
    words = b" ".join(rng.choice([b"lib", b"share", b"the", b"nix", b"store", b"0x", b"return", b"int", b"{", b"}"])
                      for _ in range(1 << 20))
    pool = (words[: 8 << 20] + rng.randbytes(8 << 20))
    os.makedirs(os.path.join(out, "nar"), exist_ok=True)
    with open(os.path.join(out, "nix-cache-info"), "w") as f:
        f.write("StoreDir: /nix/store\n")
    paths = []
    total = 0
    for i in range(n):
        shape = rng.random()
        count = 1 if shape < 0.70 else rng.randint(2, 10) if shape < 0.95 else rng.randint(11, 100)
        size = int(rng.lognormvariate(8.3, 1.5))
        if rng.random() < 0.001:
            size = rng.randint(1 << 20, 8 << 20)
        size = max(16 * count, min(size, max_item - 600 * count - 200))
        files = []
        for k in range(count):
            part = size // count
            at = rng.randrange(0, len(pool) - part)
            data = struct.pack("<QQ", i, k) + pool[at:at + max(0, part - 16)]
            files.append((b"f%03d" % k, data, rng.random() < 0.1))
        link = b"f000" if count > 1 and rng.random() < 0.1 else None
        nar = nar_item(files, link)
        h = hashlib.sha256(nar).digest()
        hash_part = nix32(hashlib.sha256(b"item %d %d" % (seed, i)).digest()[:20])
        path = "/nix/store/%s-item%d" % (hash_part, i)
        nar_name = "nar/%s.nar" % nix32(h)
        with open(os.path.join(out, nar_name), "wb") as f:
            f.write(nar)
        refs = " ".join(os.path.basename(paths[rng.randrange(len(paths))]) for _ in range(rng.randint(0, 3))) if paths else ""
        with open(os.path.join(out, hash_part + ".narinfo"), "w") as f:
            f.write("StorePath: %s\nURL: %s\nCompression: none\nFileHash: sha256:%s\nFileSize: %d\n"
                    "NarHash: sha256:%s\nNarSize: %d\nReferences: %s\n"
                    % (path, nar_name, nix32(h), len(nar), nix32(h), len(nar), refs))
        paths.append(path)
        total += len(nar)
    if "--paths" in args:
        with open(args[args.index("--paths") + 1], "w") as f:
            f.write("\n".join(paths) + "\n")
    print(total)


if __name__ == "__main__":
    main()
