//! A binary cache into the store: [`import_cache`], over any
//! [`narfs_nix::BinaryCache`]: a Nix file binary cache (as `nix copy --to file://DIR`
//! writes it) or a `guix publish --cache` directory (`narfs_nix::FileCache`, every
//! file opened inside the cache, never through a symlink), or a cache over HTTP
//! (`narfs_nix::HttpCache`: `narfs serve`, a `guix publish`, any Nix substituter).
//! A directory is imported whole; an HTTP cache cannot be listed, so it is given
//! store paths ([`ImportOptions::paths`]) and, by default, their closure through
//! `References`.
//!
//! Each NAR is decompressed as it streams into the encoder and cut one byte past its
//! `NarSize`; the encoder computes its sha256 and size on the way, which must equal
//! the narinfo's `NarHash`/`NarSize`, and only then is the root recorded, named by its
//! store path, with the narinfo fields (References, Deriver, Sig, CA) that `narfs
//! serve` gives back to Nix, and a Guix narinfo's text verbatim (its `Signature:`
//! signs that text). Every item goes through one store write session
//! ([`narfs_store::Session`]): a commit carries the blocks and records of many small
//! items, so an item does not cost a sync of its own, and an item is reported
//! imported only once its record is durable (from the committing thread, through a
//! reporter thread). A bad entry (a narinfo that does not parse, a missing or
//! corrupt NAR, a hash mismatch) is reported and skipped, never half-imported: its
//! blocks are not recorded under any root (`gc` removes them). Re-running skips every
//! path already recorded with the same NarHash (a lookup by name in the store's
//! index), so an interrupted import resumes where it stopped. The report lists every store path of the cache that now
//! has a root (imported or already present), so a caller can publish them.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};

use narfs_encoder::{encode_or_fallback, Encoded, Layout};
use narfs_nix::narinfo::nar_hash_string;
use narfs_nix::{BinaryCache, CacheError, NarInfo};
use narfs_store::{NarInfoMeta, RootRecord, Session, Store};

mod error;
mod report;

pub use error::{EntryError, ImportError};
pub use report::{Failure, ImportReport, Observer, Outcome, Recorded};

/// How to import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// How NARs become DAGs.
    pub layout: Layout,
    /// The profile's name, recorded with each root.
    pub profile: String,
    /// NARs imported at once (clamped to 1..=64).
    pub jobs: usize,
    /// The store paths to import, as hash parts (see [`hash_of`]); `None`: every
    /// narinfo the cache lists (a cache that cannot be listed needs them).
    pub paths: Option<Vec<String>>,
    /// Whether the store paths' `References` are imported too, and theirs, up to the
    /// whole closure (for the paths given: a listed cache is imported whole anyway).
    pub closure: bool,
}

/// The hash part of a line naming a store path: `/nix/store/<hash>-<name>` (or in
/// `/gnu/store`, or any directory), `<hash>-<name>`, `<hash>` or `<hash>.narinfo`.
pub fn hash_of(line: &str) -> Option<&str> {
    let line = line.trim();
    let base = line.rsplit('/').next().unwrap_or(line);
    let hash = base.get(..narfs_nix::store_path::HASH_PART_LEN)?;
    let rest = &base[hash.len()..];
    let ok = narfs_nix::store_path::is_hash_part(hash)
        && (rest.is_empty() || rest.starts_with('-') || rest == ".narinfo");
    ok.then_some(hash)
}

