//! CID helpers and the block store traits.
//!
//! Owns: the hash algorithms narfs uses ([`HashAlg`]: sha2-256, blake3), the two codecs
//! ([`RAW`], [`DAG_PB`]), CIDv1 construction ([`cid_for`]), block verification
//! ([`verify`]), and the [`BlockSink`] / [`BlockSource`] traits with two in-memory
//! implementations ([`MemoryStore`], [`NullSink`]). Persistent stores and CAR files live
//! in the encoder/decoder crates and implement these traits.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use cid::Cid;
use multihash::Multihash;
use sha2::Digest;

/// Multicodec code of raw leaves.
pub const RAW: u64 = 0x55;
/// Multicodec code of dag-pb nodes.
pub const DAG_PB: u64 = 0x70;
/// Multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;
/// Multihash code of blake3 (32-byte digest).
pub const BLAKE3: u64 = 0x1e;
/// Multihash code of the identity "hash", which [`verify`] refuses.
pub const IDENTITY: u64 = 0x00;

/// The hash functions a narfs CID may use. Both produce 32-byte digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HashAlg {
    /// sha2-256 (multihash 0x12), the IPFS default; SHA-NI is used when the CPU has it.
    #[default]
    Sha2_256,
    /// blake3 with a 32-byte output (multihash 0x1e).
    Blake3,
}

impl HashAlg {
    /// The multihash code.
    pub const fn code(self) -> u64 {
        match self {
            HashAlg::Sha2_256 => SHA2_256,
            HashAlg::Blake3 => BLAKE3,
        }
    }

    /// The algorithm of a multihash code, if narfs supports it.
    pub const fn from_code(code: u64) -> Option<Self> {
        match code {
            SHA2_256 => Some(HashAlg::Sha2_256),
            BLAKE3 => Some(HashAlg::Blake3),
            _ => None,
        }
    }

    /// The multiformats name (`sha2-256`, `blake3`), as the CLI spells it.
    pub const fn name(self) -> &'static str {
        match self {
            HashAlg::Sha2_256 => "sha2-256",
            HashAlg::Blake3 => "blake3",
        }
    }

    /// The 32-byte digest of `bytes`.
    pub fn digest(self, bytes: &[u8]) -> [u8; 32] {
        match self {
            HashAlg::Sha2_256 => sha2::Sha256::digest(bytes).into(),
            HashAlg::Blake3 => *blake3::hash(bytes).as_bytes(),
        }
    }

    /// The multihash of `bytes`.
    pub fn multihash(self, bytes: &[u8]) -> Multihash<64> {
        // A 32-byte digest always fits the 64-byte multihash.
        Multihash::wrap(self.code(), &self.digest(bytes)).unwrap_or_default()
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashAlg {
    type Err = BlockError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha2-256" | "sha256" => Ok(HashAlg::Sha2_256),
            "blake3" => Ok(HashAlg::Blake3),
            _ => Err(BlockError::UnknownHashName(s.to_owned())),
        }
    }
}

/// The CIDv1 of `bytes` under `codec` ([`RAW`] or [`DAG_PB`]) and `alg`.
pub fn cid_for(codec: u64, alg: HashAlg, bytes: &[u8]) -> Cid {
    Cid::new_v1(codec, alg.multihash(bytes))
}

/// The largest block (data only, CID excluded) narfs writes, stores or reads: the
/// 4 MiB that CAR readers and bitswap peers accept. One limit for the CAR writer and
/// reader, the store and the gateway, so that everything written can be read back.
pub const MAX_BLOCK_SIZE: usize = 4 << 20;

/// Parses the CID at the front of `bytes` and returns it with the bytes it took.
///
/// The CID must be canonically encoded: the `cid` crate's varint reader drops the
/// high bits of a 10-byte varint, so different bytes (of the same length, even) could
/// otherwise name one CID, and a block's bytes would no longer determine its links.
pub fn cid_prefix(bytes: &[u8]) -> Result<(Cid, usize), CidError> {
    let mut rest = bytes;
    let cid = Cid::read_bytes(&mut rest).map_err(CidError::Malformed)?;
    let used = bytes.len() - rest.len();
    if cid.to_bytes() != bytes[..used] {
        return Err(CidError::NotCanonical);
    }
    Ok((cid, used))
}

