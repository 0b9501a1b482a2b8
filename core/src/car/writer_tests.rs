//! Tests for the CARv1 writers: exact bytes against @ipld/car, dedup, limits, and the
//! atomic appearance of `CarFileWriter` output.

use super::*;
use cid::multihash::Multihash;

// Reference bytes were produced with @ipld/car 5.4.7 + multiformats 14.0.5 under node 20:
// `CarWriter.create([root])`, `writer.put({ cid, bytes })` for each block, `close()`,
// concatenating `out` and printing it as hex. Blocks are raw (0x55) sha2-256 CIDs of
// "hello" and of the empty string; roots are noted per constant.

/// Root bafybeibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq (dag-pb, sha256("hello")),
/// one block "hello".
const IPLD_CAR_DAGPB_ROOT: &str = "3aa265726f6f747381d82a582500017012202cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b98246776657273696f6e0129015512202cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982468656c6c6f";
/// Root bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq (raw), blocks "hello", "".
const IPLD_CAR_RAW_TWO_BLOCKS: &str = "3aa265726f6f747381d82a582500015512202cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b98246776657273696f6e0129015512202cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982468656c6c6f2401551220e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Root QmRN6wdp1S2A5EtjW9A3M1vKSBuQQGcgvuhoMUoEz4iiT5 (CIDv0), no blocks.
const IPLD_CAR_V0_ROOT_EMPTY: &str = "38a265726f6f747381d82a58230012202cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b98246776657273696f6e01";

const SHA256_HELLO: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
const SHA256_EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn cid(codec: u64, digest_hex: &str) -> Cid {
    Cid::new_v1(codec, Multihash::wrap(0x12, &unhex(digest_hex)).unwrap())
}

fn v0(digest_hex: &str) -> Cid {
    Cid::new_v0(Multihash::wrap(0x12, &unhex(digest_hex)).unwrap()).unwrap()
}

#[test]
fn header_and_block_match_ipld_car() {
    let root = cid(0x70, SHA256_HELLO);
    assert_eq!(
        root.to_string(),
        "bafybeibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
    );
    let mut w = CarWriter::new(Vec::new(), &root).unwrap();
    assert!(w.put(&cid(0x55, SHA256_HELLO), b"hello").unwrap());
    assert_eq!(w.finish().unwrap(), unhex(IPLD_CAR_DAGPB_ROOT));
}

#[test]
fn two_blocks_match_ipld_car() {
    let root = cid(0x55, SHA256_HELLO);
    let mut w = CarWriter::new(Vec::new(), &root).unwrap();
    w.put(&root, b"hello").unwrap();
    w.put(&cid(0x55, SHA256_EMPTY), b"").unwrap();
    let expected = unhex(IPLD_CAR_RAW_TWO_BLOCKS);
    assert_eq!(w.bytes_written(), expected.len() as u64);
    assert_eq!(w.finish().unwrap(), expected);
}

/// `put_with` writes what `put` does, the data through its closure (handed over as
/// it was given), and skips a block already written without calling it.
#[test]
fn put_with_hands_the_data_over_and_matches_put() {
    let root = cid(0x55, SHA256_HELLO);
    let mut w = CarWriter::new(Vec::new(), &root).unwrap();
    let mut handed = Vec::new();
    let mut put = |w: &mut CarWriter<Vec<u8>>, c: &Cid, data: Vec<u8>| {
        w.put_with(c, data, |out, data: Vec<u8>| {
            handed.push(data.len());
            out.extend_from_slice(&data);
            Ok(())
        })
        .unwrap()
    };
    assert!(put(&mut w, &root, b"hello".to_vec()));
    assert!(!put(&mut w, &root, b"hello".to_vec()));
    assert!(put(&mut w, &cid(0x55, SHA256_EMPTY), Vec::new()));
    assert_eq!(handed, [5, 0]);
    let expected = unhex(IPLD_CAR_RAW_TWO_BLOCKS);
    assert_eq!(w.bytes_written(), expected.len() as u64);
    assert_eq!(w.finish().unwrap(), expected);
}

#[test]
fn cidv0_root_header_matches_ipld_car() {
    let root = v0(SHA256_HELLO);
    assert_eq!(
        root.to_string(),
        "QmRN6wdp1S2A5EtjW9A3M1vKSBuQQGcgvuhoMUoEz4iiT5"
    );
    assert_eq!(encode_header(&[root]), unhex(IPLD_CAR_V0_ROOT_EMPTY));
}

