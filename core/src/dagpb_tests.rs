//! Tests of the dag-pb codec (module `dagpb`).

use super::*;
use crate::block::{cid_for, HashAlg, DAG_PB, RAW};
use proptest::prelude::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn raw_empty() -> Cid {
    "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        .parse()
        .unwrap()
}

fn link(hash: Cid, name: Option<&str>, tsize: Option<u64>) -> PBLink {
    PBLink {
        hash,
        name: name.map(str::to_owned),
        tsize,
    }
}

/// Expected bytes from `@ipld/dag-pb` 4.2.0 `encode()` (default links-first) of the same
/// nodes, printed as hex by a small Node script.
#[test]
fn matches_js_dag_pb() {
    let v0: Cid = "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
        .parse()
        .unwrap();
    let cases = [
        (PBNode::default(), ""),
        (
            PBNode {
                links: vec![],
                data: Some(vec![]),
            },
            "0a00",
        ),
        (
            PBNode {
                links: vec![link(raw_empty(), None, None)],
                data: None,
            },
            "12260a2401551220e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            PBNode {
                links: vec![link(raw_empty(), Some(""), Some(0))],
                data: Some(vec![8, 2, 0x18, 0]),
            },
            "122a0a2401551220e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855120018000a0408021800",
        ),
        (
            PBNode {
                links: vec![
                    link(v0, Some("a"), Some(300)),
                    link(raw_empty(), Some("bé"), Some(1 << 40)),
                ],
                data: Some(vec![8, 1]),
            },
            "122a0a22122059948439065f29619ef41280cbb932be52c56d99c5966b65e0111239f098bbef12016118ac0212320a2401551220e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855120362c3a9188080808080200a020801",
        ),
    ];
    let mut buf = vec![0xff; 3]; // encode_into must replace, not append
    for (node, expected) in cases {
        assert_eq!(hex(&node.encode()), expected);
        node.encode_into(&mut buf);
        assert_eq!(hex(&buf), expected);
        assert_eq!(node.encoded_len(), expected.len() / 2);
        assert_eq!(PBNode::decode(&unhex(expected)).unwrap(), node);
    }
}

#[test]
fn accepts_data_first() {
    // `@ipld/dag-pb` encode(..., { fieldOrder: 'data-first' }) of the "mixed" node above.
    let bytes = unhex("0a020801122a0a22122059948439065f29619ef41280cbb932be52c56d99c5966b65e0111239f098bbef12016118ac0212320a2401551220e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855120362c3a918808080808020");
    let node = PBNode::decode(&bytes).unwrap();
    assert_eq!(node.links.len(), 2);
    assert_eq!(node.data.as_deref(), Some(&[8u8, 1][..]));
    assert_eq!(node.encode().len(), bytes.len());
}

/// Flat directories of raw-leaf files, CIDs and Tsize from `ipfs-unixfs-importer` 17.1.1
/// (`importer([{ path: 'd/file-0000i', content: utf8('content of entry i\n') }, ...],
/// bs, { cidVersion: 1, rawLeaves: true })`).
#[test]
fn flat_directories_match_js_importer() {
    for (n, cid, tsize) in [
        (
            1,
            "bafybeif276gx5eglgctrq6wqp7lwqwvjjy4km5w5toif4d3uqyqufmt2gi",
            77,
        ),
        (
            3,
            "bafybeihyznhhivh4nogplhjuhs6pomsmkibsm64d3sd3qvfo5lw23gf62e",
            223,
        ),
    ] {
        let mut node = PBNode {
            links: vec![],
            data: Some(vec![8, 1]),
        };
        for i in 0..n {
            let content = format!("content of entry {i}\n");
            node.links.push(link(
                cid_for(RAW, HashAlg::Sha2_256, content.as_bytes()),
                Some(&format!("file-{i:05}")),
                Some(content.len() as u64),
            ));
        }
        let bytes = node.encode();
        assert_eq!(cid_for(DAG_PB, HashAlg::Sha2_256, &bytes).to_string(), cid);
        let total: u64 = node.links.iter().map(|l| l.tsize.unwrap()).sum();
        assert_eq!(bytes.len() as u64 + total, tsize);
    }
}

#[test]
fn empty_directory_and_zero_length_block() {
    let dir = PBNode {
        links: vec![],
        data: Some(vec![8, 1]),
    };
    assert_eq!(dir.encode(), [0x0a, 0x02, 0x08, 0x01]);
    assert_eq!(
        cid_for(DAG_PB, HashAlg::Sha2_256, &dir.encode()).to_string(),
        "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
    );
    assert_eq!(PBNode::decode(&[]).unwrap(), PBNode::default());
}

fn err(hexbytes: &str) -> DagPbError {
    PBNode::decode(&unhex(hexbytes)).unwrap_err()
}