/// Parses `bytes` as exactly one canonical CID (see [`cid_prefix`]).
pub fn cid_exact(bytes: &[u8]) -> Result<Cid, CidError> {
    let (cid, used) = cid_prefix(bytes)?;
    if used != bytes.len() {
        return Err(CidError::TrailingBytes(bytes.len() - used));
    }
    Ok(cid)
}

/// Why bytes are not a CID narfs accepts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CidError {
    /// Not a CID at all (bad version, varint, multihash).
    #[error("malformed CID")]
    Malformed(#[source] cid::Error),
    /// A CID, but its bytes are not the canonical encoding of it.
    #[error("CID not canonically encoded")]
    NotCanonical,
    /// Bytes follow the CID where exactly one was expected.
    #[error("{0} bytes after the CID")]
    TrailingBytes(usize),
}

impl CidError {
    /// The reason in one phrase, the underlying parse error included.
    pub fn detail(&self) -> String {
        match self {
            CidError::Malformed(e) => e.to_string(),
            other => other.to_string(),
        }
    }
}

/// Why a block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// The CID's codec is neither raw nor dag-pb.
    #[error("block {cid}: unsupported codec 0x{codec:x} (narfs reads raw 0x55 and dag-pb 0x70)")]
    UnsupportedCodec { cid: Cid, codec: u64 },
    /// The multihash is not sha2-256 or blake3 (identity included, see [`verify`]).
    #[error("block {cid}: unsupported multihash 0x{code:x} (narfs reads sha2-256 and blake3)")]
    UnsupportedHash { cid: Cid, code: u64 },
    /// The multihash digest length is not 32 bytes.
    #[error("block {cid}: digest of {len} bytes, expected 32")]
    DigestLength { cid: Cid, len: usize },
    /// The bytes do not hash to the CID.
    #[error("block {cid}: content hashes to {actual}, not to its CID")]
    HashMismatch { cid: Cid, actual: Box<Cid> },
    /// A hash algorithm name the CLI does not know.
    #[error("unknown hash {0:?} (expected sha2-256 or blake3)")]
    UnknownHashName(String),
}

/// Checks that `bytes` is the block `cid` names: codec raw or dag-pb, multihash sha2-256
/// or blake3 with a 32-byte digest, and the digest recomputed from `bytes` equal.
///
/// CIDv0 (implicitly dag-pb + sha2-256) is accepted, so DAGs made by older Kubo verify.
/// The identity multihash (0x00) is refused: narfs never writes inline blocks, and an
/// identity "CID" carries its block inside itself, so accepting it would let a DAG
/// smuggle in content of any size that no store holds and nothing hashed.
pub fn verify(cid: &Cid, bytes: &[u8]) -> Result<(), BlockError> {
    let alg = checked_alg(cid)?;
    let digest = alg.digest(bytes);
    matches(cid, alg, &digest, bytes)
}

/// [`verify`] for many blocks at once: what a decoder reading a run of leaves does.
/// The sha2-256 ones are hashed together by the multi-buffer kernel
/// ([`crate::leaf_hash`], ~2× one stream per core), so verifying is no longer most of
/// decoding's work. Each result is the block as [`Verified`], or why it is refused,
/// in the order given.
pub fn verify_many(blocks: Vec<(Cid, Vec<u8>)>) -> Vec<Result<Verified, BlockError>> {
    let algs: Vec<_> = blocks.iter().map(|(cid, _)| checked_alg(cid)).collect();
    let sha: Vec<&[u8]> = blocks
        .iter()
        .zip(&algs)
        .filter(|(_, a)| matches!(a, Ok(HashAlg::Sha2_256)))
        .map(|((_, data), _)| data.as_slice())
        .collect();
    let mut digests = Vec::with_capacity(sha.len());
    crate::leaf_hash::LeafHasher::new(HashAlg::Sha2_256).hash_all(&sha, &mut digests);
    let mut digests = digests.into_iter();
    blocks
        .into_iter()
        .zip(algs)
        .map(|((cid, data), alg)| {
            let alg = alg?;
            let digest = match alg {
                HashAlg::Sha2_256 => digests.next().expect("one digest per sha2-256 block"),
                HashAlg::Blake3 => alg.digest(&data),
            };
            matches(&cid, alg, &digest, &data)?;
            Ok(Verified { cid, data })
        })
        .collect()
}

