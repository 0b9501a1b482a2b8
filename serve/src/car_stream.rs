//! `/ipfs/<cid>?format=car`: the CAR of a DAG, walked from the store as it streams
//! (see [`crate::gateway`]).

use std::sync::mpsc;

use narfs_core::block::{BlockSource, DAG_PB, RAW as RAW_CODEC};
use narfs_core::car::CarWriter;
use narfs_core::dagpb::PBNode;
use narfs_core::error_chain;
use narfs_core::Cid;
use narfs_decoder::{fetch_many, BlockWrite};
use narfs_store::Store;

use crate::encoding::BodySink;

/// Most raw leaves fetched and verified together ([`narfs_decoder::fetch_many`]),
/// whatever [`RUN_BYTES`] allows: a leaf's real size is known only once fetched, so
/// the count bounds what lying `Tsize` claims can make a run hold (as the decoder's
/// own runs).
const RUN: usize = 16;
/// Bytes a run of leaves claims at most (always one leaf): 4 leaves of 256 KiB, the 4
/// lanes of the multi-buffer SHA-256 kernel. Measured against one leaf at a time
/// (docs/BENCHMARKS.md, the serve runs): ~7% less CPU per CAR; runs of 2 leaves with
/// the store's read-ahead hints cost ~7% more.
const RUN_BYTES: u64 = 1 << 20;
/// Blocks ahead of the walk the store hears of ([`BlockSource::will_need`]: it
/// decompresses their packs meanwhile), as the decoder's file reader does.
const HINT_BLOCKS: usize = 512;

/// A block the walk will write: its CID, its bytes when already fetched, the size its
/// parent's link claims, and whether the store was told of it.
struct Next {
    cid: Cid,
    block: Option<Vec<u8>>,
    claimed: u64,
    hinted: bool,
}

/// Writes the CAR of the DAG under `root` (whose verified block is `root_block`):
/// depth-first, pre-order, links in node order, each block once and verified. A run of
/// raw leaves (a file's chunks, a directory's one-leaf files) is fetched and verified
/// together, as `/nar/` does, on a thread of its own ([`Fetcher`]), up to `ahead` runs
/// ahead of the one being written (a stream with cores to itself: [`AHEAD`]), so that
/// verifying the next leaves overlaps sending these: one run at a time, the walk's
/// thread verified, then waited for the socket, then verified again: the large NAR's
/// CAR took ~28 % longer that way (docs/BENCHMARKS.md, serve3).
pub(crate) fn stream_car(
    store: &Store,
    root: Cid,
    root_block: Vec<u8>,
    all: bool,
    ahead: usize,
    w: BodySink,
) {
    let mut car = match CarWriter::new(w, &root) {
        Ok(c) => c,
        Err(_) => return, // the client is gone
    };
    let result = (|| -> Result<(), String> {
        let _lock = store.lock_shared().map_err(|e| error_chain(&e))?;
        // The fetcher ends (and the scope joins it) before the lock is let go.
        std::thread::scope(|scope| {
            let mut fetcher = Fetcher::start(scope, store, ahead);
            walk(store, root, root_block, all, &mut car, &mut fetcher)
        })
    })();
    match (result, car.finish()) {
        (Ok(()), Ok(w)) => {
            let _ = w.finish();
        }
        (Err(e), Ok(w)) => w.fail(e),
        (_, Err(_)) => {}
    }
}

/// Runs of raw leaves a [`crate::body::Shape::WIDE`] stream fetches beyond the one
/// being written: at most three runs ([`RUN_BYTES`] claimed each) held, 2 MiB more than
/// one run at a time. A narrow stream (many run at once, stalled ones among them)
/// fetches none ahead and holds what it did before.
pub(crate) const AHEAD: usize = 2;

/// A thread fetching (and verifying) runs of leaves in the order it is given them.
struct Fetcher {
    /// Runs fetched beyond the one being written, at most.
    ahead: usize,
    runs: mpsc::SyncSender<Vec<Cid>>,
    /// Each run sent, back in the order sent, with its blocks.
    fetched: mpsc::Receiver<(Vec<Cid>, Fetched)>,
    /// Runs sent and not yet taken back.
    pending: usize,
}

type Fetched = Vec<Result<Vec<u8>, narfs_decoder::DecodeError>>;

impl Fetcher {
    fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        store: &'scope Store,
        ahead: usize,
    ) -> Self {
        // Room for every run sent: neither end ever waits for the other's channel.
        let (runs, to_fetch) = mpsc::sync_channel::<Vec<Cid>>(ahead + 1);
        let (done, fetched) = mpsc::sync_channel(ahead + 1);
        scope.spawn(move || {
            for run in to_fetch {
                let got = fetch_many(store, &run, "");
                if done.send((run, got)).is_err() {
                    break;
                }
            }
        });
        Fetcher {
            ahead,
            runs,
            fetched,
            pending: 0,
        }
    }

    /// Queues `run` (the fetcher is gone only if it panicked).
    fn send(&mut self, run: Vec<Cid>) -> Result<(), String> {
        self.runs
            .send(run)
            .map_err(|_| "the leaf fetcher stopped".to_string())?;
        self.pending += 1;
        Ok(())
    }

    /// The oldest run sent and its blocks, once fetched.
    fn take(&mut self) -> Option<Result<(Vec<Cid>, Fetched), String>> {
        self.pending = self.pending.checked_sub(1)?;
        Some(
            self.fetched
                .recv()
                .map_err(|_| "the leaf fetcher stopped".to_string()),
        )
    }
}

