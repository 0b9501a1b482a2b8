//! Tests of the UnixFS `Data` codec (module `unixfs`).

use super::*;
use proptest::prelude::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Expected bytes: `new UnixFS({...}).marshal()` from js `ipfs-unixfs` 13.1.1 for the
/// same fields, printed as hex by a small Node script.
#[test]
fn matches_js_ipfs_unixfs() {
    let mtime = |seconds, fractional_nanoseconds| UnixTime {
        seconds,
        fractional_nanoseconds,
    };
    let cases = [
        (UnixFsData::directory(), "0801"),
        (
            UnixFsData {
                mode: Some(0o700),
                ..UnixFsData::directory()
            },
            "080138c003",
        ),
        (
            UnixFsData::file(vec![262144, 262144, 10], None),
            "0802188a80202080801020808010200a",
        ),
        (UnixFsData::file(vec![5], Some(0o644)), "080218052005"),
        (
            UnixFsData::file(vec![300, 1], Some(0o755)),
            "080218ad0220ac02200138ed03",
        ),
        (UnixFsData::file(vec![], None), "08021800"),
        (
            UnixFsData::symlink(b"../lib/libfoo.so.1"),
            "080412122e2e2f6c69622f6c6962666f6f2e736f2e31",
        ),
        (
            UnixFsData::hamt_shard(&[0x81, 0, 1], 256),
            "080512038100012822308002",
        ),
        (
            UnixFsData {
                mtime: Some(mtime(1_700_000_000, Some(5))),
                ..UnixFsData::file(vec![3], None)
            },
            "080218032003420b0880e2cfaa061505000000",
        ),
        (
            UnixFsData {
                mtime: Some(mtime(-1, None)),
                ..UnixFsData::directory()
            },
            "0801420b08ffffffffffffffffff01",
        ),
        (
            UnixFsData {
                data: Some(vec![1, 2, 3]),
                filesize: Some(3),
                ..UnixFsData::new(DataType::File)
            },
            "080212030102031803",
        ),
    ];
    let mut buf = vec![0xee; 5];
    for (msg, expected) in cases {
        assert_eq!(hex(&msg.encode()), expected, "{msg:?}");
        msg.encode_into(&mut buf);
        assert_eq!(hex(&buf), expected);
        assert_eq!(UnixFsData::decode(&unhex(expected)).unwrap(), msg);
    }
}

#[test]
fn constructors_follow_js_defaults() {
    assert_eq!(UnixFsData::file(vec![1, 2], Some(0o644)).mode, None);
    assert_eq!(UnixFsData::file(vec![1, 2], None).filesize, Some(3));
    assert_eq!(UnixFsData::symlink(b"").data, None);
    assert_eq!(UnixFsData::symlink(b"").encode(), [0x08, 0x04]);
    assert_eq!(UnixFsData::symlink(b"x").filesize, None);
    let shard = UnixFsData::hamt_shard(&[1], 256);
    assert_eq!((shard.hash_type, shard.fanout), (Some(0x22), Some(256)));
}

fn err(hexbytes: &str) -> UnixFsError {
    UnixFsData::decode(&unhex(hexbytes)).unwrap_err()
}

#[test]
fn rejects_malformed_messages() {
    use UnixFsError::*;
    assert_eq!(err(""), MissingType);
    assert_eq!(err("1800"), MissingType);
    assert_eq!(err("0806"), UnknownType(6));
    assert!(matches!(err("08020800"), FieldOrder { field: 1, .. }));
    assert!(matches!(err("080218001800"), FieldOrder { field: 3, .. }));
    assert!(matches!(err("08022001180a"), FieldOrder { field: 3, .. }));
    // blocksizes after hashType
    assert!(matches!(
        err("08021801 2001 2801 2001"),
        FieldOrder { field: 4, .. }
    ));
    // packed blocksizes (wire type 2)
    assert!(matches!(
        err("0802220201 02"),
        WrongWireType {
            field: 4,
            wire_type: 2,
            ..
        }
    ));
    assert!(matches!(
        err("0a00"),
        WrongWireType {
            field: 1,
            wire_type: 2,
            ..
        }
    ));
    assert!(matches!(err("08024800"), UnknownField { field: 9, .. }));
    assert!(matches!(
        err("0802 3880808080 20"),
        ModeOutOfRange(0x2_0000_0000)
    ));
    assert!(matches!(
        err("0802 1203 0102"),
        Wire(WireError::Truncated(3))
    ));
    assert!(matches!(
        err("08021880 00"),
        Wire(WireError::NonMinimalVarint(3))
    ));
    // mtime: nanos without seconds, seconds twice, nanos as varint, unknown field
    assert_eq!(err("0801420515 05000000"), MissingSeconds);
    assert!(matches!(
        err("08014204 0801 0801"),
        FieldOrder {
            message: "UnixTime",
            ..
        }
    ));
    assert!(matches!(
        err("08014202 1005"),
        WrongWireType {
            message: "UnixTime",
            ..
        }
    ));
    assert!(matches!(
        err("08014202 1805"),
        UnknownField {
            message: "UnixTime",
            field: 3,
            ..
        }
    ));
    assert!(matches!(
        err("08014203 1505 00"),
        Wire(WireError::Truncated(5))
    ));
}

fn arb_msg() -> impl Strategy<Value = UnixFsData> {
    (
        0u64..6,
        prop::option::of(prop::collection::vec(any::<u8>(), 0..20)),
        prop::option::of(any::<u64>()),
        prop::collection::vec(any::<u64>(), 0..5),
        prop::option::of(any::<u64>()),
        prop::option::of(any::<u64>()),
        prop::option::of(any::<u32>()),
        prop::option::of((any::<i64>(), prop::option::of(any::<u32>()))),
    )
        .prop_map(
            |(t, data, filesize, blocksizes, hash_type, fanout, mode, mtime)| UnixFsData {
                data_type: DataType::from_u64(t).unwrap(),
                data,
                filesize,
                blocksizes,
                hash_type,
                fanout,
                mode,
                mtime: mtime.map(|(seconds, fractional_nanoseconds)| UnixTime {
                    seconds,
                    fractional_nanoseconds,
                }),
            },
        )
}

proptest! {
    #[test]
    fn roundtrip(msg in arb_msg()) {
        let bytes = msg.encode();
        let back = UnixFsData::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &msg);
        prop_assert_eq!(back.encode(), bytes);
    }

    /// Whatever is accepted re-encodes to exactly the same bytes.
    #[test]
    fn accepted_bytes_are_canonical(msg in arb_msg(), pos in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = msg.encode();
        let i = pos % bytes.len();
        bytes[i] = byte;
        if let Ok(decoded) = UnixFsData::decode(&bytes) {
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }

    #[test]
    fn never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
        let _ = UnixFsData::decode(&bytes);
    }
}
