//! `narfs import CACHE`: a Nix file binary cache (as `nix copy --to file://DIR` writes
//! it: `nix-cache-info`, `<hash>.narinfo`, `nar/*.nar[.xz|.zst|.bz2]`) into the store.
//!
//! Each NAR is decompressed as it streams into the encoder, which computes its sha256
//! and size on the way; they must equal the narinfo's `NarHash`/`NarSize`, and only
//! then is the root recorded, named by its store path, with the narinfo fields
//! (References, Deriver, Sig, CA) that `narfs serve` gives back to Nix. A bad entry (a
//! narinfo that does not parse, a missing or corrupt NAR, a hash mismatch) is reported
//! and skipped, never half-imported: its session's blocks are not recorded under any
//! root (`gc` removes them). Re-running skips every path already recorded with the
//! same NarHash, so an interrupted import resumes where it stopped.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, IsTerminal, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use narfs_encoder::{encode, encode_fallback, Encoded, Layout};
use narfs_nix::narinfo::{NarInfo, MAX_NARINFO, STORE_DIR};
use narfs_store::NarInfoMeta;
use narfs_store::{RootRecord, Store};
use serde_json::json;

use crate::io::Output;

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The binary cache directory (holding nix-cache-info and *.narinfo).
    pub cache: PathBuf,
    /// The blockstore (default: $NARFS_STORE, else the platform data dir).
    #[arg(long)]
    pub store: Option<PathBuf>,
    #[command(flatten)]
    pub layout: crate::cli::LayoutArgs,
    /// NARs imported at once (default: the number of CPUs).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Print one JSON object (counts, failures) instead of a summary line.
    #[arg(long)]
    pub json: bool,
}

/// What happened to one narinfo.
enum Outcome {
    Imported { nar_size: u64, new_bytes: u64 },
    Present,
    Failed(String),
}

pub fn run(args: ImportArgs) -> Result<()> {
    let layout: Layout = args.layout.layout();
    let cache = args.cache.as_path();
    check_cache_info(cache)?;
    let narinfos = list_narinfos(cache)?;
    let store = super::store::open(args.store.as_deref())?;
    // What is already recorded: store path -> NarHash.
    let present: HashMap<String, String> = store
        .roots()?
        .into_iter()
        .filter(|r| r.narinfo.is_some())
        .filter_map(|r| Some((r.name?, r.nar_hash)))
        .collect();
    let pb = progress(narinfos.len() as u64);
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 64);
    let ctx = Ctx {
        cache,
        store: &store,
        layout: &layout,
        profile: args.layout.profile.name(),
        present: &present,
    };
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = narinfos.get(i) else { break };
                let outcome = ctx.one(path);
                if let Outcome::Failed(why) = &outcome {
                    pb.suspend(|| eprintln!("narfs: skipping {}: {why}", path.display()));
                }
                pb.inc(1);
                let mut r = results.lock().unwrap_or_else(|p| p.into_inner());
                r.push((path.clone(), outcome));
            });
        }
    });
    pb.finish_and_clear();
    report(
        results.into_inner().unwrap_or_else(|p| p.into_inner()),
        args.json,
    )
}

fn report(results: Vec<(PathBuf, Outcome)>, json: bool) -> Result<()> {
    let (mut imported, mut present, mut nar_bytes, mut new_bytes) = (0u64, 0u64, 0u64, 0u64);
    let mut failed = Vec::new();
    for (path, o) in results {
        match o {
            Outcome::Imported {
                nar_size,
                new_bytes: n,
            } => {
                imported += 1;
                nar_bytes += nar_size;
                new_bytes += n;
            }
            Outcome::Present => present += 1,
            Outcome::Failed(why) => failed.push((path, why)),
        }
    }
    failed.sort();
    let mut out = Output::create(None)?;
    if json {
        let f: Vec<_> = failed
            .iter()
            .map(|(p, why)| json!({"narinfo": p.display().to_string(), "error": why}))
            .collect();
        let v = json!({"imported": imported, "already_present": present, "failed": f,
                       "nar_bytes": nar_bytes, "new_bytes": new_bytes});
        writeln!(out, "{v}")?;
    } else {
        writeln!(
            out,
            "imported {imported} store paths ({nar_bytes} NAR bytes, {new_bytes} new block bytes), {present} already present, {} failed",
            failed.len()
        )?;
    }
    out.commit()?;
    if !failed.is_empty() {
        bail!(
            "{} store path(s) could not be imported (see above)",
            failed.len()
        );
    }
    Ok(())
}

fn progress(n: u64) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(n);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} importing [{bar:40}] {pos}/{len} store paths, {elapsed} elapsed, ETA {eta}",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

/// The cache must be one for `/nix/store`, the only store directory narfs serves.
fn check_cache_info(cache: &Path) -> Result<()> {
    let p = cache.join("nix-cache-info");
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "{} is not a Nix binary cache (cannot read its nix-cache-info)",
            cache.display()
        )
    })?;
    for line in text.lines() {
        if let Some(dir) = line.strip_prefix("StoreDir: ") {
            if dir.trim() != STORE_DIR {
                bail!(
                    "{}: StoreDir is {dir}, narfs serves {STORE_DIR} only",
                    p.display()
                );
            }
        }
    }
    Ok(())
}

