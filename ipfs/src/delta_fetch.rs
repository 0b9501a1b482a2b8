//! The delta transfer, client side (the format and why: [`crate::delta_wire`]).
//!
//! [`plan`] runs once per fetch, before the walk: it asks the gateway for the new
//! root's names (the probe). An answer other than `200` of the names type means the
//! gateway does not speak delta (Kubo's 404, a 400, 405 or 501): the fetch then uses
//! the trustless gateway alone, without asking again. Otherwise it takes the bases
//! (`--base`, else [`crate::delta_base::default_base`]) and lists their files.
//!
//! During the walk ([`crate::prefetch`]), a missing entry whose path holds a file in
//! the base, a missing raw leaf entry, and a fetched file node none of whose leaves
//! is stored are not fetched block by block but gathered into a batch; when the walk
//! has nothing else to do (or the batch is full), the batch is one request
//! ([`run`]). Each block of the answer is decompressed (with the reference read
//! from the local store, each of its blocks verified), checked against the CID
//! [`Sequence`] says comes next, and handed to the walk like any fetched block.
//! Whatever the answer did not bring (an item left out, a frame that stopped early)
//! goes back to the walk, which fetches it by the gateway. A malformed, lying or cut
//! answer ends the delta for the rest of this fetch: what it brought and verified is
//! kept, the rest comes by the gateway.
//!
//! Memory: the reference (≤ `MAX_REF`), the zstd window (≤ 2^`WINDOW_LOG_MAX`), one
//! block, and the set of CIDs received in the answer.

use std::collections::HashSet;
use std::io::{BufReader, Read};
use std::sync::Arc;

use http::StatusCode;
use narfs_core::block::{BlockSource, Verified, RAW};
use narfs_core::Cid;
use narfs_store::Store;

use crate::delta_base::{default_base, BaseFiles};
use crate::delta_wire::{
    read_block, read_reference, request_body, Item, PartHead, Sequence, WireError, DELTA_PATH,
    MAX_NAMES, MAX_NAMES_BYTES, MAX_REF, NAMES_PATH, NAMES_TYPE, REQUEST_TYPE, RESPONSE_TYPE,
    WINDOW_LOG_MAX,
};
use crate::fetch::DeltaReport;
use crate::fetch::FetchError;
use crate::gateway_client::{Connection, Gateway, GatewayError};

/// What [`plan`] found.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// The names the server gives the root (none if it does not speak delta).
    pub(crate) names: Vec<String>,
    /// The bases' files, when the delta is to be used.
    pub(crate) files: Option<BaseFiles>,
    /// The bases used.
    pub(crate) bases: Vec<Cid>,
    /// Requests sent and bytes received by the probe.
    pub(crate) requests: u64,
    pub(crate) received: u64,
}

/// The probe, then the bases; see the module doc. `bases` are the roots the caller
/// named (`--base`), else the default base is looked for.
pub(crate) fn plan(
    gateway: &Gateway,
    store: &Store,
    root: &Cid,
    bases: &[Cid],
) -> Result<Plan, FetchError> {
    let mut plan = Plan::default();
    let mut conn = gateway.connection().map_err(|source| FetchError::Client {
        gateway: gateway.url().to_string(),
        source: Box::new(source),
    })?;
    let names = names(&mut conn, root);
    plan.requests = 1;
    plan.received = conn.received();
    let Some(names) = names else {
        return Ok(plan);
    };
    plan.names = names;
    plan.bases = if bases.is_empty() {
        match default_base(store, &plan.names, root)? {
            Some(r) => r.cid().into_iter().collect(),
            None => Vec::new(),
        }
    } else {
        bases.to_vec()
    };
    if !plan.bases.is_empty() {
        plan.files = Some(BaseFiles::load(store, &plan.bases)?);
    }
    Ok(plan)
}

/// The names of `root` from the probe; `None` if the gateway does not speak delta
/// (or the probe failed: the walk reports a gateway that is down).
fn names(conn: &mut Connection, root: &Cid) -> Option<Vec<String>> {
    let request = conn
        .request(&format!("{NAMES_PATH}{root}"), NAMES_TYPE, None)
        .ok()?;
    let mut body = conn.stream(request, NAMES_TYPE).ok()?;
    let mut text = Vec::new();
    (&mut body)
        .take(MAX_NAMES_BYTES as u64 + 1)
        .read_to_end(&mut text)
        .ok()?;
    if text.len() > MAX_NAMES_BYTES {
        return None;
    }
    let text = String::from_utf8(text).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.is_empty())
            .take(MAX_NAMES)
            .map(str::to_string)
            .collect(),
    )
}

