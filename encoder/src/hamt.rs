//! UnixFS HAMT directory sharding: when a directory becomes a shard, and the shard blocks.
//!
//! # When (the two profiles)
//!
//! Both rules compare a size with [`SHARD_THRESHOLD`] = 256 KiB and shard when it is
//! **strictly greater** (a directory exactly at the threshold stays flat):
//!
//! - `kubo-v1` → [`ShardRule::LinkBytes`]: the size is the sum over entries of
//!   `len(name bytes) + len(CID bytes)` — boxo `ipld/unixfs/io/directory.go`
//!   (`SizeEstimationLinks`, `linksize.LinkSizeFunction`), the default of Kubo's
//!   `ipfs add`, and js `ipfs-unixfs-importer`'s `shardSplitStrategy: 'links-bytes'`
//!   (`dir-flat.js` `estimateNodeSize`, `flat-to-shard.js`: `> shardSplitThresholdBytes`).
//!   Kubo used `>=` until boxo commit f188f79 (Feb 2026, "align HAMT sharding threshold
//!   with JS implementation"); since then both use `>`, and so do we.
//! - `unixfs-v1-2025` → [`ShardRule::BlockBytes`] (IPIP-499): the size is the exact
//!   encoded size of the flat directory block — `Data` (`0a 02 08 01` = 4 bytes, no mode or
//!   mtime) plus every link with Hash, Name and Tsize and their protobuf framing — boxo
//!   `SizeEstimationBlock` (`linkSerializedSize` + `dataFieldSerializedSize`) and the
//!   importer's `profile: 'unixfs-v1-2025'` (`shardSplitStrategy: 'block-bytes'`,
//!   `utils/pb-size.js`).
//!
//! Both implementations decide incrementally as entries are added, but sizes only grow
//! while a directory is filled, so deciding on the final entry list is the same. One
//! known divergence: the JS importer counts a *subdirectory* entry as 0 bytes (it has no
//! CID yet when the decision is made), so a directory of many subdirectories stays flat
//! in JS but is sharded by Kubo; narfs follows Kubo and counts every entry.
//!
//! # How (the shard nodes)
//!
//! As boxo `hamt.Shard` and `ipfs-unixfs-importer` `dir-sharded.js` build them, fanout
//! 256, hash murmur3 ([`narfs_core::hamt_hash`]): an entry sits in the shard at the
//! shallowest depth where its slot (hash byte `depth`) is not shared with another entry;
//! entries sharing a slot go into a sub-shard. Each shard node is a dag-pb node whose
//! links, in slot order, are named `XX` + entry name for entries and `XX` for sub-shards
//! (`XX` = slot in two uppercase hex digits), with Tsize = the entry's Tsize or the
//! sub-shard's cumulative size; its `Data` is UnixFS `HAMTShard` with `Data` = the 256-bit
//! occupancy bitfield big-endian (bit `i` = slot `i`, counted from the last byte) with
//! leading zero bytes dropped (go-bitfield `Bytes()`; JS reverses its little-endian array
//! after trimming), `hashType` 0x22 and `fanout` 256. A node's cumulative size is its
//! block length plus its links' Tsizes.

use narfs_core::block::{cid_for, BlockSink, HashAlg, StoreError, DAG_PB};
use narfs_core::dagpb::{data_encoded_len, encode_node_into, link_encoded_len, PBLinkRef};
use narfs_core::hamt_hash::hamt_hash;
use narfs_core::unixfs::UnixFsData;
use narfs_core::Cid;

use crate::file::{Counts, Sub};
use crate::layout::{Layout, ShardRule};

/// The sharding threshold of both profiles: 256 KiB.
pub const SHARD_THRESHOLD: u64 = 262_144;
/// The shard fanout of both profiles.
pub const HAMT_FANOUT: u64 = 256;
/// Hash bits are exhausted after this many levels (64 bits / 8 per level).
const MAX_DEPTH: u32 = 8;

/// A directory entry as a link: its name, the child's CID and cumulative size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub cid: Cid,
    pub tsize: u64,
}

/// What the sharding functions need of a directory entry.
pub trait ShardEntry {
    fn name(&self) -> &str;
    fn cid(&self) -> &Cid;
    fn tsize(&self) -> u64;
}

