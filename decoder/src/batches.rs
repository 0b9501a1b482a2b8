//! The walk's batches of directory entries, fetched and verified on a thread of their
//! own while the walk writes the entries before them.
//!
//! Fetching a batch ([`crate::ahead`]) hands its two halves to the rayon pool and
//! waits; if the walk itself waited, both cores would idle while it writes the
//! batch's files out (a NAR of small files is tens of thousands of them). So the walk
//! asks for the next batch of a directory while half of the current one is still to
//! be written, and takes the answer when it gets there. One thread serves the whole
//! walk, answering requests in order: an answer for a directory higher up (asked for
//! before the walk went down into a subdirectory) is kept with that directory.
//! At most one batch per open directory is in flight.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::thread::Scope;

use narfs_core::block::BlockSource;
use narfs_core::Cid;

use crate::file::fetch_split;
use crate::DecodeError;

/// A batch's blocks, in the order of its entries.
pub(crate) type Answer = Vec<Result<Vec<u8>, DecodeError>>;

/// The fetching thread (started on the first request) and the requests it has not
/// answered yet: (the directory's depth in the walk's stack, its first entry).
pub(crate) struct Batches<'scope, 'env, S> {
    scope: &'scope Scope<'scope, 'env>,
    source: &'env S,
    thread: Option<(mpsc::Sender<(Vec<Cid>, usize)>, mpsc::Receiver<Answer>)>,
    pending: VecDeque<(usize, usize)>,
}

/// Runs `f` with a [`Batches`] over `source`; its thread ends with `f`.
pub(crate) fn with_batches<S: BlockSource + Sync, R>(
    source: &S,
    f: impl FnOnce(&mut Batches<'_, '_, S>) -> R,
) -> R {
    std::thread::scope(|scope| {
        let mut batches = Batches {
            scope,
            source,
            thread: None,
            pending: VecDeque::new(),
        };
        f(&mut batches)
        // Dropping `batches` closes the requests: the thread ends after its current one.
    })
}

impl<'scope, 'env, S: BlockSource + Sync> Batches<'scope, 'env, S> {
    /// Asks for `cids`, the entries from `start` on of the directory at `depth`,
    /// fetched in two halves split at `at` ([`fetch_split`]).
    pub(crate) fn request(&mut self, depth: usize, start: usize, cids: Vec<Cid>, at: usize) {
        let (tx, _) = self.thread.get_or_insert_with(|| {
            let (tx, requests) = mpsc::channel::<(Vec<Cid>, usize)>();
            let (answers, rx) = mpsc::channel();
            let source = self.source;
            self.scope.spawn(move || {
                for (cids, at) in requests {
                    if answers.send(fetch_split(source, &cids, at, "")).is_err() {
                        return;
                    }
                }
            });
            (tx, rx)
        });
        tx.send((cids, at)).expect("the thread lives as long as its requests");
        self.pending.push_back((depth, start));
    }

    /// The oldest answer not taken yet, with the depth and first entry it was asked
    /// for; `None` when nothing is in flight.
    pub(crate) fn next_answer(&mut self) -> Option<(usize, usize, Answer)> {
        let (depth, start) = self.pending.pop_front()?;
        let (_, rx) = self.thread.as_ref().expect("a request started it");
        let answer = rx.recv().expect("the thread answers every request");
        Some((depth, start, answer))
    }
}
