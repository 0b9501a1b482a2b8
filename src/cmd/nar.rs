//! `narfs nar dump|ls|restore`: the NAR codec on its own.

use std::io::{self, BufReader, BufWriter, Seek, SeekFrom};
use std::path::Path;

use anyhow::{Context, Result};
use narfs_core::nar::{dump_path, list, restore, ListFormat, RestoreOptions};

use crate::cli::NarCommand;
use crate::io::{open_input, Output};

pub fn run(cmd: NarCommand) -> Result<()> {
    match cmd {
        NarCommand::Dump { path, output } => {
            let out = Output::create(output.as_deref())?;
            let out =
                dump_path(&path, out).with_context(|| format!("cannot dump {}", path.display()))?;
            out.commit()
        }
        NarCommand::Ls {
            nar,
            recursive,
            json,
        } => ls(&nar, recursive, json),
        NarCommand::Restore { nar, dir } => {
            let input = open_input(&nar)?;
            restore(input, &dir, RestoreOptions::default())
                .with_context(|| format!("cannot restore {} into {}", nar.display(), dir.display()))
        }
    }
}

/// Lists entries like `nix nar ls -l` (or `--json`). The listing is spooled to an
/// unnamed temporary file and copied to stdout only once the whole NAR has validated,
/// so a bad NAR prints nothing but the error (bounded memory, however many entries).
fn ls(path: &Path, recursive: bool, json: bool) -> Result<()> {
    let input = BufReader::with_capacity(256 * 1024, open_input(path)?);
    let spool = tempfile::tempfile().context("cannot create a temporary file")?;
    let format = if json {
        ListFormat::Json
    } else {
        ListFormat::Long
    };
    let spool = list(input, BufWriter::new(spool), format, recursive)
        .with_context(|| format!("invalid NAR {}", path.display()))?;
    let mut spool = spool
        .into_inner()
        .map_err(|e| e.into_error())
        .context("cannot write the listing")?;
    spool.seek(SeekFrom::Start(0))?;
    let mut out = Output::create(None)?;
    io::copy(&mut spool, &mut out).context("cannot write to stdout")?;
    out.commit()
}
