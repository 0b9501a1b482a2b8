//! `narfs encode`: NAR → UnixFS DAG, blocks into the store (the default) and/or a CAR
//! file, root CID and Nix metadata on stdout; with the store, the root is recorded and
//! what dedup saved is reported (`new_blocks`, `new_bytes`).

use std::fs::File;
use std::io::{self, IsTerminal, Read, Seek, Write};
use std::path::Path;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use narfs_core::block::{BlockSink, NullSink, StoreError};
use narfs_core::car::CarFileWriter;
use narfs_core::nar::{dump_path, NarError};
use narfs_core::{Cid, Encoding};
use narfs_encoder::{encode_or_fallback, Encoded, EntryKind, Layout};
use narfs_nix::narinfo::nar_hash_string;
use narfs_store::{RootRecord, Store, StoreSink, Written};
use serde_json::json;

use crate::cli::EncodeArgs;
use crate::io::Output;

pub fn run(args: EncodeArgs) -> Result<()> {
    let layout: Layout = args.layout.layout();
    let mut input = Input::open(&args.input)?;
    // With --car alone, the store is left alone; otherwise it is the default sink.
    let store = match (&args.store, &args.car) {
        (None, Some(_)) => None,
        (dir, _) => Some(super::store::open(dir.as_deref())?),
    };
    anyhow::ensure!(
        args.name.is_none() || store.is_some(),
        "--name records the root in the store, which --car alone leaves out (add --store DIR)"
    );
    let mut entries = match &args.entries {
        Some(p) => Some(Output::create(Some(p))?),
        None => None,
    };
    let mut observe = |path: &str, kind: EntryKind, cid: &Cid| {
        if let Some(out) = entries.as_mut() {
            let line = json!({"path": path, "type": kind.name(), "cid": cid.to_string()});
            let _ = writeln!(out, "{line}");
        }
    };
    let encoded = encode_or_fallback(
        || input.reader(),
        &layout,
        || Sink::create(args.car.as_deref(), store.as_ref()),
        args.fallback,
        Some(&mut observe),
    );
    if encoded.is_err() {
        // A directory's dump error is the real cause of the cut NAR the encoder saw.
        if let Some(cause) = input.dump_error() {
            anyhow::bail!("cannot encode {}: {cause}", args.input.display());
        }
    }
    let (encoded, sink) =
        encoded.with_context(|| format!("cannot encode {}", args.input.display()))?;
    if encoded.encoding == Encoding::ZstdNar {
        // Entries of a tree that was not made are not entries of anything.
        entries = None;
        if !args.fallback {
            let why = encoded.fallback_reason.as_deref().unwrap_or_default();
            eprintln!("narfs: {why}; publishing the zstd-compressed NAR as one file instead");
        }
    }
    let v = report(&encoded, &layout, args.layout.profile.name());
    let rec = record(
        &encoded,
        &layout,
        args.layout.profile.name(),
        args.name.clone(),
    );
    let written = sink.finish(&encoded.root, rec)?;
    if let Some(out) = entries {
        out.commit()?;
    }
    let mut stdout = Output::create(None)?;
    if let (Some(w), true) = (&written, io::stderr().is_terminal()) {
        eprintln!(
            "narfs: {} blocks ({} bytes), of which new in the store: {} blocks ({} bytes, {} on disk)",
            encoded.counts.blocks,
            encoded.counts.bytes,
            w.new_blocks,
            w.new_bytes,
            w.new_stored_bytes
        );
    }
    if args.json {
        let mut v = v;
        if let Some(w) = written {
            v["new_blocks"] = w.new_blocks.into();
            v["new_bytes"] = w.new_bytes.into();
            v["new_stored_bytes"] = w.new_stored_bytes.into();
        }
        writeln!(stdout, "{v}")?;
    } else {
        writeln!(stdout, "{}", encoded.root)?;
    }
    stdout.commit()
}

fn report(e: &Encoded, layout: &Layout, profile: &str) -> serde_json::Value {
    let mut v = json!({
        "root": e.root.to_string(),
        "nar_hash": nar_hash_string(&e.nar_sha256),
        "nar_size": e.nar_size,
        "blocks": e.counts.blocks,
        "block_bytes": e.counts.bytes,
        "dag_size": e.tsize,
        "profile": profile,
        "chunker": layout.chunker.to_string(),
        "hash": layout.hash.name(),
        "compression": e.encoding.name(),
    });
    if let Some(why) = &e.fallback_reason {
        v["fallback_reason"] = why.as_str().into();
    }
    v
}

