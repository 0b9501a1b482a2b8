//! Gateway → store: [`prefetch`] makes the DAG under a root complete in the local
//! store, asking a trustless [`Gateway`] only for the blocks the store lacks
//! ([`crate::fetch`] runs it beside the decode of the NAR). Into a store holding none
//! of the root's children, the whole DAG comes as one CAR first (`whole_car`); the
//! walk fetches whatever that left.
//!
//! The walk ([`crate::fetch_walk`]) runs on the calling thread, from the root, depth
//! first. A block already
//! stored is never asked for: a raw leaf is only looked up, a dag-pb node is read
//! (verified) for its links, since an interrupted fetch may have left a node without
//! its children. A missing block goes to one of `jobs` worker threads
//! ([`crate::fetch_jobs`]), each with its own keep-alive connection; what they bring back is verified there and handed to
//! the store's write session here. A node whose links are all raw leaves, none of
//! them stored, is asked for as one CAR (`dag-scope=all`: the node again, then its
//! leaves), which saves a round trip per leaf; should that CAR fail, its missing
//! leaves are asked for one by one. Memory stays bounded: a few blocks per worker in
//! the channel, the CIDs still to visit, and the set of CIDs seen.
//!
//! The root is recorded only after the session's last commit and a decode that proves
//! the DAG whole (invariant 3): a fetch that fails records nothing, and the verified
//! blocks it did receive are committed, for the next try to reuse (or `gc` to remove).

use std::collections::HashSet;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};

use narfs_core::block::StoreError;
use narfs_core::dagpb::{DagPbError, PBNode};
use narfs_core::Cid;
use narfs_decoder::DecodeError;
use narfs_store::{RootRecord, Store, Written};

use crate::arrivals::Arrivals;
use crate::delta_fetch::Delta;
use crate::fetch_jobs::{worker, Job, Msg};
use crate::fetch_walk::Walk;
use crate::gateway_client::{Gateway, GatewayError};

/// How a fetch runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchOptions {
    /// Requests in flight (worker threads).
    pub jobs: usize,
    /// Ask for a node's missing leaves as one CAR rather than block by block.
    pub car_runs: bool,
    /// The most DAG bytes (fetched and reused) one root may have.
    pub max_bytes: u64,
    /// Store fetched blocks compressed as the store's options say (its packs' codec,
    /// its zstd level: less disk, more CPU), rather than as they came.
    pub compress: bool,
    /// Use the delta transfer when the gateway speaks it ([`crate::delta_fetch`]).
    pub delta: bool,
    /// The held roots to compress against; none: the default base
    /// ([`crate::delta_base::default_base`]).
    pub bases: Vec<Cid>,
    /// The name to record the root under ([`crate::fetch`]); none: the server's name
    /// for it, if the store has no record of that name.
    pub name: Option<String>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            jobs: 8,
            car_runs: true,
            max_bytes: 1 << 40,
            compress: false,
            delta: true,
            bases: Vec::new(),
            name: None,
        }
    }
}

/// How far a fetch is, in blocks and block bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Blocks received from the gateway and verified.
    pub fetched_blocks: u64,
    /// Their bytes.
    pub fetched_bytes: u64,
    /// Blocks found in the local store.
    pub reused_blocks: u64,
    /// Their bytes (a stored leaf counted by its parent's link size).
    pub reused_bytes: u64,
    /// The DAG's size as the root's links claim it (`Tsize`), 0 until known: a hint
    /// for a progress bar, never trusted.
    pub total_bytes: u64,
    /// Requests sent (tries included) and body bytes received for them, as they came
    /// over the wire (compressed, when the gateway compressed them).
    pub requests: u64,
    /// See `requests`.
    pub received_bytes: u64,
}

/// What [`prefetch`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prefetched {
    /// The final counts.
    pub progress: Progress,
    /// What the store did not hold before.
    pub written: Written,
    /// What the delta transfer did.
    pub delta: DeltaReport,
}

