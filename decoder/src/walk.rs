//! DAG → NAR: a depth-first walk from the root CID that verifies every block before
//! use and streams NAR bytes out through the canonical writer. Iterative (an explicit
//! stack of open directories), so a deep DAG costs heap bounded by the depth limit,
//! never the call stack.

use std::collections::VecDeque;
use std::io::{self, Write};

use narfs_core::block::{BlockSource, RAW};
use narfs_core::nar::{NarError, NarWriter};
use narfs_core::unixfs::DataType;
use narfs_core::Cid;

use crate::ahead::{self, Entry};
use crate::block_write::{BlockWrite, Copying};
use crate::error::{malformed, DecodeError, Problem};
use crate::file::{fetch, fetch_many, fetch_weighted, unixfs_node, FileReader};
use crate::Limits;

struct OpenDir {
    cid: Cid,
    path: String,
    entries: Vec<Entry>,
    next: usize,
    /// Verified blocks of the entries from `next` on, fetched ahead in parallel.
    ready: VecDeque<Vec<u8>>,
    /// Entries before this one were given to [`BlockSource::will_need`].
    hinted: usize,
    /// How far the entries' `Tsize` claims are trusted to size batches.
    claims: Claims,
}

/// What the fetched entries showed of their links' `Tsize` claims.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Claims {
    /// Nothing fetched yet: the first batch is sized by the claims but at most
    /// [`ahead::UNCLAIMED_ENTRIES`] long.
    Untried,
    /// Every entry fetched was within its claim: batches up to
    /// [`ahead::MAX_ENTRIES`], as the claims fit.
    Held,
    /// An entry was larger than its claim ([`ahead::lied`]): batches of
    /// [`ahead::UNCLAIMED_ENTRIES`], split by count.
    Lied,
}

/// Fetches and verifies the first blocks of the next entries of the innermost open
/// directory together, on both cores ([`crate::ahead`]), and announces the entries
/// after them. A batch that ends short of [`ahead::MAX_ENTRIES`] and of the readahead
/// bytes (the directory runs out of entries: most directories of a small-file tree
/// hold a few files) is filled up with the next entries of the directories around it
/// ([`ahead::fill_len`]), which the walk reaches right after this one: verified with
/// this batch rather than later in short batches of their own on one core. What the
/// open directories hold verified ahead stays within the readahead bytes.
fn prefetch<S: BlockSource + Sync>(
    source: &S,
    stack: &mut [OpenDir],
    limits: &Limits,
) -> Result<(), DecodeError> {
    let Some(top) = stack.len().checked_sub(1) else {
        return Ok(());
    };
    let dir = &mut stack[top];
    let rest = &dir.entries[dir.next..];
    let len = match dir.claims {
        Claims::Held => ahead::batch_len(rest, limits.readahead),
        Claims::Untried => ahead::batch_len(rest, limits.readahead).min(ahead::UNCLAIMED_ENTRIES),
        Claims::Lied => rest.len().min(ahead::UNCLAIMED_ENTRIES),
    };
    let end = dir.next + len;
    // The run after this batch, each entry announced once (an empty hint still lets
    // the source resume what it deferred).
    let run = ahead::hints(&dir.entries[end..]);
    let known = dir.hinted.saturating_sub(end).min(run.len());
    // The batch: which directory of the stack, from which entry, how many.
    let mut parts = vec![(top, dir.next, len)];
    if dir.claims != Claims::Lied {
        let mut count = len;
        let mut claimed = ahead::weights(&dir.entries[dir.next..end], limits.readahead)
            .iter()
            .fold(0u64, |a, &w| a.saturating_add(w));
        claimed = stack[..top]
            .iter()
            .flat_map(|d| d.ready.iter())
            .fold(claimed, |a, b| a.saturating_add(b.len() as u64));
        for (level, d) in stack[..top].iter().enumerate().rev() {
            if d.claims != Claims::Held || count >= ahead::MAX_ENTRIES {
                break;
            }
            let from = d.next + d.ready.len();
            let budget = limits.readahead.saturating_sub(claimed);
            let n = ahead::fill_len(&d.entries[from..], budget, ahead::MAX_ENTRIES - count);
            if n == 0 {
                break;
            }
            parts.push((level, from, n));
            count += n;
            claimed = ahead::weights(&d.entries[from..from + n], limits.readahead)
                .iter()
                .fold(claimed, |a, &w| a.saturating_add(w));
            if from + n < d.entries.len() {
                break;
            }
        }
    }
    let dir = &mut stack[top];
    source.will_need(&run[known..]);
    dir.hinted = dir.hinted.max(end + run.len());
    let count: usize = parts.iter().map(|p| p.2).sum();
    if count < 2 {
        return Ok(());
    }
    let mut cids = Vec::with_capacity(count);
    let mut weights = Vec::with_capacity(count);
    for &(level, from, n) in &parts {
        let entries = &stack[level].entries[from..from + n];
        cids.extend(entries.iter().map(|e| e.cid));
        weights.extend(ahead::weights(entries, limits.readahead));
    }
    let mut fetched = match stack[top].claims {
        Claims::Lied => fetch_many(source, &cids, ""),
        _ => fetch_weighted(source, &cids, &weights, ""),
    }
    .into_iter();
    for (level, from, n) in parts {
        let d = &mut stack[level];
        for (entry, block) in d.entries[from..from + n].iter().zip(fetched.by_ref()) {
            // The path is only needed for an error, so it is only made then.
            let block = block.map_err(|mut e| {
                e.path = if d.path.is_empty() {
                    entry.name.clone()
                } else {
                    format!("{}/{}", d.path, entry.name)
                };
                e
            })?;
            if ahead::lied(entry, block.len()) {
                d.claims = Claims::Lied;
            }
            d.ready.push_back(block);
        }
    }
    let dir = &mut stack[top];
    if dir.claims == Claims::Untried {
        dir.claims = Claims::Held;
    }
    Ok(())
}

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
        let path = if dir.path.is_empty() {
            name.clone()
        } else {
            format!("{}/{name}", dir.path)
        };
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
    block: Option<Vec<u8>>,
    name: &str,
    path: &str,
    nar: &mut NarWriter<W>,
    stack: &mut Vec<OpenDir>,
    limits: &Limits,
) -> Result<(), DecodeError> {
    let block = match block {
        Some(b) => b,
        None => fetch(source, cid, path)?,
    };
    // Each block is decoded once: a file's root goes to the file reader as it is.
    if cid.codec() == RAW {
        let file = FileReader::open(source, cid, block, path, *limits)?;
        return emit_file(file, cid, name, path, nar, limits);
    }
    let (pb, fs) = unixfs_node(cid, path, &block)?;
    if matches!(fs.data_type, DataType::File | DataType::Raw) {
        let file = FileReader::from_node(source, cid, pb, fs, path, *limits)?;
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
        DataType::Directory => {
            let mut entries = Vec::with_capacity(pb.links.len());
            for link in pb.links {
                let Some(n) = link.name else {
                    return Err(DecodeError::new(
                        cid,
                        path,
                        malformed("a directory link without a name"),
                    ));
                };
                entries.push(Entry {
                    name: n,
                    cid: link.hash,
                    tsize: link.tsize,
                });
            }
            entries
        }
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
        entries,
        next: 0,
        ready: VecDeque::new(),
        hinted: 0,
        claims: Claims::Untried,
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
