//! `narfs nar dump|ls|restore`: the NAR codec on its own.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use narfs_core::nar::{dump_path, restore, Event, NarReader, RestoreOptions};

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
        NarCommand::Ls { nar, recursive } => ls(&nar, recursive),
        NarCommand::Restore { nar, dir } => {
            let input = open_input(&nar)?;
            restore(input, &dir, RestoreOptions::default())
                .with_context(|| format!("cannot restore {} into {}", nar.display(), dir.display()))
        }
    }
}

/// Lists entries like `nix store ls -l`: mode string, size, path (and target).
fn ls(path: &Path, recursive: bool) -> Result<()> {
    let input = open_input(path)?;
    let mut reader = NarReader::new(input);
    // The listing streams: on a bad NAR, the lines before the fault are printed,
    // then the error, and the exit status is non-zero.
    let mut out = Output::create(None)?;
    let mut dirs: Vec<Vec<u8>> = Vec::new();
    let ctx = || format!("invalid NAR {}", path.display());
    loop {
        let event = match reader.next().with_context(ctx)? {
            Some(e) => e,
            None => break,
        };
        let depth = dirs.len();
        let show = recursive || depth <= 1;
        let full = |name: &[u8]| -> Vec<u8> {
            let mut p = b".".to_vec();
            for d in dirs.iter().skip(1) {
                p.push(b'/');
                p.extend_from_slice(d);
            }
            if depth > 0 {
                p.push(b'/');
                p.extend_from_slice(name);
            }
            p
        };
        match event {
            Event::Directory { name } => {
                if show {
                    line(&mut out, "dr-xr-xr-x", 0, &full(name), None)?;
                }
                dirs.push(name.to_vec());
            }
            Event::DirectoryEnd => {
                dirs.pop();
            }
            Event::File {
                name,
                executable,
                size,
                ..
            } => {
                if show {
                    let mode = if executable {
                        "-r-xr-xr-x"
                    } else {
                        "-r--r--r--"
                    };
                    line(&mut out, mode, size, &full(name), None)?;
                }
            }
            Event::Symlink { name, target } => {
                if show {
                    line(&mut out, "lrwxrwxrwx", 0, &full(name), Some(target))?;
                }
            }
        }
    }
    out.commit()
}

fn line(
    out: &mut impl Write,
    mode: &str,
    size: u64,
    path: &[u8],
    target: Option<&[u8]>,
) -> Result<()> {
    write!(out, "{mode} {size:>12} ")?;
    out.write_all(path)?;
    if let Some(t) = target {
        out.write_all(b" -> ")?;
        out.write_all(t)?;
    }
    out.write_all(b"\n")?;
    Ok(())
}
