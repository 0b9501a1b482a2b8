//! Gateway → store: [`prefetch`] makes the DAG under a root complete in the local
//! store, asking a trustless [`Gateway`] only for the blocks the store lacks
//! ([`crate::fetch`] runs it beside the decode of the NAR). Into a store holding none
//! of the root's children, the whole DAG comes as one CAR first (`whole_car`); the
//! walk fetches whatever that left.
//!
//! The walk runs on the calling thread, from the root, depth first. A block already
//! stored is never asked for: a raw leaf is only looked up, a dag-pb node is read
//! (verified) for its links, since an interrupted fetch may have left a node without
//! its children. A missing block goes to one of `jobs` worker threads, each with its
//! own keep-alive [`Connection`]; what they bring back is verified there and handed to
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
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use narfs_core::block::{BlockSink, StoreError, Verified, DAG_PB, RAW};
use narfs_core::dagpb::{DagPbError, PBNode};
use narfs_core::unixfs::{DataType, UnixFsData};
use narfs_core::Cid;
use narfs_decoder::DecodeError;
use narfs_store::{RootRecord, Store, Written};

use crate::arrivals::Arrivals;
use crate::delta_fetch::{self, Delta};
use crate::delta_wire::{Item, MAX_ITEMS};
use crate::gateway_client::{Connection, Gateway, GatewayError};

/// How a fetch runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchOptions {
    /// Requests in flight (worker threads).
    pub jobs: usize,
    /// Ask for a node's missing leaves as one CAR rather than block by block.
    pub car_runs: bool,
    /// The most DAG bytes (fetched and reused) one root may have.
    pub max_bytes: u64,
    /// Store fetched blocks zstd-compressed at the store's level (less disk, more
    /// CPU), rather than as they came.
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

/// A request for a worker.
enum Job {
    /// One block.
    Block { cid: Cid, path: Arc<str> },
    /// A node's leaves, as one CAR of the node.
    Leaves {
        node: Cid,
        leaves: Vec<Cid>,
        path: Arc<str>,
    },
    /// A batch of DAGs, as one delta request.
    Delta { items: Vec<(Item, Arc<str>)> },
}

/// What a worker sends back.
enum Msg {
    /// A block, verified by the worker; its links are walked (`walk`), or it came
    /// in a delta answer, which brings what it links to or says what it did not.
    Block {
        block: Verified,
        path: Arc<str>,
        walk: bool,
    },
    /// A delta request is over.
    DeltaDone(Box<delta_fetch::Outcome>),
    /// A job is over; requests sent and body bytes received for it.
    Done { requests: u64, received: u64 },
    /// A job failed.
    Failed(FetchError),
}

/// A worker: takes jobs until the walk closes the channel (or stops listening).
fn worker(gateway: &Gateway, store: &Store, jobs: &Mutex<Receiver<Job>>, msgs: &SyncSender<Msg>) {
    let mut conn = match gateway.connection() {
        Ok(c) => c,
        Err(source) => {
            let gateway = gateway.url().to_string();
            let source = Box::new(source);
            let _ = msgs.send(Msg::Failed(FetchError::Client { gateway, source }));
            return;
        }
    };
    loop {
        let job = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(job) = job else { return };
        if let Job::Delta { items } = job {
            let outcome = delta_fetch::run(
                &mut conn,
                gateway.url(),
                store,
                &items,
                &mut |block, path| {
                    let path = path.clone();
                    msgs.send(Msg::Block {
                        block,
                        path,
                        walk: false,
                    })
                    .is_ok()
                },
            );
            if msgs.send(Msg::DeltaDone(Box::new(outcome))).is_err() {
                return;
            }
            continue;
        }
        let before = conn.received();
        let (requests, outcome) = run_job(&mut conn, job, msgs, gateway.url());
        let received = conn.received() - before;
        let msg = match outcome {
            Ok(()) => Msg::Done { requests, received },
            Err(e) => Msg::Failed(e),
        };
        if msgs.send(msg).is_err() {
            return;
        }
    }
}

/// Runs one job, its blocks sent on `msgs`; the requests it took.
fn run_job(
    conn: &mut Connection,
    job: Job,
    msgs: &SyncSender<Msg>,
    gateway: &str,
) -> (u64, Result<(), FetchError>) {
    let failed = |cid: &Cid, path: &str, source| FetchError::Block {
        cid: Box::new(*cid),
        path: path.to_string(),
        gateway: gateway.to_string(),
        source: Box::new(source),
    };
    let (node, leaves, path) = match job {
        Job::Block { cid, path } => {
            return match conn.block(&cid) {
                Ok(block) => {
                    let _ = msgs.send(Msg::Block {
                        block,
                        path,
                        walk: true,
                    });
                    (1, Ok(()))
                }
                Err(e) => (1, Err(failed(&cid, &path, e))),
            }
        }
        Job::Leaves { node, leaves, path } => (node, leaves, path),
        Job::Delta { .. } => unreachable!("the worker runs delta jobs itself"),
    };
    let wanted: HashSet<Cid> = leaves.iter().copied().collect();
    let mut got = HashSet::new();
    let mut gone = false;
    // A CAR that fails leaves what it brought; the rest comes block by block.
    let _ = conn.car(&node, &|c| wanted.contains(c), &mut |block| {
        let cid = *block.cid();
        got.insert(cid);
        let path = path.clone();
        msgs.send(Msg::Block {
            block,
            path,
            walk: true,
        })
        .map_err(|_| {
            gone = true;
            GatewayError::Unexpected(Box::new(cid))
        })
    });
    let mut requests = 1;
    for cid in leaves.iter().filter(|c| !got.contains(c)) {
        if gone {
            break;
        }
        requests += 1;
        match conn.block(cid) {
            Ok(block) => {
                let path = path.clone();
                gone = msgs
                    .send(Msg::Block {
                        block,
                        path,
                        walk: true,
                    })
                    .is_err();
            }
            Err(e) => return (requests, Err(failed(cid, &path, e))),
        }
    }
    (requests, Ok(()))
}

