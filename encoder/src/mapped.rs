//! A NAR file mapped read-only ([`crate::NarInput::map`]), and giving its pages back
//! once read: the pages stay in the page cache, but they leave the process's
//! resident set, so an encode's memory stays a few batches whatever the NAR's size.

use std::ops::{Deref, Range};

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
