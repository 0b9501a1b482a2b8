//! Turns a read past the end of a mapped NAR file that shrank under the encode into a
//! clear one-line error and exit status 1, instead of death by SIGBUS.
//!
//! A file mapping reads the file as it is now: if another process truncates the NAR
//! while it is encoded, touching a page past the new end raises SIGBUS. A signal
//! handler cannot unwind or return an error to the reading code, so the only choices
//! are dying by the signal or leaving with a message: this module does the latter,
//! for addresses inside a registered mapping only. Any other SIGBUS (a bug, another
//! mapping) gets the default action, as if no handler had been installed. What an
//! encode writes is safe to abandon this way: the store is kill-safe (ARCHITECTURE.md,
//! invariant 3) and a CAR output appears under its name only when complete.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

/// Mappings guarded at once; a mapping finding no free slot is not made (the caller
/// reads the file instead).
const SLOTS: usize = 8;

/// `[start, end)` of each guarded mapping; `start == 0` is a free slot, `usize::MAX` one
/// being filled.
static RANGES: [(AtomicUsize, AtomicUsize); SLOTS] =
    [const { (AtomicUsize::new(0), AtomicUsize::new(0)) }; SLOTS];

static INSTALL: Once = Once::new();

const MESSAGE: &[u8] =
    b"narfs: the NAR file shrank while it was being encoded (another process truncated or rewrote it)\n";

/// A registered mapping: a SIGBUS inside it ends the process with [`MESSAGE`] until
/// this is dropped.
#[derive(Debug)]
pub(crate) struct Guard(usize);

impl Guard {
    /// Registers `[start, start + len)`; `None` when every slot is taken or the
    /// handler could not be installed.
    pub(crate) fn new(start: usize, len: usize) -> Option<Guard> {
        if !install() {
            return None;
        }
        for (i, (s, e)) in RANGES.iter().enumerate() {
            // Reserve the slot (a start no address reaches), then fill it: the handler
            // never sees a start with another mapping's end.
            if s.compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                e.store(start + len, Ordering::Release);
                s.store(start, Ordering::Release);
                return Some(Guard(i));
            }
        }
        None
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        RANGES[self.0].0.store(0, Ordering::Release);
    }
}

/// Installs the handler once; whether it is in place.
fn install() -> bool {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    INSTALL.call_once(|| {
        // SAFETY: a zeroed sigaction is a valid start; the handler only reads atomics
        // and calls async-signal-safe functions (write, _exit, signal).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                on_sigbus;
            action.sa_sigaction = handler as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            let ok = libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) == 0;
            INSTALLED.store(ok, Ordering::Release);
        }
    });
    INSTALLED.load(Ordering::Acquire)
}

extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    for (s, e) in RANGES.iter() {
        let start = s.load(Ordering::Acquire);
        if start != 0 && start <= addr && addr < e.load(Ordering::Acquire) {
            // SAFETY: write and _exit are async-signal-safe.
            unsafe {
                libc::write(2, MESSAGE.as_ptr().cast(), MESSAGE.len());
                libc::_exit(1);
            }
        }
    }
    // Not ours: the default action, taken when the faulting access runs again.
    // SAFETY: signal is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_taken_and_given_back() {
        let guards: Vec<Guard> = (0..SLOTS)
            .map(|i| Guard::new(4096 * (i + 1), 10).unwrap())
            .collect();
        assert!(Guard::new(1 << 40, 10).is_none(), "every slot is taken");
        drop(guards);
        let again = Guard::new(1 << 40, 10).expect("slots given back");
        assert_eq!(RANGES[again.0].0.load(Ordering::Acquire), 1 << 40);
        assert_eq!(RANGES[again.0].1.load(Ordering::Acquire), (1 << 40) + 10);
    }
}
