//! `narfs publish --ipfs-api URL NAME|CID…`: each root's DAG streamed as a CAR into a
//! Kubo node's `dag/import` and pinned there (the work is in `narfs_ipfs::Kubo`);
//! also what `encode --ipfs-api` and `import --ipfs-api` call once their roots are
//! recorded.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use narfs_core::Cid;
use narfs_ipfs::{Kubo, Published};
use narfs_store::Store;

use crate::io::Output;

#[derive(clap::Args, Debug)]
pub struct PublishArgs {
    /// The node's RPC API, e.g. http://127.0.0.1:5001 (Kubo's `Addresses.API`).
    #[arg(long, value_name = "URL")]
    pub ipfs_api: String,
    /// The blockstore (default: $NARFS_STORE, else the platform data dir).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Roots: names recorded in the store, or CIDs.
    #[arg(value_name = "NAME|CID", required = true)]
    pub roots: Vec<String>,
}

pub fn run(args: PublishArgs) -> Result<()> {
    let store = super::store::open(args.store.as_deref())?;
    let kubo = connect(&args.ipfs_api, &args.roots.join(" "))?;
    let mut out = Output::create(None)?;
    for name in &args.roots {
        let root = super::car::resolve(&store, name)?;
        let published = narfs_ipfs::publish_store(&kubo, &store, &root)
            .with_context(|| what(name, &root, &kubo))?;
        writeln!(out, "{root} {}", report(&published))?;
        out.flush()?;
    }
    out.commit()
}

/// `encode --ipfs-api`: publishes the root just encoded, from the store if there is
/// one, else from the CAR file just written; prints what the node did on stderr.
pub fn after_encode(
    api: &str,
    store: Option<&Store>,
    car: Option<&Path>,
    root: &Cid,
) -> Result<()> {
    let kubo = connect(api, &root.to_string())?;
    let published = match (store, car) {
        (Some(store), _) => narfs_ipfs::publish_store(&kubo, store, root),
        (None, Some(car)) => {
            let car = narfs_core::car::CarFile::open(car)
                .with_context(|| format!("cannot read {}", car.display()))?;
            kubo.publish(&car, root)
        }
        (None, None) => anyhow::bail!("nothing holds the blocks of {root} to publish"),
    }
    .with_context(|| what(&root.to_string(), root, &kubo))?;
    eprintln!(
        "narfs: published {root} to {}: {}",
        kubo.api(),
        report(&published)
    );
    Ok(())
}

/// `import --ipfs-api`: publishes each root the import left in the store (imported
/// now or found present) from the store, one line each on stderr; stops at the first
/// that fails. The import's records stay whatever happens here.
pub fn after_import(api: &str, store: &Store, roots: &[narfs_import::Recorded]) -> Result<()> {
    let kubo = Kubo::connect(api).with_context(|| {
        format!(
            "cannot publish the {} root(s) the import recorded (they stay recorded: \
             `narfs publish` them later)",
            roots.len()
        )
    })?;
    for r in roots {
        let published = narfs_ipfs::publish_store(&kubo, store, &r.root)
            .with_context(|| what(&r.store_path, &r.root, &kubo))?;
        eprintln!(
            "narfs: published {} ({}) to {}: {}",
            r.store_path,
            r.root,
            kubo.api(),
            report(&published)
        );
    }
    Ok(())
}

fn connect(api: &str, roots: &str) -> Result<Kubo> {
    Kubo::connect(api).with_context(|| format!("cannot publish {roots}"))
}

/// The context of a failed root: "cannot publish NAME (CID) to URL".
fn what(name: &str, root: &Cid, kubo: &Kubo) -> String {
    if *name == root.to_string() {
        format!("cannot publish {root} to {}", kubo.api())
    } else {
        format!("cannot publish {name} ({root}) to {}", kubo.api())
    }
}

/// One line of what the node did.
fn report(p: &Published) -> String {
    if p.already_pinned {
        return "already pinned by the node: nothing sent".into();
    }
    format!(
        "pinned: sent {} blocks ({} bytes of CAR), the node read {} blocks ({} bytes)",
        p.sent.blocks, p.sent.bytes, p.node_blocks, p.node_block_bytes
    )
}
