//! Decompressing packs ahead of the decoder, in the DAG's order, on the other core.
//!
//! Reading a packed block decompresses its whole pack (zstd -19 data: ~0.9 GB/s a
//! core here), and the decoder's threads used to wait for it: a decode from a packed
//! store kept ~1.1 of 2 cores busy. Two sources say which packs come next:
//!
//! - **a recorded pack order** ([`follow`]): `repack` records, per item, the packs
//!   its decode reads in first-use order (`crate::pack_order`); a decode by name hands
//!   it here, and the jobs keep the [`WINDOW`](crate::pack_order::WINDOW) packs after the one the readers are in
//!   (the cache's [`reading`](crate::pack_cache::Cache::reading)) decompressed, so
//!   the item's first packs and the first pack of each group its walk enters are
//!   ready before the walk gets there, which its hints cannot say in time.
//! - **hints**: the decoder knows which blocks it reads next (the leaves after the
//!   run it verifies, the first blocks of a directory's next entries) and says so
//!   ([`BlockSource::will_need`](narfs_core::block::BlockSource::will_need)). Those
//!   CIDs are queued ([`QUEUE`] at most; more are dropped: a hint is only a hint),
//!   their packs looked up in the block table (cheap: the slot says the pack).
//!
//! Jobs on rayon's pool ([`JOBS`] at most) decompress each pack not cached yet into
//! the shared cache ([`Cache::load_ahead`](crate::pack_cache::Cache::load_ahead)), the
//! order's window first, so that the reader finds it there, or waits for that load
//! rather than starting its own. At most [`AHEAD_PACKS`](crate::pack_cache::AHEAD_PACKS)
//! packs are ahead and unread; when they are, the jobs stop, and the next hint (the
//! decoder gives one per run of leaves, even an empty one) starts them again. Two
//! jobs, because one core decompresses zstd -19 packs at ~0.9 GB/s: a decode at 1 GB/s
//! needs both cores decompressing at times (a job finds the pack the other is loading
//! marked as loading, and goes on to the next). Nothing read ahead is trusted: every
//! block is cut from its pack and verified against its CID when read; a wrong order
//! costs decompressions, bounded by the window.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};

use narfs_core::Cid;

use crate::blocks::Blocks;
use crate::pack_cache::Ahead;
use crate::pack_order::Order;

/// Most hinted CIDs waiting to be looked at (36 bytes each at most).
pub(crate) const QUEUE: usize = 1024;
/// One hinted CID in this many is looked up. A lookup reads and checks two or three
/// pages of the block table (~13% of a decode's CPU when every leaf was looked up
/// twice, `perf`); the blocks of a file lie in runs within packs (4–128 blocks a
/// pack), so a sample finds nearly every pack, and a pack it misses is read when
/// asked for, as without hints.
const STRIDE: usize = 4;

/// Most read-ahead jobs at once: one per core of this machine's two.
pub(crate) const JOBS: usize = 2;

/// The hinted CIDs not looked at yet, and how many jobs are reading ahead.
#[derive(Debug, Default)]
pub(crate) struct Hints {
    state: Mutex<Queue>,
    idle: Condvar,
}

#[derive(Debug, Default)]
struct Queue {
    cids: VecDeque<Cid>,
    running: usize,
    order: Option<Order>,
}

/// Has the jobs read ahead the packs of `packs` (an item's recorded order, at most
/// [`MAX_PACKS`](crate::pack_order::MAX_PACKS)), a window ahead of the readers,
/// replacing any order given before; starts a job.
pub(crate) fn follow(blocks: &Arc<Blocks>, root: Cid, packs: Vec<u64>) {
    let mut q = blocks.hints.state.lock().unwrap_or_else(|p| p.into_inner());
    q.order = Some(Order::new(root, packs));
    drop(q);
    will_need(blocks, &[]);
}

/// Queues `cids` (those beyond [`QUEUE`] are dropped) and starts a read-ahead job
/// unless [`JOBS`] run, or the packs ahead fill their place already.
pub(crate) fn will_need(blocks: &Arc<Blocks>, cids: &[Cid]) {
    let mut q = blocks.hints.state.lock().unwrap_or_else(|p| p.into_inner());
    let room = QUEUE.saturating_sub(q.cids.len());
    q.cids.extend(cids.iter().take(room).copied());
    let reading = blocks.cache.reading.load(Ordering::Relaxed);
    let due = q.order.as_mut().is_some_and(|o| {
        o.see(reading);
        o.due()
    });
    if q.running >= JOBS || (q.cids.is_empty() && !due) || !blocks.cache.has_room_ahead() {
        return;
    }
    q.running += 1;
    drop(q);
    let blocks = Arc::clone(blocks);
    rayon::spawn(move || run(&blocks));
}

/// Waits until no read-ahead job runs (a job holds the store open).
pub(crate) fn wait_idle(blocks: &Blocks) {
    let mut q = blocks.hints.state.lock().unwrap_or_else(|p| p.into_inner());
    while q.running > 0 {
        q = blocks.hints.idle.wait(q).unwrap_or_else(|p| p.into_inner());
    }
}

