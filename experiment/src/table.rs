//! The report as text for stdout: the blocks each strategy stores, the disk footprint
//! under each compression option against the seed's `zstd -19` NARs, the update
//! cost, and the one-line recommendation.

use std::fmt::Write as _;

use crate::compress::DICT_SIZE;
use crate::report::{human, Report, MIN_DECODE_MB_S};
use crate::runner::ZSTD_LEVEL;
use crate::seed::SEED_LEVEL;

/// Every table, then the recommendation.
pub(crate) fn render(report: &Report) -> String {
    let mut s = String::new();
    let seed = report.seed_total();
    let _ = writeln!(
        s,
        "corpus {}: {} NARs, {} raw; one zstd -{ZSTD_LEVEL} NAR per item {}; \
         the seed (zstd -{SEED_LEVEL} per NAR) {}",
        report.corpus.display(),
        report.items.len(),
        human(report.raw_bytes),
        human(report.baseline_bytes),
        human(seed),
    );
    s.push('\n');
    blocks(&mut s, report);
    s.push('\n');
    disk(&mut s, report);
    s.push('\n');
    updates(&mut s, report);
    s.push('\n');
    if let Some(r) = report.recommendation() {
        per_package(&mut s, report, &r.strategy.to_string());
        s.push('\n');
    }
    match report.recommendation() {
        Some(r) => {
            let (useed, _) = report.seed_updates();
            let _ = writeln!(
                s,
                "recommendation: {} with {} compression at rest ({} = {:.2} x the zstd -{SEED_LEVEL} NARs, \
                 decode {:.0} MB/s{}) and the new blocks as one zstd-compressed CAR on the wire \
                 (updates {} = {:.2} x their zstd -{SEED_LEVEL} NARs)",
                r.strategy,
                r.option,
                human(r.disk_bytes),
                ratio(r.disk_bytes, seed),
                r.decode_mb_s,
                if r.fast_enough {
                    String::new()
                } else {
                    format!(": none reached {MIN_DECODE_MB_S:.0}")
                },
                human(r.wire_bytes),
                ratio(r.wire_bytes, useed),
            );
        }
        None => s.push_str("recommendation: none (no per-file strategy was run)\n"),
    }
    s
}

fn blocks(s: &mut String, report: &Report) {
    let head = [
        "strategy", "stored", "zstd'd", "blocks", "mean blk", "x raw", "x raw z", "x base",
        "enc MB/s", "dec MB/s",
    ];
    let rows = report
        .results
        .iter()
        .map(|r| {
            vec![
                r.strategy.to_string(),
                human(r.stored_bytes),
                human(r.stored_zstd_bytes),
                r.blocks.to_string(),
                human(r.mean_block() as u64),
                format!("{:.2}", report.ratio_raw(r)),
                format!("{:.2}", report.ratio_raw_zstd(r)),
                format!("{:.2}", report.ratio_baseline(r)),
                format!("{:.0}", r.encode_mb_s()),
                format!("{:.0}", r.decode_mb_s()),
            ]
        })
        .collect();
    grid(s, &head, rows);
    s.push_str(
        "stored = unique block bytes incl. inner nodes; zstd'd = after zstd of each unique \
         block; x raw = raw NARs / stored; x raw z = raw / zstd'd; x base = nar-zstd / zstd'd\n",
    );
}

fn disk(s: &mut String, report: &Report) {
    let seed = report.seed_total();
    let pack = report
        .results
        .iter()
        .find_map(|r| r.compression.as_ref())
        .map_or(0, |c| c.pack_size);
    let _ = writeln!(
        s,
        "disk under each compression, x the zstd -{SEED_LEVEL} NARs ({}), and decode MB/s from it:",
        human(seed)
    );
    let head = [
        "strategy",
        "raw",
        "block",
        "dict",
        "pack",
        "pack lz4",
        "repack",
        "dec block",
        "dec dict",
        "dec pack",
        "dec lz4",
        "dec repack",
    ];
    let rows = report
        .results
        .iter()
        .filter_map(|r| {
            let c = r.compression.as_ref()?;
            let cell = |f: Option<&crate::Footprint>| {
                f.map_or("-".to_string(), |f| {
                    format!("{} {:.2}", human(f.bytes), ratio(f.bytes, seed))
                })
            };
            let speed = |f: Option<&crate::Footprint>| {
                f.map_or("-".to_string(), |f| format!("{:.0}", r.decode_mb_s_with(f)))
            };
            Some(vec![
                r.strategy.to_string(),
                cell(Some(&c.raw)),
                cell(Some(&c.block)),
                cell(c.dict.as_ref()),
                cell(Some(&c.pack)),
                cell(Some(&c.pack_lz4)),
                cell(c.repack.as_ref()),
                speed(Some(&c.block)),
                speed(c.dict.as_ref()),
                speed(Some(&c.pack)),
                speed(Some(&c.pack_lz4)),
                speed(c.repack.as_ref()),
            ])
        })
        .collect();
    grid(s, &head, rows);
    let level = report
        .results
        .iter()
        .find_map(|r| r.compression.as_ref()?.repack.as_ref())
        .map_or(SEED_LEVEL, |f| f.level);
    let _ = writeln!(
        s,
        "block = zstd -{ZSTD_LEVEL} per block; dict = the same with a {} dictionary trained on the \
         small blocks (counted); pack = each item's new blocks in {} zstd -{ZSTD_LEVEL} frames \
         (pack lz4: LZ4 blocks, the store's import default); \
         repack = the packs at zstd -{level}, for the strategy packing smallest only; \
         dec = every NAR decoded from it, blocks decompressed as asked for and verified",
        human(DICT_SIZE as u64),
        human(pack as u64),
    );
}

