//! Which leaves of a file are fetched and verified together.
//!
//! Verifying (SHA-256) is most of a decode's work, and the multi-buffer kernel is
//! fastest on 16 leaves of about equal length at once (AVX-512's 16 lanes: 2.75 GB/s a
//! core here, against 1.73 for the 4 SHA-NI streams that smaller groups get;
//! `core::leaf_hash`). But a reader that waits for 16 leaves before its first byte
//! delays every file's start, and two such groups side by side double what a stream
//! holds. So a file's leaves go in two ways:
//!
//! - a file's *first run* (and the first after each `File` node of its tree, or
//!   whenever nothing was fetched ahead) is fetched at once on the caller's thread as
//!   before: at most [`FIRST_LEAVES`] leaves within the read-ahead, cut into parts
//!   on both cores ([`crate::fetch`]'s `fetch_weighted`), so output starts at once;
//! - while the caller writes those, the leaves after them are fetched and verified
//!   on the pool in *parts* of [`PART_LEAVES`] leaves ([`next_part`]), each part one
//!   job and one call of the hasher, so its leaves fill the wide kernel's lanes.
//!
//! What is fetched and not yet handed out stays within [`crate::Limits::readahead`]
//! claimed bytes and [`AHEAD_LEAVES`] leaves: a leaf's real size is known only once
//! fetched (and then checked against its claim), so the count bounds what lying
//! claims can make a reader hold (`AHEAD_LEAVES` × the largest block).

/// Most leaves of a first run (its claims also within the read-ahead): 8 leaves of
/// 256 KiB are two groups of the 4 SHA-NI streams, one on each core, so a file's
/// first bytes wait for 1 MiB hashed on each core.
pub(crate) const FIRST_LEAVES: usize = 8;
/// Most leaves of a part: the wide kernel's 16 lanes, one group.
pub(crate) const PART_LEAVES: usize = 16;
/// Most bytes a part claims: 16 leaves of 256 KiB (Kubo's default chunk).
pub(crate) const PART_BYTES: u64 = 4 << 20;
/// Most leaves fetched and not yet handed out: one part being written and the next
/// two verified, one on each core (with two, the writer of a fast output waited for
/// the one part in flight, and one core idled: decode store → /dev/null of a 1.3 GB
/// NAR of 256 KiB leaves took ~1.45 s against ~1.1 with three).
pub(crate) const AHEAD_LEAVES: usize = 3 * PART_LEAVES;

/// How many leaves of `run` (the claimed sizes of the raw leaves from the next child
/// on, up to the first child that is no raw leaf) make the first run: at most
/// [`FIRST_LEAVES`], their claims within `readahead`, at least one unless `run` is
/// empty.
pub(crate) fn first_run(run: &[u64], readahead: u64) -> usize {
    let mut claimed = 0u64;
    let fit = run
        .iter()
        .take(FIRST_LEAVES)
        .take_while(|&&size| {
            claimed = claimed.saturating_add(size);
            claimed <= readahead
        })
        .count();
    fit.max(run.len().min(1))
}

