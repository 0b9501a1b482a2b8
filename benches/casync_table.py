#!/usr/bin/env python3
"""benches/casync_table.py — helper of benches/casync.sh.

Owns: the corpus order (`order NARFS_JSON`: the order `narfs experiment` used, from
its JSON), reading casync's
.caibx indexes (unique chunk ids and their uncompressed sizes, checked against the
NAR sizes), and the combined table (`table CORPUS NARFS_JSON CASYNC_TSV ORDER`).
"""
import json
import os
import struct
import sys

CA_FORMAT_INDEX = 0x96824D9C7B129FF9
CA_FORMAT_TABLE = 0xE75B9E112F17417D


def order(narfs_json):
    return [i["name"] for i in json.load(open(narfs_json))["items"]]


def caibx_chunks(path, expected_size):
    """(chunk id, size) of every chunk of a blob index, in order."""
    data = open(path, "rb").read()
    size, kind, _flags, _cmin, _cavg, _cmax = struct.unpack_from("<6Q", data, 0)
    if size != 48 or kind != CA_FORMAT_INDEX:
        raise SystemExit(f"{path}: not a casync blob index")
    _tsize, tkind = struct.unpack_from("<2Q", data, 48)
    if tkind != CA_FORMAT_TABLE:
        raise SystemExit(f"{path}: no chunk table")
    items = (len(data) - 64 - 40) // 40
    out, prev = [], 0
    for i in range(items):
        end, = struct.unpack_from("<Q", data, 64 + 40 * i)
        cid = data[64 + 40 * i + 8: 64 + 40 * i + 40]
        out.append((cid, end - prev))
        prev = end
    if prev != expected_size:
        raise SystemExit(f"{path}: chunks cover {prev} bytes, the NAR has {expected_size}")
    return out


def human(n):
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    v, u = float(n), 0
    while v >= 1024 and u + 1 < len(units):
        v, u = v / 1024, u + 1
    if u == 0:
        return f"{n} B"
    return f"{v:.0f} {units[u]}" if v >= 100 else f"{v:.1f} {units[u]}" if v >= 10 else f"{v:.2f} {units[u]}"


def table(corpus, narfs_json, casync_tsv, order_file):
    report = json.load(open(narfs_json))
    names = [l for l in open(order_file).read().splitlines() if l]
    sizes = {n: os.path.getsize(os.path.join(corpus, n)) for n in names}
    raw = report["raw_bytes"]
    base = report["baseline_bytes"]
    assert raw == sum(sizes.values()), "narfs and casync saw different corpora"
    rows = []
    for r in report["results"]:
        rows.append([r["strategy"], human(r["stored_bytes"]), human(r["stored_zstd_bytes"]),
                     str(r["blocks"]), human(int(r["mean_block"])),
                     f"{raw / r['stored_bytes']:.2f}", f"{base / r['stored_zstd_bytes']:.2f}",
                     f"{r['encode_mb_s']:.0f}"])
    for line in open(casync_tsv).read().splitlines():
        name, comp, idx, compressed, secs = line.split("\t")
        unique = {}
        for n in names:
            for cid, size in caibx_chunks(os.path.join(idx, n + ".caibx"), sizes[n]):
                unique[cid] = size
        stored = sum(unique.values())
        compressed = int(compressed)
        secs = float(secs)
        rows.append([name, human(stored), human(compressed) + ("" if comp == "zstd" else f" ({comp})"),
                     str(len(unique)), human(stored // max(len(unique), 1)),
                     f"{raw / stored:.2f}", f"{base / compressed:.2f}",
                     f"{raw / 1e6 / secs:.0f}"])
    head = ["strategy", "stored", "compressed", "blocks", "mean blk", "x raw", "x base", "enc MB/s"]
    width = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    print(f"corpus {corpus}: {len(names)} NARs, {human(raw)} raw; "
          f"nar-zstd baseline (zstd -{report['zstd_level']} per NAR) {human(base)}")
    for r in [head] + rows:
        print("  ".join(c.ljust(width[i]) if i == 0 else c.rjust(width[i]) for i, c in enumerate(r)))
    print("stored = unique block/chunk bytes (narfs: incl. inner nodes); compressed = narfs: "
          "zstd of each unique block, casync: its chunk store on disk; x raw = raw NARs / stored; "
          "x base = nar-zstd / compressed; casync enc MB/s includes process start and store writes")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "order":
        print("\n".join(order(sys.argv[2])))
    elif len(sys.argv) == 6 and sys.argv[1] == "table":
        table(*sys.argv[2:])
    else:
        raise SystemExit(__doc__)