/// The walk's state; see the module doc.
struct Walk<'a> {
    gateway: &'a Gateway,
    store: &'a Store,
    options: &'a FetchOptions,
    sink: &'a mut narfs_store::StoreSink,
    /// Where received blocks go too, for a decode running alongside.
    feed: Option<&'a Arrivals>,
    /// Blocks to visit: CID, path, the size the parent's link claims, and whether it
    /// is a directory's entry (or the root).
    stack: Vec<(Cid, Arc<str>, Option<u64>, bool)>,
    seen: HashSet<Cid>,
    /// Blocks this fetch received before the walk (counted as fetched already).
    earlier: &'a HashSet<Cid>,
    /// Requests decided on but not sent yet.
    ready: Vec<Job>,
    in_flight: usize,
    progress: Progress,
    root: Cid,
    /// The delta transfer, when it is used.
    delta: Option<Delta>,
}

impl Walk<'_> {
    fn run(
        &mut self,
        jobs: SyncSender<Job>,
        msgs: Receiver<Msg>,
        report: &mut dyn FnMut(&Progress),
    ) -> Result<(), FetchError> {
        loop {
            while self.in_flight < self.options.jobs.max(1) {
                let job = match self.ready.pop() {
                    Some(job) => job,
                    None => {
                        let Some((cid, path, claimed, entry)) = self.stack.pop() else {
                            break;
                        };
                        if !self.seen.insert(cid) {
                            continue;
                        }
                        match self.visit(cid, path, claimed, entry)? {
                            Some(job) => job,
                            None => continue,
                        }
                    }
                };
                self.in_flight += 1;
                // Never full: it holds at most `jobs` requests, one per worker.
                let _ = jobs.send(job);
            }
            if let Some(job) = self.delta_batch() {
                self.in_flight += 1;
                let _ = jobs.send(job);
            }
            if self.in_flight == 0 {
                return Ok(());
            }
            match msgs.recv() {
                Ok(Msg::Block { block, path, walk }) => self.arrived(block, path, walk)?,
                Ok(Msg::DeltaDone(outcome)) => {
                    self.in_flight -= 1;
                    self.delta_done(*outcome);
                }
                Ok(Msg::Done { requests, received }) => {
                    self.in_flight -= 1;
                    self.progress.requests += requests;
                    self.progress.received_bytes += received;
                }
                Ok(Msg::Failed(e)) => return Err(e),
                Err(_) => {
                    return Err(FetchError::Client {
                        gateway: self.gateway.url().to_string(),
                        source: Box::new(GatewayError::Runtime(std::io::Error::other(
                            "the request threads stopped",
                        ))),
                    })
                }
            }
            report(&self.progress);
        }
    }

    /// A block to visit: nothing to ask for if it is stored (a node's links are then
    /// walked), else the request for it.
    fn visit(
        &mut self,
        cid: Cid,
        path: Arc<str>,
        claimed: Option<u64>,
        entry: bool,
    ) -> Result<Option<Job>, FetchError> {
        if !self.store.contains(&cid)? {
            if let Some(d) = self.delta.as_mut() {
                if d.received.contains(&cid) || (entry && d.divert(cid, &path)) {
                    return Ok(None);
                }
            }
            return Ok(Some(Job::Block { cid, path }));
        }
        let reused = !self.earlier.contains(&cid);
        if cid.codec() != DAG_PB {
            if reused {
                self.progress.reused_blocks += 1;
                self.count(0, claimed.unwrap_or_default())?;
            }
            return Ok(None);
        }
        let data = narfs_decoder::fetch(self.store, &cid, &path)?;
        if reused {
            self.progress.reused_blocks += 1;
            self.count(0, data.len() as u64)?;
        }
        self.links(&cid, &data, &path)?;
        Ok(self.ready.pop())
    }

    /// A block from a worker: into the store, its links walked.
    fn arrived(&mut self, block: Verified, path: Arc<str>, walk: bool) -> Result<(), FetchError> {
        let cid = *block.cid();
        if let Some(d) = self.delta.as_mut() {
            if !d.received.insert(cid) {
                return Ok(()); // came twice (a delta brings a file's node again)
            }
        }
        self.sink.put(&cid, block.data())?;
        self.progress.fetched_blocks += 1;
        self.count(block.data().len() as u64, 0)?;
        if walk && cid.codec() == DAG_PB {
            self.links(&cid, block.data(), &path)?;
        }
        if let Some(feed) = self.feed {
            if !feed.put(block) {
                return Err(decode_stopped(self.gateway));
            }
        }
        Ok(())
    }

    fn count(&mut self, fetched: u64, reused: u64) -> Result<(), FetchError> {
        let p = &mut self.progress;
        p.fetched_bytes += fetched;
        p.reused_bytes += reused;
        if p.fetched_bytes + p.reused_bytes > self.options.max_bytes {
            return Err(FetchError::TooLarge(self.options.max_bytes));
        }
        Ok(())
    }

    /// Queues the links of node `cid` to visit, or, if they are all raw leaves and
    /// none is stored or seen, the CAR request for them.
    fn links(&mut self, cid: &Cid, data: &[u8], path: &Arc<str>) -> Result<(), FetchError> {
        let node = PBNode::decode(data).map_err(|source| FetchError::Node {
            cid: Box::new(*cid),
            path: path.to_string(),
            source,
        })?;
        if *cid == self.root {
            self.progress.total_bytes = claimed_size(data, &node);
        }
        let kind = node
            .data
            .as_deref()
            .and_then(|d| UnixFsData::decode(d).ok())
            .map(|fs| fs.data_type);
        if kind == Some(DataType::File) && self.delta.as_ref().is_some_and(|d| d.wants(cid)) {
            let mut stored = false;
            for l in &node.links {
                if self.seen.contains(&l.hash) || self.store.contains(&l.hash)? {
                    stored = true;
                    break;
                }
            }
            if !stored {
                if let Some(d) = self.delta.as_mut() {
                    d.take(*cid, None, path.clone());
                }
                return Ok(());
            }
        }
        if self.options.car_runs
            && node.links.len() > 1
            && node.links.iter().all(|l| l.hash.codec() == RAW)
        {
            let mut missing = true;
            for l in &node.links {
                if self.seen.contains(&l.hash) || self.store.contains(&l.hash)? {
                    missing = false;
                    break;
                }
            }
            if missing {
                let leaves: Vec<Cid> = node.links.iter().map(|l| l.hash).collect();
                self.seen.extend(leaves.iter().copied());
                self.ready.push(Job::Leaves {
                    node: *cid,
                    leaves,
                    path: path.clone(),
                });
                return Ok(());
            }
        }
        let entries = matches!(kind, Some(DataType::Directory | DataType::HamtShard));
        for l in node.links.iter().rev() {
            let child: Arc<str> = match (kind, l.name.as_deref()) {
                (Some(DataType::Directory), Some(name)) => join(path, name).into(),
                (Some(DataType::HamtShard), Some(name)) if name.len() > 2 => {
                    join(path, name.get(2..).unwrap_or_default()).into()
                }
                _ => path.clone(),
            };
            self.stack.push((l.hash, child, l.tsize, entries));
        }
        Ok(())
    }
}

