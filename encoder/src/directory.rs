//! A closed directory becomes one dag-pb `Directory` node with its links sorted by
//! name bytes (the NAR already gives them in that order), or, past the layout's
//! threshold, a HAMT shard.

use narfs_core::block::{cid_for, BlockSink, StoreError, DAG_PB};
use narfs_core::dagpb::{encode_node_into, PBLinkRef};
use narfs_core::unixfs::UnixFsData;

use crate::file::{put, Counts, Sub};
use crate::layout::Layout;

/// Builds the directory's node (or shard) and returns it as a subtree.
pub fn build(
    links: Vec<(String, Sub)>,
    layout: &Layout,
    sink: &mut impl BlockSink,
    counts: &mut Counts,
    node_buf: &mut Vec<u8>,
    data_buf: &mut Vec<u8>,
) -> Result<Sub, StoreError> {
    if crate::hamt::should_shard(layout.shard, &links) {
        return crate::hamt::build(links, layout, sink, counts);
    }
    let pb_links = links.iter().map(|(name, sub)| PBLinkRef {
        hash: &sub.cid,
        name: Some(name.as_str()),
        tsize: Some(sub.tsize),
    });
    UnixFsData::directory().encode_into(data_buf);
    encode_node_into(pb_links, Some(data_buf), node_buf);
    let cid = cid_for(DAG_PB, layout.hash, node_buf);
    put(sink, counts, &cid, node_buf)?;
    Ok(Sub {
        cid,
        tsize: node_buf.len() as u64 + links.iter().map(|(_, s)| s.tsize).sum::<u64>(),
        filesize: 0,
    })
}