/// What a job does next.
enum Next {
    /// A pack of the recorded order, its place, and the order's root.
    Ordered(usize, u64, Cid),
    Hinted(Cid),
}

/// A job: the recorded order's window, then the queued CIDs' packs, in order, loaded
/// ahead until both are done or the packs ahead are
/// [`AHEAD_PACKS`](crate::pack_cache::AHEAD_PACKS).
fn run(blocks: &Blocks) {
    // Should anything below panic, the next hint may start a job again.
    let _stopped = Stopped(&blocks.hints);
    // No snapshot (a damaged meta page): hints are dropped, reads report the damage.
    let snap = blocks.read_txn().ok();
    let mut last = None;
    let mut n = 0usize;
    let mut hinted = 0usize;
    // At most a queue's worth per job: a job fed as fast as it reads would otherwise
    // hold its snapshot (LMDB's pages, and no sight of newer packs) for a whole
    // decode; the next hint starts a job on a fresh one.
    while n < QUEUE {
        let next = {
            let mut q = blocks.hints.state.lock().unwrap_or_else(|p| p.into_inner());
            if snap.is_none() {
                q.cids.clear();
                q.order = None;
                return;
            }
            let reading = blocks.cache.reading.load(Ordering::Relaxed);
            let ordered = q.order.as_mut().and_then(|o| {
                o.see(reading);
                o.take().map(|(i, p)| Next::Ordered(i, p, o.root))
            });
            match ordered.or_else(|| q.cids.pop_front().map(Next::Hinted)) {
                Some(next) => next,
                None => return,
            }
        };
        n += 1;
        let reader = snap.as_ref().expect("checked above").reader();
        let (cid, pack) = match next {
            Next::Ordered(i, pack, root) => {
                if blocks.cache.load_ahead(pack, &reader.pack_loader(&root)) == Ahead::Full {
                    let mut q = blocks.hints.state.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(o) = q.order.as_mut().filter(|o| o.root == root) {
                        o.put_back(i);
                    }
                    return;
                }
                continue;
            }
            Next::Hinted(cid) => {
                hinted += 1;
                // A node (a file's root, a directory: the entry that ends a run of
                // leaves) is looked up always: it is alone, and seldom in the leaves'
                // pack before it.
                if hinted % STRIDE != 1 && cid.codec() == narfs_core::block::RAW {
                    continue;
                }
                // Not stored, not packed, or a damaged entry: the reader will say.
                let Some(pack) = reader.pack_of_cid(&cid) else {
                    continue;
                };
                (cid, pack)
            }
        };
        // Runs of blocks share a pack: one look at the cache for the run.
        if last == Some(pack) {
            continue;
        }
        last = Some(pack);
        if blocks.cache.load_ahead(pack, &reader.pack_loader(&cid)) == Ahead::Full {
            let mut q = blocks.hints.state.lock().unwrap_or_else(|p| p.into_inner());
            q.cids.push_front(cid);
            return;
        }
    }
}

