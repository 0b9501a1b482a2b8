//! Fuzz target: the client's reader of a delta answer (`narfs_ipfs::delta_fetch`'s
//! `Reading`, through its fuzzing entry point) on arbitrary bytes, for a fixed
//! request of three items (a file against a stored base, a raw leaf, a file sharing
//! a leaf with the first); and the wire's pieces (`PartHead::read`, `read_block`) on
//! the same bytes.
//!
//! Oracle: no panic or unbounded allocation (a reference ≤ `MAX_REF`, a window ≤
//! 2^`WINDOW_LOG_MAX`, a block ≤ `MAX_BLOCK_SIZE`, all under libFuzzer's RSS limit);
//! every block handed on is one of the request's DAGs, each once; nothing is lost,
//! whatever the answer: every block of the request's DAGs was handed on or is
//! reachable from the rest the client fetches by the gateway; an answer read to its
//! end with no rest brought every block. Heads and block lengths read re-encode to
//! the bytes they were read from (varints are minimal, so the format is canonical).
#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use narfs_core::block::{DAG_PB, MAX_BLOCK_SIZE};
use narfs_core::dagpb::PBNode;
use narfs_core::Cid;
use narfs_ipfs::delta_fuzzing::{fixture, read_answer, Fixture};
use narfs_ipfs::delta_wire::{read_block, write_block, PartHead};

struct Fixed {
    f: Fixture,
    links: HashMap<Cid, Vec<Cid>>,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let f = fixture();
        let links = f
            .blocks
            .iter()
            .map(|(c, d)| {
                let l = if c.codec() == DAG_PB {
                    PBNode::decode(d)
                        .unwrap()
                        .links
                        .iter()
                        .map(|l| l.hash)
                        .collect()
                } else {
                    Vec::new()
                };
                (*c, l)
            })
            .collect();
        Fixed { f, links }
    })
}

/// Every block under `roots` that the fixture knows.
fn closure(links: &HashMap<Cid, Vec<Cid>>, roots: impl IntoIterator<Item = Cid>) -> HashSet<Cid> {
    let mut seen = HashSet::new();
    let mut stack: Vec<Cid> = roots.into_iter().collect();
    while let Some(c) = stack.pop() {
        if seen.insert(c) {
            stack.extend(links.get(&c).into_iter().flatten().copied());
        }
    }
    seen
}

/// The wire's pieces alone: heads, and blocks as a frame's content.
fn pieces(data: &[u8]) {
    let mut r = data;
    while let Ok(head) = PartHead::read(&mut r) {
        let used = &data[..data.len() - r.len()];
        let mut again = Vec::new();
        head.write(&mut again).unwrap();
        assert_eq!(again, used[used.len() - again.len()..], "{head:?}");
        if head == PartHead::End {
            break;
        }
    }
    let mut r = data;
    loop {
        let before = r.len();
        match read_block(&mut r) {
            Ok(Some(block)) => {
                assert!(block.len() <= MAX_BLOCK_SIZE);
                let mut again = Vec::new();
                write_block(&mut again, &block).unwrap();
                assert_eq!(again, data[data.len() - before..data.len() - r.len()]);
            }
            Ok(None) => {
                assert!(r.is_empty());
                break;
            }
            Err(_) => break,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    pieces(data);
    let Fixed { f, links } = fixed();
    let (got, rest, outcome) = read_answer(&f.items, &f.store, &mut &data[..]);
    let wanted = closure(links, f.items.iter().map(|i| i.cid));
    let mut once = HashSet::new();
    for c in &got {
        assert!(wanted.contains(c), "handed on a block not asked for: {c}");
        assert!(once.insert(*c), "handed on twice: {c}");
    }
    let covered: HashSet<Cid> = closure(links, rest.iter().copied());
    for c in &wanted {
        assert!(
            once.contains(c) || covered.contains(c),
            "lost {c}: neither received nor in the rest ({outcome:?})"
        );
    }
    if outcome.is_ok() && rest.is_empty() {
        assert_eq!(once, wanted);
    }
});
