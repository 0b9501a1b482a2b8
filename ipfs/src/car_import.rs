//! CAR → store: the blocks of a CARv1 (or of a CARv2's payload), each verified against
//! its CID before it is queued for the store, then every root the header names walked
//! as a NAR (which proves its DAG complete and gives its NarHash) and recorded.
//!
//! The store lock is held shared from the first block to the last record, so a `gc`
//! cannot collect the blocks between their commit and the record that keeps them.

use std::io::{self, BufRead, Write};

use narfs_core::block::{verify, BlockError, BlockSink, HashAlg, StoreError};
use narfs_core::car::{CarError, CarReader};
use narfs_core::Cid;
use narfs_decoder::{decode_nar, DecodeError, Limits};
use narfs_store::{RootRecord, Store, Written};
use sha2::{Digest, Sha256};

/// What [`import_car`] did.
#[derive(Debug)]
pub struct CarImport {
    /// The roots the CAR header names, in its order, each with its outcome.
    pub roots: Vec<ImportedRoot>,
    /// Blocks (sections) in the CAR, repeats included.
    pub blocks: u64,
    /// Their bytes.
    pub block_bytes: u64,
    /// What the store did not hold before.
    pub written: Written,
}

/// One root of the CAR header.
#[derive(Debug)]
pub struct ImportedRoot {
    pub cid: Cid,
    /// The record made for it, or why none was.
    pub outcome: Result<RootRecord, RootError>,
}

/// Why a root of an imported CAR was not recorded (its blocks stay until `gc`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RootError {
    /// The root's DAG is incomplete, or not a UnixFS tree that decodes to a NAR.
    #[error("root {cid} is not recorded: its DAG does not decode to a NAR")]
    Decode {
        cid: Box<Cid>,
        #[source]
        source: DecodeError,
    },
    /// Writing the root record failed.
    #[error("root {cid} is not recorded")]
    Store {
        cid: Box<Cid>,
        #[source]
        source: narfs_store::Error,
    },
}

/// Why a CAR was not imported. Nothing is recorded then; blocks committed before the
/// failure stay unreferenced until `gc`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The CAR is malformed, truncated or unreadable.
    #[error("cannot read the CAR")]
    Car(#[from] CarError),
    /// A block is not what its CID names (bytes, codec or hash).
    #[error("refusing the CAR")]
    Block(#[from] BlockError),
    /// The store could not take the blocks.
    #[error("the store failed")]
    Store(#[from] narfs_store::Error),
    /// A block writer of the store failed.
    #[error("the store failed")]
    Sink(#[from] StoreError),
}

/// Imports the CAR read from `input` into `store`; see the module doc. Blocks are
/// bounded by the CAR reader's limit (4 MiB), and only one is held at a time.
pub fn import_car(input: impl BufRead, store: &Store) -> Result<CarImport, ImportError> {
    let _lock = store.lock_shared()?;
    let mut car = CarReader::new(input)?;
    let header_roots = car.roots().to_vec();
    let mut sink = store.sink()?;
    let (mut blocks, mut block_bytes) = (0u64, 0u64);
    while let Some((cid, data)) = car.next_block()? {
        verify(&cid, &data)?;
        sink.put(&cid, &data)?;
        blocks += 1;
        block_bytes += data.len() as u64;
    }
    let written = sink.finish(None)?;
    let roots = header_roots
        .into_iter()
        .map(|cid| ImportedRoot {
            cid,
            outcome: record(store, &cid, blocks, block_bytes),
        })
        .collect();
    Ok(CarImport {
        roots,
        blocks,
        block_bytes,
        written,
    })
}

/// Walks the DAG under `cid` as a NAR, then records it with its NarHash and NarSize.
fn record(
    store: &Store,
    cid: &Cid,
    blocks: u64,
    block_bytes: u64,
) -> Result<RootRecord, RootError> {
    let hashed = decode_nar(store, cid, NarHasher::new(io::sink()), &Limits::default()).map_err(
        |source| RootError::Decode {
            cid: Box::new(*cid),
            source,
        },
    )?;
    let (_, sha, nar_size) = hashed.finish();
    let hash = HashAlg::from_code(cid.hash().code()).map_or("unknown", HashAlg::name);
    // How the DAG was chunked is not written in it.
    let rec = RootRecord::new(cid, narfs_core::Encoding::UnixFs, &sha, nar_size)
        .with_layout("unknown", hash, "car-import")
        .with_blocks(blocks, block_bytes);
    store.record_root(&rec).map_err(|source| RootError::Store {
        cid: Box::new(*cid),
        source,
    })?;
    Ok(rec)
}

/// Hashes and counts the NAR a decode writes on its way to `inner`: its NarHash and
/// NarSize.
pub(crate) struct NarHasher<W> {
    inner: W,
    sha: Sha256,
    len: u64,
}

impl<W: Write> NarHasher<W> {
    pub(crate) fn new(inner: W) -> Self {
        NarHasher {
            inner,
            sha: Sha256::new(),
            len: 0,
        }
    }

    /// The writer, the NAR's sha256 and its size.
    pub(crate) fn finish(self) -> (W, [u8; 32], u64) {
        (self.inner, self.sha.finalize().into(), self.len)
    }
}

impl<W: Write> Write for NarHasher<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
