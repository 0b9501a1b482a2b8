//! Reading a HAMT-sharded directory: walks the shard tree (bounded depth), strips the
//! index prefixes from link names, and returns the entries sorted by name bytes, the
//! order the NAR needs (the shard itself is in hash order).

use narfs_core::block::BlockSource;
use narfs_core::dagpb::PBNode;
use narfs_core::unixfs::{DataType, UnixFsData, HAMT_HASH_MURMUR3};
use narfs_core::Cid;

use crate::ahead::Entry;
use crate::error::{malformed, DecodeError, Problem};
use crate::fetch::fetch_many;
use crate::file::unixfs_node;

/// A 64-bit hash with at least 1 bit per level gives at most 64 levels; fanout 256
/// gives 8. Anything deeper is hostile.
const MAX_SHARD_DEPTH: usize = 64;

/// Sub-shards fetched and verified together at most: a shard of fanout 256 links up
/// to 256, each a block of a few KiB in a large directory (and a decode already held
/// every sub-shard of a node decoded at once, on its stack).
const SUB_SHARDS: usize = 64;

/// All entries of the shard rooted at `cid`, sorted by name.
///
/// The sub-shards a shard links are fetched together ([`fetch_many`]: read and
/// verified on both cores) rather than one by one on the walk's thread, where a large
/// directory's shards (`/usr/share/doc`: hundreds) were a tenth of the walk's time
/// while the pool's cores idled.
pub fn entries<S: BlockSource + Sync>(
    source: &S,
    cid: &Cid,
    node: PBNode,
    fs: UnixFsData,
    path: &str,
) -> Result<Vec<Entry>, DecodeError> {
    let fanout = check_shard(cid, &fs, path, None)?;
    let width = format!("{:X}", fanout - 1).len();
    let mut out = Vec::new();
    // A sub-shard reached twice would list the same names twice; refusing it keeps
    // the walk linear in the blocks (else a few shards linking one sub-shard many
    // times at every level would expand exponentially).
    let mut seen = std::collections::HashSet::from([*cid]);
    let mut stack = vec![(*cid, node, 0usize)];
    while let Some((cid, node, depth)) = stack.pop() {
        // This shard's sub-shards, each checked before any is fetched.
        let mut subs: Vec<Cid> = Vec::new();
        for link in node.links {
            let name = link.name.ok_or_else(|| {
                DecodeError::new(&cid, path, malformed("shard link without a name"))
            })?;
            let prefix_ok = name.len() >= width
                && name.is_char_boundary(width)
                && name[..width]
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
                && u64::from_str_radix(&name[..width], 16).is_ok_and(|i| i < fanout);
            if !prefix_ok {
                let msg = format!("shard link {name:?} lacks a valid {width}-digit index prefix");
                return Err(DecodeError::new(&cid, path, malformed(msg)));
            }
            if name.len() > width {
                out.push(Entry {
                    name: name[width..].to_string(),
                    cid: link.hash,
                    tsize: link.tsize,
                });
                continue;
            }
            if depth + 1 >= MAX_SHARD_DEPTH {
                return Err(DecodeError::new(
                    &link.hash,
                    path,
                    Problem::TooDeep(MAX_SHARD_DEPTH),
                ));
            }
            if !seen.insert(link.hash) {
                return Err(DecodeError::new(
                    &link.hash,
                    path,
                    malformed("a sub-shard is linked more than once"),
                ));
            }
            subs.push(link.hash);
        }
        for group in subs.chunks(SUB_SHARDS) {
            for (sub, block) in group.iter().zip(fetch_many(source, group, path)) {
                let block = block?;
                if sub.codec() != narfs_core::block::DAG_PB {
                    return Err(DecodeError::new(
                        sub,
                        path,
                        malformed("a sub-shard link points at a raw block"),
                    ));
                }
                let (node, sub_fs) = unixfs_node(sub, path, &block)?;
                check_shard(sub, &sub_fs, path, Some(fanout))?;
                stack.push((*sub, node, depth + 1));
            }
        }
    }
    out.sort_unstable_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(out)
}

/// Checks a shard node's header; returns its fanout.
fn check_shard(
    cid: &Cid,
    fs: &UnixFsData,
    path: &str,
    parent_fanout: Option<u64>,
) -> Result<u64, DecodeError> {
    let bad = |msg: String| DecodeError::new(cid, path, malformed(msg));
    if fs.data_type != DataType::HamtShard {
        return Err(bad(format!(
            "a sub-shard link points at a {:?} node",
            fs.data_type
        )));
    }
    if fs.hash_type != Some(HAMT_HASH_MURMUR3) {
        return Err(bad(format!(
            "shard hash type {:?}, expected murmur3-x64-64 (0x22)",
            fs.hash_type
        )));
    }
    let fanout = fs.fanout.unwrap_or(0);
    if !(16..=256).contains(&fanout)
        || !fanout.is_power_of_two()
        || !fanout.trailing_zeros().is_multiple_of(4)
    {
        return Err(bad(format!(
            "shard fanout {fanout} must be a power of 16 between 16 and 256"
        )));
    }
    if parent_fanout.is_some_and(|p| p != fanout) {
        return Err(bad(format!(
            "sub-shard fanout {fanout} differs from its parent's"
        )));
    }
    Ok(fanout)
}
