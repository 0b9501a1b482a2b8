//! The streaming NAR reader: pulls entry events out of any `Read`, validating the
//! grammar as it goes and never buffering file contents.

use std::io::{self, BufRead, BufReader, Read};

use super::token::{padding, MAGIC};
use super::{check_name, show, NarError};

/// Bounds on what the reader accepts, checked before anything is allocated.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest entry name, in bytes. Linux's `NAME_MAX` is 255; other systems allow
    /// more, so the default is generous.
    pub max_name_len: u64,
    /// Longest symlink target, in bytes (`PATH_MAX` is 4096).
    pub max_target_len: u64,
    /// Deepest directory nesting.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_name_len: 4096,
            max_target_len: 4096,
            max_depth: 4096,
        }
    }
}

/// One step through the archive, in NAR order. `name` is the entry's name in its
/// parent directory, empty for the root node.
#[derive(Debug)]
pub enum Event<'a, R: Read> {
    /// A directory opens; its entries follow, then [`Event::DirectoryEnd`].
    Directory { name: &'a [u8] },
    /// The most recently opened directory closes.
    DirectoryEnd,
    /// A regular file. Its bytes can be read from `contents`; whatever is left unread
    /// is skipped by the next call to [`NarReader::next`].
    File {
        name: &'a [u8],
        executable: bool,
        size: u64,
        contents: FileContents<'a, R>,
    },
    /// A symbolic link.
    Symlink { name: &'a [u8], target: &'a [u8] },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Start,
    Node,
    File,
    Directory,
    AfterNode,
    Done,
    Failed,
}

/// The reader. Call [`NarReader::next`] until it returns `Ok(None)`; only then has the
/// whole archive (including the absence of trailing bytes) been validated.
///
/// ```
/// use std::io::Read;
/// use narfs_core::nar::{Event, NarReader, NarWriter};
///
/// let mut w = NarWriter::new(Vec::new());
/// w.directory(b"")?;
/// w.file(b"hello", true, 5, &mut &b"world"[..])?;
/// w.symlink(b"link", b"hello")?;
/// w.end_directory()?;
/// let nar = w.finish()?;
///
/// let mut r = NarReader::new(&nar[..]);
/// let mut seen = Vec::new();
/// while let Some(event) = r.next()? {
///     match event {
///         Event::Directory { name } => seen.push(format!("dir {name:?}")),
///         Event::DirectoryEnd => seen.push("end".into()),
///         Event::File { name, executable, mut contents, .. } => {
///             let mut text = String::new();
///             contents.read_to_string(&mut text)?;
///             seen.push(format!("file {} {executable} {text}", String::from_utf8_lossy(name)));
///         }
///         Event::Symlink { name, target } => seen.push(format!(
///             "link {} -> {}",
///             String::from_utf8_lossy(name),
///             String::from_utf8_lossy(target)
///         )),
///     }
/// }
/// assert_eq!(seen, ["dir []", "file hello true world", "link link -> hello", "end"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct NarReader<R: Read> {
    input: BufReader<R>,
    offset: u64,
    limits: Limits,
    state: State,
    /// Previous entry name of each open directory (empty before the first entry).
    open: Vec<Vec<u8>>,
    name: Vec<u8>,
    target: Vec<u8>,
    /// Unread bytes of the current file's contents.
    remaining: u64,
    size: u64,
    scratch: [u8; 16],
}

impl<R: Read> NarReader<R> {
    pub fn new(input: R) -> Self {
        Self::with_limits(input, Limits::default())
    }

    pub fn with_limits(input: R, limits: Limits) -> Self {
        Self::with_buffer(input, limits, 256 * 1024)
    }

    /// A reader whose buffer holds `capacity` bytes: a small one for an input in
    /// memory whose file contents are skipped ([`FileContents::skip`]), not read.
    pub fn with_buffer(input: R, limits: Limits, capacity: usize) -> Self {
        NarReader {
            input: BufReader::with_capacity(capacity, input),
            offset: 0,
            limits,
            state: State::Start,
            open: Vec::new(),
            name: Vec::new(),
            target: Vec::new(),
            remaining: 0,
            size: 0,
            scratch: [0; 16],
        }
    }