/// The store's record of this encoding.
fn record(e: &Encoded, layout: &Layout, profile: &str, name: Option<String>) -> RootRecord {
    RootRecord::new(&e.root, e.encoding, &e.nar_sha256, e.nar_size)
        .with_name(name)
        .with_layout(layout.chunker.to_string(), layout.hash.name(), profile)
        .with_blocks(e.counts.blocks, e.counts.bytes)
}

/// Where the blocks go: the store, a CAR file, both, or (neither) only counted.
struct Sink {
    car: Option<CarFileWriter>,
    store: Option<StoreSink>,
    null: NullSink,
}

impl Sink {
    fn create(car: Option<&Path>, store: Option<&Store>) -> Result<Sink> {
        let car = match car {
            Some(p) => Some(
                CarFileWriter::create(p)
                    .with_context(|| format!("cannot create {}", p.display()))?,
            ),
            None => None,
        };
        let store = match store {
            Some(s) => Some(
                s.sink()
                    .with_context(|| format!("cannot write to the store {}", s.dir().display()))?,
            ),
            None => None,
        };
        Ok(Sink {
            car,
            store,
            null: NullSink::default(),
        })
    }

    /// Completes the CAR, then makes the store's blocks durable and records the root.
    fn finish(self, root: &Cid, record: RootRecord) -> Result<Option<Written>> {
        if let Some(car) = self.car {
            let path = car.path().to_path_buf();
            car.finish(root)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        match self.store {
            Some(s) => Ok(Some(
                s.finish(Some(record))
                    .context("cannot record the NAR in the store")?,
            )),
            None => Ok(None),
        }
    }
}

impl BlockSink for Sink {
    fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), StoreError> {
        if let Some(c) = &mut self.car {
            BlockSink::put(c, cid, data)?;
        }
        if let Some(s) = &mut self.store {
            s.put(cid, data)?;
        }
        self.null.put(cid, data)
    }
}

/// The NAR to encode; it can be read again from the start, for the fallback.
enum Input {
    /// A NAR file, or stdin spooled to an unnamed temporary file.
    File(File),
    /// A directory, serialised on the fly by a second thread; its error, if any, is
    /// the real cause of the truncated NAR the encoder then sees.
    Dir(std::path::PathBuf, Option<JoinHandle<Result<(), NarError>>>),
}

impl Input {
    fn open(path: &Path) -> Result<Input> {
        if path == Path::new("-") {
            let mut spool =
                tempfile::tempfile().context("cannot create a temporary file for stdin")?;
            io::copy(&mut io::stdin().lock(), &mut spool).context("cannot read stdin")?;
            return Ok(Input::File(spool));
        }
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot open {}", path.display()))?;
        if meta.is_dir() {
            Ok(Input::Dir(path.to_path_buf(), None))
        } else {
            Ok(Input::File(File::open(path).with_context(|| {
                format!("cannot open {}", path.display())
            })?))
        }
    }

    /// The NAR from its start, each time it is asked for.
    fn reader(&mut self) -> Result<Box<dyn Read + Send>> {
        match self {
            Input::File(f) => {
                let mut f = f.try_clone()?;
                f.rewind()?;
                Ok(Box::new(f))
            }
            Input::Dir(dir, dumper) => {
                let (reader, writer) = io::pipe()?;
                let dir = dir.clone();
                *dumper = Some(std::thread::spawn(move || {
                    dump_path(&dir, writer).map(drop)
                }));
                Ok(Box::new(reader))
            }
        }
    }

    /// Why the last directory dump failed, if it did for a reason of its own (not
    /// because the encoder stopped reading). The encoder has dropped the pipe's
    /// reading end by now, so the dump thread ends promptly.
    fn dump_error(&mut self) -> Option<NarError> {
        let Input::Dir(_, dumper) = self else {
            return None;
        };
        match dumper.take()?.join() {
            Ok(Err(NarError::Io { source, .. })) if source.kind() == io::ErrorKind::BrokenPipe => {
                None
            }
            Ok(Err(e)) => Some(e),
            Ok(Ok(())) | Err(_) => None,
        }
    }
}
