//! The parser thread for a NAR in memory (a mapped file, [`crate::NarInput::map`]):
//! as [`crate::parse`], but a file's chunks are cut straight from the NAR and sent as
//! ranges of it, so no byte is copied on the way to the leaf hashing and the block
//! sink. The reader only reads the headers (through a small buffer) and seeks over
//! the contents.

use std::io::{self, Cursor};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::Scope;

use narfs_core::block::HashAlg;
use narfs_core::nar::{FileContents, Limits, NarError, NarReader};

use crate::batch::Batch;
use crate::chunker::Chunker;
use crate::parse::{each_event, finish, Batcher, Parser, Stopped};

/// The reader's buffer: headers and names (and the padding between files) are read
/// through it; contents that fall in it are skipped there, not read again.
const HEADER_BUFFER: usize = 4096;

/// Starts parsing `nar` on a thread of `scope`; see [`crate::parse::spawn`].
pub(crate) fn spawn<'scope, 'm: 'scope>(
    scope: &'scope Scope<'scope, '_>,
    nar: &'m [u8],
    chunker: Chunker,
    hash: HashAlg,
) -> (Receiver<Batch<'m>>, SyncSender<Batch<'m>>, Parser<'scope>) {
    // As in `parse::spawn`: a batch is handed over when the builder takes it.
    let (tx, rx) = sync_channel::<Batch>(0);
    let (back, recycled) = sync_channel::<Batch>(2);
    let thread = scope.spawn(move || {
        let out = Batcher::new(Some(nar), hash, &tx, &recycled);
        let reader = NarReader::with_buffer(Cursor::new(nar), Limits::default(), HEADER_BUFFER);
        finish(out, |out| {
            each_event(reader, out, |out, contents| {
                file(out, contents, nar, chunker)
            })
        })
    });
    (rx, back, thread)
}

/// Cuts the file whose contents `contents` is about to give into chunks of `nar`,
/// then skips them: an empty file is one empty chunk.
fn file(
    out: &mut Batcher<'_, '_>,
    contents: &mut FileContents<'_, Cursor<&[u8]>>,
    nar: &[u8],
    chunker: Chunker,
) -> Result<Result<(), Stopped>, io::Error> {
    let start = usize::try_from(contents.nar_offset()).map_err(io::Error::other)?;
    let len = usize::try_from(contents.remaining()).map_err(io::Error::other)?;
    let Some(bytes) = start.checked_add(len).and_then(|end| nar.get(start..end)) else {
        // The error the streaming reader gives for the same cut NAR.
        let cut = NarError::Truncated {
            offset: nar.len() as u64,
            what: "file contents",
        };
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, cut));
    };
    contents.skip()?;
    if len == 0 {
        out.batch.cut_mapped(start..start);
        return Ok(out.maybe_send());
    }
    let (max, masks) = (chunker.max_chunk(), chunker.masks());
    let mut at = 0;
    loop {
        let window = &bytes[at..len.min(at + max)];
        let n = chunker.cut(window, masks);
        out.batch.cut_mapped(start + at..start + at + n);
        at += n;
        if let Err(stopped) = out.maybe_send() {
            return Ok(Err(stopped));
        }
        if at == len {
            return Ok(Ok(()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Item;

    /// The chunks of every file, as the mapped parser sends them.
    fn parsed(nar: &[u8], chunker: Chunker) -> Result<Vec<Vec<Vec<u8>>>, String> {
        std::thread::scope(|scope| {
            let (rx, back, parser) = spawn(scope, nar, chunker, HashAlg::Sha2_256);
            let mut out: Vec<Vec<Vec<u8>>> = Vec::new();
            for batch in rx {
                for item in &batch.items {
                    match item {
                        Item::File(..) => out.push(Vec::new()),
                        Item::Chunk(r) => out.last_mut().unwrap().push(batch.chunk(r).to_vec()),
                        _ => {}
                    }
                }
                let _ = back.try_send(batch);
            }
            drop(back);
            parser.join().unwrap().map_err(|e| e.to_string())?;
            Ok(out)
        })
    }

    #[test]
    fn the_same_chunks_as_the_streaming_parser() {
        let nar = crate::parse::tests::nar_of(&crate::parse::tests::files());
        for spec in crate::parse::tests::CHUNKERS {
            let chunker: Chunker = spec.parse().unwrap();
            let want = crate::parse::tests::parsed(&nar, chunker);
            assert!(parsed(&nar, chunker).unwrap() == want, "{spec}");
        }
    }

    #[test]
    fn a_cut_nar_is_an_error_not_a_panic() {
        let nar = crate::parse::tests::nar_of(&crate::parse::tests::files());
        for cut in [nar.len() - 1, nar.len() / 2, 200, 0] {
            let chunker: Chunker = "fastcdc:64:256:1024".parse().unwrap();
            let err = parsed(&nar[..cut], chunker).unwrap_err();
            assert!(err.contains("truncated") || err.contains("magic"), "{err}");
        }
    }
}
