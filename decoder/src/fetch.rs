//! Fetching blocks with their bytes verified: one at a time ([`fetch`]), or a run
//! together ([`fetch_many`]), read through one snapshot of the source and hashed by
//! the multi-buffer kernel, cut into parts on both cores when the run is worth it.
//! Every block, wherever it sits in a run, is refused on its own with its CID.

use narfs_core::block::{BlockSource, StoreError, Verified};
use narfs_core::Cid;

use crate::error::{DecodeError, Problem};

/// Fetches `cid`, its bytes verified against it (by the source's
/// [`BlockSource::get_verified`]: hashed here, or on arrival by a fetch).
pub fn fetch(source: &impl BlockSource, cid: &Cid, path: &str) -> Result<Vec<u8>, DecodeError> {
    answer(cid, path, source.get_verified(cid))
}

/// [`fetch`] of every CID of `cids`, in order: read and verified together
/// ([`BlockSource::get_many_verified`]: a run of sha2-256 leaves is hashed by the
/// multi-buffer kernel), in parts on both cores when the run is long enough
/// ([`fetch_weighted`], each CID weighing the same).
pub fn fetch_many<S: BlockSource + Sync>(
    source: &S,
    cids: &[Cid],
    path: &str,
) -> Vec<Result<Vec<u8>, DecodeError>> {
    fetch_weighted(source, cids, &vec![1; cids.len()], path)
}

/// Runs shorter than this are verified on one core: parts of fewer than 4 blocks
/// would leave the multi-buffer kernel's lanes (4 SHA-NI streams) idle.
const SPLIT_COUNT: usize = 8;
/// ... unless they weigh this much: hashing 512 KiB takes ~0.3 ms, far more than a
/// hand-off to the other core (a file of 2–7 leaves of 256 KiB was hashed on one);
/// such a run is cut once, in two.
const SPLIT_BYTES: u64 = 512 << 10;

/// [`fetch_many`], the run cut into parts of about equal `weights` (the bytes each
/// block is expected to hold: hashing time), each part fetched by one task on
/// rayon's pool ([`parts`]). Several parts per core rather than one half each, so
/// that a core whose part found its pack not yet decompressed does not leave the
/// other idle at the end: the other takes the parts left. A run too short for that
/// but heavy is still cut once, in two.
pub(crate) fn fetch_weighted<S: BlockSource + Sync>(
    source: &S,
    cids: &[Cid],
    weights: &[u64],
    path: &str,
) -> Vec<Result<Vec<u8>, DecodeError>> {
    debug_assert_eq!(cids.len(), weights.len());
    let total = weights.iter().fold(0u64, |a, &w| a.saturating_add(w));
    if cids.len() >= SPLIT_COUNT {
        return parts(source, cids, weights, path);
    }
    if cids.len() < 2 || total < SPLIT_BYTES {
        return each(source, cids, path);
    }
    let at = midpoint(weights);
    let (mut a, b) = rayon::join(
        || each(source, &cids[..at], path),
        || each(source, &cids[at..], path),
    );
    a.extend(b);
    a
}

/// Cuts a run in two where its weights balance, recursively while it holds at least
/// [`SPLIT_COUNT`] blocks, each cut a `rayon::join`.
fn parts<S: BlockSource + Sync>(
    source: &S,
    cids: &[Cid],
    weights: &[u64],
    path: &str,
) -> Vec<Result<Vec<u8>, DecodeError>> {
    if cids.len() < SPLIT_COUNT {
        return each(source, cids, path);
    }
    let at = midpoint(weights);
    let (mut a, b) = rayon::join(
        || parts(source, &cids[..at], &weights[..at], path),
        || parts(source, &cids[at..], &weights[at..], path),
    );
    a.extend(b);
    a
}

/// Where `weights` (at least two) split into two parts of about equal weight, each
/// at least one.
pub(crate) fn midpoint(weights: &[u64]) -> usize {
    let total = weights.iter().fold(0u64, |a, &w| a.saturating_add(w));
    let mut sum = 0u64;
    let at = weights
        .iter()
        .take_while(|&&w| {
            sum = sum.saturating_add(w);
            sum <= total / 2
        })
        .count();
    at.clamp(1, weights.len() - 1)
}

/// One part: its blocks read through one snapshot and verified together.
pub(crate) fn each<S: BlockSource>(
    source: &S,
    cids: &[Cid],
    path: &str,
) -> Vec<Result<Vec<u8>, DecodeError>> {
    let got = source.get_many_verified(cids);
    cids.iter()
        .zip(got)
        .map(|(cid, r)| answer(cid, path, r))
        .collect()
}

/// A source's answer for `cid` as the block's bytes, or the decoder's error.
fn answer(
    cid: &Cid,
    path: &str,
    got: Result<Option<Verified>, StoreError>,
) -> Result<Vec<u8>, DecodeError> {
    let block = got
        .map_err(|e| match e {
            StoreError::Block(e) => DecodeError::new(cid, path, e),
            e => DecodeError::new(cid, path, e),
        })?
        .ok_or_else(|| DecodeError::new(cid, path, Problem::Missing))?;
    block
        .into_block_of(cid)
        .map_err(|e| DecodeError::new(cid, path, e))
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod fetch_tests;