/// What one delta request did.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Body bytes received.
    pub(crate) received: u64,
    /// What the answer did not bring: to fetch by the gateway.
    pub(crate) rest: Vec<(Cid, Arc<str>)>,
    /// Why the delta should not be used again in this fetch: the gateway refused
    /// the request, or its answer was wrong (then the error).
    pub(crate) failure: Option<FetchError>,
    /// The gateway does not serve delta requests (404, 400, 405, 501).
    pub(crate) refused: bool,
}

/// Sends one delta request for `items` (with their paths) and hands each verified
/// block to `each` (false: stop, the walk is gone).
pub(crate) fn run(
    conn: &mut Connection,
    gateway: &str,
    store: &Store,
    items: &[(Item, Arc<str>)],
    each: &mut dyn FnMut(Verified, &Arc<str>) -> bool,
) -> Outcome {
    let before = conn.received();
    let mut out = Outcome::default();
    let wanted: Vec<Item> = items.iter().map(|(i, _)| *i).collect();
    let mut state = Reading {
        items,
        next: 0,
        sent: HashSet::new(),
        current: None,
        parked: Vec::new(),
    };
    let failed = match conn.request(
        DELTA_PATH,
        RESPONSE_TYPE,
        Some((REQUEST_TYPE, request_body(&wanted))),
    ) {
        Err(e) => Some(e),
        Ok(request) => match conn.stream(request, RESPONSE_TYPE) {
            Err(e) => Some(e),
            Ok(body) => {
                let mut body = BufReader::with_capacity(64 << 10, body);
                match state.answer(&mut body, store, each) {
                    Ok(()) => None,
                    Err(e) => Some(GatewayError::Delta(Box::new(e))),
                }
            }
        },
    };
    if let Some(e) = failed {
        conn.reset();
        out.refused = matches!(&e, GatewayError::Status { status, .. } if refusal(*status));
        if !out.refused {
            out.failure = Some(FetchError::Delta {
                gateway: gateway.to_string(),
                source: Box::new(e),
            });
        }
    }
    out.rest = state.rest();
    out.received = conn.received() - before;
    out
}

/// A status by which a gateway says it has no such endpoint.
fn refusal(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::NOT_FOUND
            | StatusCode::BAD_REQUEST
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::NOT_IMPLEMENTED
    )
}

/// The walk's side of the delta transfer ([`crate::delta_fetch`]).
pub(crate) struct Delta {
    pub(crate) files: BaseFiles,
    /// Items gathered for the next request.
    pub(crate) batch: Vec<(Item, Arc<str>)>,
    /// Blocks once batched: never again (what a delta did not bring comes by the
    /// gateway).
    pub(crate) tried: HashSet<Cid>,
    /// Every block received in this walk (a delta answer may repeat a block, and its
    /// blocks' links are not walked).
    pub(crate) received: HashSet<Cid>,
    /// Delta requests in flight.
    pub(crate) in_flight: usize,
    /// Refused or failed: not used again in this fetch.
    pub(crate) off: bool,
    pub(crate) report: DeltaReport,
}

impl Delta {
    pub(crate) fn new(files: BaseFiles, report: DeltaReport) -> Delta {
        Delta {
            files,
            batch: Vec::new(),
            tried: HashSet::new(),
            received: HashSet::new(),
            in_flight: 0,
            off: false,
            report,
        }
    }

    /// Whether `cid` may still be batched.
    pub(crate) fn wants(&self, cid: &Cid) -> bool {
        !self.off && !self.tried.contains(cid)
    }

    pub(crate) fn take(&mut self, cid: Cid, base: Option<Cid>, path: Arc<str>) {
        self.tried.insert(cid);
        self.batch.push((Item { cid, base }, path));
    }

