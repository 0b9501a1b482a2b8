//! Tests for the CAR readers on malformed input: huge and lying headers, lying
//! sections, bad CARv2 headers. Every case must be a typed error, never a panic.

use super::reader_tests::{car_of, raw_cid, read_all, section, temp_car, unhex, v2_of, with_len};
use super::*;
use crate::varint::put as write_varint;

#[test]
fn bad_carv2_headers() {
    let v1 = car_of(&[b"a".to_vec()]);
    let mut low = v2_of(&v1, 0);
    low[27..35].copy_from_slice(&50u64.to_le_bytes());
    let e = CarReader::new(&low[..]).unwrap_err();
    assert!(matches!(e, CarError::BadV2Header { offset: 11, .. }), "{e}");

    let nested = v2_of(&v2_of(&v1, 0), 0);
    let e = CarReader::new(&nested[..]).unwrap_err();
    assert!(matches!(e, CarError::BadV2Header { .. }), "{e}");

    let mut long = v2_of(&v1, 0);
    long[35..43].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let f = temp_car(&long);
    let e = CarFile::open(f.path()).unwrap_err();
    assert!(matches!(e, CarError::BadV2Header { .. }), "{e}");
    long[35..43].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(CarReader::new(&long[..]).is_err());
}

#[test]
fn huge_header_lengths() {
    // 2^63 needs a 10-byte varint.
    let mut bytes = vec![0x80; 9];
    bytes.push(0x01);
    let e = CarReader::new(&bytes[..]).unwrap_err();
    assert!(matches!(e, CarError::BadVarint { offset: 0, .. }), "{e}");
    // 2^63 - 1 fits in 9 bytes, but is far over the limit.
    let mut bytes = vec![0xff; 8];
    bytes.push(0x7f);
    let e = CarReader::new(&bytes[..]).unwrap_err();
    assert!(
        matches!(e, CarError::HeaderTooLarge { len, .. } if len == (1 << 63) - 1),
        "{e}"
    );
    let e = CarReader::new(&with_len(&vec![0; MAX_HEADER_LEN as usize + 1])[..]).unwrap_err();
    assert!(matches!(e, CarError::HeaderTooLarge { .. }), "{e}");
    // Non-minimal varint.
    let e = CarReader::new(&[0x80, 0x00][..]).unwrap_err();
    assert!(matches!(e, CarError::BadVarint { .. }), "{e}");
    // Within the limit but longer than the file.
    let f = temp_car(&[0xff, 0x7f, 0xa2]);
    assert!(matches!(
        CarFile::open(f.path()),
        Err(CarError::Truncated { .. })
    ));
}

