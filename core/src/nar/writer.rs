//! The canonical NAR writer: entry events in, NAR bytes out, streaming. It refuses
//! any event that would make a NAR Nix would not write (unsorted or repeated names,
//! bad names, file contents of the wrong length, a second root), and anything the
//! reader's [`Limits`] refuse (long names and targets, deep nesting): what narfs
//! writes, narfs (and `nix-store --restore`) reads back.

use std::io::{self, Read, Write};

use super::token::{padding, put, MAGIC};
use super::{check_name, show, Limits, NarError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Nothing written yet: the next node is the root.
    Root,
    /// Inside a directory: the next call adds an entry or closes it.
    Directory,
    /// Inside a file's contents.
    File,
    Done,
}

/// Writes one NAR. Nodes are added in NAR order; `name` is the entry name in the
/// enclosing directory and must be empty for the root node.
pub struct NarWriter<W: Write> {
    out: W,
    state: State,
    /// Previous entry name of each open directory.
    open: Vec<Vec<u8>>,
    remaining: u64,
    size: u64,
    head: Vec<u8>,
    written: u64,
    limits: Limits,
}

impl<W: Write> NarWriter<W> {
    pub fn new(out: W) -> Self {
        Self::with_limits(out, Limits::default())
    }

    /// A writer that refuses what a [`super::NarReader`] with `limits` would refuse.
    pub fn with_limits(out: W, limits: Limits) -> Self {
        NarWriter {
            out,
            state: State::Root,
            open: Vec::new(),
            remaining: 0,
            size: 0,
            head: Vec::with_capacity(256),
            written: 0,
            limits,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Opens a directory node; its entries follow, then [`NarWriter::end_directory`].
    pub fn directory(&mut self, name: &[u8]) -> Result<(), NarError> {
        if self.open.len() >= self.limits.max_depth {
            return Err(NarError::TooDeep {
                offset: self.written,
                max: self.limits.max_depth,
            });
        }
        self.begin_node(name)?;
        put(&mut self.head, b"directory");
        self.flush_head()?;
        self.open.push(Vec::new());
        self.state = State::Directory;
        Ok(())
    }

    /// Closes the innermost open directory.
    pub fn end_directory(&mut self) -> Result<(), NarError> {
        if self.state != State::Directory {
            return Err(NarError::Usage("end_directory outside a directory"));
        }
        self.open.pop();
        put(&mut self.head, b")");
        self.end_node()
    }

    pub fn symlink(&mut self, name: &[u8], target: &[u8]) -> Result<(), NarError> {
        if target.is_empty() || target.contains(&0) {
            return Err(NarError::Usage(
                "a symlink target must be non-empty and free of NUL",
            ));
        }
        self.check_len("a symlink target", target, self.limits.max_target_len)?;
        self.begin_node(name)?;
        put(&mut self.head, b"symlink");
        put(&mut self.head, b"target");
        put(&mut self.head, target);
        put(&mut self.head, b")");
        self.end_node()
    }

    /// Starts a regular file of `size` bytes; write exactly that many with
    /// [`NarWriter::contents`], then call [`NarWriter::end_file`].
    pub fn begin_file(&mut self, name: &[u8], executable: bool, size: u64) -> Result<(), NarError> {
        self.begin_node(name)?;
        put(&mut self.head, b"regular");
        if executable {
            put(&mut self.head, b"executable");
            put(&mut self.head, b"");
        }
        put(&mut self.head, b"contents");
        self.head.extend_from_slice(&size.to_le_bytes());
        self.flush_head()?;
        self.size = size;
        self.remaining = size;
        self.state = State::File;
        Ok(())
    }

    /// Writes the next bytes of the current file.
    pub fn contents(&mut self, bytes: &[u8]) -> Result<(), NarError> {
        if self.state != State::File {
            return Err(NarError::Usage("file contents outside a file"));
        }
        if bytes.len() as u64 > self.remaining {
            return Err(NarError::Usage("more file contents than the declared size"));
        }
        self.remaining -= bytes.len() as u64;
        self.write(bytes)
    }

    /// Accounts for the next `len` bytes of the current file, which `write` puts into
    /// the output itself (given the output: a caller holding the bytes in a buffer it
    /// can give away, e.g. a verified block, hands it over whole instead of having it
    /// copied). The same checks as [`NarWriter::contents`]; `write` must write exactly
    /// `len` bytes or fail.
    pub fn contents_with(
        &mut self,
        len: usize,
        write: impl FnOnce(&mut W) -> io::Result<()>,
    ) -> Result<(), NarError> {
        if self.state != State::File {
            return Err(NarError::Usage("file contents outside a file"));
        }
        if len as u64 > self.remaining {
            return Err(NarError::Usage("more file contents than the declared size"));
        }
        self.remaining -= len as u64;
        write(&mut self.out).map_err(|e| NarError::Io {
            offset: self.written,
            source: e,
        })?;
        self.written += len as u64;
        Ok(())
    }

    pub fn end_file(&mut self) -> Result<(), NarError> {
        if self.state != State::File {
            return Err(NarError::Usage("end_file outside a file"));
        }
        if self.remaining != 0 {
            return Err(NarError::Usage("less file contents than the declared size"));
        }
        self.head.extend_from_slice(&[0u8; 8][..padding(self.size)]);
        put(&mut self.head, b")");
        self.end_node()
    }

    /// A whole file from a reader that must yield exactly `size` bytes.
    pub fn file(
        &mut self,
        name: &[u8],
        executable: bool,
        size: u64,
        data: &mut impl Read,
    ) -> Result<(), NarError> {
        self.begin_file(name, executable, size)?;
        let mut buf = vec![0u8; (size.min(256 * 1024)) as usize];
        while self.remaining > 0 {
            let want = buf.len().min(self.remaining as usize);
            let n = match data.read(&mut buf[..want]) {
                Ok(0) => return Err(NarError::Usage("file data ended before its declared size")),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NarError::io(self.written, e)),
            };
            self.contents(&buf[..n])?;
        }
        self.end_file()
    }

    /// Checks the archive is complete and returns the output.
    pub fn finish(mut self) -> Result<W, NarError> {
        if self.state != State::Done {
            return Err(NarError::Usage("the archive is not complete"));
        }
        self.out.flush().map_err(|e| NarError::Io {
            offset: self.written,
            source: e,
        })?;
        Ok(self.out)
    }

    fn begin_node(&mut self, name: &[u8]) -> Result<(), NarError> {
        match self.state {
            State::Root => {
                if !name.is_empty() {
                    return Err(NarError::Usage("the root node has no name"));
                }
                put(&mut self.head, MAGIC);
            }
            State::Directory => {
                self.check_len("an entry name", name, self.limits.max_name_len)?;
                if let Err(reason) = check_name(name) {
                    return Err(NarError::BadName {
                        offset: self.written,
                        name: show(name),
                        reason,
                    });
                }
                let prev = self.open.last_mut().expect("inside a directory");
                if !prev.is_empty() && name <= prev.as_slice() {
                    return Err(NarError::Unsorted {
                        offset: self.written,
                        name: show(name),
                        prev: show(prev),
                    });
                }
                prev.clear();
                prev.extend_from_slice(name);
                put(&mut self.head, b"entry");
                put(&mut self.head, b"(");
                put(&mut self.head, b"name");
                put(&mut self.head, name);
                put(&mut self.head, b"node");
            }
            State::File => return Err(NarError::Usage("a node inside a file")),
            State::Done => return Err(NarError::Usage("a second root node")),
        }
        put(&mut self.head, b"(");
        put(&mut self.head, b"type");
        Ok(())
    }

    /// After a node's closing `)` is in `head`: closes the entry if in a directory.
    fn end_node(&mut self) -> Result<(), NarError> {
        if self.open.is_empty() {
            self.state = State::Done;
        } else {
            put(&mut self.head, b")");
            self.state = State::Directory;
        }
        self.flush_head()
    }

    fn check_len(&self, what: &'static str, bytes: &[u8], max: u64) -> Result<(), NarError> {
        if bytes.len() as u64 > max {
            return Err(NarError::TooLong {
                offset: self.written,
                what,
                len: bytes.len() as u64,
                max,
            });
        }
        Ok(())
    }

    fn flush_head(&mut self) -> Result<(), NarError> {
        let head = std::mem::take(&mut self.head);
        let r = self.write(&head);
        self.head = head;
        self.head.clear();
        r
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), NarError> {
        self.out.write_all(bytes).map_err(|e| NarError::Io {
            offset: self.written,
            source: e,
        })?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}
