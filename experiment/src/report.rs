//! What the experiment found: per-strategy figures, the derived ratios and
//! throughputs, the recommendation, and the JSON document with every figure (the text
//! tables are in `table.rs`, the chart in `svg.rs`).

use std::path::PathBuf;
use std::time::Duration;

use narfs_core::Cid;
use serde_json::{json, Value};

use crate::compress::{Compression, Footprint};
use crate::corpus::Item;
use crate::runner::ZSTD_LEVEL;
use crate::seed::SEED_LEVEL;
use crate::strategy::Strategy;
use crate::update::Update;

/// The decode speed a recommended option must keep, decimal MB/s.
pub const MIN_DECODE_MB_S: f64 = 1000.0;

/// One NAR under one strategy.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ItemResult {
    /// The NAR's file name.
    pub name: String,
    pub nar_size: u64,
    /// Root CID (none for nar-zstd).
    pub root: Option<String>,
    /// Bytes and blocks this NAR added to the store (not already there).
    pub new_bytes: u64,
    pub new_blocks: u64,
    /// Time to encode and to decode (and check) this NAR, from bytes in memory.
    pub encode_secs: f64,
    pub decode_secs: f64,
    /// What a client holding the package's earlier versions fetches for this one
    /// (None for a package's first version).
    pub update: Option<Update>,
}

/// One strategy over the whole corpus.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StrategyResult {
    pub strategy: Strategy,
    /// Unique blocks and their bytes, inner nodes included.
    pub blocks: u64,
    pub stored_bytes: u64,
    /// Σ over unique blocks of min(zstd size, size).
    pub stored_zstd_bytes: u64,
    /// Unique raw leaves and their bytes.
    pub leaves: u64,
    pub leaf_bytes: u64,
    /// Everything handed to the store, repeats included.
    pub put_blocks: u64,
    pub put_bytes: u64,
    pub put_leaves: u64,
    pub put_leaf_bytes: u64,
    /// NAR bytes that went through, and the time encoding, decoding and compressing
    /// the unique blocks took over the corpus.
    pub raw_bytes: u64,
    pub encode_secs: f64,
    pub decode_secs: f64,
    pub compress_secs: f64,
    /// Per NAR, in corpus order.
    pub items: Vec<ItemResult>,
    /// The unique blocks under each compression option (DAG strategies only).
    pub compression: Option<Compression>,
}

impl StrategyResult {
    pub(crate) fn new(strategy: Strategy) -> Self {
        StrategyResult {
            strategy,
            blocks: 0,
            stored_bytes: 0,
            stored_zstd_bytes: 0,
            leaves: 0,
            leaf_bytes: 0,
            put_blocks: 0,
            put_bytes: 0,
            put_leaves: 0,
            put_leaf_bytes: 0,
            raw_bytes: 0,
            encode_secs: 0.0,
            decode_secs: 0.0,
            compress_secs: 0.0,
            items: Vec::new(),
            compression: None,
        }
    }

    pub(crate) fn push_item(
        &mut self,
        item: &Item,
        root: Option<&Cid>,
        new_bytes: u64,
        new_blocks: u64,
        encode: Duration,
        decode: Duration,
    ) {
        self.raw_bytes += item.size;
        self.encode_secs += encode.as_secs_f64();
        self.decode_secs += decode.as_secs_f64();
        self.items.push(ItemResult {
            name: item.name.clone(),
            nar_size: item.size,
            root: root.map(Cid::to_string),
            new_bytes,
            new_blocks,
            encode_secs: encode.as_secs_f64(),
            decode_secs: decode.as_secs_f64(),
            update: None,
        });
    }

    /// Decode throughput from the blocks stored under `f` (decompressed as the
    /// decoder asks for them), decimal MB of NAR per second.
    pub fn decode_mb_s_with(&self, f: &Footprint) -> f64 {
        mb_per_s(self.raw_bytes, f.decode_secs)
    }

    /// The updates summed over the corpus.
    pub fn updates(&self) -> Update {
        let mut total = Update::default();
        for u in self.items.iter().filter_map(|i| i.update.as_ref()) {
            total.add(u);
        }
        total
    }

