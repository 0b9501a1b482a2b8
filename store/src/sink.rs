//! A write session ([`Session`]) and its handles ([`StoreSink`], the [`BlockSink`] an
//! encoder writes one item into). A handle only remembers which CIDs its item has seen
//! and queues each new one (the queue is bounded in bytes, so `put` does not wait on the
//! disk). Packing threads skip blocks already stored and compress the rest, so
//! compression uses both cores; one committing thread (an LMDB write transaction belongs
//! to one thread) puts them into the block table and commits, each commit atomic (and
//! durable by the next commit's sync: one flush per commit, see
//! [`crate::blocks::Blocks::commit_unsynced`]; an item is told done only once its record
//! is durable). Between commits the table's write lock is free, so concurrent writers
//! take turns. The packed blocks waiting for the committer are bounded in bytes
//! ([`Credit`]), enough for the packers to go on while it writes and syncs.
//!
//! A handle told which blocks come next ([`BlockSink::will_put`]: the encoder's
//! leaves, a batch at a time) looks them up at once ([`crate::held`]), and their `put`
//! skips those the store holds: encoding into a store that holds the item copies,
//! queues and packs nothing but its record.
//!
//! With packs ([`crate::Options::pack_bytes`]), a handle gathers its item's new blocks
//! in write order until they make a pack's worth, and queues them as one job: a
//! packer compresses them into one pack (see [`crate::pack`]), the committer stores it
//! with an entry per block.
//!
//! Records ride the same pipeline: every queued block gets a sequence number, and a
//! handle's record waits in the committer until every block queued before it has been
//! put into a transaction (or found stored); it is then written into that transaction,
//! so a root is committed together with its DAG's last new blocks, never before them,
//! and with no file or sync of its own. Many items share a session (`narfs import`,
//! `encode` of many NARs): a commit carries every record that is ready, and commits when
//! `batch_bytes` are waiting or when records are ready and nothing else is (group
//! commit: while one sync runs, the next commit's items pile up).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use narfs_core::block::{BlockSink, StoreError};
use narfs_core::Cid;

use crate::blocks::{Blocks, Packed, Packer};
use crate::credit::Credit;
use crate::gathered::Gathered;
use crate::held::{held, Key};
use crate::lmdb_file::Leaves;
use crate::lock::LockGuard;
use crate::pack::{NewPack, MAX_PACK_BLOCKS};
use crate::{Error, Options, RootRecord, Store};

/// Bytes of blocks queued for the packers before `put` waits: two pack jobs, one for
/// each packer. Every queued block is a copy of the encoder's, and so is a packed
/// block the committer has not put yet: with 4 MiB here and [`PACKED`] at 8, an
/// encode of a 46,537-file NAR into a fresh store peaked at 78–88 MiB of anonymous
/// memory, with 2 MiB and 2 at 62–71 MiB (three runs each, alternating, load 16–18;
/// docs/BENCHMARKS.md, the encode runs).
const QUEUE_BYTES: usize = 2 << 20;
/// Room a pending pack's buffer keeps beyond `pack_bytes`: the largest block of the
/// default chunkers (fixed 256 KiB, FastCDC at most 256 KiB), not any block below
/// `pack_bytes` (twice it): the reservation stays near what the buffer holds. (Page
/// faults of an encode of the large NAR, `perf stat`, varied 69,000–160,000 between
/// runs of one binary at load 17–19: no difference between the two was measurable.)
const LAST_BLOCK_ROOM: usize = 256 << 10;
/// Bytes of packed blocks (compressed) waiting for the committer (see [`Credit`]).
/// They let the packers go on while the committer writes and syncs a commit (3–20 ms
/// here, in which two packers compress ~10 MiB); with room for two messages only, the
/// packers, and behind them the encoder, stopped at every commit. Compressed bytes are
/// ~1/3 of the blocks' on the large corpus: this holds ~6 MiB of blocks. (3 MiB put
/// the small-file NAR's peak RssAnon ~4 MiB above main's, at load 13–17.)
const PACKED_BYTES: usize = 1 << 20;
/// Messages waiting for the committer, whatever their bytes (a backstop: records and
/// skipped blocks take no bytes).
const PACKED: usize = 256;

/// What a finished session newly stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Blocks not in the store before (a block a concurrent writer also stored is
    /// counted by both).
    pub new_blocks: u64,
    /// Their bytes, uncompressed.
    pub new_bytes: u64,
    /// Their bytes on disk (after compression).
    pub new_stored_bytes: u64,
}