/// Imports every narinfo of `cache` (e.g. a [`narfs_nix::FileCache`], whose `open`
/// checked its `nix-cache-info`), or the store paths `opts.paths` and with
/// `opts.closure` everything they reference, into `store`, with `opts.jobs` workers;
/// each entry's outcome goes to `observer` as it is known. The roots already recorded
/// are skipped once their narinfo is read, before their NAR is asked for.
///
/// ```
/// use narfs_encoder::Profile;
/// use narfs_import::{import_cache, ImportOptions};
/// use narfs_nix::{narinfo::nar_hash_string, FileCache, StoreDir};
/// use narfs_store::Store;
/// use sha2::{Digest, Sha256};
///
/// // A one-entry binary cache, as `nix copy --to file://…` writes it (uncompressed).
/// let tmp = tempfile::tempdir()?;
/// let cache = tmp.path().join("cache");
/// std::fs::create_dir_all(cache.join("nar"))?;
/// std::fs::write(cache.join("nix-cache-info"), "StoreDir: /nix/store\n")?;
/// let mut w = narfs_core::nar::NarWriter::new(Vec::new());
/// w.file(b"", false, 6, &mut &b"hello\n"[..])?;
/// let nar = w.finish()?;
/// let hash = "0123456789abcdfghijklmnpqrsvwxyz";
/// std::fs::write(cache.join("nar/x.nar"), &nar)?;
/// std::fs::write(
///     cache.join(format!("{hash}.narinfo")),
///     format!(
///         "StorePath: /nix/store/{hash}-hello\nURL: nar/x.nar\nCompression: none\n\
///          NarHash: {}\nNarSize: {}\nReferences: \n",
///         nar_hash_string(&Sha256::digest(&nar).into()),
///         nar.len()
///     ),
/// )?;
///
/// let store = Store::open(tmp.path().join("store"))?;
/// let opts = ImportOptions {
///     layout: Profile::KuboV1.layout(),
///     profile: "kubo-v1".into(),
///     jobs: 1,
///     paths: None,
///     closure: false,
/// };
/// let cache = FileCache::open(&cache, StoreDir::Nix)?;
/// let report = import_cache(&cache, &store, &opts, &())?;
/// assert_eq!((report.imported, report.failed.len()), (1, 0));
/// assert_eq!(store.roots()?.len(), 1);
/// // A second run finds it recorded.
/// assert_eq!(import_cache(&cache, &store, &opts, &())?.already_present, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn import_cache(
    cache: &dyn BinaryCache,
    store: &Store,
    opts: &ImportOptions,
    observer: &dyn Observer,
) -> Result<ImportReport, ImportError> {
    let first = match (&opts.paths, cache.list()?) {
        (None, Some(listed)) => listed,
        (None, None) => return Err(CacheError::Unlistable(cache.location()).into()),
        (Some(paths), _) => {
            let mut entries = Vec::new();
            for p in paths {
                let entry = cache.entry_of(p).ok_or_else(|| ImportError::Unnamed {
                    cache: cache.location(),
                    path: p.clone(),
                })?;
                entries.push(entry);
            }
            entries
        }
    };
    let follow = opts.closure && opts.paths.is_some();
    let mut queue = Queue::default();
    for e in first {
        if queue.seen.insert(e.clone()) {
            queue.todo.push_back(e);
        }
    }
    observer.start(queue.todo.len() as u64);
    let session = store.session()?;
    let (tx, rx) = mpsc::channel::<(PathBuf, Option<String>, Outcome)>();
    let ctx = Ctx {
        cache,
        store,
        session: Mutex::new(Some(session)),
        opts,
        tx: Mutex::new(Some(tx)),
    };
    let queue = (Mutex::new(queue), Condvar::new());
    let report = Mutex::new(ImportReport::default());
    let closed = std::thread::scope(|s| {
        // Outcomes, each told once final (an imported item once its record is durable).
        let reporter = s.spawn(|| {
            for (path, store_path, outcome) in rx {
                observer.done(&path, &outcome);
                record(&report, path, store_path, outcome);
            }
        });
        let workers: Vec<_> = (0..opts.jobs.clamp(1, 64))
            .map(|_| {
                s.spawn(|| {
                    while let Some(path) = next(&queue) {
                        let refs = ctx.one(&path);
                        let more = if follow {
                            more(cache, &refs)
                        } else {
                            Vec::new()
                        };
                        let (q, wake) = &queue;
                        let mut q = q.lock().unwrap_or_else(|p| p.into_inner());
                        let before = q.todo.len();
                        for e in more {
                            if q.seen.insert(e.clone()) {
                                q.todo.push_back(e);
                            }
                        }
                        if q.todo.len() > before {
                            observer.found((q.todo.len() - before) as u64);
                        }
                        q.busy -= 1;
                        wake.notify_all();
                    }
                })
            })
            .collect();
        for w in workers {
            let _ = w.join();
        }
        // Every record queued is durable (or failed) once the session is closed.
        let session = ctx.session.lock().unwrap_or_else(|p| p.into_inner()).take();
        let closed = session.map(Session::close);
        ctx.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let _ = reporter.join();
        closed
    });
    if let Some(closed) = closed {
        closed?;
    }
    let mut report = report.into_inner().unwrap_or_else(|p| p.into_inner());
    report.failed.sort_by(|a, b| a.narinfo.cmp(&b.narinfo));
    report.roots.sort_by(|a, b| a.store_path.cmp(&b.store_path));
    Ok(report)
}

/// The entries left to import, and every one ever queued.
#[derive(Default)]
struct Queue {
    todo: VecDeque<PathBuf>,
    seen: HashSet<PathBuf>,
    /// Entries being imported: while any is, the closure may still grow.
    busy: usize,
}

/// The next entry to import, waiting while the queue is empty but an entry in
/// flight may add its references; `None` once all is done.
fn next((q, wake): &(Mutex<Queue>, Condvar)) -> Option<PathBuf> {
    let mut q = q.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if let Some(e) = q.todo.pop_front() {
            q.busy += 1;
            return Some(e);
        }
        if q.busy == 0 {
            return None;
        }
        q = wake.wait(q).unwrap_or_else(|p| p.into_inner());
    }
}

/// The entries of `references` (base names `<hash>-<name>`).
fn more(cache: &dyn BinaryCache, references: &[String]) -> Vec<PathBuf> {
    references
        .iter()
        .filter_map(|r| cache.entry_of(hash_of(r)?))
        .collect()
}

