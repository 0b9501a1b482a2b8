//! Fuzz target: a store whose block table (`blocks/data.mdb`) the fuzzer damaged.
//!
//! A real store is built once (a corpus NAR encoded into it, in LZ4 packs beside an
//! earlier version's zstd packs); each input says which
//! bytes of its data file to change (offset, XOR mask; offsets near page headers are
//! likely, where damage matters most) and where to cut the file. The damaged copy is
//! opened and read in every way the store offers: stats, the block listing, every
//! block, the root records (listed, by name, CID and store-path hash: they live in
//! named trees of the same file), verify and decoding the root.
//!
//! Then the writes: the record removed and gc (no roots left, so it deletes every
//! block, which makes LMDB rebalance the tree) and a second NAR encoded and recorded
//! into it (inserts, page splits). LMDB's
//! writer walks the damaged file itself; the store's whole-file check must refuse
//! every file that writer cannot take. fuzz/known-crashes once kept an input here
//! that faulted in `mdb_rebalance` → `mdb_node_move` → `mdb_node_del` (a leaf marked
//! `P_DIRTY` on disk); it is now tests/fixtures/store-gc-dirty-page.mdb.
//!
//! Oracle: no panic, no signal, no hang; a decode that succeeds gives the original
//! NAR's bytes.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use narfs_core::{Cid, Encoding};
use narfs_decoder::{decode, Limits};
use narfs_encoder::{encode, Layout};
use narfs_store::{Codec, NarInfoMeta, Options, RootRecord, Store};

const PATH: &str = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-attrs";
const HASH: &str = "0123456789abcdfghijklmnpqrsvwxyz";

fn record(root: &Cid, nar: &[u8], name: &str) -> RootRecord {
    RootRecord::new(root, Encoding::UnixFs, &[1; 32], nar.len() as u64)
        .with_name(Some(name.into()))
        .with_narinfo(NarInfoMeta {
            store_path: PATH.into(),
            ..NarInfoMeta::default()
        })
}

const PAGE: usize = 4096;

#[derive(Arbitrary, Debug)]
struct Input {
    /// (page, offset in the page: the low values hit the header, XOR mask).
    flips: Vec<(u16, u16, u8)>,
    /// Cut the file to this many pages plus bytes, if given.
    cut: Option<(u16, u16)>,
}

struct Built {
    nar: Vec<u8>,
    root: Cid,
    data: Vec<u8>,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let nar = include_bytes!("../../corpus/attrs-24.3.0.nar").to_vec();
        let dir = tempfile::tempdir().unwrap();
        // An earlier version first, in zstd packs (the default before LZ4), then the
        // NAR in LZ4 packs (the default) beside them: damage reaches both decoders.
        let zstd = Options {
            pack_codec: Codec::Zstd,
            ..Options::default()
        };
        let store = Store::open_with(dir.path(), zstd).unwrap();
        let earlier = include_bytes!("../../corpus/attrs-23.2.0.nar");
        let mut sink = store.sink().unwrap();
        encode(earlier.as_slice(), &Layout::default(), &mut sink, None).unwrap();
        sink.finish(None).unwrap();
        drop(store);
        let store = Store::open_with(dir.path(), Options::default()).unwrap();
        let mut sink = store.sink().unwrap();
        let e = encode(nar.as_slice(), &Layout::default(), &mut sink, None).unwrap();
        sink.finish(Some(record(&e.root, &nar, "a"))).unwrap();
        drop(store);
        let data = std::fs::read(dir.path().join("blocks/data.mdb")).unwrap();
        Built {
            nar,
            root: e.root,
            data,
        }
    })
}

fuzz_target!(|input: Input| {
    let b = built();
    let mut data = b.data.clone();
    let pages = data.len() / PAGE;
    for &(page, off, mask) in input.flips.iter().take(64) {
        // Offsets inside the first 32 bytes of a page four times out of five.
        let off = if off % 5 == 0 {
            off as usize % PAGE
        } else {
            off as usize % 32
        };
        let at = (page as usize % pages) * PAGE + off;
        data[at] ^= mask.max(1);
    }
    if let Some((page, extra)) = input.cut {
        let len = (page as usize % (pages + 1)) * PAGE + extra as usize % PAGE;
        data.truncate(len.min(data.len()));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("blocks")).unwrap();
    std::fs::write(dir.path().join("blocks/data.mdb"), &data).unwrap();
    let Ok(store) = Store::open_with(dir.path(), Options::default()) else {
        return;
    };
    let _ = store.stats();
    if let Ok(blocks) = store.blocks() {
        for info in blocks {
            let _ = store.get_block(&info.cid);
        }
    }
    let _ = store.roots();
    let _ = store.find_roots("a");
    let _ = store.find_roots(&b.root.to_string());
    let _ = store.find_by_path_hash(HASH);
    let _ = store.narinfo_counts();
    let _ = store.roots_version();
    let _ = store.verify();
    let limits = Limits {
        max_output: 4 * b.nar.len() as u64,
        ..Limits::default()
    };
    if let Ok(nar) = decode(&store, &b.root, Encoding::UnixFs, Vec::new(), &limits) {
        assert!(nar == b.nar, "a damaged store decoded to other bytes");
    }
    let _ = store.remove_roots("a");
    let _ = store.gc();
    if let Ok(mut sink) = store.sink() {
        let other = include_bytes!("../../corpus/attrs-24.1.0.nar");
        if let Ok(e) = encode(other.as_slice(), &Layout::default(), &mut sink, None) {
            let _ = sink.finish(Some(record(&e.root, other, "b")));
        }
    }
    let _ = store.find_roots("b");
    let _ = store.stats();
    let _ = store.verify();
});
