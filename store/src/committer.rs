//! The committing thread of a write session: puts packed blocks into the block table
//! and writes each record once every block queued before it is in (see `sink`). One
//! write transaction per commit, taken once the commit's content is gathered, so the
//! write lock is held only while putting and syncing. A commit syncs its pages but not
//! its meta page (`Blocks::commit_unsynced`): the next commit's sync makes it durable,
//! and with nothing more to commit right now the committer syncs; a record's item is
//! told done only after that (measured: two flushes per commit, the meta page's through
//! LMDB's `O_DSYNC` descriptor, had the packers and the encoder behind them wait at
//! every commit). A commit is `batch_bytes` of
//! blocks or [`MAX_ENTRIES`] blocks, or more when more are already waiting (up to
//! [`GROUP`] batches), or less
//! when records are ready and [`RECORD_INTERVAL`] has passed since the last commit: an
//! item is durable within about that time, and small items share commits (measured on
//! 20,000 small items: one commit whenever a record was ready and nothing else waited
//! gave 1,048 items/s at load 12, this 1,476 at load 17).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use narfs_core::Cid;

use crate::blocks::Packed;
use crate::pack::NewPack;
use crate::sink::{Done, Msg, RecordJob, Shared, Written};
use crate::uncache::Uncache;
use crate::Error;

/// A commit takes at most this many batches' worth of blocks already waiting. One,
/// because a commit's blocks are held twice until it ends (here and as LMDB's dirty
/// pages, which it mallocs without `MDB_WRITEMAP`, with the B-tree pages each new
/// key dirties): at 16 an encode into a fresh store peaked at 79–133 MiB of
/// anonymous memory (heaptrack: 21 MiB of it LMDB's pages).
const GROUP: u64 = 1;
/// A commit holds at most about this many new blocks: each new key dirties a leaf
/// page of the block table (random keys: a different page each), so on a NAR of
/// small files a `batch_bytes` commit held ~2,000 keys and ~8 MiB of dirty pages.
const MAX_ENTRIES: usize = 256;
/// Records ready wait at most this long after the last commit for more to join them
/// (a commit costs two syncs and rewrites the B-tree paths it touched, whatever it
/// carries: small items share one at most every this often).
const RECORD_INTERVAL: Duration = Duration::from_millis(20);

/// Blocks stored on their own from this many bytes on are dropped from the page cache
/// after their commit (smaller ones may sit in tree pages; see [`Uncache`]).
const UNCACHE_ABOVE: usize = 4096;

/// What the committer holds between commits.
#[derive(Default)]
struct State {
    /// What the next commit puts, with its item, in the order it was queued.
    batch: Vec<(u64, Entry)>,
    bytes: u64,
    /// Blocks in `batch`.
    entries: usize,
    /// Every sequence number below `low` was taken into `batch`.
    low: u64,
    /// Messages that came before one with a lower sequence number (two packers may
    /// swap them), held until it comes (at most the packers' jobs in flight). So blocks
    /// go into the table in the order they were queued, and a block that two items
    /// share is new for the earlier one, whatever the packers' timing.
    early: BTreeMap<u64, Msg>,
    records: Vec<RecordJob>,
    /// What each unfinished item newly stored so far.
    items: HashMap<u64, Written>,
    /// Items whose record is committed but not yet durable (see
    /// [`crate::blocks::Blocks::commit_unsynced`]), told once a sync has passed.
    unsynced: Vec<(Done, Written)>,
    /// Drops what each commit wrote from the page cache (`None`: not started yet, or
    /// the store could not say where its packs start).
    uncache: Option<Uncache>,
}

/// One put of a commit.
enum Entry {
    Block(Cid, Packed),
    Pack(NewPack),
}

