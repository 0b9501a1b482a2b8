//! A write session: the [`BlockSink`] the encoder writes into. The encoder's thread only
//! remembers which CIDs it has seen and queues each new one (the queue is bounded in
//! bytes, so `put` does not wait on the disk); writer threads skip blocks already
//! stored, compress, create the shard directory, write the files under the session's
//! `tmp/` directory and start their writeback at once; so hashing and writing use both
//! cores and the disk works while the encoder does. Every `batch_bytes` and at the end,
//! the file system is synced and the files renamed to their CIDs (in parallel); the
//! root record is written last, after a final sync.

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use narfs_core::block::{BlockSink, StoreError};
use narfs_core::Cid;

use crate::blocks::{self, Packer, ZST};
use crate::lock::{sync_fs, LockGuard};
use crate::{roots, Error, Options, RootRecord, Store};

/// Bytes of blocks queued for the writers before `put` waits.
const QUEUE_BYTES: usize = 64 << 20;

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

struct Shared {
    dir: PathBuf,
    session: PathBuf,
    options: Options,
    /// Files written in the session directory, not yet renamed: (temporary, final).
    pending: Mutex<(Vec<(PathBuf, PathBuf)>, u64)>,
    new_blocks: AtomicU64,
    new_bytes: AtomicU64,
    new_stored: AtomicU64,
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
    workers: Vec<JoinHandle<Result<(), Error>>>,
    _lock: LockGuard,
}

impl StoreSink {
    pub(crate) fn start(store: &Store) -> Result<StoreSink, Error> {
        let lock = store.lock_shared()?;
        let dir = store.dir().to_path_buf();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let session = dir
            .join("tmp")
            .join(format!("{}-{nanos}", std::process::id()));
        fs::create_dir_all(&session).map_err(Error::io(&session))?;
        let options = store.options();
        let shared = Arc::new(Shared {
            dir,
            session,
            options,
            pending: Mutex::new((Vec::new(), 0)),
            new_blocks: AtomicU64::new(0),
            new_bytes: AtomicU64::new(0),
            new_stored: AtomicU64::new(0),
        });
        let queue = Arc::new(Queue::default());
        let workers = (0..options.writers.max(1))
            .map(|_| {
                let (shared, queue) = (shared.clone(), queue.clone());
                std::thread::spawn(move || {
                    let r = worker(&shared, &queue);
                    if r.is_err() {
                        queue.close(true);
                    }
                    r
                })
            })
            .collect();
        Ok(StoreSink {
            shared,
            seen: HashSet::new(),
            queue,
            workers,
            _lock: lock,
        })
    }

    /// Waits for the writers, publishes every block, syncs, and then (if given) records
    /// the root with its `new_*` fields filled in.
    pub fn finish(mut self, record: Option<RootRecord>) -> Result<Written, Error> {
        self.join()?;
        let s = &self.shared;
        publish(s, take_pending(s), s.options.writers.max(1))?;
        sync_fs(&s.dir)?;
        let written = Written {
            new_blocks: s.new_blocks.load(Ordering::Relaxed),
            new_bytes: s.new_bytes.load(Ordering::Relaxed),
            new_stored_bytes: s.new_stored.load(Ordering::Relaxed),
        };
        if let Some(mut rec) = record {
            rec.new_blocks = written.new_blocks;
            rec.new_bytes = written.new_bytes;
            roots::add(&s.dir, &s.session, &rec)?;
        }
        Ok(written)
    }

    fn join(&mut self) -> Result<(), Error> {
        self.queue.close(false);
        let mut first = None;
        for w in self.workers.drain(..) {
            let r = w
                .join()
                .unwrap_or_else(|_| Err(Error::Writer("a writer thread panicked".into())));
            if let (Err(e), None) = (r, &first) {
                first = Some(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for StoreSink {
    fn drop(&mut self) {
        let _ = self.join();
        // Unpublished blocks go with the session; published ones stay for `gc`.
        let _ = fs::remove_dir_all(&self.shared.session);
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
        Err(Error::Writer("the writer threads stopped".into()).into())
    }
}

fn worker(s: &Shared, queue: &Queue) -> Result<(), Error> {
    let mut packer = Packer::new(s.options.zstd_level);
    let mut shards = HashSet::new();
    while let Some((cid, data)) = queue.pop() {
        if blocks::find(&s.dir, &cid).is_some() {
            continue;
        }
        let mut dest = blocks::path(&s.dir, &cid);
        blocks::ensure_shard(&dest, &mut shards)?;
        let bytes = match packer.pack(&data) {
            Some(c) => {
                dest.as_mut_os_string().push(ZST);
                c
            }
            None => data.as_slice(),
        };
        let tmp = s.session.join(dest.file_name().unwrap_or_default());
        blocks::write_new(&tmp, bytes).map_err(Error::io(&tmp))?;
        let stored = bytes.len() as u64;
        s.new_blocks.fetch_add(1, Ordering::Relaxed);
        s.new_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        s.new_stored.fetch_add(stored, Ordering::Relaxed);
        let batch = {
            let mut p = s.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.0.push((tmp, dest));
            p.1 += stored;
            if p.1 >= s.options.batch_bytes {
                std::mem::take(&mut *p).0
            } else {
                Vec::new()
            }
        };
        publish(s, batch, 1)?;
    }
    Ok(())
}

fn take_pending(s: &Shared) -> Vec<(PathBuf, PathBuf)> {
    std::mem::take(&mut *s.pending.lock().unwrap_or_else(|p| p.into_inner())).0
}

/// Syncs the written files, then renames them to their CIDs on `threads` threads.
fn publish(s: &Shared, batch: Vec<(PathBuf, PathBuf)>, threads: usize) -> Result<(), Error> {
    if batch.is_empty() {
        return Ok(());
    }
    sync_fs(&s.dir)?;
    let rename_all = |part: &[(PathBuf, PathBuf)]| -> Result<(), Error> {
        part.iter()
            .try_for_each(|(tmp, dest)| rename_into(tmp, dest))
    };
    if threads < 2 || batch.len() < 64 {
        return rename_all(&batch);
    }
    let per = batch.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = batch
            .chunks(per)
            .map(|part| scope.spawn(move || rename_all(part)))
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(Error::Writer("a rename thread panicked".into())))
        })
    })
}

fn rename_into(tmp: &Path, dest: &Path) -> Result<(), Error> {
    match fs::rename(tmp, dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !tmp.exists() => {
            Err(Error::io(tmp)(e))
        }
        Err(_) => {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(Error::io(parent))?;
            }
            fs::rename(tmp, dest).map_err(Error::io(dest))
        }
    }
}
