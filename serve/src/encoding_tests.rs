use super::*;
use std::io::Read;

use http_body::Body as _;

#[test]
fn accept_encoding_with_q_values() {
    let n = negotiate;
    let (z, id) = (Some(Coding::Zstd), Some(Coding::Identity));
    assert_eq!(n("zstd"), z);
    assert_eq!(n("ZSTD"), z);
    assert_eq!(n("gzip, deflate, br, zstd"), z);
    assert_eq!(n("gzip, deflate"), id);
    assert_eq!(n(""), id, "an empty value asks for no coding");
    assert_eq!(n("zstd;q=0"), id);
    assert_eq!(n("zstd;q=0.000"), id);
    assert_eq!(n("zstd;q=0.5, identity;q=0.6"), id, "identity preferred");
    assert_eq!(n("zstd;q=0.1"), z, "identity not named comes last");
    assert_eq!(n("zstd;q=0.5, identity;q=0.5"), z, "a tie goes to zstd");
    assert_eq!(n("zstd;q=0.001, identity;q=0"), z);
    assert_eq!(n("*"), z, "* accepts zstd");
    assert_eq!(n("*;q=0.3, identity"), id);
    assert_eq!(n("*;q=0.3, zstd;q=0"), Some(Coding::Identity));
    assert_eq!(n("identity;q=0"), None, "nothing we have is acceptable");
    assert_eq!(n("gzip, *;q=0"), None, "*;q=0 refuses identity too");
    assert_eq!(n("gzip, identity;q=0, zstd"), z);
    assert_eq!(n(" zstd ; Q=1.0 "), z);
    assert_eq!(
        n("zstd;q=1.5"),
        id,
        "a q above 1 is malformed: not acceptable"
    );
    assert_eq!(n("zstd;q=0.5x"), id);
    assert_eq!(n("zstd;q=0.1234"), id, "at most three decimals");
    assert_eq!(n("zstd;level=3;q=0.9"), z, "other parameters are ignored");
}

#[test]
fn headers_decide_and_ranges_stay_plain() {
    let mut h = HeaderMap::new();
    assert_eq!(for_request(&h), Some(Coding::Identity), "no header: as is");
    h.append(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    h.append(header::ACCEPT_ENCODING, HeaderValue::from_static("zstd"));
    assert_eq!(
        for_request(&h),
        Some(Coding::Zstd),
        "header lines are one list"
    );
    h.insert(header::RANGE, HeaderValue::from_static("bytes=0-99"));
    assert_eq!(for_request(&h), Some(Coding::Identity));
    let mut h = HeaderMap::new();
    h.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity;q=0"),
    );
    assert_eq!(for_request(&h), None);
}

#[test]
fn marks() {
    let mut h = HeaderMap::new();
    mark(&mut h, Coding::Identity);
    assert_eq!(h[header::VARY], "Accept-Encoding");
    assert!(!h.contains_key(header::CONTENT_ENCODING));
    mark(&mut h, Coding::Zstd);
    assert_eq!(h[header::CONTENT_ENCODING], "zstd");
}

#[test]
fn blocks_are_compressed_only_when_it_pays() {
    let text = b"def f(x):\n    return x\n".repeat(200);
    let (z, c) = whole_block(text.clone(), Coding::Zstd);
    assert_eq!(c, Coding::Zstd);
    assert!(z.len() < text.len() / 4);
    assert_eq!(zstd::decode_all(&z[..]).unwrap(), text);
    // Random bytes (a hash-like block) do not compress: sent as they are.
    let noise = narfs_core::noise::bytes(0, 4096);
    let (sent, c) = whole_block(noise.clone(), Coding::Zstd);
    assert!(c == Coding::Identity && sent == noise);
    assert_eq!(
        whole_block(text.clone(), Coding::Identity),
        (text, Coding::Identity)
    );
}

#[test]
fn nar_file_names() {
    let of = NarCompression::of_file;
    assert_eq!(of("bafy.nar"), Some(("bafy", NarCompression::None)));
    assert_eq!(of("bafy.nar.zst"), Some(("bafy", NarCompression::Zstd)));
    assert_eq!(of("bafy.nar.xz"), Some(("bafy", NarCompression::Xz)));
    assert_eq!(of("bafy.zst"), None);
    assert_eq!(of("bafy.nar.bz2"), None);
    for c in NarCompression::ALL {
        assert_eq!(c.name().parse::<NarCompression>().unwrap(), c);
    }
    assert!("lzip".parse::<NarCompression>().is_err());
}

/// Drains a body on a runtime: its bytes, or the error it ended with.
fn drain(mut body: crate::body::ChannelBody) -> Result<Vec<u8>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut out = Vec::new();
        while let Some(f) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
        {
            match f {
                Ok(f) => out.extend_from_slice(&f.into_data().unwrap()),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(out)
    })
}

/// Writes `data` through a sink of `c` on a thread, finished or failed.
fn through(c: NarCompression, data: &'static [u8], ok: bool) -> Result<Vec<u8>, String> {
    let (w, body) = crate::body::channel(None);
    let t = std::thread::spawn(move || {
        let mut s = BodySink::new(w, c).unwrap();
        for piece in data.chunks(10_000) {
            s.write_all(piece).unwrap();
        }
        s.flush().unwrap();
        if ok {
            s.finish().unwrap();
        } else {
            s.fail("stopped".into());
        }
    });
    let r = drain(body);
    t.join().unwrap();
    r
}

#[test]
fn sinks_stream_and_end_or_fail() {
    let data: &'static [u8] =
        Box::leak(b"nar bytes, nar bytes\n".repeat(50_000).into_boxed_slice());
    assert_eq!(through(NarCompression::None, data, true).unwrap(), data);
    let z = through(NarCompression::Zstd, data, true).unwrap();
    assert!(z.len() < data.len() / 20);
    assert_eq!(zstd::decode_all(&z[..]).unwrap(), data);
    let x = through(NarCompression::Xz, data, true).unwrap();
    let mut out = Vec::new();
    liblzma::read::XzDecoder::new(&x[..])
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, data);
    // A failed producer fails the body, whatever the coding.
    for c in NarCompression::ALL {
        let e = through(c, data, false).unwrap_err();
        assert!(e.contains("stopped"), "{c}: {e}");
    }
}

#[test]
fn a_stream_encoder_at_the_wire_level_takes_about_2_mib() {
    use zstd::zstd_safe::{CCtx, CParameter, InBuffer, OutBuffer};
    let mut c = CCtx::create();
    c.set_parameter(CParameter::CompressionLevel(WIRE_LEVEL))
        .unwrap();
    let data = b"some NAR bytes ".repeat(300_000);
    let mut out = vec![0u8; 1 << 16];
    let mut input = InBuffer::around(&data);
    while input.pos() < data.len() {
        let mut o = OutBuffer::around(&mut out[..]);
        c.compress_stream(&mut o, &mut input).unwrap();
    }
    let size = c.sizeof();
    eprintln!("zstd level {WIRE_LEVEL} stream context: {size} bytes");
    assert!(
        size < 3 << 20,
        "{size} bytes: the documented bound is wrong"
    );
}
