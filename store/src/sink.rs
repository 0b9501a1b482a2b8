//! A write session: the [`BlockSink`] the encoder writes into. The encoder's thread only
//! remembers which CIDs it has seen and queues each new one (the queue is bounded in
//! bytes, so `put` does not wait on the disk). Packing threads skip blocks already
//! stored and compress the rest, so compression uses both cores; one committing thread
//! (an LMDB write transaction belongs to one thread) puts them into the block table and
//! commits every `batch_bytes`, each commit atomic and durable. Between commits the
//! table's write lock is free, so concurrent encoders take turns. The root record is
//! written last, after the final commit.

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use narfs_core::block::{BlockSink, StoreError};
use narfs_core::Cid;

use crate::blocks::{Blocks, Packed, Packer};
use crate::lock::LockGuard;
use crate::{roots, Error, Options, RootRecord, Store};

/// Bytes of blocks queued for the packers before `put` waits.
const QUEUE_BYTES: usize = 64 << 20;
/// Packed blocks waiting for the committer (at most 256 × 4 MiB; typically 64 MiB).
const PACKED: usize = 256;
/// A commit takes at most this many batches' worth of blocks already waiting.
const GROUP: u64 = 16;

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

struct Shared {
    blocks: Arc<Blocks>,
    session: PathBuf,
    dir: PathBuf,
    options: Options,
    new_blocks: AtomicU64,
    new_bytes: AtomicU64,
    new_stored: AtomicU64,
    /// The session was dropped unfinished: commit nothing more.
    abandoned: AtomicBool,
}

type Job = (Cid, Vec<u8>);

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
    /// No more jobs will come; writers drain the rest.
    closed: bool,
    /// A writer failed: everyone stops.
    failed: bool,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `job`, waiting while the queue is full; false if the writers stopped.
    fn push(&self, job: Job) -> bool {
        let mut q = self.lock();
        while q.bytes >= QUEUE_BYTES && !q.failed {
            q = self.room.wait(q).unwrap_or_else(|p| p.into_inner());
        }
        if q.failed || q.closed {
            return false;
        }
        q.bytes += job.1.len();
        q.jobs.push_back(job);
        drop(q);
        self.ready.notify_one();
        true
    }

    /// The next job; `None` once closed and drained, or failed.
    fn pop(&self) -> Option<Job> {
        let mut q = self.lock();
        loop {
            if q.failed {
                return None;
            }
            if let Some(job) = q.jobs.pop_front() {
                q.bytes -= job.1.len();
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
        if failed {
            q.jobs.clear();
            q.bytes = 0;
        }
        drop(q);
        self.ready.notify_all();
        self.room.notify_all();
    }
}

/// A write session into a [`Store`]; see the module doc.
pub struct StoreSink {
    shared: Arc<Shared>,
    seen: HashSet<Cid>,
    queue: Arc<Queue>,
    packers: Vec<JoinHandle<Result<(), Error>>>,
    committer: Option<JoinHandle<Result<(), Error>>>,
    _lock: LockGuard,
}

impl StoreSink {
    pub(crate) fn start(store: &Store, zstd_level: Option<i32>) -> Result<StoreSink, Error> {
        let lock = store.lock_shared()?;
        let dir = store.dir().to_path_buf();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let session = dir
            .join("tmp")
            .join(format!("{}-{nanos}", std::process::id()));
        let options = Options {
            zstd_level,
            ..store.options()
        };
        let shared = Arc::new(Shared {
            blocks: store.blocks.clone(),
            session,
            dir,
            options,
            new_blocks: AtomicU64::new(0),
            new_bytes: AtomicU64::new(0),
            new_stored: AtomicU64::new(0),
            abandoned: AtomicBool::new(false),
        });
        let queue = Arc::new(Queue::default());
        let (tx, rx) = sync_channel::<(Cid, Packed)>(PACKED);
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
                let r = commit(&shared, rx);
                if r.is_err() {
                    queue.close(true);
                }
                r
            })
        };
        Ok(StoreSink {
            shared,
            seen: HashSet::new(),
            queue,
            packers,
            committer: Some(committer),
            _lock: lock,
        })
    }

    /// Waits until every block is committed, then (if given) records the root with its
    /// `new_*` fields filled in.
    pub fn finish(mut self, record: Option<RootRecord>) -> Result<Written, Error> {
        self.join()?;
        let s = &self.shared;
        let written = Written {
            new_blocks: s.new_blocks.load(Ordering::Relaxed),
            new_bytes: s.new_bytes.load(Ordering::Relaxed),
            new_stored_bytes: s.new_stored.load(Ordering::Relaxed),
        };
        if let Some(mut rec) = record {
            rec.new_blocks = written.new_blocks;
            rec.new_bytes = written.new_bytes;
            fs::create_dir_all(&s.session).map_err(Error::io(&s.session))?;
            roots::add(&s.dir, &s.session, &rec)?;
        }
        Ok(written)
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

impl Drop for StoreSink {
    fn drop(&mut self) {
        // Blocks not committed yet go with the session; committed ones stay for `gc`.
        self.shared.abandoned.store(true, Ordering::Relaxed);
        self.queue.close(true);
        let _ = self.join();
        if self.shared.session.exists() {
            let _ = fs::remove_dir_all(&self.shared.session);
        }
    }
}

impl BlockSink for StoreSink {
    fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), StoreError> {
        if !self.seen.insert(*cid) {
            return Ok(());
        }
        if self.queue.push((*cid, data.to_vec())) {
            return Ok(());
        }
        // A writer stopped: its error is the cause.
        self.join()?;
        Err(Error::Writer("the writer threads stopped").into())
    }
}

