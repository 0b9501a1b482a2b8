//! The experiment's chart, as a hand-written SVG: on the left, stored bytes (after
//! zstd of each unique block, solid; raw, dashed) against the target chunk size, one
//! line per strategy family, with the nar-zstd baseline as a horizontal line; on the
//! right, encode and decode throughput bars per strategy; below, the disk and update
//! costs against the seed's `zstd -19` NARs (`svg_cost.rs`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::report::{human, Report};
use crate::strategy::Family;

const W: f64 = 1120.0;
/// The height of the top two panels; the cost panel adds its own below.
const H: f64 = 500.0;
/// Left panel plot area.
const L: (f64, f64, f64, f64) = (90.0, 70.0, 560.0, 400.0);
/// Right panel: labels end at `BX`, bars from `BX` to `BR`.
const BX: f64 = 880.0;
const BR: f64 = 1090.0;

pub(crate) fn color(f: Family) -> &'static str {
    match f {
        Family::FileFastCdc => "#1b7837",
        Family::FileFixed => "#2166ac",
        Family::NarFastCdc => "#d6604d",
        Family::NarFixed => "#b2182b",
        Family::NarZstd => "#555555",
    }
}

/// The chart of `report`.
pub(crate) fn render(report: &Report) -> String {
    let mut s = String::new();
    let h = H + crate::svg_cost::height(report);
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" font-size="16" font-weight="bold">{}</text>"#,
        L.0,
        esc(&format!(
            "narfs experiment: {} NARs, {} raw ({})",
            report.items.len(),
            human(report.raw_bytes),
            report.corpus.display()
        ))
    );
    stored_panel(&mut s, report);
    throughput_panel(&mut s, report);
    crate::svg_cost::panel(&mut s, report, H);
    s.push_str("</svg>\n");
    s
}

fn stored_panel(s: &mut String, report: &Report) {
    let (x0, y0, x1, y1) = L;
    let points: Vec<(Family, f64, u64, u64)> = report
        .results
        .iter()
        .filter_map(|r| {
            let t = r.strategy.target_chunk()? as f64;
            Some((r.strategy.family(), t, r.stored_bytes, r.stored_zstd_bytes))
        })
        .collect();
    let values = || {
        points
            .iter()
            .flat_map(|p| [p.2, p.3])
            .chain([report.baseline_bytes])
            .filter(|&v| v > 0)
    };
    let top = values().max().unwrap_or(1) as f64;
    let bottom = values().min().unwrap_or(0) as f64;
    // Axis unit: the binary unit of the largest value.
    let (unit, unit_name) = [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        .into_iter()
        .find(|(u, _)| top >= 2.0 * *u as f64)
        .unwrap_or((1, "B"));
    let unit = unit as f64;
    // Start at zero unless every value sits high up; then zoom in on the spread.
    let (ymin, step) = if bottom > 0.4 * top {
        let step = nice_step((top - bottom) * 1.1 / unit / 5.0) * unit;
        ((bottom * 0.98 / step).floor() * step, step)
    } else {
        (0.0, nice_step(top * 1.05 / unit / 5.0) * unit)
    };
    let ymax = ymin + ((top - ymin) * 1.04 / step).ceil().max(1.0) * step;
    let (lo, hi) = points.iter().fold((f64::MAX, 0f64), |(lo, hi), p| {
        (lo.min(p.1.log2()), hi.max(p.1.log2()))
    });
    let (lo, hi) = if points.is_empty() {
        (12.0, 20.0)
    } else {
        (lo.floor() - 0.5, hi.ceil() + 0.5)
    };
    let px = |t: f64| x0 + (t.log2() - lo) / (hi - lo) * (x1 - x0);
    let py = |v: f64| y1 - (v - ymin) / (ymax - ymin) * (y1 - y0);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="52" font-size="13" text-anchor="middle">Stored bytes against target chunk size (lower is better)</text>"#,
        (x0 + x1) / 2.0
    );
    // Y grid and labels.
    let mut v = ymin;
    while v <= ymax + step / 2.0 {
        let y = py(v);
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#e0e0e0"/><text x="{}" y="{:.1}" text-anchor="end">{} {unit_name}</text>"##,
            x0 - 6.0,
            y + 4.0,
            trim_num(v / unit)
        );
        v += step;
    }
    let note = if ymin > 0.0 {
        " (axis not from zero)"
    } else {
        ""
    };
    let _ = writeln!(
        s,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">stored bytes{note}</text>"#,
        (y0 + y1) / 2.0
    );
    // X ticks at powers of two.
    let mut e = lo.ceil() as i32;
    while (e as f64) <= hi {
        let x = px(2f64.powi(e));
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{y1}" stroke="#f0f0f0"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            y1 + 16.0,
            pow2_label(e)
        );
        e += 1;
    }
    let _ = writeln!(
        s,
        r##"<rect x="{x0}" y="{y0}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
        x1 - x0,
        y1 - y0
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">target chunk size (fixed SIZE or FastCDC AVG, log scale)</text>"#,
        (x0 + x1) / 2.0,
        y1 + 36.0
    );
    // The baseline.
    if report.baseline_bytes > 0 {
        let y = py(report.baseline_bytes as f64);
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="{c}" stroke-width="1.5" stroke-dasharray="2 3"/><text x="{}" y="{:.1}" fill="{c}">nar-zstd<tspan x="{}" dy="14">{}</tspan></text>"##,
            x1 + 5.0,
            y - 2.0,
            x1 + 5.0,
            human(report.baseline_bytes),
            c = color(Family::NarZstd),
        );
    }
    // One line per family, raw dashed and zstd'd solid.
    let mut families: BTreeMap<Family, Vec<(f64, u64, u64)>> = BTreeMap::new();
    for (f, t, raw, z) in points {
        families.entry(f).or_default().push((t, raw, z));
    }
    for (i, (family, pts)) in families.iter_mut().enumerate() {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let c = color(*family);
        for (dash, pick) in [(true, 1usize), (false, 2usize)] {
            let coords: Vec<String> = pts
                .iter()
                .map(|p| {
                    let v = if pick == 1 { p.1 } else { p.2 };
                    format!("{:.1},{:.1}", px(p.0), py(v as f64))
                })
                .collect();
            let style = if dash {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"{style}/>"#,
                coords.join(" ")
            );
            for xy in &coords {
                let (x, y) = xy.split_once(',').unwrap_or(("0", "0"));
                let fill = if dash { "white" } else { c };
                let _ = writeln!(
                    s,
                    r#"<circle cx="{x}" cy="{y}" r="4" fill="{fill}" stroke="{c}" stroke-width="1.5"/>"#
                );
            }
        }
        // Legend entry, in a row under the axis title.
        let (lx, ly) = (x0 + 115.0 * i as f64, y1 + 62.0);
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{c}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 20.0,
            lx + 25.0,
            ly + 4.0,
            family.name()
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{x0}" y="{}" fill="#555">solid line, filled dots: after zstd of each unique block; dashed line, open dots: raw block bytes</text>"##,
        y1 + 84.0
    );
}

