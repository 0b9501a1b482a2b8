//! Fuzz target: the CAR readers (streaming `CarReader`, unknown and known length, and
//! the indexed `CarFile`) on arbitrary bytes.
//!
//! Oracle: no panic, no allocation beyond the bounded section size; when both the
//! streaming reader (with the length known) and the index accept the input, they
//! agree on the roots and on the first block of every CID.
#![no_main]

use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, Write};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use narfs_core::car::{CarFile, CarReader};

/// One scratch file per fuzzing process, rewritten for each input.
fn scratch() -> &'static File {
    static FILE: OnceLock<File> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("narfs-fuzz-car-{}", std::process::id()));
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("scratch file");
        let _ = std::fs::remove_file(&path);
        file
    })
}

fuzz_target!(|data: &[u8]| {
    // Unknown length: stream to the end or the first error.
    if let Ok(reader) = CarReader::new(data) {
        let _ = reader.roots().len();
        for item in reader {
            if let Err(e) = item {
                let _ = (e.to_string(), e.offset());
            }
        }
    }
    // Known length, and the index over the same bytes.
    let streamed = CarReader::with_len(data, data.len() as u64).and_then(|r| {
        let roots = r.roots().to_vec();
        let mut first = HashMap::new();
        for item in r {
            let (cid, block) = item?;
            first.entry(cid).or_insert(block);
        }
        Ok((roots, first))
    });
    let mut file = scratch();
    file.set_len(0).unwrap();
    file.rewind().unwrap();
    file.write_all(data).unwrap();
    // The clone shares the position, and the index reads from it.
    file.rewind().unwrap();
    let indexed = CarFile::from_file(file.try_clone().unwrap());
    match (streamed, indexed) {
        (Ok((roots, first)), Ok(car)) => {
            assert_eq!(roots, car.roots());
            assert_eq!(first.len(), car.len());
            for (cid, block) in &first {
                assert_eq!(car.get(cid).unwrap().as_ref(), Some(block));
            }
        }
        (Ok(_), Err(e)) => panic!("streaming reader accepts, index refuses: {e}"),
        // The index reads only CIDs and lengths, but checks them as strictly.
        (Err(e), Ok(_)) => panic!("index accepts, streaming reader refuses: {e}"),
        (Err(_), Err(_)) => {}
    }
});
