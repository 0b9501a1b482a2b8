//! The blocks a fetch has just received, for the decoder that runs alongside it: the
//! NAR is written while blocks arrive, not in a second pass over the store, so a
//! fetched block is read back from the store only when it had to leave this window.
//!
//! The fetching side [`put`](Arrivals::put)s every verified block here as well as
//! into the store's write session; the decoder reads through [`StreamSource`], which
//! takes a block from the window, else from the store, else waits for it. The window
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

use narfs_core::block::{BlockSource, StoreError};
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
    changed: Condvar,
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
    /// Decoder threads waiting for a block not in the window.
    starving: usize,
    end: Option<End>,
    /// The decoder finished or failed: nothing more is kept.
    stopped: bool,
    /// It finished: the fetching side goes on (its session commits what comes).
    decoded: bool,
}

struct Entry {
    data: Vec<u8>,
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
    pub(crate) fn put(&self, cid: Cid, data: Vec<u8>) -> bool {
        let mut s = self.lock();
        if s.stopped {
            return s.decoded;
        }
        if !s.arrived.insert(cid) {
            return true;
        }
        while s.bytes > 0 && s.bytes + data.len() > WINDOW {
            if s.evict(true) || ((s.starving > 0 || s.stopped) && s.evict(false)) {
                continue;
            }
            if s.stopped {
                return s.decoded;
            }
            s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.bytes += data.len();
        s.unread.push_back(cid);
        s.window.insert(cid, Entry { data, read: false });
        drop(s);
        self.changed.notify_all();
        true
    }

    /// The fetching side ended: every block it received is committed (`ok`), or it
    /// failed and the decoder's reads of missing blocks fail too.
    pub(crate) fn end(&self, ok: bool) {
        self.lock().end = Some(if ok { End::Done } else { End::Failed });
        self.changed.notify_all();
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
        self.changed.notify_all();
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
                self.bytes -= e.data.len();
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
        let a = self.arrivals;
        loop {
            {
                let mut s = a.lock();
                if let Some(e) = s.window.get_mut(cid) {
                    let data = e.data.clone();
                    if !e.read {
                        e.read = true;
                        s.read.push_back(*cid);
                        drop(s);
                        a.changed.notify_all();
                    }
                    return Ok(Some(data));
                }
            }
            if let Some(data) = self.store.get_block(cid)? {
                return Ok(Some(data));
            }
            let mut s = a.lock();
            match s.end {
                // Committed by now; not there means not in the DAG the fetch saw.
                Some(End::Done) => return Ok(self.store.get_block(cid)?),
                Some(End::Failed) => {
                    return Err(StoreError::Io(std::io::Error::other(
                        "the fetch of this block failed",
                    )))
                }
                None => {}
            }
            if s.window.contains_key(cid) {
                continue;
            }
            // Not arrived yet, or left the window and not committed yet: either way
            // the fetching side must not wait for this reader.
            let wait = if s.arrived.contains(cid) {
                POLL
            } else {
                Duration::from_millis(50)
            };
            s.starving += 1;
            a.changed.notify_all();
            let (mut s, _) = a
                .changed
                .wait_timeout(s, wait)
                .unwrap_or_else(|p| p.into_inner());
            s.starving -= 1;
        }
    }
}