fn throughput_panel(s: &mut String, report: &Report) {
    let (top, bottom) = (L.1, L.3);
    let n = report.results.len().max(1);
    let vmax = report
        .results
        .iter()
        .flat_map(|r| [r.encode_mb_s(), r.decode_mb_s()])
        .fold(1.0f64, f64::max)
        * 1.05;
    let band = (bottom - top) / n as f64;
    let bar = (band * 0.38).min(14.0);
    let px = |v: f64| BX + v / vmax * (BR - BX);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="52" font-size="13" text-anchor="middle">Throughput, MB/s of NAR</text>"#,
        (BX + BR) / 2.0 - 60.0
    );
    let step = nice_step(vmax / 3.0);
    let mut v = 0.0;
    while v <= vmax {
        let x = px(v);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" stroke="#e0e0e0"/><text x="{x:.1}" y="{}" text-anchor="middle">{v:.0}</text>"##,
            bottom + 16.0
        );
        v += step;
    }
    for (i, r) in report.results.iter().enumerate() {
        let y = top + band * i as f64 + band / 2.0;
        let c = color(r.strategy.family());
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            BX - 6.0,
            y + 4.0,
            esc(&r.strategy.to_string())
        );
        for (k, (v, opacity)) in [(r.encode_mb_s(), "1"), (r.decode_mb_s(), "0.45")]
            .into_iter()
            .enumerate()
        {
            let by = y - bar + k as f64 * bar;
            let _ = writeln!(
                s,
                r#"<rect x="{BX}" y="{by:.1}" width="{:.1}" height="{:.1}" fill="{c}" fill-opacity="{opacity}"/>"#,
                (px(v) - BX).max(0.5),
                bar - 1.0
            );
        }
    }
    let _ = writeln!(
        s,
        r##"<line x1="{BX}" y1="{top}" x2="{BX}" y2="{bottom}" stroke="#333"/><text x="{}" y="{}" text-anchor="middle">dark: encode; light: decode with verification</text>"##,
        (BX + BR) / 2.0 - 60.0,
        bottom + 36.0
    );
}

/// `2^e` bytes as an axis label: `16 KiB`, `1 MiB`.
fn pow2_label(e: i32) -> String {
    match e {
        ..=9 => format!("{} B", 1u64 << e.max(0)),
        10..=19 => format!("{} KiB", 1u64 << (e - 10)),
        20..=29 => format!("{} MiB", 1u64 << (e - 20)),
        _ => format!("{} GiB", 1u64 << (e - 30).min(62)),
    }
}

/// A number without trailing zeros: 5, 2.5, 0.25.
pub(crate) fn trim_num(v: f64) -> String {
    let t = format!("{v:.2}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A round step (1, 2 or 5 times a power of ten) of about `raw`.
pub(crate) fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    p * if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    }
}

pub(crate) fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(120.0), 200.0);
        assert_eq!(nice_step(1.0e6), 1.0e6);
        assert_eq!(pow2_label(14), "16 KiB");
        assert_eq!(pow2_label(20), "1 MiB");
        assert_eq!(trim_num(2.50), "2.5");
        assert_eq!(trim_num(5.0), "5");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(esc("a<b & \"c\">"), "a&lt;b &amp; &quot;c&quot;&gt;");
    }

    #[test]
    fn empty_report_still_draws() {
        let report = Report {
            corpus: "a&b".into(),
            items: vec![],
            raw_bytes: 0,
            baseline_bytes: 0,
            seed_bytes: vec![],
            results: vec![],
        };
        let svg = render(&report);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a&amp;b") && !svg.contains("NaN") && !svg.contains("inf"));
    }
}
