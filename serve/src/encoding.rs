//! Compression on the wire, in two forms:
//!
//! - **`Content-Encoding: zstd`**, negotiated per request from `Accept-Encoding`
//!   ([`negotiate`], RFC 9110 §12.5.3 with q-values): CAR responses and `/nar/…` bodies
//!   are compressed as they stream ([`BodySink`]: a zstd stream encoder in front of the
//!   body channel, so memory per response stays bounded: the encoder's ~2 MiB, see
//!   [`WIRE_LEVEL`]), without `Content-Length` then; a raw block, already in memory, is
//!   sent compressed only when that makes it at least 1/8 smaller ([`whole_block`]).
//!   Every negotiable response says `Vary: Accept-Encoding`; a `Range` request is
//!   answered as it is (a range of compressed bytes would be of another
//!   representation).
//! - **compressed NAR files** (`narfs serve --nar-compression zstd|xz`,
//!   [`NarCompression`]): narinfos point at `nar/<cid>.nar.zst` (`.nar.xz`) with
//!   `Compression: zstd` (`xz`), the file a Nix or Guix client decompresses itself,
//!   made on the fly from the store through the same [`BodySink`].
//!
//! Why zstd only: it is the coding that decodes fastest (a client fetching at line
//! rate is not slowed) and the one narfs's own clients ask for
//! (`narfs_nix::http::ACCEPT_ENCODING`). Nix 2.8 sends no `Accept-Encoding`: its
//! clients get compressed NARs through `--nar-compression`.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use axum::http::{header, HeaderMap, HeaderValue};

use crate::body::ChannelWriter;

/// The zstd level of everything compressed on the fly. Measured on this project's
/// 2-core machine (`zstd -b1 -e4` on a 42 MB pandas NAR, load 2.8): level 1 294 MB/s
/// (×3.38), 2 255 MB/s (×3.82), 3 162 MB/s (×4.11): level 2 compresses twice the
/// 125 MB/s of a 1 Gbit/s link on one core, with most of level 3's ratio. Its window
/// (1 MiB) and tables take about 2 MiB per stream; clients accept up to 8 MiB
/// (RFC 8878).
pub const WIRE_LEVEL: i32 = 2;

/// The xz preset of `--nar-compression xz`: the fastest, liblzma's 0, and still far
/// below a 1 Gbit/s link (`xz -0` 6.6 MB/s against `zstd -2` 139 MB/s on the same
/// 42 MB NAR at load 12): xz is for clients that cannot take zstd.
pub const XZ_PRESET: u32 = 0;

/// How a response body is encoded on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// The bytes as they are.
    Identity,
    /// `Content-Encoding: zstd`.
    Zstd,
}

/// The coding to answer a request with `headers`, `None` if the client accepts none
/// we have (`identity;q=0` without zstd: a 406). A `Range` request gets the bytes as
/// they are.
pub fn for_request(headers: &HeaderMap) -> Option<Coding> {
    if headers.contains_key(header::RANGE) {
        return Some(Coding::Identity);
    }
    let mut values = headers.get_all(header::ACCEPT_ENCODING).iter().peekable();
    if values.peek().is_none() {
        return Some(Coding::Identity);
    }
    // Several header lines are one comma-separated list; a value that is not text
    // counts as an empty one (identity).
    let joined: Vec<&str> = values.map(|v| v.to_str().unwrap_or("")).collect();
    negotiate(&joined.join(","))
}

/// `Accept-Encoding: value` → the coding to use: zstd when its q (its own, else `*`'s)
/// is positive and not below identity's (its own, else `*`'s; identity named by
/// neither is acceptable, below any coding named); else identity, unless refused
/// (`identity;q=0`, or `*;q=0` without an `identity` entry): then `None`. An empty
/// value means identity only; a malformed q makes its entry unacceptable.
pub fn negotiate(value: &str) -> Option<Coding> {
    let (mut zstd, mut identity, mut star) = (None, None, None);
    for item in value.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default().to_ascii_lowercase();
        if coding.is_empty() {
            continue;
        }
        let mut q = 1000;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = qvalue(v.trim()).unwrap_or(0);
                }
            }
        }
        match coding.as_str() {
            "zstd" => zstd = Some(q),
            "identity" => identity = Some(q),
            "*" => star = Some(q),
            _ => {}
        }
    }
    let zstd = zstd.or(star).unwrap_or(0);
    // Identity not named (nor `*`) is acceptable but preferred to nothing named.
    let identity = identity.or(star).unwrap_or(1);
    if zstd > 0 && zstd >= identity {
        Some(Coding::Zstd)
    } else if identity > 0 {
        Some(Coding::Identity)
    } else {
        None
    }
}

/// A q-value (RFC 9110 §12.4.2: `0[.ddd]` or `1[.000]`) in thousandths.
fn qvalue(v: &str) -> Option<u32> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = format!("{frac:0<3}").parse::<u32>().ok()?;
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// Adds `Vary: Accept-Encoding` (to a response whose coding was negotiated) and, for
/// zstd, `Content-Encoding: zstd`.
pub fn mark(headers: &mut HeaderMap, coding: Coding) {
    headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if coding == Coding::Zstd {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("zstd"));
    }
}

/// A block to send whole with `coding`: zstd if that saves at least 1/8 of it (the
/// coding then applies), else as it is (identity). Hashes and tiny blocks do not
/// compress, text and code do.
pub fn whole_block(data: Vec<u8>, coding: Coding) -> (Vec<u8>, Coding) {
    if coding == Coding::Identity || data.len() < 128 {
        return (data, Coding::Identity);
    }
    match zstd::bulk::compress(&data, WIRE_LEVEL) {
        Ok(z) if z.len() <= data.len() - data.len() / 8 => (z, Coding::Zstd),
        _ => (data, Coding::Identity),
    }
}