/// How many leaves of `rest` (claimed sizes of the raw leaves after those fetched
/// ahead, up to the end of the run) make the next part, given `ahead` (the claims of
/// the leaves fetched or being fetched and not handed out yet): 0 when no part should
/// start now. A part holds at most [`PART_LEAVES`] leaves and claims at most
/// [`PART_BYTES`] or half the read-ahead, whichever is less (so that one part is
/// verified while another is written); everything ahead stays within `readahead` and
/// [`AHEAD_LEAVES`]. A part starts only when full (a cap reached, or the end of the
/// run): one that only fits now would cost the lanes of a whole group.
pub(crate) fn next_part(ahead: &[u64], rest: &[u64], readahead: u64) -> usize {
    let held = ahead.iter().fold(0u64, |a, &s| a.saturating_add(s));
    let room = readahead.saturating_sub(held);
    let room_leaves = AHEAD_LEAVES.saturating_sub(ahead.len());
    let cap = PART_BYTES.min(readahead / 2);
    let mut claimed = 0u64;
    let n = rest
        .iter()
        .take(PART_LEAVES.min(room_leaves))
        .take_while(|&&size| {
            claimed = claimed.saturating_add(size);
            claimed <= cap.min(room)
        })
        .count();
    let bytes: u64 = rest[..n].iter().fold(0u64, |a, &s| a.saturating_add(s));
    let full = n == PART_LEAVES || n == rest.len() || bytes.saturating_add(rest[n]) > cap;
    if n > 0 && full {
        n
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LEAF: u64 = 256 << 10;

    #[test]
    fn a_first_run_is_bounded_by_count_and_claims_and_never_empty() {
        assert_eq!(first_run(&[LEAF; 100], 8 << 20), FIRST_LEAVES);
        assert_eq!(first_run(&[LEAF; 100], 512 << 10), 2);
        assert_eq!(first_run(&[LEAF; 3], 8 << 20), 3);
        // A leaf claiming more than the read-ahead still goes, alone.
        assert_eq!(first_run(&[8 << 20, 1], 1 << 20), 1);
        assert_eq!(first_run(&[], 1 << 20), 0);
    }

    #[test]
    fn parts_of_big_leaves_are_16_and_one_is_verified_while_one_is_written() {
        // Nothing ahead: a full part of 16 (4 MiB), not the 32 the read-ahead fits.
        assert_eq!(next_part(&[], &[LEAF; 100], 8 << 20), 16);
        // One part ahead: the next once it fits the read-ahead beside it.
        assert_eq!(next_part(&[LEAF; 16], &[LEAF; 100], 8 << 20), 16);
        assert_eq!(next_part(&[LEAF; 17], &[LEAF; 100], 8 << 20), 0);
        // With the default 12 MiB, a third part beside two ahead, one on each core.
        assert_eq!(next_part(&[LEAF; 32], &[LEAF; 100], 12 << 20), 16);
        assert_eq!(next_part(&[LEAF; 33], &[LEAF; 100], 12 << 20), 0);
        // Three parts' worth of leaves ahead: none, however small they are.
        assert_eq!(next_part(&[1; 47], &[1; 1], 8 << 20), 1);
        assert_eq!(next_part(&[1; 48], &[1; 100], 8 << 20), 0);
        // The end of the run makes a part full, however short.
        assert_eq!(next_part(&[LEAF; 16], &[LEAF, 100], 8 << 20), 2);
    }

    #[test]
    fn a_small_read_ahead_gets_small_parts_and_small_leaves_16_a_part() {
        // 1 MiB (serve's narrow streams): parts of half of it.
        assert_eq!(next_part(&[], &[LEAF; 100], 1 << 20), 2);
        assert_eq!(next_part(&[LEAF; 2], &[LEAF; 100], 1 << 20), 2);
        assert_eq!(next_part(&[LEAF; 3], &[LEAF; 100], 1 << 20), 0);
        // FastCDC-sized leaves: 16 a part, well within the bytes.
        assert_eq!(next_part(&[], &[64 << 10; 100], 8 << 20), 16);
        // A leaf claiming more than a part may: no part (the reader fetches it as a
        // first run once nothing is ahead).
        assert_eq!(next_part(&[], &[16 << 20, 1], 8 << 20), 0);
        assert_eq!(next_part(&[], &[], 8 << 20), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Whatever the claims, a part keeps every bound, and a reader that takes
        /// parts while they come and hands leaves out one at a time otherwise gets
        /// through any run.
        #[test]
        fn parts_keep_their_bounds_and_cover_any_run(
            sizes in proptest::collection::vec(0u64..(6 << 20), 0..200),
            readahead in (64u64 << 10)..(16 << 20),
        ) {
            let (mut next, mut requested) = (0usize, 0usize);
            while next < sizes.len() {
                if requested == next {
                    let n = first_run(&sizes[next..], readahead);
                    prop_assert!((1..=FIRST_LEAVES).contains(&n));
                    requested += n;
                }
                loop {
                    let ahead = &sizes[next..requested];
                    let n = next_part(ahead, &sizes[requested..], readahead);
                    if n == 0 {
                        break;
                    }
                    let part = &sizes[requested..requested + n];
                    prop_assert!(n <= PART_LEAVES);
                    prop_assert!(ahead.len() + n <= AHEAD_LEAVES);
                    let sum = |s: &[u64]| s.iter().sum::<u64>();
                    prop_assert!(sum(part) <= PART_BYTES.min(readahead / 2));
                    prop_assert!(sum(ahead) + sum(part) <= readahead);
                    requested += n;
                }
                next += 1;
            }
            prop_assert_eq!(requested, sizes.len());
        }
    }
}
