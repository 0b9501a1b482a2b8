//! What the parser thread hands the builder: many NAR events at once, with the bytes
//! of their names and chunks back to back in two buffers. One hand-off per batch
//! instead of per event keeps both threads busy on NARs of many small files, and a
//! batch's chunks are hashed together ([`narfs_core::leaf_hash`]).

use std::ops::Range;

/// A batch is sent once its chunks hold this many bytes (or it holds [`MAX_ITEMS`]).
/// 16 chunks of 256 KiB fill a multi-buffer hash's lanes; three batches at most exist,
/// so this bounds most of the encoder's memory (tests/memory.rs).
pub(crate) const BATCH_BYTES: usize = 4 << 20;
/// A batch is sent once it holds this many events.
pub(crate) const MAX_ITEMS: usize = 8192;

/// One NAR event; names and chunks are ranges of the batch's buffers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Item {
    Directory(Range<usize>),
    DirectoryEnd,
    /// Name, target.
    Symlink(Range<usize>, Range<usize>),
    /// A file starts (name, executable); its chunks follow, then [`Item::FileEnd`].
    File(Range<usize>, bool),
    Chunk(Range<usize>),
    FileEnd,
}

/// Events in NAR order, their names and chunk bytes.
#[derive(Default)]
pub(crate) struct Batch {
    pub items: Vec<Item>,
    pub names: Vec<u8>,
    pub data: Vec<u8>,
}

impl Batch {
    pub fn clear(&mut self) {
        self.items.clear();
        self.names.clear();
        self.data.clear();
    }

    /// Whether the batch should be sent now.
    pub fn full(&self) -> bool {
        self.data.len() >= BATCH_BYTES || self.items.len() >= MAX_ITEMS
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Keeps `name` and returns where it is.
    pub fn name(&mut self, name: &[u8]) -> Range<usize> {
        let start = self.names.len();
        self.names.extend_from_slice(name);
        start..self.names.len()
    }

    /// Appends a chunk of a chunker whose chunks are at most `max_chunk` bytes.
    pub fn chunk(&mut self, chunk: &[u8], max_chunk: usize) {
        if self.data.capacity() - self.data.len() < chunk.len() {
            // Once, exactly: a batch is sent before its data reaches BATCH_BYTES, and
            // no chunk is over `max_chunk`, so it never grows past this (sized by
            // the chunker's own maximum, not the 2 MiB of any chunker: four batches
            // of fixed 256 KiB chunks hold 17 MiB, not 25).
            let room = (BATCH_BYTES + max_chunk).saturating_sub(self.data.len());
            self.data.reserve_exact(room.max(chunk.len()));
        }
        let start = self.data.len();
        self.data.extend_from_slice(chunk);
        self.items.push(Item::Chunk(start..self.data.len()));
    }

    /// The chunks' bytes, in order.
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        self.items.iter().filter_map(|i| match i {
            Item::Chunk(r) => Some(&self.data[r.clone()]),
            _ => None,
        })
    }
}
