//! [`copy_canonical`]: a NAR from a place narfs does not trust (the zstd frame of a
//! fallback root, a cache) re-emitted through the reader and the writer, so that what
//! comes out is a canonical NAR within the limits, whatever went in. A valid NAR comes
//! out byte for byte as it went in; anything else stops with the reader's error.

use std::io::{Read, Write};

use super::{Event, Limits, NarError, NarReader, NarWriter};

/// Copies the NAR read from `input` to `out`, validating as it streams; returns `out`
/// and the bytes written. Only a complete, canonical archive with nothing after it
/// succeeds; on error, `out` has received a prefix of the archive.
pub fn copy_canonical<R: Read, W: Write>(
    input: R,
    out: W,
    limits: Limits,
) -> Result<(W, u64), NarError> {
    let mut reader = NarReader::with_limits(input, limits);
    let mut writer = NarWriter::with_limits(out, limits);
    while let Some(event) = reader.next()? {
        match event {
            Event::Directory { name } => writer.directory(name)?,
            Event::DirectoryEnd => writer.end_directory()?,
            Event::Symlink { name, target } => writer.symlink(name, target)?,
            Event::File {
                name,
                executable,
                size,
                mut contents,
            } => {
                writer.begin_file(name, executable, size)?;
                loop {
                    let n = match contents.fill_buf() {
                        Ok([]) => break,
                        Ok(buf) => {
                            writer.contents(buf)?;
                            buf.len()
                        }
                        Err(e) => return Err(contents.error(e)),
                    };
                    contents.consume(n);
                }
                writer.end_file()?;
            }
        }
    }
    let written = writer.written();
    Ok((writer.finish()?, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nar_of(f: impl FnOnce(&mut NarWriter<&mut Vec<u8>>)) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = NarWriter::new(&mut out);
        f(&mut w);
        w.finish().unwrap();
        out
    }

    #[test]
    fn valid_nar_comes_out_unchanged() {
        let nar = nar_of(|w| {
            w.directory(b"").unwrap();
            w.file(b"a", true, 3, &mut &b"abc"[..]).unwrap();
            w.symlink(b"l", b"a").unwrap();
            w.end_directory().unwrap();
        });
        let (out, n) = copy_canonical(&nar[..], Vec::new(), Limits::default()).unwrap();
        assert_eq!(out, nar);
        assert_eq!(n, nar.len() as u64);
    }

    #[test]
    fn junk_after_the_archive_is_refused() {
        let mut nar = nar_of(|w| w.file(b"", false, 1, &mut &b"x"[..]).unwrap());
        nar.extend_from_slice(b"junk");
        let err = copy_canonical(&nar[..], Vec::new(), Limits::default()).unwrap_err();
        assert!(matches!(err, NarError::Trailing { .. }), "{err}");
    }

    #[test]
    fn over_long_names_are_refused_by_the_limits() {
        let name = vec![b'n'; 5000];
        let roomy = Limits {
            max_name_len: 10_000,
            ..Limits::default()
        };
        let mut long = NarWriter::with_limits(Vec::new(), roomy);
        long.directory(b"").unwrap();
        long.file(&name, false, 0, &mut &b""[..]).unwrap();
        long.end_directory().unwrap();
        let bytes = long.finish().unwrap();
        let err = copy_canonical(&bytes[..], Vec::new(), Limits::default()).unwrap_err();
        assert!(matches!(err, NarError::TooLong { .. }), "{err}");
        // The default writer refuses to write it in the first place.
        let mut strict = NarWriter::new(Vec::new());
        strict.directory(b"").unwrap();
        let err = strict.file(&name, false, 0, &mut &b""[..]).unwrap_err();
        assert!(matches!(err, NarError::TooLong { .. }), "{err}");
    }
}
