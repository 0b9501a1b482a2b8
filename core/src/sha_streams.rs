//! SHA-256 of many messages of unequal lengths on four interleaved SHA-NI streams,
//! each stream taking the next message as soon as its own ends.
//!
//! Why not `tape-sha256`'s 4-stream kernel (`shani_x4_slices`): it interleaves a
//! group of four only when all four have the same number of 64-byte blocks, and
//! hashes any other group one message after another. FastCDC leaves (4–64 KiB) and
//! small files almost never come in such groups, so a decode from the store hashed
//! nearly every leaf as one stream (`perf`: `shani::group` 25% of the CPU, ~1.3 GB/s).
//! Here the four streams run in lockstep block by block, and a stream whose message
//! ends is refilled at once; the longest messages go first, so only the last few
//! blocks of a batch run with fewer than four streams (then 3, 2 or 1 interleaved,
//! never idle streams hashed for nothing).
//!
//! The rounds are those of `tape-sha256` (`src/shani.rs`, MIT/Apache-2.0), the
//! Intel SHA extensions' reference sequence.

use std::arch::x86_64::*;

const BLOCK: usize = 64;
const STREAMS: usize = 4;

const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

const BSWAP: [u8; 16] = [3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12];

/// Whether this CPU runs [`hash_all`].
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("ssse3")
        && std::arch::is_x86_feature_detected!("sse4.1")
}

/// The SHA-256 of every message of `msgs` into `out` (same length), if the CPU has
/// SHA-NI ([`available`]); false (nothing written) if not.
pub(crate) fn hash_all(msgs: &[&[u8]], out: &mut [[u8; 32]]) -> bool {
    assert_eq!(msgs.len(), out.len());
    if !available() {
        return false;
    }
    // SAFETY: the CPU has SHA-NI, SSSE3 and SSE4.1, all the kernel uses.
    unsafe { hash_all_shani(msgs, out) };
    true
}

/// One stream's chaining value, in the register order the SHA-NI rounds take.
#[derive(Clone, Copy)]
struct State {
    abef: __m128i,
    cdgh: __m128i,
}

impl State {
    #[inline(always)]
    unsafe fn init() -> Self {
        let abcd = _mm_loadu_si128(H0.as_ptr() as *const __m128i);
        let efgh = _mm_loadu_si128(H0.as_ptr().add(4) as *const __m128i);
        let t = _mm_shuffle_epi32(abcd, 0xB1);
        let e = _mm_shuffle_epi32(efgh, 0x1B);
        State {
            abef: _mm_alignr_epi8(t, e, 8),
            cdgh: _mm_blend_epi16(e, t, 0xF0),
        }
    }

    #[inline(always)]
    unsafe fn digest(self) -> [u8; 32] {
        let t = _mm_shuffle_epi32(self.abef, 0x1B);
        let s1 = _mm_shuffle_epi32(self.cdgh, 0xB1);
        let abcd = _mm_blend_epi16(t, s1, 0xF0);
        let efgh = _mm_alignr_epi8(s1, t, 8);
        let mask = _mm_loadu_si128(BSWAP.as_ptr() as *const __m128i);
        let mut out = [0u8; 32];
        _mm_storeu_si128(
            out.as_mut_ptr() as *mut __m128i,
            _mm_shuffle_epi8(abcd, mask),
        );
        _mm_storeu_si128(
            out.as_mut_ptr().add(16) as *mut __m128i,
            _mm_shuffle_epi8(efgh, mask),
        );
        out
    }
}

/// One stream: the message it hashes, the next block, and the padded tail.
struct Stream<'m> {
    msg: &'m [u8],
    /// Index of the message in the batch.
    id: usize,
    /// The next block to compress, and how many blocks the padded message has.
    next: usize,
    blocks: usize,
    /// The blocks after the message's whole blocks: its last bytes, the padding and
    /// the length (one block, or two when fewer than 9 bytes are left in the first).
    tail: [u8; 2 * BLOCK],
    state: State,
}

impl<'m> Stream<'m> {
    #[inline(always)]
    unsafe fn start(msg: &'m [u8], id: usize) -> Self {
        let whole = msg.len() / BLOCK;
        let rest = &msg[whole * BLOCK..];
        let tail_blocks = if rest.len() < BLOCK - 8 { 1 } else { 2 };
        let mut tail = [0u8; 2 * BLOCK];
        tail[..rest.len()].copy_from_slice(rest);
        tail[rest.len()] = 0x80;
        let end = tail_blocks * BLOCK;
        tail[end - 8..end].copy_from_slice(&((msg.len() as u64) * 8).to_be_bytes());
        Stream {
            msg,
            id,
            next: 0,
            blocks: whole + tail_blocks,
            tail,
            state: State::init(),
        }
    }

    /// The next block's 16 words, byte-swapped.
    #[inline(always)]
    unsafe fn load(&self) -> [__m128i; 4] {
        let whole = self.msg.len() / BLOCK;
        let p = if self.next < whole {
            self.msg.as_ptr().add(self.next * BLOCK)
        } else {
            self.tail.as_ptr().add((self.next - whole) * BLOCK)
        };
        let mask = _mm_loadu_si128(BSWAP.as_ptr() as *const __m128i);
        let mut m = [_mm_setzero_si128(); 4];
        for (i, mi) in m.iter_mut().enumerate() {
            *mi = _mm_shuffle_epi8(_mm_loadu_si128(p.add(i * 16) as *const __m128i), mask);
        }
        m
    }
}

