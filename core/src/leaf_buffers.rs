//! Leaf-sized buffers, recycled between the readers of blocks and the writers of a
//! decode's output.
//!
//! A decode reads every leaf into a buffer of its own (a CAR's `pread`, a packed
//! block cut out of its pack), verifies it there, and hands it whole to the output,
//! which frees it once written. With 256 KiB leaves glibc serves these from its
//! arenas and gives the pages back each time the free space at an arena's top passes
//! its trim threshold (~512 KiB once 256 KiB blocks were freed), so the next leaf
//! faulted its pages in again, zeroed: decode CAR → /dev/null of the 1.29 GB NAR of
//! 256 KiB leaves took ~130,000 page faults (~40 % of its bytes), and they were
//! ~20 % of its CPU. A buffer given back here is taken by the next read instead, its
//! pages still mapped.
//!
//! Bounded: at most [`HELD`] bytes of buffers wait here, each of [`MIN`]..=[`MAX`]
//! bytes of capacity (smaller ones cost little to allocate, larger ones are rare);
//! a buffer given back beyond that is freed as before. A buffer taken is empty:
//! nothing of a former leaf can be read through it.

use std::sync::Mutex;

/// Smallest capacity kept: below it an allocation is cheap (glibc's small bins, no
/// fresh pages) and the leaves are small files' (a NAR of small files has many).
pub const MIN: usize = 64 << 10;
/// Largest capacity kept: the largest block ([`crate::block::MAX_BLOCK_SIZE`]).
pub const MAX: usize = crate::block::MAX_BLOCK_SIZE;
/// Bytes of buffers kept at most: 8 leaves of 256 KiB. They count in the process's
/// anonymous memory while idle, and the small-file NAR's decode store → file peaks
/// within 2–3 MiB of the 64 MiB bound: with 4 MiB its peak rose by ~1.5 MiB.
pub const HELD: usize = 2 << 20;

struct Pool {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    buffers: Vec::new(),
    bytes: 0,
});

/// An empty buffer of capacity at least `len`: one given back ([`give`]) whose
/// capacity is at most twice `len`, else a new one.
pub fn take(len: usize) -> Vec<u8> {
    if len >= MIN / 2 {
        let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
        let fit = |b: &Vec<u8>| b.capacity() >= len && b.capacity() / 2 <= len;
        if let Some(i) = pool.buffers.iter().rposition(fit) {
            let b = pool.buffers.swap_remove(i);
            pool.bytes -= b.capacity();
            return b;
        }
    }
    Vec::with_capacity(len)
}

/// Gives a buffer whose bytes are no longer needed back for a later [`take`]; freed
/// instead when it is too small or too large, or when [`HELD`] bytes wait already.
pub fn give(mut buffer: Vec<u8>) {
    let cap = buffer.capacity();
    if !(MIN..=MAX).contains(&cap) {
        return;
    }
    buffer.clear();
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    if pool.bytes + cap <= HELD {
        pool.bytes += cap;
        pool.buffers.push(buffer);
    }
}

/// A leaf's buffer handed to an owner that frees it out of the caller's sight (a body
/// frame of `narfs serve`, `bytes::Bytes::from_owner`): given back when dropped.
pub struct Recycled(pub Vec<u8>);

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

/// Bytes of buffers waiting (tests).
#[cfg(test)]
fn held() -> usize {
    POOL.lock().unwrap().bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the pool is the process's, shared by the tests of this crate (no
    // other test of `core` gives buffers back).
    #[test]
    fn buffers_come_back_empty_within_their_bounds() {
        let mut a = take(256 << 10);
        a.extend_from_slice(&[7; 256 << 10]);
        let at = a.as_ptr();
        give(a);
        assert_eq!(held(), 256 << 10);
        // The same allocation, empty; too small a request does not get it.
        assert!(take(1000).capacity() < 256 << 10);
        let b = take(200 << 10);
        assert_eq!((b.as_ptr(), b.len()), (at, 0));
        assert_eq!(held(), 0);
        // Too small or too large to keep: freed.
        give(Vec::with_capacity(MIN - 1));
        give(Vec::with_capacity(MAX + 1));
        assert_eq!(held(), 0);
        // Never more than HELD bytes.
        for _ in 0..2 * HELD / (256 << 10) {
            give(Vec::with_capacity(256 << 10));
        }
        assert!(held() <= HELD && held() > HELD - (256 << 10), "{}", held());
        while held() > 0 {
            take(256 << 10);
        }
        // A buffer handed out as `Recycled` comes back when dropped.
        drop(Recycled(Vec::with_capacity(256 << 10)));
        assert_eq!(held(), 256 << 10);
        take(256 << 10);
    }
}
