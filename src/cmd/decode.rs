//! `narfs decode`: root NAME or CID → verified blocks (from the store, the default, or
//! a CAR file) → the byte-exact NAR, on stdout, in a file, or restored as a tree.

use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};
use narfs_core::block::BlockSource;
use narfs_core::car::CarFile;
use narfs_core::nar::{restore, RestoreOptions};
use narfs_decoder::{decode_nar, FileReader, Limits};

use crate::cli::DecodeArgs;
use crate::io::Output;

pub fn run(args: DecodeArgs) -> Result<()> {
    let mut fallback = args.fallback;
    let mut _lock = None;
    let (source, cid): (Box<dyn BlockSource + Sync>, narfs_core::Cid) = match &args.car {
        Some(car) => {
            let cid = args
                .root
                .parse()
                .with_context(|| format!("{:?} is not a CID", args.root))?;
            let source =
                CarFile::open(car).with_context(|| format!("cannot read {}", car.display()))?;
            (Box::new(source), cid)
        }
        None => {
            let store = super::store::open(args.store.as_deref())?;
            // Held while decoding, so that `gc` cannot collect the DAG under us.
            _lock = Some(store.lock_shared()?);
            let cid = match super::store::resolve(&store, &args.root)? {
                Some(rec) => {
                    fallback |= rec.compression == "zstd";
                    rec.cid()?
                }
                None => args.root.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "no root named {:?} in the store {}",
                        args.root,
                        store.dir().display()
                    )
                })?,
            };
            (Box::new(store), cid)
        }
    };
    let limits = Limits {
        max_output: args.max_output,
        ..Limits::default()
    };
    let decode = |out: &mut dyn Write| -> Result<()> {
        if fallback {
            decode_fallback(&source, &cid, out, &limits)
        } else {
            decode_nar(&source, &cid, out, &limits)?;
            Ok(())
        }
    };
    match &args.to {
        Some(dir) => to_dir(dir, decode),
        None => {
            let mut out = Output::create(args.output.as_deref())?;
            decode(&mut out)?;
            out.commit()
        }
    }
}

/// The fallback: the CID is a file holding the zstd-compressed NAR.
fn decode_fallback(
    source: &(impl BlockSource + Sync),
    cid: &narfs_core::Cid,
    out: &mut dyn Write,
    limits: &Limits,
) -> Result<()> {
    let block = narfs_decoder::fetch(source, cid, "")?;
    let file = FileReader::open(source, cid, block, "", *limits)?;
    let mut limited = io::Read::take(
        zstd::Decoder::new(file)?,
        limits.max_output.saturating_add(1),
    );
    let n = io::copy(&mut limited, out).context("cannot decompress the fallback NAR")?;
    anyhow::ensure!(
        n <= limits.max_output,
        "the NAR exceeds the limit of {} bytes",
        limits.max_output
    );
    Ok(())
}

/// Decodes into a pipe read by `restore`, so the tree is built as the NAR streams.
fn to_dir(dir: &Path, decode: impl FnOnce(&mut dyn Write) -> Result<()> + Send) -> Result<()> {
    // Refuse an existing target before decoding anything (restore checks again).
    if dir.symlink_metadata().is_ok() {
        anyhow::bail!("cannot restore into {}: already exists", dir.display());
    }
    let (reader, mut writer) = io::pipe()?;
    std::thread::scope(|scope| {
        let restorer = scope.spawn(move || restore(reader, dir, RestoreOptions::default()));
        let decoded = decode(&mut writer);
        drop(writer);
        let restored = restorer.join().expect("restore does not panic");
        let context = || format!("cannot restore into {}", dir.display());
        match (decoded, restored) {
            // Restore refused first (e.g. DIR exists) and closed the pipe: its error
            // is the cause, not the decoder's broken pipe.
            (Err(d), Err(r)) if crate::io::is_broken_pipe(&d) => Err(r).with_context(context),
            // Otherwise the decode error is the cause (restore then saw a cut NAR).
            (Err(d), _) => Err(d),
            (Ok(()), r) => r.with_context(context),
        }
    })
}