impl ShardEntry for DirEntry {
    fn name(&self) -> &str {
        &self.name
    }
    fn cid(&self) -> &Cid {
        &self.cid
    }
    fn tsize(&self) -> u64 {
        self.tsize
    }
}

/// The directory builder's link form: (name, subtree).
impl ShardEntry for (String, Sub) {
    fn name(&self) -> &str {
        &self.0
    }
    fn cid(&self) -> &Cid {
        &self.1.cid
    }
    fn tsize(&self) -> u64 {
        self.1.tsize
    }
}

/// `kubo-v1` estimate: the sum of name bytes + CID bytes.
pub fn links_bytes_estimate<E: ShardEntry>(entries: &[E]) -> u64 {
    entries
        .iter()
        .map(|e| (e.name().len() + e.cid().encoded_len()) as u64)
        .sum()
}

/// `unixfs-v1-2025` estimate: the exact length of the flat directory block (`Data` =
/// `08 01`, every link with a name and a Tsize), computed without encoding it.
pub fn flat_block_len<E: ShardEntry>(entries: &[E]) -> u64 {
    let links: usize = entries
        .iter()
        .map(|e| link_encoded_len(e.cid().encoded_len(), Some(e.name().len()), Some(e.tsize())))
        .sum();
    // The directory's UnixFS Data is `08 01`: 2 bytes.
    (data_encoded_len(2) + links) as u64
}

/// The size `rule` estimates for a flat directory of `entries`.
pub fn estimate<E: ShardEntry>(rule: ShardRule, entries: &[E]) -> u64 {
    match rule {
        ShardRule::LinkBytes(_) => links_bytes_estimate(entries),
        ShardRule::BlockBytes(_) => flat_block_len(entries),
    }
}

/// Whether a directory of `entries` must be a HAMT shard: estimate **>** threshold.
pub fn should_shard<E: ShardEntry>(rule: ShardRule, entries: &[E]) -> bool {
    let threshold = match rule {
        ShardRule::LinkBytes(t) | ShardRule::BlockBytes(t) => t,
    };
    estimate(rule, entries) > threshold
}

/// Why a shard could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HamtError {
    /// The caller's entries are not in strictly increasing name order.
    #[error("directory entries not strictly sorted by name: {name:?} at position {index}")]
    NotSorted { index: usize, name: String },
    /// Two names whose HAMT hashes are equal in all 64 bits.
    #[error(
        "entries {a:?} and {b:?} have the same 64-bit HAMT hash: the shard would be deeper \
         than the hash allows (Kubo fails the same way)"
    )]
    HashCollision { a: String, b: String },
    /// The block sink refused a shard block.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The root of a built shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HamtRoot {
    pub cid: Cid,
    /// Cumulative size: the Tsize a parent link to this directory carries.
    pub tsize: u64,
    /// Shard nodes written to the sink (root included).
    pub blocks: u64,
}

struct Builder<'a, E> {
    entries: &'a [E],
    /// `(hash as big-endian u64, entry index)`, sorted: every sub-shard is a run.
    hashed: Vec<(u64, usize)>,
    alg: HashAlg,
    sink: &'a mut dyn BlockSink,
    data_buf: Vec<u8>,
    node_buf: Vec<u8>,
    blocks: u64,
}

/// Builds the HAMT shard nodes of a directory whose `entries` are strictly sorted by
/// name, puts every shard block into `sink` (children before parents) and returns the
/// root. The entries' own blocks are not touched.
pub fn build_hamt<E: ShardEntry>(
    entries: &[E],
    alg: HashAlg,
    sink: &mut dyn BlockSink,
) -> Result<HamtRoot, HamtError> {
    for (index, pair) in entries.windows(2).enumerate() {
        if pair[0].name() >= pair[1].name() {
            return Err(HamtError::NotSorted {
                index: index + 1,
                name: pair[1].name().to_owned(),
            });
        }
    }
    let mut hashed: Vec<(u64, usize)> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (u64::from_be_bytes(hamt_hash(e.name().as_bytes())), i))
        .collect();
    hashed.sort_unstable();
    let mut b = Builder {
        entries,
        hashed,
        alg,
        sink,
        data_buf: Vec::new(),
        node_buf: Vec::new(),
        blocks: 0,
    };
    let (cid, tsize) = b.shard(0, b.hashed.len(), 0)?;
    Ok(HamtRoot {
        cid,
        tsize,
        blocks: b.blocks,
    })
}

