//! The store subcommands (`narfs store ls`, `stats`, `verify`, `gc`, `compact`, `rm`) and opening the
//! store by the CLI's rule: `--store DIR`, else `$NARFS_STORE`, else the platform data
//! directory.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use narfs_store::{Compression, RootRecord, Store};

use crate::cli::{GcArgs, RepackArgs, RmArgs, StoreArgs, VerifyArgs};
use crate::io::Output;

/// Opens (creating if needed) the store `--store` names, or the default one.
pub fn open(dir: Option<&Path>) -> Result<Store> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => Store::default_dir().context(
            "no store directory: give --store DIR or set NARFS_STORE (HOME is not set either)",
        )?,
    };
    Store::open(&dir).with_context(|| format!("cannot open the store {}", dir.display()))
}

/// [`open`], its write sessions storing new blocks as `compression` says (else the
/// store's default).
pub fn open_writing(dir: Option<&Path>, compression: Option<Compression>) -> Result<Store> {
    let store = open(dir)?;
    Ok(match compression {
        Some(c) => store.with_compression(c),
        None => store,
    })
}

/// The one root a NAME or CID designates in the store, if recorded.
pub fn resolve(store: &Store, root: &str) -> Result<Option<RootRecord>> {
    let mut found = store.find_roots(root)?;
    // One CID under several names: the records agree on everything that matters.
    Ok(found.pop())
}

pub fn run(cmd: crate::cli::StoreCommand) -> Result<()> {
    use crate::cli::StoreCommand as C;
    match cmd {
        C::Ls(a) => ls(a),
        C::Stats(a) => stats(a),
        C::Verify(a) => verify(a),
        C::Gc(a) => gc(a),
        C::Compact(a) => compact(a),
        C::Rm(a) => rm(a),
        C::Repack(a) => repack(a),
    }
}

fn repack(args: RepackArgs) -> Result<()> {
    let store = open(args.store.store.as_deref())?;
    let r = store
        .repack_with(
            args.level,
            args.pack_bytes,
            match args.layout {
                crate::cli::RepackLayout::Grouped => narfs_store::Layout::Grouped,
                crate::cli::RepackLayout::WriteOrder => narfs_store::Layout::WriteOrder,
            },
            if args.incremental {
                narfs_store::Scope::Incremental(args.max_amplification)
            } else {
                narfs_store::Scope::Full
            },
        )
        .with_context(|| format!("cannot repack the store {}", store.dir().display()))?;
    report(args.store.json, &r, || {
        format!(
            "{} packs rewritten into {} at zstd level {} ({} -> {} bytes, {} blocks moved), {} kept as they were; pack order of {} items recorded ({} bytes)\n",
            r.packs_read, r.packs_written, args.level, r.bytes_before, r.bytes_after,
            r.blocks_moved, r.packs_kept, r.orders, r.order_bytes
        )
    })
}

/// Writes `r` as one line of JSON with `--json`, else the text `text` makes.
fn report(json: bool, r: &impl serde::Serialize, text: impl FnOnce() -> String) -> Result<()> {
    let mut out = Output::create(None)?;
    if json {
        writeln!(out, "{}", serde_json::to_string(r)?)?;
    } else {
        write!(out, "{}", text())?;
    }
    out.commit()
}

fn ls(args: StoreArgs) -> Result<()> {
    let store = open(args.store.as_deref())?;
    let mut out = Output::create(None)?;
    for r in store.roots()? {
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&r)?)?;
        } else {
            writeln!(out, "{}", r.listing_line())?;
        }
    }
    out.commit()
}

fn stats(args: StoreArgs) -> Result<()> {
    let store = open(args.store.as_deref())?;
    let s = store.stats()?;
    report(args.json, &s, || s.table(store.dir()))
}

fn verify(a: VerifyArgs) -> Result<()> {
    let args = a.store;
    let store = open(args.store.as_deref())?;
    let options = narfs_store::VerifyOptions {
        roots: a.roots,
        resume: a.resume,
    };
    let r = store.verify_some(&options, check_nar)?;
    let mut out = Output::create(None)?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
    } else {
        for p in &r.problems {
            writeln!(out, "problem: {p}")?;
        }
        writeln!(
            out,
            "{} blocks re-hashed, {} roots walked and decoded against their NarHash, {} problem(s)",
            r.blocks,
            r.roots,
            r.problems.len()
        )?;
    }
    out.commit()?;
    anyhow::ensure!(
        r.problems.is_empty(),
        "the store {} has {} problem(s)",
        store.dir().display(),
        r.problems.len()
    );
    Ok(())
}

/// Decodes a root's NAR to nowhere, checking it against the record's NarHash and
/// NarSize: a record pointing at another NAR, or at a wrong size, is a problem.
fn check_nar(store: &Store, rec: &RootRecord) -> Result<(), String> {
    let expect = narfs_decoder::Expect::from_record(&rec.nar_hash, rec.nar_size)
        .map_err(|e| narfs_core::error_chain(&e))?;
    let cid = rec.cid().map_err(|e| narfs_core::error_chain(&e))?;
    let limits = narfs_decoder::Limits::default();
    narfs_decoder::check(store, &cid, rec.encoding, &expect, &limits)
        .map_err(|e| narfs_core::error_chain(&e))
}

fn gc(a: GcArgs) -> Result<()> {
    let args = a.store;
    let store = open(args.store.as_deref())?;
    let r = store.gc_within((a.memory_mib as usize).saturating_mul(1 << 20))?;
    report(args.json, &r, || {
        format!(
            "removed {} blocks ({} bytes) and {} abandoned session(s); kept {} blocks\n",
            r.removed_blocks, r.removed_bytes, r.removed_sessions, r.kept_blocks
        )
    })
}

fn compact(args: StoreArgs) -> Result<()> {
    let store = open(args.store.as_deref())?;
    let dir = store.dir().to_path_buf();
    let r = store
        .compact()
        .with_context(|| format!("cannot compact the store {}", dir.display()))?;
    report(args.json, &r, || {
        format!(
            "block table: {} bytes before, {} after\n",
            r.bytes_before, r.bytes_after
        )
    })
}

fn rm(args: RmArgs) -> Result<()> {
    let store = open(args.store.store.as_deref())?;
    let removed = store.remove_roots(&args.root)?;
    anyhow::ensure!(!removed.is_empty(), "no root {:?} in the store", args.root);
    let mut out = Output::create(None)?;
    for r in removed {
        if args.store.json {
            writeln!(out, "{}", serde_json::to_string(&r)?)?;
        } else {
            writeln!(
                out,
                "removed {} {}",
                r.root,
                r.name.as_deref().unwrap_or("-")
            )?;
        }
    }
    out.commit()
}
