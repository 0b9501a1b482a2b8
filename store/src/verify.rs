//! `verify`: streaming, parallel, resumable, and limited to some roots on request.
//!
//! The whole store is checked in three phases:
//! 1. **blocks**: the whole file is walked and checked (`View::check`), and every
//!    block of the table stored on its own (raw or zstd) is re-hashed against its
//!    CID, in key order, [`CHUNK`] blocks at a time in parallel (rayon): nothing but
//!    one chunk of (key, value) is held. Packed entries are only counted.
//! 2. **packs** (`verify_packs`): every pack, in id order, decompressed once, its
//!    live blocks re-hashed; entries the packs did not account for are then checked
//!    one by one.
//! 3. **roots**: every root record, [`ROOT_CHUNK`] at a time in parallel, has its DAG
//!    walked for completeness (`walk::walk_dag`, each dag-pb node verified, each leaf
//!    looked up) and, when complete, the caller's check (`narfs verify` decodes the
//!    NAR against its NarHash and NarSize).
//!
//! With a selection of roots (`narfs verify --root …`), only phase 2 runs, over
//! those roots' records: what they reach is walked and decoded (the decode verifies
//! every block it reads), and nothing else of the store is read.
//!
//! Resume: the position reached (phase, the last key done, counts, the problems so
//! far: at most [`KEEP`] listed) is saved in `DIR/verify-checkpoint.json` every few
//! seconds, by a write beside it and a rename. A run with `resume` continues from it
//! (whole store, or the same selection: another selection is refused); a run without
//! starts over. A run that finishes removes it. A resumed run checks what was added
//! behind the position only at the next full run (keys are CIDs: new blocks land
//! anywhere).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use narfs_core::block::verify as verify_block;
use narfs_core::{error_chain, Cid};
use rayon::prelude::*;

use crate::blocks::Entry;
use crate::walk::{self, hex, Leaves, Problems, Seen};
use crate::{root_table, Error, RootRecord, Store};

/// Blocks re-hashed per parallel chunk (a few in tests, so that they cross chunks).
const CHUNK: usize = if cfg!(test) { 3 } else { 4096 };
/// Roots walked and checked per parallel chunk.
const ROOT_CHUNK: usize = if cfg!(test) { 2 } else { 64 };
/// Problems listed (all are counted).
const KEEP: usize = 10_000;
/// How often the checkpoint is saved.
const SAVE_EVERY: Duration = Duration::from_secs(if cfg!(test) { 0 } else { 2 });
/// The seen cache of one root's walk.
const ROOT_SEEN_BYTES: usize = 4 << 20;
/// The checkpoint's file in the store directory.
pub(crate) const CHECKPOINT: &str = "verify-checkpoint.json";

/// What `narfs verify` found; clean when `problems` is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    pub blocks: u64,
    pub problems: Vec<String>,
    pub roots: u64,
}

/// Which part of the store `verify` checks, and whether it continues a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Only these roots (names, root CIDs, store-path hashes or store paths), and
    /// what they reach; empty: the whole store.
    pub roots: Vec<String>,
    /// Continue from the checkpoint a previous run left (if any).
    pub resume: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Phase {
    #[default]
    Blocks,
    Packs,
    Roots,
}

/// The saved position of a run.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Checkpoint {
    selection: Vec<String>,
    phase: Phase,
    /// The last key done in this phase, in hex ("": none yet).
    pub(crate) after: String,
    pub(crate) blocks: u64,
    roots: u64,
    problems: Vec<String>,
    problems_total: u64,
    /// Packed entries the blocks phase passed over, and of them those the packs
    /// phase verified (absent from a checkpoint of an older narfs: 0).
    #[serde(default)]
    pub(crate) packed: u64,
    #[serde(default)]
    pub(crate) packed_ok: u64,
}

pub(crate) struct Run<'s> {
    pub(crate) store: &'s Store,
    path: PathBuf,
    pub(crate) cp: Checkpoint,
    pub(crate) problems: Problems,
    saved: Instant,
}

