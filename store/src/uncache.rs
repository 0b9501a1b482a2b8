//! A write session's values leave the page cache once they are durable: the pages
//! spanning a commit's new packs (and its blocks stored on their own in overflow
//! pages) are dropped with `POSIX_FADV_DONTNEED` right after the commit, whose sync
//! made them clean. Values lying near one another are dropped as one range (the
//! kernel drops only whole folios, and on this machine's kernel, 6.18, ext4 with large
//! folios, one value's pages alone dropped almost nothing), but not the stretches
//! between values far apart, nor a small value on its own ([`spans`]): tree pages the
//! writer has not mapped are read back from the disk when next needed, and one range
//! over all of a commit's values (a block stored on its own in freed pages early in
//! the file, the packs at its end) had an encode of a 569 MB NAR of 46,469 small
//! files read ~200 MB back from the disk (`/usr/bin/time` %I; ~130 MB by [`spans`])
//! and spend ~0.3 s more system time (docs/BENCHMARKS.md "freshsm").
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
        let mut ranges = Vec::new();
        let mut add = |r: Option<(u64, u64)>| ranges.extend(r);
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
        for (from, to) in spans(ranges) {
            view.uncache(from, to)?;
        }
        self.next_pack = self.next_pack.max(next);
        Ok(())
    }
}

/// Values this close are dropped as one range (the tree pages between them with
/// them): the largest folios ext4 makes here (2 MiB) span several packs, and a
/// folio is dropped only whole.
const GAP: u64 = 2 << 20;
/// A range of values smaller than this, far from others, is left: it would drop
/// little but the tree pages sharing its folios.
const MIN_SPAN: u64 = 256 << 10;

/// The ranges to drop for the values at `ranges` (byte ranges of the file): those
/// within [`GAP`] of one another merged, those then below [`MIN_SPAN`] left out.
fn spans(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(GAP) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out.retain(|(a, b)| b - a >= MIN_SPAN);
    out
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
    fn near_values_are_one_span_and_lone_small_ones_are_left() {
        let mib = 1u64 << 20;
        // Packs back to back at the end, one a little apart, a small block early on.
        let got = spans(vec![
            (300 * mib, 301 * mib),
            (8192, 16384),
            (100 * mib, 101 * mib),
            (101 * mib, 102 * mib),
            (103 * mib, 104 * mib),
        ]);
        assert_eq!(got, vec![(100 * mib, 104 * mib), (300 * mib, 301 * mib)]);
        // Small values near one another add up to a span.
        let small: Vec<(u64, u64)> = (0..64).map(|i| (i * 8192, i * 8192 + 4096)).collect();
        assert_eq!(spans(small), vec![(0, 63 * 8192 + 4096)]);
        assert_eq!(spans(Vec::new()), Vec::<(u64, u64)>::new());
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
