//! `narfs car import|export`: exchanging DAGs with other IPFS implementations as CAR
//! files (the work is in the `narfs-ipfs` crate).

use std::io::{BufReader, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use narfs_core::Cid;

use crate::io::{open_input, Output};

#[derive(clap::Subcommand, Debug)]
pub enum CarCommand {
    /// Verify every block of a CARv1/CARv2 and put it into the store; record and print
    /// each root of its header.
    Import {
        /// The CAR file, or '-' for stdin.
        car: PathBuf,
        /// The blockstore (default: $NARFS_STORE, else the platform data dir).
        #[arg(long)]
        store: Option<PathBuf>,
    },
    /// Write the DAGs under the roots, from the store, as one CARv1.
    Export {
        /// Roots: names recorded in the store, or CIDs.
        #[arg(value_name = "NAME|CID", required = true)]
        roots: Vec<String>,
        /// The blockstore (default: $NARFS_STORE, else the platform data dir).
        #[arg(long)]
        store: Option<PathBuf>,
        /// Where to write the CAR ('-' for stdout); it appears only once complete.
        #[arg(short, long)]
        output: PathBuf,
    },
}

pub fn run(cmd: CarCommand) -> Result<()> {
    match cmd {
        CarCommand::Import { car, store } => {
            let store = super::store::open(store.as_deref())?;
            let input = BufReader::with_capacity(1 << 20, open_input(&car)?);
            let imported = narfs_ipfs::import_car(input, &store)
                .with_context(|| format!("cannot import {}", car.display()))?;
            let mut out = Output::create(None)?;
            let mut failed = None;
            for root in imported.roots {
                match root.outcome {
                    Ok(_) => writeln!(out, "{}", root.cid)?,
                    Err(e) => failed = failed.or(Some(anyhow::Error::new(e))),
                }
            }
            out.commit()?;
            let w = imported.written;
            eprintln!(
                "narfs: {} blocks ({} bytes) verified, {} new ({} bytes)",
                imported.blocks, imported.block_bytes, w.new_blocks, w.new_bytes
            );
            failed.map_or(Ok(()), Err)
        }
        CarCommand::Export {
            roots,
            store,
            output,
        } => {
            let store = super::store::open(store.as_deref())?;
            let cids = roots
                .iter()
                .map(|r| resolve(&store, r))
                .collect::<Result<Vec<Cid>>>()?;
            let out = Output::create(Some(&output))?;
            let (out, _) = narfs_ipfs::export_store(&store, &cids, out)
                .with_context(|| format!("cannot export {}", roots.join(" ")))?;
            out.commit()
        }
    }
}

/// The root CID a NAME or CID designates: a recorded name, else a CID.
pub fn resolve(store: &narfs_store::Store, root: &str) -> Result<Cid> {
    match super::store::resolve(store, root)? {
        Some(rec) => Ok(rec.cid()?),
        None => root.parse().map_err(|_| {
            anyhow::anyhow!(
                "no root named {root:?} in the store {}",
                store.dir().display()
            )
        }),
    }
}
