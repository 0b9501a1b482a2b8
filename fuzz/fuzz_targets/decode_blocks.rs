//! Fuzz target: decoding an arbitrary block set from an arbitrary root.
//!
//! The input describes blocks structurally (raw leaves, dag-pb/UnixFS nodes whose
//! links point at later blocks by index, or raw dag-pb bytes), so most links resolve
//! to real CIDs, sizes usually add up and verification usually passes: the walker's
//! deeper checks get exercised, not only "block not found". Hostile twists come from
//! the input too: missing, identity, CIDv0, wrong-codec and blake3 CIDs, blocks served
//! for the wrong CID, sizes that lie, shard names with or without index prefixes.
//!
//! Oracle: no panic, no hang, and a successful decode is a valid NAR no longer than
//! the output limit.
#![no_main]

use arbitrary::Arbitrary;
use cid::Cid;
use libfuzzer_sys::fuzz_target;
use multihash::Multihash;
use narfs_core::block::{cid_for, BlockSink, HashAlg, MemoryStore, DAG_PB, RAW};
use narfs_core::dagpb::{PBLink, PBNode};
use narfs_core::nar::{NarReader, NarWriter};
use narfs_core::unixfs::{DataType, UnixFsData, HAMT_HASH_MURMUR3};
use narfs_decoder::{decode_nar, Limits};

#[derive(Arbitrary, Debug)]
struct Input {
    blocks: Vec<Spec>,
    /// (block a's CID, block b's bytes) pairs stored without verification.
    swaps: Vec<(u8, u8)>,
    depth: u8,
    file_depth: u8,
    output_kib: u16,
}

#[derive(Arbitrary, Debug)]
struct Spec {
    blake3: bool,
    kind: Kind,
}

