//! `narfs-fill-store STORE BLOCKS [LEAVES]`: a store of about BLOCKS blocks, fast, for
//! the gc figures of `benches/scale.sh` (importing 10⁷ blocks of real items would take
//! hours on the bench machine). Bench-only: each item is one dag-pb directory node
//! over LEAVES (default 50) distinct raw leaves of 40–100 bytes, written through the
//! store's own batched write session (blocks stored raw); one item in ten is left
//! without a root (garbage for the sweep), the others are recorded with a name and a
//! made-up NarHash (gc walks DAGs, it decodes no NAR). Prints the items, roots and
//! blocks written.

use narfs_core::block::{cid_for, BlockSink, HashAlg, DAG_PB, RAW};
use narfs_core::dagpb::{PBLink, PBNode};
use narfs_core::Encoding;
use narfs_store::{Options, RootRecord, Store};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: narfs-fill-store STORE BLOCKS [LEAVES]");
        std::process::exit(2);
    }
    let blocks: u64 = args[2].parse().expect("BLOCKS is a number");
    let leaves: u64 = args
        .get(3)
        .map_or(50, |l| l.parse().expect("LEAVES is a number"));
    let options = Options {
        zstd_level: None,
        ..Options::default()
    };
    let store = Store::open_with(&args[1], options).expect("open the store");
    let session = store.session().expect("a write session");
    let items = blocks / (leaves + 1);
    let mut roots = 0;
    for i in 0..items {
        let mut sink = session.sink();
        let mut links = Vec::with_capacity(leaves as usize);
        for k in 0..leaves {
            let mut leaf = format!("item {i} leaf {k} ").into_bytes();
            leaf.resize(40 + ((i * 31 + k * 17) % 61) as usize, b'.');
            let cid = cid_for(RAW, HashAlg::Sha2_256, &leaf);
            sink.put(&cid, &leaf).expect("put a leaf");
            links.push(PBLink {
                hash: cid,
                name: Some(format!("f{k:03}")),
                tsize: Some(leaf.len() as u64),
            });
        }
        let node = PBNode {
            links,
            data: Some(vec![8, 1]),
        }
        .encode();
        let root = cid_for(DAG_PB, HashAlg::Sha2_256, &node);
        sink.put(&root, &node).expect("put the node");
        let record = (i % 10 != 9).then(|| {
            roots += 1;
            RootRecord::new(&root, Encoding::UnixFs, &[0; 32], 0)
                .with_name(Some(format!("fill-{i}")))
        });
        // Not `finish`: it waits for the commit, one sync per item.
        sink.finish_then(
            record,
            Box::new(|r| {
                r.expect("an item committed");
            }),
        )
        .expect("finish an item");
    }
    session.close().expect("close the session");
    println!(
        "{items} items, {roots} roots, {} blocks",
        items * (leaves + 1)
    );
}