    /// The input, once the archive has been read to its end.
    pub fn into_inner(self) -> R {
        self.input.into_inner()
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Current directory depth (0 at the root).
    pub fn depth(&self) -> usize {
        self.open.len()
    }

    /// The next event, or `None` once the archive has ended cleanly.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Event<'_, R>>, NarError> {
        match self.step() {
            Ok(None) => Ok(None),
            Ok(Some(kind)) => Ok(Some(self.event(kind))),
            Err(e) => {
                self.state = State::Failed;
                Err(e)
            }
        }
    }

    fn event(&mut self, kind: Kind) -> Event<'_, R> {
        match kind {
            Kind::Directory => Event::Directory { name: &self.name },
            Kind::DirectoryEnd => Event::DirectoryEnd,
            Kind::Symlink => Event::Symlink {
                name: &self.name,
                target: &self.target,
            },
            Kind::File(executable) => {
                let size = self.size;
                let NarReader {
                    input,
                    offset,
                    remaining,
                    name,
                    ..
                } = self;
                Event::File {
                    name,
                    executable,
                    size,
                    contents: FileContents {
                        input,
                        offset,
                        remaining,
                    },
                }
            }
        }
    }

    fn step(&mut self) -> Result<Option<Kind>, NarError> {
        loop {
            match self.state {
                State::Start => {
                    let at = self.offset;
                    let n = self.read_len(at)?;
                    if n != MAGIC.len() as u64 {
                        return Err(NarError::BadMagic);
                    }
                    let mut buf = [0u8; 16];
                    self.read_exact_padded(&mut buf[..MAGIC.len()], "the magic")?;
                    if &buf[..MAGIC.len()] != MAGIC {
                        return Err(NarError::BadMagic);
                    }
                    self.name.clear();
                    self.state = State::Node;
                }
                State::Node => return self.node().map(Some),
                State::File => {
                    self.skip_contents()?;
                    self.expect(b")", "`)` after the file contents")?;
                    self.state = State::AfterNode;
                }
                State::Directory => {
                    let at = self.offset;
                    let tok = self.read_small(8, "`entry` or `)`")?;
                    match tok {
                        b"entry" => self.entry_header()?,
                        b")" => {
                            self.open.pop();
                            self.state = State::AfterNode;
                            return Ok(Some(Kind::DirectoryEnd));
                        }
                        other => return Err(unexpected(at, "`entry` or `)`", other)),
                    }
                }
                State::AfterNode => {
                    if self.open.is_empty() {
                        let at = self.offset;
                        if !self.input.fill_buf().map_err(|e| io(at, e))?.is_empty() {
                            return Err(NarError::Trailing { offset: at });
                        }
                        self.state = State::Done;
                        return Ok(None);
                    }
                    self.expect(b")", "`)` closing the directory entry")?;
                    self.state = State::Directory;
                }
                State::Done => return Ok(None),
                State::Failed => {
                    return Err(NarError::Usage("the reader already failed"));
                }
            }
        }
    }

    /// Reads `( type ...` up to the point where the node's event can be returned.
    fn node(&mut self) -> Result<Kind, NarError> {
        self.expect(b"(", "`(` opening a node")?;
        self.expect(b"type", "`type`")?;
        let at = self.offset;
        let kind = self.read_small(9, "a node type")?;
        match kind {
            b"regular" => {
                let at = self.offset;
                let mut executable = false;
                let mut tok = self.read_small(10, "`executable` or `contents`")?;
                if tok == b"executable" {
                    executable = true;
                    self.expect(b"", "the empty string after `executable`")?;
                    let at = self.offset;
                    tok = self.read_small(10, "`contents`")?;
                    if tok != b"contents" {
                        return Err(unexpected(at, "`contents`", tok));
                    }
                } else if tok != b"contents" {
                    return Err(unexpected(at, "`executable` or `contents`", tok));
                }
                self.size = self.read_u64("the file size")?;
                self.remaining = self.size;
                self.state = State::File;
                Ok(Kind::File(executable))
            }
            b"symlink" => {
                self.expect(b"target", "`target`")?;
                let at = self.offset;
                let mut target = std::mem::take(&mut self.target);
                let r =
                    self.read_string(&mut target, self.limits.max_target_len, "a symlink target");
                self.target = target;
                r?;
                if self.target.is_empty() {
                    return Err(NarError::EmptyTarget { offset: at });
                }
                if self.target.contains(&0) {
                    return Err(NarError::UnexpectedToken {
                        offset: at,
                        expected: "a symlink target without NUL bytes",
                        found: format!("\"{}\"", show(&self.target)),
                    });
                }
                self.expect(b")", "`)` after the symlink target")?;
                self.state = State::AfterNode;
                Ok(Kind::Symlink)
            }
            b"directory" => {
                if self.open.len() >= self.limits.max_depth {
                    return Err(NarError::TooDeep {
                        offset: at,
                        max: self.limits.max_depth,
                    });
                }
                self.open.push(Vec::new());
                self.state = State::Directory;
                Ok(Kind::Directory)
            }
            other => Err(unexpected(at, "`regular`, `symlink` or `directory`", other)),
        }
    }

    /// Reads `( name NAME node` after `entry`, checking the name and its order.
    fn entry_header(&mut self) -> Result<(), NarError> {
        self.expect(b"(", "`(` opening an entry")?;
        self.expect(b"name", "`name`")?;
        let at = self.offset;
        let mut name = std::mem::take(&mut self.name);
        let r = self.read_string(&mut name, self.limits.max_name_len, "an entry name");
        self.name = name;
        r?;
        if let Err(reason) = check_name(&self.name) {
            return Err(NarError::BadName {
                offset: at,
                name: show(&self.name),
                reason,
            });
        }
        let prev = self.open.last_mut().expect("inside a directory");
        if !prev.is_empty() && self.name.as_slice() <= prev.as_slice() {
            return Err(NarError::Unsorted {
                offset: at,
                name: show(&self.name),
                prev: show(prev),
            });
        }
        prev.clear();
        prev.extend_from_slice(&self.name);
        self.expect(b"node", "`node`")?;
        self.state = State::Node;
        Ok(())
    }

    fn skip_contents(&mut self) -> Result<(), NarError> {
        while self.remaining > 0 {
            let at = self.offset;
            let buf = self.input.fill_buf().map_err(|e| io(at, e))?;
            if buf.is_empty() {
                return Err(NarError::Truncated {
                    offset: at,
                    what: "file contents",
                });
            }
            let n = buf
                .len()
                .min(self.remaining.min(usize::MAX as u64) as usize);
            self.input.consume(n);
            self.offset += n as u64;
            self.remaining -= n as u64;
        }
        self.read_padding(self.size)
    }

    fn read_u64(&mut self, what: &'static str) -> Result<u64, NarError> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }

    fn read_len(&mut self, _at: u64) -> Result<u64, NarError> {
        self.read_u64("a string length")
    }

    fn read_exact(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), NarError> {
        let at = self.offset;
        match self.input.read_exact(buf) {
            Ok(()) => {
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(NarError::Truncated { offset: at, what })
            }
            Err(e) => Err(io(at, e)),
        }
    }

    fn read_padding(&mut self, len: u64) -> Result<(), NarError> {
        let pad = padding(len);
        if pad > 0 {
            let at = self.offset;
            let mut b = [0u8; 8];
            self.read_exact(&mut b[..pad], "padding")?;
            if b[..pad].iter().any(|&x| x != 0) {
                return Err(NarError::BadPadding { offset: at });
            }
        }
        Ok(())
    }

    fn read_exact_padded(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), NarError> {
        self.read_exact(buf, what)?;
        self.read_padding(buf.len() as u64)
    }

    /// Reads a short token (at most `max` ≤ 16 bytes) into the scratch buffer.
    fn read_small(&mut self, max: u64, what: &'static str) -> Result<&[u8], NarError> {
        // Fast path: the whole token is already buffered (almost always).
        let buf = self.input.buffer();
        if buf.len() >= 8 {
            let len = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes")).min(max + 1);
            let end = 8 + len as usize;
            let total = end + padding(len);
            if len <= max && buf.len() >= total {
                if buf[end..total].iter().any(|&b| b != 0) {
                    return Err(NarError::BadPadding {
                        offset: self.offset + end as u64,
                    });
                }
                self.scratch[..len as usize].copy_from_slice(&buf[8..end]);
                self.input.consume(total);
                self.offset += total as u64;
                return Ok(&self.scratch[..len as usize]);
            }
        }
        let at = self.offset;
        let len = self.read_u64("a string length")?;
        if len > max {
            return Err(NarError::UnexpectedToken {
                offset: at,
                expected: what,
                found: format!("a string of {len} bytes"),
            });
        }
        let mut scratch = self.scratch;
        self.read_exact_padded(&mut scratch[..len as usize], what)?;
        self.scratch = scratch;
        Ok(&self.scratch[..len as usize])
    }

    fn expect(&mut self, token: &'static [u8], what: &'static str) -> Result<(), NarError> {
        let at = self.offset;
        let found = self.read_small(16, what)?;
        if found != token {
            return Err(unexpected(at, what, found));
        }
        Ok(())
    }

    fn read_string(
        &mut self,
        out: &mut Vec<u8>,
        max: u64,
        what: &'static str,
    ) -> Result<(), NarError> {
        let at = self.offset;
        let len = self.read_u64("a string length")?;
        if len > max {
            return Err(NarError::TooLong {
                offset: at,
                what,
                len,
                max,
            });
        }
        // Grown only as bytes arrive: a limit raised to the extreme must not turn a
        // hostile length into an allocation of that size.
        out.clear();
        out.reserve(len.min(64 * 1024) as usize);
        let start = self.offset;
        let n = (&mut self.input)
            .take(len)
            .read_to_end(out)
            .map_err(|e| io(start, e))?;
        self.offset += n as u64;
        if (n as u64) < len {
            return Err(NarError::Truncated {
                offset: start,
                what,
            });
        }
        self.read_padding(len)
    }
}