/// A link of a shard node under construction.
struct ShardLink {
    name: String,
    cid: Cid,
    tsize: u64,
}

impl<E: ShardEntry> Builder<'_, E> {
    /// Slot of hash `h` at `depth`.
    fn slot(h: u64, depth: u32) -> usize {
        ((h >> (56 - 8 * depth)) & 0xff) as usize
    }

    /// Builds the shard holding `hashed[start..end]` at `depth` (recursion depth < 8).
    fn shard(&mut self, start: usize, end: usize, depth: u32) -> Result<(Cid, u64), HamtError> {
        let mut links: Vec<ShardLink> = Vec::new();
        let mut bitfield = [0u8; 32];
        let mut i = start;
        while i < end {
            let slot = Self::slot(self.hashed[i].0, depth);
            let mut j = i + 1;
            while j < end && Self::slot(self.hashed[j].0, depth) == slot {
                j += 1;
            }
            bitfield[31 - slot / 8] |= 1 << (slot % 8);
            if j - i == 1 {
                let e = &self.entries[self.hashed[i].1];
                links.push(ShardLink {
                    name: format!("{slot:02X}{}", e.name()),
                    cid: *e.cid(),
                    tsize: e.tsize(),
                });
            } else {
                if depth + 1 >= MAX_DEPTH {
                    return Err(HamtError::HashCollision {
                        a: self.entries[self.hashed[i].1].name().to_owned(),
                        b: self.entries[self.hashed[i + 1].1].name().to_owned(),
                    });
                }
                let (cid, tsize) = self.shard(i, j, depth + 1)?;
                links.push(ShardLink {
                    name: format!("{slot:02X}"),
                    cid,
                    tsize,
                });
            }
            i = j;
        }
        let first = bitfield.iter().position(|&b| b != 0).unwrap_or(32);
        UnixFsData::hamt_shard(&bitfield[first..], HAMT_FANOUT).encode_into(&mut self.data_buf);
        encode_node_into(
            links.iter().map(|l| PBLinkRef {
                hash: &l.cid,
                name: Some(&l.name),
                tsize: Some(l.tsize),
            }),
            Some(&self.data_buf),
            &mut self.node_buf,
        );
        let cid = cid_for(DAG_PB, self.alg, &self.node_buf);
        self.sink.put(&cid, &self.node_buf)?;
        self.blocks += 1;
        let tsize = links.iter().fold(self.node_buf.len() as u64, |acc, l| {
            acc.saturating_add(l.tsize)
        });
        Ok((cid, tsize))
    }
}

/// Counts what passes through to the directory builder's [`Counts`].
struct Counting<'a, S: BlockSink> {
    sink: &'a mut S,
    counts: &'a mut Counts,
}

impl<S: BlockSink> BlockSink for Counting<'_, S> {
    fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), StoreError> {
        self.counts.blocks += 1;
        self.counts.bytes += data.len() as u64;
        self.sink.put(cid, data)
    }
}

/// The directory builder's entry point: shards `links` (sorted by name) with the
/// layout's hash, counting the shard blocks in `counts`. A [`HamtError`] other than a
/// store error (unsorted names, a full 64-bit hash collision) comes back as
/// [`StoreError::Backend`].
pub fn build(
    links: Vec<(String, Sub)>,
    layout: &Layout,
    sink: &mut impl BlockSink,
    counts: &mut Counts,
) -> Result<Sub, StoreError> {
    let mut counting = Counting { sink, counts };
    match build_hamt(&links, layout.hash, &mut counting) {
        Ok(root) => Ok(Sub {
            cid: root.cid,
            tsize: root.tsize,
            filesize: 0,
        }),
        Err(HamtError::Store(e)) => Err(e),
        Err(e) => Err(StoreError::Backend(Box::new(e))),
    }
}

#[cfg(test)]
#[path = "hamt_tests.rs"]
mod tests;
