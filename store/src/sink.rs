//! A write session: the [`BlockSink`] the encoder writes into. The encoder's thread only
//! remembers which CIDs it has seen and hands each new one to writer threads, which
//! skip blocks already stored, compress, and create the files under the session's
//! `tmp/` directory; so hashing and writing use both cores. Every `batch_bytes` and at
//! the end, the file system is synced and the files renamed to their CIDs; the root
//! record is written last, after a final sync.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use narfs_core::block::{BlockSink, StoreError};
use narfs_core::Cid;

use crate::blocks::{self, ZST};
use crate::lock::{sync_fs, LockGuard};
use crate::{roots, Error, Options, RootRecord, Store};

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

/// A write session into a [`Store`]; see the module doc.
pub struct StoreSink {
    shared: Arc<Shared>,
    seen: HashSet<Cid>,
    tx: Option<SyncSender<Job>>,
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
        let (tx, rx) = sync_channel::<Job>(64);
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..options.writers.max(1))
            .map(|_| {
                let (shared, rx) = (shared.clone(), rx.clone());
                std::thread::spawn(move || worker(&shared, &rx))
            })
            .collect();
        Ok(StoreSink {
            shared,
            seen: HashSet::new(),
            tx: Some(tx),
            workers,
            _lock: lock,
        })
    }

    /// Waits for the writers, publishes every block, syncs, and then (if given) records
    /// the root with its `new_*` fields filled in.
    pub fn finish(mut self, record: Option<RootRecord>) -> Result<Written, Error> {
        self.join()?;
        let s = &self.shared;
        publish(s, take_pending(s))?;
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
        self.tx = None;
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
        let sent = match &self.tx {
            Some(tx) => tx.send((*cid, data.to_vec())).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // A writer stopped: its error is the cause.
        self.join()?;
        Err(Error::Writer("the writer threads stopped".into()).into())
    }
}

fn worker(s: &Shared, rx: &Mutex<Receiver<Job>>) -> Result<(), Error> {
    loop {
        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok((cid, data)) = job else {
            return Ok(());
        };
        if blocks::find(&s.dir, &cid).is_some() {
            continue;
        }
        let mut dest = blocks::path(&s.dir, &cid);
        let compressed = s
            .options
            .zstd_level
            .and_then(|l| zstd::bulk::compress(&data, l).ok())
            .filter(|c| c.len() <= data.len() - data.len() / 8);
        let bytes = match &compressed {
            Some(c) => {
                dest.as_mut_os_string().push(ZST);
                c.as_slice()
            }
            None => data.as_slice(),
        };
        let tmp = s.session.join(dest.file_name().unwrap_or_default());
        fs::write(&tmp, bytes).map_err(Error::io(&tmp))?;
        s.new_blocks.fetch_add(1, Ordering::Relaxed);
        s.new_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        s.new_stored
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let batch = {
            let mut p = s.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.0.push((tmp, dest));
            p.1 += bytes.len() as u64;
            if p.1 >= s.options.batch_bytes {
                std::mem::take(&mut *p).0
            } else {
                Vec::new()
            }
        };
        publish(s, batch)?;
    }
}

fn take_pending(s: &Shared) -> Vec<(PathBuf, PathBuf)> {
    std::mem::take(&mut *s.pending.lock().unwrap_or_else(|p| p.into_inner())).0
}

/// Syncs the written files, then renames them to their CIDs.
fn publish(s: &Shared, batch: Vec<(PathBuf, PathBuf)>) -> Result<(), Error> {
    if batch.is_empty() {
        return Ok(());
    }
    sync_fs(&s.dir)?;
    for (tmp, dest) in batch {
        rename_into(&tmp, &dest)?;
    }
    Ok(())
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
