//! Whole-store walks: `stats` (one pass over the block table), and the DAG walk from a
//! root that `verify` (`verify.rs`) and `gc` (`gc.rs`) share, in bounded memory: what
//! it has seen is remembered in a cache of bounded size ([`Seen`]), so a block shared
//! by many items is usually walked once, and never is the whole live set held.

use std::collections::HashSet;

use narfs_core::block::{verify as verify_block, DAG_PB};
use narfs_core::dagpb::PBNode;
use narfs_core::{error_chain, Cid};

use crate::blocks::Reader;
use crate::{Error, Store};

/// What `narfs stats` reports.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    pub roots: u64,
    pub unique_blocks: u64,
    pub compressed_blocks: u64,
    /// Σ NarSize over the root records: what the store holds logically.
    pub nar_bytes: u64,
    /// Σ size of the stored blocks (compressed ones as compressed): what it takes.
    pub stored_bytes: u64,
    /// Size of the block table's file: stored bytes, plus B-tree pages, page rounding,
    /// and pages freed by `gc` that later blocks will reuse.
    pub file_bytes: u64,
}

impl Stats {
    /// The report `narfs stats` prints for the store at `dir`, one fact a line.
    pub fn table(&self, dir: &std::path::Path) -> String {
        format!(
            "store:          {}\n\
             roots:          {}\n\
             unique blocks:  {} ({} zstd-compressed)\n\
             NAR bytes:      {}\n\
             stored bytes:   {}\n\
             file bytes:     {} (the block table on disk)\n\
             dedup ratio:    {:.2}\n",
            dir.display(),
            self.roots,
            self.unique_blocks,
            self.compressed_blocks,
            self.nar_bytes,
            self.stored_bytes,
            self.file_bytes,
            self.dedup_ratio()
        )
    }

    /// Logical NAR bytes per stored byte (dedup and compression together).
    pub fn dedup_ratio(&self) -> f64 {
        if self.stored_bytes == 0 {
            return 0.0;
        }
        self.nar_bytes as f64 / self.stored_bytes as f64
    }
}

/// `stats --json`: the counts and the dedup ratio, keys in alphabetical order.
impl serde::Serialize for Stats {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut m = s.serialize_struct("Stats", 7)?;
        m.serialize_field("compressed_blocks", &self.compressed_blocks)?;
        m.serialize_field("dedup_ratio", &self.dedup_ratio())?;
        m.serialize_field("file_bytes", &self.file_bytes)?;
        m.serialize_field("nar_bytes", &self.nar_bytes)?;
        m.serialize_field("roots", &self.roots)?;
        m.serialize_field("stored_bytes", &self.stored_bytes)?;
        m.serialize_field("unique_blocks", &self.unique_blocks)?;
        m.end()
    }
}

/// The store's figures, each record and block seen once, none held.
pub(crate) fn stats(store: &Store) -> Result<Stats, Error> {
    let mut s = Stats::default();
    store.each_root(|r| {
        s.roots += 1;
        s.nar_bytes += r.nar_size;
    })?;
    store.blocks.each_info(|b| {
        s.unique_blocks += 1;
        s.compressed_blocks += u64::from(b.compressed);
        s.stored_bytes += b.stored;
    })?;
    s.file_bytes = store.blocks.file_bytes()?;
    Ok(s)
}

/// The CIDs a walk has seen, at most `cap` of them: when full, it forgets them all
/// and starts again. Forgetting costs only work (a block seen again is walked again,
/// and reported to the visitor again), never correctness, and keeps memory bounded
/// whatever the store holds.
pub(crate) struct Seen {
    set: HashSet<Cid>,
    cap: usize,
}

impl Seen {
    /// A cache of about `bytes` bytes (a CID and its hash-table slot take ~128).
    pub(crate) fn with_bytes(bytes: usize) -> Seen {
        Seen {
            set: HashSet::new(),
            cap: (bytes / 128).max(16),
        }
    }

    /// Whether `cid` is new to the cache (and now in it).
    fn insert(&mut self, cid: Cid) -> bool {
        if self.set.len() >= self.cap {
            self.set = HashSet::new();
        }
        self.set.insert(cid)
    }
}

/// Problems found, the first `keep` of them listed, all of them counted.
#[derive(Debug)]
pub(crate) struct Problems {
    pub(crate) list: Vec<String>,
    pub(crate) total: u64,
    keep: usize,
}

impl Problems {
    pub(crate) fn new(keep: usize) -> Problems {
        Problems {
            list: Vec::new(),
            total: 0,
            keep,
        }
    }

    pub(crate) fn push(&mut self, p: String) {
        self.total += 1;
        if self.list.len() < self.keep {
            self.list.push(p);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// What the walk does with a raw leaf it reaches.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leaves {
    /// Looks it up: a missing leaf is a problem of this root (`verify`, whose pass
    /// over the whole table or whose NAR check re-hashes the leaves' bytes).
    Present,
    /// Only reports it to the visitor (`gc`: its join with the table finds the
    /// missing ones, with no lookup per leaf).
    Visit,
}

/// Walks the DAG under `root` depth-first in link order, calling `visit` on every CID reached (a
/// CID the [`Seen`] cache still holds is not walked again): every dag-pb node is read
/// through `snap`, verified against its CID and parsed for its links; leaves as `leaves`
/// says. What is wrong on the way (a missing block, a node that does not hash to its
/// CID or does not parse) becomes a problem of `label`. The stack holds the links of
/// the nodes on the current path, never the DAG.
pub(crate) fn walk_dag(
    snap: Reader<'_>,
    root: &Cid,
    label: &str,
    leaves: Leaves,
    seen: &mut Seen,
    visit: &mut dyn FnMut(&Cid) -> Result<(), Error>,
    problems: &mut Problems,
) -> Result<(), Error> {
    let mut stack: Vec<Cid> = vec![*root];
    while let Some(cid) = stack.pop() {
        if !seen.insert(cid) {
            continue;
        }
        visit(&cid)?;
        if cid.codec() != DAG_PB {
            if leaves == Leaves::Present {
                match snap.has(&cid) {
                    Ok(true) => {}
                    Ok(false) => problems.push(format!("root {label}: block {cid} is missing")),
                    Err(e) => problems.push(format!("root {label}: {}", error_chain(&e))),
                }
            }
            continue;
        }
        let bytes = match snap.get(&cid) {
            Ok(Some(b)) => b,
            Ok(None) => {
                problems.push(format!("root {label}: block {cid} is missing"));
                continue;
            }
            Err(e) => {
                problems.push(format!("root {label}: {}", error_chain(&e)));
                continue;
            }
        };
        if let Err(e) = verify_block(&cid, &bytes) {
            problems.push(format!("root {label}: {}", error_chain(&e)));
            continue;
        }
        match PBNode::decode(&bytes) {
            // Reversed onto the stack, so links are visited in the DAG's order (the
            // NAR's order; `repack` lays blocks out in it).
            Ok(node) => stack.extend(node.links.iter().rev().map(|l| l.hash)),
            Err(e) => problems.push(format!("root {label}: block {cid}: {}", error_chain(&e))),
        }
    }
    Ok(())
}

/// A record's label in problems: its name, else its root CID.
pub(crate) fn label(rec: &crate::RootRecord) -> String {
    rec.name.clone().unwrap_or_else(|| rec.root.clone())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