/// The hash algorithm of a CID narfs reads, or why it reads no such CID.
fn checked_alg(cid: &Cid) -> Result<HashAlg, BlockError> {
    let codec = cid.codec();
    if codec != RAW && codec != DAG_PB {
        return Err(BlockError::UnsupportedCodec { cid: *cid, codec });
    }
    let mh = cid.hash();
    let Some(alg) = HashAlg::from_code(mh.code()) else {
        return Err(BlockError::UnsupportedHash {
            cid: *cid,
            code: mh.code(),
        });
    };
    if mh.digest().len() != 32 {
        return Err(BlockError::DigestLength {
            cid: *cid,
            len: mh.digest().len(),
        });
    }
    Ok(alg)
}

/// Whether `digest` (of `bytes` under `alg`) is the one `cid` names.
fn matches(cid: &Cid, alg: HashAlg, digest: &[u8; 32], bytes: &[u8]) -> Result<(), BlockError> {
    if digest.as_slice() != cid.hash().digest() {
        return Err(BlockError::HashMismatch {
            cid: *cid,
            actual: Box::new(cid_for(cid.codec(), alg, bytes)),
        });
    }
    Ok(())
}

/// A block's bytes that hashed to its CID: only [`Verified::check`] makes one, so a
/// block carried as `Verified` (from the network to a fetch's decoder) is hashed once,
/// on arrival, and still never used unverified (see [`BlockSource::get_verified`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    cid: Cid,
    data: Vec<u8>,
}

impl Verified {
    /// [`verify`]: `data` as the block `cid`, or why not.
    pub fn check(cid: &Cid, data: Vec<u8>) -> Result<Verified, BlockError> {
        verify(cid, &data)?;
        Ok(Verified { cid: *cid, data })
    }

    /// The CID the bytes hash to.
    pub fn cid(&self) -> &Cid {
        &self.cid
    }

    /// The bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The bytes, if they are the block `cid` (hashed again only when they were
    /// verified against another CID, e.g. the same bytes under another hash).
    pub fn into_block_of(self, cid: &Cid) -> Result<Vec<u8>, BlockError> {
        if self.cid != *cid {
            verify(cid, &self.data)?;
        }
        Ok(self.data)
    }
}

/// A block: its CID and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub cid: Cid,
    pub data: Vec<u8>,
}

impl Block {
    /// Hashes `data` into a CIDv1 block.
    pub fn new(codec: u64, alg: HashAlg, data: Vec<u8>) -> Self {
        Self {
            cid: cid_for(codec, alg, &data),
            data,
        }
    }

    /// [`verify`] on this block.
    pub fn verify(&self) -> Result<(), BlockError> {
        verify(&self.cid, &self.data)
    }
}

/// Why a block store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing the backend's files failed.
    #[error("I/O error")]
    Io(#[from] std::io::Error),
    /// The block itself was refused (bad CID, bytes that do not hash to it).
    #[error(transparent)]
    Block(#[from] BlockError),
    /// Any other backend error (database, CAR format, ...); the wrapper adds nothing.
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

/// Where the encoder puts blocks. `put` may be called again with a CID already stored;
/// implementations should then do nothing (blocks are immutable).
pub trait BlockSink {
    fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), StoreError>;

    /// A hint: `put` will soon be called with these CIDs (the encoder gives each
    /// batch's leaves once they are hashed, before it puts them). A sink that looks
    /// every block up (a store, which skips the blocks it holds) may look them up now,
    /// together; the default does nothing. Never an answer: every block is still put.
    fn will_put(&mut self, _cids: &[Cid]) {}
}

/// Where the decoder gets blocks. `Ok(None)` means "not here"; the caller verifies.
/// `&self` so that a store can be shared by readers (a file-backed source can use
/// positioned reads).
pub trait BlockSource {
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError>;

    /// The block `cid`, verified against it: by default [`get`](Self::get) then
    /// [`Verified::check`] (a mismatch is a [`StoreError::Block`]). A source that holds
    /// blocks verified on arrival (a fetch's window) hands them over as they are,
    /// instead of hashing them a second time.
    fn get_verified(&self, cid: &Cid) -> Result<Option<Verified>, StoreError> {
        match self.get(cid)? {
            Some(data) => Ok(Some(Verified::check(cid, data)?)),
            None => Ok(None),
        }
    }

    /// [`get_verified`](Self::get_verified) of each CID, in order. By default one
    /// after another; a source whose `get` returns unverified bytes overrides it with
    /// [`get_then_verify`], which hashes them together.
    fn get_many_verified(&self, cids: &[Cid]) -> Vec<Result<Option<Verified>, StoreError>> {
        cids.iter().map(|c| self.get_verified(c)).collect()
    }

    /// A hint: the caller will soon ask for `cids`, in this order (the decoder gives
    /// the leaves and entries after the run it is reading). A source whose reads cost
    /// work up front (the store's packs, decompressed whole) may start that work now,
    /// in the background and bounded; the default does nothing. Called again with no
    /// CIDs, it may resume hints it deferred. A hint is never an answer: what `get`
    /// returns is verified as ever, and a wrong or unused hint costs only work.
    fn will_need(&self, _cids: &[Cid]) {}
}

/// [`BlockSource::get_many_verified`] for a source whose `get` returns the bytes as
/// stored: every block read, then all verified at once by [`verify_many`].
pub fn get_then_verify<S: BlockSource + ?Sized>(
    source: &S,
    cids: &[Cid],
) -> Vec<Result<Option<Verified>, StoreError>> {
    // What `get` said of each CID: read bytes (verified below), or the final answer.
    let mut slots: Vec<Option<Result<Option<Verified>, StoreError>>> = Vec::new();
    let mut read = Vec::with_capacity(cids.len());
    for cid in cids {
        match source.get(cid) {
            Ok(Some(data)) => {
                read.push((*cid, data));
                slots.push(None);
            }
            Ok(None) => slots.push(Some(Ok(None))),
            Err(e) => slots.push(Some(Err(e))),
        }
    }
    let mut verified = verify_many(read).into_iter();
    slots
        .into_iter()
        .map(|slot| match slot {
            Some(answer) => answer,
            None => match verified.next().expect("one result per block read") {
                Ok(v) => Ok(Some(v)),
                Err(e) => Err(StoreError::Block(e)),
            },
        })
        .collect()
}

impl<T: BlockSink + ?Sized> BlockSink for &mut T {
    fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), StoreError> {
        (**self).put(cid, data)
    }
    fn will_put(&mut self, cids: &[Cid]) {
        (**self).will_put(cids)
    }
}

