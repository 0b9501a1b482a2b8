//! DAG → NAR: a depth-first walk from the root CID that verifies every block before
//! use and streams NAR bytes out through the canonical writer. Iterative (an explicit
//! stack of open directories), so a deep DAG costs heap bounded by the depth limit,
//! never the call stack. What it fetches ahead, and together, is [`crate::batch`]'s.

use std::collections::VecDeque;
use std::io::{self, Write};

use narfs_core::block::{BlockSource, RAW};
use narfs_core::nar::{NarError, NarWriter};
use narfs_core::unixfs::DataType;
use narfs_core::Cid;

use crate::ahead::Entry;
use crate::batch::{dir_entries, joined, prefetch, Below, Claims, OpenDir, Ready, Sub};
use crate::block_write::{BlockWrite, Copying};
use crate::error::{malformed, DecodeError, Problem};
use crate::fetch::fetch;
use crate::file::{unixfs_node, FileReader};
use crate::Limits;

/// Writes the NAR of the tree rooted at `root` to `out`.
pub fn decode_nar<S: BlockSource + Sync, W: Write>(
    source: &S,
    root: &Cid,
    out: W,
    limits: &Limits,
) -> Result<W, DecodeError> {
    walk(source, root, Copying(out), limits).map(|c| c.0)
}

/// [`decode_nar`] into a [`BlockWrite`], which takes each file's verified blocks whole.
pub(crate) fn walk<S: BlockSource + Sync, W: BlockWrite>(
    source: &S,
    root: &Cid,
    out: W,
    limits: &Limits,
) -> Result<W, DecodeError> {
    let mut nar = NarWriter::new(Bounded {
        inner: out,
        left: limits.max_output,
        max: limits.max_output,
    });
    let mut stack: Vec<OpenDir> = Vec::new();
    node(source, root, None, "", "", &mut nar, &mut stack, limits)?;
    while let Some(dir) = stack.last_mut() {
        if dir.next == dir.entries.len() {
            let dir = stack.pop().expect("just looked");
            nar.end_directory()
                .map_err(|e| nar_error(&dir.cid, &dir.path, e))?;
            continue;
        }
        if dir.ready.is_empty() {
            prefetch(source, &mut stack, limits)?;
        }
        let dir = stack.last_mut().expect("looked at above");
        let block = dir.ready.pop_front();
        let Entry { name, cid, .. } = std::mem::take(&mut dir.entries[dir.next]);
        dir.next += 1;
        let path = joined(&dir.path, &name);
        node(
            source, &cid, block, &name, &path, &mut nar, &mut stack, limits,
        )?;
    }
    let out = nar.finish().map_err(|e| nar_error(root, "", e))?;
    Ok(out.inner)
}

/// The output, refusing any write that would take it past `max`, so that the limit
/// holds for every byte (entry headers included), not only for file contents.
pub(crate) struct Bounded<W> {
    inner: W,
    left: u64,
    max: u64,
}

impl<W> Bounded<W> {
    pub(crate) fn new(inner: W, max: u64) -> Self {
        Bounded {
            inner,
            left: max,
            max,
        }
    }

    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

/// The error [`Bounded`] gives when a write would pass the limit of `.0` bytes.
#[derive(Debug)]
struct OverLimit(u64);

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the output would exceed the limit of {} bytes", self.0)
    }
}

impl std::error::Error for OverLimit {}

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(io::Error::other(OverLimit(self.max)));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: BlockWrite> BlockWrite for Bounded<W> {
    fn write_block(&mut self, block: Vec<u8>) -> io::Result<()> {
        let n = block.len() as u64;
        if n > self.left {
            return Err(io::Error::other(OverLimit(self.max)));
        }
        self.inner.write_block(block)?;
        self.left -= n;
        Ok(())
    }
}

/// A writer error, or [`Problem::TooLarge`] when it is [`Bounded`] refusing, or the
/// mismatch [`crate::expect::Checked`] refused with.
pub(crate) fn nar_error(cid: &Cid, path: &str, e: NarError) -> DecodeError {
    if let NarError::Io { source, .. } = &e {
        if let Some(OverLimit(max)) = source.get_ref().and_then(|i| i.downcast_ref()) {
            return DecodeError::new(cid, path, Problem::TooLarge(*max));
        }
        if let Some(p) = crate::expect::mismatch(source) {
            return DecodeError::new(cid, path, p);
        }
    }
    DecodeError::new(cid, path, Problem::Nar(e))
}

