//! A bound on the bytes in flight between a write session's packers and its committer
//! (`sink`, `committer`): packers [`Credit::take`] before they send a packed message,
//! the committer [`Credit::give`]s back what it receives. Counted in bytes, not
//! messages: a message is a pack of a few hundred KiB or one block of up to 4 MiB.

use std::sync::{Condvar, Mutex};

/// A bound on the bytes in flight between the packers and the committer: packers
/// [`Credit::take`] before they send, the committer gives back what it receives.
pub(crate) struct Credit {
    /// The bound.
    limit: usize,
    /// Bytes in flight, and whether the committer stopped.
    state: Mutex<(usize, bool)>,
    room: Condvar,
}

impl Credit {
    pub(crate) fn new(limit: usize) -> Credit {
        Credit {
            limit,
            state: Mutex::new((0, false)),
            room: Condvar::new(),
        }
    }

    /// Waits until `bytes` more fit (a message larger than the bound goes alone);
    /// false once the committer stopped.
    pub(crate) fn take(&self, bytes: usize) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while st.0 > 0 && st.0 + bytes > self.limit && !st.1 {
            st = self.room.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.0 += bytes;
        !st.1
    }

    /// The committer received `bytes`.
    pub(crate) fn give(&self, bytes: usize) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0 = st.0.saturating_sub(bytes);
        drop(st);
        self.room.notify_all();
    }

    /// The committer stopped: nobody waits for room any more.
    pub(crate) fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        self.room.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn takers_wait_for_room_and_a_large_message_goes_alone() {
        let c = Arc::new(Credit::new(100));
        assert!(c.take(60));
        assert!(c.take(40));
        // Full: the next taker waits until the committer gives back.
        let t = {
            let c = c.clone();
            std::thread::spawn(move || c.take(30))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!t.is_finished());
        c.give(60);
        assert!(t.join().unwrap());
        c.give(70);
        // Nothing in flight: a message above the bound is let through alone.
        assert!(c.take(500));
        c.give(500);
    }

    #[test]
    fn a_stopped_committer_releases_every_waiting_taker() {
        let c = Arc::new(Credit::new(10));
        assert!(c.take(10));
        let waiting: Vec<_> = (0..3)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || c.take(5))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        c.close();
        for t in waiting {
            assert!(!t.join().unwrap());
        }
        assert!(!c.take(1));
    }
}
