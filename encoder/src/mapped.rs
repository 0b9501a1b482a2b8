//! A NAR file mapped read-only ([`crate::NarInput::map`]), and giving its pages back
//! once read ([`Behind`]): the pages stay in the page cache, but they leave the
//! process's resident set, so the NAR's pages an encode maps stay a bounded stretch
//! whatever the NAR's size.

use std::ops::{Deref, Range};
use std::sync::{Condvar, Mutex};

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
/// NarHash thread and the builder (whose batches the parser cut, and reads at most
/// [`Behind::AHEAD`] past what the builder has taken). Neither reader may get more
/// than [`Behind::LEAD`] ahead of the other: it waits for the other to catch up.
/// So every page is mapped once, read by both while mapped, and released once,
/// behind the slower of the two; and the NAR's resident pages stay within
/// `STEP + LEAD + AHEAD` (+ one hash piece) of the slower reader, whatever the NAR's
/// size, whichever reader lags and however the threads are scheduled (they are the
/// page cache's pages, mapped, never anonymous memory; tests/memory.rs counts them in
/// the process's peak RSS, with the binary's own pages, against 64 MiB).
///
/// An earlier design released pages behind the faster reader as well, once it was
/// 32 MiB ahead, under a `try_lock` a release could skip: its window was about
/// 70 MiB by design (the parser's batches in flight were not counted), and more when
/// the thread holding the lock was preempted, so tests/memory.rs's 64 MiB bound failed
/// now and then under load; and each page the faster reader released was faulted in
/// again by the slower one.
pub(crate) struct Behind<'m> {
    nar: &'m [u8],
    at: Mutex<At>,
    moved: Condvar,
}

/// Where the readers are, and how far the pages are released.
#[derive(Default)]
struct At {
    hashed: usize,
    built: usize,
    released: usize,
}

impl<'m> Behind<'m> {
    /// How far one reader may be ahead of the other before it waits.
    pub(crate) const LEAD: usize = 8 << 20;
    /// How far past the builder's position the parser's cutting may read: the batch
    /// the builder holds and the one the parser fills ([`crate::parse_mapped`], a
    /// rendezvous channel), and the chunker's look-ahead, at most a chunk. A parser
    /// that reads the leaves of more batches in flight must raise it.
    pub(crate) const AHEAD: usize =
        2 * (crate::batch::MAPPED_BATCH_BYTES + crate::chunker::MAX_CHUNK);
    /// Pages are released in steps of at least this much: each release is a
    /// TLB shootdown on every core running the process.
    const STEP: usize = 8 << 20;

    /// The most of the NAR resident at once: behind the slower reader, less than a
    /// step not released yet; ahead of it, the faster reader's lead, the parser's
    /// batches in flight past the builder, and the hash's piece being read. Kept well
    /// under the 64 MiB an encode may take, binary and heap included.
    pub(crate) const WINDOW: usize =
        Self::STEP + Self::LEAD + Self::AHEAD + crate::readahead::PIECE;