/// Emits one node: a whole file or symlink, or the opening of a directory (whose
/// entries are pushed for the main loop). `block` is the node's block when it was
/// fetched (and verified) ahead.
#[allow(clippy::too_many_arguments)]
fn node<S: BlockSource + Sync, W: BlockWrite>(
    source: &S,
    cid: &Cid,
    block: Option<Ready>,
    name: &str,
    path: &str,
    nar: &mut NarWriter<W>,
    stack: &mut Vec<OpenDir>,
    limits: &Limits,
) -> Result<(), DecodeError> {
    let (block, leaves) = match block {
        Some((b, Some(below))) => match *below {
            // A directory whose node was decoded when its first entries were fetched.
            Below::Dir(sub) => return open_dir(cid, name, path, sub, nar, stack, limits),
            Below::Leaves(leaves) => (b, Some(leaves)),
        },
        Some((b, None)) => (b, None),
        None => (fetch(source, cid, path)?, None),
    };
    // Each block is decoded once: a file's root goes to the file reader as it is.
    if cid.codec() == RAW {
        let file = FileReader::open(source, cid, block, path, *limits)?;
        return emit_file(file, cid, name, path, nar, limits);
    }
    let (pb, fs) = unixfs_node(cid, path, &block)?;
    if matches!(fs.data_type, DataType::File | DataType::Raw) {
        let mut file = FileReader::from_node(source, cid, pb, fs, path, *limits)?;
        if let Some(leaves) = leaves {
            file.fetched_ahead(leaves);
        }
        return emit_file(file, cid, name, path, nar, limits);
    }
    let entries = match fs.data_type {
        DataType::Symlink => {
            let target = fs.data.unwrap_or_default();
            if !pb.links.is_empty() {
                return Err(DecodeError::new(
                    cid,
                    path,
                    malformed("a symlink node has links"),
                ));
            }
            return nar
                .symlink(name.as_bytes(), &target)
                .map_err(|e| nar_error(cid, path, e));
        }
        DataType::Directory => dir_entries(cid, path, pb)?,
        DataType::HamtShard => crate::hamt::entries(source, cid, pb, fs, path)?,
        DataType::Metadata => {
            return Err(DecodeError::new(
                cid,
                path,
                Problem::Unsupported("Metadata"),
            ))
        }
        DataType::File | DataType::Raw => unreachable!("files are handled above"),
    };
    let sub = Sub {
        entries,
        ready: VecDeque::new(),
        claims: Claims::Untried,
    };
    open_dir(cid, name, path, sub, nar, stack, limits)
}

/// Opens a directory: its entry in the NAR, and its entries pushed for the main loop
/// (with those fetched ahead).
fn open_dir<W: BlockWrite>(
    cid: &Cid,
    name: &str,
    path: &str,
    sub: Sub,
    nar: &mut NarWriter<W>,
    stack: &mut Vec<OpenDir>,
    limits: &Limits,
) -> Result<(), DecodeError> {
    if stack.len() >= limits.max_depth {
        return Err(DecodeError::new(
            cid,
            path,
            Problem::TooDeep(limits.max_depth),
        ));
    }
    nar.directory(name.as_bytes())
        .map_err(|e| nar_error(cid, path, e))?;
    if nar.written() > limits.max_output {
        return Err(DecodeError::new(
            cid,
            path,
            Problem::TooLarge(limits.max_output),
        ));
    }
    stack.push(OpenDir {
        cid: *cid,
        path: path.to_string(),
        entries: sub.entries,
        next: 0,
        ready: sub.ready,
        hinted: 0,
        claims: sub.claims,
    });
    Ok(())
}

/// Writes one whole file into the NAR, within the output limit.
fn emit_file<S: BlockSource + Sync, W: BlockWrite>(
    file: FileReader<'_, S>,
    cid: &Cid,
    name: &str,
    path: &str,
    nar: &mut NarWriter<W>,
    limits: &Limits,
) -> Result<(), DecodeError> {
    if nar.written().saturating_add(file.size()) > limits.max_output {
        return Err(DecodeError::new(
            cid,
            path,
            Problem::TooLarge(limits.max_output),
        ));
    }
    let nar_err = |e| nar_error(cid, path, e);
    nar.begin_file(name.as_bytes(), file.executable(), file.size())
        .map_err(nar_err)?;
    // Each verified block goes to the output whole: one that queues buffers takes it
    // without a copy (`BlockWrite`).
    file.for_each_block(|block| {
        nar.contents_with(block.len(), |out| out.write_block(block))
            .map_err(nar_err)
    })?;
    nar.end_file().map_err(nar_err)
}
