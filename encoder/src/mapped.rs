//! A NAR file mapped read-only ([`crate::NarInput::map`]), and giving its pages back
//! once read ([`Behind`]): the pages stay in the page cache, but they leave the
//! process's resident set, so the NAR's pages an encode maps stay a bounded stretch
//! whatever the NAR's size.

use std::ops::{Deref, Range};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A NAR file in memory, mapped read-only from a file (never anonymous memory: see
/// [`release`]). Made by [`crate::NarInput::map`].
///
/// While it lives, a SIGBUS inside it (the file shrank) ends the process with a one-line
/// error instead of the signal ([`crate::shrink_guard`]). Field order matters: the
/// mapping is unmapped before its range is given back.
pub struct MappedNar(
    pub(crate) memmap2::Mmap,
    #[allow(dead_code)] // held for its Drop: the range stays guarded while mapped
    crate::shrink_guard::Guard,
);

impl MappedNar {
    /// `map`, guarded; `None` when no guard slot is free (read the file instead).
    pub(crate) fn guarded(map: memmap2::Mmap) -> Option<MappedNar> {
        let guard = crate::shrink_guard::Guard::new(map.as_ptr() as usize, map.len())?;
        Some(MappedNar(map, guard))
    }
}

impl Deref for MappedNar {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Gives a mapped NAR's pages back once both of its readers are past them: the
/// NarHash thread and the builder (the parser is never behind the builder, whose
/// batches it cut). A page released behind one reader alone is faulted in again by
/// the other: every page mapped and unmapped twice, a tenth of an encode's CPU time
/// spent in the kernel (`perf`: fault-around and `unmap_page_range` on both threads).
/// So a page is released once, behind the slower of the two, unless the faster is
/// more than [`Behind::LEAD`] ahead: then pages are released behind it as well, and
/// released again behind the slower reader once it has faulted them back in. That
/// bounds the NAR's resident pages whatever its size and whichever reader lags (they
/// are the page cache's pages, mapped, never anonymous memory; tests/memory.rs counts
/// them in the process's peak RSS).
pub(crate) struct Behind<'m> {
    nar: &'m [u8],
    hashed: AtomicUsize,
    built: AtomicUsize,
    /// Where the pages released behind the slower reader end, and behind the faster.
    released: Mutex<Released>,
}

impl<'m> Behind<'m> {
    /// How far one reader may be ahead of the other before pages are released
    /// behind it anyway (and faulted in again by the other).
    pub(crate) const LEAD: usize = 32 << 20;
    /// Pages are released in steps of at least this much: each release is a
    /// TLB shootdown on every core running the process.
    const STEP: usize = 8 << 20;

    /// `nar` must be a [`MappedNar`]'s bytes (see [`release`]).
    pub(crate) fn new(nar: &'m [u8]) -> Behind<'m> {
        Behind {
            nar,
            hashed: AtomicUsize::new(0),
            built: AtomicUsize::new(0),
            released: Mutex::new(Released::default()),
        }
    }

    /// The NarHash stream has read every byte before `to` (without it: all of them).
    pub(crate) fn hashed(&self, to: usize) {
        self.hashed.store(to, Ordering::Release);
        self.advance();
    }

    /// The builder has taken every byte before `to`.
    pub(crate) fn built(&self, to: usize) {
        self.built.store(to, Ordering::Release);
        self.advance();
    }

    fn advance(&self) {
        let (h, b) = (
            self.hashed.load(Ordering::Acquire),
            self.built.load(Ordering::Acquire),
        );
        let (slow, lead) = (h.min(b), h.max(b).saturating_sub(Self::LEAD));
        // The other reader releasing now will see this one's position next time.
        let Ok(mut r) = self.released.try_lock() else {
            return;
        };
        let len = self.nar.len();
        if slow >= r.slow + Self::STEP || (slow == len && slow > r.slow) {
            // Including any the faster reader's lead released and the slower one
            // faulted back in since.
            release(self.nar, r.slow..slow);
            r.slow = slow / 4096 * 4096;
        }
        let from = r.lead.max(r.slow);
        if lead >= from + Self::STEP {
            release(self.nar, from..lead);
            r.lead = lead / 4096 * 4096;
        }
    }
}

/// How far [`Behind`] has released.
#[derive(Default)]
struct Released {
    /// Behind the slower reader: pages before it are no longer mapped.
    slow: usize,
    /// Behind the faster reader's lead: released once, but the slower reader maps
    /// those between `slow` and here again as it reaches them.
    lead: usize,
}

/// Drops the whole pages of `range` of `nar` from the process's page tables; a later
/// read maps them again from the page cache (the bytes are the file's either way).
/// `nar` must be a [`MappedNar`]'s bytes: on anonymous memory this would zero them.
pub(crate) fn release(nar: &[u8], range: Range<usize>) {
    const PAGE: usize = 4096;
    let start = range.start.next_multiple_of(PAGE);
    let end = range.end.min(nar.len()) / PAGE * PAGE;
    if start >= end {
        return;
    }
    // SAFETY: the range lies within a read-only file mapping (`MappedNar`, which
    // starts at a page boundary); MADV_DONTNEED there only unmaps pages, which are
    // read again from the file when touched.
    unsafe {
        libc::madvise(
            nar.as_ptr().add(start) as *mut libc::c_void,
            end - start,
            libc::MADV_DONTNEED,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn pages_go_behind_the_slower_reader_or_the_lead() {
        const MIB: usize = 1 << 20;
        let len = Behind::LEAD + 40 * MIB + 100;
        let mut file = tempfile::tempfile().unwrap();
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        file.write_all(&bytes).unwrap();
        // SAFETY: a private temporary file nobody else changes.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        let behind = Behind::new(&map);
        let released = || {
            let r = behind.released.lock().unwrap();
            (r.slow, r.lead)
        };
        behind.hashed(Behind::LEAD);
        assert_eq!(released(), (0, 0), "the builder has read nothing yet");
        behind.built(20 * MIB);
        assert_eq!(released(), (20 * MIB, 0), "behind the builder, the slower");
        behind.built(22 * MIB);
        assert_eq!(released(), (20 * MIB, 0), "less than a step further");
        behind.hashed(Behind::LEAD + 36 * MIB);
        assert_eq!(
            released(),
            (20 * MIB, 36 * MIB),
            "the hash more than the lead ahead: released behind it too"
        );
        behind.built(30 * MIB);
        assert_eq!(
            released(),
            (30 * MIB, 36 * MIB),
            "what the builder mapped again is released behind it"
        );
        behind.built(len);
        assert_eq!(
            released().0,
            Behind::LEAD + 36 * MIB,
            "behind the hash, the slower now"
        );
        behind.hashed(len);
        assert_eq!(released().0, len / 4096 * 4096, "all read: all given back");
        assert!(map[..] == bytes[..], "released pages read the file again");
    }
}
