//! A write session's values leave the page cache once they are durable: the pages
//! spanning a commit's new packs (and its blocks stored on their own in overflow
//! pages) are dropped with `POSIX_FADV_DONTNEED` right after the commit, whose sync
//! made them clean. One range over them all: the kernel drops only whole folios, and
//! on this machine's kernel (6.18, ext4 with large folios) one value's pages alone
//! dropped almost nothing. Tree pages the writer has mapped stay; others in the span
//! are read back from the disk when next needed.
//!
//! Why: an import writes far more than it will read back soon, and here a write into
//! pages new to the page cache cost 5–10 × one into pages it already held (1 GiB
//! written in 16 MiB runs, each synced: 5.7–8.5 s of system time and 14–22 s keeping
//! the pages, 0.5 s and 2.2–2.6 s dropping them; encode of the 1.29 GB NAR into a fresh
//! store: 2.4 s of system time → 0.6; docs/BENCHMARKS.md, branch `fresh`). Dropped
//! pages go back to the free lists, warm, for the next commit. Only a hint: the kernel
//! keeps pages that are dirty or mapped, and a reader reads them back from the disk.

use narfs_core::Cid;

use crate::blocks::Blocks;
use crate::lmdb_file::Value;
use crate::pack::{self, NEXT, PACKS};
use crate::Error;

/// What a session has dropped so far.
pub(crate) struct Uncache {
    /// Packs below this id were committed before the session or are dropped.
    next_pack: u64,
}

impl Uncache {
    /// Starts at the store's next pack id: packs older than the session are left alone.
    pub(crate) fn start(blocks: &Blocks) -> Result<Uncache, Error> {
        Ok(Uncache {
            next_pack: next_pack(blocks)?,
        })
    }

    /// After a commit (its pages synced by it): drops the packs committed since the
    /// last call (a concurrent writer's too: committed means synced) and the blocks
    /// `singles` stored on their own.
    pub(crate) fn committed(&mut self, blocks: &Blocks, singles: &[Cid]) -> Result<(), Error> {
        let snap = blocks.read_txn()?;
        let view = snap.view();
        // The span of the values: the kernel drops only whole folios (large ones
        // span several packs), so one range over them all, not one per value.
        let mut span: Option<(u64, u64)> = None;
        let mut add = |r: Option<(u64, u64)>| {
            if let Some((a, b)) = r {
                span = Some(span.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
            }
        };
        for cid in singles {
            if let Some(v) = view.get(&cid.to_bytes())? {
                add(view.overflow_range(&v)?);
            }
        }
        let next = match view.named(PACKS.as_bytes())? {
            Some(tree) => {
                let next = read_next(&view, tree)?;
                for id in self.next_pack..next {
                    if let Some(v) = view.get_in(tree, false, &pack::key(id))? {
                        add(view.overflow_range(&v)?);
                    }
                }
                next
            }
            None => self.next_pack,
        };
        if let Some((from, to)) = span {
            view.uncache(from, to)?;
        }
        self.next_pack = self.next_pack.max(next);
        Ok(())
    }
}

fn next_pack(blocks: &Blocks) -> Result<u64, Error> {
    let snap = blocks.read_txn()?;
    let view = snap.view();
    match view.named(PACKS.as_bytes())? {
        Some(tree) => read_next(&view, tree),
        None => Ok(0),
    }
}

fn read_next(
    view: &crate::lmdb_file::View<'_>,
    tree: crate::lmdb_file::Tree,
) -> Result<u64, Error> {
    match view.get_in(tree, false, NEXT)? {
        Some(Value::Inline(v)) => v
            .as_slice()
            .try_into()
            .map(u64::from_le_bytes)
            .map_err(|_| view.damaged("the pack counter is not 8 bytes")),
        Some(Value::Overflow { .. }) => Err(view.damaged("the pack counter is not 8 bytes")),
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use narfs_core::block::{cid_for, BlockSink, HashAlg, RAW};

    use super::*;
    use crate::Store;

    /// Compressible, distinct blocks of 64 KiB: `n` of them make `n / 16` packs.
    fn put_blocks(store: &Store, salt: &str, n: usize) -> Vec<(Cid, Vec<u8>)> {
        let blocks: Vec<(Cid, Vec<u8>)> = (0..n)
            .map(|i| {
                let b = format!("{salt} {i}: the quick brown fox. ")
                    .repeat(4000)
                    .into_bytes()[..64 << 10]
                    .to_vec();
                (cid_for(RAW, HashAlg::Sha2_256, &b), b)
            })
            .collect();
        let mut sink = store.sink().unwrap();
        for (cid, b) in &blocks {
            sink.put(cid, b).unwrap();
        }
        sink.finish(None).unwrap();
        blocks
    }

    #[test]
    fn it_follows_the_packs_each_commit_adds_and_the_blocks_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        let first = put_blocks(&store, "a", 40);
        let mut u = Uncache::start(&store.blocks).unwrap();
        let before = u.next_pack;
        assert!(before >= 2, "40 blocks of 64 KiB make packs: {before}");
        // A later session's packs are the ones it goes through, from where it started.
        let second = put_blocks(&store, "b", 40);
        u.committed(&store.blocks, &[]).unwrap();
        assert!(u.next_pack >= before + 2, "{before} -> {}", u.next_pack);
        assert_eq!(u.next_pack, next_pack(&store.blocks).unwrap());
        for (cid, b) in first.iter().chain(&second) {
            assert_eq!(store.get_block(cid).unwrap().as_deref(), Some(&b[..]));
        }
    }
}