/// Every `*.narinfo` directly in the cache, sorted.
fn list_narinfos(cache: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let rd =
        std::fs::read_dir(cache).with_context(|| format!("cannot list {}", cache.display()))?;
    for e in rd {
        let e = e.with_context(|| format!("cannot list {}", cache.display()))?;
        let p = e.path();
        if p.extension().is_some_and(|x| x == "narinfo") && e.file_type()?.is_file() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

struct Ctx<'a> {
    cache: &'a Path,
    store: &'a Store,
    layout: &'a Layout,
    profile: &'a str,
    present: &'a HashMap<String, String>,
}

impl Ctx<'_> {
    fn one(&self, narinfo_path: &Path) -> Outcome {
        match self.try_one(narinfo_path) {
            Ok(o) => o,
            Err(e) => Outcome::Failed(crate::one_line(&e)),
        }
    }

    fn try_one(&self, narinfo_path: &Path) -> Result<Outcome> {
        let mut bytes = Vec::new();
        File::open(narinfo_path)?
            .take(MAX_NARINFO as u64 + 1)
            .read_to_end(&mut bytes)?;
        let info = NarInfo::parse(&bytes)?;
        let stem = narinfo_path.file_stem().unwrap_or_default();
        anyhow::ensure!(
            stem == info.hash_part(),
            "its StorePath {} does not match the file name",
            info.store_path
        );
        if self.present.get(&info.store_path) == Some(&info.nar_hash_string()) {
            return Ok(Outcome::Present);
        }
        let nar = nar_file(self.cache, &info.url)?;
        let open = || open_nar(&nar, &info.compression);
        let mut sink = self.store.sink()?;
        let mut compression = "none";
        let encoded = match encode(open()?, self.layout, &mut sink, None) {
            Err(e) if e.wants_fallback() => {
                // Valid NAR, but not a UnixFS tree: publish it compressed, as `encode` does.
                drop(sink);
                sink = self.store.sink()?;
                compression = "zstd";
                encode_fallback(open()?, self.layout, &mut sink)
            }
            other => other,
        }
        .with_context(|| format!("{}", nar.display()))?;
        check(&encoded, &info)?;
        let rec = self.record(&encoded, &info, compression);
        let written = sink.finish(Some(rec))?;
        Ok(Outcome::Imported {
            nar_size: encoded.nar_size,
            new_bytes: written.new_bytes,
        })
    }

    fn record(&self, e: &Encoded, info: &NarInfo, compression: &str) -> RootRecord {
        RootRecord::new(
            &e.root,
            compression.parse().unwrap_or_default(),
            &info.nar_hash,
            e.nar_size,
        )
        .with_name(Some(info.store_path.clone()))
        .with_layout(
            self.layout.chunker.to_string(),
            self.layout.hash.name(),
            self.profile,
        )
        .with_blocks(e.counts.blocks, e.counts.bytes)
        .with_narinfo(NarInfoMeta::from(info))
    }
}

/// The NAR's hash and size must be what the narinfo says.
fn check(e: &Encoded, info: &NarInfo) -> Result<()> {
    anyhow::ensure!(
        e.nar_size == info.nar_size,
        "the NAR is {} bytes, its narinfo says NarSize {}",
        e.nar_size,
        info.nar_size
    );
    anyhow::ensure!(
        e.nar_sha256 == info.nar_hash,
        "the NAR hashes to sha256:{}, its narinfo says NarHash {}",
        narfs_nix::base32::encode(&e.nar_sha256),
        info.nar_hash_string()
    );
    Ok(())
}

/// The NAR file a narinfo's URL names: a relative path of plain components inside
/// the cache (no `..`, no absolute path, no scheme), and a regular file.
fn nar_file(cache: &Path, url: &str) -> Result<PathBuf> {
    let rel = Path::new(url);
    let plain = !url.contains(':') && rel.components().all(|c| matches!(c, Component::Normal(_)));
    anyhow::ensure!(plain, "URL {url:?} is not a relative path inside the cache");
    let p = cache.join(rel);
    let meta = std::fs::symlink_metadata(&p).with_context(|| format!("{}", p.display()))?;
    anyhow::ensure!(meta.is_file(), "{} is not a regular file", p.display());
    Ok(p)
}

/// The NAR's bytes, decompressed as they are read.
fn open_nar(path: &Path, compression: &str) -> Result<Box<dyn Read + Send>> {
    let f = BufReader::with_capacity(
        256 << 10,
        File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    );
    let r: Box<dyn Read + Send> = match compression {
        "none" | "" => Box::new(f),
        "xz" => Box::new(xz2::bufread::XzDecoder::new_multi_decoder(f)),
        "zstd" => Box::new(zstd::Decoder::with_buffer(f)?),
        "bzip2" => Box::new(bzip2::bufread::MultiBzDecoder::new(f)),
        other => bail!("compression {other:?} is not supported (none, xz, zstd, bzip2)"),
    };
    Ok(r)
}
