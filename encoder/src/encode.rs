//! NAR → UnixFS: drives the NAR reader and turns its events into blocks, streaming.
//! Files go through the chunker into a [`FileTree`]; directories collect their links
//! until they close, then become a `Directory` node or a HAMT shard; symlinks are
//! `Symlink` nodes. Along the way the NAR's sha256 (Nix's `NarHash`) is computed.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender};

use narfs_core::block::{cid_for, BlockSink, StoreError, DAG_PB};
use narfs_core::dagpb::{encode_node_into, PBLinkRef};
use narfs_core::nar::NarError;
use narfs_core::unixfs::UnixFsData;
use narfs_core::{Cid, Encoding};

use crate::file::{put, Counts, FileTree, Sub};
use crate::layout::Layout;

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

/// What the parser thread sends: the NAR's events, files as a run of chunks.
pub(crate) enum Msg {
    Directory(Vec<u8>),
    DirectoryEnd,
    Symlink(Vec<u8>, Vec<u8>),
    /// A file starts (name, executable); its chunks follow, then [`Msg::FileEnd`].
    File(Vec<u8>, bool),
    Chunk(Vec<u8>),
    FileEnd,
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
    std::thread::scope(|scope| {
        let (reader, producer) = crate::readahead::spawn(scope, input);
        let (events, recycle, parser) = crate::parse::spawn(scope, reader, layout.chunker);
        let result = build(events, &recycle, layout, sink, observer);
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
fn build<S: BlockSink>(
    events: Receiver<Msg>,
    recycle: &SyncSender<Vec<u8>>,
    layout: &Layout,
    sink: &mut S,
    mut observer: Option<EntryObserver<'_>>,
) -> Result<Option<(Sub, Counts)>, EncodeError> {
    let mut counts = Counts::default();
    let mut tree = FileTree::new(layout.hash, layout.max_links);
    let mut dirs: Vec<Dir> = Vec::new();
    // Names of the open directories below the root, for paths.
    let mut path: Vec<String> = Vec::new();
    let mut node_buf = Vec::new();
    let mut data_buf = Vec::new();
    let mut file: Option<(String, bool)> = None;

    for msg in events {
        let (name, sub, kind) = match msg {
            Msg::Directory(name) => {
                if !dirs.is_empty() {
                    path.push(utf8(&name, &path)?);
                }
                dirs.push(Dir { links: Vec::new() });
                continue;
            }
            Msg::DirectoryEnd => {
                let dir = dirs.pop().expect("the reader balances directories");
                let sub = crate::directory::build(
                    dir.links,
                    layout,
                    sink,
                    &mut counts,
                    &mut node_buf,
                    &mut data_buf,
                )?;
                let name = if dirs.is_empty() {
                    String::new()
                } else {
                    path.pop().unwrap_or_default()
                };
                (name, sub, EntryKind::Directory)
            }
            Msg::Symlink(name, target) => {
                let name = utf8(&name, &path)?;
                UnixFsData::symlink(&target).encode_into(&mut data_buf);
                encode_node_into(
                    std::iter::empty::<PBLinkRef>(),
                    Some(&data_buf),
                    &mut node_buf,
                );
                let cid = cid_for(DAG_PB, layout.hash, &node_buf);
                put(sink, &mut counts, &cid, &node_buf)?;
                let sub = Sub {
                    cid,
                    tsize: node_buf.len() as u64,
                    filesize: 0,
                };
                (name, sub, EntryKind::Symlink)
            }
            Msg::File(name, executable) => {
                file = Some((utf8(&name, &path)?, executable));
                continue;
            }
            Msg::Chunk(chunk) => {
                tree.leaf(&chunk, sink, &mut counts)?;
                let _ = recycle.try_send(chunk);
                continue;
            }
            Msg::FileEnd => {
                let (name, executable) = file.take().expect("chunks follow a file");
                let sub = tree.finish(executable, sink, &mut counts)?;
                (name, sub, EntryKind::File)
            }
        };
        if let Some(obs) = observer.as_mut() {
            let full = if dirs.is_empty() && kind == EntryKind::Directory {
                String::new()
            } else {
                join(&path, &name)
            };
            obs(&full, kind, &sub.cid);
        }
        match dirs.last_mut() {
            Some(parent) => parent.links.push((name, sub)),
            None => return Ok(Some((sub, counts))),
        }
    }
    Ok(None)
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