#[derive(Arbitrary, Debug)]
enum Kind {
    Raw(Vec<u8>),
    Node {
        links: Vec<LinkSpec>,
        sort: bool,
        fs: Option<FsSpec>,
    },
    Bytes(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct LinkSpec {
    target: Target,
    name: Name,
    tsize: Option<u64>,
}

#[derive(Arbitrary, Debug)]
enum Target {
    Block(u8),
    Missing(u8),
    Identity(Vec<u8>),
    WrongCodec(u8),
    V0(u8),
}

#[derive(Arbitrary, Debug)]
enum Name {
    None,
    Numbered(u8),
    /// A shard name: two hex digits, then an entry name (or none: a sub-shard).
    Shard(u8, Option<u8>),
    Text(String),
}

#[derive(Arbitrary, Debug)]
struct FsSpec {
    kind: u8,
    data: Option<Vec<u8>>,
    filesize: Size,
    blocksizes: Option<Vec<u64>>,
    fanout: Option<u16>,
    murmur: bool,
    mode: Option<u32>,
}

#[derive(Arbitrary, Debug)]
enum Size {
    Auto,
    Absent,
    Exact(u64),
}

fn name(n: &Name) -> Option<String> {
    match n {
        Name::None => None,
        Name::Numbered(k) => Some(format!("n{k:03}")),
        Name::Shard(i, e) => Some(match e {
            Some(e) => format!("{i:02X}n{e:03}"),
            None => format!("{i:02X}"),
        }),
        Name::Text(s) => Some(s.clone()),
    }
}

fuzz_target!(|input: Input| {
    let n = input.blocks.len().min(48);
    if n == 0 {
        return;
    }
    let mut cids = vec![Cid::default(); n];
    let mut bytes = vec![Vec::new(); n];
    let mut sizes = vec![0u64; n];
    let mut store = MemoryStore::new();
    for i in (0..n).rev() {
        let spec = &input.blocks[i];
        let alg = if spec.blake3 {
            HashAlg::Blake3
        } else {
            HashAlg::Sha2_256
        };
        let resolve = |t: &Target| -> (Cid, u64) {
            let later = |j: u8| (i + 1 < n).then(|| i + 1 + usize::from(j) % (n - i - 1));
            match *t {
                Target::Block(j) => match later(j) {
                    Some(j) => (cids[j], sizes[j]),
                    None => (cid_for(RAW, alg, &[j]), 1),
                },
                Target::Missing(j) => (cid_for(DAG_PB, alg, &[j, 0xff]), u64::from(j)),
                Target::Identity(ref d) => {
                    let mh = Multihash::wrap(0, &d[..d.len().min(32)]).unwrap();
                    (Cid::new_v1(RAW, mh), d.len() as u64)
                }
                Target::WrongCodec(j) => match later(j) {
                    Some(j) => (Cid::new_v1(0x71, *cids[j].hash()), sizes[j]),
                    None => (Cid::new_v1(0x71, HashAlg::Sha2_256.multihash(b"")), 0),
                },
                Target::V0(j) => match later(j) {
                    Some(j) => (Cid::new_v0(*cids[j].hash()).unwrap_or(cids[j]), sizes[j]),
                    None => (cid_for(DAG_PB, alg, &[]), 0),
                },
            }
        };
        let (codec, data, size) = match &spec.kind {
            Kind::Raw(d) => (RAW, d.clone(), d.len() as u64),
            Kind::Bytes(d) => (DAG_PB, d.clone(), 0),
            Kind::Node { links, sort, fs } => {
                let mut child_sizes = Vec::new();
                let mut pb_links = Vec::new();
                for l in links.iter().take(64) {
                    let (hash, size) = resolve(&l.target);
                    child_sizes.push(size);
                    pb_links.push(PBLink {
                        hash,
                        name: name(&l.name),
                        tsize: l.tsize,
                    });
                }
                if *sort {
                    pb_links.sort_by(|a, b| a.name.cmp(&b.name));
                }
                let mut size = 0;
                let data = fs.as_ref().map(|fs| {
                    let kind = DataType::from_u64(u64::from(fs.kind % 6)).unwrap();
                    let mut u = UnixFsData::new(kind);
                    u.data = fs.data.clone();
                    u.blocksizes = fs.blocksizes.clone().unwrap_or(child_sizes);
                    let auto = u
                        .blocksizes
                        .iter()
                        .fold(u.data.as_ref().map_or(0, |d| d.len() as u64), |a, &b| {
                            a.saturating_add(b)
                        });
                    u.filesize = match fs.filesize {
                        Size::Auto => Some(auto),
                        Size::Absent => None,
                        Size::Exact(s) => Some(s),
                    };
                    size = u.filesize.unwrap_or(auto);
                    u.fanout = fs.fanout.map(u64::from);
                    u.hash_type = fs.murmur.then_some(HAMT_HASH_MURMUR3);
                    u.mode = fs.mode;
                    u.encode()
                });
                let node = PBNode {
                    links: pb_links,
                    data,
                };
                (DAG_PB, node.encode(), size)
            }
        };
        cids[i] = cid_for(codec, alg, &data);
        store.put(&cids[i], &data).unwrap();
        bytes[i] = data;
        sizes[i] = size;
    }
    for &(a, b) in input.swaps.iter().take(4) {
        let (a, b) = (usize::from(a) % n, usize::from(b) % n);
        store.insert_unchecked(cids[a], bytes[b].clone());
    }
    let limits = Limits {
        max_depth: 1 + usize::from(input.depth % 32),
        max_file_depth: 1 + usize::from(input.file_depth % 12),
        max_output: 1 + u64::from(input.output_kib % 1024) * 1024,
        ..Limits::default()
    };
    match decode_nar(&store, &cids[0], Vec::new(), &limits) {
        Ok(nar) => {
            assert!(
                nar.len() as u64 <= limits.max_output,
                "{} bytes out, limit {}",
                nar.len(),
                limits.max_output
            );
            // A valid, canonical NAR.
            let mut reader = NarReader::new(nar.as_slice());
            let mut writer = NarWriter::new(Vec::new());
            while let Some(event) = reader.next().expect("the decoder wrote a valid NAR") {
                use narfs_core::nar::Event;
                match event {
                    Event::Directory { name } => writer.directory(name).unwrap(),
                    Event::DirectoryEnd => writer.end_directory().unwrap(),
                    Event::Symlink { name, target } => writer.symlink(name, target).unwrap(),
                    Event::File {
                        name,
                        executable,
                        size,
                        mut contents,
                    } => writer.file(name, executable, size, &mut contents).unwrap(),
                }
            }
            assert_eq!(writer.finish().unwrap(), nar);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