#[inline(always)]
unsafe fn round4(st: &mut State, m: &mut [__m128i; 4], i: usize) {
    let k = _mm_loadu_si128(K.as_ptr().add(i * 4) as *const __m128i);
    let wk = _mm_add_epi32(m[i & 3], k);
    st.cdgh = _mm_sha256rnds2_epu32(st.cdgh, st.abef, wk);
    if (3..=14).contains(&i) {
        let t = _mm_alignr_epi8(m[i & 3], m[(i + 3) & 3], 4);
        m[(i + 1) & 3] = _mm_sha256msg2_epu32(_mm_add_epi32(m[(i + 1) & 3], t), m[i & 3]);
    }
    let wk_hi = _mm_shuffle_epi32(wk, 0x0E);
    st.abef = _mm_sha256rnds2_epu32(st.abef, st.cdgh, wk_hi);
    if (1..=12).contains(&i) {
        m[(i + 3) & 3] = _mm_sha256msg1_epu32(m[(i + 3) & 3], m[i & 3]);
    }
}

/// One block of each of `N` streams, their rounds interleaved (the SHA unit's
/// latency hidden by the other streams' independent rounds).
#[inline(always)]
unsafe fn compress<const N: usize>(streams: &mut [Stream<'_>; STREAMS], ids: [usize; N]) {
    // Loops, not closures: a closure would not inherit the caller's target features.
    let zero = _mm_setzero_si128();
    let mut st = [State {
        abef: zero,
        cdgh: zero,
    }; N];
    let mut msg = [[zero; 4]; N];
    for j in 0..N {
        st[j] = streams[ids[j]].state;
        msg[j] = streams[ids[j]].load();
    }
    let save = st;
    macro_rules! groups {
        ($($i:literal)*) => { $(
            for (s, m) in st.iter_mut().zip(msg.iter_mut()) {
                round4(s, m, $i);
            }
        )* };
    }
    groups!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    for j in 0..N {
        let s = &mut streams[ids[j]];
        s.state = State {
            abef: _mm_add_epi32(st[j].abef, save[j].abef),
            cdgh: _mm_add_epi32(st[j].cdgh, save[j].cdgh),
        };
        s.next += 1;
    }
}

#[target_feature(enable = "sha,ssse3,sse4.1")]
unsafe fn hash_all_shani(msgs: &[&[u8]], out: &mut [[u8; 32]]) {
    // Longest first: the streams then run out of work at about the same time.
    let mut order: Vec<usize> = (0..msgs.len()).collect();
    order.sort_unstable_by_key(|&i| std::cmp::Reverse(msgs[i].len()));
    let mut queue = order.into_iter();
    let mut streams: [Stream<'_>; STREAMS] = [
        Stream::start(&[], 0),
        Stream::start(&[], 0),
        Stream::start(&[], 0),
        Stream::start(&[], 0),
    ];
    // Streams holding a message not fully compressed yet.
    let mut live = [false; STREAMS];
    for (s, l) in streams.iter_mut().zip(live.iter_mut()) {
        if let Some(i) = queue.next() {
            *s = Stream::start(msgs[i], i);
            *l = true;
        }
    }
    loop {
        let mut ids = [0usize; STREAMS];
        let mut n = 0;
        for (j, &l) in live.iter().enumerate() {
            if l {
                ids[n] = j;
                n += 1;
            }
        }
        match n {
            0 => break,
            1 => compress::<1>(&mut streams, [ids[0]]),
            2 => compress::<2>(&mut streams, [ids[0], ids[1]]),
            3 => compress::<3>(&mut streams, [ids[0], ids[1], ids[2]]),
            _ => compress::<4>(&mut streams, ids),
        }
        for (s, l) in streams.iter_mut().zip(live.iter_mut()) {
            if *l && s.next == s.blocks {
                out[s.id] = s.state.digest();
                match queue.next() {
                    Some(i) => *s = Stream::start(msgs[i], i),
                    None => *l = false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn check(msgs: &[Vec<u8>]) {
        let slices: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        let mut got = vec![[0u8; 32]; msgs.len()];
        if !hash_all(&slices, &mut got) {
            eprintln!("no SHA-NI on this CPU: the 4-stream kernel is not tested");
            return;
        }
        for (m, g) in msgs.iter().zip(&got) {
            let want: [u8; 32] = Sha256::digest(m).into();
            assert_eq!(*g, want, "message of {} bytes", m.len());
        }
    }

    #[test]
    fn every_padding_case_and_unequal_lengths_are_sha2() {
        // 0..=300 bytes: every tail (55, 56, 63, 64, 119, 120, ...); in any order, so
        // streams are refilled with messages of every length, and end at odd times.
        let mut msgs: Vec<Vec<u8>> = (0..=300u32)
            .map(|n| (0..n).map(|i| (i * 13 + n) as u8).collect())
            .collect();
        msgs.swap(3, 250);
        check(&msgs);
        // Few messages (fewer than the streams), one long among short ones.
        check(&[vec![1; 70_000], vec![2; 3], vec![]]);
        check(&[vec![9; 64]]);
        check(&[]);
    }
}
