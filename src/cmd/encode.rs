//! `narfs encode`: NAR → UnixFS DAG, blocks into the store (the default) and/or a CAR
//! file, root CID and Nix metadata on stdout; with the store, the root is recorded and
//! what dedup saved is reported (`new_blocks`, `new_bytes`).

use std::io::{self, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result};
use narfs_core::block::{BlockSink, NullSink, StoreError};
use narfs_core::car::CarFileWriter;
use narfs_core::{Cid, Encoding};
use narfs_encoder::{
    encode_or_fallback, encode_or_fallback_from, EncodeReport, Encoded, EntryKind, Layout, NarInput,
};
use narfs_store::{NarInfoMeta, RootRecord, Store, StoreSink, Written};
use serde_json::json;

use crate::cli::EncodeArgs;
use crate::io::Output;

pub fn run(args: EncodeArgs) -> Result<()> {
    if !args.more.is_empty() {
        return super::encode_many::run(args);
    }
    let layout: Layout = args.layout.layout();
    let mut input = NarInput::open(&args.input)?;
    // With --car alone, the store is left alone; otherwise it is the default sink.
    let store = match (&args.store, &args.car) {
        (None, Some(_)) => None,
        (dir, _) => Some(super::store::open_writing(
            dir.as_deref(),
            args.compression,
        )?),
    };
    let meta = narinfo_meta(args.store_path.as_deref(), &args.references)?;
    let name = args.name.clone().or_else(|| args.store_path.clone());
    anyhow::ensure!(
        (name.is_none() && meta.is_none()) || store.is_some(),
        "--name and --store-path record the root in the store, which --car alone leaves out (add --store DIR)"
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
    // A CAR into a pipe or device needs its root in the header before any block:
    // from an input that can be read again (a NAR file, or stdin, which NarInput
    // spools), a first pass learns the root and a second streams the CAR. From a
    // directory (whose tree may change between two dumps) the CAR is spooled.
    let two_pass = args
        .car
        .as_deref()
        .filter(|p| CarFileWriter::spools(p) && matches!(input, NarInput::File(_)));
    // With nothing else to write, the first pass only needs the root: it skips the
    // NarHash stream, and the second pass (which computes it) gives the report.
    let root_only =
        two_pass.is_some() && store.is_none() && !args.fallback && args.entries.is_none();
    let streamed = match two_pass.filter(|_| root_only) {
        Some(path) => first_pass(&mut input, &layout)
            .and_then(|first| match first {
                Some(first) => stream_car(&mut input, &layout, &first, path).map(Some),
                None => Ok(None),
            })
            .with_context(|| format!("cannot encode {}", args.input.display()))?,
        None => None,
    };
    let two_pass = two_pass.filter(|_| streamed.is_none());
    let first_car = if two_pass.is_some() {
        None
    } else {
        args.car.as_deref()
    };
    // A NAR file is encoded from memory, without copying its bytes around.
    let mapped = match streamed {
        None => input.map(),
        Some(_) => None,
    };
    let encoded = match streamed {
        Some(done) => Ok((done, Sink::create(None, None)?)),
        None => encode_or_fallback_from(
            mapped.as_ref(),
            || input.reader().map_err(anyhow::Error::from),
            &layout,
            || Sink::create(first_car, store.as_ref()),
            args.fallback,
            Some(&mut observe),
        ),
    };
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
    let mut report = EncodeReport::new(&encoded, &layout, args.layout.profile.name());
    let mut rec = record(&encoded, &layout, args.layout.profile.name(), name);
    if let Some(meta) = meta {
        rec = rec.with_narinfo(meta);
    }
    let written = sink.finish(&encoded.root, rec)?;
    if let Some(path) = two_pass {
        stream_car(&mut input, &layout, &encoded, path)
            .with_context(|| format!("cannot encode {}", args.input.display()))?;
    }
    if let Some(api) = &args.ipfs_api {
        super::publish::after_encode(api, store.as_ref(), args.car.as_deref(), &encoded.root)?;
    }
    if let Some(out) = entries {
        out.commit()?;
    }
    let mut stdout = Output::create(None)?;
    if let (Some(w), true) = (&written, io::stderr().is_terminal()) {
        let (blocks, bytes) = (encoded.counts.blocks, encoded.counts.bytes);
        eprintln!("narfs: {}", w.summary(blocks, bytes));
    }
    if args.json {
        if let Some(w) = written {
            report.new_blocks = Some(w.new_blocks);
            report.new_bytes = Some(w.new_bytes);
            report.new_stored_bytes = Some(w.new_stored_bytes);
        }
        writeln!(stdout, "{}", serde_json::to_string(&report)?)?;
    } else {
        writeln!(stdout, "{}", encoded.root)?;
    }
    stdout.commit()
}

/// The first pass of a CAR into a pipe or device with nothing else to write: the
/// root alone, without the NarHash stream; `None` when the NAR needs the fallback
/// encoding (the ordinary two passes then make it).
fn first_pass(input: &mut NarInput, layout: &Layout) -> Result<Option<Encoded>> {
    match narfs_encoder::encode_root_only(input.reader()?, layout, &mut NullSink::default()) {
        Ok(first) => Ok(Some(first)),
        Err(e) if e.wants_fallback() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The second pass of a CAR into a pipe or device: the input encoded again, as it
/// was the first time, its blocks written through a CAR whose header names the root
/// the first pass found. An input that changed in between is an error: the root
/// covers every byte of the NAR (names, contents, modes), so equal roots mean equal
/// NARs. Returns the second pass's encoding (with the NarHash, which a root-only
/// first pass lacks).
fn stream_car(
    input: &mut NarInput,
    layout: &Layout,
    first: &Encoded,
    path: &Path,
) -> Result<Encoded> {
    let (again, sink) = encode_or_fallback(
        || input.reader().map_err(anyhow::Error::from),
        layout,
        || {
            let car = CarFileWriter::stream(path, &first.root)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let (store, null) = (None, NullSink::default());
            Ok(Sink {
                car: Some(car),
                store,
                null,
            })
        },
        first.encoding == Encoding::ZstdNar,
        None,
    )?;
    anyhow::ensure!(
        again.root == first.root,
        "the input changed between the two passes of a CAR into {}",
        path.display()
    );
    sink.finish(&again.root, record(&again, layout, "", None))?;
    Ok(again)
}

/// The store's record of this encoding.
pub(super) fn record(
    e: &Encoded,
    layout: &Layout,
    profile: &str,
    name: Option<String>,
) -> RootRecord {
    RootRecord::new(&e.root, e.encoding, &e.nar_sha256, e.nar_size)
        .with_name(name)
        .with_layout(layout.chunker.to_string(), layout.hash.name(), profile)
        .with_blocks(e.counts.blocks, e.counts.bytes)
}

/// The narinfo fields of `--store-path` and its `--reference`s, checked as a narinfo's
/// would be.
fn narinfo_meta(store_path: Option<&str>, refs: &[String]) -> Result<Option<NarInfoMeta>> {
    let Some(path) = store_path else {
        return Ok(None);
    };
    narfs_nix::StorePath::parse(path).with_context(|| format!("--store-path {path}"))?;
    if let Some(bad) = refs.iter().find(|r| !narfs_nix::narinfo::is_base_name(r)) {
        anyhow::bail!("--reference {bad}: not a store path's base name <hash>-<name>");
    }
    Ok(Some(NarInfoMeta {
        store_path: path.to_string(),
        references: refs.to_vec(),
        ..NarInfoMeta::default()
    }))
}

/// Where the blocks go: the store, a CAR file, both, or (neither) only counted.
struct Sink {
    car: Option<CarFileWriter>,
    store: Option<StoreSink>,
    null: NullSink,
}

impl Sink {
    fn create(car: Option<&Path>, store: Option<&Store>) -> Result<Sink> {
        let car = car.map(|p| {
            CarFileWriter::create(p).with_context(|| format!("cannot create {}", p.display()))
        });
        let store = store.map(|s| {
            let dir = s.dir().display();
            s.sink()
                .with_context(|| format!("cannot write to the store {dir}"))
        });
        let (car, store) = (car.transpose()?, store.transpose()?);
        let null = NullSink::default();
        Ok(Sink { car, store, null })
    }

    /// Completes the CAR, then makes the store's blocks durable and records the root.
    fn finish(self, root: &Cid, record: RootRecord) -> Result<Option<Written>> {
        if let Some(car) = self.car {
            let path = car.path().to_path_buf();
            car.finish(root)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        let recorded = self.store.map(|s| s.finish(Some(record)));
        recorded
            .transpose()
            .context("cannot record the NAR in the store")
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

    fn will_put(&mut self, cids: &[Cid]) {
        if let Some(s) = &mut self.store {
            s.will_put(cids);
        }
    }
}
