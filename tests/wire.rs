//! Compression on the wire, between `narfs serve` and its clients on loopback:
//! - the server's negotiation: `Content-Encoding: zstd` on CARs and NARs when
//!   `Accept-Encoding` allows it (with `Vary`), HEAD as GET, none on a Range request,
//!   406 when nothing acceptable is left; `.nar.zst` and `.nar.xz` files made on the
//!   fly; `--nar-compression` narinfos;
//! - `narfs fetch` from `narfs serve`: byte-exact NARs, fewer bytes on the wire than
//!   block bytes, for a first version and for an update;
//!
//! A hostile gateway's zstd bombs are `tests/wire_bombs.rs`'s (alone in their binary,
//! for the peak RSS).

mod common;
mod serve_support;

use std::io::Read;

use common::{corpus, encode_named, run};
use serve_support::{get, narfs, request, Server};

/// The numbers of `narfs fetch`'s summary: block bytes fetched, bytes on the wire.
fn fetched(stderr: &str) -> (u64, u64) {
    let n = |after: &str, before: &str| -> u64 {
        let rest =
            &stderr[stderr.find(after).unwrap_or_else(|| panic!("{stderr}")) + after.len()..];
        rest[..rest.find(before).unwrap()].trim().parse().unwrap()
    };
    (
        n("blocks (", " bytes)"),
        n("requests (", " bytes on the wire"),
    )
}

fn zstd_decoded(data: &[u8]) -> Vec<u8> {
    zstd::decode_all(data).expect("a whole zstd stream")
}

#[test]
fn serve_negotiates_zstd_and_makes_compressed_nars() {
    let tmp = tempfile::tempdir().unwrap();
    let publisher = tmp.path().join("publisher");
    let root = encode_named(&publisher, "tzdata-2024.1");
    let nar = std::fs::read(corpus("tzdata-2024.1.nar")).unwrap();
    let srv = Server::start(&publisher);
    let a = srv.addr;
    let zstd = [("Accept-Encoding", "gzip, zstd;q=0.9")];
    let path = format!("/nar/{root}.nar");

    // A NAR: as is with its length, or zstd without one; Vary either way.
    let plain = get(a, &path, &[]);
    assert!(plain.complete && plain.body == nar);
    assert_eq!(
        plain.header("content-length"),
        Some(&*nar.len().to_string())
    );
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    let z = get(a, &path, &zstd);
    assert_eq!(z.header("content-encoding"), Some("zstd"));
    assert_eq!(z.header("content-length"), None);
    assert_eq!(z.header("vary"), Some("Accept-Encoding"));
    assert!(
        z.complete && z.body.len() < nar.len() / 2,
        "{}",
        z.body.len()
    );
    assert!(zstd_decoded(&z.body) == nar);
    // HEAD says what GET does.
    let head = request(a, "HEAD", &path, &zstd);
    assert_eq!(
        (
            head.header("content-encoding"),
            head.header("content-length")
        ),
        (Some("zstd"), None)
    );
    let head = request(a, "HEAD", &path, &[]);
    assert_eq!(head.header("content-length"), Some(&*nar.len().to_string()));
    // No coding on a Range request; none acceptable: 406.
    let ranged = get(a, &path, &[zstd[0], ("Range", "bytes=0-99")]);
    assert_eq!(ranged.header("content-encoding"), None);
    assert_eq!(
        get(a, &path, &[("Accept-Encoding", "identity;q=0")]).status,
        406
    );

    // The compressed files, whatever Accept-Encoding says.
    let zf = get(a, &format!("/nar/{root}.nar.zst"), &zstd);
    assert_eq!(zf.header("content-encoding"), None);
    assert!(zf.complete && zstd_decoded(&zf.body) == nar);
    let xf = get(a, &format!("/nar/{root}.nar.xz"), &[]);
    let mut out = Vec::new();
    liblzma::read::XzDecoder::new(&xf.body[..])
        .read_to_end(&mut out)
        .unwrap();
    assert!(xf.complete && out == nar);

    // A CAR: the same bytes once decoded, its own ETag.
    let car = format!("/ipfs/{root}?format=car");
    let plain = get(a, &car, &[]);
    let z = get(a, &car, &zstd);
    assert_eq!(z.header("content-encoding"), Some("zstd"));
    assert!(z.header("vary").unwrap().contains("Accept-Encoding"));
    assert_ne!(z.header("etag"), plain.header("etag"));
    assert!(z.body.len() < plain.body.len() / 2);
    assert!(zstd_decoded(&z.body) == plain.body);
    // A raw block: compressed only when it pays, the same bytes either way.
    let raw = format!("/ipfs/{root}?format=raw");
    let (p, z) = (get(a, &raw, &[]), get(a, &raw, &zstd));
    let body = match z.header("content-encoding") {
        Some("zstd") => zstd_decoded(&z.body),
        None => z.body.clone(),
        other => panic!("{other:?}"),
    };
    assert!(p.status == 200 && body == p.body);
}