impl Run<'_> {
    pub(crate) fn add(&mut self, mut found: Vec<String>) {
        found.sort();
        for p in found {
            self.problems.push(p);
        }
    }

    /// Records the position reached (`after`, the last key done) and saves it when
    /// the last save is old enough.
    pub(crate) fn reached(&mut self, after: &[u8]) -> Result<(), Error> {
        self.cp.after = hex(after);
        if self.saved.elapsed() >= SAVE_EVERY {
            self.save()?;
        }
        Ok(())
    }

    fn save(&mut self) -> Result<(), Error> {
        self.cp.problems = self.problems.list.clone();
        self.cp.problems_total = self.problems.total;
        let bytes = serde_json::to_vec(&self.cp).expect("a checkpoint serialises");
        let tmp = self.path.with_extension("json.new");
        let mut f = crate::nofollow::open(
            &tmp,
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true),
        )?;
        std::io::Write::write_all(&mut f, &bytes).map_err(Error::io(&tmp))?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(Error::io(&self.path))?;
        self.saved = Instant::now();
        Ok(())
    }
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn load(path: &Path) -> Result<Option<Checkpoint>, Error> {
    let bytes = match crate::nofollow::read(path, 64 << 20) {
        Ok(b) => b,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let cp: Checkpoint = serde_json::from_slice(&bytes).map_err(|source| Error::Checkpoint {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Some(cp))
}

pub(crate) fn verify(
    store: &Store,
    options: &VerifyOptions,
    check: &(impl Fn(&Store, &RootRecord) -> Result<(), String> + Sync),
) -> Result<VerifyReport, Error> {
    let path = store.dir().join(CHECKPOINT);
    crate::nofollow::not_a_link(&path)?;
    let mut selection = options.roots.clone();
    selection.sort();
    selection.dedup();
    let cp = match options.resume {
        true => load(&path)?,
        false => None,
    };
    let cp = match cp {
        Some(cp) if cp.selection != selection => {
            return Err(Error::OtherCheckpoint {
                path,
                roots: cp.selection.join(" "),
            })
        }
        Some(cp) => cp,
        None => Checkpoint {
            selection: selection.clone(),
            phase: if selection.is_empty() {
                Phase::Blocks
            } else {
                Phase::Roots
            },
            ..Checkpoint::default()
        },
    };
    let mut problems = Problems::new(KEEP);
    for p in &cp.problems {
        problems.push(p.clone());
    }
    problems.total = problems.total.max(cp.problems_total);
    let mut run = Run {
        store,
        path,
        cp,
        problems,
        saved: Instant::now(),
    };
    if run.cp.phase == Phase::Blocks {
        blocks_phase(&mut run)?;
        run.cp.phase = Phase::Packs;
        run.cp.after.clear();
        run.save()?;
    }
    if run.cp.phase == Phase::Packs {
        crate::verify_packs::packs_phase(&mut run)?;
        run.cp.phase = Phase::Roots;
        run.cp.after.clear();
        run.save()?;
    }
    if selection.is_empty() {
        roots_phase(&mut run, check)?;
    } else {
        selected_roots(&mut run, &selection, check)?;
    }
    let mut listed = run.problems.list;
    let more = run.problems.total - listed.len() as u64;
    if more > 0 {
        listed.push(format!("{more} more problem(s) not listed"));
    }
    match std::fs::remove_file(&run.path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&run.path)(e)),
        _ => {}
    }
    Ok(VerifyReport {
        blocks: run.cp.blocks,
        roots: run.cp.roots,
        problems: listed,
    })
}

