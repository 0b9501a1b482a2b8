//! A branch or leaf page read by `pread` and checked before use ([`View::page`]): its
//! header, every node's offset and size inside it, no two nodes overlapping, keys
//! ascending, every page number it names inside the snapshot.

use super::*;

/// A checked node of a page: where its key lies in the page, and what it leads to.
pub(super) struct Node {
    pub(super) key: std::ops::Range<usize>,
    pub(super) to: To,
}

pub(super) enum To {
    Child(u64),
    Inline(std::ops::Range<usize>),
    Overflow {
        pgno: u64,
        len: u64,
    },
    /// A named tree's record (main tree only).
    Named(Tree),
}

/// A branch or leaf page, every node checked.
pub(super) struct Page {
    pub(super) bytes: Vec<u8>,
    pub(super) nodes: Vec<Node>,
    /// A kept branch page's separators (the keys of its nodes after the first) as
    /// their [`prefix`]es, side by side: searched instead of the keys, each behind a
    /// range into `bytes`, where most lookups of a packed store spent their compares
    /// (a branch page holds ~70 separators, a leaf of small blocks a few keys). Empty
    /// for other pages.
    pub(super) prefixes: Vec<u64>,
}

impl Page {
    /// How many of a branch page's separators are ≤ `key`: the index of the child
    /// the tree sends `key` to (the first node has no separator). Keys ascend
    /// (checked), so their prefixes do too, and equal prefixes are compared whole.
    pub(super) fn separators_at_most(&self, key: &[u8]) -> usize {
        let seps = &self.nodes[1..];
        if self.prefixes.len() != seps.len() {
            return seps.partition_point(|n| self.key(n) <= key);
        }
        let p = prefix(key);
        let first = self.prefixes.partition_point(|&x| x < p);
        first
            + seps[first..]
                .iter()
                .zip(&self.prefixes[first..])
                .take_while(|&(n, &x)| x == p && self.key(n) <= key)
                .count()
    }

    pub(super) fn key(&self, n: &Node) -> &[u8] {
        &self.bytes[n.key.clone()]
    }

    pub(super) fn value(&self, n: &Node) -> Option<Value> {
        match &n.to {
            To::Child(_) | To::Named(_) => None,
            To::Inline(r) => Some(Value::Inline(self.bytes[r.clone()].to_vec())),
            &To::Overflow { pgno, len } => Some(Value::Overflow { pgno, len }),
        }
    }
}

