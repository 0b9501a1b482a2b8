//! Which blocks the walk fetches and verifies together ahead of writing them: the
//! directories it has open, what each holds verified ahead, and how a batch is made
//! of the next entries of the innermost one, filled up with what the walk reaches
//! right after it ([`prefetch`]; the bounds are [`crate::ahead`]'s).

use std::collections::VecDeque;

use narfs_core::block::{BlockSource, RAW};
use narfs_core::dagpb::PBNode;
use narfs_core::unixfs::DataType;
use narfs_core::Cid;

use crate::ahead::{self, Entry};
use crate::error::{malformed, DecodeError};
use crate::fetch::{fetch_many, fetch_weighted};
use crate::file::unixfs_node;
use crate::Limits;

pub(crate) struct OpenDir {
    pub(crate) cid: Cid,
    pub(crate) path: String,
    pub(crate) entries: Vec<Entry>,
    pub(crate) next: usize,
    /// Verified blocks of the entries from `next` on, fetched ahead in parallel, each
    /// a subdirectory's with the first entries of that subdirectory when they were
    /// fetched ahead too.
    pub(crate) ready: VecDeque<Ready>,
    /// Entries before this one were given to [`BlockSource::will_need`].
    pub(crate) hinted: usize,
    /// How far the entries' `Tsize` claims are trusted to size batches.
    pub(crate) claims: Claims,
}

/// A verified block fetched ahead: an entry's, and what was fetched ahead below it.
pub(crate) type Ready = (Vec<u8>, Option<Box<Below>>);

/// What was fetched ahead below an entry fetched ahead.
pub(crate) enum Below {
    /// The entry is a directory: its first entries.
    Dir(Sub),
    /// The entry is a file: its first leaves (the leading raw children of its node).
    Leaves(VecDeque<Vec<u8>>),
}

/// A directory not opened yet whose first entries were fetched ahead: its node
/// decoded, and the verified blocks of its entries from the first on.
pub(crate) struct Sub {
    pub(crate) entries: Vec<Entry>,
    pub(crate) ready: VecDeque<Ready>,
    pub(crate) claims: Claims,
}

/// What the fetched entries showed of their links' `Tsize` claims.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claims {
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
/// after them. A batch that ends short of [`ahead::MAX_ENTRIES`] and of
/// [`ahead::batch_bytes`] (the directory runs out of entries: most directories of a
/// small-file tree hold a few files) is filled up with the next entries of the
/// directories around it ([`ahead::fill_len`]), which the walk reaches right after this
/// one: verified with this batch rather than later in short batches of their own on one
/// core. First come the first entries of the subdirectories those directories hold
/// fetched ahead (their nodes decoded here: [`sub_entries`]): the run of raw leaves
/// each starts with, at most [`ahead::UNCLAIMED_ENTRIES`] of each since their claims
/// are untried, subdirectory after subdirectory while each is taken whole (so blocks
/// are read in the order the store's packs hold them): in a tree of small directories
/// each directory would otherwise be a batch of its own of a few files. What the open
/// directories hold verified ahead stays within [`ahead::batch_bytes`].
pub(crate) fn prefetch<S: BlockSource + Sync>(
    source: &S,
    stack: &mut [OpenDir],
    limits: &Limits,
) -> Result<(), DecodeError> {
    let bytes = ahead::batch_bytes(limits);
    let Some(top) = stack.len().checked_sub(1) else {
        return Ok(());
    };
    let dir = &mut stack[top];
    let rest = &dir.entries[dir.next..];
    let len = match dir.claims {
        Claims::Held => ahead::batch_len(rest, bytes),
        Claims::Untried => ahead::batch_len(rest, bytes).min(ahead::UNCLAIMED_ENTRIES),
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
        let mut claimed = ahead::weights(&dir.entries[dir.next..end], bytes)
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
                let budget = bytes.saturating_sub(claimed);
                let max = (ahead::MAX_ENTRIES - count).min(ahead::UNCLAIMED_ENTRIES);
                // Raw leaves only: what follows a subdirectory or a file of many
                // blocks lies after that subtree in the store's packs.
                let leaves = entries.iter().take_while(|e| e.cid.codec() == RAW).count();
                let n = ahead::fill_len(&entries[..leaves], budget, max);
                if n == 0 {
                    break 'levels;
                }
                claimed = ahead::weights(&entries[..n], bytes)
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
            let budget = bytes.saturating_sub(claimed);
            let n = ahead::fill_len(&d.entries[from..], budget, ahead::MAX_ENTRIES - count);
            if n == 0 {
                break;
            }
            parts.push(Part::Entries(level, from, n));
            count += n;
            claimed = ahead::weights(&d.entries[from..from + n], bytes)
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
        weights.extend(ahead::weights(entries, bytes));
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
/// [`crate::FileReader`] fetches in one run: leaves' real sizes are only known once fetched,
/// so the count bounds what lying claims can make the batch hold.
const FILE_LEAVES: usize = 16;

/// Fetches and verifies the first leaves of the files whose nodes the innermost
/// directory now holds fetched ahead, together on both cores: each such file would
/// otherwise fetch its leaves in a run of its own of a few leaves when the walk gets to
/// it (a 2–7-leaf file's run is cut once in two, both halves often waiting for the same
/// pack). In order, each file's leading raw children (its node's `blocksizes` within
/// what is left of [`ahead::batch_bytes`], [`FILE_LEAVES`] in all), file after file
/// while each is taken whole, stopping at a subdirectory (what follows it lies after
/// its subtree in the store's packs). The [`crate::FileReader`] gets them as its first
/// leaves and checks each against its size as ever.
fn leaves_ahead<S: BlockSource + Sync>(
    source: &S,
    stack: &mut [OpenDir],
    limits: &Limits,
) -> Result<(), DecodeError> {
    let held_now: u64 = stack.iter().flat_map(|d| d.ready.iter()).map(held).sum();
    let Some(dir) = stack.last_mut() else {
        return Ok(());
    };
    let mut budget = ahead::batch_bytes(limits).saturating_sub(held_now);
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
pub(crate) fn joined(dir: &str, name: &str) -> String {
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
/// ahead; `None` for any other node, or one that [`crate::walk`] will refuse (it says why
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
pub(crate) fn dir_entries(cid: &Cid, path: &str, pb: PBNode) -> Result<Vec<Entry>, DecodeError> {
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