fn updates(s: &mut String, report: &Report) {
    let (seed, n) = report.seed_updates();
    let _ = writeln!(
        s,
        "update cost: {n} updates (each version after a package's first, for a client holding \
         its earlier versions), x their zstd -{SEED_LEVEL} NARs ({}):",
        human(seed)
    );
    let head = [
        "strategy",
        "blocks",
        "blk/upd",
        "raw",
        "zstd/block",
        "CAR zstd",
        "x seed",
        "delta",
        "x seed",
    ];
    let rows = report
        .results
        .iter()
        .map(|r| {
            let u = r.updates();
            vec![
                r.strategy.to_string(),
                u.blocks.to_string(),
                format!("{:.0}", u.blocks as f64 / n.max(1) as f64),
                format!("{} {:.2}", human(u.raw_bytes), ratio(u.raw_bytes, seed)),
                format!(
                    "{} {:.2}",
                    human(u.block_zstd_bytes),
                    ratio(u.block_zstd_bytes, seed)
                ),
                human(u.car_zstd_bytes),
                format!("{:.2}", ratio(u.car_zstd_bytes, seed)),
                human(u.delta_bytes),
                format!("{:.2}", ratio(u.delta_bytes, seed)),
            ]
        })
        .collect();
    grid(s, &head, rows);
    s.push_str(
        "blocks = requests one block per request; CAR zstd = all of an update's new blocks in \
         one request, the CAR stream zstd -3'd; delta = the same with each changed file zstd \
         -3'd against the previous version's file at its path (measured only: narfs does not \
         send deltas yet); nar-zstd sends the whole zstd -3 NAR\n",
    );
}

/// The updates of `strategy` per package, against the seed's NARs of the same items.
fn per_package(s: &mut String, report: &Report, strategy: &str) {
    let Some(r) = report
        .results
        .iter()
        .find(|r| r.strategy.to_string() == strategy)
    else {
        return;
    };
    // package -> (updates, NAR bytes, seed bytes, raw, CAR zstd, delta), in corpus order.
    let mut rows: Vec<(String, [u64; 6])> = Vec::new();
    for ((item, res), seed) in report.items.iter().zip(&r.items).zip(&report.seed_bytes) {
        let Some(u) = &res.update else { continue };
        let at = match rows.iter().position(|(p, _)| *p == item.package) {
            Some(at) => at,
            None => {
                rows.push((item.package.clone(), [0; 6]));
                rows.len() - 1
            }
        };
        let t = &mut rows[at].1;
        let figures = [
            1,
            item.size,
            *seed,
            u.raw_bytes,
            u.car_zstd_bytes,
            u.delta_bytes,
        ];
        for (k, v) in figures.into_iter().enumerate() {
            t[k] += v;
        }
    }
    let _ = writeln!(s, "update cost per package under {strategy}:");
    let head = [
        "package",
        "updates",
        "NARs",
        "zstd -19 NARs",
        "new blocks",
        "CAR zstd",
        "x seed",
        "delta",
        "x seed",
    ];
    let rows = rows
        .into_iter()
        .map(|(p, t)| {
            vec![
                p,
                t[0].to_string(),
                human(t[1]),
                human(t[2]),
                human(t[3]),
                human(t[4]),
                format!("{:.2}", ratio(t[4], t[2])),
                human(t[5]),
                format!("{:.2}", ratio(t[5], t[2])),
            ]
        })
        .collect();
    grid(s, &head, rows);
}

/// `a / b`, 0 when `b` is.
fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// A left-aligned first column, the others right-aligned, two spaces apart.
fn grid(s: &mut String, head: &[&str], rows: Vec<Vec<String>>) {
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut line = |cells: &[&str]| {
        for (i, (cell, w)) in cells.iter().zip(&width).enumerate() {
            if i == 0 {
                let _ = write!(s, "{cell:<w$}");
            } else {
                let _ = write!(s, "  {cell:>w$}");
            }
        }
        s.push('\n');
    };
    line(head);
    for row in &rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
}