/// How `/nar/…` files are offered in narinfos (`narfs serve --nar-compression`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NarCompression {
    /// `nar/<cid>.nar`, `Compression: none` (a client may still negotiate
    /// `Content-Encoding: zstd`).
    #[default]
    None,
    /// `nar/<cid>.nar.zst`, `Compression: zstd`, made at [`WIRE_LEVEL`].
    Zstd,
    /// `nar/<cid>.nar.xz`, `Compression: xz`, made at [`XZ_PRESET`] (Nix only: Guix
    /// items stay uncompressed).
    Xz,
}

impl NarCompression {
    /// Every form, for parsing and routing.
    pub const ALL: [NarCompression; 3] = [
        NarCompression::None,
        NarCompression::Zstd,
        NarCompression::Xz,
    ];

    /// The narinfo's `Compression:` value (and the CLI's name).
    pub fn name(self) -> &'static str {
        match self {
            NarCompression::None => "none",
            NarCompression::Zstd => "zstd",
            NarCompression::Xz => "xz",
        }
    }

    /// The file name's suffix after `.nar`.
    pub fn suffix(self) -> &'static str {
        match self {
            NarCompression::None => "",
            NarCompression::Zstd => ".zst",
            NarCompression::Xz => ".xz",
        }
    }

    /// The form `file` (`<cid>.nar[.zst|.xz]`) asks for, and the `<cid>` part.
    pub fn of_file(file: &str) -> Option<(&str, NarCompression)> {
        // Longest suffix first: every name ends in `.nar` before its own suffix.
        [
            NarCompression::Zstd,
            NarCompression::Xz,
            NarCompression::None,
        ]
        .into_iter()
        .find_map(|c| {
            let stem = file.strip_suffix(c.suffix())?.strip_suffix(".nar")?;
            Some((stem, c))
        })
    }
}

impl fmt::Display for NarCompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--nar-compression` value that is none of `none`, `zstd`, `xz`.
#[derive(Debug, thiserror::Error)]
#[error("unknown NAR compression {0:?} (none, zstd, xz)")]
pub struct UnknownCompression(String);

impl FromStr for NarCompression {
    type Err = UnknownCompression;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NarCompression::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownCompression(s.into()))
    }
}

/// What a streaming producer writes into: the body channel, through a zstd or xz
/// encoder when the response is compressed. Like [`ChannelWriter`], it must end with
/// [`finish`](Self::finish) (which ends the compressed stream) or
/// [`fail`](Self::fail) (which cuts the body: a compressed stream without its end is
/// refused by every decoder, so a client never takes it for whole).
pub enum BodySink {
    /// Uncompressed.
    Plain(ChannelWriter),
    /// zstd, one frame.
    Zstd(zstd::stream::write::Encoder<'static, ChannelWriter>),
    /// xz, one stream.
    Xz(liblzma::write::XzEncoder<ChannelWriter>),
}

impl BodySink {
    /// A sink of `compression` into `w`.
    pub fn new(w: ChannelWriter, compression: NarCompression) -> io::Result<BodySink> {
        Ok(match compression {
            NarCompression::None => BodySink::Plain(w),
            NarCompression::Zstd => {
                BodySink::Zstd(zstd::stream::write::Encoder::new(w, WIRE_LEVEL)?)
            }
            NarCompression::Xz => BodySink::Xz(liblzma::write::XzEncoder::new(w, XZ_PRESET)),
        })
    }

    /// A sink for a response negotiated as `coding`.
    pub fn coded(w: ChannelWriter, coding: Coding) -> io::Result<BodySink> {
        BodySink::new(
            w,
            match coding {
                Coding::Identity => NarCompression::None,
                Coding::Zstd => NarCompression::Zstd,
            },
        )
    }

    /// Ends the compressed stream, sends what is buffered; the body then ends.
    pub fn finish(self) -> io::Result<()> {
        match self {
            BodySink::Plain(w) => w.finish(),
            BodySink::Zstd(z) => z.finish()?.finish(),
            BodySink::Xz(x) => x.finish()?.finish(),
        }
    }

    /// Cuts the body with an error (see [`ChannelWriter::fail`]).
    pub fn fail(self, why: String) {
        match self {
            BodySink::Plain(w) => w.fail(why),
            BodySink::Zstd(mut z) => unended(z.get_mut()).fail(why),
            BodySink::Xz(mut x) => unended(x.get_mut()).fail(why),
        }
    }
}

/// The writer under an encoder, taken out of it so that the encoder's buffered output
/// (and the end of stream xz's encoder writes when dropped) goes nowhere.
fn unended(w: &mut ChannelWriter) -> ChannelWriter {
    std::mem::replace(w, crate::body::channel(None).0)
}

impl Write for BodySink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            BodySink::Plain(w) => w.write(data),
            BodySink::Zstd(z) => z.write(data),
            BodySink::Xz(x) => x.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        // A flush would end a compressed block early (a worse ratio) for nothing: the
        // body goes out in full chunks, and `finish` ends the stream.
        Ok(())
    }
}

impl narfs_decoder::BlockWrite for BodySink {
    /// Uncompressed, a verified leaf goes into the body as it is
    /// ([`ChannelWriter`]'s `write_block`); an encoder reads it like any bytes.
    fn write_block(&mut self, block: Vec<u8>) -> io::Result<()> {
        match self {
            BodySink::Plain(w) => w.write_block(block),
            _ => self.write_all(&block),
        }
    }
}

#[cfg(test)]
#[path = "encoding_tests.rs"]
mod tests;
