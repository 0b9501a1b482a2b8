//! Whole-store walks: the DAG reachability walk (iterative, shared by `verify` and
//! `gc`), `stats`, `verify` (re-hash every block in parallel, check every root's DAG is
//! complete) and `gc` (delete what no root reaches).

use std::collections::HashSet;
use std::fs;

use narfs_core::block::{verify as verify_block, DAG_PB};
use narfs_core::dagpb::PBNode;
use narfs_core::Cid;
use rayon::prelude::*;

use crate::blocks::{self, read_file};
use crate::{Error, Store};

/// What `narfs stats` reports.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    pub roots: u64,
    pub unique_blocks: u64,
    pub compressed_blocks: u64,
    /// Σ NarSize over the root records: what the store holds logically.
    pub nar_bytes: u64,
    /// Σ size of the block files: what it takes.
    pub stored_bytes: u64,
}

impl Stats {
    /// Logical NAR bytes per stored byte (dedup and compression together).
    pub fn dedup_ratio(&self) -> f64 {
        if self.stored_bytes == 0 {
            return 0.0;
        }
        self.nar_bytes as f64 / self.stored_bytes as f64
    }
}

/// What `narfs verify` found; clean when `problems` is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub blocks: u64,
    pub roots: u64,
    pub problems: Vec<String>,
}

/// What `narfs gc` removed and kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
                if !store.contains(&cid) {
                    problems.push(format!("root {label}: block {cid} is missing"));
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
                    problems.push(format!("root {label}: {e}"));
                    continue;
                }
            };
            if let Err(e) = verify_block(&cid, &bytes) {
                problems.push(format!("root {label}: {e}"));
                continue;
            }
            match PBNode::decode(&bytes) {
                Ok(node) => stack.extend(node.links.iter().map(|l| l.hash)),
                Err(e) => problems.push(format!("root {label}: block {cid}: {e}")),
            }
        }
    }
    (seen, problems)
}

/// The root records as (label, CID); unreadable records become problems.
fn root_cids(store: &Store, problems: &mut Vec<String>) -> Result<Vec<(String, Cid)>, Error> {
    let mut out = Vec::new();
    for r in store.roots()? {
        let label = r.name.clone().unwrap_or_else(|| r.root.clone());
        match r.cid() {
            Ok(c) => out.push((label, c)),
            Err(e) => problems.push(format!("root {label}: {e}")),
        }
    }
    Ok(out)
}

pub(crate) fn verify(store: &Store) -> Result<VerifyReport, Error> {
    let mut problems = Vec::new();
    let (all, strays) = blocks::scan(store.dir())?;
    for s in strays {
        problems.push(format!("{}: not a block file", s.display()));
    }
    let mut bad: Vec<String> = all
        .par_iter()
        .filter_map(|info| {
            let bytes = match read_file(info) {
                Ok(b) => b,
                Err(e) => return Some(e.to_string()),
            };
            verify_block(&info.cid, &bytes)
                .err()
                .map(|e| format!("{}: {e}", info.path.display()))
        })
        .collect();
    bad.sort();
    problems.extend(bad);
    let roots = root_cids(store, &mut problems)?;
    let (_, walk_problems) = reachable(store, &roots);
    problems.extend(walk_problems);
    Ok(VerifyReport {
        blocks: all.len() as u64,
        roots: roots.len() as u64,
        problems,
    })
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
    for info in store.blocks()? {
        if live.contains(&info.cid) {
            report.kept_blocks += 1;
            continue;
        }
        fs::remove_file(&info.path).map_err(Error::io(&info.path))?;
        report.removed_blocks += 1;
        report.removed_bytes += info.stored;
    }
    // No writer holds the lock now: every session left in tmp/ is abandoned.
    let tmp = store.dir().join("tmp");
    for e in fs::read_dir(&tmp).map_err(Error::io(&tmp))? {
        let p = e.map_err(Error::io(&tmp))?.path();
        let removed = if p.is_dir() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        removed.map_err(Error::io(&p))?;
        report.removed_sessions += 1;
    }
    crate::lock::sync_fs(store.dir())?;
    Ok(report)
}
