//! The parser thread of the encoder: reads NAR events and cuts each file into chunks,
//! collecting both, in order, into [`Batch`]es sent through a bounded channel to the
//! thread that hashes and builds. Batches come back through a second channel to be
//! reused, so the memory in flight stays at a few batches whatever the NAR's size.

use std::io::{self, Read};
use std::ops::Range;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::thread::{Scope, ScopedJoinHandle};

use narfs_core::nar::{Event, FileContents, NarReader};

use crate::batch::{Batch, Item};
use crate::chunker::Chunker;
use crate::encode::EncodeError;
use narfs_core::block::HashAlg;
use narfs_core::leaf_hash::LeafHasher;

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
pub(crate) fn spawn<'scope, 'm: 'scope, R: Read + Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    input: R,
    chunker: Chunker,
    hash: HashAlg,
) -> (Receiver<Batch<'m>>, SyncSender<Batch<'m>>, Parser<'scope>) {
    let (tx, rx) = sync_channel::<Batch>(IN_FLIGHT);
    let (back, recycled) = sync_channel::<Batch>(IN_FLIGHT + 2);
    let thread = scope.spawn(move || {
        let out = Batcher::new(None, hash, &tx, &recycled);
        finish(out, |out| events(input, chunker, out))
    });
    (rx, back, thread)
}

/// A send that fails means the builder stopped (with its own error); stop quietly.
pub(crate) struct Stopped;

/// Fills batches and sends each when full (its leaves hashed, unless the builder waits).
pub(crate) struct Batcher<'a, 'm> {
    pub batch: Batch<'m>,
    map: Option<&'m [u8]>,
    hasher: LeafHasher,
    tx: &'a SyncSender<Batch<'m>>,
    recycled: &'a Receiver<Batch<'m>>,
}

impl<'a, 'm> Batcher<'a, 'm> {
    /// Batches of chunks in their own buffers, or (`map`) ranges of the NAR in memory.
    pub fn new(
        map: Option<&'m [u8]>,
        hash: HashAlg,
        tx: &'a SyncSender<Batch<'m>>,
        recycled: &'a Receiver<Batch<'m>>,
    ) -> Self {
        let mut batch = Batch::default();
        batch.map = map;
        Batcher {
            batch,
            map,
            hasher: LeafHasher::new(hash),
            tx,
            recycled,
        }
    }

    /// Sends the batch if it is full.
    pub fn maybe_send(&mut self) -> Result<(), Stopped> {
        if self.batch.full() {
            self.send()?;
        }
        Ok(())
    }

