//! NAR → UnixFS: drives the NAR reader and turns its events into blocks, streaming.
//! Files go through the chunker into a [`FileTree`]; directories collect their links
//! until they close, then become a `Directory` node or a HAMT shard; symlinks are
//! `Symlink` nodes. Along the way the NAR's sha256 (Nix's `NarHash`) is computed.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender};

use narfs_core::block::RAW;

use narfs_core::block::{cid_for, BlockSink, StoreError, DAG_PB};
use narfs_core::dagpb::{encode_node_into, PBLinkRef};
use narfs_core::nar::NarError;
use narfs_core::unixfs::UnixFsData;
use narfs_core::{Cid, Encoding};

use crate::batch::{Batch, Item};
use crate::file::{put, Counts, FileTree, Sub};
use crate::layout::Layout;
use narfs_core::leaf_hash::LeafHasher;

/// What encoding a NAR gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub root: Cid,
    /// Cumulative DAG size of the root.
    pub tsize: u64,
    pub nar_size: u64,
    /// sha256 of the NAR bytes (Nix's `NarHash`).
    pub nar_sha256: [u8; 32],
    /// Blocks (and their bytes) handed to the sink, repeats included.
    pub counts: Counts,
    /// How the DAG carries the NAR: a UnixFS tree, or the zstd fallback.
    pub encoding: Encoding,
    /// Why the fallback was taken, when it was.
    pub fallback_reason: Option<String>,
}

impl Encoded {
    /// The result of either encoding: its root, the NAR it carries, what it stored.
    pub(crate) fn new(
        root: &Sub,
        nar_size: u64,
        nar_sha256: [u8; 32],
        counts: Counts,
        encoding: Encoding,
    ) -> Encoded {
        Encoded {
            root: root.cid,
            tsize: root.tsize,
            nar_size,
            nar_sha256,
            counts,
            encoding,
            fallback_reason: None,
        }
    }
}

/// The kind of an entry, as reported to an [`EntryObserver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
}

impl EntryKind {
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Directory => "directory",
            EntryKind::Symlink => "symlink",
        }
    }
}