/// A packing thread: skips blocks already stored, compresses the rest.
fn pack(s: &Shared, queue: &Queue, tx: &SyncSender<(Cid, Packed)>) -> Result<(), Error> {
    let mut packer = Packer::new(s.options.zstd_level);
    while let Some((cid, data)) = queue.pop() {
        let stored = {
            let txn = s.blocks.read_txn()?;
            s.blocks.has(&txn, &cid)?
        };
        if stored {
            continue;
        }
        if tx.send((cid, packer.pack(data))).is_err() {
            // The committer stopped: its error is the cause.
            return Ok(());
        }
    }
    Ok(())
}

/// The committing thread: puts packed blocks into the table, one write transaction per
/// batch, taken once the batch is full, so the write lock is held only while putting
/// and syncing. A batch is `batch_bytes`, or more when more blocks are already waiting
/// (up to [`GROUP`] batches): while the disk keeps up, small commits start writing
/// early; when it falls behind, blocks pile up and each sync carries more of them.
fn commit(s: &Shared, rx: Receiver<(Cid, Packed)>) -> Result<(), Error> {
    let mut batch: Vec<(Cid, Packed)> = Vec::new();
    let mut bytes = 0u64;
    let mut open = true;
    while open {
        match rx.recv() {
            Ok(p) => {
                bytes += p.1.bytes.len() as u64;
                batch.push(p);
            }
            Err(_) => open = false,
        }
        if open && bytes < s.options.batch_bytes {
            continue;
        }
        while open && bytes < GROUP * s.options.batch_bytes {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.1.bytes.len() as u64;
                    batch.push(p);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        if batch.is_empty() || s.abandoned.load(Ordering::Relaxed) {
            batch.clear();
            continue;
        }
        let mut txn = s.blocks.write_txn()?;
        for (cid, block) in batch.drain(..) {
            if s.blocks.put(&mut txn, &cid, &block)? {
                s.new_blocks.fetch_add(1, Ordering::Relaxed);
                s.new_bytes.fetch_add(block.len, Ordering::Relaxed);
                s.new_stored
                    .fetch_add(block.bytes.len() as u64, Ordering::Relaxed);
            }
        }
        s.blocks.commit(txn)?;
        bytes = 0;
    }
    Ok(())
}