/// What the delta transfer did in a fetch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeltaReport {
    /// The names the gateway gives the root (none: it does not speak delta, or was
    /// not asked because the store held the root).
    pub names: Vec<String>,
    /// The bases compressed against (none: no delta).
    pub bases: Vec<Cid>,
    /// Delta requests sent, the items they asked for, and those with a base.
    pub requests: u64,
    pub items: u64,
    pub with_base: u64,
    /// Why the delta stopped midway (the rest came by the trustless gateway).
    pub failure: Option<String>,
}

/// What [`fetch`] did.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The blocks moved.
    pub prefetched: Prefetched,
    /// The record made for the root (NarHash and NarSize of the NAR written).
    pub record: RootRecord,
}

impl Fetched {
    /// One line for the operator: what was fetched, what was reused, the NAR.
    pub fn summary(&self) -> String {
        let (p, r, d) = (
            &self.prefetched.progress,
            &self.record,
            &self.prefetched.delta,
        );
        let delta = match d.bases.len() {
            0 => String::new(),
            n => format!(
                "; delta against {n} base{}: {} requests, {} items ({} with a base)",
                if n == 1 { "" } else { "s" },
                d.requests,
                d.items,
                d.with_base
            ),
        };
        format!(
            "{}: fetched {} blocks ({} bytes) in {} requests ({} bytes on the wire), reused \
             {} blocks ({} bytes); NAR {} ({} bytes){delta}",
            r.root,
            p.fetched_blocks,
            p.fetched_bytes,
            p.requests,
            p.received_bytes,
            p.reused_blocks,
            p.reused_bytes,
            r.nar_hash,
            r.nar_size
        )
    }
}

/// Why a fetch failed. Nothing is recorded then.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// A block did not come from the gateway, or came wrong.
    #[error("block {cid} at {}: not fetched from {gateway}", shown(path))]
    Block {
        cid: Box<Cid>,
        path: String,
        gateway: String,
        #[source]
        source: Box<GatewayError>,
    },
    /// A delta request failed or its answer was unusable; the fetch went on without
    /// it (only reported, in [`DeltaReport::failure`]).
    #[error("the delta request to {gateway} failed")]
    Delta {
        gateway: String,
        #[source]
        source: Box<GatewayError>,
    },
    /// The client could not start.
    #[error("cannot start fetching from {gateway}")]
    Client {
        gateway: String,
        #[source]
        source: Box<GatewayError>,
    },
    /// A dag-pb block does not parse, so its links are unknown.
    #[error("block {cid} at {}", shown(path))]
    Node {
        cid: Box<Cid>,
        path: String,
        #[source]
        source: DagPbError,
    },
    /// The DAG is larger than [`FetchOptions::max_bytes`].
    #[error("the DAG is larger than the limit of {0} bytes")]
    TooLarge(u64),
    /// A block of the local store is unreadable or wrong, or the DAG does not decode
    /// to a NAR.
    #[error("cannot decode the DAG")]
    Decode(#[from] DecodeError),
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] narfs_store::Error),
    /// The store's write session failed.
    #[error("the store failed")]
    Sink(#[from] StoreError),
}

/// `/a/b`, or "the root".
fn shown(path: &str) -> String {
    if path.is_empty() {
        "the root".into()
    } else {
        format!("/{path}")
    }
}