impl Written {
    /// The line `narfs encode` shows on a terminal: of the `blocks` (`bytes`) a DAG
    /// has, how many were new in the store.
    pub fn summary(&self, blocks: u64, bytes: u64) -> String {
        format!(
            "{blocks} blocks ({bytes} bytes), of which new in the store: {} blocks ({} bytes, {} on disk)",
            self.new_blocks, self.new_bytes, self.new_stored_bytes
        )
    }
}

impl Written {
    pub(crate) fn add(&mut self, bytes: u64, stored: u64) {
        self.new_blocks += 1;
        self.new_bytes += bytes;
        self.new_stored_bytes += stored;
    }
}

/// Told once an item's record is durable (or the session failed): with what the
/// item newly stored.
pub type Done = Box<dyn FnOnce(Result<Written, Error>) + Send>;

pub(crate) struct Shared {
    pub(crate) blocks: Arc<Blocks>,
    pub(crate) options: Options,
    /// What the whole session newly stored.
    pub(crate) total: Mutex<Written>,
    /// The session was dropped unfinished: commit nothing more.
    pub(crate) abandoned: AtomicBool,
    next_item: AtomicU64,
    /// Bytes of packed blocks sent to the committer and not taken yet.
    pub(crate) packed: Credit,
    /// Leaf pages the session's lookups read, kept for its next ones.
    leaves: Leaves,
}

/// What packers take from the queue.
enum Job {
    Block {
        seq: u64,
        item: u64,
        cid: Cid,
        data: Vec<u8>,
    },
    /// Blocks of one item to store as a pack (those not stored yet).
    Pack {
        seq: u64,
        item: u64,
        blocks: Gathered,
    },
    Record(Box<RecordJob>),
}

/// An item's end: its record (`None`: the item was abandoned), to be written once
/// every block queued before it (sequence numbers below `after`) is.
pub(crate) struct RecordJob {
    pub(crate) after: u64,
    pub(crate) item: u64,
    pub(crate) record: Option<RootRecord>,
    pub(crate) done: Done,
}

/// What the committer receives.
pub(crate) enum Msg {
    Block {
        seq: u64,
        item: u64,
        cid: Cid,
        block: Packed,
    },
    /// A block found stored already.
    Skipped {
        seq: u64,
    },
    /// A pack job's new blocks: a pack, and blocks stored on their own.
    Pack {
        seq: u64,
        item: u64,
        pack: Option<NewPack>,
        singles: Vec<(Cid, Packed)>,
    },
    Record(Box<RecordJob>),
}

impl Msg {
    /// The packed bytes it carries (what [`Credit`] counts).
    pub(crate) fn bytes(&self) -> usize {
        match self {
            Msg::Block { block, .. } => block.bytes.len(),
            Msg::Pack { pack, singles, .. } => {
                pack.as_ref().map_or(0, |p| p.value.len())
                    + singles.iter().map(|(_, b)| b.bytes.len()).sum::<usize>()
            }
            Msg::Skipped { .. } | Msg::Record(_) => 0,
        }
    }
}