#[test]
fn header_with_no_or_many_roots() {
    // a2 65 "roots" 80 67 "version" 01, prefixed by its length 0x11.
    assert_eq!(
        encode_header(&[]),
        unhex("11a265726f6f7473806776657273696f6e01")
    );
    let roots: Vec<Cid> = (0..30u8)
        .map(|i| Cid::new_v1(0x55, Multihash::wrap(0x12, &[i; 32]).unwrap()))
        .collect();
    let h = encode_header(&roots);
    // 30 roots: array head is 0x98 0x1e; body > 127 bytes so the varint takes 2 bytes.
    let body_len = 1 + 6 + 2 + 30 * (2 + 2 + 37) + 8 + 1;
    assert_eq!(h.len(), 2 + body_len);
    assert_eq!(&h[2..11], &unhex("a265726f6f7473981e")[..]);
    assert_eq!(h[0] as usize, (body_len & 0x7f) | 0x80);
    assert_eq!(h[1] as usize, body_len >> 7);
}

#[test]
fn varint_encoding() {
    let enc = |n| {
        let mut v = Vec::new();
        crate::varint::put(&mut v, n);
        v
    };
    assert_eq!(enc(0), [0]);
    assert_eq!(enc(127), [0x7f]);
    assert_eq!(enc(128), [0x80, 0x01]);
    assert_eq!(enc(300), [0xac, 0x02]);
    assert_eq!(enc(u64::MAX).len(), 10);
}

#[test]
fn reserved_room_fits_36_byte_cids() {
    let root = cid(0x70, SHA256_HELLO);
    assert_eq!(root.encoded_len(), RESERVED_CID_LEN);
    assert_eq!(encode_header(&[root]).len(), reserved_header_len());
    let blake3 = Cid::new_v1(0x55, Multihash::wrap(0x1e, &[7; 32]).unwrap());
    assert_eq!(encode_header(&[blake3]).len(), reserved_header_len());
}

#[test]
fn duplicates_are_written_once() {
    let c = cid(0x55, SHA256_HELLO);
    let mut w = CarWriter::new(Vec::new(), &c).unwrap();
    assert!(w.put(&c, b"hello").unwrap());
    let len = w.bytes_written();
    assert!(!w.put(&c, b"hello").unwrap());
    assert!(w.contains(&c));
    assert_eq!(w.bytes_written(), len);
    assert_eq!(w.blocks_written(), 1);
    assert_eq!(w.finish().unwrap().len() as u64, len);
}

#[test]
fn oversized_block_is_refused() {
    let c = cid(0x55, SHA256_HELLO);
    let mut w = CarWriter::new(Vec::new(), &c).unwrap();
    let big = vec![0u8; MAX_BLOCK_SIZE + 1];
    assert!(matches!(
        w.put(&c, &big),
        Err(CarWriteError::BlockTooLarge { len, .. }) if len == MAX_BLOCK_SIZE + 1
    ));
    assert!(w.put(&c, &big[..MAX_BLOCK_SIZE]).unwrap());
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn file_writer_same_bytes_as_ipld_car_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.car");
    let mut w = CarFileWriter::create(&target).unwrap();
    w.put(&cid(0x55, SHA256_HELLO), b"hello").unwrap();
    w.put(&cid(0x55, SHA256_EMPTY), b"").unwrap();
    assert!(!w.put(&cid(0x55, SHA256_EMPTY), b"").unwrap());
    assert_eq!(w.blocks_written(), 2);
    assert!(!target.exists(), "nothing at the target before finish");
    let size = w.finish(&cid(0x55, SHA256_HELLO)).unwrap();
    let bytes = std::fs::read(&target).unwrap();
    assert_eq!(bytes, unhex(IPLD_CAR_RAW_TWO_BLOCKS));
    assert_eq!(size, bytes.len() as u64);
    assert_eq!(dir_entries(dir.path()), ["out.car"]);
}

