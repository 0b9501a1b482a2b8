//! FastCDC 2020 cut points found several positions at a time, exactly where
//! `fastcdc::v2020::cut` finds them (the chunks, hence the CIDs, must not change).
//!
//! The crate's loop is one chain of dependent `shl`/`add` per byte, so it runs at
//! about 1.8 GB/s on one core here while the core could do several such chains at
//! once. What makes them independent: the gear hash shifts one bit per byte, so after
//! 64 bytes every older byte has left its 64 bits. The hash at a position is then a
//! function of the 64 bytes ending there alone (`rolling`), wherever the scan began,
//! and a stretch of the window can be split into pieces scanned side by side, each
//! started 63 bytes early. Only the first 64 candidates after a chunk's minimum size
//! see a hash that began at the minimum (fewer than 64 bytes in it), so those are
//! tested one by one, as the crate does.
//!
//! The crate's cut, restated (its `cut_gear` tests candidates in pairs, which comes to
//! this): the hash starts at 0 at byte `min`; after adding byte `i` it is tested at
//! `i` for `i` in `min..end`, `end` the window's length (at most `max`) rounded down
//! to even, with the strict mask while `i` is below `avg` (or the window's even
//! length, if shorter) and the relaxed one after; the first `i` that passes is the
//! chunk's length, and without one the chunk is the whole window (at most `max`).

/// Bytes scanned per piece of a round; [`WAYS`] pieces make a round. Smaller rounds
/// waste less past a cut (the rest of the round is scanned anyway), larger ones spend
/// less on the 63-byte starts.
const PIECE: usize = 2048;
/// Pieces scanned side by side (the four-way zip in [`round`]).
const WAYS: usize = 4;
/// Bytes before a position that its hash still depends on.
const BACK: usize = 63;

/// The gear table of `fastcdc::v2020` (the crate's own, so that it cannot drift).
fn gear() -> &'static [u64; 256] {
    use std::sync::OnceLock;
    static GEAR: OnceLock<[u64; 256]> = OnceLock::new();
    GEAR.get_or_init(|| {
        let (gear, _) = fastcdc::v2020::get_gear_with_seed(0);
        gear.as_ref()
            .try_into()
            .expect("the v2020 gear table has 256 entries")
    })
}

/// The length of the first chunk of `window`, as `fastcdc::v2020::cut(window, min, avg,
/// max, ms, ml, ms << 1, ml << 1).1` gives it; `min`, `avg` and `max` even (as the
/// crate needs them), `ms`/`ml` from `select_masks`.
pub(crate) fn cut(window: &[u8], min: usize, avg: usize, max: usize, ms: u64, ml: u64) -> usize {
    let len = window.len();
    if len <= min {
        return len;
    }
    let (remaining, center) = if len > max {
        (max, avg)
    } else if len < avg {
        (len, len)
    } else {
        (len, avg)
    };
    let src = &window[..remaining];
    let end = remaining & !1;
    let switch = center & !1;
    let g = gear();
    // The hash that began at `min`, for its first 64 candidates.
    let head = (min + BACK + 1).min(end);
    let mut hash = 0u64;
    for (i, &b) in src.iter().enumerate().take(head).skip(min) {
        hash = (hash << 1).wrapping_add(g[b as usize]);
        let mask = if i < switch { ms } else { ml };
        if hash & mask == 0 {
            return i;
        }
    }
    let strict = head.max(switch.min(end));
    if let Some(i) = scan(src, head, strict, ms, g) {
        return i;
    }
    scan(src, strict, end, ml, g).unwrap_or(remaining)
}

/// The first `i` in `from..to` whose rolling hash passes `mask`; `from` is at least
/// [`BACK`].
fn scan(src: &[u8], from: usize, to: usize, mask: u64, g: &[u64; 256]) -> Option<usize> {
    let mut at = from;
    while to.saturating_sub(at) >= WAYS * PIECE {
        if let Some(i) = round::<PIECE>(src, at, mask, g) {
            return Some(i);
        }
        at += WAYS * PIECE;
    }
    // The rest in smaller rounds, then one by one.
    for_each_smaller_round(&mut at, to, |at| match to - at {
        n if n >= WAYS * 1024 => (round::<1024>(src, at, mask, g), 1024),
        n if n >= WAYS * 256 => (round::<256>(src, at, mask, g), 256),
        _ => (None, 0),
    })
    .or_else(|| {
        if at >= to {
            return None;
        }
        let mut hash = rolling(&src[at - BACK..at], g);
        for (i, &b) in src[..to].iter().enumerate().skip(at) {
            hash = (hash << 1).wrapping_add(g[b as usize]);
            if hash & mask == 0 {
                return Some(i);
            }
        }
        None
    })
}

/// Runs `round` from `*at` while it scans something (its second value, the piece
/// length, is not 0) and finds nothing.
fn for_each_smaller_round(
    at: &mut usize,
    to: usize,
    mut round: impl FnMut(usize) -> (Option<usize>, usize),
) -> Option<usize> {
    while *at < to {
        match round(*at) {
            (Some(i), _) => return Some(i),
            (None, 0) => return None,
            (None, piece) => *at += WAYS * piece,
        }
    }
    None
}

/// The gear hash of `bytes` from 0 (for up to 64 bytes, the rolling hash after them).
fn rolling(bytes: &[u8], g: &[u64; 256]) -> u64 {
    bytes
        .iter()
        .fold(0u64, |h, &b| (h << 1).wrapping_add(g[b as usize]))
}

