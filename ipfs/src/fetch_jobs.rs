//! The fetch's workers: each takes [`Job`]s (one block, a node's leaves as one CAR,
//! or a batch of DAGs as one delta request) over its own keep-alive [`Connection`],
//! verifies what comes back, and hands it to the walk ([`crate::fetch_walk`]) as
//! [`Msg`]s. A worker never writes to the store: the walk owns the write session.

use std::collections::HashSet;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use narfs_core::block::Verified;
use narfs_core::Cid;
use narfs_store::Store;

use crate::delta_fetch;
use crate::delta_wire::Item;
use crate::fetch::FetchError;
use crate::gateway_client::{Connection, Gateway, GatewayError};

/// A request for a worker.
pub(crate) enum Job {
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
pub(crate) enum Msg {
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
pub(crate) fn worker(
    gateway: &Gateway,
    store: &Store,
    jobs: &Mutex<Receiver<Job>>,
    msgs: &SyncSender<Msg>,
) {
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