    /// The compression options measured, by name, in the report's order.
    pub fn options(&self) -> Vec<(&'static str, &Footprint)> {
        let Some(c) = &self.compression else {
            return Vec::new();
        };
        let mut v = vec![("raw", &c.raw), ("block", &c.block)];
        if let Some(d) = &c.dict {
            v.push(("dict", d));
        }
        v.push(("pack", &c.pack));
        v.push(("pack-lz4", &c.pack_lz4));
        if let Some(r) = &c.repack {
            v.push(("repack", r));
        }
        v
    }

    /// Mean size of the unique blocks.
    pub fn mean_block(&self) -> f64 {
        ratio(self.stored_bytes, self.blocks)
    }

    /// Mean size of the chunks the chunker cut (leaves handed out, repeats included).
    pub fn mean_chunk(&self) -> f64 {
        ratio(self.put_leaf_bytes, self.put_leaves)
    }

    /// Encode throughput, decimal MB of NAR per second.
    pub fn encode_mb_s(&self) -> f64 {
        mb_per_s(self.raw_bytes, self.encode_secs)
    }

    /// Decode throughput, decimal MB of NAR per second.
    pub fn decode_mb_s(&self) -> f64 {
        mb_per_s(self.raw_bytes, self.decode_secs)
    }
}

/// The whole experiment: what [`run`](crate::run) found.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Report {
    pub corpus: PathBuf,
    /// The corpus NARs, in order, and their total size.
    pub items: Vec<Item>,
    pub raw_bytes: u64,
    /// Σ of the per-NAR zstd sizes: the nar-zstd baseline.
    pub baseline_bytes: u64,
    /// Per NAR, in corpus order: its `zstd -19` size (the seed's publish step).
    pub seed_bytes: Vec<u64>,
    /// Per strategy, in the order they ran.
    pub results: Vec<StrategyResult>,
}

/// The strategy and compression the report recommends for its corpus.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Recommendation {
    pub strategy: Strategy,
    /// The compression option at rest.
    pub option: &'static str,
    pub disk_bytes: u64,
    pub decode_mb_s: f64,
    /// Whether it keeps [`MIN_DECODE_MB_S`] (none did, if not).
    pub fast_enough: bool,
    /// Its updates' cost on the wire: the CAR of new blocks, compressed.
    pub wire_bytes: u64,
}

impl Report {
    /// Σ of the `zstd -19` NARs.
    pub fn seed_total(&self) -> u64 {
        self.seed_bytes.iter().sum()
    }

    /// Σ of the `zstd -19` NARs of the items that are updates (any strategy's
    /// updates are the same items), and how many there are.
    pub fn seed_updates(&self) -> (u64, usize) {
        let Some(r) = self.results.first() else {
            return (0, 0);
        };
        r.items
            .iter()
            .zip(&self.seed_bytes)
            .filter(|(i, _)| i.update.is_some())
            .fold((0, 0), |(b, n), (_, s)| (b + s, n + 1))
    }

    /// The smallest store among the per-file strategies' compression options that
    /// decode at [`MIN_DECODE_MB_S`] or more (or, if none does, the smallest). Only
    /// per-file strategies keep every file's CID (the point of narfs); the whole-NAR
    /// ones are there to compare with.
    pub fn recommendation(&self) -> Option<Recommendation> {
        let mut all = Vec::new();
        for r in &self.results {
            if !matches!(r.strategy, Strategy::File(_)) {
                continue;
            }
            for (name, f) in r.options() {
                let speed = r.decode_mb_s_with(f);
                all.push(Recommendation {
                    strategy: r.strategy,
                    option: name,
                    disk_bytes: f.bytes,
                    decode_mb_s: speed,
                    fast_enough: speed >= MIN_DECODE_MB_S,
                    wire_bytes: r.updates().car_zstd_bytes,
                });
            }
        }
        let fast = all.iter().any(|c| c.fast_enough);
        all.into_iter()
            .filter(|c| c.fast_enough || !fast)
            .min_by_key(|c| c.disk_bytes)
    }

