//! Opening inputs and outputs by the CLI's conventions: `-` is stdin/stdout, and a
//! named output file appears only once it is complete.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use narfs_core::direct::DirectFile;

pub fn open_input(path: &Path) -> Result<Box<dyn Read>> {
    if path == Path::new("-") {
        Ok(Box::new(io::stdin().lock()))
    } else {
        let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Box::new(f))
    }
}

/// An output that is stdout, or a file written (around the page cache: [`DirectFile`])
/// under a temporary name and renamed into place by [`Output::commit`]; dropped
/// uncommitted, it leaves nothing behind.
pub enum Output {
    /// Standard output as a file of its own (a duplicate of descriptor 1), not
    /// `io::Stdout`: that one is line-buffered whatever it is, so every 1 MiB piece
    /// of a NAR was searched for its last newline and cut there into two `write`s
    /// (2,461 writes for a 1.2 GiB NAR where 1,234 do). A file is also `Send`: an
    /// output may be written from another thread (`narfs_decoder::write_behind`).
    Stdout(BufWriter<File>),
    Device(BufWriter<File>),
    File {
        tmp: tempfile_lite::Temp,
        out: DirectFile,
        dest: PathBuf,
    },
}

impl Output {
    pub fn create(path: Option<&Path>) -> Result<Output> {
        match path {
            None => {
                let stdout = io::stdout();
                // Whatever was printed before goes out before this output's bytes.
                stdout.lock().flush().context("cannot write to stdout")?;
                let fd = stdout
                    .as_fd()
                    .try_clone_to_owned()
                    .context("cannot duplicate stdout")?;
                let file = File::from(fd);
                widen_pipe(&file);
                Ok(Output::Stdout(BufWriter::with_capacity(256 * 1024, file)))
            }
            Some(p) if p == Path::new("-") => Output::create(None),
            // A device or FIFO (`/dev/stdout`, `/dev/null`) is written through: renaming
            // a temporary file over it would replace the device.
            Some(dest) if std::fs::metadata(dest).is_ok_and(|m| !m.is_file() && !m.is_dir()) => {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(dest)
                    .with_context(|| format!("cannot open {}", dest.display()))?;
                widen_pipe(&file);
                Ok(Output::Device(BufWriter::with_capacity(256 * 1024, file)))
            }
            // Renaming over a directory fails only at the end: refuse before any work.
            Some(dest) if std::fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir()) => {
                anyhow::bail!(
                    "cannot write output to {}: it is a directory",
                    dest.display()
                )
            }
            Some(dest) => {
                let (tmp, file) = tempfile_lite::Temp::beside(dest)?;
                Ok(Output::File {
                    tmp,
                    out: DirectFile::new(file),
                    dest: dest.to_path_buf(),
                })
            }
        }
    }

    /// The size of one write this output takes best: a direct file's request size
    /// ([`narfs_core::direct::PIECE`], written without a copy when it comes aligned),
    /// else 1 MiB (a widened pipe's size, see [`widen_pipe`]).
    pub fn write_size(&self) -> usize {
        match self {
            Output::File { .. } => narfs_core::direct::PIECE,
            Output::Stdout(_) | Output::Device(_) => 1 << 20,
        }
    }

    /// Whether whole buffers may be gathered into one write (`writev`): all but a
    /// direct file, which writes aligned pieces without a copy and would copy
    /// anything else into its own buffer.
    pub fn gathers(&self) -> bool {
        !matches!(self, Output::File { .. })
    }

    pub fn commit(self) -> Result<()> {
        match self {
            Output::Stdout(mut w) => w.flush().context("cannot write to stdout"),
            Output::Device(mut w) => w.flush().context("cannot write output"),
            Output::File { tmp, out, dest } => {
                let file = out.finish().context("cannot write output")?;
                file.sync_all().ok();
                tmp.persist(&dest)
            }
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write(buf),
            Output::Device(w) => w.write(buf),
            Output::File { out, .. } => out.write(buf),
        }
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write_vectored(bufs),
            Output::Device(w) => w.write_vectored(bufs),
            Output::File { out, .. } => out.write_vectored(bufs),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Output::Stdout(w) => w.write_all(buf),
            Output::Device(w) => w.write_all(buf),
            Output::File { out, .. } => out.write_all(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(w) => w.flush(),
            Output::Device(w) => w.flush(),
            Output::File { out, .. } => out.flush(),
        }
    }
}