/// Marks the job stopped when dropped, and wakes [`wait_idle`].
struct Stopped<'h>(&'h Hints);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        let mut q = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        q.running -= 1;
        drop(q);
        self.0.idle.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use narfs_core::block::{cid_for, BlockSink, BlockSource, HashAlg, RAW};

    use super::*;
    use crate::pack_cache::AHEAD_PACKS;
    use crate::{Options, Store};

    /// A store of small packs (16 KiB) holding `n` compressible blocks, one item.
    fn packed(dir: &std::path::Path, n: usize) -> (Store, Vec<Cid>) {
        let store = Store::open_with(
            dir,
            Options {
                pack_bytes: 16 << 10,
                ..Options::default()
            },
        )
        .unwrap();
        let mut sink = store.sink().unwrap();
        let cids = (0..n)
            .map(|i| {
                let b = format!("block {i} of a file read in order. ").repeat(60 + i % 5);
                let c = cid_for(RAW, HashAlg::Sha2_256, b.as_bytes());
                sink.put(&c, b.as_bytes()).unwrap();
                c
            })
            .collect();
        sink.finish(None).unwrap();
        (store, cids)
    }

    /// Each block's pack, in the order of `cids`, without repeats.
    fn pack_order(store: &Store, cids: &[Cid]) -> Vec<u64> {
        let snap = store.blocks.read_txn().unwrap();
        let mut ids: Vec<u64> = Vec::new();
        for c in cids {
            let id = snap.reader().pack_of_cid(c).expect("packed");
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    #[test]
    fn hinted_packs_are_decompressed_ahead_in_order_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (store, cids) = packed(dir.path(), 120);
        let order = pack_order(&store, &cids);
        assert!(order.len() > 2 * AHEAD_PACKS, "{} packs", order.len());
        store.will_need(&cids);
        wait_idle(&store.blocks);
        // The first packs the hints name, and no more than the bound, before any read.
        assert_eq!(store.packs_read().0, AHEAD_PACKS as u64);
        assert_eq!(store.blocks.cache.held().1, order[..AHEAD_PACKS]);
        // Reading them is all hits; each empty hint lets the job go on. Every pack is
        // decompressed once over the whole read.
        for c in &cids {
            let got = store.get_many_verified(std::slice::from_ref(c));
            assert!(matches!(&got[0], Ok(Some(_))), "{c}");
            store.will_need(&[]);
            wait_idle(&store.blocks);
        }
        assert_eq!(store.packs_read().0, order.len() as u64);
        assert_eq!(store.blocks.cache.ahead(), 0);
    }

    #[test]
    fn two_jobs_load_each_pack_once_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let (store, cids) = packed(dir.path(), 200);
        let order = pack_order(&store, &cids);
        // Hints in quick succession start a second job while the first runs.
        for chunk in cids.chunks(20) {
            store.will_need(chunk);
            assert!(store.blocks.hints.state.lock().unwrap().running <= JOBS);
        }
        wait_idle(&store.blocks);
        assert_eq!(store.packs_read().0, AHEAD_PACKS as u64);
        let held = store.blocks.cache.held().1;
        // Each job samples the CIDs it takes: a pack may be passed over, not more.
        assert!(
            held.iter().all(|p| order[..AHEAD_PACKS + 2].contains(p)),
            "{held:?} of {order:?}"
        );
        for c in &cids {
            let got = store.get_many_verified(std::slice::from_ref(c));
            assert!(matches!(&got[0], Ok(Some(_))), "{c}");
            store.will_need(&[]);
            store.will_need(&[]);
        }
        wait_idle(&store.blocks);
        // No pack decompressed twice, none left counted ahead.
        assert_eq!(store.packs_read().0, order.len() as u64);
        assert_eq!(store.blocks.cache.ahead(), 0);
    }

    #[test]
    fn a_node_hinted_is_looked_up_whatever_its_place_in_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(
            dir.path(),
            Options {
                pack_bytes: 16 << 10,
                ..Options::default()
            },
        )
        .unwrap();
        // Leaves, then a node (a dag-pb block) after them, in a later pack.
        let mut sink = store.sink().unwrap();
        let cids: Vec<Cid> = (0..40)
            .map(|i| {
                let b = format!("leaf {i} of a file read in order. ").repeat(60 + i % 5);
                let c = cid_for(RAW, HashAlg::Sha2_256, b.as_bytes());
                sink.put(&c, b.as_bytes()).unwrap();
                c
            })
            .collect();
        let node = b"a file's root node, stored last".repeat(70);
        let node_cid = cid_for(narfs_core::block::DAG_PB, HashAlg::Sha2_256, &node);
        sink.put(&node_cid, &node).unwrap();
        sink.finish(None).unwrap();
        let first = pack_order(&store, &cids[..1])[0];
        let node_pack = pack_order(&store, &[node_cid])[0];
        assert_ne!(first, node_pack);
        // Second in the queue, where a leaf would be passed over (one in STRIDE is
        // looked up): the node's pack is decompressed ahead too.
        store.will_need(&[cids[0], node_cid]);
        wait_idle(&store.blocks);
        assert_eq!(store.packs_read().0, 2);
        assert!(store.blocks.cache.held().1.contains(&node_pack));
        // A leaf in its place is passed over: only the first block's pack.
        let dir = tempfile::tempdir().unwrap();
        let (store, cids) = packed(dir.path(), 120);
        let order = pack_order(&store, &cids);
        let far = cids
            .iter()
            .rposition(|c| pack_order(&store, &[*c])[0] != order[0]);
        store.will_need(&[cids[0], cids[far.expect("two packs")]]);
        wait_idle(&store.blocks);
        assert_eq!(store.packs_read().0, 1);
    }

    #[test]
    fn wrong_hints_cost_nothing_and_a_damaged_pack_is_the_readers_error() {
        let dir = tempfile::tempdir().unwrap();
        let (store, cids) = packed(dir.path(), 40);
        // CIDs the store does not hold, and more than the queue takes: nothing read.
        let absent: Vec<Cid> = (0..2 * QUEUE)
            .map(|i| cid_for(RAW, HashAlg::Sha2_256, &i.to_le_bytes()))
            .collect();
        store.will_need(&absent);
        wait_idle(&store.blocks);
        assert_eq!(store.packs_read().0, 0);
        assert!(store.blocks.hints.state.lock().unwrap().cids.is_empty());
        // The first block's pack damaged: the hint fails quietly, the read loudly.
        let id = pack_order(&store, &cids)[0];
        let mut txn = store.blocks.write_txn().unwrap();
        let packs = *store.blocks.packs();
        packs
            .put(&mut txn, &crate::pack::key(id), b"\x01\x01garbage")
            .unwrap();
        store.blocks.commit(txn).unwrap();
        store.will_need(&cids[..1]);
        wait_idle(&store.blocks);
        assert_eq!(store.blocks.cache.ahead(), 0);
        let e = store.get_block(&cids[0]).unwrap_err();
        assert!(matches!(e, crate::Error::DamagedBlock { .. }), "{e}");
        // The other packs still read, verified.
        let got = store.get_many_verified(&cids[cids.len() - 1..]);
        assert!(matches!(&got[0], Ok(Some(_))));
    }
}