impl State {
    fn take(&mut self, s: &Shared, msg: Msg) {
        s.packed.give(msg.bytes());
        let seq = match &msg {
            Msg::Block { seq, .. } | Msg::Skipped { seq } | Msg::Pack { seq, .. } => *seq,
            Msg::Record(_) => {
                self.accept(msg);
                return;
            }
        };
        if seq != self.low {
            self.early.insert(seq, msg);
            return;
        }
        self.accept(msg);
        self.low += 1;
        while let Some(m) = self.early.remove(&self.low) {
            self.accept(m);
            self.low += 1;
        }
    }

    fn accept(&mut self, msg: Msg) {
        match msg {
            Msg::Block {
                item, cid, block, ..
            } => {
                self.bytes += block.bytes.len() as u64;
                self.entries += 1;
                self.batch.push((item, Entry::Block(cid, block)));
            }
            Msg::Skipped { .. } => {}
            Msg::Pack {
                item,
                pack,
                singles,
                ..
            } => {
                self.entries += singles.len();
                for (cid, block) in singles {
                    self.bytes += block.bytes.len() as u64;
                    self.batch.push((item, Entry::Block(cid, block)));
                }
                if let Some(p) = pack {
                    self.bytes += p.value.len() as u64;
                    self.entries += p.header.blocks.len();
                    self.batch.push((item, Entry::Pack(p)));
                }
            }
            Msg::Record(r) => self.records.push(*r),
        }
    }

    fn any_ready(&self) -> bool {
        self.records.iter().any(|r| r.after <= self.low)
    }

    /// Tells every waiting record that it will not be written, and every committed
    /// one not known durable that it may not be.
    fn fail(&mut self) {
        for r in self.records.drain(..) {
            (r.done)(Err(Error::Writer("the write session failed")));
        }
        for (done, _) in self.unsynced.drain(..) {
            done(Err(Error::Writer("the write session failed")));
        }
    }

    /// The records committed so far are durable: tells them.
    fn durable(&mut self) {
        for (done, written) in self.unsynced.drain(..) {
            done(Ok(written));
        }
    }

    /// Makes the records committed so far durable, and tells them.
    fn sync(&mut self, s: &Shared) -> Result<(), Error> {
        if !self.unsynced.is_empty() {
            s.blocks.sync()?;
            self.durable();
        }
        Ok(())
    }
}

pub(crate) fn run(s: &Shared, rx: Receiver<Msg>) -> Result<(), Error> {
    // Before the first blocks arrive: the first commit's check of the whole file,
    // off the path from an item's last block to its record.
    s.blocks.check_ahead();
    let mut st = State {
        uncache: Uncache::start(&s.blocks).ok(),
        ..State::default()
    };
    let r = commit_loop(s, &rx, &mut st);
    s.packed.close();
    st.fail();
    r
}