    /// `nar` must be a [`MappedNar`]'s bytes (see [`release`]).
    pub(crate) fn new(nar: &'m [u8]) -> Behind<'m> {
        Behind {
            nar,
            at: Mutex::new(At::default()),
            moved: Condvar::new(),
        }
    }

    /// The NarHash stream has read every byte before `to`; returns once the builder is
    /// no more than [`Behind::LEAD`] behind.
    pub(crate) fn hashed(&self, to: usize) {
        self.moved(to, |at| &mut at.hashed, |at| at.built);
    }

    /// The builder has taken every byte before `to`; returns once the NarHash stream
    /// is no more than [`Behind::LEAD`] behind.
    pub(crate) fn built(&self, to: usize) {
        self.moved(to, |at| &mut at.built, |at| at.hashed);
    }

    /// One reader moved to `to`: pages behind both go, the other reader may go on,
    /// and this one waits while it is too far ahead of the other.
    fn moved(&self, to: usize, mine: fn(&mut At) -> &mut usize, other: fn(&At) -> usize) {
        let len = self.nar.len();
        let mut at = self.at.lock().unwrap_or_else(|p| p.into_inner());
        *mine(&mut at) = to.min(len);
        let slow = at.hashed.min(at.built);
        let from = at.released;
        let go = slow >= from + Self::STEP || (slow == len && slow > from);
        if go {
            at.released = slow / 4096 * 4096;
        }
        self.moved.notify_all();
        if go {
            // Outside the lock: the other reader need not wait for the kernel.
            drop(at);
            release(self.nar, from..slow);
            at = self.at.lock().unwrap_or_else(|p| p.into_inner());
        }
        while *mine(&mut at) > other(&at) + Self::LEAD {
            at = self.moved.wait(at).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Marks the builder as done with the NAR (when it ends, also early or by a
    /// panic): the NarHash thread must not wait for it any more.
    pub(crate) fn build_done(&self) -> Done<'_, 'm> {
        Done(self, |at| &mut at.built)
    }

    /// As [`Behind::build_done`], for the NarHash thread.
    pub(crate) fn hash_done(&self) -> Done<'_, 'm> {
        Done(self, |at| &mut at.hashed)
    }
}

const _: () = assert!(
    Behind::WINDOW <= 40 << 20,
    "the NAR's window fits in an encode's memory"
);

/// On drop, one reader of a [`Behind`] is past the whole NAR.
pub(crate) struct Done<'b, 'm>(&'b Behind<'m>, fn(&mut At) -> &mut usize);

impl Drop for Done<'_, '_> {
    fn drop(&mut self) {
        let b = self.0;
        let mut at = b.at.lock().unwrap_or_else(|p| p.into_inner());
        *(self.1)(&mut at) = b.nar.len();
        b.moved.notify_all();
    }
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
    use std::time::Duration;

    const MIB: usize = 1 << 20;

    fn mapped(len: usize) -> (memmap2::Mmap, Vec<u8>) {
        let mut file = tempfile::tempfile().unwrap();
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        file.write_all(&bytes).unwrap();
        // SAFETY: a private temporary file nobody else changes.
        (unsafe { memmap2::Mmap::map(&file) }.unwrap(), bytes)
    }

    fn released(behind: &Behind<'_>) -> usize {
        behind.at.lock().unwrap().released
    }

    #[test]
    fn pages_go_behind_the_slower_reader() {
        let len = 40 * MIB + 100;
        let (map, bytes) = mapped(len);
        let behind = Behind::new(&map);
        behind.hashed(Behind::LEAD);
        assert_eq!(released(&behind), 0, "the builder has read nothing yet");
        behind.built(12 * MIB);
        assert_eq!(
            released(&behind),
            Behind::LEAD,
            "behind the hash, the slower"
        );
        behind.hashed(20 * MIB);
        assert_eq!(released(&behind), Behind::LEAD, "less than a step further");
        behind.built(16 * MIB);
        assert_eq!(
            released(&behind),
            16 * MIB,
            "behind the builder, the slower now"
        );
        drop(behind.build_done());
        behind.hashed(len);
        assert_eq!(
            released(&behind),
            len / 4096 * 4096,
            "all read: all given back"
        );
        assert!(map[..] == bytes[..], "released pages read the file again");
    }

    #[test]
    fn a_reader_too_far_ahead_waits_for_the_other() {
        let (map, _) = mapped(64 * MIB);
        let behind = &Behind::new(&map);
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel();
            s.spawn(move || {
                behind.hashed(Behind::LEAD + 4 * MIB);
                tx.send(()).unwrap();
            });
            let waited = rx.recv_timeout(Duration::from_millis(200));
            assert!(waited.is_err(), "the hash went on more than LEAD ahead");
            behind.built(4 * MIB);
            rx.recv_timeout(Duration::from_secs(10))
                .expect("the builder caught up: the hash goes on");
        });
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel();
            s.spawn(move || {
                behind.built(40 * MIB);
                tx.send(()).unwrap();
            });
            assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
            drop(behind.hash_done());
            rx.recv_timeout(Duration::from_secs(10))
                .expect("the hash is done: the builder goes on");
        });
    }
}