/// Told the CID of every entry as it is finished: path relative to the root (`""`
/// for the root itself), kind and CID.
pub type EntryObserver<'a> = &'a mut dyn FnMut(&str, EntryKind, &Cid);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The input is not a canonical NAR.
    #[error(transparent)]
    Nar(#[from] NarError),
    /// Reading the input failed.
    #[error("reading the NAR")]
    Read(#[from] io::Error),
    /// A name UnixFS cannot carry (the reason to fall back to the compressed NAR).
    #[error("entry {path:?} has a name that is not valid UTF-8, which a UnixFS link cannot carry faithfully")]
    NonUtf8Name { path: String },
    /// The block sink refused a block.
    #[error("storing a block")]
    Store(#[from] StoreError),
}

impl EncodeError {
    /// Whether the NAR is valid but cannot be carried as a UnixFS tree, so that the
    /// compressed fallback is the way to publish it.
    pub fn wants_fallback(&self) -> bool {
        matches!(self, EncodeError::NonUtf8Name { .. })
    }
}

struct Dir {
    links: Vec<(String, Sub)>,
}

/// Encodes the NAR read from `input` into blocks handed to `sink`.
///
/// Three threads share the work: one reads the input and computes the NAR's sha256
/// ([`crate::readahead`]), one parses the NAR and cuts files into chunks
/// ([`crate::parse`]), and the calling thread hashes the chunks, builds the nodes and
/// hands blocks to `sink` (so neither `sink` nor `observer` need to be `Send`).
pub fn encode<R: Read + Send, S: BlockSink>(
    input: R,
    layout: &Layout,
    sink: &mut S,
    observer: Option<EntryObserver<'_>>,
) -> Result<Encoded, EncodeError> {
    encode_with(Source::Stream(input), layout, sink, observer, true)
}

/// [`encode`] without the NAR's own sha256: [`Encoded::nar_sha256`] is all zeros.
/// For the first pass of a CAR streamed into a pipe, which only needs the root: that
/// one SHA-256 stream is the slowest part of an encode (it cannot be spread over
/// cores), so the pass runs at the speed of the leaf hashing instead.
pub fn encode_root_only<R: Read + Send, S: BlockSink>(
    input: R,
    layout: &Layout,
    sink: &mut S,
) -> Result<Encoded, EncodeError> {
    encode_with(Source::Stream(input), layout, sink, None, false)
}

/// [`encode`] of a NAR in memory (a mapped file, [`crate::NarInput::map`]): the same
/// blocks, but no byte of the NAR is copied on its way to the leaf hashing and the
/// sink (the parser cuts chunks straight from `nar`), and the NarHash stream reads
/// `nar` on a thread of its own.
pub fn encode_mapped<S: BlockSink>(
    nar: &crate::MappedNar,
    layout: &Layout,
    sink: &mut S,
    observer: Option<EntryObserver<'_>>,
) -> Result<Encoded, EncodeError> {
    encode_with(
        Source::<io::Empty>::Mapped(nar),
        layout,
        sink,
        observer,
        true,
    )
}

/// Where the NAR comes from.
enum Source<'m, R> {
    Stream(R),
    Mapped(&'m [u8]),
}

fn encode_with<R: Read + Send, S: BlockSink>(
    source: Source<'_, R>,
    layout: &Layout,
    sink: &mut S,
    observer: Option<EntryObserver<'_>>,
    hash_nar: bool,
) -> Result<Encoded, EncodeError> {
    let behind = match source {
        Source::Mapped(nar) => Some(crate::mapped::Behind::new(nar)),
        Source::Stream(_) => None,
    };
    let behind = behind.as_ref();
    std::thread::scope(|scope| {
        let (batches, recycle, parser, producer) = match source {
            Source::Stream(input) => {
                let (reader, producer) = crate::readahead::spawn(scope, input, hash_nar);
                let (b, r, p) = crate::parse::spawn(scope, reader, layout.chunker, layout.hash);
                (b, r, p, producer)
            }
            Source::Mapped(nar) => {
                let behind = behind.expect("made for a mapped NAR");
                let producer = crate::readahead::spawn_hash(scope, nar, hash_nar, behind);
                let (b, r, p) = crate::parse_mapped::spawn(scope, nar, layout.chunker, layout.hash);
                (b, r, p, producer)
            }
        };
        let result = {
            // However the builder ends, the NarHash thread must not wait for it.
            let _done = behind.map(|b| b.build_done());
            build(batches, &recycle, layout, sink, observer, behind)
        };
        // Stop the parser and reader if the builder stopped early.
        drop(recycle);
        let parsed = parser.join().expect("the parser thread does not panic");
        let (nar_size, nar_sha256) = producer.join().expect("the reader thread does not panic");
        // The builder's error is the cause when both fail (the parser then stopped
        // quietly); a parse error after the root (trailing bytes) still fails.
        let (root, counts) = match (result, parsed) {
            (Err(e), _) | (_, Err(e)) => return Err(e),
            (Ok(Some(done)), Ok(())) => done,
            (Ok(None), Ok(())) => unreachable!("a parser that ends cleanly has sent a root"),
        };
        Ok(Encoded::new(
            &root,
            nar_size,
            nar_sha256,
            counts,
            Encoding::UnixFs,
        ))
    })
}

/// Turns parsed events into blocks; `None` if the events stopped before the root
/// was complete (the parser then says why).
fn build<'m, S: BlockSink>(
    batches: Receiver<Batch<'m>>,
    recycle: &SyncSender<Batch<'m>>,
    layout: &Layout,
    sink: &mut S,
    mut observer: Option<EntryObserver<'_>>,
    behind: Option<&crate::mapped::Behind<'_>>,
) -> Result<Option<(Sub, Counts)>, EncodeError> {
    let mut b = Builder {
        layout,
        sink,
        counts: Counts::default(),
        tree: FileTree::new(layout.hash, layout.max_links),
        dirs: Vec::new(),
        path: Vec::new(),
        node_buf: Vec::new(),
        data_buf: Vec::new(),
        file: None,
    };
    let mut hasher = LeafHasher::new(layout.hash);
    let mut leaves = Vec::new();
    for mut batch in batches {
        if !batch.hashed {
            // Sent as it was: this thread was waiting for it (see `parse::Batcher`).
            batch.hash_leaves(&mut hasher);
        }
        leaves.clear();
        leaves.extend(
            batch
                .digests
                .iter()
                .map(|d| cid_of_digest(RAW, layout.hash, d)),
        );
        // The sink may look the batch's leaves up together (a store skips those it holds).
        b.sink.will_put(&leaves);
        let mut leaf = leaves.iter();
        for item in &batch.items {
            let leaf = match item {
                Item::Chunk(_) => leaf.next().copied(),
                _ => None,
            };
            let Some((name, sub, kind)) = b.item(&batch, item, leaf)? else {
                continue;
            };
            if let Some(obs) = observer.as_mut() {
                let full = if b.dirs.is_empty() && kind == EntryKind::Directory {
                    String::new()
                } else {
                    join(&b.path, &name)
                };
                obs(&full, kind, &sub.cid);
            }
            match b.dirs.last_mut() {
                Some(parent) => parent.links.push((name, sub)),
                None => return Ok(Some((sub, b.counts))),
            }
        }
        if let Some(behind) = behind {
            // Built: the batch's stretch of the NAR may leave the resident set.
            let end = batch.items.iter().rev().find_map(|i| match i {
                Item::Chunk(r) => Some(r.end),
                _ => None,
            });
            if let Some(end) = end {
                behind.built(end);
            }
        }
        let _ = recycle.try_send(batch);
    }
    Ok(None)
}

/// The builder's state between events (and batches: a file's chunks may span several).
struct Builder<'a, S> {
    layout: &'a Layout,
    sink: &'a mut S,
    counts: Counts,
    tree: FileTree,
    dirs: Vec<Dir>,
    /// Names of the open directories below the root, for paths.
    path: Vec<String>,
    node_buf: Vec<u8>,
    data_buf: Vec<u8>,
    file: Option<(String, bool)>,
}