impl View<'_> {
    /// Reads page `pgno` as a branch or leaf page and checks every node on it; `named`:
    /// its leaves may name named trees (the main tree's may).
    pub(super) fn page(
        &self,
        pgno: u64,
        leaf: bool,
        keys: Keys,
        named: bool,
    ) -> Result<Page, Error> {
        if pgno < 2 || pgno > self.meta.last {
            return Err(self.damaged(format!("page {pgno} is not a page of the file")));
        }
        let psize = self.meta.psize as usize;
        let (mut p, mut out) = spare::take(psize);
        self.file
            .read_exact_into(pgno * self.meta.psize, &mut p, || format!("page {pgno}"))?;
        let bad = |what: String| self.damaged(format!("page {pgno}: {what}"));
        let want = if leaf { P_LEAF } else { P_BRANCH };
        // Exactly the type: LMDB clears `P_DIRTY` before it writes a page and never
        // writes one marked `P_LOOSE` or `P_KEEP`. Its writer trusts those bits: a
        // page marked dirty is changed in place, in the read-only map (SIGSEGV).
        let flags = u16_at(&p, 10);
        if u64_at(&p, 0) != pgno || flags != want {
            return Err(bad(format!(
                "header says page {} type {flags:#x}, expected a {} page",
                u64_at(&p, 0),
                if leaf { "leaf" } else { "branch" }
            )));
        }
        let (lower, upper) = (u16_at(&p, 12) as usize, u16_at(&p, 14) as usize);
        if lower < HDR
            || lower > upper
            || upper > psize
            || !(lower - HDR).is_multiple_of(2)
            || lower == HDR
        {
            return Err(bad(format!("free space bounds {lower}..{upper}")));
        }
        let n = (lower - HDR) / 2;
        out.reserve(n);
        // LMDB's writer moves nodes by their sizes, rounded up to even (`EVEN`), and
        // shifts the offsets of the nodes below: overlapping nodes would take it past
        // the page. LMDB leaves gaps (a key shortened by one byte) but no overlap.
        // Each node's bytes are marked in a bitmap of the page as it is read (sorting
        // the extents instead took a quarter of the checks' time; a list of them was
        // one more allocation per page read).
        // As many words as the page needs, on the stack for LMDB's usual 4 KiB: a
        // bitmap for the largest page (32 KiB) was 4 KiB zeroed per lookup (with the
        // page's own buffer, most of a decode's `memset`).
        let mut small = [0u64; 4096 / 64];
        let mut large = Vec::new();
        let taken: &mut [u64] = if psize <= 4096 {
            &mut small
        } else {
            large.resize(psize.div_ceil(64), 0);
            &mut large
        };
        let mut extent = |at: usize, len: usize| {
            let end = at + len.next_multiple_of(2);
            if end > psize || mark(taken, at, end) {
                return Err(bad(format!("the node at offset {at} overlaps another")));
            }
            Ok(())
        };
        for i in 0..n {
            let at = u16_at(&p, HDR + 2 * i) as usize;
            if at < upper || at + NODE > psize {
                return Err(bad(format!("node {i} at offset {at}")));
            }
            let (lo, hi) = (u16_at(&p, at) as u64, u16_at(&p, at + 2) as u64);
            let nflags = u16_at(&p, at + 4);
            let ksize = u16_at(&p, at + 6) as usize;
            let key_end = at + NODE + ksize;
            if ksize > MAX_KEY || key_end > psize {
                return Err(bad(format!("node {i}: key of {ksize} bytes")));
            }
            let key = at + NODE..key_end;
            let ordered = matches!(keys, Keys::Bytes) || ksize == 8;
            if !ordered && (leaf || i > 0) {
                return Err(bad(format!("node {i}: a free-list key of {ksize} bytes")));
            }
            // A branch's first key is not compared (it stands for "everything below").
            let first_compared = if leaf { 0 } else { 1 };
            if i > first_compared {
                let prev = &p[out[i - 1].key.clone()];
                if keys.cmp(prev, &p[key.clone()]) != Ordering::Less {
                    return Err(bad(format!("node {i}: keys out of order")));
                }
            }
            if !leaf {
                let child = lo | hi << 16 | u64::from(nflags) << 32;
                if child < 2 || child > self.meta.last {
                    return Err(bad(format!("node {i}: child page {child}")));
                }
                extent(at, NODE + ksize)?;
                out.push(Node {
                    key,
                    to: To::Child(child),
                });
                continue;
            }
            let len = lo | hi << 16;
            let value = match nflags {
                0 => {
                    let end = key_end + len as usize;
                    if end > psize {
                        return Err(bad(format!("node {i}: value of {len} bytes")));
                    }
                    extent(at, end - at)?;
                    To::Inline(key_end..end)
                }
                F_BIGDATA if key_end + 8 <= psize => {
                    let first = u64_at(&p, key_end);
                    self.check_overflow(first, len)?;
                    extent(at, key_end + 8 - at)?;
                    To::Overflow { pgno: first, len }
                }
                F_SUBDATA if named && len == TREE as u64 && key_end + TREE <= psize => {
                    let tree = Tree::parse(&p[key_end..key_end + TREE]);
                    if tree.flags != 0 {
                        return Err(bad(format!("node {i}: a named tree with flags")));
                    }
                    tree.check(self.meta.last)
                        .map_err(|e| bad(format!("node {i}: named tree: {e}")))?;
                    extent(at, key_end + TREE - at)?;
                    To::Named(tree)
                }
                _ => return Err(bad(format!("node {i}: flags {nflags:#x}"))),
            };
            out.push(Node { key, to: value });
        }
        Ok(Page {
            bytes: p,
            nodes: out,
            prefixes: Vec::new(),
        })
    }
}

/// A page's buffers are handed back when it is dropped and taken by the next page
/// read on the thread: a lookup reads a leaf page per block (~53,000 for a NAR of
/// small files), and a new zeroed `Vec` for its bytes and another for its nodes each
/// time were two allocations and a 4 KiB `memset` per block.
impl Drop for Page {
    fn drop(&mut self) {
        spare::give(
            std::mem::take(&mut self.bytes),
            std::mem::take(&mut self.nodes),
        );
    }
}

mod spare {
    use super::Node;
    use std::cell::RefCell;

    /// Pages alive at once on a thread: a lookup's leaf, a scan's branches.
    const KEEP: usize = 4;
    /// Nodes a kept list may hold (a 32 KiB page of the smallest nodes).
    const KEEP_NODES: usize = 4096;

    thread_local! {
        static SPARE: RefCell<Vec<(Vec<u8>, Vec<Node>)>> = const { RefCell::new(Vec::new()) };
    }

