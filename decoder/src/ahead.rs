//! Which directory entries are fetched and verified together, and which are announced
//! to the source ahead of them.
//!
//! A NAR of small files is mostly one-leaf files in large directories. Verifying them
//! one after another wastes the multi-buffer kernel's lanes (it hashes messages of
//! about equal length side by side, so the more files in a batch, the fuller its
//! lanes) and costs a hand-off between the walk and the pool per batch; so up to
//! [`MAX_ENTRIES`] entries go in one batch, as many as their links' `Tsize` claims fit
//! in [`Limits::readahead`](crate::Limits::readahead) bytes (always at least one).
//! The claims only size the batch, and only once they have held: a directory's first
//! batch is at most [`UNCLAIMED_ENTRIES`]; once an entry turns out larger than its
//! claim ([`lied`]), its later batches are [`UNCLAIMED_ENTRIES`] entries whatever they
//! claim. So lying claims cost one batch of [`MAX_ENTRIES`] blocks (of at most 4 MiB)
//! per directory at most, and only after a batch whose claims held. The batch is cut
//! into parts of about equal claimed bytes ([`weights`]), shared by both cores, rather
//! than of equal count: one large file among many small ones would otherwise leave one
//! core idle.
//!
//! The next run of one-leaf entries after a batch is given to
//! [`BlockSource::will_need`](narfs_core::block::BlockSource::will_need), so that a
//! store decompresses their packs on the other core while this batch is hashed and
//! written. The run stops at an entry that is not a raw leaf (a subdirectory, or a
//! file of many blocks): what follows it in the DAG's order lies after that whole
//! subtree in the store's packs, and loading it now would only take cache room. That
//! entry's own block is announced with the run: the walk fetches it right after, and
//! its pack (a grouped store keeps an item's nodes together) was otherwise
//! decompressed on the walk's path.

use narfs_core::block::RAW;
use narfs_core::Cid;

/// Most entries fetched and verified together (16 multi-buffer groups of 4 lanes).
pub(crate) const MAX_ENTRIES: usize = 64;
/// Entries per batch in a directory whose claims did not hold.
pub(crate) const UNCLAIMED_ENTRIES: usize = 16;
/// Most entries announced ahead at once, and the bytes they may claim.
pub(crate) const HINT_ENTRIES: usize = 256;
pub(crate) const HINT_BYTES: u64 = 8 << 20;
/// Most bytes the walk's batches (and the first leaves it fetches ahead for files)
/// claim, however large the read-ahead: a file's runs want 12 MiB (three parts of 16
/// leaves, `crate::runs`), but batches of small files as large only raised the peak
/// memory of a decode of 46,537 small files (to ~64–67 MiB, against ~57 with 4 MiB).
pub(crate) const BATCH_BYTES: u64 = 4 << 20;

/// The bytes a batch of the walk may claim under `limits`.
pub(crate) fn batch_bytes(limits: &crate::Limits) -> u64 {
    limits.readahead.min(BATCH_BYTES)
}

/// A directory entry as the walk keeps it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) cid: Cid,
    /// The link's `Tsize` (its subtree's bytes as the parent claims them), if any.
    pub(crate) tsize: Option<u64>,
}

impl Entry {
    /// What fetching the entry's first block is taken to cost: its claimed size, the
    /// whole `budget` when nothing is claimed.
    fn claim(&self, budget: u64) -> u64 {
        self.tsize.unwrap_or(budget)
    }
}

/// How many of `entries` (those after the last fetched) make the next batch: at most
/// [`MAX_ENTRIES`], their claims within `budget`, and at least one unless there are
/// none.
pub(crate) fn batch_len(entries: &[Entry], budget: u64) -> usize {
    let mut claimed = 0u64;
    let fit = entries
        .iter()
        .take(MAX_ENTRIES)
        .take_while(|e| {
            claimed = claimed.saturating_add(e.claim(budget));
            claimed <= budget
        })
        .count();
    fit.max(entries.len().min(1))
}

/// How many of `entries` (those after the last fetched of a directory around the
/// one a batch is for) fill that batch up: at most `max`, each with a claimed size,
/// their claims within `budget`; possibly none.
pub(crate) fn fill_len(entries: &[Entry], budget: u64, max: usize) -> usize {
    let mut claimed = 0u64;
    entries
        .iter()
        .take(max)
        .take_while(|e| {
            claimed = claimed.saturating_add(e.tsize.unwrap_or(u64::MAX));
            claimed <= budget
        })
        .count()
}

/// Whether an entry's first block, `len` bytes, is larger than the entry's claimed
/// size (its link's `Tsize` counts the block itself and everything below it).
pub(crate) fn lied(entry: &Entry, len: usize) -> bool {
    entry.tsize.is_some_and(|t| len as u64 > t)
}

/// What each of `entries` is expected to cost to fetch and verify: its claimed size
/// (the whole `budget` when nothing is claimed), for cutting a batch into parts of
/// about equal cost ([`crate::fetch::fetch_weighted`]).
pub(crate) fn weights(entries: &[Entry], budget: u64) -> Vec<u64> {
    entries.iter().map(|e| e.claim(budget)).collect()
}