    /// Batches a missing entry at `path`: against the base's file there, or without
    /// a base if it is a raw leaf (a small file). False: fetch it by the gateway (a
    /// node at a path the base has no file at may be a directory).
    pub(crate) fn divert(&mut self, cid: Cid, path: &Arc<str>) -> bool {
        if !self.wants(&cid) {
            return false;
        }
        match self.files.at(path).copied() {
            Some(base) if base != cid => self.take(cid, Some(base), path.clone()),
            _ if cid.codec() == RAW => self.take(cid, None, path.clone()),
            _ => return false,
        }
        true
    }
}

/// Reading one answer.
struct Reading<'a> {
    items: &'a [(Item, Arc<str>)],
    /// The first item no part has started.
    next: usize,
    /// Blocks received in this answer.
    sent: HashSet<Cid>,
    /// The part being read: its sequence, item, and the last item of its run.
    current: Option<(Sequence, usize, usize)>,
    /// What parts that stopped early, and items left out, did not bring.
    parked: Vec<(Cid, Arc<str>)>,
}

impl Reading<'_> {
    fn answer(
        &mut self,
        body: &mut dyn std::io::BufRead,
        store: &impl BlockSource,
        each: &mut dyn FnMut(Verified, &Arc<str>) -> bool,
    ) -> Result<(), WireError> {
        loop {
            let head = PartHead::read(body)?;
            let (first, last, reference) = match head {
                PartHead::End => {
                    let mut one = [0u8];
                    return match body.read(&mut one) {
                        Ok(0) => Ok(()),
                        Ok(_) => Err(WireError::Trailing("the answer")),
                        Err(e) => Err(WireError::Io(e)),
                    };
                }
                PartHead::Delta { item, ref_len } => {
                    let base = self
                        .items
                        .get(item)
                        .and_then(|(i, _)| i.base)
                        .filter(|_| item >= self.next)
                        .ok_or_else(|| lying(format!("item {item}, which has no base or came")))?;
                    if ref_len > MAX_REF || ref_len == 0 {
                        return Err(lying(format!("a reference of {ref_len} bytes")));
                    }
                    (item, item, Some(read_reference(store, &base, ref_len)?))
                }
                PartHead::Plain { first, count } => {
                    let last = first
                        .checked_add(count)
                        .filter(|&end| count > 0 && first >= self.next && end <= self.items.len())
                        .ok_or_else(|| lying(format!("items {first} + {count}")))?;
                    (first, last - 1, None)
                }
            };
            // Items the server left out.
            for (item, p) in &self.items[self.next..first] {
                self.parked.push((item.cid, p.clone()));
            }
            self.next = last + 1;
            let mut seq = Sequence::default();
            seq.start(self.items[first].0.cid);
            self.current = Some((seq, first, last));
            let mut decoder = match &reference {
                Some(r) => zstd::stream::read::Decoder::with_ref_prefix(&mut *body, r),
                None => zstd::stream::read::Decoder::with_buffer(&mut *body),
            }
            .map_err(WireError::Io)?
            .single_frame();
            decoder
                .window_log_max(WINDOW_LOG_MAX)
                .map_err(WireError::Io)?;
            let mut frame = BufReader::with_capacity(128 << 10, decoder);
            let complete = self.frame(&mut frame, each)?;
            if complete && read_block(&mut frame)?.is_some() {
                return Err(WireError::Trailing("a frame"));
            }
            // What the frame did not bring stays in `current` (its rest).
            if !complete {
                let mut end = [0u8];
                if frame.read(&mut end).map_err(WireError::Io)? != 0 {
                    return Err(WireError::Trailing("a frame"));
                }
            }
            self.park();
        }
    }

    /// Reads the blocks of the part in `current` from one frame; false if the frame
    /// ended before them (what did not come stays in `current`). A block taken from
    /// the sequence goes back into it unless it came and verified, so that the rest
    /// is exact whatever fails.
    fn frame(
        &mut self,
        frame: &mut dyn Read,
        each: &mut dyn FnMut(Verified, &Arc<str>) -> bool,
    ) -> Result<bool, WireError> {
        loop {
            let Some((seq, k, last)) = self.current.as_mut() else {
                return Ok(true);
            };
            let Some(cid) = seq.next(&self.sent) else {
                if *k == *last {
                    self.current = None;
                    return Ok(true);
                }
                *k += 1;
                seq.start(self.items[*k].0.cid);
                continue;
            };
            let data = match read_block(frame) {
                Ok(Some(data)) => data,
                // The frame stopped early: the rest comes another way.
                Ok(None) => {
                    seq.start(cid);
                    return Ok(false);
                }
                Err(e) => {
                    seq.start(cid);
                    return Err(e);
                }
            };
            let block = match Verified::check(&cid, data) {
                Ok(b) => b,
                Err(source) => {
                    seq.start(cid);
                    let cid = Box::new(cid);
                    return Err(WireError::WrongBlock { cid, source });
                }
            };
            seq.sent(&cid, block.data());
            self.sent.insert(cid);
            let path = self.items[*k].1.clone();
            if !each(block, &path) {
                return Err(WireError::Io(std::io::Error::other("the walk stopped")));
            }
        }
    }

    /// Moves the unfinished part's rest aside (kept for [`rest`](Self::rest)).
    fn park(&mut self) {
        if let Some((seq, k, last)) = self.current.take() {
            let path = self.items[k].1.clone();
            let mut rest: Vec<(Cid, Arc<str>)> = seq
                .rest(&self.sent)
                .into_iter()
                .map(|c| (c, path.clone()))
                .collect();
            for (item, p) in &self.items[k + 1..=last] {
                if !self.sent.contains(&item.cid) {
                    rest.push((item.cid, p.clone()));
                }
            }
            self.parked.extend(rest);
        }
    }

    /// Everything not received: parked rests, the current part's, items not reached.
    fn rest(mut self) -> Vec<(Cid, Arc<str>)> {
        self.park();
        let mut rest = std::mem::take(&mut self.parked);
        for (item, p) in &self.items[self.next.min(self.items.len())..] {
            if !self.sent.contains(&item.cid) {
                rest.push((item.cid, p.clone()));
            }
        }
        rest
    }
}