    /// Raw NAR total over stored bytes.
    pub fn ratio_raw(&self, r: &StrategyResult) -> f64 {
        ratio(self.raw_bytes, r.stored_bytes)
    }

    /// Raw NAR total over stored bytes after zstd.
    pub fn ratio_raw_zstd(&self, r: &StrategyResult) -> f64 {
        ratio(self.raw_bytes, r.stored_zstd_bytes)
    }

    /// nar-zstd baseline over this strategy's stored bytes after zstd (compressed
    /// against compressed): above 1 means smaller than publishing compressed NARs.
    pub fn ratio_baseline(&self, r: &StrategyResult) -> f64 {
        ratio(self.baseline_bytes, r.stored_zstd_bytes)
    }

    /// The chart, as an SVG document.
    pub fn svg(&self) -> String {
        crate::svg::render(self)
    }

    /// The readable tables.
    pub fn table(&self) -> String {
        crate::table::render(self)
    }

    /// Every figure, as JSON.
    pub fn json(&self) -> Value {
        let results: Vec<Value> = self
            .results
            .iter()
            .map(|r| {
                json!({
                    "strategy": r.strategy.to_string(),
                    "family": r.strategy.family().name(),
                    "target_chunk": r.strategy.target_chunk(),
                    "stored_bytes": r.stored_bytes,
                    "stored_zstd_bytes": r.stored_zstd_bytes,
                    "blocks": r.blocks,
                    "mean_block": r.mean_block(),
                    "leaves": r.leaves,
                    "leaf_bytes": r.leaf_bytes,
                    "inner_blocks": r.blocks - r.leaves,
                    "inner_bytes": r.stored_bytes - r.leaf_bytes,
                    "put_blocks": r.put_blocks,
                    "put_bytes": r.put_bytes,
                    "mean_chunk": r.mean_chunk(),
                    "ratio_raw": self.ratio_raw(r),
                    "ratio_raw_zstd": self.ratio_raw_zstd(r),
                    "ratio_baseline": self.ratio_baseline(r),
                    "encode_secs": r.encode_secs,
                    "decode_secs": r.decode_secs,
                    "compress_secs": r.compress_secs,
                    "encode_mb_s": r.encode_mb_s(),
                    "decode_mb_s": r.decode_mb_s(),
                    "compression": r.compression.as_ref().map(|c| {
                        let mut o = serde_json::Map::new();
                        o.insert("pack_size".into(), json!(c.pack_size));
                        for (name, f) in r.options() {
                            o.insert(name.into(), self.footprint_json(r, f));
                        }
                        Value::Object(o)
                    }),
                    "updates": update_json(&r.updates(), self.seed_updates().0),
                    "items": r.items.iter().map(|i| json!({
                        "name": i.name,
                        "nar_size": i.nar_size,
                        "root": i.root,
                        "new_bytes": i.new_bytes,
                        "new_blocks": i.new_blocks,
                        "encode_secs": i.encode_secs,
                        "decode_secs": i.decode_secs,
                        "update": i.update.as_ref().map(|u| update_json(u, 0)),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "corpus": self.corpus.display().to_string(),
            "zstd_level": ZSTD_LEVEL,
            "hash": "sha2-256",
            "max_links": narfs_encoder::Profile::KuboV1.layout().max_links,
            "threads": "file-*: narfs_encoder::encode (NAR read and NarHash on a second thread); nar-*, nar-zstd, decode: one thread",
            "seed_level": SEED_LEVEL,
            "raw_bytes": self.raw_bytes,
            "baseline_bytes": self.baseline_bytes,
            "seed_bytes": self.seed_total(),
            "seed_update_bytes": self.seed_updates().0,
            "updates": self.seed_updates().1,
            "items": self.items.iter().zip(&self.seed_bytes).map(|(i, z)| json!({
                "name": i.name, "size": i.size, "package": i.package, "seed_bytes": z,
            })).collect::<Vec<_>>(),
            "results": results,
            "recommendation": self.recommendation().map(|r| json!({
                "strategy": r.strategy.to_string(),
                "compression": r.option,
                "disk_bytes": r.disk_bytes,
                "disk_ratio_seed": ratio(r.disk_bytes, self.seed_total()),
                "decode_mb_s": r.decode_mb_s,
                "decode_at_least_min": r.fast_enough,
                "min_decode_mb_s": MIN_DECODE_MB_S,
                "update_wire_bytes": r.wire_bytes,
                "update_ratio_seed": ratio(r.wire_bytes, self.seed_updates().0),
            })),
        })
    }

    fn footprint_json(&self, r: &StrategyResult, f: &Footprint) -> Value {
        json!({
            "bytes": f.bytes,
            "dict_bytes": f.dict_bytes,
            "frames": f.frames,
            "level": f.level,
            "ratio_seed": ratio(f.bytes, self.seed_total()),
            "compress_secs": f.compress_secs,
            "compress_mb_s": mb_per_s(r.compression.as_ref().map_or(0, |c| c.raw.bytes), f.compress_secs),
            "decode_secs": f.decode_secs,
            "read_bytes": f.read_bytes,
            "decode_mb_s": r.decode_mb_s_with(f),
        })
    }
}

/// An update's (or a sum of updates') figures; `seed` > 0 adds the ratios to it.
fn update_json(u: &Update, seed: u64) -> Value {
    let mut v = json!({
        "blocks": u.blocks,
        "requests_per_block": u.blocks,
        "raw_bytes": u.raw_bytes,
        "block_zstd_bytes": u.block_zstd_bytes,
        "car_zstd_bytes": u.car_zstd_bytes,
        "delta_bytes": u.delta_bytes,
    });
    if seed > 0 {
        v["ratio_seed_raw"] = json!(ratio(u.raw_bytes, seed));
        v["ratio_seed_block_zstd"] = json!(ratio(u.block_zstd_bytes, seed));
        v["ratio_seed_car_zstd"] = json!(ratio(u.car_zstd_bytes, seed));
        v["ratio_seed_delta"] = json!(ratio(u.delta_bytes, seed));
    }
    v
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Decimal megabytes per second.
pub(crate) fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 / 1e6 / secs
    } else {
        0.0
    }
}

/// Bytes in binary units, three significant figures or so.
pub(crate) fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    match u {
        0 => format!("{n} B"),
        _ if v >= 100.0 => format!("{v:.0} {}", UNITS[u]),
        _ if v >= 10.0 => format!("{v:.1} {}", UNITS[u]),
        _ => format!("{v:.2} {}", UNITS[u]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.50 KiB");
        assert_eq!(human(20 << 20), "20.0 MiB");
        assert_eq!(human(300 << 30), "300 GiB");
    }

    #[test]
    fn ratios_and_table() {
        let item = Item {
            name: "a.nar".into(),
            path: "a.nar".into(),
            size: 1000,
            package: "a".into(),
        };
        let mut r = StrategyResult::new("file-fixed:262144".parse().unwrap());
        r.push_item(
            &item,
            None,
            500,
            2,
            Duration::from_millis(1),
            Duration::ZERO,
        );
        r.stored_bytes = 500;
        r.stored_zstd_bytes = 250;
        r.blocks = 2;
        let report = Report {
            corpus: "c".into(),
            items: vec![item],
            raw_bytes: 1000,
            baseline_bytes: 400,
            seed_bytes: vec![300],
            results: vec![r],
        };
        let r = &report.results[0];
        assert_eq!(report.ratio_raw(r), 2.0);
        assert_eq!(report.ratio_raw_zstd(r), 4.0);
        assert_eq!(report.ratio_baseline(r), 1.6);
        assert_eq!(r.encode_mb_s(), 1.0);
        assert_eq!(
            r.decode_mb_s(),
            0.0,
            "no time, no throughput (not infinity)"
        );
        let table = report.table();
        assert!(table.contains("file-fixed:262144"), "{table}");
        assert!(table.contains("1.60"), "{table}");
        let j = report.json();
        assert_eq!(j["results"][0]["inner_blocks"], 2);
        assert_eq!(j["results"][0]["items"][0]["new_bytes"], 500);
    }
}