/// Phase 1: the whole file checked, every block stored on its own after the
/// checkpoint re-hashed, packed ones counted.
fn blocks_phase(run: &mut Run) -> Result<(), Error> {
    let after = unhex(&run.cp.after).unwrap_or_default();
    let store = run.store;
    let snap = store.blocks.read_txn()?;
    let reader = snap.reader();
    let mut chunk: Vec<Entry> = Vec::with_capacity(CHUNK);
    let mut failed: Option<Error> = None;
    let flush = |run: &mut Run, chunk: &mut Vec<Entry>| -> Result<(), Error> {
        let Some((last, _)) = chunk.last() else {
            return Ok(());
        };
        let last = last.clone();
        let bad: Vec<String> = chunk
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
        run.cp.blocks += chunk.len() as u64;
        chunk.clear();
        run.add(bad);
        run.reached(&last)
    };
    snap.check_each(|key, value| {
        if failed.is_some() || (!after.is_empty() && key <= after) {
            return;
        }
        if reader.pack_of(&value).is_some() {
            run.cp.packed += 1;
            return;
        }
        chunk.push((key, value));
        if chunk.len() == CHUNK {
            if let Err(e) = flush(run, &mut chunk) {
                failed = Some(e);
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    flush(run, &mut chunk)
}

/// One root's walk and check: its problems.
fn check_root(
    store: &Store,
    reader: crate::blocks::Reader<'_>,
    rec: &RootRecord,
    check: &(impl Fn(&Store, &RootRecord) -> Result<(), String> + Sync),
) -> Result<Vec<String>, Error> {
    let label = walk::label(rec);
    let mut problems = Problems::new(KEEP);
    match rec.cid() {
        Ok(cid) => {
            let mut seen = Seen::with_bytes(ROOT_SEEN_BYTES);
            walk::walk_dag(
                reader,
                &cid,
                &label,
                Leaves::Present,
                &mut seen,
                &mut |_| Ok(()),
                &mut problems,
            )?;
        }
        Err(e) => problems.push(format!("root {label}: {}", error_chain(&e))),
    }
    // A root already reported (a missing or bad block) is not checked again.
    if problems.is_empty() {
        if let Err(e) = check(store, rec) {
            problems.push(format!("root {label}: {e}"));
        }
    }
    Ok(problems.list)
}

/// Walks and checks a chunk of records in parallel; the last key done.
fn roots_chunk(
    run: &mut Run,
    reader: crate::blocks::Reader<'_>,
    chunk: &mut Vec<(Vec<u8>, RootRecord)>,
    check: &(impl Fn(&Store, &RootRecord) -> Result<(), String> + Sync),
) -> Result<(), Error> {
    let Some((last, _)) = chunk.last() else {
        return Ok(());
    };
    let last = last.clone();
    let store = run.store;
    let found: Vec<Vec<String>> = chunk
        .par_iter()
        .map(|(_, rec)| check_root(store, reader, rec, check))
        .collect::<Result<_, _>>()?;
    run.cp.roots += chunk.len() as u64;
    chunk.clear();
    run.add(found.into_iter().flatten().collect());
    run.reached(&last)
}

/// Phase 2 over every record after the checkpoint.
fn roots_phase(
    run: &mut Run,
    check: &(impl Fn(&Store, &RootRecord) -> Result<(), String> + Sync),
) -> Result<(), Error> {
    let after = unhex(&run.cp.after).unwrap_or_default();
    let store = run.store;
    let snap = store.blocks.read_txn()?;
    let reader = snap.reader();
    let records = snap.records()?;
    let mut chunk = Vec::with_capacity(ROOT_CHUNK);
    records.each_after(&after, &mut |key, rec| {
        chunk.push((key.to_vec(), rec));
        if chunk.len() == ROOT_CHUNK {
            roots_chunk(run, reader, &mut chunk, check)?;
        }
        Ok(true)
    })?;
    roots_chunk(run, reader, &mut chunk, check)
}

/// The records an argument of `--root` designates: a name or root CID, a store-path
/// hash, or a store path (`/nix/store/HASH-NAME`, `/gnu/store/…`).
fn designated(store: &Store, arg: &str) -> Result<Vec<RootRecord>, Error> {
    let found = store.find_roots(arg)?;
    if !found.is_empty() {
        return Ok(found);
    }
    let hash = match narfs_nix::StorePath::parse(arg) {
        Ok(p) => p.hash_part().to_string(),
        Err(_) => arg.to_string(),
    };
    store.find_by_path_hash(&hash)
}

/// Phase 2 over the selected roots, in key order from the checkpoint.
fn selected_roots(
    run: &mut Run,
    selection: &[String],
    check: &(impl Fn(&Store, &RootRecord) -> Result<(), String> + Sync),
) -> Result<(), Error> {
    let mut records = Vec::new();
    for arg in selection {
        let found = designated(run.store, arg)?;
        if found.is_empty() {
            return Err(Error::UnknownRoot(arg.clone()));
        }
        for rec in found {
            records.push((root_table::key_of(&rec)?, rec));
        }
    }
    records.sort_by(|a, b| a.0.cmp(&b.0));
    records.dedup_by(|a, b| a.0 == b.0);
    let after = unhex(&run.cp.after).unwrap_or_default();
    records.retain(|(k, _)| after.is_empty() || *k > after);
    let store = run.store;
    let snap = store.blocks.read_txn()?;
    let reader = snap.reader();
    for part in records.chunks(ROOT_CHUNK) {
        let mut chunk = part.to_vec();
        roots_chunk(run, reader, &mut chunk, check)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
