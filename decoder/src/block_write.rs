//! Outputs that can take a verified block's bytes whole ([`BlockWrite`]): a raw leaf is
//! read into a buffer of its own and verified there, so an output that queues buffers
//! (the writer behind the decoder, [`crate::Behind`]) can take that buffer as it is
//! and write it later with many others in one `writev`, instead of having every byte
//! of the NAR copied once more on the decoder's thread.

use std::io::{self, IoSlice, Write};

/// Blocks smaller than this are copied by an output that could take them whole: a
/// copy of a few KiB costs less than a buffer of its own (an `iovec` or a body frame,
/// a later `free`, a cache miss).
pub const WHOLE_BLOCK: usize = 16 << 10;

/// A [`Write`] that may take whole buffers. The default copies (`write_all`).
pub trait BlockWrite: Write {
    /// Writes all of `block`, which the output may keep instead of copying. Copied,
    /// the buffer goes back to [`narfs_core::leaf_buffers`] for the next leaf read.
    fn write_block(&mut self, block: Vec<u8>) -> io::Result<()> {
        self.write_all(&block)?;
        narfs_core::leaf_buffers::give(block);
        Ok(())
    }
}

impl<W: BlockWrite + ?Sized> BlockWrite for &mut W {
    fn write_block(&mut self, block: Vec<u8>) -> io::Result<()> {
        (**self).write_block(block)
    }
}

impl BlockWrite for Vec<u8> {}
impl BlockWrite for io::Sink {}

/// Any [`Write`] as a [`BlockWrite`] that copies: what [`crate::decode`] and
/// [`crate::decode_nar`] wrap their output in.
pub(crate) struct Copying<W>(pub(crate) W);

impl<W: Write> Write for Copying<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> BlockWrite for Copying<W> {}

/// `Write::write_all_vectored` (unstable): every byte of `slices`, through short
/// writes and interruptions.
pub(crate) fn write_all_vectored(
    out: &mut impl Write,
    mut slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