fn commit_loop(s: &Shared, rx: &Receiver<Msg>, st: &mut State) -> Result<(), Error> {
    let batch = s.options.batch_bytes;
    let mut open = true;
    let mut last = Instant::now();
    while open {
        // Committed records wait for the next commit's sync while more is coming;
        // with nothing to do now, they are synced and told.
        let now = match st.unsynced.is_empty() {
            true => Err(TryRecvError::Empty),
            false => rx.try_recv(),
        };
        let got = match now {
            Ok(m) => Ok(m),
            Err(TryRecvError::Disconnected) => Err(true),
            Err(TryRecvError::Empty) => {
                st.sync(s)?;
                // Records waiting: no longer than until the next commit is due.
                match st.any_ready() {
                    true => rx
                        .recv_timeout(RECORD_INTERVAL.saturating_sub(last.elapsed()))
                        .map_err(|e| e == RecvTimeoutError::Disconnected),
                    false => rx.recv().map_err(|_| true),
                }
            }
        };
        match got {
            Ok(m) => st.take(s, m),
            Err(disconnected) => open = !disconnected,
        }
        // Whatever else is waiting joins this commit, up to GROUP batches.
        while open && st.bytes < GROUP * batch && st.entries < MAX_ENTRIES {
            match rx.try_recv() {
                Ok(m) => st.take(s, m),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        let due = last.elapsed() >= RECORD_INTERVAL && st.any_ready();
        if open && st.bytes < batch && st.entries < MAX_ENTRIES && !due {
            continue;
        }
        if s.abandoned.load(Ordering::Relaxed) {
            st.batch.clear();
            st.bytes = 0;
            st.entries = 0;
            st.fail();
            continue;
        }
        commit(s, st)?;
        last = Instant::now();
    }
    st.sync(s)
}

/// One write transaction: the batch's blocks, then every ready record.
fn commit(s: &Shared, st: &mut State) -> Result<(), Error> {
    let ready: Vec<RecordJob> = {
        let low = st.low;
        let (mut ready, wait): (Vec<RecordJob>, _) =
            st.records.drain(..).partition(|r| r.after <= low);
        st.records = wait;
        // In the order they were queued (two packers may have swapped them).
        ready.sort_by_key(|r| (r.after, r.item));
        ready
    };
    if st.batch.is_empty() && ready.is_empty() {
        return Ok(());
    }
    let mut txn = match s.blocks.write_txn() {
        Ok(t) => t,
        Err(e) => {
            st.records.extend(ready);
            return Err(e);
        }
    };
    let mut total = Written::default();
    // Blocks stored on their own in overflow pages, dropped from the cache after.
    let mut singles = Vec::new();
    for (item, entry) in std::mem::take(&mut st.batch) {
        let written = st.items.entry(item).or_default();
        let put = match entry {
            Entry::Block(cid, block) => s.blocks.put(&mut txn, &cid, &block).map(|new| {
                if new && block.bytes.len() >= UNCACHE_ABOVE {
                    singles.push(cid);
                }
                if new {
                    let stored = block.bytes.len() as u64;
                    total.add(block.len, stored);
                    written.add(block.len, stored);
                }
            }),
            Entry::Pack(p) => s.blocks.put_pack(&mut txn, &p).map(|new| {
                let (stored, size) = (p.value.len() as u64, u64::from(p.header.size).max(1));
                for ((_, len), _) in p.header.blocks.iter().zip(new).filter(|(_, n)| *n) {
                    let len = u64::from(*len);
                    total.add(len, stored * len / size);
                    written.add(len, stored * len / size);
                }
            }),
        };
        if let Err(e) = put {
            // Told by `run` that they were not written.
            st.records.extend(ready);
            return Err(e);
        }
    }
    st.bytes = 0;
    st.entries = 0;
    let mut told = Vec::with_capacity(ready.len());
    let mut told_records = 0;
    for r in ready {
        let written = st.items.remove(&r.item).unwrap_or_default();
        if let Some(mut rec) = r.record {
            told_records += 1;
            rec.new_blocks = written.new_blocks;
            rec.new_bytes = written.new_bytes;
            if let Err(e) = s.blocks.tables().add(&mut txn, &rec, true) {
                (r.done)(Err(Error::Writer("the write session failed")));
                for (done, _) in told {
                    let done: Done = done;
                    done(Err(Error::Writer("the write session failed")));
                }
                return Err(e);
            }
        }
        told.push((r.done, written));
    }
    let wrote = total.new_blocks > 0 || told_records > 0;
    if let Err(e) = s.blocks.commit_unsynced(txn) {
        for (done, _) in told {
            done(Err(Error::Writer("the write session failed")));
        }
        return Err(e);
    }
    // A commit that wrote synced the file first: the earlier commits' meta pages too.
    if wrote {
        st.durable();
        // Only a hint: a failure costs cache, not data.
        if let Some(u) = st.uncache.as_mut() {
            let _ = u.committed(&s.blocks, &singles);
        }
    }
    st.unsynced.extend(told);
    {
        let mut t = s.total.lock().unwrap_or_else(|p| p.into_inner());
        t.new_blocks += total.new_blocks;
        t.new_bytes += total.new_bytes;
        t.new_stored_bytes += total.new_stored_bytes;
    }
    Ok(())
}