fn record(
    report: &Mutex<ImportReport>,
    path: PathBuf,
    store_path: Option<String>,
    outcome: Outcome,
) {
    let mut r = report.lock().unwrap_or_else(|p| p.into_inner());
    let store_path = store_path.unwrap_or_default();
    match outcome {
        Outcome::Imported {
            root,
            nar_size,
            new_bytes,
        } => {
            r.imported += 1;
            r.nar_bytes += nar_size;
            r.new_bytes += new_bytes;
            r.roots.push(Recorded {
                store_path,
                root,
                present: false,
            });
        }
        Outcome::Present { root } => {
            r.already_present += 1;
            r.roots.push(Recorded {
                store_path,
                root,
                present: true,
            });
        }
        Outcome::Failed(error) => r.failed.push(Failure {
            narinfo: path,
            error,
        }),
    }
}

struct Ctx<'a> {
    cache: &'a dyn BinaryCache,
    store: &'a Store,
    /// The write session every item shares (taken out to be closed).
    session: Mutex<Option<Session>>,
    opts: &'a ImportOptions,
    /// Where outcomes go to be reported (taken out when all is queued).
    tx: Mutex<Option<Report>>,
}

type Report = mpsc::Sender<(PathBuf, Option<String>, Outcome)>;

impl Ctx<'_> {
    fn tx(&self) -> Option<Report> {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A handle of the shared session for one item.
    fn sink(&self) -> Result<narfs_store::StoreSink, EntryError> {
        let s = self.session.lock().unwrap_or_else(|p| p.into_inner());
        s.as_ref()
            .map(Session::sink)
            .ok_or(EntryError::Store(narfs_store::Error::Writer(
                "the write session is closed",
            )))
    }

    /// Imports one narinfo; its outcome goes to the reporter (an imported item's once
    /// its record is durable). Its references, to follow.
    fn one(&self, narinfo: &Path) -> Vec<String> {
        let Some(tx) = self.tx() else {
            return Vec::new();
        };
        let info = match self.cache.read_narinfo(narinfo) {
            Ok(i) => i,
            Err(e) => {
                let _ = tx.send((narinfo.into(), None, Outcome::Failed(e.into())));
                return Vec::new();
            }
        };
        let refs = info.references.clone();
        let store_path = Some(info.store_path.clone());
        match self.start(&info, narinfo, tx.clone()) {
            Ok(None) => {}
            Ok(Some(outcome)) | Err(outcome) => {
                let _ = tx.send((narinfo.into(), store_path, outcome));
            }
        }
        refs
    }

    /// An outcome known now (present, or failed), or `None` when the record was
    /// queued in the session (its outcome comes when it is durable).
    fn start(
        &self,
        info: &NarInfo,
        narinfo: &Path,
        tx: Report,
    ) -> Result<Option<Outcome>, Outcome> {
        let failed = |e: EntryError| Outcome::Failed(e);
        let present = self
            .store
            .find_roots(&info.store_path)
            .map_err(|e| failed(e.into()))?;
        if let Some(r) = present.iter().find(|r| r.narinfo.is_some()) {
            if let (true, Ok(root)) = (r.nar_hash == info.nar_hash_string(), r.cid()) {
                return Ok(Some(Outcome::Present { root }));
            }
        }
        let (encoded, sink) = encode_or_fallback(
            || self.cache.open_nar(info).map_err(EntryError::from),
            &self.opts.layout,
            || self.sink(),
            false,
            None,
        )
        .map_err(failed)?;
        check(&encoded, info).map_err(failed)?;
        let layout = &self.opts.layout;
        let rec = RootRecord::new(
            &encoded.root,
            encoded.encoding,
            &info.nar_hash,
            encoded.nar_size,
        )
        .with_name(Some(info.store_path.clone()))
        .with_layout(
            layout.chunker.to_string(),
            layout.hash.name(),
            &self.opts.profile,
        )
        .with_blocks(encoded.counts.blocks, encoded.counts.bytes)
        .with_narinfo(NarInfoMeta::from(info));
        let (root, nar_size) = (encoded.root, encoded.nar_size);
        let (path, store_path) = (narinfo.to_path_buf(), Some(info.store_path.clone()));
        sink.finish_then(
            Some(rec),
            Box::new(move |r| {
                let outcome = match r {
                    Ok(w) => Outcome::Imported {
                        root,
                        nar_size,
                        new_bytes: w.new_bytes,
                    },
                    Err(e) => Outcome::Failed(e.into()),
                };
                let _ = tx.send((path, store_path, outcome));
            }),
        )
        .map(|()| None)
        .map_err(|e| failed(e.into()))
    }
}

/// The NAR's hash and size must be what the narinfo says.
fn check(e: &Encoded, info: &NarInfo) -> Result<(), EntryError> {
    if e.nar_size != info.nar_size {
        return Err(EntryError::NarSize {
            got: e.nar_size,
            want: info.nar_size,
        });
    }
    if e.nar_sha256 != info.nar_hash {
        return Err(EntryError::NarHash {
            got: nar_hash_string(&e.nar_sha256),
            want: info.nar_hash_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
