//! The body of a `dag/import` request: one multipart/form-data part holding a CAR,
//! written by [`export_car`] on the caller's thread into a bounded channel that hyper
//! drains.

use std::io::{self, BufWriter, Write};

use bytes::Bytes;
use http_body_util::channel::Sender;
use narfs_core::block::BlockSource;
use narfs_core::Cid;
use sha2::{Digest, Sha256};

use super::CHUNK;
use crate::{export_car, ExportError, Exported};

/// The multipart boundary: a CAR could contain any bytes, so one they are
/// overwhelmingly unlikely to (128 bits from the root, the process and the clock).
pub(super) fn boundary_of(root: &Cid) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(root.to_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(nanos.to_le_bytes());
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("narfs-{hex}")
}

/// Why the request body stopped early.
pub(super) enum Feed {
    /// The DAG could not be read (the real cause of whatever the node then says).
    Export(ExportError),
    /// The request ended first (the node answered or the connection broke).
    Gone,
    /// The writer thread panicked.
    Panicked,
}

/// The request body: one multipart/form-data part holding the CAR of `root`. On a
/// failure the body is aborted, so that hyper cuts the request instead of ending it
/// and the node cannot take a truncated CAR for a whole one.
pub(super) fn feed<S: BlockSource>(
    source: &S,
    root: &Cid,
    boundary: &str,
    tx: Sender<Bytes, io::Error>,
    handle: tokio::runtime::Handle,
) -> Result<Exported, Feed> {
    let mut out = BufWriter::with_capacity(
        CHUNK,
        BodyWriter {
            tx: Some(tx),
            handle,
        },
    );
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{root}.car\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let written = write_part(&mut out, source, root, &head, boundary);
    let (mut body, _) = out.into_parts();
    if let (Err(_), Some(tx)) = (&written, body.tx.take()) {
        tx.abort(io::Error::other("the CAR could not be written"));
    }
    written
}

fn write_part<S: BlockSource>(
    out: &mut BufWriter<BodyWriter>,
    source: &S,
    root: &Cid,
    head: &str,
    boundary: &str,
) -> Result<Exported, Feed> {
    out.write_all(head.as_bytes()).map_err(|_| Feed::Gone)?;
    let exported = export_car(source, std::slice::from_ref(root), &mut *out).map(|(_, e)| e);
    let exported = match exported {
        Ok(exported) => exported,
        Err(_) if out.get_ref().tx.is_none() => return Err(Feed::Gone),
        Err(e) => return Err(Feed::Export(e)),
    };
    out.write_all(format!("\r\n--{boundary}--\r\n").as_bytes())
        .and_then(|()| out.flush())
        .map_err(|_| Feed::Gone)?;
    Ok(exported)
}

/// Hands each write to the body channel, waiting while it is full; `tx` is `None`
/// once the body's reader is gone.
struct BodyWriter {
    tx: Option<Sender<Bytes, io::Error>>,
    handle: tokio::runtime::Handle,
}

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "the request ended");
        let tx = self.tx.as_mut().ok_or_else(gone)?;
        // Not on a runtime thread: the send only needs the channel, not the drivers
        // the thread calling `Runtime::block_on` runs.
        let sent = self
            .handle
            .block_on(tx.send_data(Bytes::copy_from_slice(data)));
        if sent.is_err() {
            self.tx = None;
            return Err(gone());
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
