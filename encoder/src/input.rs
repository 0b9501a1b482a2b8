//! The NAR an encode reads, from a file, stdin or a directory, which the fallback can
//! read again from its start: a file is reopened, stdin or any other input that is
//! not a regular file (a named pipe, `/dev/stdin`, `<(…)`), which cannot seek, is
//! spooled to an unnamed temporary file first, a directory is serialised again by a
//! second thread.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use narfs_core::nar::{dump_path, NarError};

/// Why the input cannot be opened or read again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// stdin could not be spooled to a temporary file.
    #[error("cannot read stdin")]
    Stdin(#[source] io::Error),
    /// The path could not be opened.
    #[error("cannot open {}", path.display())]
    Open {
        /// The path given.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A pipe or device given by path could not be spooled to a temporary file.
    #[error("cannot read {}", path.display())]
    Spool {
        /// The path given.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Reading it again from the start failed.
    #[error("cannot read the input again")]
    Reopen(#[source] io::Error),
}

/// The NAR to encode; it can be read again from the start, for the fallback.
pub enum NarInput {
    /// A NAR file, or stdin or a pipe spooled to an unnamed temporary file.
    File(File),
    /// A directory, serialised on the fly by a second thread; its error, if any, is
    /// the real cause of the truncated NAR the encoder then sees.
    Dir(PathBuf, Option<JoinHandle<Result<(), NarError>>>),
}

impl NarInput {
    /// `path` as given on the command line: `-` for stdin, a directory, or a NAR file.
    pub fn open(path: &Path) -> Result<NarInput, InputError> {
        if path == Path::new("-") {
            return spool(&mut io::stdin().lock()).map_err(InputError::Stdin);
        }
        let open = |source| InputError::Open {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(open)?;
        if meta.is_dir() {
            return Ok(NarInput::Dir(path.to_path_buf(), None));
        }
        let mut file = File::open(path).map_err(open)?;
        if meta.is_file() {
            return Ok(NarInput::File(file));
        }
        spool(&mut file).map_err(|source| InputError::Spool {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The NAR file in memory, mapped (read-only, shared with the page cache), for
    /// [`crate::encode_mapped`]; `None` for a directory, an empty file, or where the
    /// system refuses to map it (then read it with [`NarInput::reader`]).
    ///
    /// A mapped file that shrinks while it is encoded (another process truncates it)
    /// ends the process with a one-line error and status 1 ([`crate::MappedNar`]); stdin
    /// and pipes are spooled to an unnamed temporary file nobody else can reach.
    pub fn map(&self) -> Option<crate::MappedNar> {
        let NarInput::File(f) = self else {
            return None;
        };
        if f.metadata().ok()?.len() == 0 {
            return None;
        }
        // SAFETY: the mapping is only read, and lives no longer than the encode that
        // reads it; a file shrinking under it is caught by its guard.
        let map = unsafe { memmap2::Mmap::map(f) }.ok()?;
        // Read once, front to back, by the NarHash thread and the parser.
        let _ = map.advise(memmap2::Advice::Sequential);
        crate::MappedNar::guarded(map)
    }

    /// The NAR from its start, each time it is asked for.
    pub fn reader(&mut self) -> Result<Box<dyn Read + Send>, InputError> {
        match self {
            NarInput::File(f) => {
                let mut f = f.try_clone().map_err(InputError::Reopen)?;
                f.rewind().map_err(InputError::Reopen)?;
                Ok(Box::new(f))
            }
            NarInput::Dir(dir, dumper) => {
                let (reader, writer) = io::pipe().map_err(InputError::Reopen)?;
                let dir = dir.clone();
                *dumper = Some(std::thread::spawn(move || {
                    dump_path(&dir, writer).map(drop)
                }));
                Ok(Box::new(reader))
            }
        }
    }

    /// Why the last directory dump failed, if it did for a reason of its own (not
    /// because the encoder stopped reading). The encoder has dropped the pipe's
    /// reading end by now, so the dump thread ends promptly.
    pub fn dump_error(&mut self) -> Option<NarError> {
        let NarInput::Dir(_, dumper) = self else {
            return None;
        };
        match dumper.take()?.join() {
            Ok(Err(NarError::Io { source, .. })) if source.kind() == io::ErrorKind::BrokenPipe => {
                None
            }
            Ok(Err(e)) => Some(e),
            Ok(Ok(())) | Err(_) => None,
        }
    }
}

/// What `from` gives until its end, in an unnamed temporary file (gone when closed),
/// which the fallback can rewind.
fn spool(from: &mut dyn Read) -> io::Result<NarInput> {
    let mut spool = tempfile::tempfile()?;
    io::copy(from, &mut spool)?;
    Ok(NarInput::File(spool))
}