enum Kind {
    Directory,
    DirectoryEnd,
    File(bool),
    Symlink,
}

fn unexpected(offset: u64, expected: &'static str, found: &[u8]) -> NarError {
    NarError::UnexpectedToken {
        offset,
        expected,
        found: format!("\"{}\"", show(found)),
    }
}

fn io(offset: u64, source: io::Error) -> NarError {
    NarError::io(offset, source)
}

/// The contents of the current regular file. Reading past them is impossible: the
/// reader returns 0 at the file's end, and an early end of input is an error.
pub struct FileContents<'a, R: Read> {
    input: &'a mut BufReader<R>,
    offset: &'a mut u64,
    remaining: &'a mut u64,
}

impl<R: Read> std::fmt::Debug for FileContents<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileContents")
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl<R: Read> FileContents<'_, R> {
    /// Byte offset in the archive of the next unread byte of the file: before any is
    /// read, where the file's contents start (`nix nar ls --json`'s `narOffset`).
    pub fn nar_offset(&self) -> u64 {
        *self.offset
    }

    /// Bytes of the file not read yet.
    pub fn remaining(&self) -> u64 {
        *self.remaining
    }

    /// Gives the next bytes of the file straight from the reader's buffer (no copy);
    /// call [`FileContents::consume`] with how many were used. Empty at the file's end.
    pub fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if *self.remaining == 0 {
            return Ok(&[]);
        }
        let at = *self.offset;
        let buf = self.input.fill_buf()?;
        if buf.is_empty() {
            return Err(truncated(at));
        }
        let n = buf
            .len()
            .min((*self.remaining).min(usize::MAX as u64) as usize);
        Ok(&buf[..n])
    }

    /// Turns an error from reading these contents back into the reader's own error.
    pub fn error(&self, e: io::Error) -> NarError {
        NarError::io(*self.offset, e)
    }

    pub fn consume(&mut self, n: usize) {
        debug_assert!(n as u64 <= *self.remaining);
        self.input.consume(n);
        *self.offset += n as u64;
        *self.remaining -= n as u64;
    }
}

fn truncated(offset: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        NarError::Truncated {
            offset,
            what: "file contents",
        },
    )
}

impl<R: Read + io::Seek> FileContents<'_, R> {
    /// Passes over the rest of the contents without reading them (for an input in
    /// memory, whose caller takes the bytes from there). A seekable input may end
    /// before them: the caller checks that they are there.
    pub fn skip(&mut self) -> io::Result<()> {
        let n = *self.remaining;
        let step = i64::try_from(n).map_err(io::Error::other)?;
        self.input.seek_relative(step)?;
        *self.offset += n;
        *self.remaining = 0;
        Ok(())
    }
}

impl<R: Read> Read for FileContents<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if *self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min((*self.remaining).min(usize::MAX as u64) as usize);
        let n = self.input.read(&mut buf[..want])?;
        if n == 0 {
            return Err(truncated(*self.offset));
        }
        *self.offset += n as u64;
        *self.remaining -= n as u64;
        Ok(n)
    }
}
