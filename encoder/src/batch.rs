//! What the parser thread hands the builder: many NAR events at once, with the bytes
//! of their names and chunks back to back in two buffers. One hand-off per batch
//! instead of per event keeps both threads busy on NARs of many small files, and a
//! batch's chunks are hashed together ([`narfs_core::leaf_hash`]).

use std::ops::Range;

use narfs_core::leaf_hash::LeafHasher;

/// A batch is sent once its chunks hold this many bytes (or it holds [`MAX_ITEMS`]).
/// 16 chunks of 256 KiB fill a multi-buffer hash's lanes; three batches at most exist,
/// so this bounds most of the encoder's memory (tests/memory.rs).
pub(crate) const BATCH_BYTES: usize = 4 << 20;
/// A batch is sent once it holds this many events.
pub(crate) const MAX_ITEMS: usize = 8192;
/// A batch of chunks of a NAR in memory ([`Batch::cut_mapped`]) is sent once its
/// chunks span this many bytes: they take no memory of the batch's, and more chunks
/// at once fill the multi-buffer hash's lanes with chunks of nearer lengths (lanes
/// run in lockstep).
pub(crate) const MAPPED_BATCH_BYTES: usize = 8 << 20;

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
///
/// When the NAR is in memory (a mapped file, `map`), chunks are ranges of it instead
/// and `data` stays empty: nothing is copied at all.
///
/// The parser reads a file's bytes straight into `data` (see [`Batch::window`]), so a
/// chunk is never copied between the reader's buffers and the leaf hashing: `data`
/// holds the batch's chunks (`used` bytes), then the bytes read but not cut yet,
/// which move to the next batch when this one is sent (at most a window's worth).
#[derive(Default)]
pub(crate) struct Batch<'m> {
    pub items: Vec<Item>,
    /// The NAR, when chunks are ranges of it.
    pub map: Option<&'m [u8]>,
    pub names: Vec<u8>,
    /// Sized once (zero-filled) to [`BATCH_BYTES`] + the chunker's largest chunk.
    pub data: Vec<u8>,
    /// Bytes of `data` the batch's chunks take.
    used: usize,
    /// The chunks' leaf digests, in order, once [`Batch::hash_leaves`] has run
    /// (`hashed`): by the parser while the builder is busy, else by the builder (see
    /// [`crate::parse::Batcher`]), so neither thread alone hashes every leaf.
    pub digests: Vec<[u8; 32]>,
    pub hashed: bool,
}

impl Batch<'_> {
    pub fn clear(&mut self) {
        self.items.clear();
        self.names.clear();
        self.used = 0;
        self.hashed = false;
    }

    /// Whether the batch should be sent now.
    pub fn full(&self) -> bool {
        let bytes = match self.map {
            Some(_) => MAPPED_BATCH_BYTES,
            None => BATCH_BYTES,
        };
        self.used >= bytes || self.items.len() >= MAX_ITEMS
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

    /// Makes room for a chunker whose chunks are at most `max_chunk` bytes to read
    /// into `data` after the chunks; returns where its window starts (the end of the
    /// chunks). See [`Batch::read_limit`].
    pub fn window(&mut self, max_chunk: usize) -> usize {
        let len = BATCH_BYTES + max_chunk;
        if self.data.len() < len {
            // Once per batch (batches are recycled): the memory a batch pins.
            self.data.resize(len, 0);
        }
        self.used
    }

    /// How far into `data` the parser may read while its window (from the end of the
    /// chunks) holds less than `max_chunk` bytes: past the window's `max_chunk` and
    /// up to [`BATCH_BYTES`], no further, so that once the batch is full what moves to
    /// the next one is less than a chunk. While the batch is not full this is more
    /// than the window's end and within `data`.
    pub fn read_limit(&self, max_chunk: usize) -> usize {
        (self.used + max_chunk).max(BATCH_BYTES)
    }

    /// The next `len` bytes of the window become a chunk.
    pub fn cut(&mut self, len: usize) {
        let start = self.used;
        self.used += len;
        self.items.push(Item::Chunk(start..self.used));
    }

    /// The range `r` of the map becomes a chunk (see [`Batch::map`]).
    pub fn cut_mapped(&mut self, r: Range<usize>) {
        self.used += r.len();
        self.items.push(Item::Chunk(r));
    }

    /// The bytes of the chunk `r`.
    pub fn chunk(&self, r: &Range<usize>) -> &[u8] {
        match self.map {
            Some(map) => &map[r.clone()],
            None => &self.data[r.clone()],
        }
    }

    /// Hashes the batch's chunks into [`Batch::digests`].
    pub fn hash_leaves(&mut self, hasher: &mut LeafHasher) {
        let mut digests = std::mem::take(&mut self.digests);
        let chunks: Vec<&[u8]> = self.chunks().collect();
        hasher.hash_all(&chunks, &mut digests);
        drop(chunks);
        self.digests = digests;
        self.hashed = true;
    }

    /// The chunks' bytes, in order.
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        self.items.iter().filter_map(|i| match i {
            Item::Chunk(r) => Some(self.chunk(r)),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use narfs_core::block::HashAlg;

    #[test]
    fn hashed_leaves_are_the_chunks_digests_until_cleared() {
        let nar: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut batch = Batch {
            map: Some(&nar),
            ..Batch::default()
        };
        // Chunks of unequal lengths (lanes sort them), an empty one, a file around them.
        batch.items.push(Item::File(0..0, false));
        for r in [0..70_000, 70_000..70_000, 70_000..70_100, 70_100..200_000] {
            batch.cut_mapped(r);
        }
        batch.items.push(Item::FileEnd);
        assert!(!batch.hashed);
        batch.hash_leaves(&mut LeafHasher::new(HashAlg::Sha2_256));
        assert!(batch.hashed);
        let want: Vec<[u8; 32]> = batch
            .chunks()
            .map(|c| HashAlg::Sha2_256.digest(c))
            .collect();
        assert_eq!(batch.digests, want);
        batch.clear();
        assert!(!batch.hashed, "a recycled batch is hashed anew");
    }
}
