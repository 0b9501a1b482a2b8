//! The blocks a fetch has just received, for the decoder that runs alongside it: the
//! NAR is written while blocks arrive, not in a second pass over the store, so a
//! fetched block is read back from the store only when it had to leave this window.
//!
//! The fetching side [`put`](Arrivals::put)s every verified block here as well as
//! into the store's write session; the decoder reads through [`StreamSource`], which
//! takes a block from the window (as the [`Verified`] the fetching side made: not
//! hashed again), else from the store (verified as read), else waits for it, woken by
//! the put of that block only. The window
//! is bounded in bytes ([`WINDOW`]). When it is full, blocks the decoder has already
//! read go first (a DAG may repeat a block: a later read finds it in the store); a
//! block not read yet goes only when the decoder waits for one not in the window (the
//! walk's order is not quite the decoder's), else the fetching side waits for the
//! decoder.
//! So memory stays bounded and neither side can wait for the other forever.
//!
//! A block that left the window may not be committed yet: a read of it polls the
//! store until it is (the write session commits everything before the fetching side
//! ends).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use narfs_core::block::{BlockSource, StoreError, Verified};
use narfs_core::Cid;
use narfs_store::Store;

/// Bytes of received blocks kept for the decoder.
const WINDOW: usize = 96 << 20;
/// How often a read of a block that arrived but is not in the window nor committed
/// looks at the store again.
const POLL: Duration = Duration::from_millis(2);

/// See the module doc.
#[derive(Default)]
pub(crate) struct Arrivals {
    state: Mutex<State>,
    /// A block some reader waits for arrived, or the fetching side ended.
    arrived: Condvar,
    /// The fetching side may put now: a block was read, a reader starves, or the
    /// decoder stopped.
    room: Condvar,
}

#[derive(Default)]
struct State {
    window: HashMap<Cid, Entry>,
    /// Not read yet, in arrival order (entries read or gone are skipped).
    unread: VecDeque<Cid>,
    /// Read, in the order first read.
    read: VecDeque<Cid>,
    bytes: usize,
    /// Every block put (those that left the window are in the store's session).
    arrived: HashSet<Cid>,
    /// Decoder threads waiting for a block not in the window, and those blocks (a
    /// put wakes readers only for a block one of them waits for).
    starving: usize,
    waited: HashMap<Cid, usize>,
    /// The fetching side waits for room in the window.
    full: bool,
    end: Option<End>,
    /// The decoder finished or failed: nothing more is kept.
    stopped: bool,
    /// It finished: the fetching side goes on (its session commits what comes).
    decoded: bool,
}

struct Entry {
    block: Verified,
    read: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// Every block the fetch received is committed.
    Done,
    Failed,
}

impl Arrivals {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a verified block (already put into the write session); false once the
    /// decoder has stopped.
    pub(crate) fn put(&self, block: Verified) -> bool {
        let (cid, len) = (*block.cid(), block.data().len());
        let mut s = self.lock();
        if s.stopped {
            return s.decoded;
        }
        if !s.arrived.insert(cid) {
            return true;
        }
        while s.bytes > 0 && s.bytes + len > WINDOW {
            if s.evict(true) || ((s.starving > 0 || s.stopped) && s.evict(false)) {
                continue;
            }
            if s.stopped {
                return s.decoded;
            }
            s.full = true;
            s = self.room.wait(s).unwrap_or_else(|p| p.into_inner());
            s.full = false;
        }
        s.bytes += len;
        s.unread.push_back(cid);
        s.window.insert(cid, Entry { block, read: false });
        let wake = s.waited.contains_key(&cid);
        drop(s);
        if wake {
            self.arrived.notify_all();
        }
        true
    }

    /// The fetching side ended: every block it received is committed (`ok`), or it
    /// failed and the decoder's reads of missing blocks fail too.
    pub(crate) fn end(&self, ok: bool) {
        self.lock().end = Some(if ok { End::Done } else { End::Failed });
        self.arrived.notify_all();
    }

    /// The decoder is done (`decoded`: it wrote the whole NAR) or failed: a waiting
    /// `put` returns, later ones keep nothing (and refuse after a failure). Whether
    /// the fetching side had failed before.
    pub(crate) fn stop(&self, decoded: bool) -> bool {
        let mut s = self.lock();
        s.stopped = true;
        s.decoded = decoded;
        s.window.clear();
        s.bytes = 0;
        let failed = s.end == Some(End::Failed);
        drop(s);
        self.room.notify_all();
        failed
    }
}

impl State {
    /// Drops the oldest block that was read (`read`) or not; whether one went.
    fn evict(&mut self, read: bool) -> bool {
        loop {
            let queue = if read {
                &mut self.read
            } else {
                &mut self.unread
            };
            let Some(cid) = queue.pop_front() else {
                return false;
            };
            if self.window.get(&cid).is_some_and(|e| e.read == read) {
                let e = self.window.remove(&cid).expect("looked at above");
                self.bytes -= e.block.data().len();
                return true;
            }
        }
    }
}

/// The decoder's view: the window, then the store, else a wait.
pub(crate) struct StreamSource<'a> {
    pub(crate) arrivals: &'a Arrivals,
    pub(crate) store: &'a Store,
}

impl BlockSource for StreamSource<'_> {
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        match self.get_verified(cid)? {
            Some(b) => Ok(Some(b.into_block_of(cid)?)),
            None => Ok(None),
        }
    }

    /// A block from the window as the fetching side verified it (not hashed again);
    /// one from the store verified as it is read.
    fn get_verified(&self, cid: &Cid) -> Result<Option<Verified>, StoreError> {
        let a = self.arrivals;
        // The store is asked first (a block it held before the fetch), then only for a
        // block that arrived and left the window, or after a wait that nothing ended
        // (another writer may have stored it, so the walk never asks for it): not on
        // every block that arrives meanwhile.
        let mut ask_store = true;
        loop {
            {
                let mut s = a.lock();
                if let Some(e) = s.window.get_mut(cid) {
                    let block = e.block.clone();
                    if !e.read {
                        e.read = true;
                        s.read.push_back(*cid);
                        if s.full {
                            drop(s);
                            a.room.notify_one();
                        }
                    }
                    return Ok(Some(block));
                }
                ask_store |= s.arrived.contains(cid);
            }
            if ask_store {
                if let Some(block) = self.store.get_verified(cid)? {
                    return Ok(Some(block));
                }
            }
            let mut s = a.lock();
            match s.end {
                // Committed by now; not there means not in the DAG the fetch saw.
                Some(End::Done) => return self.store.get_verified(cid),
                Some(End::Failed) => {
                    return Err(StoreError::Io(std::io::Error::other(
                        "the fetch of this block failed",
                    )))
                }
                None => {}
            }
            if s.window.contains_key(cid) {
                ask_store = false;
                continue;
            }
            // Not arrived yet, or left the window and not committed yet: either way
            // the fetching side must not wait for this reader.
            let arrived = s.arrived.contains(cid);
            let wait = if arrived {
                POLL
            } else {
                Duration::from_millis(50)
            };
            s.starving += 1;
            *s.waited.entry(*cid).or_default() += 1;
            if s.full {
                a.room.notify_one();
            }
            let (mut s, waited) = a
                .arrived
                .wait_timeout(s, wait)
                .unwrap_or_else(|p| p.into_inner());
            s.starving -= 1;
            if let Some(n) = s.waited.get_mut(cid) {
                *n -= 1;
                if *n == 0 {
                    s.waited.remove(cid);
                }
            }
            ask_store = arrived || waited.timed_out();
        }
    }
}