/// One round: [`WAYS`] pieces of `P` bytes from `at`, each piece's hash chain
/// independent of the others'. The first passing position of the round, if any.
#[inline(always)]
fn round<const P: usize>(src: &[u8], at: usize, mask: u64, g: &[u64; 256]) -> Option<usize> {
    let piece = |w: usize| &src[at + w * P - BACK..at + (w + 1) * P];
    let (p0, p1, p2, p3) = (piece(0), piece(1), piece(2), piece(3));
    let step = |h: u64, b: u8| (h << 1).wrapping_add(g[b as usize]);
    let mut h = [0u64; WAYS];
    let bytes = p0.iter().zip(p1).zip(p2).zip(p3);
    for (t, (((&b0, &b1), &b2), &b3)) in bytes.enumerate() {
        h = [
            step(h[0], b0),
            step(h[1], b1),
            step(h[2], b2),
            step(h[3], b3),
        ];
        // Rare (one position in 2^15 or so): four plain branches, in piece order.
        for w in 0..WAYS {
            if h[w] & mask == 0 {
                if let Some(found) = passed::<P>(src, at, w, t, h, mask, g) {
                    return Some(found);
                }
            }
        }
    }
    None
}

/// Piece `w` passed at position `t` of the pieces (counting their 63 leading bytes,
/// where a pass does not count): the position, unless a piece before `w` passes
/// later in its own piece.
#[cold]
#[inline(never)]
fn passed<const P: usize>(
    src: &[u8],
    at: usize,
    w: usize,
    t: usize,
    h: [u64; WAYS],
    mask: u64,
    g: &[u64; 256],
) -> Option<usize> {
    if t < BACK {
        return None;
    }
    let found = at + w * P + t - BACK;
    Some(scan_pieces::<P>(src, at, w, t + 1, h, mask, g).unwrap_or(found))
}

/// After piece `passed` passed at position `t` of the pieces (counting their 63
/// leading bytes), the pieces before it go on alone from `t`, hashes `h`: the first
/// of them to pass wins.
#[cold]
fn scan_pieces<const P: usize>(
    src: &[u8],
    at: usize,
    passed: usize,
    t: usize,
    h: [u64; WAYS],
    mask: u64,
    g: &[u64; 256],
) -> Option<usize> {
    (0..passed).find_map(|w| {
        let mut hash = h[w];
        let piece = &src[at + w * P - BACK..at + (w + 1) * P];
        for (u, &b) in piece.iter().enumerate().skip(t) {
            hash = (hash << 1).wrapping_add(g[b as usize]);
            if hash & mask == 0 {
                return Some(at + w * P + u - BACK);
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastcdc::v2020::{select_masks, Normalization};

    fn crate_cut(window: &[u8], min: usize, avg: usize, max: usize) -> usize {
        let (ms, ml) = select_masks(avg, Normalization::Level1);
        fastcdc::v2020::cut(window, min, avg, max, ms, ml, ms << 1, ml << 1).1
    }

    fn ours(window: &[u8], min: usize, avg: usize, max: usize) -> usize {
        let (ms, ml) = select_masks(avg, Normalization::Level1);
        cut(window, min, avg, max, ms, ml)
    }

    /// Every chunk of `data`, ours against the crate's, window by window.
    fn same_chunks(data: &[u8], min: usize, avg: usize, max: usize) -> usize {
        let mut at = 0;
        let mut chunks = 0;
        while at < data.len() {
            let window = &data[at..data.len().min(at + max)];
            let want = crate_cut(window, min, avg, max);
            assert_eq!(
                ours(window, min, avg, max),
                want,
                "{min}:{avg}:{max}, window of {} at {at}",
                window.len()
            );
            // Also every shorter window ending near the cut (odd and even lengths).
            for cut_len in [
                want.saturating_sub(1),
                want + 1,
                want + 2,
                min + 70,
                avg - 1,
            ] {
                let w = &window[..cut_len.min(window.len())];
                assert_eq!(ours(w, min, avg, max), crate_cut(w, min, avg, max));
            }
            at += want.max(1);
            chunks += 1;
        }
        chunks
    }

    #[test]
    fn the_crates_cuts_on_noise() {
        let data = narfs_core::noise::bytes(7, 6_000_000);
        assert!(same_chunks(&data, 16384, 65536, 262_144) > 40);
        assert!(same_chunks(&data[..1_500_000], 2048, 8192, 32768) > 100);
        assert!(same_chunks(&data[..300_000], 64, 256, 1024) > 500);
    }

    #[test]
    fn the_crates_cuts_on_low_entropy_and_maximal_chunks() {
        // Zeros never cut (every chunk is `max`); text-like bytes cut rarely.
        let zeros = vec![0u8; 1_000_000];
        same_chunks(&zeros, 16384, 65536, 262_144);
        let text: Vec<u8> = (0..2_000_000u32)
            .map(|i| b"abcdefgh \n"[(i.wrapping_mul(2_654_435_761) >> 28) as usize % 10])
            .collect();
        same_chunks(&text, 16384, 65536, 262_144);
        same_chunks(&text[..200_000], 64, 256, 1024);
    }

    #[test]
    fn every_short_window_length() {
        let data = narfs_core::noise::bytes(3, 40_000);
        for len in (0..2000).chain(16_300..16_500).chain(32_700..33_000) {
            let w = &data[..len];
            assert_eq!(ours(w, 64, 256, 1024), crate_cut(w, 64, 256, 1024), "{len}");
            assert_eq!(
                ours(w, 16384, 65536, 262_144),
                crate_cut(w, 16384, 65536, 262_144),
                "{len}"
            );
        }
    }
}
