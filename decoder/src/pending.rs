//! The next batch fetched and verified on the pool while the walk writes the blocks
//! it holds ready, instead of after them.
//!
//! Without it the walk and the pool took turns: the walk waited for each batch, and
//! then both cores but one idled while it wrote the batch's files, opened its
//! directories and planned the next one (on the small-file NAR the walk's own work is
//! a fifth of the decode's CPU, all of it with the pool idle). So once a batch has
//! landed in the innermost open directory, the batch after it is planned at once (the
//! entries after those held ready: [`crate::batch::plan`]) and fetched by a job of the
//! pool; the walk takes it ([`Pending::join`]) when it needs any of it: when the
//! directory it was planned for, or one around it, runs out of blocks held ready,
//! before that directory is closed, and before any other batch is planned. Until then
//! the stack below that directory cannot change under it: the walk only consumes the
//! ready blocks of the innermost directory, so the places the plan named (entries
//! after those held ready, subdirectories held ready around it) stay where they were.
//! One batch is pending at most, and its claims are planned within what the open
//! directories hold ready, as any batch's: the bytes held stay within
//! [`crate::ahead::batch_bytes`].

use std::sync::mpsc::{channel, Receiver};

use narfs_core::block::BlockSource;

use crate::batch::{fill, plan, OpenDir, Part};
use crate::error::DecodeError;
use crate::fetch::{fetch_many, fetch_weighted};
use crate::Limits;

/// A batch being fetched by a job of the pool.
pub(crate) struct Pending {
    /// The level of the stack it was planned for.
    level: usize,
    parts: Vec<Part>,
    fetched: Receiver<Vec<Result<Vec<u8>, DecodeError>>>,
}

/// Plans the batch after the blocks the innermost open directory holds ready and
/// starts fetching it on `scope`; `None` when that directory holds none ready (the
/// walk plans its next batch itself, or fetches its next entry alone), when no batch
/// of two blocks is left to plan, or on a thread of the pool itself (whose wait for
/// the job could hold the very thread it needs).
pub(crate) fn launch<'s, S: BlockSource + Sync>(
    scope: &rayon::Scope<'s>,
    source: &'s S,
    stack: &mut [OpenDir],
    limits: &Limits,
) -> Option<Pending> {
    if rayon::current_thread_index().is_some() || stack.last()?.ready.is_empty() {
        return None;
    }
    let plan = plan(source, stack, limits)?;
    let (tx, fetched) = channel();
    let (cids, weights, lied) = (plan.cids, plan.weights, plan.lied);
    scope.spawn(move |_| {
        let got = match lied {
            true => fetch_many(source, &cids, ""),
            false => fetch_weighted(source, &cids, &weights, ""),
        };
        // The walk stopped on an error: nobody waits for these.
        let _ = tx.send(got);
    });
    Some(Pending {
        level: plan.level,
        parts: plan.parts,
        fetched,
    })
}

impl Pending {
    /// Whether the walk must take this batch before closing the directory at `level`
    /// of the stack (one the batch was planned for, or one around it).
    pub(crate) fn needed_before_closing(&self, level: usize) -> bool {
        level <= self.level
    }

    /// Waits for the batch and puts its blocks where its plan said.
    pub(crate) fn join<S: BlockSource + Sync>(
        self,
        source: &S,
        stack: &mut [OpenDir],
        limits: &Limits,
    ) -> Result<(), DecodeError> {
        // The job's sender is dropped unsent only when it panicked; the scope then
        // raises that panic when the walk leaves it.
        let fetched = self
            .fetched
            .recv()
            .expect("the pending batch's job panicked");
        fill(source, stack, self.level, self.parts, fetched, limits)
    }
}
