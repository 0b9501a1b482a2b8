//! Fuzz target: the strict dag-pb and UnixFS decoders on arbitrary bytes.
//!
//! Oracle: no panic; every accepted node re-encodes to a block that decodes to the
//! same node, and to exactly the input when the input is links-first (the canonical
//! order); every accepted UnixFS message re-encodes to exactly its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use narfs_core::dagpb::PBNode;
use narfs_core::unixfs::UnixFsData;

fn check_unixfs(bytes: &[u8]) {
    if let Ok(fs) = UnixFsData::decode(bytes) {
        assert_eq!(fs.encode(), bytes, "UnixFS re-encoding differs: {fs:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    // The input is tried both as a dag-pb block and as a bare UnixFS message.
    check_unixfs(data);
    let Ok(node) = PBNode::decode(data) else {
        return;
    };
    let enc = node.encode();
    assert_eq!(enc.len(), node.encoded_len());
    assert_eq!(PBNode::decode(&enc).as_ref(), Ok(&node));
    // Links-first input is canonical; the only other accepted order is Data first.
    let data_first = data.first() == Some(&0x0a) && !node.links.is_empty();
    if !data_first {
        assert_eq!(enc, data, "canonical dag-pb block re-encodes differently");
    }
    for link in &node.links {
        let _ = link.hash.to_string();
    }
    if let Some(d) = &node.data {
        check_unixfs(d);
    }
});