#[test]
fn file_writer_copies_for_other_root_lengths() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("v0.car");
    std::fs::write(&target, b"old contents").unwrap();
    let mut w = CarFileWriter::create(&target).unwrap();
    w.put(&cid(0x55, SHA256_HELLO), b"hello").unwrap();
    let root = v0(SHA256_HELLO);
    let size = w.finish(&root).unwrap();
    let mut expected = unhex(IPLD_CAR_V0_ROOT_EMPTY);
    expected.extend_from_slice(&unhex(&IPLD_CAR_DAGPB_ROOT[118..]));
    let bytes = std::fs::read(&target).unwrap();
    assert_eq!(bytes, expected);
    assert_eq!(size, expected.len() as u64);
    assert_eq!(dir_entries(dir.path()), ["v0.car"]);
}

#[test]
fn dropped_file_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("never.car");
    let mut w = CarFileWriter::create(&target).unwrap();
    w.put(&cid(0x55, SHA256_HELLO), b"hello").unwrap();
    assert_eq!(w.path(), target);
    drop(w);
    assert!(dir_entries(dir.path()).is_empty());
}

#[test]
fn file_writer_in_missing_dir_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = CarFileWriter::create(dir.path().join("no/such/dir/x.car")).unwrap_err();
    assert!(matches!(err, CarWriteError::Create { .. }), "{err}");
}

#[cfg(unix)]
#[test]
fn file_writer_output_has_ordinary_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("perm.car");
    let w = CarFileWriter::create(&target).unwrap();
    w.finish(&cid(0x70, SHA256_HELLO)).unwrap();
    let plain = dir.path().join("plain");
    std::fs::File::create(&plain).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode();
    // Same as File::create gives (0o666 minus the umask), not tempfile's 0o600.
    assert_eq!(mode(&target), mode(&plain));
}

#[cfg(unix)]
#[test]
fn file_writer_to_dev_null_writes_nothing_and_counts() {
    let root = cid(0x55, SHA256_HELLO);
    let mut w = CarFileWriter::create("/dev/null").unwrap();
    assert!(w.put(&root, b"hello").unwrap());
    assert!(!w.put(&root, b"hello").unwrap(), "duplicates still skipped");
    assert_eq!(w.blocks_written(), 1);
    let len = w.finish(&root).unwrap();
    // The same length as the CAR a real file would get.
    assert_eq!(len, unhex(IPLD_CAR_RAW_TWO_BLOCKS).len() as u64 - 37);
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata("/dev/null").unwrap();
    assert!(
        meta.file_type().is_char_device(),
        "/dev/null is left as it is"
    );
}

#[test]
fn a_streamed_car_equals_the_spooled_one_and_keeps_its_root() {
    use crate::block::{cid_for, HashAlg, RAW};
    let dir = tempfile::tempdir().unwrap();
    let blocks: Vec<(Cid, Vec<u8>)> = (0..5u8)
        .map(|i| {
            let data = vec![i; 100 * i as usize];
            (cid_for(RAW, HashAlg::Sha2_256, &data), data)
        })
        .collect();
    let root = blocks[4].0;
    let spooled = dir.path().join("spooled.car");
    let mut w = CarFileWriter::create(&spooled).unwrap();
    for (c, d) in &blocks {
        w.put(c, d).unwrap();
    }
    let len = w.finish(&root).unwrap();
    // `stream` writes through to what it opens (here a regular file stands in for
    // the pipe): the same bytes, as they come.
    let streamed = dir.path().join("streamed.car");
    std::fs::write(&streamed, b"").unwrap();
    let mut w = CarFileWriter::stream(&streamed, &root).unwrap();
    for (c, d) in blocks.iter().chain(&blocks) {
        w.put(c, d).unwrap();
    }
    assert_eq!(w.blocks_written(), 5);
    assert_eq!(w.finish(&root).unwrap(), len);
    assert_eq!(
        std::fs::read(&streamed).unwrap(),
        std::fs::read(&spooled).unwrap()
    );
    // Finished with another root: refused (its header names the first).
    let w = CarFileWriter::stream(&streamed, &root).unwrap();
    assert!(matches!(
        w.finish(&blocks[0].0),
        Err(CarWriteError::RootChanged { header, root: r }) if *header == root && *r == blocks[0].0
    ));
    // Only devices and pipes other than /dev/null are spooled.
    assert!(!CarFileWriter::spools(&spooled));
    assert!(!CarFileWriter::spools("/dev/null"));
    assert!(CarFileWriter::spools("/dev/zero"));
}