fn lying(what: String) -> WireError {
    WireError::Lying { what }
}

/// The answer reader on a small fixed store, for `fuzz/` (`delta_answer`) and its
/// seed: not an API. [`Reading`] stays private; this is its one other entry point.
#[doc(hidden)]
pub mod fuzzing {
    use std::collections::HashSet;
    use std::io::BufRead;
    use std::sync::Arc;

    use narfs_core::block::{cid_for, HashAlg, MemoryStore, DAG_PB, RAW};
    use narfs_core::dagpb::{PBLink, PBNode};
    use narfs_core::unixfs::{DataType, UnixFsData};
    use narfs_core::Cid;

    use super::Reading;
    use crate::delta_wire::{write_block, Item, PartHead, WireError, LEVEL};

    /// A file node over raw leaves: its CID, and its blocks (the node first).
    pub(crate) fn file(leaves: &[&[u8]]) -> (Cid, Vec<(Cid, Vec<u8>)>) {
        let leaves: Vec<(Cid, Vec<u8>)> = leaves
            .iter()
            .map(|d| (cid_for(RAW, HashAlg::Sha2_256, d), d.to_vec()))
            .collect();
        let mut fs = UnixFsData::new(DataType::File);
        fs.filesize = Some(leaves.iter().map(|(_, d)| d.len() as u64).sum());
        fs.blocksizes = leaves.iter().map(|(_, d)| d.len() as u64).collect();
        let node = PBNode {
            links: leaves
                .iter()
                .map(|(c, d)| PBLink {
                    hash: *c,
                    name: Some(String::new()),
                    tsize: Some(d.len() as u64),
                })
                .collect(),
            data: Some(fs.encode()),
        }
        .encode();
        let cid = cid_for(DAG_PB, HashAlg::Sha2_256, &node);
        let mut blocks = vec![(cid, node)];
        blocks.extend(leaves);
        (cid, blocks)
    }

    /// The fixture: what the client holds (the base file), what it asks for (a new
    /// version of that file against it, a raw leaf, and a file sharing a leaf with
    /// the first), and every block of the new DAGs (none of them stored).
    pub struct Fixture {
        pub store: MemoryStore,
        pub items: Vec<Item>,
        pub blocks: Vec<(Cid, Vec<u8>)>,
    }

