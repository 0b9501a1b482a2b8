//! The parser thread of the encoder: reads NAR events and cuts each file into chunks,
//! collecting both, in order, into [`Batch`]es sent through a bounded channel to the
//! thread that hashes and builds. Batches come back through a second channel to be
//! reused, so the memory in flight stays at a few batches whatever the NAR's size.

use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};

use narfs_core::nar::{Event, NarReader};

use crate::batch::{Batch, Item};
use crate::chunker::{ChunkBuffer, ChunkError, Chunker};
use crate::encode::EncodeError;

/// The parser thread; it ends with the parse error, if any.
pub(crate) type Parser<'scope> = ScopedJoinHandle<'scope, Result<(), EncodeError>>;

/// Batches queued between the parser and the builder: none, a batch is handed over
/// when the builder takes it (one is being filled, one built, one waits to be
/// reused: at most three exist, 13 MiB with 256 KiB chunks). One more queued only
/// helps when the two threads' speeds jitter, and costs a batch's memory.
const IN_FLIGHT: usize = 0;

/// Starts parsing `input` on a thread of `scope`. Returns the batches, the channel
/// through which they go back, and the thread, which ends with the parse error if
/// there is one (the batches then simply stop, after the events before the error).
pub(crate) fn spawn<'scope, R: Read + Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    input: R,
    chunker: Chunker,
) -> (Receiver<Batch>, SyncSender<Batch>, Parser<'scope>) {
    let (tx, rx) = sync_channel::<Batch>(IN_FLIGHT);
    let (back, recycled) = sync_channel::<Batch>(IN_FLIGHT + 2);
    let thread = scope.spawn(move || parse(input, chunker, &tx, &recycled));
    (rx, back, thread)
}

/// A send that fails means the builder stopped (with its own error); stop quietly.
struct Stopped;

/// Fills batches and sends each when full.
struct Batcher<'a> {
    batch: Batch,
    tx: &'a SyncSender<Batch>,
    recycled: &'a Receiver<Batch>,
}

impl Batcher<'_> {
    /// Sends the batch if it is full.
    fn maybe_send(&mut self) -> Result<(), Stopped> {
        if self.batch.full() {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> Result<(), Stopped> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let mut next = self.recycled.try_recv().unwrap_or_default();
        next.clear();
        let full = std::mem::replace(&mut self.batch, next);
        self.tx.send(full).map_err(|_| Stopped)
    }

    fn push(&mut self, item: Item) -> Result<(), Stopped> {
        self.batch.items.push(item);
        self.maybe_send()
    }
}

fn parse<R: Read>(
    input: R,
    chunker: Chunker,
    tx: &SyncSender<Batch>,
    recycled: &Receiver<Batch>,
) -> Result<(), EncodeError> {
    let mut out = Batcher {
        batch: Batch::default(),
        tx,
        recycled,
    };
    match events(input, chunker, &mut out) {
        Ok(Ok(())) => {
            let _ = out.send();
            Ok(())
        }
        // The builder stopped: it has the error to report.
        Ok(Err(Stopped)) => Ok(()),
        Err(e) => {
            // The events before the error are built first, as they would have been
            // one by one: a builder error among them (a non-UTF-8 name) takes
            // precedence, as it does when the builder sees it before the parser fails.
            let _ = out.send();
            Err(e)
        }
    }
}

fn events<R: Read>(
    input: R,
    chunker: Chunker,
    out: &mut Batcher<'_>,
) -> Result<Result<(), Stopped>, EncodeError> {
    let mut nar = NarReader::new(input);
    let mut buffer = ChunkBuffer::default();
    while let Some(event) = nar.next()? {
        let sent = match event {
            Event::Directory { name } => {
                let name = out.batch.name(name);
                out.push(Item::Directory(name))
            }
            Event::DirectoryEnd => out.push(Item::DirectoryEnd),
            Event::Symlink { name, target } => {
                let name = out.batch.name(name);
                let target = out.batch.name(target);
                out.push(Item::Symlink(name, target))
            }
            Event::File {
                name,
                executable,
                mut contents,
                ..
            } => {
                let name = out.batch.name(name);
                out.batch.items.push(Item::File(name, executable));
                let chunked = chunker.chunk(&mut contents, &mut buffer, |chunk| {
                    out.batch.chunk(chunk, chunker.max_chunk());
                    out.maybe_send()
                });
                match chunked {
                    Ok(_) => out.push(Item::FileEnd),
                    Err(ChunkError::Read(e)) => return Err(contents.error(e).into()),
                    Err(ChunkError::Consumer(Stopped)) => Err(Stopped),
                }
            }
        };
        if sent.is_err() {
            return Ok(Err(Stopped));
        }
    }
    Ok(Ok(()))
}
