//! Fuzz target: the streaming NAR reader on arbitrary bytes.
//!
//! Oracle: no panic, no unbounded allocation (small limits), and whatever the reader
//! accepts is canonical: writing its events back with `NarWriter` gives the input
//! byte for byte. A second pass reads only some of each file (nothing, a few bytes,
//! all of it, in turn) so that the reader's skipping path meets every input too.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use narfs_core::nar::{Event, Limits, NarReader, NarWriter};

const LIMITS: Limits = Limits {
    max_name_len: 64,
    max_target_len: 64,
    max_depth: 16,
};

/// Reads everything and writes it back; the input must come out again if accepted.
fn mirror(nar: &[u8]) {
    let mut reader = NarReader::with_limits(nar, LIMITS);
    let mut writer = NarWriter::new(Vec::new());
    loop {
        let event = match reader.next() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) => {
                let _ = e.to_string();
                // After an error the reader stays failed.
                assert!(reader.next().is_err());
                return;
            }
        };
        match event {
            Event::Directory { name } => writer.directory(name).expect("valid directory"),
            Event::DirectoryEnd => writer.end_directory().expect("balanced"),
            Event::Symlink { name, target } => writer.symlink(name, target).expect("valid link"),
            Event::File {
                name,
                executable,
                size,
                mut contents,
            } => {
                assert_eq!(contents.remaining(), size);
                // Bounded by the input: the NAR is the whole input.
                let mut buf = Vec::new();
                match contents.read_to_end(&mut buf) {
                    Ok(n) => assert_eq!(n as u64, size),
                    Err(e) => {
                        let _ = contents.error(e).to_string();
                        assert!(reader.next().is_err() || size == 0);
                        return;
                    }
                }
                writer
                    .file(name, executable, size, &mut buf.as_slice())
                    .expect("whole file");
            }
        }
    }
    let out = writer.finish().expect("a complete archive");
    assert!(out == nar, "an accepted NAR is not canonical");
}

/// Reads only parts of the files, leaving the rest to the reader to skip.
fn skim(nar: &[u8]) {
    let mut reader = NarReader::with_limits(nar, LIMITS);
    let mut files = 0usize;
    while let Ok(Some(event)) = reader.next() {
        if let Event::File { mut contents, .. } = event {
            let mut buf = [0u8; 5];
            match files % 3 {
                0 => {}
                1 => {
                    let _ = contents.read(&mut buf);
                }
                _ => {
                    let _ = contents.fill_buf().map(|b| b.len());
                }
            }
            files += 1;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    mirror(data);
    skim(data);
});