    pub fn fixture() -> Fixture {
        let (base, base_blocks) = file(&[b"the first leaf, old", b"the second leaf, old"]);
        let (new, new_blocks) = file(&[b"the first leaf, new", b"the second leaf, old"]);
        let leaf: &[u8] = b"a small file";
        let leaf_cid = cid_for(RAW, HashAlg::Sha2_256, leaf);
        let (other, other_blocks) = file(&[b"the first leaf, new", b"a third leaf"]);
        let mut store = MemoryStore::new();
        for (c, d) in base_blocks {
            store.insert_unchecked(c, d);
        }
        let mut blocks = new_blocks;
        blocks.push((leaf_cid, leaf.to_vec()));
        blocks.extend(other_blocks);
        let items = vec![
            Item {
                cid: new,
                base: Some(base),
            },
            Item {
                cid: leaf_cid,
                base: None,
            },
            Item {
                cid: other,
                base: None,
            },
        ];
        Fixture {
            store,
            items,
            blocks,
        }
    }

    /// A complete answer for the fixture, as `narfs serve` sends it: the first item
    /// against its base's whole bytes, the other two in one plain run.
    pub fn sample_answer(f: &Fixture) -> Vec<u8> {
        let base = f.items[0].base.expect("the first item has a base");
        let reference =
            crate::delta_wire::read_reference(&f.store, &base, 39).expect("the base is stored");
        let block = |cid: &Cid| &f.blocks.iter().find(|(c, _)| c == cid).expect("known").1;
        let mut out = Vec::new();
        PartHead::Delta {
            item: 0,
            ref_len: 39,
        }
        .write(&mut out)
        .unwrap();
        let mut z = zstd::stream::write::Encoder::with_ref_prefix(&mut out, LEVEL, &reference)
            .expect("zstd encoder");
        for (_, d) in &f.blocks[..3] {
            write_block(&mut z, d).unwrap();
        }
        z.finish().unwrap();
        PartHead::Plain { first: 1, count: 2 }
            .write(&mut out)
            .unwrap();
        let mut z = zstd::stream::write::Encoder::new(&mut out, LEVEL).expect("zstd encoder");
        // The run's blocks, each once per answer: the shared first leaf came already.
        for cid in [f.items[1].cid, f.items[2].cid] {
            write_block(&mut z, block(&cid)).unwrap();
        }
        write_block(&mut z, &f.blocks[6].1).unwrap();
        z.finish().unwrap();
        PartHead::End.write(&mut out).unwrap();
        out
    }

