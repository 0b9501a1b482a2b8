//! Tests for the CAR readers: roundtrip with the encoder's writer, @ipld/car bytes,
//! truncation at every offset, lying headers and sections, CARv2, and the file index.

use super::*;
use crate::varint::put as write_varint;
use cid::multihash::Multihash;
use cid::Cid;
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use std::io::Read;

/// Made with @ipld/car 5.4.7 (node 20): root bafkrei…yeq (raw sha256("hello")), blocks
/// "hello" and "" — see the writer's tests for the script.
const IPLD_CAR_RAW_TWO_BLOCKS: &str = "3aa265726f6f747381d82a582500015512202cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b98246776657273696f6e0129015512202cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982468656c6c6f2401551220e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

pub(super) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub(super) fn raw_cid(data: &[u8]) -> Cid {
    Cid::new_v1(0x55, Multihash::wrap(0x12, &Sha256::digest(data)).unwrap())
}

pub(super) fn read_all<R: Read>(r: CarReader<R>) -> Result<Vec<(Cid, Vec<u8>)>, CarError> {
    r.collect()
}

/// A CAR with `blocks`, root = first block (or a fixed CID), via the encoder's writer.
pub(super) fn car_of(blocks: &[Vec<u8>]) -> Vec<u8> {
    let root = blocks.first().map_or(raw_cid(b"root"), |b| raw_cid(b));
    let mut w = CarWriter::new(Vec::new(), &root).unwrap();
    for b in blocks {
        w.put(&raw_cid(b), b).unwrap();
    }
    w.finish().unwrap()
}

pub(super) fn section(cid: &Cid, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let c = cid.to_bytes();
    write_varint(&mut out, (c.len() + data.len()) as u64);
    out.extend_from_slice(&c);
    out.extend_from_slice(data);
    out
}

/// Header bytes with the given dag-cbor body (length varint prepended).
pub(super) fn with_len(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_varint(&mut out, body.len() as u64);
    out.extend_from_slice(body);
    out
}

pub(super) fn temp_car(bytes: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    f
}

#[test]
fn reads_ipld_car_output() {
    let bytes = unhex(IPLD_CAR_RAW_TWO_BLOCKS);
    let r = CarReader::new(&bytes[..]).unwrap();
    assert_eq!(r.roots(), [raw_cid(b"hello")]);
    let blocks = read_all(r).unwrap();
    assert_eq!(
        blocks,
        [
            (raw_cid(b"hello"), b"hello".to_vec()),
            (raw_cid(b""), vec![])
        ]
    );
    let f = temp_car(&bytes);
    let car = CarFile::open(f.path()).unwrap();
    assert_eq!(car.len(), 2);
    assert_eq!(car.get(&raw_cid(b"hello")).unwrap().unwrap(), b"hello");
    assert_eq!(car.get(&raw_cid(b"")).unwrap().unwrap(), b"");
    assert_eq!(car.get(&raw_cid(b"nope")).unwrap(), None);
    assert_eq!(car.location(&raw_cid(b"hello")), Some((59 + 1 + 36, 5)));
}

proptest! {
    #[test]
    fn roundtrip(blocks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 0..12)) {
        let bytes = car_of(&blocks);
        let mut expected: Vec<(Cid, Vec<u8>)> = Vec::new();
        for b in &blocks {
            if !expected.iter().any(|(c, _)| *c == raw_cid(b)) {
                expected.push((raw_cid(b), b.clone()));
            }
        }
        let r = CarReader::with_len(&bytes[..], bytes.len() as u64).unwrap();
        prop_assert_eq!(r.roots().len(), 1);
        prop_assert_eq!(read_all(r).unwrap(), expected.clone());
        prop_assert_eq!(read_all(CarReader::new(&bytes[..]).unwrap()).unwrap(), expected.clone());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.car");
        let mut w = CarFileWriter::create(&path).unwrap();
        for b in &blocks {
            w.put(&raw_cid(b), b).unwrap();
        }
        w.finish(&raw_cid(b"root")).unwrap();
        let car = CarFile::open(&path).unwrap();
        prop_assert_eq!(car.roots(), &[raw_cid(b"root")][..]);
        prop_assert_eq!(car.len(), expected.len());
        for (cid, data) in &expected {
            prop_assert_eq!(car.get(cid).unwrap(), Some(data.clone()));
        }
    }
}

/// Offsets at which a CAR may legitimately end: after the header and after each section.
fn boundaries(bytes: &[u8]) -> Vec<usize> {
    let mut r = CarReader::new(bytes).unwrap();
    let mut v = vec![r.offset() as usize];
    while r.next_block().unwrap().is_some() {
        v.push(r.offset() as usize);
    }
    v
}