#[test]
fn narinfos_offer_compressed_nars() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    // An imported path has narinfo fields: a hand-made cache of one NAR.
    let nar = std::fs::read(corpus("requests-2.32.0.nar")).unwrap();
    let entry = serve_support::Entry::new(1, "requests-2.32.0", nar.clone(), "none");
    let cache = tmp.path().join("cache");
    serve_support::write_cache(&cache, std::slice::from_ref(&entry));
    run(narfs().arg("import").arg(&cache).arg("--store").arg(&store));
    for (flag, suffix) in [("none", ".nar"), ("zstd", ".nar.zst"), ("xz", ".nar.xz")] {
        let srv = Server::start_with(&store, &["--nar-compression".as_ref(), flag.as_ref()]);
        let info = get(srv.addr, &format!("/{}.narinfo", entry.hash), &[]).text();
        assert!(info.contains(&format!("Compression: {flag}\n")), "{info}");
        let url = info.lines().find_map(|l| l.strip_prefix("URL: ")).unwrap();
        assert!(url.starts_with("nar/") && url.ends_with(suffix), "{info}");
        // Nix's narinfos carry no FileSize (Nix takes one without).
        assert!(!info.contains("FileSize"), "{info}");
        let body = get(srv.addr, &format!("/{url}"), &[]).body;
        let back = match flag {
            "none" => body,
            "zstd" => zstd_decoded(&body),
            _ => {
                let mut out = Vec::new();
                liblzma::read::XzDecoder::new(&body[..])
                    .read_to_end(&mut out)
                    .unwrap();
                out
            }
        };
        assert!(back == nar, "{flag}: not the NAR");
    }
}

#[test]
fn fetch_from_narfs_serve_moves_compressed_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let publisher = tmp.path().join("publisher");
    let v1 = encode_named(&publisher, "requests-2.32.0");
    let v2 = encode_named(&publisher, "requests-2.32.1");
    let srv = Server::start(&publisher);
    let store = tmp.path().join("client");
    let out_nar = tmp.path().join("out.nar");
    for (root, name) in [(&v1, "requests-2.32.0"), (&v2, "requests-2.32.1")] {
        let out = narfs()
            .args(["fetch", "--gateway", &srv.url, "--store"])
            .arg(&store)
            .args([root.as_str(), "-o"])
            .arg(&out_nar)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        assert!(
            std::fs::read(&out_nar).unwrap()
                == std::fs::read(corpus(&format!("{name}.nar"))).unwrap()
        );
        let (blocks, wire) = fetched(&err);
        if root == &v1 {
            // Python sources compress about 4 times.
            assert!(
                wire < blocks / 2,
                "{wire} bytes on the wire for {blocks}: {err}"
            );
        } else {
            // The update: few new blocks (the wire also carries the start of the
            // whole-DAG CAR, dropped at the first stored block).
            assert!(0 < blocks && blocks < 20_000, "{err}");
        }
    }
}