/// Grows a pipe's buffer when `fd` is one (Linux's default is 64 KiB) to the most an
/// unprivileged process may ask for (`/proc/sys/fs/pipe-max-size`, 1 MiB by default),
/// at most [`PIPE_MAX`]: a NAR streamed into a pipe then moves in 1 MiB writes with a
/// sixteenth of the context switches between writer and reader. Best effort: a pipe
/// left as it is still works.
pub fn widen_pipe(fd: &impl std::os::fd::AsRawFd) {
    let fd = fd.as_raw_fd();
    let max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(1 << 20)
        .min(PIPE_MAX);
    // SAFETY: fstat and fcntl on a descriptor we hold, with a valid stat buffer.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFIFO {
            #[cfg(target_os = "linux")]
            libc::fcntl(fd, libc::F_SETPIPE_SZ, max as libc::c_int);
        }
    }
}

/// The largest pipe buffer asked for: a piece of the writer behind the decoder (1 MiB
/// and one leaf) fits; more would only hold more of the reader's unread bytes in the
/// kernel.
const PIPE_MAX: usize = 2 << 20;

/// Creates `dest` holding `bytes`, with permissions `mode`, only if nothing is there:
/// written whole under a temporary name beside it, then linked into place (`link(2)`
/// fails rather than replaces), so `dest` is never partial and never overwritten.
pub fn write_new(dest: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let (tmp, mut file) = tempfile_lite::Temp::beside(dest)?;
    let p = tmp.path();
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", p.display()))?;
    std::fs::hard_link(p, dest).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => {
            anyhow::anyhow!("{} already exists: not overwritten", dest.display())
        }
        _ => anyhow::Error::new(e).context(format!("cannot create {}", dest.display())),
    })
    // `tmp` is removed on drop, `dest` stays.
}

/// A closed stdout (e.g. `narfs nar dump x | head`) is not an error worth a message.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

mod tempfile_lite {
    //! A temporary file beside its destination, removed on drop unless persisted.
    use std::fs::{self, File, OpenOptions};
    use std::path::{Path, PathBuf};

    use anyhow::{Context, Result};

    pub struct Temp(Option<PathBuf>);

    impl Temp {
        pub fn beside(dest: &Path) -> Result<(Temp, File)> {
            let dir = match dest.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let base = dest
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            for i in 0..1000 {
                let p = dir.join(format!(".{base}.narfs-tmp-{}-{i}", std::process::id()));
                match OpenOptions::new().write(true).create_new(true).open(&p) {
                    Ok(f) => return Ok((Temp(Some(p)), f)),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => {
                        return Err(e).with_context(|| format!("cannot create {}", p.display()))
                    }
                }
            }
            anyhow::bail!("cannot create a temporary file in {}", dir.display())
        }

        pub fn path(&self) -> &Path {
            self.0.as_deref().expect("not persisted")
        }

        pub fn persist(mut self, dest: &Path) -> Result<()> {
            let p = self.0.as_ref().expect("not persisted twice");
            fs::rename(p, dest)
                .with_context(|| format!("cannot move output into {}", dest.display()))?;
            // Renamed: nothing is left to remove on drop. On an error, drop removes it.
            self.0 = None;
            Ok(())
        }
    }

    impl Drop for Temp {
        fn drop(&mut self) {
            if let Some(p) = self.0.take() {
                let _ = fs::remove_file(p);
            }
        }
    }
}