    /// Reads `answer` for `items` against `store`: the CIDs handed on, in order,
    /// the rest (to fetch by the gateway), and the outcome.
    pub fn read_answer(
        items: &[Item],
        store: &MemoryStore,
        answer: &mut dyn BufRead,
    ) -> (Vec<Cid>, Vec<Cid>, Result<(), WireError>) {
        let items: Vec<(Item, Arc<str>)> = items.iter().map(|i| (*i, Arc::from("f"))).collect();
        let mut r = Reading {
            items: &items,
            next: 0,
            sent: HashSet::new(),
            current: None,
            parked: Vec::new(),
        };
        let mut got = Vec::new();
        let outcome = r.answer(answer, store, &mut |b, _| {
            got.push(*b.cid());
            true
        });
        let rest = r.rest().into_iter().map(|(c, _)| c).collect();
        (got, rest, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use narfs_core::block::MemoryStore;

    /// Blocks as CID and bytes.
    type Blocks = Vec<(Cid, Vec<u8>)>;

    /// A file node over two raw leaves: (node CID, node bytes, leaves).
    fn file() -> (Cid, Vec<u8>, Blocks) {
        let (cid, mut blocks) = fuzzing::file(&[b"first leaf", b"second leaf"]);
        let (_, node) = blocks.remove(0);
        (cid, node, blocks)
    }

    fn frame(blocks: &[&[u8]]) -> Vec<u8> {
        let mut z = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        for b in blocks {
            crate::delta_wire::write_block(&mut z, b).unwrap();
        }
        z.finish().unwrap()
    }

    /// Reads `answer` for `items`: the CIDs handed on, the rest, the outcome.
    fn read(items: &[Item], answer: &[u8]) -> (Vec<Cid>, Vec<Cid>, Result<(), WireError>) {
        fuzzing::read_answer(items, &MemoryStore::new(), &mut &answer[..])
    }

    #[test]
    fn a_frame_that_stops_early_leaves_exactly_the_rest() {
        let (node, bytes, leaves) = file();
        let item = Item {
            cid: node,
            base: None,
        };
        let other = Item {
            cid: leaves[1].0,
            base: None,
        };
        // The node and its first leaf, then the frame ends; the second item is left
        // out by the server.
        let mut answer = Vec::new();
        PartHead::Plain { first: 0, count: 1 }
            .write(&mut answer)
            .unwrap();
        answer.extend(frame(&[&bytes, &leaves[0].1]));
        PartHead::End.write(&mut answer).unwrap();
        let (got, rest, outcome) = read(&[item, other], &answer);
        outcome.unwrap();
        assert_eq!(got, [node, leaves[0].0]);
        assert_eq!(rest, [leaves[1].0, leaves[1].0]);

        // The whole DAG, in order: nothing left.
        let mut answer = Vec::new();
        PartHead::Plain { first: 0, count: 1 }
            .write(&mut answer)
            .unwrap();
        answer.extend(frame(&[&bytes, &leaves[0].1, &leaves[1].1]));
        PartHead::End.write(&mut answer).unwrap();
        let (got, rest, outcome) = read(&[item], &answer);
        outcome.unwrap();
        assert_eq!(got.len(), 3);
        assert!(rest.is_empty());
    }

    #[test]
    fn a_wrong_block_or_a_lie_stops_with_the_rest_exact() {
        let (node, bytes, leaves) = file();
        let item = Item {
            cid: node,
            base: None,
        };
        // Leaves out of order: the second is not the one expected.
        let mut answer = Vec::new();
        PartHead::Plain { first: 0, count: 1 }
            .write(&mut answer)
            .unwrap();
        answer.extend(frame(&[&bytes, &leaves[1].1, &leaves[0].1]));
        let (got, rest, outcome) = read(&[item], &answer);
        assert!(
            matches!(outcome, Err(WireError::WrongBlock { .. })),
            "{outcome:?}"
        );
        assert_eq!(got, [node]);
        let mut rest = rest;
        rest.sort();
        let mut want = vec![leaves[0].0, leaves[1].0];
        want.sort();
        assert_eq!(rest, want);
        // A delta part for an item without a base; a run past the items.
        for head in [
            PartHead::Delta {
                item: 0,
                ref_len: 5,
            },
            PartHead::Plain { first: 0, count: 2 },
        ] {
            let mut answer = Vec::new();
            head.write(&mut answer).unwrap();
            let (got, rest, outcome) = read(&[item], &answer);
            assert!(
                matches!(outcome, Err(WireError::Lying { .. })),
                "{outcome:?}"
            );
            assert!(got.is_empty());
            assert_eq!(rest, [node]);
        }
        // Blocks after the last one of a frame.
        let mut answer = Vec::new();
        PartHead::Plain { first: 0, count: 1 }
            .write(&mut answer)
            .unwrap();
        answer.extend(frame(&[&bytes, &leaves[0].1, &leaves[1].1, b"more"]));
        let (_, rest, outcome) = read(&[item], &answer);
        assert!(
            matches!(outcome, Err(WireError::Trailing(_))),
            "{outcome:?}"
        );
        assert!(rest.is_empty());
    }

    /// The fuzz fixture's sample answer reads back whole; with `NARFS_FUZZ_SEEDS=DIR`
    /// it is also written there, with its request, as seeds for `fuzz/`
    /// (`fuzz/seeds/delta_answer`, `fuzz/seeds/delta_request`).
    #[test]
    fn the_fuzz_sample_answer_reads_back_whole() {
        let f = fuzzing::fixture();
        let answer = fuzzing::sample_answer(&f);
        let (got, rest, outcome) = fuzzing::read_answer(&f.items, &f.store, &mut &answer[..]);
        outcome.unwrap();
        assert!(rest.is_empty(), "{rest:?}");
        let mut want: Vec<Cid> = f.blocks.iter().map(|(c, _)| *c).collect();
        want.dedup_by(|a, b| a == b);
        want.remove(5); // the shared leaf comes once
        assert_eq!(got, want);
        if let Some(dir) = std::env::var_os("NARFS_FUZZ_SEEDS") {
            let dir = std::path::Path::new(&dir);
            for (t, bytes) in [
                ("delta_answer", answer.clone()),
                ("delta_request", request_body(&f.items)),
            ] {
                std::fs::create_dir_all(dir.join(t)).unwrap();
                std::fs::write(dir.join(t).join("sample"), bytes).unwrap();
            }
        }
    }
}