/// Makes the DAG under `root` complete in `store` (see the module doc); every block is
/// committed when this returns. The caller should hold `store.lock_shared()` until
/// it records the root, so that `gc` cannot take the blocks meanwhile.
pub fn prefetch(
    gateway: &Gateway,
    store: &Store,
    root: &Cid,
    options: &FetchOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Prefetched, FetchError> {
    prefetch_into(gateway, store, root, options, None, progress)
}

/// [`prefetch`], each block received also handed to `feed` (for a decode that runs
/// alongside).
pub(crate) fn prefetch_into(
    gateway: &Gateway,
    store: &Store,
    root: &Cid,
    options: &FetchOptions,
    feed: Option<&Arrivals>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Prefetched, FetchError> {
    let mut report = DeltaReport::default();
    let mut before = Progress::default();
    let mut files = None;
    if options.delta && !store.contains(root)? {
        let plan = crate::delta_fetch::plan(gateway, store, root, &options.bases)?;
        before.requests = plan.requests;
        before.received_bytes = plan.received;
        report.names = plan.names;
        report.bases = plan.bases;
        files = plan.files;
    }
    let mut earlier = (HashSet::new(), before, Written::default());
    if options.car_runs && files.is_none() && !store.contains(root)? {
        let mut w = crate::whole_car::whole(gateway, store, root, options, feed, progress)?;
        w.progress.requests += before.requests;
        w.progress.received_bytes += before.received_bytes;
        if w.complete {
            return Ok(Prefetched {
                progress: w.progress,
                written: w.written,
                delta: report,
            });
        }
        earlier = (w.received, w.progress, w.written);
    }
    let (earlier, start, written_before) = earlier;
    let jobs = options.jobs.max(1);
    let (job_tx, job_rx) = sync_channel::<Job>(jobs);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (msg_tx, msg_rx) = sync_channel::<Msg>(2 * jobs);
    let mut sink = options.sink(store)?;
    let walked = std::thread::scope(|s| {
        for _ in 0..jobs {
            let (job_rx, msg_tx) = (job_rx.clone(), msg_tx.clone());
            s.spawn(move || worker(gateway, store, &job_rx, &msg_tx));
        }
        drop(msg_tx);
        let mut walk = Walk {
            gateway,
            store,
            options,
            sink: &mut sink,
            feed,
            stack: vec![(*root, Arc::from(""), None, true)],
            seen: HashSet::new(),
            earlier: &earlier,
            ready: Vec::new(),
            in_flight: 0,
            progress: start,
            root: *root,
            delta: files.map(|files| Delta::new(files, report.clone())),
        };
        // The channels go with `run`'s frame: the workers then see them closed.
        let r = walk.run(job_tx, msg_rx, progress).map(|()| walk.progress);
        if let Some(d) = walk.delta {
            report = d.report;
        }
        r
    });
    // Blocks that arrived are verified: kept (committed, unreferenced until a root
    // is recorded) even when the walk failed, so that the next try reuses them.
    let written = sink.finish(None);
    let progress = walked?;
    let (w, b) = (written?, written_before);
    Ok(Prefetched {
        progress,
        written: Written {
            new_blocks: w.new_blocks + b.new_blocks,
            new_bytes: w.new_bytes + b.new_bytes,
            new_stored_bytes: w.new_stored_bytes + b.new_stored_bytes,
        },
        delta: report,
    })
}

impl FetchOptions {
    /// The write session fetched blocks go into.
    pub(crate) fn sink(&self, store: &Store) -> Result<narfs_store::StoreSink, FetchError> {
        let level = store.options().zstd_level.filter(|_| self.compress);
        Ok(store.sink_with_zstd(level)?)
    }
}

/// The error that ends the fetching side when the decoder stopped first (never shown:
/// the decoder's own error is).
pub(crate) fn decode_stopped(gateway: &Gateway) -> FetchError {
    FetchError::Client {
        gateway: gateway.url().to_string(),
        source: Box::new(GatewayError::Runtime(std::io::Error::other(
            "the decode stopped",
        ))),
    }
}

/// The DAG size a root node claims: its own bytes plus its links' `Tsize`s, which a
/// hostile gateway chooses (so added without overflow); only progress shows it.
pub(crate) fn claimed_size(data: &[u8], node: &PBNode) -> u64 {
    node.links
        .iter()
        .filter_map(|l| l.tsize)
        .fold(data.len() as u64, u64::saturating_add)
}
