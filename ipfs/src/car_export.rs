//! Store → CAR: the DAGs under some roots as one CARv1, depth-first, pre-order, links
//! in node order, each block once and verified before it is written, streamed (one
//! block in memory at a time, plus the set of CIDs already written).

use std::io::Write;

use narfs_core::block::{BlockSource, DAG_PB};
use narfs_core::car::{CarWriteError, CarWriter};
use narfs_core::dagpb::{DagPbError, PBNode};
use narfs_core::Cid;
use narfs_decoder::{fetch, DecodeError};
use narfs_store::Store;

/// What [`export_car`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exported {
    /// Distinct blocks written.
    pub blocks: u64,
    /// Bytes written, header included.
    pub bytes: u64,
}

/// Why an export stopped (the output is then incomplete).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A block is missing from the source or does not match its CID.
    #[error(transparent)]
    Block(#[from] DecodeError),
    /// A dag-pb block does not parse, so its links are unknown.
    #[error("block {cid}")]
    Node {
        cid: Box<Cid>,
        #[source]
        source: DagPbError,
    },
    /// The output failed.
    #[error("cannot write the CAR")]
    Write(#[from] CarWriteError),
    /// The store could not be locked.
    #[error("the store failed")]
    Store(#[from] narfs_store::Error),
}

/// Writes the CARv1 of the DAGs under `roots` from `source` to `out`; returns `out`.
pub fn export_car<S: BlockSource, W: Write>(
    source: &S,
    roots: &[Cid],
    out: W,
) -> Result<(W, Exported), ExportError> {
    let mut car = CarWriter::with_roots(out, roots)?;
    let mut stack: Vec<Cid> = roots.iter().rev().copied().collect();
    while let Some(cid) = stack.pop() {
        if car.contains(&cid) {
            continue;
        }
        let data = fetch(source, &cid, "")?;
        car.put(&cid, &data)?;
        if cid.codec() == DAG_PB {
            let node = PBNode::decode(&data).map_err(|source| ExportError::Node {
                cid: Box::new(cid),
                source,
            })?;
            stack.extend(node.links.iter().rev().map(|l| l.hash));
        }
    }
    let exported = Exported {
        blocks: car.blocks_written() as u64,
        bytes: car.bytes_written(),
    };
    Ok((car.finish()?, exported))
}

/// [`export_car`] from a store, holding its lock shared so `gc` cannot run meanwhile.
pub fn export_store<W: Write>(
    store: &Store,
    roots: &[Cid],
    out: W,
) -> Result<(W, Exported), ExportError> {
    let _lock = store.lock_shared()?;
    export_car(store, roots, out)
}
