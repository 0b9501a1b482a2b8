//! Listing a NAR's entries as it streams, in the two forms Nix has: `nix nar ls -l`'s
//! lines and `nix nar ls --json`'s nested object (same keys, same shape, including
//! `narOffset`, the byte offset of a file's contents in the archive, which lets a
//! reader seek to one file).
//!
//! The JSON is written while the archive is read, never built in memory: a directory
//! opens an object, its entries follow, its end closes it. Without `recursive`, as
//! Nix does, only the root is described and its entries are listed as `{}`.

use std::io::{self, Read, Write};

use super::{Event, NarError, NarReader};

/// How [`list`] prints entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    /// One line per entry: mode string, size, `./path` (and ` -> target`).
    Long,
    /// One JSON object, as `nix nar ls --json`.
    Json,
}

/// Why a listing stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// The archive is not a canonical NAR.
    #[error(transparent)]
    Nar(#[from] NarError),
    /// Writing the listing failed.
    #[error("cannot write the listing")]
    Write(#[source] io::Error),
    /// JSON strings are Unicode; a name or target that is not UTF-8 has no JSON form.
    #[error("at byte {offset}: a name or symlink target is not UTF-8, which JSON cannot hold")]
    NotUtf8 { offset: u64 },
}

/// Lists the entries of the NAR read from `input` to `out`; with `recursive`, the
/// whole tree, else the root and its direct entries. Returns `out`.
pub fn list<R: Read, W: Write>(
    input: R,
    mut out: W,
    format: ListFormat,
    recursive: bool,
) -> Result<W, ListError> {
    let mut reader = NarReader::new(input);
    match format {
        ListFormat::Long => long(&mut reader, &mut out, recursive)?,
        ListFormat::Json => json(&mut reader, &mut out, recursive)?,
    }
    Ok(out)
}

fn long<R: Read, W: Write>(
    reader: &mut NarReader<R>,
    out: &mut W,
    recursive: bool,
) -> Result<(), ListError> {
    // Path components below the root: the root directory has no name.
    let mut dirs: Vec<Vec<u8>> = Vec::new();
    let mut depth = 0usize;
    while let Some(event) = reader.next()? {
        let show = recursive || depth <= 1;
        let (mode, size, name, target): (&str, u64, &[u8], Option<&[u8]>) = match &event {
            Event::Directory { name } => ("dr-xr-xr-x", 0, name, None),
            Event::DirectoryEnd => {
                depth -= 1;
                dirs.pop();
                continue;
            }
            Event::File {
                name,
                executable,
                size,
                ..
            } => {
                let mode = if *executable {
                    "-r-xr-xr-x"
                } else {
                    "-r--r--r--"
                };
                (mode, *size, name, None)
            }
            Event::Symlink { name, target } => ("lrwxrwxrwx", 0, name, Some(target)),
        };
        if show {
            let mut line = format!("{mode} {size:>12} .").into_bytes();
            for d in &dirs {
                line.push(b'/');
                line.extend_from_slice(d);
            }
            if depth > 0 {
                line.push(b'/');
                line.extend_from_slice(name);
            }
            if let Some(t) = target {
                line.extend_from_slice(b" -> ");
                line.extend_from_slice(t);
            }
            line.push(b'\n');
            out.write_all(&line).map_err(ListError::Write)?;
        }
        if let Event::Directory { name } = event {
            if depth > 0 {
                dirs.push(name.to_vec());
            }
            depth += 1;
        }
    }
    Ok(())
}

fn json<R: Read, W: Write>(
    reader: &mut NarReader<R>,
    out: &mut W,
    recursive: bool,
) -> Result<(), ListError> {
    // One frame per open directory: whether an entry has been written in it yet.
    let mut first: Vec<bool> = Vec::new();
    // Open directories below a depth that is not listed (non-recursive listings).
    let mut hidden = 0usize;
    let mut text = Vec::with_capacity(256);
    loop {
        let offset = reader.offset();
        let Some(event) = reader.next()? else { break };
        text.clear();
        if hidden > 0 {
            match event {
                Event::Directory { .. } => hidden += 1,
                Event::DirectoryEnd => hidden -= 1,
                _ => {}
            }
            continue;
        }
        if let Event::DirectoryEnd = event {
            first.pop();
            text.extend_from_slice(b"}}");
            out.write_all(&text).map_err(ListError::Write)?;
            continue;
        }
        let name = match &event {
            Event::Directory { name } | Event::File { name, .. } | Event::Symlink { name, .. } => {
                *name
            }
            Event::DirectoryEnd => unreachable!("handled above"),
        };
        let depth = first.len();
        if let Some(first) = first.last_mut() {
            if !*first {
                text.push(b',');
            }
            *first = false;
            string(&mut text, name, offset)?;
            text.push(b':');
        }
        let describe = recursive || depth == 0;
        match event {
            Event::Directory { .. } if describe => {
                text.extend_from_slice(br#"{"type":"directory","entries":{"#);
                first.push(true);
            }
            Event::Directory { .. } => {
                text.extend_from_slice(b"{}");
                hidden = 1;
            }
            _ if !describe => text.extend_from_slice(b"{}"),
            Event::File {
                executable,
                size,
                contents,
                ..
            } => {
                let at = contents.nar_offset();
                let exec = if executable {
                    r#","executable":true"#
                } else {
                    ""
                };
                let obj = format!(r#"{{"type":"regular","size":{size}{exec},"narOffset":{at}}}"#);
                text.extend_from_slice(obj.as_bytes());
            }
            Event::Symlink { target, .. } => {
                text.extend_from_slice(br#"{"type":"symlink","target":"#);
                string(&mut text, target, offset)?;
                text.push(b'}');
            }
            Event::DirectoryEnd => unreachable!("handled above"),
        }
        out.write_all(&text).map_err(ListError::Write)?;
    }
    out.write_all(b"\n").map_err(ListError::Write)
}

/// Appends `bytes` as a JSON string.
fn string(text: &mut Vec<u8>, bytes: &[u8], offset: u64) -> Result<(), ListError> {
    let s = std::str::from_utf8(bytes).map_err(|_| ListError::NotUtf8 { offset })?;
    serde_json::to_writer(&mut *text, s).map_err(|e| ListError::Write(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nar::NarWriter;

    fn sample() -> Vec<u8> {
        let mut w = NarWriter::new(Vec::new());
        w.directory(b"").unwrap();
        w.file(b"a", false, 3, &mut &b"hi\n"[..]).unwrap();
        w.directory(b"d").unwrap();
        w.file(b"x", true, 1, &mut &b"x"[..]).unwrap();
        w.end_directory().unwrap();
        w.symlink(b"l", b"a\"b").unwrap();
        w.end_directory().unwrap();
        w.finish().unwrap()
    }

    fn run(nar: &[u8], format: ListFormat, recursive: bool) -> String {
        String::from_utf8(list(nar, Vec::new(), format, recursive).unwrap()).unwrap()
    }

    #[test]
    fn json_is_nix_shaped() {
        let nar = sample();
        let v: serde_json::Value =
            serde_json::from_str(&run(&nar, ListFormat::Json, true)).unwrap();
        assert_eq!(v["type"], "directory");
        assert_eq!(v["entries"]["a"]["size"], 3);
        assert!(v["entries"]["a"].get("executable").is_none());
        assert_eq!(v["entries"]["d"]["entries"]["x"]["executable"], true);
        assert_eq!(v["entries"]["l"]["target"], "a\"b");
        // narOffset points at the file's bytes.
        let at = v["entries"]["a"]["narOffset"].as_u64().unwrap() as usize;
        assert_eq!(&nar[at..at + 3], b"hi\n");
        let flat: serde_json::Value =
            serde_json::from_str(&run(&nar, ListFormat::Json, false)).unwrap();
        assert_eq!(flat["entries"]["d"], serde_json::json!({}));
        assert_eq!(flat["entries"]["a"], serde_json::json!({}));
    }

    #[test]
    fn long_lines() {
        let text = run(&sample(), ListFormat::Long, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[3].ends_with(" ./d/x") && lines[3].starts_with("-r-xr-xr-x"));
        assert!(lines[4].ends_with("./l -> a\"b"));
        assert_eq!(run(&sample(), ListFormat::Long, false).lines().count(), 4);
    }

    #[test]
    fn bad_nar_is_an_error() {
        let mut nar = sample();
        nar.truncate(nar.len() - 9);
        for format in [ListFormat::Long, ListFormat::Json] {
            assert!(matches!(
                list(&nar[..], Vec::new(), format, true),
                Err(ListError::Nar(NarError::Truncated { .. }))
            ));
        }
    }
}