/// The walk of [`stream_car`].
fn walk(
    store: &Store,
    root: Cid,
    root_block: Vec<u8>,
    all: bool,
    car: &mut CarWriter<BodySink>,
    fetcher: &mut Fetcher,
) -> Result<(), String> {
    let mut stack = vec![Next {
        cid: root,
        block: Some(root_block),
        claimed: 0,
        hinted: true,
    }];
    loop {
        // Runs already sent come first: they were taken off the top of the stack.
        if let Some(taken) = fetcher.take() {
            let (run, got) = taken?;
            // The next runs go to the fetcher before these leaves are written.
            while fetcher.pending < fetcher.ahead {
                match stack.last() {
                    Some(n) if n.block.is_none() && n.cid.codec() == RAW_CODEC => {
                        let n = stack.pop().expect("the stack's top");
                        let next = leaf_run(n.cid, n.claimed, &mut stack);
                        hint(store, &mut stack);
                        fetcher.send(next)?;
                    }
                    _ => break,
                }
            }
            for (cid, got) in run.iter().zip(got) {
                // A leaf already written (twice in the DAG) is skipped (`put_with`);
                // one written goes to the body whole, without a copy.
                let leaf = got.map_err(|e| error_chain(&e))?;
                car.put_with(cid, leaf, |w, leaf| w.write_block(leaf))
                    .map_err(|e| error_chain(&e))?;
            }
            continue;
        }
        let Some(next) = stack.pop() else {
            return Ok(());
        };
        let cid = next.cid;
        if car.contains(&cid) {
            continue;
        }
        let data = match next.block {
            Some(b) => b,
            None if cid.codec() == RAW_CODEC => {
                let run = leaf_run(cid, next.claimed, &mut stack);
                hint(store, &mut stack);
                fetcher.send(run)?;
                continue;
            }
            None => {
                hint(store, &mut stack);
                narfs_decoder::fetch(store, &cid, "").map_err(|e| error_chain(&e))?
            }
        };
        car.put(&cid, &data).map_err(|e| error_chain(&e))?;
        if all && cid.codec() == DAG_PB {
            let node =
                PBNode::decode(&data).map_err(|e| format!("block {cid}: {}", error_chain(&e)))?;
            stack.extend(node.links.iter().rev().map(|l| Next {
                cid: l.hash,
                block: None,
                claimed: l.tsize.unwrap_or(0),
                hinted: false,
            }));
        }
    }
}

/// The raw leaf `first` and the raw leaves the walk writes right after it (taken off
/// the top of `stack`), at most [`RUN`] and [`RUN_BYTES`] claimed (always one).
fn leaf_run(first: Cid, claimed: u64, stack: &mut Vec<Next>) -> Vec<Cid> {
    let mut run = vec![first];
    let mut claimed = claimed;
    while run.len() < RUN {
        match stack.last() {
            Some(n)
                if n.block.is_none()
                    && n.cid.codec() == RAW_CODEC
                    && claimed.saturating_add(n.claimed) <= RUN_BYTES =>
            {
                claimed += n.claimed;
                run.push(n.cid);
                stack.pop();
            }
            _ => break,
        }
    }
    run
}

/// Tells the store of the next [`HINT_BLOCKS`] blocks the walk will fetch, each once.
fn hint(store: &Store, stack: &mut [Next]) {
    let mut new = Vec::new();
    for n in stack.iter_mut().rev().take(HINT_BLOCKS) {
        if !n.hinted && n.block.is_none() {
            n.hinted = true;
            new.push(n.cid);
        }
    }
    store.will_need(&new);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_run_takes_the_raw_leaves_next_within_its_bounds() {
        use narfs_core::block::{cid_for, HashAlg};
        let leaf = |i: u8| cid_for(RAW_CODEC, HashAlg::Sha2_256, &[i]);
        let node = cid_for(DAG_PB, HashAlg::Sha2_256, &[0]);
        let next = |cid: Cid, claimed: u64| Next {
            cid,
            block: None,
            claimed,
            hinted: false,
        };
        // The stack pops from its end: leaves 1, 2, then a node, then leaf 3.
        let mut stack = vec![
            next(leaf(3), 10),
            next(node, 10),
            next(leaf(2), 10),
            next(leaf(1), 10),
        ];
        assert_eq!(
            leaf_run(leaf(0), 10, &mut stack),
            [leaf(0), leaf(1), leaf(2)]
        );
        assert_eq!(stack.len(), 2, "the node and what follows it stay");

        // At most RUN leaves, and RUN_BYTES claimed; the first leaf whatever it claims.
        let mut stack: Vec<Next> = (1..=40).rev().map(|i| next(leaf(i), 1)).collect();
        assert_eq!(leaf_run(leaf(0), 1, &mut stack).len(), RUN);
        let half = RUN_BYTES / 2;
        let mut stack = vec![
            next(leaf(3), half),
            next(leaf(2), half),
            next(leaf(1), half),
        ];
        assert_eq!(leaf_run(leaf(0), half, &mut stack), [leaf(0), leaf(1)]);
        let mut stack = vec![next(leaf(1), 1)];
        assert_eq!(leaf_run(leaf(0), u64::MAX, &mut stack), [leaf(0)]);
    }
}
