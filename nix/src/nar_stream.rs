//! A cache entry's NAR as a stream: its file decompressed as the narinfo's
//! `Compression` says, and cut one byte past its `NarSize` ([`NarStream`]), so a
//! decompression bomb costs at most that much work. One home for both kinds of cache
//! ([`crate::FileCache`] and [`crate::HttpCache`]).

use std::io::{self, BufRead, Read};

/// Most memory an xz or lzip decoder may take: its dictionary is sized by the file's
/// header, so a hostile header must not make it allocate more. `xz -9` and `lzip -9`
/// need 64 and 32 MiB.
const LZMA_MEMLIMIT: u64 = 128 << 20;

/// Why a NAR file could not be decompressed.
pub(crate) enum Decompress {
    Unsupported,
    Io(io::Error),
}

/// `compressed`'s bytes decompressed as a narinfo's `Compression` says (`none` or
/// empty, `xz`, `zstd`, `bzip2`, and Guix's `lzip` and `gzip`; concatenated streams or
/// members are read whole, as Nix and Guix do). Every container's own check (xz's
/// check, lzip's CRC32 and sizes, gzip's CRC32 and ISIZE) is verified.
pub(crate) fn decompress<R: BufRead + Send + 'static>(
    compression: &str,
    compressed: R,
) -> Result<Box<dyn Read + Send>, Decompress> {
    use liblzma::stream::{Stream, CONCATENATED};
    let lzma = |s: Result<Stream, liblzma::stream::Error>| {
        s.map_err(|e| Decompress::Io(io::Error::other(e)))
    };
    Ok(match compression {
        "none" | "" => Box::new(compressed),
        "xz" => {
            let s = lzma(Stream::new_stream_decoder(LZMA_MEMLIMIT, CONCATENATED))?;
            Box::new(liblzma::bufread::XzDecoder::new_stream(compressed, s))
        }
        "lzip" => {
            let s = lzma(Stream::new_lzip_decoder(LZMA_MEMLIMIT, CONCATENATED))?;
            Box::new(liblzma::bufread::XzDecoder::new_stream(compressed, s))
        }
        "zstd" => Box::new(zstd::Decoder::with_buffer(compressed).map_err(Decompress::Io)?),
        "gzip" => Box::new(flate2::bufread::MultiGzDecoder::new(compressed)),
        "bzip2" => Box::new(bzip2::bufread::MultiBzDecoder::new(compressed)),
        _ => return Err(Decompress::Unsupported),
    })
}

/// The error a [`NarStream`] gives once the NAR has more bytes than its `NarSize`.
#[derive(Debug, thiserror::Error)]
#[error("the NAR is longer than its narinfo's NarSize {nar_size}")]
#[non_exhaustive]
pub struct NarSizeExceeded {
    /// The `NarSize` the narinfo gave.
    pub nar_size: u64,
}

/// A NAR's bytes, read through at most `NarSize + 1` bytes of its source: the byte
/// past `NarSize` proves the NAR is too long, and nothing after it is ever produced
/// (a decompression bomb stops there). Reading past that point fails with
/// [`NarSizeExceeded`] (as [`io::ErrorKind::InvalidData`]).
pub struct NarStream {
    inner: Box<dyn Read + Send>,
    nar_size: u64,
    read: u64,
}

impl NarStream {
    /// Bounds `inner` by `nar_size`.
    pub fn new(inner: Box<dyn Read + Send>, nar_size: u64) -> NarStream {
        NarStream {
            inner,
            nar_size,
            read: 0,
        }
    }

    /// Bytes taken from the source so far (at most `NarSize + 1`).
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    fn exceeded(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            NarSizeExceeded {
                nar_size: self.nar_size,
            },
        )
    }
}

impl Read for NarStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let left = self.nar_size.saturating_add(1).saturating_sub(self.read);
        if left == 0 {
            return Err(self.exceeded());
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.read += n as u64;
        if self.read > self.nar_size {
            return Err(self.exceeded());
        }
        Ok(n)
    }
}
