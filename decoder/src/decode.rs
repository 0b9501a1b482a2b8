//! [`decode`]: the one way to turn a root back into its NAR, whatever its
//! [`Encoding`]. A UnixFS tree is walked ([`crate::decode_nar`]); the zstd fallback is
//! read as a file, decompressed, and re-emitted through the NAR reader and writer
//! ([`narfs_core::nar::copy_canonical`]), so that a fallback frame holding garbage, a
//! NAR with a `..` entry or a valid NAR plus junk is an error, never output.

use std::io::{self, Read, Write};

use narfs_core::block::BlockSource;
use narfs_core::nar::{copy_canonical, NarError};
use narfs_core::{Cid, Encoding};

use crate::block_write::{BlockWrite, Copying};
use crate::walk::{nar_error, Bounded};
use crate::{fetch, DecodeError, FileReader, Limits, Problem};

/// Writes the NAR under `root`, carried as `encoding`, to `out`, and returns `out`.
///
/// Every block is verified against its CID before use, and at most
/// `limits.max_output` bytes are written.
///
/// ```
/// use narfs_core::block::MemoryStore;
/// use narfs_core::nar::NarWriter;
/// use narfs_core::Encoding;
/// use narfs_decoder::{decode, Limits};
/// use narfs_encoder::{encode_or_fallback, Profile};
///
/// let mut nar = NarWriter::new(Vec::new());
/// nar.file(b"", false, 5, &mut &b"hello"[..])?;
/// let nar = nar.finish()?;
///
/// let (encoded, store) = encode_or_fallback(
///     || Ok::<_, narfs_encoder::EncodeError>(&nar[..]),
///     &Profile::KuboV1.layout(),
///     || Ok(MemoryStore::new()),
///     false,
///     None,
/// )?;
/// assert_eq!(encoded.encoding, Encoding::UnixFs);
/// let out = decode(&store, &encoded.root, encoded.encoding, Vec::new(), &Limits::default())?;
/// assert_eq!(out, nar);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode<S: BlockSource + Sync, W: Write>(
    source: &S,
    root: &Cid,
    encoding: Encoding,
    out: W,
    limits: &Limits,
) -> Result<W, DecodeError> {
    decode_to(source, root, encoding, Copying(out), limits).map(|c| c.0)
}

/// [`decode`] into a [`BlockWrite`]: a tree's verified leaves are handed to it whole
/// (the writer behind the decoder queues them instead of copying them).
pub fn decode_to<S: BlockSource + Sync, W: BlockWrite>(
    source: &S,
    root: &Cid,
    encoding: Encoding,
    out: W,
    limits: &Limits,
) -> Result<W, DecodeError> {
    match encoding {
        Encoding::ZstdNar => decode_zstd_nar(source, root, out, limits),
        _ => crate::walk::walk(source, root, out, limits),
    }
}

/// The fallback: `root` is a UnixFS file holding the zstd-compressed NAR.
fn decode_zstd_nar<S: BlockSource + Sync, W: Write>(
    source: &S,
    root: &Cid,
    out: W,
    limits: &Limits,
) -> Result<W, DecodeError> {
    let block = fetch(source, root, "")?;
    // The compressed file may be a little larger than the NAR (incompressible data):
    // it is bounded by zstd's compress bound of the output limit, not by the limit.
    let compressed = Limits {
        max_output: zstd_bound(limits.max_output),
        ..*limits
    };
    let file = FileReader::open(source, root, block, "", compressed)?;
    let zstd = zstd::Decoder::new(file).map_err(|e| stream_error(root, e))?;
    // One byte past the limit is enough to know the NAR is too large.
    let input = zstd.take(limits.max_output.saturating_add(1));
    let bounded = Bounded::new(out, limits.max_output);
    match copy_canonical(input, bounded, narfs_core::nar::Limits::default()) {
        Ok((bounded, _)) => Ok(bounded.into_inner()),
        Err(NarError::Io { source, .. })
            if source.get_ref().is_some_and(|e| e.is::<DecodeError>()) =>
        {
            Err(stream_error(root, source))
        }
        Err(e) => Err(nar_error(root, "", e)),
    }
}

/// At least `ZSTD_COMPRESSBOUND(n)` (`n + n/256 + (128 KiB - n)/2048` for small `n`):
/// the largest zstd frame holding `n` bytes.
fn zstd_bound(n: u64) -> u64 {
    n.saturating_add(n / 128).saturating_add(128)
}

/// An error from reading the compressed file: the decoder's own error when a block
/// was bad, otherwise the decompressor's.
fn stream_error(root: &Cid, e: io::Error) -> DecodeError {
    let kind = e.kind();
    match e.into_inner().map(|inner| inner.downcast::<DecodeError>()) {
        Some(Ok(d)) => *d,
        Some(Err(other)) => {
            DecodeError::new(root, "", Problem::Compressed(io::Error::new(kind, other)))
        }
        None => DecodeError::new(root, "", Problem::Compressed(kind.into())),
    }
}