/// A valid link body: Hash = the empty raw CID.
const HASH: &str = "0a2401551220e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[test]
fn rejects_malformed_blocks() {
    use DagPbError::*;
    assert!(matches!(err("0a"), Wire(WireError::Truncated(1))));
    assert!(matches!(err("0a0208"), Wire(WireError::Truncated(1))));
    assert!(matches!(err("1a00"), UnknownField { field: 3, .. }));
    assert!(matches!(
        err("0800"),
        WrongWireType {
            field: 1,
            wire_type: 0,
            ..
        }
    ));
    assert!(matches!(err("0a000a00"), DuplicateData { offset: 2 }));
    // Links, Data, Links
    let lk = format!("1226{HASH}");
    assert!(matches!(
        err(&format!("{lk}0a00{lk}")),
        InterleavedLinks { .. }
    ));
    // Link without Hash, with only a name
    assert!(matches!(err("12021200"), MissingHash { link: 0 }));
    // Name before Hash
    assert!(matches!(
        err(&format!("12281200{HASH}")),
        LinkFieldOrder { field: 1, .. }
    ));
    // Tsize twice
    assert!(matches!(
        err(&format!("122a{HASH}18011801")),
        DuplicateLinkField { field: 3, .. }
    ));
    // Tsize as length-delimited
    assert!(matches!(
        err(&format!("1228{HASH}1a00")),
        WrongWireType {
            field: 3,
            wire_type: 2,
            ..
        }
    ));
    // Unknown field 4 in a link
    assert!(matches!(
        err(&format!("1228{HASH}2000")),
        UnknownField { field: 4, .. }
    ));
    // Hash with a trailing byte
    assert!(matches!(
        err(&format!("12270a2501551220{}00", "00".repeat(32))),
        BadCid {
            link: 0,
            offset: 4,
            ..
        }
    ));
    // Hash that is not a CID (version 3)
    assert!(matches!(err("12040a020370"), BadCid { .. }));
    // Name not UTF-8
    assert!(matches!(
        err(&format!("1229{HASH}1201ff")),
        InvalidName { link: 0, .. }
    ));
    // Non-minimal varint length (0x80 0x00 = 0)
    assert!(matches!(
        err("0a8000"),
        Wire(WireError::NonMinimalVarint(1))
    ));
    // Varint longer than 64 bits
    assert!(matches!(
        err("ffffffffffffffffff02"),
        Wire(WireError::VarintOverflow(0))
    ));
    assert!(matches!(
        err("0affffffffffffffffff02"),
        Wire(WireError::VarintOverflow(1))
    ));
    // Length far beyond the input: no allocation, just an error
    assert!(matches!(
        err("0affffffffffffffff7f"),
        Wire(WireError::Truncated(1))
    ));
}

#[test]
fn varint_len_is_exact() {
    for v in [
        0u64,
        1,
        127,
        128,
        16383,
        16384,
        u64::from(u32::MAX),
        u64::MAX,
    ] {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        assert_eq!(varint_len(v), out.len(), "{v}");
        let mut r = Reader::new(&out, 0);
        assert_eq!(r.varint().unwrap(), v);
        assert!(r.is_empty());
    }
}

fn arb_cid() -> impl Strategy<Value = Cid> {
    (
        prop_oneof![Just(RAW), Just(DAG_PB), Just(0x71u64)],
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(codec, blake, v0, seed)| {
            let alg = if blake {
                HashAlg::Blake3
            } else {
                HashAlg::Sha2_256
            };
            if v0 && !blake {
                Cid::new_v0(alg.multihash(&seed)).unwrap()
            } else {
                cid_for(codec, alg, &seed)
            }
        })
}

fn arb_node() -> impl Strategy<Value = PBNode> {
    let link = (
        arb_cid(),
        prop::option::of(".{0,12}"),
        prop::option::of(any::<u64>()),
    )
        .prop_map(|(hash, name, tsize)| PBLink { hash, name, tsize });
    (
        prop::collection::vec(link, 0..6),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
    )
        .prop_map(|(links, data)| PBNode { links, data })
}

proptest! {
    #[test]
    fn roundtrip(node in arb_node()) {
        let bytes = node.encode();
        prop_assert_eq!(bytes.len(), node.encoded_len());
        let back = PBNode::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &node);
        prop_assert_eq!(back.encode(), bytes);
    }

    /// Whatever is accepted is canonical: it re-encodes to itself, except that a
    /// data-first block comes back links-first (same length).
    #[test]
    fn accepted_bytes_are_canonical(node in arb_node(), pos in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()) {
        let mut bytes = node.encode();
        if !bytes.is_empty() {
            let i = pos % bytes.len();
            bytes[i] = byte;
            bytes.truncate(bytes.len() - cut % (bytes.len() / 4 + 1));
        }
        if let Ok(decoded) = PBNode::decode(&bytes) {
            let again = decoded.encode();
            if bytes.first() == Some(&0x0a) && !decoded.links.is_empty() {
                prop_assert_eq!(again.len(), bytes.len());
            } else {
                prop_assert_eq!(again, bytes);
            }
        }
    }

    #[test]
    fn never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = PBNode::decode(&bytes);
    }
}