impl Walk<'_> {
    /// The batch as a delta job, when it is full or the walk has nothing else left
    /// to do (every request in flight is a delta): few, large requests.
    fn delta_batch(&mut self) -> Option<Job> {
        let jobs = self.options.jobs.max(1);
        let d = self.delta.as_mut()?;
        if d.batch.is_empty() || self.in_flight >= jobs {
            return None;
        }
        let idle = self.stack.is_empty() && self.ready.is_empty() && self.in_flight == d.in_flight;
        if !idle && d.batch.len() < MAX_ITEMS {
            return None;
        }
        let n = d.batch.len().min(MAX_ITEMS);
        let items: Vec<(Item, Arc<str>)> = d.batch.drain(..n).collect();
        d.in_flight += 1;
        d.report.requests += 1;
        d.report.items += n as u64;
        d.report.with_base += items.iter().filter(|(i, _)| i.base.is_some()).count() as u64;
        Some(Job::Delta { items })
    }

    /// A delta request is over: what it did not bring goes back to the walk; a
    /// refusal or a failure ends the delta for this fetch.
    fn delta_done(&mut self, o: delta_fetch::Outcome) {
        self.progress.requests += 1;
        self.progress.received_bytes += o.received;
        let Some(d) = self.delta.as_mut() else { return };
        d.in_flight -= 1;
        if o.refused || o.failure.is_some() {
            d.off = true;
            if d.report.failure.is_none() {
                d.report.failure = Some(match &o.failure {
                    Some(e) => narfs_core::error_chain(e),
                    None => "the gateway refused the delta request".into(),
                });
            }
        }
        let mut back = o.rest;
        if d.off {
            back.extend(d.batch.drain(..).map(|(i, p)| (i.cid, p)));
        }
        for (cid, path) in back {
            d.tried.insert(cid);
            self.seen.remove(&cid);
            self.stack.push((cid, path, None, false));
        }
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}/{name}")
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