impl<T: BlockSink + ?Sized> BlockSink for Box<T> {
    fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), StoreError> {
        (**self).put(cid, data)
    }
    fn will_put(&mut self, cids: &[Cid]) {
        (**self).will_put(cids)
    }
}

impl<T: BlockSource + ?Sized> BlockSource for &T {
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(cid)
    }

    fn get_verified(&self, cid: &Cid) -> Result<Option<Verified>, StoreError> {
        (**self).get_verified(cid)
    }
    fn get_many_verified(&self, cids: &[Cid]) -> Vec<Result<Option<Verified>, StoreError>> {
        (**self).get_many_verified(cids)
    }

    fn will_need(&self, cids: &[Cid]) {
        (**self).will_need(cids)
    }
}

impl<T: BlockSource + ?Sized> BlockSource for Box<T> {
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(cid)
    }

    fn get_verified(&self, cid: &Cid) -> Result<Option<Verified>, StoreError> {
        (**self).get_verified(cid)
    }
    fn get_many_verified(&self, cids: &[Cid]) -> Vec<Result<Option<Verified>, StoreError>> {
        (**self).get_many_verified(cids)
    }

    fn will_need(&self, cids: &[Cid]) {
        (**self).will_need(cids)
    }
}

/// A block store in a `HashMap`: each CID stored once.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    blocks: HashMap<Cid, Vec<u8>>,
    bytes: u64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
    /// Number of distinct blocks.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
    /// Total bytes of the distinct blocks.
    pub fn total_bytes(&self) -> u64 {
        self.bytes
    }
    pub fn contains(&self, cid: &Cid) -> bool {
        self.blocks.contains_key(cid)
    }
    /// The stored bytes of `cid`, borrowed.
    pub fn get_ref(&self, cid: &Cid) -> Option<&[u8]> {
        self.blocks.get(cid).map(Vec::as_slice)
    }
    /// All blocks, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Cid, &[u8])> {
        self.blocks.iter().map(|(c, d)| (c, d.as_slice()))
    }
    /// Removes a block (to test the decoder's missing-block errors), returning its bytes.
    pub fn remove(&mut self, cid: &Cid) -> Option<Vec<u8>> {
        let data = self.blocks.remove(cid)?;
        self.bytes -= data.len() as u64;
        Some(data)
    }
    /// Replaces a block's bytes without any check (to test verification).
    pub fn insert_unchecked(&mut self, cid: Cid, data: Vec<u8>) {
        if let Some(old) = self.blocks.insert(cid, data) {
            self.bytes -= old.len() as u64;
        }
        self.bytes += self.blocks[&cid].len() as u64;
    }
}

