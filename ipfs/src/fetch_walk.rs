//! The fetch's walk ([`crate::fetch`]'s module doc): from the root, depth first, on
//! the calling thread; it decides which blocks to ask for, hands the requests to the
//! workers ([`crate::fetch_jobs`]), and writes what they bring into the store's
//! session, following each node's links.

use std::collections::HashSet;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;

use narfs_core::block::{BlockSink, Verified, DAG_PB, RAW};
use narfs_core::dagpb::PBNode;
use narfs_core::unixfs::{DataType, UnixFsData};
use narfs_core::Cid;
use narfs_store::Store;

use crate::arrivals::Arrivals;
use crate::delta_fetch::{self, Delta};
use crate::delta_wire::{Item, MAX_ITEMS};
use crate::fetch::{claimed_size, decode_stopped, FetchError, FetchOptions, Progress};
use crate::fetch_jobs::{Job, Msg};
use crate::gateway_client::{Gateway, GatewayError};

/// The walk's state; see the module doc.
pub(crate) struct Walk<'a> {
    pub(crate) gateway: &'a Gateway,
    pub(crate) store: &'a Store,
    pub(crate) options: &'a FetchOptions,
    pub(crate) sink: &'a mut narfs_store::StoreSink,
    /// Where received blocks go too, for a decode running alongside.
    pub(crate) feed: Option<&'a Arrivals>,
    /// Blocks to visit: CID, path, the size the parent's link claims, and whether it
    /// is a directory's entry (or the root).
    pub(crate) stack: Vec<(Cid, Arc<str>, Option<u64>, bool)>,
    pub(crate) seen: HashSet<Cid>,
    /// Blocks this fetch received before the walk (counted as fetched already).
    pub(crate) earlier: &'a HashSet<Cid>,
    /// Requests decided on but not sent yet.
    pub(crate) ready: Vec<Job>,
    pub(crate) in_flight: usize,
    pub(crate) progress: Progress,
    pub(crate) root: Cid,
    /// The delta transfer, when it is used.
    pub(crate) delta: Option<Delta>,
}

impl Walk<'_> {
    pub(crate) fn run(
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