    pub fn send(&mut self) -> Result<(), Stopped> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.send_carrying(0..0, 0).map(|_| ())
    }

    /// Sends the batch; the bytes `tail` of its data (read but not cut yet) move to
    /// the next batch, whose window for a chunker of `max_chunk` they start. Returns
    /// where they end there.
    fn send_carrying(&mut self, tail: Range<usize>, max_chunk: usize) -> Result<usize, Stopped> {
        let mut next = self.recycled.try_recv().unwrap_or_default();
        next.clear();
        next.map = self.map;
        let end = match tail.is_empty() {
            true => 0,
            false => {
                let start = next.window(max_chunk);
                let end = start + tail.len();
                next.data[start..end].copy_from_slice(&self.batch.data[tail]);
                end
            }
        };
        let full = std::mem::replace(&mut self.batch, next);
        // The builder waiting for it takes the batch as it is and hashes it while this
        // thread parses on; a builder still busy gets it hashed here. Either of the two
        // threads alone hashing every leaf was the one the encode of the small-file NAR
        // waited for (the builder: leaves, nodes, the sink; the parser with FastCDC:
        // cut points, leaves), the other one idle half the time.
        match self.tx.try_send(full) {
            Ok(()) => Ok(end),
            Err(TrySendError::Full(mut full)) => {
                full.hash_leaves(&mut self.hasher);
                self.tx.send(full).map_err(|_| Stopped)?;
                Ok(end)
            }
            Err(TrySendError::Disconnected(_)) => Err(Stopped),
        }
    }

    /// Cuts a file's bytes into chunks, reading them straight into the batch (see
    /// [`Batch`]): an empty file is one empty chunk.
    fn file(
        &mut self,
        contents: &mut impl Read,
        chunker: Chunker,
    ) -> Result<Result<(), Stopped>, io::Error> {
        let max = chunker.max_chunk();
        let masks = chunker.masks();
        let mut end = self.batch.window(max);
        let (mut eof, mut chunks) = (false, 0u64);
        loop {
            let start = self.batch.window(max);
            // A whole max-size window, or the file's end.
            while !eof && end - start < max {
                let limit = self.batch.read_limit(max);
                match contents.read(&mut self.batch.data[end..limit]) {
                    Ok(0) => eof = true,
                    Ok(n) => end += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if end == start {
                if chunks == 0 {
                    self.batch.cut(0);
                    return Ok(self.maybe_send());
                }
                return Ok(Ok(()));
            }
            let len = chunker.cut(&self.batch.data[start..end], masks);
            self.batch.cut(len);
            chunks += 1;
            if self.batch.full() {
                let tail = self.batch.window(max)..end;
                end = match self.send_carrying(tail, max) {
                    Ok(end) => end,
                    Err(stopped) => return Ok(Err(stopped)),
                };
            }
        }
    }

    pub fn push(&mut self, item: Item) -> Result<(), Stopped> {
        self.batch.items.push(item);
        self.maybe_send()
    }
}

/// Runs `events` into `out`, then sends what is left; the parse error, if any.
pub(crate) fn finish<'a, 'm>(
    mut out: Batcher<'a, 'm>,
    events: impl FnOnce(&mut Batcher<'a, 'm>) -> Result<Result<(), Stopped>, EncodeError>,
) -> Result<(), EncodeError> {
    match events(&mut out) {
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
    out: &mut Batcher<'_, '_>,
) -> Result<Result<(), Stopped>, EncodeError> {
    each_event(NarReader::new(input), out, |out, contents| {
        out.file(contents, chunker)
    })
}

/// Puts the NAR's events into batches; a file's contents go to `file`, which puts
/// its chunks.
pub(crate) fn each_event<'m, R: Read>(
    mut nar: NarReader<R>,
    out: &mut Batcher<'_, 'm>,
    mut file: impl FnMut(
        &mut Batcher<'_, 'm>,
        &mut FileContents<'_, R>,
    ) -> Result<Result<(), Stopped>, io::Error>,
) -> Result<Result<(), Stopped>, EncodeError> {
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
                match file(out, &mut contents) {
                    Ok(Ok(())) => out.push(Item::FileEnd),
                    Ok(Err(Stopped)) => Err(Stopped),
                    Err(e) => return Err(contents.error(e).into()),
                }
            }
        };
        if sent.is_err() {
            return Ok(Err(Stopped));
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::batch::{BATCH_BYTES, MAX_ITEMS};
    use crate::chunker::{ChunkBuffer, Dribble};
    use narfs_core::nar::NarWriter;

    /// Files around the batch's size and the chunkers' maximums, then more small
    /// files than a batch holds events.
    pub(crate) fn files() -> Vec<Vec<u8>> {
        let sizes = [
            0,
            1,
            5000,
            BATCH_BYTES - 1,
            BATCH_BYTES + 12_345,
            3 * 262_144 + 7,
        ];
        let mut out: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| narfs_core::noise::bytes(i as u64, n))
            .collect();
        out.extend((0..MAX_ITEMS / 2 + 100).map(|i| narfs_core::noise::bytes(i as u64, i % 300)));
        out
    }

    /// The chunks the parser sends, file by file (batches recycled, so a reused
    /// batch's stale bytes would show).
    pub(crate) fn parsed(nar: &[u8], chunker: Chunker) -> Vec<Vec<Vec<u8>>> {
        std::thread::scope(|scope| {
            let (rx, back, parser) = spawn(scope, Dribble(nar, 65_521), chunker, HashAlg::Sha2_256);
            let mut out: Vec<Vec<Vec<u8>>> = Vec::new();
            for batch in rx {
                for item in &batch.items {
                    match item {
                        Item::File(..) => out.push(Vec::new()),
                        Item::Chunk(r) => {
                            out.last_mut().unwrap().push(batch.data[r.clone()].to_vec())
                        }
                        _ => {}
                    }
                }
                let _ = back.try_send(batch);
            }
            drop(back);
            parser.join().unwrap().unwrap();
            out
        })
    }

    /// Chunkers around the batch's size and at its smallest, fixed and FastCDC.
    pub(crate) const CHUNKERS: [&str; 4] = [
        "fixed:262144",
        "fixed:1000",
        "fastcdc:16384:65536:262144",
        "fastcdc:64:256:1024",
    ];

    /// A NAR of a directory of `files`.
    pub(crate) fn nar_of(files: &[Vec<u8>]) -> Vec<u8> {
        let mut nar = Vec::new();
        let mut w = NarWriter::new(&mut nar);
        w.directory(b"").unwrap();
        for (i, f) in files.iter().enumerate() {
            w.begin_file(format!("f{i:06}").as_bytes(), false, f.len() as u64)
                .unwrap();
            w.contents(f).unwrap();
            w.end_file().unwrap();
        }
        w.end_directory().unwrap();
        w.finish().unwrap();
        nar
    }

    #[test]
    fn chunks_are_the_chunkers_across_batches() {
        let files = files();
        let nar = nar_of(&files);
        for spec in CHUNKERS {
            let chunker: Chunker = spec.parse().unwrap();
            let mut buffer = ChunkBuffer::default();
            let expected: Vec<Vec<Vec<u8>>> = files
                .iter()
                .map(|f| {
                    let mut chunks = Vec::new();
                    chunker
                        .chunk::<_, ()>(&f[..], &mut buffer, |c| {
                            chunks.push(c.to_vec());
                            Ok(())
                        })
                        .unwrap_or_else(|_| panic!("chunking failed"));
                    chunks
                })
                .collect();
            let got = parsed(&nar, chunker);
            assert_eq!(got.len(), expected.len(), "{spec}");
            for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                assert!(
                    g == e,
                    "{spec}: file {i} ({} bytes) chunked differently",
                    files[i].len()
                );
            }
        }
    }
}