impl BlockSink for MemoryStore {
    fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), StoreError> {
        if !self.blocks.contains_key(cid) {
            self.bytes += data.len() as u64;
            self.blocks.insert(*cid, data.to_vec());
        }
        Ok(())
    }
}

impl BlockSource for MemoryStore {
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.blocks.get(cid).cloned())
    }

    fn get_many_verified(&self, cids: &[Cid]) -> Vec<Result<Option<Verified>, StoreError>> {
        get_then_verify(self, cids)
    }
}

/// A sink that keeps nothing and counts every `put` (duplicates included).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NullSink {
    pub blocks: u64,
    pub bytes: u64,
}

impl BlockSink for NullSink {
    fn put(&mut self, _cid: &Cid, data: &[u8]) -> Result<(), StoreError> {
        self.blocks += 1;
        self.bytes += data.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_only_when_the_bytes_hash_to_the_cid() {
        let good = cid_for(RAW, HashAlg::Sha2_256, b"leaf");
        assert!(matches!(
            Verified::check(&good, b"other".to_vec()),
            Err(BlockError::HashMismatch { .. })
        ));
        let v = Verified::check(&good, b"leaf".to_vec()).unwrap();
        assert_eq!((v.cid(), v.data()), (&good, &b"leaf"[..]));
        // The same bytes under another CID are hashed again: a blake3 CID of them
        // holds, a CID of other bytes does not.
        let blake = cid_for(RAW, HashAlg::Blake3, b"leaf");
        assert_eq!(v.clone().into_block_of(&blake).unwrap(), b"leaf");
        let other = cid_for(RAW, HashAlg::Sha2_256, b"other");
        assert!(v.into_block_of(&other).is_err());
        // A source's default get_verified verifies what get returns.
        let mut store = MemoryStore::default();
        store.put(&good, b"leaf").unwrap();
        assert_eq!(store.get_verified(&good).unwrap().unwrap().data(), b"leaf");
        assert!(store.get_verified(&other).unwrap().is_none());
        store.put(&other, b"leaf").unwrap();
        assert!(matches!(
            store.get_verified(&other),
            Err(StoreError::Block(BlockError::HashMismatch { .. }))
        ));
    }

    #[test]
    fn verify_many_answers_as_verify_does_for_each() {
        let mut blocks = Vec::new();
        for n in 0..40u32 {
            let data: Vec<u8> = (0..n * 97).map(|i| (i ^ n) as u8).collect();
            let alg = if n % 5 == 0 {
                HashAlg::Blake3
            } else {
                HashAlg::Sha2_256
            };
            let codec = if n % 3 == 0 { DAG_PB } else { RAW };
            blocks.push((cid_for(codec, alg, &data), data));
        }
        // Damaged: a flipped bit (sha2-256 and blake3), a codec narfs does not read.
        blocks[7].1[3] ^= 1;
        blocks[10].1[0] ^= 1;
        blocks[11].0 = Cid::new_v1(0x71, *blocks[11].0.hash());
        let want: Vec<_> = blocks.iter().map(|(c, d)| verify(c, d)).collect();
        let got = verify_many(blocks.clone());
        for (i, (g, w)) in got.into_iter().zip(want).enumerate() {
            match (g, w) {
                (Ok(v), Ok(())) => {
                    assert_eq!((v.cid(), v.data()), (&blocks[i].0, &blocks[i].1[..]))
                }
                (Err(g), Err(w)) => assert_eq!(g, w, "block {i}"),
                (g, w) => panic!("block {i}: {g:?} but verify says {w:?}"),
            }
        }
        // And through a source: found, missing and refused, in the CIDs' order.
        let mut store = MemoryStore::new();
        store.insert_unchecked(blocks[7].0, blocks[7].1.clone());
        store.put(&blocks[1].0, &blocks[1].1).unwrap();
        let missing = cid_for(RAW, HashAlg::Sha2_256, b"nowhere");
        let got = store.get_many_verified(&[blocks[1].0, missing, blocks[7].0]);
        assert!(matches!(&got[0], Ok(Some(v)) if v.cid() == &blocks[1].0));
        assert!(matches!(&got[1], Ok(None)));
        assert!(matches!(
            &got[2],
            Err(StoreError::Block(BlockError::HashMismatch { cid, .. })) if *cid == blocks[7].0
        ));
    }

    #[test]
    fn known_cids() {
        // The empty raw block (sha2-256 of nothing), as `ipfs add --raw-leaves --cid-version 1`
        // of an empty file gives.
        assert_eq!(
            cid_for(RAW, HashAlg::Sha2_256, b"").to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
        // The empty UnixFS directory `08 01` wrapped in a dag-pb Data field: `0a 02 08 01`.
        assert_eq!(
            cid_for(DAG_PB, HashAlg::Sha2_256, &[0x0a, 0x02, 0x08, 0x01]).to_string(),
            "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
        );
        // The zero-length dag-pb block, from the dag-pb spec.
        assert_eq!(
            cid_for(DAG_PB, HashAlg::Sha2_256, b"").to_string(),
            "bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
        // blake3 of the empty input is af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262.
        let b3 = cid_for(RAW, HashAlg::Blake3, b"");
        assert_eq!(b3.hash().code(), 0x1e);
        assert_eq!(b3.hash().digest()[..4], [0xaf, 0x13, 0x49, 0xb9]);
        assert_eq!(b3.to_bytes()[..4], [0x01, 0x55, 0x1e, 0x20]);
    }

    #[test]
    fn verify_accepts_and_rejects() {
        for alg in [HashAlg::Sha2_256, HashAlg::Blake3] {
            let cid = cid_for(RAW, alg, b"hello");
            verify(&cid, b"hello").unwrap();
            assert!(matches!(
                verify(&cid, b"hellp"),
                Err(BlockError::HashMismatch { actual, .. }) if *actual == cid_for(RAW, alg, b"hellp")
            ));
        }
        // CIDv0 of the empty directory node.
        let v0 = Cid::new_v0(HashAlg::Sha2_256.multihash(&[0x0a, 0x02, 0x08, 0x01])).unwrap();
        assert_eq!(
            v0.to_string(),
            "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
        );
        verify(&v0, &[0x0a, 0x02, 0x08, 0x01]).unwrap();

        let dag_cbor = Cid::new_v1(0x71, HashAlg::Sha2_256.multihash(b"x"));
        assert!(matches!(
            verify(&dag_cbor, b"x"),
            Err(BlockError::UnsupportedCodec { codec: 0x71, .. })
        ));
        let identity = Cid::new_v1(RAW, Multihash::wrap(IDENTITY, b"x").unwrap());
        assert!(matches!(
            verify(&identity, b"x"),
            Err(BlockError::UnsupportedHash { code: 0, .. })
        ));
        let short = Cid::new_v1(RAW, Multihash::wrap(SHA2_256, &[0; 20]).unwrap());
        assert!(matches!(
            verify(&short, b""),
            Err(BlockError::DigestLength { len: 20, .. })
        ));
    }

    #[test]
    fn hash_names() {
        for alg in [HashAlg::Sha2_256, HashAlg::Blake3] {
            assert_eq!(alg.name().parse::<HashAlg>().unwrap(), alg);
            assert_eq!(HashAlg::from_code(alg.code()), Some(alg));
        }
        assert!("md5".parse::<HashAlg>().is_err());
        assert_eq!(HashAlg::from_code(0), None);
    }

    #[test]
    fn memory_store_and_null_sink() {
        let mut store = MemoryStore::new();
        let block = Block::new(RAW, HashAlg::Sha2_256, b"abc".to_vec());
        block.verify().unwrap();
        {
            let sink: &mut dyn BlockSink = &mut store;
            sink.put(&block.cid, &block.data).unwrap();
            sink.put(&block.cid, &block.data).unwrap();
        }
        assert_eq!((store.len(), store.total_bytes()), (1, 3));
        assert_eq!(store.get(&block.cid).unwrap(), Some(b"abc".to_vec()));
        let other = cid_for(RAW, HashAlg::Sha2_256, b"zz");
        assert_eq!(BlockSource::get(&&store, &other).unwrap(), None);
        store.insert_unchecked(block.cid, b"abcd".to_vec());
        assert_eq!(store.total_bytes(), 4);
        assert_eq!(store.remove(&block.cid), Some(b"abcd".to_vec()));
        assert!(store.is_empty() && store.total_bytes() == 0);

        let mut null = NullSink::default();
        null.put(&block.cid, &block.data).unwrap();
        null.put(&block.cid, &block.data).unwrap();
        assert_eq!(
            null,
            NullSink {
                blocks: 2,
                bytes: 6
            }
        );
    }
}