#[test]
fn lying_headers() {
    let cid = raw_cid(b"x");
    let good = encode_header(&[cid]);
    let body = &good[1..];
    assert!(CarReader::new(&good[..]).is_ok());
    let cid_hex: String = cid.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let tagged = format!("d82a5825 00{cid_hex}");
    let cases: Vec<(&str, String)> = vec![
        (
            "roots not an array",
            "a2 65726f6f747301 6776657273696f6e01".into(),
        ),
        ("roots a map", "a2 65726f6f7473a0 6776657273696f6e01".into()),
        ("missing roots", "a1 6776657273696f6e01".into()),
        ("missing version", format!("a1 65726f6f747381{tagged}")),
        (
            "version as text",
            format!("a2 65726f6f747381{tagged} 6776657273696f6e6131"),
        ),
        (
            "duplicate key",
            format!("a3 65726f6f747381{tagged} 6776657273696f6e01 6776657273696f6e01"),
        ),
        (
            "extra key",
            format!("a3 65726f6f747381{tagged} 6776657273696f6e01 6178f6"),
        ),
        (
            "tag 43",
            format!("a2 65726f6f747381d82b5825 00{cid_hex} 6776657273696f6e01"),
        ),
        (
            "no multibase prefix",
            format!("a2 65726f6f747381d82a5824 {cid_hex} 6776657273696f6e01"),
        ),
        (
            "short cid",
            "a2 65726f6f747381d82a43 000155 6776657273696f6e01".into(),
        ),
        (
            "non-minimal int",
            format!("a2 65726f6f747381{tagged} 6776657273696f6e1801"),
        ),
        (
            "indefinite map",
            format!("bf 65726f6f747381{tagged} 6776657273696f6eff"),
        ),
        ("roots count lies", "a2 65726f6f74739a00ffffff".into()),
        (
            "trailing bytes",
            format!("a2 65726f6f747381{tagged} 6776657273696f6e01 00"),
        ),
        ("garbage", "deadbeef".into()),
        ("not a map", "01".into()),
        ("float", "f93c00".into()),
        (
            "v2 pragma with roots",
            format!("a2 65726f6f747381{tagged} 6776657273696f6e02"),
        ),
    ];
    for (name, hex) in cases {
        let e = CarReader::new(&with_len(&unhex(&hex.replace(' ', "")))[..]).unwrap_err();
        assert!(
            matches!(e, CarError::BadHeader { offset: 0, .. }),
            "{name}: {e}"
        );
    }
    let mut v3 = body.to_vec();
    *v3.last_mut().unwrap() = 3;
    let e = CarReader::new(&with_len(&v3)[..]).unwrap_err();
    assert!(
        matches!(e, CarError::UnsupportedVersion { version: 3, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("not supported"));
    // Empty header and a v1 header with no roots (accepted: roots may be empty).
    assert!(matches!(
        CarReader::new(&[0u8][..]),
        Err(CarError::BadHeader { .. })
    ));
    assert_eq!(CarReader::new(&encode_header(&[])[..]).unwrap().roots(), []);
}

#[test]
fn lying_sections() {
    let header = encode_header(&[raw_cid(b"x")]);
    let h = header.len() as u64;
    let car = |tail: &[u8]| [&header[..], tail].concat();

    // Section longer than the input.
    let mut s = section(&raw_cid(b"hello"), b"hello");
    s[0] = 0x7f;
    let bytes = car(&s);
    let e = CarReader::with_len(&bytes[..], bytes.len() as u64)
        .unwrap()
        .next_block()
        .unwrap_err();
    assert!(
        matches!(e, CarError::SectionPastEnd { offset, len: 127, remaining: 41 } if offset == h),
        "{e}"
    );
    assert!(matches!(
        CarReader::new(&bytes[..]).unwrap().next_block(),
        Err(CarError::Truncated { .. })
    ));
    let f = temp_car(&bytes);
    assert!(matches!(
        CarFile::open(f.path()),
        Err(CarError::SectionPastEnd { .. })
    ));

    // Section over the limit, whatever the input.
    let mut big = Vec::new();
    write_varint(&mut big, MAX_SECTION_LEN + 1);
    let e = CarReader::new(&car(&big)[..])
        .unwrap()
        .next_block()
        .unwrap_err();
    assert!(
        matches!(e, CarError::SectionTooLarge { offset, .. } if offset == h),
        "{e}"
    );

    // Empty section, malformed CIDs, a section shorter than its CID.
    let e = CarReader::new(&car(&[0])[..])
        .unwrap()
        .next_block()
        .unwrap_err();
    assert!(matches!(e, CarError::EmptySection { .. }), "{e}");
    let good = section(&raw_cid(b"a"), b"a");
    for bad in [
        &[3u8, 0x02, 0x55, 0x12][..],
        &[2, 0x01, 0x55],
        &[4, 0x00, 0x70, 0x12, 0x20],
    ] {
        let bytes = car(&[&good[..], bad].concat());
        let e = read_all(CarReader::new(&bytes[..]).unwrap()).unwrap_err();
        assert!(
            matches!(e, CarError::BadCid { offset, .. } if offset == h + good.len() as u64),
            "{e}"
        );
        let f = temp_car(&bytes);
        assert!(matches!(
            CarFile::open(f.path()),
            Err(CarError::BadCid { .. })
        ));
    }
}

#[test]
fn iterator_stops_after_an_error() {
    let header = encode_header(&[raw_cid(b"x")]);
    let bytes = [&header[..], &[0, 0]].concat();
    let mut r = CarReader::new(&bytes[..]).unwrap();
    assert!(matches!(r.next(), Some(Err(_))));
    assert!(r.next().is_none());
}