impl<S: BlockSink> Builder<'_, S> {
    /// Takes one event (a chunk with its leaf's CID); returns the entry it finishes.
    fn item(
        &mut self,
        batch: &Batch<'_>,
        item: &Item,
        leaf: Option<Cid>,
    ) -> Result<Option<(String, Sub, EntryKind)>, EncodeError> {
        let name = |r: &std::ops::Range<usize>| &batch.names[r.clone()];
        Ok(Some(match item {
            Item::Directory(n) => {
                if !self.dirs.is_empty() {
                    self.path.push(utf8(name(n), &self.path)?);
                }
                self.dirs.push(Dir { links: Vec::new() });
                return Ok(None);
            }
            Item::DirectoryEnd => {
                let dir = self.dirs.pop().expect("the reader balances directories");
                let sub = crate::directory::build(
                    dir.links,
                    self.layout,
                    self.sink,
                    &mut self.counts,
                    &mut self.node_buf,
                    &mut self.data_buf,
                )?;
                let name = if self.dirs.is_empty() {
                    String::new()
                } else {
                    self.path.pop().unwrap_or_default()
                };
                (name, sub, EntryKind::Directory)
            }
            Item::Symlink(n, target) => {
                let n = utf8(name(n), &self.path)?;
                UnixFsData::symlink(name(target)).encode_into(&mut self.data_buf);
                encode_node_into(
                    std::iter::empty::<PBLinkRef>(),
                    Some(&self.data_buf),
                    &mut self.node_buf,
                );
                let cid = cid_for(DAG_PB, self.layout.hash, &self.node_buf);
                put(self.sink, &mut self.counts, &cid, &self.node_buf)?;
                let sub = Sub {
                    cid,
                    tsize: self.node_buf.len() as u64,
                    filesize: 0,
                };
                (n, sub, EntryKind::Symlink)
            }
            Item::File(n, executable) => {
                self.file = Some((utf8(name(n), &self.path)?, *executable));
                return Ok(None);
            }
            Item::Chunk(r) => {
                let cid = leaf.expect("every chunk has its leaf's CID");
                let chunk = batch.chunk(r);
                self.tree
                    .hashed_leaf(cid, chunk, self.sink, &mut self.counts)?;
                return Ok(None);
            }
            Item::FileEnd => {
                let (name, executable) = self.file.take().expect("chunks follow a file");
                let sub = self.tree.finish(executable, self.sink, &mut self.counts)?;
                (name, sub, EntryKind::File)
            }
        }))
    }
}

/// The CID whose multihash is `digest` under `alg`.
fn cid_of_digest(codec: u64, alg: narfs_core::block::HashAlg, digest: &[u8; 32]) -> Cid {
    // A 32-byte digest always fits the 64-byte multihash.
    let mh = cid::multihash::Multihash::wrap(alg.code(), digest).unwrap_or_default();
    Cid::new_v1(codec, mh)
}

fn utf8(name: &[u8], path: &[String]) -> Result<String, EncodeError> {
    String::from_utf8(name.to_vec()).map_err(|_| EncodeError::NonUtf8Name {
        path: join(path, &String::from_utf8_lossy(name)),
    })
}

fn join(path: &[String], name: &str) -> String {
    let mut s = path.join("/");
    if !name.is_empty() {
        if !s.is_empty() {
            s.push('/');
        }
        s.push_str(name);
    }
    s
}