#[test]
fn truncation_at_every_offset() {
    let blocks = vec![b"hello".to_vec(), vec![7u8; 300], vec![], b"x".to_vec()];
    let bytes = car_of(&blocks);
    let ends = boundaries(&bytes);
    assert_eq!(*ends.last().unwrap(), bytes.len());
    let full = read_all(CarReader::new(&bytes[..]).unwrap()).unwrap();
    for cut in 0..bytes.len() {
        let part = &bytes[..cut];
        let streamed = CarReader::new(part).and_then(read_all);
        let file = temp_car(part);
        let indexed = CarFile::open(file.path());
        if let Some(n) = ends.iter().position(|&e| e == cut) {
            // A cut between sections is a valid, shorter CAR.
            assert_eq!(streamed.unwrap(), full[..n]);
            assert_eq!(indexed.unwrap().len(), n);
        } else {
            let e = streamed.unwrap_err();
            assert!(e.offset() <= cut as u64, "cut {cut}: {e}");
            assert!(indexed.is_err(), "cut {cut}");
        }
    }
}

/// A CARv2 wrapping `v1`, with `pad` bytes between the v2 header and the payload and
/// junk standing in for an index after it.
pub(super) fn v2_of(v1: &[u8], pad: usize) -> Vec<u8> {
    let mut out = unhex("0aa16776657273696f6e02");
    out.extend_from_slice(&[0u8; 16]);
    let data_offset = (11 + 40 + pad) as u64;
    out.extend_from_slice(&data_offset.to_le_bytes());
    out.extend_from_slice(&(v1.len() as u64).to_le_bytes());
    out.extend_from_slice(&(data_offset + v1.len() as u64).to_le_bytes());
    out.extend(std::iter::repeat_n(0u8, pad));
    out.extend_from_slice(v1);
    out.extend_from_slice(b"\x01\x02index junk that is not sections");
    out
}

#[test]
fn carv2_payload_is_read() {
    let blocks = vec![b"hello".to_vec(), vec![1u8; 100]];
    let v1 = car_of(&blocks);
    for pad in [0, 5] {
        let v2 = v2_of(&v1, pad);
        let r = CarReader::new(&v2[..]).unwrap();
        assert_eq!(r.roots(), [raw_cid(b"hello")]);
        assert_eq!(read_all(r).unwrap().len(), 2);
        let f = temp_car(&v2);
        let car = CarFile::open(f.path()).unwrap();
        assert_eq!(car.get(&raw_cid(&blocks[1])).unwrap().unwrap(), blocks[1]);
        // Every cut inside the payload is an error: its size is known.
        for cut in 0..(51 + pad + v1.len()) {
            assert!(
                CarReader::new(&v2[..cut]).and_then(read_all).is_err(),
                "cut {cut}"
            );
        }
    }
}

#[test]
fn duplicates_keep_the_first() {
    let c = raw_cid(b"one");
    let other = raw_cid(b"two");
    let bytes = [
        &encode_header(&[c])[..],
        &section(&c, b"one"),
        &section(&other, b"two"),
        &section(&c, b"a conflicting, longer body"),
    ]
    .concat();
    let f = temp_car(&bytes);
    let car = CarFile::open(f.path()).unwrap();
    assert_eq!(car.len(), 2);
    assert_eq!(car.duplicates(), 1);
    assert_eq!(car.get(&c).unwrap().unwrap(), b"one");
    let mut cids: Vec<_> = car.cids().copied().collect();
    cids.sort();
    let mut want = vec![c, other];
    want.sort();
    assert_eq!(cids, want);
    assert!(car.contains(&other) && !car.is_empty());
    // The streaming reader hands out every section as it is.
    assert_eq!(
        read_all(CarReader::new(&bytes[..]).unwrap()).unwrap().len(),
        3
    );
}

#[test]
fn cidv0_sections() {
    let mh = Multihash::wrap(0x12, &Sha256::digest(b"pb")).unwrap();
    let v0 = Cid::new_v0(mh).unwrap();
    let bytes = [&encode_header(&[v0])[..], &section(&v0, b"pb")].concat();
    let blocks = read_all(CarReader::new(&bytes[..]).unwrap()).unwrap();
    assert_eq!(blocks, [(v0, b"pb".to_vec())]);
    let f = temp_car(&bytes);
    assert_eq!(
        CarFile::open(f.path()).unwrap().get(&v0).unwrap().unwrap(),
        b"pb"
    );
}

#[test]
fn a_car_cut_after_indexing_is_an_error_not_short_bytes() {
    // The block is read into a buffer that is not zeroed first: a read that comes up
    // short must be an error, never a block padded with whatever the memory held.
    let bytes = unhex(IPLD_CAR_RAW_TWO_BLOCKS);
    let f = temp_car(&bytes);
    let car = CarFile::open(f.path()).unwrap();
    let (offset, len) = car.location(&raw_cid(b"hello")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(f.path())
        .unwrap()
        .set_len(offset + len - 2)
        .unwrap();
    let e = car.get(&raw_cid(b"hello")).unwrap_err();
    assert!(e.to_string().contains("block data"), "{e}");
}
