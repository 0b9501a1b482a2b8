//! DAG → NAR: a depth-first walk from the root CID that verifies every block before
//! use and streams NAR bytes out through the canonical writer. Iterative (an explicit
//! stack of open directories), so a deep DAG costs heap bounded by the depth limit,
//! never the call stack.

use std::collections::VecDeque;
use std::io::{self, Write};

use narfs_core::block::{BlockSource, RAW};
use narfs_core::dagpb::PBNode;
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
    /// Verified blocks of the entries from `next` on, fetched ahead in parallel, each
    /// a subdirectory's with the first entries of that subdirectory when they were
    /// fetched ahead too.
    ready: VecDeque<Ready>,
    /// Entries before this one were given to [`BlockSource::will_need`].
    hinted: usize,
    /// How far the entries' `Tsize` claims are trusted to size batches.
    claims: Claims,
}

/// A verified block fetched ahead: an entry's, and what was fetched ahead below it.
type Ready = (Vec<u8>, Option<Box<Below>>);

/// What was fetched ahead below an entry fetched ahead.
enum Below {
    /// The entry is a directory: its first entries.
    Dir(Sub),
    /// The entry is a file: its first leaves (the leading raw children of its node).
    Leaves(VecDeque<Vec<u8>>),
}

/// A directory not opened yet whose first entries were fetched ahead: its node
/// decoded, and the verified blocks of its entries from the first on.
struct Sub {
    entries: Vec<Entry>,
    ready: VecDeque<Ready>,
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
/// this batch rather than later in short batches of their own on one core. First
/// come the first entries of the subdirectories those directories hold fetched
/// ahead (their nodes decoded here: [`sub_entries`]): the run of raw leaves each
/// starts with, at most [`ahead::UNCLAIMED_ENTRIES`] of each since their claims are
/// untried, subdirectory after subdirectory while each is taken whole (so blocks are
/// read in the order the store's packs hold them): in a tree of small directories
/// each directory would otherwise be a batch of its own of a few files. What the
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
    let mut parts = vec![Part::Entries(top, dir.next, len)];
    if dir.claims != Claims::Lied {
        let mut count = len;
        let mut claimed = ahead::weights(&dir.entries[dir.next..end], limits.readahead)
            .iter()
            .fold(0u64, |a, &w| a.saturating_add(w));
        claimed = stack[..top]
            .iter()
            .flat_map(|d| d.ready.iter())
            .fold(claimed, |a, r| a.saturating_add(held(r)));
        'levels: for (level, d) in stack[..top].iter().enumerate().rev() {
            if count >= ahead::MAX_ENTRIES {
                break;
            }
            // The subdirectories fetched ahead, in order: their first entries (among
            // the next entries only: each call looks at them again).
            for (at, (block, sub)) in d.ready.iter().enumerate().take(ahead::MAX_ENTRIES) {
                if sub.is_some() {
                    continue;
                }
                let entry = &d.entries[d.next + at];
                let Some(entries) = sub_entries(&entry.cid, block) else {
                    continue;
                };
                let budget = limits.readahead.saturating_sub(claimed);
                let max = (ahead::MAX_ENTRIES - count).min(ahead::UNCLAIMED_ENTRIES);
                // Raw leaves only: what follows a subdirectory or a file of many
                // blocks lies after that subtree in the store's packs.
                let leaves = entries.iter().take_while(|e| e.cid.codec() == RAW).count();
                let n = ahead::fill_len(&entries[..leaves], budget, max);
                if n == 0 {
                    break 'levels;
                }
                claimed = ahead::weights(&entries[..n], limits.readahead)
                    .iter()
                    .fold(claimed, |a, &w| a.saturating_add(w));
                count += n;
                let whole = n == entries.len();
                parts.push(Part::Sub(level, at, n, entries));
                if !whole || count >= ahead::MAX_ENTRIES {
                    break 'levels;
                }
            }
            if d.claims != Claims::Held || count >= ahead::MAX_ENTRIES {
                break;
            }
            let from = d.next + d.ready.len();
            let budget = limits.readahead.saturating_sub(claimed);
            let n = ahead::fill_len(&d.entries[from..], budget, ahead::MAX_ENTRIES - count);
            if n == 0 {
                break;
            }
            parts.push(Part::Entries(level, from, n));
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
    let count: usize = parts.iter().map(Part::len).sum();
    if count < 2 {
        return Ok(());
    }
    let mut cids = Vec::with_capacity(count);
    let mut weights = Vec::with_capacity(count);
    for part in &parts {
        let entries = match part {
            &Part::Entries(level, from, n) => &stack[level].entries[from..from + n],
            Part::Sub(_, _, n, entries) => &entries[..*n],
        };
        cids.extend(entries.iter().map(|e| e.cid));
        weights.extend(ahead::weights(entries, limits.readahead));
    }
    let mut fetched = match stack[top].claims {
        Claims::Lied => fetch_many(source, &cids, ""),
        _ => fetch_weighted(source, &cids, &weights, ""),
    }
    .into_iter();
    for part in parts {
        match part {
            Part::Entries(level, from, n) => {
                let d = &mut stack[level];
                let got = d.entries[from..from + n].iter().zip(fetched.by_ref());
                for (entry, block) in got {
                    let block = checked(&d.path, entry, block, &mut d.claims)?;
                    d.ready.push_back((block, None));
                }
            }
            Part::Sub(level, at, n, entries) => {
                let d = &mut stack[level];
                let name = &d.entries[d.next + at].name;
                let path = joined(&d.path, name);
                let mut sub = Sub {
                    ready: VecDeque::with_capacity(n),
                    entries,
                    claims: Claims::Untried,
                };
                for (entry, block) in sub.entries[..n].iter().zip(fetched.by_ref()) {
                    let block = checked(&path, entry, block, &mut sub.claims)?;
                    sub.ready.push_back((block, None));
                }
                if sub.claims == Claims::Untried {
                    sub.claims = Claims::Held;
                }
                d.ready[at].1 = Some(Box::new(Below::Dir(sub)));
            }
        }
    }
    let dir = &mut stack[top];
    if dir.claims == Claims::Untried {
        dir.claims = Claims::Held;
    }
    leaves_ahead(source, stack, limits)
}

/// Most leaves of files fetched ahead together by [`leaves_ahead`], as many as a
/// [`FileReader`] fetches in one run: leaves' real sizes are only known once fetched,
/// so the count bounds what lying claims can make the batch hold.
const FILE_LEAVES: usize = 16;

/// Fetches and verifies the first leaves of the files whose nodes the innermost
/// directory now holds fetched ahead, together on both cores: each such file would
/// otherwise fetch its leaves in a run of its own of a few leaves when the walk gets
/// to it (a 2–7-leaf file's run is cut once in two, both halves often waiting for the
/// same pack). In order, each file's leading raw children (its node's `blocksizes`
/// within the readahead bytes left, [`FILE_LEAVES`] in all), file after file while
/// each is taken whole, stopping at a subdirectory (what follows it lies after its
/// subtree in the store's packs). The [`FileReader`] gets them as its first leaves
/// and checks each against its size as ever.
fn leaves_ahead<S: BlockSource + Sync>(
    source: &S,
    stack: &mut [OpenDir],
    limits: &Limits,
) -> Result<(), DecodeError> {
    let held_now: u64 = stack.iter().flat_map(|d| d.ready.iter()).map(held).sum();
    let Some(dir) = stack.last_mut() else {
        return Ok(());
    };
    let mut budget = limits.readahead.saturating_sub(held_now);
    // (place in `ready`, leaves, their sizes)
    let mut picks: Vec<(usize, Vec<Cid>, Vec<u64>)> = Vec::new();
    let mut count = 0;
    for (at, (block, below)) in dir.ready.iter().enumerate() {
        let cid = dir.entries[dir.next + at].cid;
        if below.is_some() || cid.codec() == RAW {
            continue;
        }
        let Ok((pb, fs)) = unixfs_node(&cid, "", block) else {
            break;
        };
        if !matches!(fs.data_type, DataType::File | DataType::Raw)
            || pb.links.len() != fs.blocksizes.len()
        {
            break;
        }
        let mut n = 0;
        for (link, &size) in pb.links.iter().zip(&fs.blocksizes) {
            if link.hash.codec() != RAW || count + n >= FILE_LEAVES || size > budget {
                break;
            }
            budget -= size;
            n += 1;
        }
        if n == 0 {
            break;
        }
        let cids = pb.links[..n].iter().map(|l| l.hash).collect();
        picks.push((at, cids, fs.blocksizes[..n].to_vec()));
        count += n;
        if n < pb.links.len() {
            break;
        }
    }
    if count < 2 {
        return Ok(());
    }
    let cids: Vec<Cid> = picks.iter().flat_map(|p| p.1.iter().copied()).collect();
    let sizes: Vec<u64> = picks.iter().flat_map(|p| p.2.iter().copied()).collect();
    let mut fetched = fetch_weighted(source, &cids, &sizes, "").into_iter();
    for (at, leaves, _) in picks {
        let path = || joined(&dir.path, &dir.entries[dir.next + at].name);
        let mut got = VecDeque::with_capacity(leaves.len());
        for block in fetched.by_ref().take(leaves.len()) {
            got.push_back(block.map_err(|mut e| {
                e.path = path();
                e
            })?);
        }
        dir.ready[at].1 = Some(Box::new(Below::Leaves(got)));
    }
    Ok(())
}

/// One part of a batch: where its blocks go.
enum Part {
    /// Entries of an open directory of the stack: (level, first entry, count).
    Entries(usize, usize, usize),
    /// The first entries of a subdirectory an open directory holds fetched ahead:
    /// (level of that directory, the subdirectory's place in its `ready`, count,
    /// the subdirectory's entries).
    Sub(usize, usize, usize, Vec<Entry>),
}

impl Part {
    fn len(&self) -> usize {
        match self {
            Part::Entries(_, _, n) | Part::Sub(_, _, n, _) => *n,
        }
    }
}

/// Bytes a block fetched ahead holds, with those fetched ahead below it.
fn held((block, below): &Ready) -> u64 {
    let below = match below.as_deref() {
        None => 0,
        Some(Below::Dir(sub)) => sub.ready.iter().map(held).sum(),
        Some(Below::Leaves(leaves)) => leaves.iter().map(|l| l.len() as u64).sum(),
    };
    block.len() as u64 + below
}

/// `dir`/`name`, as the paths of errors say.
fn joined(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// A fetched block of `entry` of the directory at `path`, or its error with the
/// entry's path; marks `claims` lied when the block is larger than the entry claims.
fn checked(
    path: &str,
    entry: &Entry,
    block: Result<Vec<u8>, DecodeError>,
    claims: &mut Claims,
) -> Result<Vec<u8>, DecodeError> {
    // The path is only needed for an error, so it is only made then.
    let block = block.map_err(|mut e| {
        e.path = joined(path, &entry.name);
        e
    })?;
    if ahead::lied(entry, block.len()) {
        *claims = Claims::Lied;
    }
    Ok(block)
}

/// The entries of a plain directory's node `block` (verified), for fetching them
/// ahead; `None` for any other node, or one that [`node`] will refuse (it says why
/// when the walk gets there).
fn sub_entries(cid: &Cid, block: &[u8]) -> Option<Vec<Entry>> {
    if cid.codec() == RAW {
        return None;
    }
    let (pb, fs) = unixfs_node(cid, "", block).ok()?;
    if fs.data_type != DataType::Directory {
        return None;
    }
    dir_entries(cid, "", pb).ok()
}

/// A directory node's links as entries; each must have a name.
fn dir_entries(cid: &Cid, path: &str, pb: PBNode) -> Result<Vec<Entry>, DecodeError> {
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
    Ok(entries)
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
    mut file: FileReader<'_, S>,
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
    while let Some(block) = file.next_block()? {
        nar.contents_with(block.len(), |out| out.write_block(block))
            .map_err(nar_err)?;
    }
    nar.end_file().map_err(nar_err)
}
