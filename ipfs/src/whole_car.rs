//! The first step of a fetch into a store that holds nothing of the DAG: the whole DAG
//! as one CAR (`dag-scope=all` on the root, depth first, each block once), the way a
//! gateway serves fastest: one request, no round trip per node, blocks in the order
//! the decoder reads them.
//!
//! The root is asked for alone first; if the store holds any of its children, the
//! walk of [`crate::prefetch`] does everything (it asks only for what is missing).
//! Otherwise the CAR is read, each block verified against its CID (by the
//! [`Connection`]) and accepted only if a node received before links to it. The
//! moment a node links to a block the store holds, the CAR is dropped, as it is on
//! any error (a cut answer, a bad block, a gateway without CARs): what arrived is
//! committed, and the walk fetches the rest, with its retries and its errors naming
//! the block and its path.

use std::cell::RefCell;
use std::collections::HashSet;

use narfs_core::block::{BlockSink, Verified, DAG_PB};
use narfs_core::dagpb::PBNode;
use narfs_core::Cid;
use narfs_store::{Store, Written};

use crate::arrivals::Arrivals;
use crate::fetch::{FetchError, FetchOptions, Progress};
use crate::gateway_client::{Gateway, GatewayError};

/// What the whole-DAG CAR brought.
pub(crate) struct Whole {
    /// Every block of the DAG arrived.
    pub(crate) complete: bool,
    /// The blocks received (committed).
    pub(crate) received: HashSet<Cid>,
    pub(crate) progress: Progress,
    pub(crate) written: Written,
}

/// See the module doc. An error only when the store fails, the DAG is too large or
/// the decoder stopped; a gateway's failure leaves the rest to the walk.
pub(crate) fn whole(
    gateway: &Gateway,
    store: &Store,
    root: &Cid,
    options: &FetchOptions,
    feed: Option<&Arrivals>,
    report: &mut dyn FnMut(&Progress),
) -> Result<Whole, FetchError> {
    let mut w = Whole {
        complete: false,
        received: HashSet::new(),
        progress: Progress::default(),
        written: Written::default(),
    };
    let Ok(mut conn) = gateway.connection() else {
        return Ok(w);
    };
    let first = conn.block(root);
    w.progress.requests += 1;
    w.progress.received_bytes = conn.received();
    let Ok(first) = first else { return Ok(w) };
    let data = first.data();
    let expected = RefCell::new(HashSet::new());
    let mut go_on = true;
    if root.codec() == DAG_PB {
        let Ok(node) = PBNode::decode(data) else {
            return Ok(w);
        };
        w.progress.total_bytes = crate::fetch::claimed_size(data, &node);
        for l in &node.links {
            go_on &= !store.contains(&l.hash)?;
            expected.borrow_mut().insert(l.hash);
        }
    }
    let mut sink = options.sink(store)?;
    let mut failure = None;
    let mut take = |block: Verified, w: &mut Whole| -> Result<bool, FetchError> {
        let (cid, data) = (*block.cid(), block.data());
        let mut more = true;
        if cid.codec() == DAG_PB && cid != *root {
            let Ok(node) = PBNode::decode(data) else {
                return Ok(false);
            };
            let mut e = expected.borrow_mut();
            for l in &node.links {
                if w.received.contains(&l.hash) {
                    continue;
                }
                if store.contains(&l.hash)? {
                    more = false;
                }
                e.insert(l.hash);
            }
        }
        let p = &mut w.progress;
        p.fetched_blocks += 1;
        p.fetched_bytes += data.len() as u64;
        if p.fetched_bytes > options.max_bytes {
            return Err(FetchError::TooLarge(options.max_bytes));
        }
        sink.put(&cid, data)?;
        w.received.insert(cid);
        if let Some(feed) = feed {
            if !feed.put(block) {
                return Err(crate::fetch::decode_stopped(gateway));
            }
        }
        report(&w.progress);
        Ok(more)
    };
    go_on &= take(first, &mut w)?;
    let got = if go_on {
        let before = conn.received();
        let got = conn.car(root, &|c| expected.borrow().contains(c), &mut |block| {
            let cid = *block.cid();
            expected.borrow_mut().remove(&cid);
            match take(block, &mut w) {
                Ok(true) => Ok(()),
                // Stops the CAR (the error is not shown).
                Ok(false) => Err(GatewayError::Unexpected(Box::new(cid))),
                Err(e) => {
                    failure = Some(e);
                    Err(GatewayError::Unexpected(Box::new(cid)))
                }
            }
        });
        w.progress.requests += 1;
        w.progress.received_bytes += conn.received() - before;
        got.is_ok()
    } else {
        false
    };
    w.written = sink.finish(None)?;
    if let Some(e) = failure {
        return Err(e);
    }
    w.complete = got && expected.borrow().is_empty();
    Ok(w)
}
