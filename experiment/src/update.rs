//! The update cost: what a client that holds the earlier versions of a package (the
//! items before this one with the same [`Item::package`](crate::Item)) must fetch for
//! the next one, under one strategy: the blocks of the new version's DAG it does not
//! hold, raw, each compressed on its own (per-block `Content-Encoding: zstd`), and as
//! one CAR stream of all of them compressed whole (one request for the set of new
//! blocks, zstd -3), and with a delta (the CAR of the new inner nodes, compressed, and
//! each changed file compressed against the same path's file in the version before,
//! see [`crate::delta`]). Requests are counted both ways: one per missing block (a
//! trustless gateway's `?format=raw`), or one for the CAR.

use std::collections::{HashMap, HashSet};
use std::io;

use narfs_core::block::{MemoryStore, RAW};
use narfs_core::car::CarWriter;
use narfs_core::Cid;

use crate::compress::ItemBlocks;
use crate::corpus::Item;
use crate::runner::ZSTD_LEVEL;
use crate::seed::Count;

/// What one update moves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Update {
    /// Blocks the client lacks (= requests, one per block).
    pub blocks: u64,
    /// Their bytes.
    pub raw_bytes: u64,
    /// Σ of each block compressed alone (raw where that is not smaller).
    pub block_zstd_bytes: u64,
    /// One CARv1 stream of the blocks (header with the root, then each block),
    /// compressed as one zstd -3 stream.
    pub car_zstd_bytes: u64,
    /// The same CAR with a delta: its inner (dag-pb) blocks compressed as one zstd -3
    /// stream, plus each file the earlier versions lack compressed at zstd -3 against
    /// the previous version's file at the same path (a measurement: narfs does not
    /// send deltas yet).
    pub delta_bytes: u64,
}

impl Update {
    pub(crate) fn add(&mut self, other: &Update) {
        self.blocks += other.blocks;
        self.raw_bytes += other.raw_bytes;
        self.block_zstd_bytes += other.block_zstd_bytes;
        self.car_zstd_bytes += other.car_zstd_bytes;
        self.delta_bytes += other.delta_bytes;
    }
}

/// The update of every item that has an earlier version (None for the first of a
/// package), in corpus order. `block_sizes` is each block's stored size under
/// per-block zstd, `file_deltas` each item's changed files compressed against the
/// version before ([`crate::delta`]).
pub(crate) fn measure(
    corpus: &[Item],
    roots: &[Cid],
    blocks: &[ItemBlocks],
    store: &MemoryStore,
    block_sizes: &HashMap<Cid, u64>,
    file_deltas: &[Option<u64>],
) -> io::Result<Vec<Option<Update>>> {
    let mut held: HashMap<&str, HashSet<Cid>> = HashMap::new();
    let mut out = Vec::with_capacity(corpus.len());
    for (((item, root), b), delta) in corpus.iter().zip(roots).zip(blocks).zip(file_deltas) {
        let update = match held.get(item.package.as_str()) {
            None => None,
            Some(have) => {
                let missing: Vec<&Cid> = b.all.iter().filter(|c| !have.contains(c)).collect();
                let mut u = cost(root, &missing, store, block_sizes)?;
                u.delta_bytes += delta.unwrap_or(u.raw_bytes);
                Some(u)
            }
        };
        out.push(update);
        held.entry(&item.package)
            .or_default()
            .extend(b.all.iter().copied());
    }
    Ok(out)
}

fn cost(
    root: &Cid,
    missing: &[&Cid],
    store: &MemoryStore,
    block_sizes: &HashMap<Cid, u64>,
) -> io::Result<Update> {
    let mut u = Update {
        blocks: missing.len() as u64,
        ..Update::default()
    };
    let z = zstd::stream::Encoder::new(Count(0), ZSTD_LEVEL)?;
    let mut car = CarWriter::new(z, root).map_err(io::Error::other)?;
    // The inner nodes alone: what a delta CAR carries besides the files' deltas.
    let z = zstd::stream::Encoder::new(Count(0), ZSTD_LEVEL)?;
    let mut inner = CarWriter::new(z, root).map_err(io::Error::other)?;
    for cid in missing {
        let data = store.get_ref(cid).expect("a block of the DAG is stored");
        u.raw_bytes += data.len() as u64;
        u.block_zstd_bytes += block_sizes.get(*cid).copied().unwrap_or(data.len() as u64);
        car.put(cid, data).map_err(io::Error::other)?;
        if cid.codec() != RAW {
            inner.put(cid, data).map_err(io::Error::other)?;
        }
    }
    u.car_zstd_bytes = car.finish().map_err(io::Error::other)?.finish()?.0;
    u.delta_bytes = inner.finish().map_err(io::Error::other)?.finish()?.0;
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use narfs_core::block::{cid_for, BlockSink, RAW};

    fn item(name: &str, package: &str) -> Item {
        Item {
            name: name.into(),
            path: name.into(),
            size: 0,
            package: package.into(),
        }
    }

    #[test]
    fn only_what_the_earlier_versions_lack() {
        let mut store = MemoryStore::new();
        let mut put = |data: &[u8]| {
            let cid = cid_for(RAW, Default::default(), data);
            store.put(&cid, data).unwrap();
            cid
        };
        let (a, b, c) = (put(&[1; 1000]), put(&[2; 2000]), put(b"other package"));
        let d = put(&[3; 4000]);
        let corpus = [item("p-1", "p"), item("q-1", "q"), item("p-2", "p")];
        let blocks = [
            ItemBlocks {
                new: vec![a, b],
                all: vec![a, b],
            },
            ItemBlocks {
                new: vec![c],
                all: vec![c, a],
            },
            ItemBlocks {
                new: vec![d],
                all: vec![a, c, d],
            },
        ];
        let sizes: HashMap<Cid, u64> = [(a, 10), (b, 20), (c, 13), (d, 40)].into();
        let deltas = [None, None, Some(7)];
        let u = measure(&corpus, &[a, c, d], &blocks, &store, &sizes, &deltas).unwrap();
        assert_eq!(u[0], None);
        assert_eq!(u[1], None, "the first version of q is no update");
        let u = u[2].clone().unwrap();
        // p-2 needs c (held only by q's client) and d.
        assert_eq!((u.blocks, u.raw_bytes, u.block_zstd_bytes), (2, 4013, 53));
        assert!(
            u.car_zstd_bytes > 0 && u.car_zstd_bytes < u.raw_bytes,
            "{u:?}"
        );
        // No inner node is new: the delta is the files' part and an empty CAR's header.
        assert!(u.delta_bytes > 7 && u.delta_bytes < 7 + 100, "{u:?}");
    }
}
