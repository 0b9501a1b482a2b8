//! `narfs decode`: root CID → verified blocks → the byte-exact NAR, on stdout, in a
//! file, or restored as a tree.

use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};
use narfs_core::block::BlockSource;
use narfs_core::nar::{restore, RestoreOptions};
use narfs_decoder::car::CarFile;
use narfs_decoder::{decode_nar, FileReader, Limits};

use crate::cli::DecodeArgs;
use crate::io::Output;

pub fn run(args: DecodeArgs) -> Result<()> {
    let source =
        CarFile::open(&args.car).with_context(|| format!("cannot read {}", args.car.display()))?;
    let limits = Limits {
        max_output: args.max_output,
        ..Limits::default()
    };
    let decode = |out: &mut dyn Write| -> Result<()> {
        if args.fallback {
            decode_fallback(&source, &args.cid, out, &limits)
        } else {
            decode_nar(&source, &args.cid, out, &limits)?;
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
    source: &impl BlockSource,
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
    let (reader, mut writer) = io::pipe()?;
    std::thread::scope(|scope| {
        let restorer = scope.spawn(move || restore(reader, dir, RestoreOptions::default()));
        let decoded = decode(&mut writer);
        drop(writer);
        let restored = restorer.join().expect("restore does not panic");
        // The decode error is the cause when both fail (restore then sees a cut NAR).
        decoded?;
        restored.with_context(|| format!("cannot restore into {}", dir.display()))
    })
}
