//! The chart's bottom panel: per strategy, what its store takes on disk (its smallest
//! compression option) and what its updates move on the wire (the CAR of new blocks,
//! compressed), each as a fraction of the seed's `zstd -19` NARs (of every item for
//! disk, of the updated items for the wire), with the seed at 1.

use std::fmt::Write as _;

use crate::report::{human, Report};
use crate::svg::{color, esc, nice_step};

/// Left end of the bars and their right end at the scale's maximum.
const BX: f64 = 300.0;
const BR: f64 = 1000.0;
/// Height of one strategy's row.
const ROW: f64 = 30.0;

/// The panel's height.
pub(crate) fn height(report: &Report) -> f64 {
    90.0 + ROW * report.results.len() as f64
}

/// Draws the panel from `top` down.
pub(crate) fn panel(s: &mut String, report: &Report, top: f64) {
    let seed = report.seed_total() as f64;
    let (seed_upd, n) = report.seed_updates();
    let ratio = |a: u64, b: f64| if b > 0.0 { a as f64 / b } else { 0.0 };
    let rows: Vec<(String, crate::Family, f64, f64, String)> = report
        .results
        .iter()
        .map(|r| {
            let (name, disk) = r
                .options()
                .into_iter()
                .map(|(n, f)| (n, f.bytes))
                .min_by_key(|o| o.1)
                .unwrap_or(("", r.stored_bytes));
            let wire = r.updates().car_zstd_bytes;
            let note = match name {
                "" => format!("{} | {}", human(disk), human(wire)),
                _ => format!("{} ({name}) | {}", human(disk), human(wire)),
            };
            (
                r.strategy.to_string(),
                r.strategy.family(),
                ratio(disk, seed),
                ratio(wire, seed_upd as f64),
                note,
            )
        })
        .collect();
    let vmax = rows.iter().flat_map(|r| [r.2, r.3]).fold(1.1f64, f64::max) * 1.05;
    let px = |v: f64| BX + v / vmax * (BR - BX);
    let (y0, y1) = (top + 50.0, top + 50.0 + ROW * rows.len() as f64);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="13" text-anchor="middle">{}</text>"#,
        (BX + BR) / 2.0,
        top + 24.0,
        esc(&format!(
            "Disk (dark) and update cost on the wire (light), x the seed's zstd -19 NARs ({}; {n} updates: {})",
            human(seed as u64),
            human(seed_upd)
        ))
    );
    let step = nice_step(vmax / 6.0);
    let mut v = 0.0;
    while v <= vmax {
        let x = px(v);
        let stroke = if (v - 1.0).abs() < 1e-9 {
            "#555"
        } else {
            "#e0e0e0"
        };
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{y1}" stroke="{stroke}"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
            y1 + 16.0,
            crate::svg::trim_num(v)
        );
        v += step;
    }
    for (i, (name, family, disk, wire, note)) in rows.iter().enumerate() {
        let y = y0 + ROW * i as f64;
        let c = color(*family);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            BX - 6.0,
            y + ROW / 2.0 + 4.0,
            esc(name)
        );
        for (k, (v, opacity)) in [(*disk, "1"), (*wire, "0.45")].into_iter().enumerate() {
            let _ = writeln!(
                s,
                r#"<rect x="{BX}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{c}" fill-opacity="{opacity}"/>"#,
                y + 3.0 + k as f64 * (ROW / 2.0 - 2.0),
                (px(v) - BX).max(0.5),
                ROW / 2.0 - 3.0
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="#555">{}</text>"##,
            px(disk.max(*wire)) + 6.0,
            y + ROW / 2.0 + 4.0,
            esc(note)
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{BX}" y1="{y0}" x2="{BX}" y2="{y1}" stroke="#333"/>"##
    );
}
