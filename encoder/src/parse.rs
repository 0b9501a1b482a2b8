//! The parser thread of the encoder: reads NAR events and cuts each file into chunks,
//! sending both, in order, through a bounded channel to the thread that hashes and
//! builds. Chunk buffers come back through a second channel to be reused, so the
//! memory in flight stays at a few chunks whatever the NAR's size.

use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};

use narfs_core::nar::{Event, NarReader};

use crate::chunker::{ChunkBuffer, ChunkError, Chunker};
use crate::encode::{EncodeError, Msg};

/// The parser thread; it ends with the parse error, if any.
pub(crate) type Parser<'scope> = ScopedJoinHandle<'scope, Result<(), EncodeError>>;

/// Messages in flight between the parser and the builder.
const IN_FLIGHT: usize = 16;

/// Starts parsing `input` on a thread of `scope`. Returns the events, the channel
/// through which chunk buffers go back, and the thread, which ends with the parse
/// error if there is one (the events then simply stop).
pub(crate) fn spawn<'scope, R: Read + Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    input: R,
    chunker: Chunker,
) -> (Receiver<Msg>, SyncSender<Vec<u8>>, Parser<'scope>) {
    let (tx, rx) = sync_channel::<Msg>(IN_FLIGHT);
    let (back, recycled) = sync_channel::<Vec<u8>>(IN_FLIGHT + 2);
    let thread = scope.spawn(move || parse(input, chunker, &tx, &recycled));
    (rx, back, thread)
}

/// A send that fails means the builder stopped (with its own error); stop quietly.
struct Stopped;

fn parse<R: Read>(
    input: R,
    chunker: Chunker,
    tx: &SyncSender<Msg>,
    recycled: &Receiver<Vec<u8>>,
) -> Result<(), EncodeError> {
    let mut nar = NarReader::new(input);
    let mut buffer = ChunkBuffer::default();
    let send = |m: Msg| tx.send(m).map_err(|_| Stopped);
    while let Some(event) = nar.next()? {
        let sent = match event {
            Event::Directory { name } => send(Msg::Directory(name.to_vec())),
            Event::DirectoryEnd => send(Msg::DirectoryEnd),
            Event::Symlink { name, target } => send(Msg::Symlink(name.to_vec(), target.to_vec())),
            Event::File {
                name,
                executable,
                mut contents,
                ..
            } => {
                if send(Msg::File(name.to_vec(), executable)).is_err() {
                    return Ok(());
                }
                let chunked = chunker.chunk(&mut contents, &mut buffer, |chunk| {
                    let mut owned = recycled.try_recv().unwrap_or_default();
                    owned.clear();
                    owned.extend_from_slice(chunk);
                    send(Msg::Chunk(owned))
                });
                match chunked {
                    Ok(_) => send(Msg::FileEnd),
                    Err(ChunkError::Read(e)) => return Err(contents.error(e).into()),
                    Err(ChunkError::Consumer(Stopped)) => Err(Stopped),
                }
            }
        };
        if sent.is_err() {
            return Ok(());
        }
    }
    Ok(())
}