/// The CIDs of the run of raw-leaf entries (with a claimed size) at the start of
/// `entries` to announce: at most [`HINT_ENTRIES`] and [`HINT_BYTES`] claimed; and
/// the entry that ends the run when it is a node (a subdirectory or a file of many
/// blocks), whose own block comes next, but nothing after it.
pub(crate) fn hints(entries: &[Entry]) -> Vec<Cid> {
    let mut claimed = 0u64;
    let mut run: Vec<Cid> = entries
        .iter()
        .take(HINT_ENTRIES)
        .take_while(|e| {
            claimed = claimed.saturating_add(e.claim(HINT_BYTES));
            e.cid.codec() == RAW && e.tsize.is_some() && claimed <= HINT_BYTES
        })
        .map(|e| e.cid)
        .collect();
    // The entry that ends the run, when a node: its block is the next the walk
    // fetches after the run's (`decode --pack-stats`: 351 → 289 packs the readers
    // decompressed themselves on the large repacked store, none more decompressed).
    if let Some(e) = entries
        .get(run.len())
        .filter(|e| e.cid.codec() != RAW && run.len() < HINT_ENTRIES)
    {
        run.push(e.cid);
    }
    run
}

#[cfg(test)]
mod tests {
    use narfs_core::block::{cid_for, HashAlg, DAG_PB};

    use super::*;

    fn entry(i: usize, codec: u64, tsize: Option<u64>) -> Entry {
        Entry {
            name: format!("e{i}"),
            cid: cid_for(codec, HashAlg::Sha2_256, &i.to_le_bytes()),
            tsize,
        }
    }

    fn leaves(sizes: &[u64]) -> Vec<Entry> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &s)| entry(i, RAW, Some(s)))
            .collect()
    }

    #[test]
    fn a_batch_is_bounded_by_count_and_claimed_bytes_and_never_empty() {
        assert_eq!(batch_len(&leaves(&[10; 200]), 4 << 20), MAX_ENTRIES);
        assert_eq!(batch_len(&leaves(&[10; 5]), 4 << 20), 5);
        assert_eq!(batch_len(&leaves(&[100, 100, 100, 100]), 250), 2);
        // A first entry larger than the budget, or claiming nothing, goes alone.
        assert_eq!(batch_len(&leaves(&[1000, 1]), 250), 1);
        let unclaimed = vec![entry(0, RAW, None), entry(1, RAW, Some(1))];
        assert_eq!(batch_len(&unclaimed, 250), 1);
        assert_eq!(batch_len(&[], 250), 0);
    }

    #[test]
    fn a_batch_is_filled_up_by_claimed_entries_within_bounds() {
        assert_eq!(fill_len(&leaves(&[10; 200]), 4 << 20, 40), 40);
        assert_eq!(fill_len(&leaves(&[100; 4]), 250, 64), 2);
        // Unlike a batch of its own, none when the first does not fit or claims
        // nothing.
        assert_eq!(fill_len(&leaves(&[1000, 1]), 250, 64), 0);
        let unclaimed = vec![entry(0, RAW, Some(1)), entry(1, RAW, None)];
        assert_eq!(fill_len(&unclaimed, 250, 64), 1);
        assert_eq!(fill_len(&leaves(&[1; 5]), 250, 0), 0);
    }

    #[test]
    fn a_claim_lies_when_the_block_is_larger() {
        assert!(lied(&entry(0, RAW, Some(0)), 1));
        assert!(!lied(&entry(0, RAW, Some(10)), 10));
        assert!(!lied(&entry(0, RAW, None), 1 << 20));
    }

    #[test]
    fn weights_are_the_claims_or_the_budget() {
        let mut e = leaves(&[10, 3 << 20]);
        e.push(entry(2, RAW, None));
        assert_eq!(weights(&e, 4 << 20), vec![10, 3 << 20, 4 << 20]);
    }

    #[test]
    fn hints_are_the_run_of_raw_leaves_within_bounds() {
        let mut e = leaves(&[10; 5]);
        e.push(entry(5, DAG_PB, Some(10)));
        e.extend(leaves(&[10; 3]));
        // The run, and the node that ends it; nothing after the node.
        let want: Vec<Cid> = e[..6].iter().map(|e| e.cid).collect();
        assert_eq!(hints(&e), want);
        // A run ended by a leaf too large for the bytes: no node, the run alone.
        let mut big = leaves(&[10; 2]);
        big.extend(leaves(&[9 << 20]));
        assert_eq!(hints(&big).len(), 2);
        // A node first: itself alone.
        assert_eq!(hints(&e[5..]), vec![e[5].cid]);
        assert_eq!(hints(&leaves(&[10; 1000])).len(), HINT_ENTRIES);
        assert_eq!(hints(&leaves(&[3 << 20; 5])).len(), 2);
        assert!(hints(&[entry(0, RAW, None)]).is_empty());
    }
}