/// The blocks waiting for a writer, bounded by [`QUEUE_BYTES`].
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
    room: Condvar,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    bytes: usize,
    /// The next block's sequence number.
    seq: u64,
    /// No more jobs will come; writers drain the rest.
    closed: bool,
    /// A writer failed: everyone stops.
    failed: bool,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a block, waiting while the queue is full; false if the writers stopped.
    fn push_block(&self, item: u64, cid: Cid, data: Vec<u8>) -> bool {
        self.push(data.len(), |seq| Job::Block {
            seq,
            item,
            cid,
            data,
        })
    }

    /// Queues blocks to be packed together, as [`Queue::push_block`].
    fn push_pack(&self, item: u64, blocks: Gathered) -> bool {
        self.push(blocks.size(), |seq| Job::Pack { seq, item, blocks })
    }

    fn push(&self, bytes: usize, job: impl FnOnce(u64) -> Job) -> bool {
        let mut q = self.lock();
        while q.bytes >= QUEUE_BYTES && !q.failed && !q.closed {
            q = self.room.wait(q).unwrap_or_else(|p| p.into_inner());
        }
        if q.failed || q.closed {
            return false;
        }
        q.bytes += bytes;
        let seq = q.seq;
        q.seq += 1;
        q.jobs.push_back(job(seq));
        drop(q);
        self.ready.notify_one();
        true
    }

    /// Queues an item's end behind every block queued so far; gives it back if the
    /// writers stopped.
    fn push_record(&self, item: u64, record: Option<RootRecord>, done: Done) -> Result<(), Done> {
        let mut q = self.lock();
        if q.failed || q.closed {
            return Err(done);
        }
        let after = q.seq;
        q.jobs.push_back(Job::Record(Box::new(RecordJob {
            after,
            item,
            record,
            done,
        })));
        drop(q);
        self.ready.notify_one();
        Ok(())
    }

    /// The next job; `None` once closed and drained, or failed.
    fn pop(&self) -> Option<Job> {
        let mut q = self.lock();
        loop {
            if q.failed {
                return None;
            }
            if let Some(job) = q.jobs.pop_front() {
                q.bytes -= match &job {
                    Job::Block { data, .. } => data.len(),
                    Job::Pack { blocks, .. } => blocks.size(),
                    Job::Record(_) => 0,
                };
                drop(q);
                self.room.notify_one();
                return Some(job);
            }
            if q.closed {
                return None;
            }
            q = self.ready.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn close(&self, failed: bool) {
        let mut q = self.lock();
        q.closed = true;
        q.failed |= failed;
        let dropped: Vec<Job> = if failed {
            q.jobs.drain(..).collect()
        } else {
            Vec::new()
        };
        if failed {
            q.bytes = 0;
        }
        drop(q);
        self.ready.notify_all();
        self.room.notify_all();
        fail_jobs(dropped);
    }
}

/// Tells the records among `jobs` that they were not written.
fn fail_jobs(jobs: Vec<Job>) {
    for j in jobs {
        if let Job::Record(r) = j {
            (r.done)(Err(Error::Writer("the write session stopped")));
        }
    }
}

/// A write session into a [`Store`], shared by the items written through its handles
/// ([`Session::sink`]); see the module doc. [`Session::close`] waits until everything
/// is committed; dropping it unclosed commits nothing more.
pub struct Session {
    shared: Arc<Shared>,
    queue: Arc<Queue>,
    packers: Vec<JoinHandle<Result<(), Error>>>,
    committer: Option<JoinHandle<Result<(), Error>>>,
    closed: bool,
    _lock: LockGuard,
}

impl Session {
    pub(crate) fn start(store: &Store, zstd_level: Option<i32>) -> Result<Session, Error> {
        let lock = store.lock_shared()?;
        let options = Options {
            zstd_level,
            ..store.options()
        };
        let shared = Arc::new(Shared {
            blocks: store.blocks.clone(),
            options,
            total: Mutex::new(Written::default()),
            abandoned: AtomicBool::new(false),
            next_item: AtomicU64::new(0),
            packed: Credit::new(PACKED_BYTES),
            leaves: Leaves::default(),
        });
        let queue = Arc::new(Queue::default());
        let (tx, rx) = sync_channel::<Msg>(PACKED);
        let packers = (0..options.writers.max(1))
            .map(|_| {
                let (shared, queue, tx) = (shared.clone(), queue.clone(), tx.clone());
                std::thread::spawn(move || {
                    let r = pack(&shared, &queue, &tx);
                    if r.is_err() {
                        queue.close(true);
                    }
                    r
                })
            })
            .collect();
        let committer = {
            let (shared, queue) = (shared.clone(), queue.clone());
            std::thread::spawn(move || {
                let r = crate::committer::run(&shared, rx);
                if r.is_err() {
                    queue.close(true);
                }
                r
            })
        };
        Ok(Session {
            shared,
            queue,
            packers,
            committer: Some(committer),
            closed: false,
            _lock: lock,
        })
    }

    /// A handle writing one item into this session.
    pub fn sink(&self) -> StoreSink {
        let o = self.shared.options;
        StoreSink {
            shared: self.shared.clone(),
            queue: self.queue.clone(),
            item: self.shared.next_item.fetch_add(1, Ordering::Relaxed),
            pack_bytes: match o.zstd_level {
                Some(_) => o.pack_bytes.min(crate::pack::MAX_PACK) as usize,
                None => 0,
            },
            pending: Gathered::default(),
            seen: Seen::default(),
            held: Vec::new(),
            next_held: 0,
            own: None,
            ended: false,
        }
    }

    /// Waits until every block and record queued is committed; what the session
    /// newly stored, or the first error.
    pub fn close(mut self) -> Result<Written, Error> {
        self.closed = true;
        self.join()?;
        Ok(*self.shared.total.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Closes the queue and joins the packers, then the committer (which ends when the
    /// last packer drops its sender); the first error.
    fn join(&mut self) -> Result<(), Error> {
        self.queue.close(false);
        let threads = self.packers.drain(..).chain(self.committer.take());
        let mut first = None;
        for w in threads {
            let r = w
                .join()
                .unwrap_or_else(|_| Err(Error::Writer("a writer thread panicked")));
            if let (Err(e), None) = (r, &first) {
                first = Some(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.closed {
            // Blocks not committed yet go with the session; committed ones stay for `gc`.
            self.shared.abandoned.store(true, Ordering::Relaxed);
            self.queue.close(true);
            let _ = self.join();
        }
    }
}

/// The CIDs an item has queued, kept small: a set of `Cid`s costs ~100 bytes a block
/// (6 MiB of an encode of 46,000 small files), a CID's bytes zero-padded to
/// [`crate::held::SHORT`] 41. CID bytes are self-delimiting (their lengths are in
/// them), so padding cannot make two CIDs equal; a longer CID is kept whole.
#[derive(Default)]
struct Seen {
    short: HashSet<[u8; crate::held::SHORT]>,
    long: HashSet<Vec<u8>>,
}

impl Seen {
    /// Whether `key` is new.
    fn insert(&mut self, key: Key) -> bool {
        match key {
            Key::Short(k, _) => self.short.insert(k),
            Key::Long(k) => self.long.insert(k),
        }
    }

    fn clear(&mut self) {
        self.short = HashSet::new();
        self.long = HashSet::new();
    }
}

/// One item's writer into a [`Session`]: its blocks, then its record.
pub struct StoreSink {
    shared: Arc<Shared>,
    queue: Arc<Queue>,
    item: u64,
    /// Blocks below this size are packed (0: none is).
    pack_bytes: usize,
    /// New blocks gathered for the next pack.
    pending: Gathered,
    seen: Seen,
    /// The announced blocks ([`BlockSink::will_put`]) found stored, in the order
    /// announced, and the next one to come: its `put` skips it without a copy.
    held: Vec<Cid>,
    next_held: usize,
    /// The session of a handle made by [`Store::sink`], which it ends.
    own: Option<Session>,
    ended: bool,
}

impl StoreSink {
    /// A handle in a session of its own.
    pub(crate) fn start(store: &Store, zstd_level: Option<i32>) -> Result<StoreSink, Error> {
        let session = Session::start(store, zstd_level)?;
        let mut sink = session.sink();
        sink.own = Some(session);
        Ok(sink)
    }

    /// Waits until every block of the item is committed and (if given) the root is
    /// recorded with them, its `new_*` fields filled in; what the item newly stored.
    /// The record is stored sealed, as by [`crate::Store::record_root`], whose contract on
    /// its NarHash and NarSize holds here too.
    pub fn finish(self, record: Option<RootRecord>) -> Result<Written, Error> {
        let (tx, rx) = std::sync::mpsc::channel();
        let queued = self.finish_then(
            record,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        queued?;
        rx.recv()
            .unwrap_or(Err(Error::Writer("the write session stopped")))
    }

    /// Queues the item's end and returns at once: `done` is told, from the committing
    /// thread, once the record (if any) is durable with every block of the item.
    /// A handle with a session of its own waits for that session to close.
    pub fn finish_then(mut self, record: Option<RootRecord>, done: Done) -> Result<(), Error> {
        self.ended = true;
        self.seen.clear();
        let flushed = self.flush();
        let queued = match flushed {
            true => self.queue.push_record(self.item, record, done),
            false => Err(done),
        };
        if let Err(done) = queued {
            let cause = self.own.take().map(Session::close);
            let err = match cause {
                Some(Err(e)) => e,
                _ => Error::Writer("the write session stopped"),
            };
            done(Err(Error::Writer("the write session stopped")));
            return Err(err);
        }
        match self.own.take() {
            Some(session) => session.close().map(|_| ()),
            None => Ok(()),
        }
    }
}

impl Drop for StoreSink {
    fn drop(&mut self) {
        if !self.ended {
            // The item is abandoned: its committed blocks stay for `gc`, its counts go.
            let _ = self.queue.push_record(self.item, None, Box::new(|_| ()));
        }
        // A session of its own is dropped unclosed: it commits nothing more.
    }
}

impl StoreSink {
    /// Queues the blocks gathered for a pack; false if the writers stopped.
    fn flush(&mut self) -> bool {
        match self.pending.is_empty() {
            true => true,
            false => self
                .queue
                .push_pack(self.item, std::mem::take(&mut self.pending)),
        }
    }
}

impl BlockSink for StoreSink {
    fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), StoreError> {
        if self.held.get(self.next_held) == Some(cid) {
            self.next_held += 1;
            return Ok(());
        }
        if !self.seen.insert(Key::of(cid)) {
            return Ok(());
        }
        let queued = if data.len() < self.pack_bytes {
            // A pack ends with the block that takes it to `pack_bytes`: its buffer is
            // made with room for one block of the default chunkers beyond, so it does
            // not grow (a copy of it all) unless a larger block comes last.
            if self.pending.is_empty() {
                let room = self.pack_bytes + self.pack_bytes.min(LAST_BLOCK_ROOM);
                self.pending = Gathered::with_capacity(room);
            }
            self.pending.push(*cid, data);
            let full =
                self.pending.size() >= self.pack_bytes || self.pending.len() >= MAX_PACK_BLOCKS;
            !full || self.flush()
        } else {
            self.queue.push_block(self.item, *cid, data.to_vec())
        };
        if queued {
            return Ok(());
        }
        // A writer stopped: its error is the cause.
        if let Some(session) = self.own.take() {
            session.close()?;
        }
        Err(Error::Writer("the writer threads stopped").into())
    }

    /// Looks the announced blocks up together, on the caller's thread, through one
    /// snapshot: the `put`s of those the store holds then neither copy nor queue them
    /// (on a store holding the item, that copy and the packers' lookups cost more
    /// than building the DAG). A store holding few of them is probed only
    /// ([`crate::held::PROBE`]); the packers look the rest up as ever. A lookup that
    /// fails is left to them too, which report it.
    fn will_put(&mut self, cids: &[Cid]) {
        self.held.clear();
        self.next_held = 0;
        let keys: Vec<Key> = cids.iter().map(Key::of).collect();
        let Ok(found) = held(&self.shared.blocks, &self.shared.leaves, &keys, true) else {
            return;
        };
        let found = cids.iter().zip(found).filter(|(_, f)| *f == Some(true));
        self.held.extend(found.map(|(c, _)| *c));
    }
}

/// A packing thread: skips blocks already stored, compresses the rest.
fn pack(s: &Shared, queue: &Queue, tx: &SyncSender<Msg>) -> Result<(), Error> {
    let o = &s.options;
    let mut packer = Packer::new(o.zstd_level, o.pack_codec, o.lz4_acceleration);
    while let Some(job) = queue.pop() {
        let msg = match job {
            Job::Record(r) => Msg::Record(r),
            Job::Pack {
                seq,
                item,
                mut blocks,
            } => {
                {
                    let keys: Vec<Key> = blocks.blocks().iter().map(|(c, _)| Key::of(c)).collect();
                    let stored = held(&s.blocks, &s.leaves, &keys, false)?;
                    if stored.contains(&Some(true)) {
                        blocks.retain(|i| stored[i] != Some(true));
                    }
                }
                match blocks.is_empty() {
                    true => Msg::Skipped { seq },
                    false => {
                        let (pack, singles) = packer.pack_many(blocks);
                        Msg::Pack {
                            seq,
                            item,
                            pack,
                            singles,
                        }
                    }
                }
            }
            Job::Block {
                seq,
                item,
                cid,
                data,
            } => {
                let stored = {
                    let txn = s.blocks.read_txn()?;
                    s.blocks.has(&txn, &cid)?
                };
                if stored {
                    Msg::Skipped { seq }
                } else {
                    let block = packer.pack(data);
                    Msg::Block {
                        seq,
                        item,
                        cid,
                        block,
                    }
                }
            }
        };
        let sent = match s.packed.take(msg.bytes()) {
            true => tx.send(msg).map_err(|e| e.0),
            false => Err(msg),
        };
        if let Err(msg) = sent {
            // The committer stopped: its error is the cause.
            if let Msg::Record(r) = msg {
                (r.done)(Err(Error::Writer("the write session stopped")));
            }
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "sink_tests.rs"]
mod tests;
