//! Whole-store walks: the DAG reachability walk (iterative, shared by `verify` and
//! `gc`), `stats`, `verify` (re-hash every block in parallel, check every root's DAG is
//! complete, then the caller's check of each root's NAR) and `gc` (delete what no root
//! reaches).

use std::collections::HashSet;

use narfs_core::block::{verify as verify_block, DAG_PB};
use narfs_core::dagpb::PBNode;
use narfs_core::{error_chain, Cid};
use rayon::prelude::*;

use crate::{Error, RootRecord, Store};

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

/// What `narfs verify` found; clean when `problems` is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    pub blocks: u64,
    pub problems: Vec<String>,
    pub roots: u64,
}

/// What `narfs gc` removed and kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    pub kept_blocks: u64,
    pub removed_blocks: u64,
    pub removed_bytes: u64,
    /// Abandoned write sessions (of killed encoders) removed from `tmp/`.
    pub removed_sessions: u64,
}

pub(crate) fn stats(store: &Store) -> Result<Stats, Error> {
    let roots = store.roots()?;
    let blocks = store.blocks()?;
    Ok(Stats {
        roots: roots.len() as u64,
        unique_blocks: blocks.len() as u64,
        compressed_blocks: blocks.iter().filter(|b| b.compressed).count() as u64,
        nar_bytes: roots.iter().map(|r| r.nar_size).sum(),
        stored_bytes: blocks.iter().map(|b| b.stored).sum(),
        file_bytes: store.blocks.file_bytes()?,
    })
}

/// Every CID the roots reach, and what is wrong on the way (a missing block, a dag-pb
/// node that does not hash to its CID or does not parse). Raw leaves are only checked
/// for presence here; their bytes are re-hashed by `verify`'s pass over all blocks.
fn reachable(store: &Store, roots: &[(String, Cid)]) -> (HashSet<Cid>, Vec<String>) {
    let mut seen: HashSet<Cid> = HashSet::new();
    let mut problems = Vec::new();
    let mut stack: Vec<Cid> = Vec::new();
    for (label, root) in roots {
        stack.push(*root);
        while let Some(cid) = stack.pop() {
            if !seen.insert(cid) {
                continue;
            }
            if cid.codec() != DAG_PB {
                match store.contains(&cid) {
                    Ok(true) => {}
                    Ok(false) => problems.push(format!("root {label}: block {cid} is missing")),
                    Err(e) => problems.push(format!("root {label}: {}", error_chain(&e))),
                }
                continue;
            }
            let bytes = match store.get_block(&cid) {
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
                Ok(node) => stack.extend(node.links.iter().map(|l| l.hash)),
                Err(e) => problems.push(format!("root {label}: block {cid}: {}", error_chain(&e))),
            }
        }
    }
    (seen, problems)
}

/// The root records as (label, CID); unreadable records become problems.
fn root_cids(store: &Store, problems: &mut Vec<String>) -> Result<Vec<(String, Cid)>, Error> {
    Ok(labelled_roots(store, problems)?
        .into_iter()
        .map(|(label, cid, _)| (label, cid))
        .collect())
}

/// The root records with their label and CID; unreadable records become problems.
fn labelled_roots(
    store: &Store,
    problems: &mut Vec<String>,
) -> Result<Vec<(String, Cid, RootRecord)>, Error> {
    let mut out = Vec::new();
    for r in store.roots()? {
        let label = r.name.clone().unwrap_or_else(|| r.root.clone());
        match r.cid() {
            Ok(c) => out.push((label, c, r)),
            Err(e) => problems.push(format!("root {label}: {}", error_chain(&e))),
        }
    }
    Ok(out)
}

pub(crate) fn verify(
    store: &Store,
    check: &(impl Fn(&Store, &RootRecord) -> Result<(), String> + Sync),
) -> Result<VerifyReport, Error> {
    let mut problems = Vec::new();
    let txn = store.blocks.read_txn()?;
    let mut entries = store.blocks.entries(&txn)?;
    let reader = txn.reader();
    // Packed blocks by pack: each pack is decompressed once, not once per block.
    entries.sort_by_cached_key(|(_, v)| reader.pack_of(v));
    let mut bad: Vec<String> = entries
        .par_iter()
        .filter_map(|(key, value)| {
            let Ok(cid) = Cid::try_from(key.as_slice()) else {
                return Some(format!("key {} of the block table is not a CID", hex(key)));
            };
            let bytes = match reader.block(&cid, value) {
                Ok(b) => b,
                Err(e) => return Some(error_chain(&e)),
            };
            verify_block(&cid, &bytes).err().map(|e| error_chain(&e))
        })
        .collect();
    let count = entries.len() as u64;
    drop(entries);
    drop(txn);
    bad.sort();
    problems.extend(bad);
    let records = labelled_roots(store, &mut problems)?;
    let roots: Vec<(String, Cid)> = records.iter().map(|(l, c, _)| (l.clone(), *c)).collect();
    let (_, walk_problems) = reachable(store, &roots);
    // A root already reported (a missing or bad block) is not checked again.
    let incomplete = |label: &str| {
        let prefix = format!("root {label}: ");
        walk_problems.iter().any(|p| p.starts_with(&prefix))
    };
    problems.extend(walk_problems.iter().cloned());
    let mut checked: Vec<String> = records
        .par_iter()
        .filter(|(label, _, _)| !incomplete(label))
        .filter_map(|(label, _, rec)| {
            check(store, rec)
                .err()
                .map(|e| format!("root {label}: {e}"))
        })
        .collect();
    checked.sort();
    problems.extend(checked);
    Ok(VerifyReport {
        blocks: count,
        roots: roots.len() as u64,
        problems,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn gc(store: &Store) -> Result<GcReport, Error> {
    let mut problems = Vec::new();
    let roots = root_cids(store, &mut problems)?;
    let (live, walk_problems) = reachable(store, &roots);
    problems.extend(walk_problems);
    if let Some(first) = problems.first() {
        // What an incomplete or corrupt DAG reaches is unknown: delete nothing.
        return Err(Error::Refused(format!(
            "refusing to collect garbage: {first} ({} problem(s); run `narfs verify`)",
            problems.len()
        )));
    }
    let mut report = GcReport::default();
    let mut dead = Vec::new();
    for info in store.blocks()? {
        if live.contains(&info.cid) {
            report.kept_blocks += 1;
        } else {
            report.removed_bytes += info.stored;
            dead.push(info.cid);
        }
    }
    // One transaction: all of it is removed, or (if killed) none of it.
    let mut txn = store.blocks.write_txn()?;
    for cid in &dead {
        if store.blocks.delete(&mut txn, cid)? {
            report.removed_blocks += 1;
        }
    }
    store.blocks.commit(txn)?;
    // No writer holds the lock now: every session an older narfs left in tmp/ is
    // abandoned.
    let tmp = store.dir().join("tmp");
    if std::fs::symlink_metadata(&tmp).is_ok() {
        crate::nofollow::real_dir(&tmp)?;
        report.removed_sessions += crate::nofollow::clear_dir(&tmp)?;
    }
    Ok(report)
}