    /// A buffer of `psize` bytes (its contents whatever a page read left there) and
    /// an empty node list.
    pub(super) fn take(psize: usize) -> (Vec<u8>, Vec<Node>) {
        let (mut bytes, nodes) = SPARE
            .try_with(|s| s.borrow_mut().pop())
            .ok()
            .flatten()
            .unwrap_or_default();
        bytes.resize(psize, 0);
        (bytes, nodes)
    }

    pub(super) fn give(bytes: Vec<u8>, mut nodes: Vec<Node>) {
        if bytes.capacity() == 0 || nodes.capacity() > KEEP_NODES {
            return;
        }
        nodes.clear();
        // A thread being torn down keeps nothing.
        let _ = SPARE.try_with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < KEEP {
                s.push((bytes, nodes));
            }
        });
    }
}

/// Marks bytes `from..to` (`from` < `to`) taken in `bits`; whether any was already.
fn mark(bits: &mut [u64], from: usize, to: usize) -> bool {
    let mut clash = false;
    let (first, last) = (from / 64, (to - 1) / 64);
    for (w, word) in bits.iter_mut().enumerate().take(last + 1).skip(first) {
        let lo = if w == first { from % 64 } else { 0 };
        let hi = if w == last { (to - 1) % 64 + 1 } else { 64 };
        let m = (u64::MAX >> (64 - (hi - lo))) << lo;
        clash |= *word & m != 0;
        *word |= m;
    }
    clash
}

#[cfg(test)]
mod tests {
    use super::{mark, prefix, Node, Page, To};

    /// A branch page of these separators (after a first node without one), with
    /// its prefixes when `kept`.
    fn branch(seps: &[Vec<u8>], kept: bool) -> Page {
        let mut bytes = Vec::new();
        let mut nodes = vec![Node {
            key: 0..0,
            to: To::Child(2),
        }];
        for (i, k) in seps.iter().enumerate() {
            let at = bytes.len();
            bytes.extend_from_slice(k);
            nodes.push(Node {
                key: at..bytes.len(),
                to: To::Child(3 + i as u64),
            });
        }
        let prefixes = match kept {
            true => seps.iter().map(|k| prefix(k)).collect(),
            false => Vec::new(),
        };
        Page {
            bytes,
            nodes,
            prefixes,
        }
    }

    #[test]
    fn the_prefix_search_of_a_branch_sends_every_key_where_the_keys_do() {
        // Separators sharing 8-byte prefixes (as CIDs share their first 4), shorter
        // than 8 bytes, and a prefix of another.
        let mut seps: Vec<Vec<u8>> = vec![
            vec![1],
            vec![1, 0x55, 0x12, 0x20, 7],
            vec![1, 0x55, 0x12, 0x20, 7, 0, 0, 0, 1],
            vec![1, 0x55, 0x12, 0x20, 7, 0, 0, 0, 1, 5],
            vec![1, 0x55, 0x12, 0x20, 7, 0, 0, 0, 2],
            vec![1, 0x55, 0x12, 0x20, 9, 9, 9, 9, 9, 9],
            vec![1, 0x70, 0x12, 0x20, 0],
            vec![0xff; 36],
        ];
        seps.sort();
        let (kept, plain) = (branch(&seps, true), branch(&seps, false));
        let mut keys: Vec<Vec<u8>> = vec![vec![], vec![0], vec![0xff; 40]];
        for k in &seps {
            keys.push(k.clone());
            let mut more = k.clone();
            more.push(0);
            keys.push(more);
            let mut less = k.clone();
            if let Some(last) = less.last_mut() {
                *last = last.wrapping_sub(1);
            }
            keys.push(less);
            keys.push(k[..k.len() - 1].to_vec());
        }
        for k in &keys {
            let want = seps.partition_point(|s| s.as_slice() <= k.as_slice());
            assert_eq!(kept.separators_at_most(k), want, "{k:?}");
            assert_eq!(plain.separators_at_most(k), want, "{k:?}");
        }
    }

    #[test]
    fn marking_finds_every_overlap_and_only_those() {
        // Against a byte-by-byte model, over ranges that cross words and touch.
        let ranges = [
            (40, 70),
            (70, 72),
            (130, 200),
            (199, 201),
            (0, 40),
            (64, 65),
            (256, 384),
        ];
        let mut bits = [0u64; 8];
        let mut model = [false; 512];
        for (from, to) in ranges {
            let want = model[from..to].iter().any(|&b| b);
            model[from..to].iter_mut().for_each(|b| *b = true);
            assert_eq!(mark(&mut bits, from, to), want, "{from}..{to}");
        }
        for (i, &b) in model.iter().enumerate() {
            assert_eq!(bits[i / 64] >> (i % 64) & 1 == 1, b, "byte {i}");
        }
    }
}
