//! Adversarial CAR files: a header that lies about its length or its roots, sections
//! that claim 2^62 bytes or one byte more than remains, a root the CAR does not hold.
//! The streaming reader and the file index must both give their specific error.

use std::io;

use narfs_core::block::{cid_for, HashAlg, RAW};
use narfs_core::car::encode_header;
use narfs_core::car::{CarError, CarFile, CarReader};
use narfs_core::varint::put as write_varint;
use narfs_core::Cid;
use narfs_decoder::Problem;

fn car_with(header: &[u8], body: &[u8]) -> Vec<u8> {
    let mut car = Vec::new();
    write_varint(&mut car, header.len() as u64);
    car.extend_from_slice(header);
    car.extend_from_slice(body);
    car
}

fn section(cid: &Cid, data: &[u8]) -> Vec<u8> {
    let c = cid.to_bytes();
    let mut out = Vec::new();
    write_varint(&mut out, (c.len() + data.len()) as u64);
    out.extend_from_slice(&c);
    out.extend_from_slice(data);
    out
}

fn stream_err(car: &[u8]) -> CarError {
    let reader = CarReader::new(car);
    let result = reader.and_then(|r| r.collect::<Result<Vec<_>, _>>());
    result.expect_err("a lying CAR must be refused")
}

fn index_err(car: &[u8]) -> CarError {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    io::Write::write_all(&mut f, car).unwrap();
    CarFile::open(f.path()).expect_err("a lying CAR must be refused")
}

#[test]
fn a_car_whose_header_lies() {
    let leaf = cid_for(RAW, HashAlg::Sha2_256, b"leaf");
    // encode_header gives the length varint (one byte here) and the dag-cbor map.
    let header = encode_header(&[leaf])[1..].to_vec();
    let body = section(&leaf, b"leaf");

    // The header length claims 2^62 bytes, or one byte more than there is.
    let mut car = Vec::new();
    write_varint(&mut car, 1 << 62);
    car.extend_from_slice(&header);
    assert!(matches!(
        stream_err(&car),
        CarError::HeaderTooLarge { len, .. } if len == 1 << 62
    ));
    let mut car = Vec::new();
    write_varint(&mut car, header.len() as u64 + 1);
    car.extend_from_slice(&header);
    assert!(matches!(stream_err(&car), CarError::Truncated { .. }));
    assert!(matches!(index_err(&car), CarError::Truncated { .. }));

    // The roots array claims a million roots.
    let mut lying = header.clone();
    let at = lying.windows(2).position(|w| w == [0x81, 0xd8]).unwrap();
    lying.splice(at..at + 1, [0x9a, 0x00, 0x0f, 0x42, 0x40]);
    let e = stream_err(&car_with(&lying, &body));
    assert!(
        matches!(&e, CarError::BadHeader { reason, .. } if reason.contains("cannot fit")),
        "{e}"
    );

    // A section length of 2^62, and one past the end of the file.
    let mut car = car_with(&header, &[]);
    write_varint(&mut car, 1 << 62);
    assert!(matches!(stream_err(&car), CarError::SectionTooLarge { .. }));
    let mut car = car_with(&header, &[]);
    let c = leaf.to_bytes();
    write_varint(&mut car, (c.len() + 5) as u64);
    car.extend_from_slice(&c);
    car.extend_from_slice(b"leaf");
    assert!(matches!(stream_err(&car), CarError::Truncated { .. }));
    assert!(
        matches!(index_err(&car), CarError::SectionPastEnd { len, remaining, .. } if len == remaining + 1)
    );

    // The header names a root the CAR does not hold: decoding says the block is missing.
    let other = cid_for(RAW, HashAlg::Sha2_256, b"not here");
    let car = car_with(&encode_header(&[other])[1..], &body);
    let mut f = tempfile::NamedTempFile::new().unwrap();
    io::Write::write_all(&mut f, &car).unwrap();
    let file = CarFile::open(f.path()).unwrap();
    assert_eq!(file.roots(), [other]);
    let e = narfs_decoder::decode_nar(&file, &other, Vec::new(), &narfs_decoder::Limits::default())
        .expect_err("missing root");
    assert!(matches!(*e.problem, Problem::Missing), "{e}");
}

#[test]
fn a_section_with_a_non_canonical_cid() {
    // The codec varint has 10 bytes and stray high bits; its canonical encoding has
    // the same length, so a length check alone would let it through.
    let leaf = cid_for(RAW, HashAlg::Sha2_256, b"leaf");
    let mut cid = vec![0x01];
    cid.extend_from_slice(&[0xff; 9]);
    cid.push(0x03);
    cid.extend_from_slice(&[0x12, 0x20]);
    cid.extend_from_slice(&[0xab; 32]);
    let mut body = Vec::new();
    write_varint(&mut body, cid.len() as u64 + 4);
    body.extend_from_slice(&cid);
    body.extend_from_slice(b"data");
    let car = car_with(&encode_header(&[leaf])[1..], &body);
    let canonical = |e: &CarError| matches!(e, CarError::BadCid { reason, .. } if reason == "CID not canonically encoded");
    assert!(canonical(&stream_err(&car)));
    assert!(canonical(&index_err(&car)));
}
