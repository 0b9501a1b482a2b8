//! The fallback encoding: the zstd-compressed NAR as one UnixFS file, for NARs a
//! UnixFS tree cannot carry faithfully (names that are not UTF-8) or when asked. It is
//! what publishing a compressed NAR per store item looks like (the `guix publish
//! --ipfs-api` approach): no sharing between items, but any NAR fits.
//!
//! The NAR is still validated as it streams (a fallback is not a way to publish
//! garbage): one thread reads, hashes, validates and compresses; the caller's thread
//! chunks the compressed stream into blocks.

use std::io::{self, Read, Write};

use narfs_core::block::BlockSink;
use narfs_core::nar::{Event, NarReader};
use sha2::{Digest, Sha256};

use crate::chunker::{ChunkBuffer, ChunkError};
use crate::encode::{EncodeError, Encoded};
use crate::file::{Counts, FileTree};
use crate::layout::Layout;

/// zstd level of the fallback: zstd's default, a fair speed/size point for a cache.
pub const ZSTD_LEVEL: i32 = 3;

/// Encodes the NAR read from `input` as one zstd-compressed UnixFS file.
pub fn encode_fallback<R: Read + Send, S: BlockSink>(
    input: R,
    layout: &Layout,
    sink: &mut S,
) -> Result<Encoded, EncodeError> {
    let (pipe_in, pipe_out) = io::pipe()?;
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || -> Result<(u64, [u8; 32]), EncodeError> {
            let zstd = zstd::Encoder::new(pipe_out, ZSTD_LEVEL)?;
            let mut tee = Tee {
                input: HashingReader::new(input),
                out: zstd,
            };
            let mut nar = NarReader::new(&mut tee);
            let mut sink = io::sink();
            while let Some(event) = nar.next()? {
                if let Event::File { mut contents, .. } = event {
                    io::copy(&mut contents, &mut sink).map_err(|e| contents.error(e))?;
                }
            }
            drop(nar);
            tee.out.finish()?;
            let (count, sha) = tee.input.finish();
            Ok((count, sha))
        });
        let mut counts = Counts::default();
        let mut tree = FileTree::new(layout.hash, layout.max_links);
        let mut buf = ChunkBuffer::default();
        let chunked = layout
            .chunker
            .chunk(pipe_in, &mut buf, |c| tree.leaf(c, sink, &mut counts));
        let produced = producer
            .join()
            .expect("the fallback producer does not panic");
        let (nar_size, nar_sha256) = produced?;
        match chunked {
            Ok(_) => {}
            Err(ChunkError::Read(e)) => return Err(e.into()),
            Err(ChunkError::Consumer(e)) => return Err(e.into()),
        }
        let root = tree.finish(false, sink, &mut counts)?;
        Ok(Encoded::new(
            &root,
            nar_size,
            nar_sha256,
            counts,
            narfs_core::Encoding::ZstdNar,
        ))
    })
}

/// Copies what is read through it into `out`.
struct Tee<R, W> {
    input: R,
    out: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.input.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

impl<R> HashingReader<R> {
    /// Bytes read and their sha256.
    fn finish(self) -> (u64, [u8; 32]) {
        (self.count, self.hasher.finalize().into())
    }
}

/// Hashes and counts the bytes read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Encodes a NAR as a UnixFS tree, or, when that cannot carry it (names that are not
/// UTF-8) or `force` asks for it, as the zstd fallback: the one place that decision is
/// made, for `encode`, `import` and everyone else.
///
/// The input is opened twice when the fallback is taken (the tree attempt read part of
/// it), so `open` gives it from the start each time; `new_sink` gives the sink for each
/// attempt, so that a sink can drop what the failed attempt wrote (a store session,
/// a CAR file). The sink that holds the result is returned with it; the
/// [`Encoded::encoding`] says which encoding it is, and [`Encoded::fallback_reason`] why.
///
/// ```
/// use narfs_core::block::MemoryStore;
/// use narfs_core::nar::NarWriter;
/// use narfs_core::Encoding;
/// use narfs_encoder::{encode_or_fallback, EncodeError, Profile};
///
/// // A directory with an entry whose name is not UTF-8: UnixFS cannot carry it.
/// let mut nar = NarWriter::new(Vec::new());
/// nar.directory(b"")?;
/// nar.file(b"caf\xe9", false, 2, &mut &b"hi"[..])?;
/// nar.end_directory()?;
/// let nar = nar.finish()?;
///
/// let (encoded, store) = encode_or_fallback(
///     || Ok::<_, EncodeError>(&nar[..]),
///     &Profile::KuboV1.layout(),
///     || Ok(MemoryStore::new()),
///     false,
///     None,
/// )?;
/// assert_eq!(encoded.encoding, Encoding::ZstdNar);
/// assert!(encoded.fallback_reason.unwrap().contains("not valid UTF-8"));
/// assert_eq!(encoded.nar_size, nar.len() as u64);
/// assert!(!store.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode_or_fallback<R, S, E>(
    open: impl FnMut() -> Result<R, E>,
    layout: &Layout,
    new_sink: impl FnMut() -> Result<S, E>,
    force: bool,
    observer: Option<crate::encode::EntryObserver<'_>>,
) -> Result<(Encoded, S), E>
where
    R: Read + Send,
    S: BlockSink,
    E: From<EncodeError>,
{
    encode_or_fallback_from(None, open, layout, new_sink, force, observer)
}

/// [`encode_or_fallback`] with the NAR, when it is a file, also in memory (`mapped`,
/// from [`crate::NarInput::map`]): the tree is then made from it
/// ([`crate::encode::encode_mapped`], no copies); the fallback still reads `open`.
pub fn encode_or_fallback_from<R, S, E>(
    mapped: Option<&crate::MappedNar>,
    mut open: impl FnMut() -> Result<R, E>,
    layout: &Layout,
    mut new_sink: impl FnMut() -> Result<S, E>,
    force: bool,
    observer: Option<crate::encode::EntryObserver<'_>>,
) -> Result<(Encoded, S), E>
where
    R: Read + Send,
    S: BlockSink,
    E: From<EncodeError>,
{
    let reason = if force {
        "asked for with --fallback".to_string()
    } else {
        let mut sink = new_sink()?;
        let tree = match mapped {
            Some(nar) => crate::encode::encode_mapped(nar, layout, &mut sink, observer),
            None => crate::encode::encode(open()?, layout, &mut sink, observer),
        };
        match tree {
            Ok(e) => return Ok((e, sink)),
            Err(e) if e.wants_fallback() => narfs_core::error_chain(&e),
            Err(e) => return Err(e.into()),
        }
    };
    let mut sink = new_sink()?;
    let input = open()?;
    let mut encoded = encode_fallback(input, layout, &mut sink)?;
    encoded.fallback_reason = Some(reason);
    Ok((encoded, sink))
}
