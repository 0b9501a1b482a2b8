//! [`fetch`]: gateway → store and NAR at once. The walk of [`crate::prefetch`] runs on
//! a thread of its own, handing every verified block to the store's write session
//! and to an [`Arrivals`] window; the caller's thread decodes the NAR from that
//! window (else from the store) while blocks still arrive, instead of a second pass
//! over the store once all are there: the two overlap, and a block just received is
//! not read back from the disk and decompressed.
//!
//! The guarantees stay the walk's and the decoder's: every block is verified against
//! its CID before use (by the fetching side, once, before it is stored; the decoder
//! takes it from the window as that [`narfs_core::block::Verified`], and verifies
//! what it reads from the store), blocks the store holds are not asked for, memory is bounded (the window,
//! the session's queue). The root is recorded only after the decode proved the DAG
//! whole and the session's last commit. Since the NAR is written as it is decoded, a
//! fetch that fails may have written a part of it to `out`: the caller writes to a
//! temporary it discards then (the CLI's `-o` and `--to` do).

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use narfs_core::block::HashAlg;
use narfs_core::{Cid, Encoding};
use narfs_decoder::Limits;
use narfs_store::{RootRecord, Store};

use crate::arrivals::{Arrivals, StreamSource};
use crate::car_import::NarHasher;
use crate::fetch::{prefetch_into, FetchError, FetchOptions, Fetched, Progress};
use crate::gateway_client::{Gateway, GatewayError};

/// Fetches what the store lacks of the DAG under `root` and, as it arrives, writes its
/// NAR (carried as `encoding`) to `out`; then records the root with its NarHash and
/// NarSize. `progress` is called on the caller's thread as the NAR is written. On an
/// error `out` may hold part of the NAR (see the module doc); nothing is recorded.
#[allow(clippy::too_many_arguments)]
pub fn fetch<W: Write>(
    gateway: &Gateway,
    store: &Store,
    root: &Cid,
    encoding: Encoding,
    out: W,
    options: &FetchOptions,
    limits: &Limits,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(W, Fetched), FetchError> {
    let _lock = store.lock_shared()?;
    let arrivals = Arrivals::default();
    let shared = Shared::default();
    let (decoded, fetched_first, prefetched) = std::thread::scope(|s| {
        let fetching = s.spawn(|| {
            let mut report = |p: &Progress| shared.set(p);
            let r = prefetch_into(gateway, store, root, options, Some(&arrivals), &mut report);
            arrivals.end(r.is_ok());
            r
        });
        let source = StreamSource {
            arrivals: &arrivals,
            store,
        };
        let out = Reporting {
            inner: out,
            shared: &shared,
            shown: 0,
            report: &mut *progress,
        };
        let decoded = narfs_decoder::decode(&source, root, encoding, NarHasher::new(out), limits);
        // A decode that failed on its own stops the walk; its error is the one to show.
        // One that failed because the walk did gives the walk's error.
        let fetched_first = arrivals.stop(decoded.is_ok());
        let prefetched = fetching.join().unwrap_or_else(|_| {
            Err(FetchError::Client {
                gateway: gateway.url().to_string(),
                source: Box::new(GatewayError::Runtime(io::Error::other(
                    "the fetching thread panicked",
                ))),
            })
        });
        (decoded, fetched_first, prefetched)
    });
    let (hashed, prefetched) = match (decoded, prefetched) {
        (Ok(h), Ok(p)) => (h, p),
        (Err(d), Err(_)) if !fetched_first => return Err(d.into()),
        (_, Err(f)) => return Err(f),
        (Err(d), Ok(_)) => return Err(d.into()),
    };
    let (out, sha, nar_size) = hashed.finish();
    let out = out.inner;
    let p = prefetched.progress;
    progress(&p);
    let hash = HashAlg::from_code(root.hash().code()).map_or("unknown", HashAlg::name);
    // How the DAG was chunked is not written in it.
    let mut record = RootRecord::new(root, encoding, &sha, nar_size)
        .with_name(record_name(store, options, &prefetched.delta.names)?)
        .with_layout("unknown", hash, "gateway-fetch")
        .with_blocks(
            p.fetched_blocks + p.reused_blocks,
            p.fetched_bytes + p.reused_bytes,
        );
    record.new_blocks = prefetched.written.new_blocks;
    record.new_bytes = prefetched.written.new_bytes;
    store.record_root(&record)?;
    Ok((out, Fetched { prefetched, record }))
}

/// The name to record the root under: the caller's, else the first the gateway gave
/// (a store path's name part) that no record of the store has yet, so that the next
/// version's fetch finds this one as its base ([`crate::delta_base`]).
fn record_name(
    store: &Store,
    options: &FetchOptions,
    names: &[String],
) -> Result<Option<String>, FetchError> {
    if let Some(n) = &options.name {
        return Ok(Some(n.clone()));
    }
    for n in names {
        if store.find_roots(n)?.is_empty() {
            return Ok(Some(n.clone()));
        }
    }
    Ok(None)
}

/// The walk's latest progress, for the caller's thread.
#[derive(Default)]
struct Shared {
    progress: Mutex<Progress>,
    version: AtomicU64,
}

impl Shared {
    fn set(&self, p: &Progress) {
        *self.progress.lock().unwrap_or_else(|p| p.into_inner()) = *p;
        self.version.fetch_add(1, Ordering::Release);
    }
}

/// The output, calling the progress callback when the walk moved since the last write.
struct Reporting<'a, W> {
    inner: W,
    shared: &'a Shared,
    shown: u64,
    report: &'a mut dyn FnMut(&Progress),
}

impl<W: Write> Write for Reporting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let version = self.shared.version.load(Ordering::Acquire);
        if version != self.shown {
            self.shown = version;
            let p = *self
                .shared
                .progress
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            (self.report)(&p);
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
