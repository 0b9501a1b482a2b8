//! The NAR grammar: a streaming, validating reader, a canonical writer, and the
//! filesystem bridges (`dump` a directory as `nix-store --dump` does, `restore` a NAR
//! into a directory as `nix-store --restore` does).
//!
//! A NAR is canonical: the tree alone determines its bytes. The reader therefore
//! accepts only what Nix itself writes, and the writer refuses anything that would
//! produce a NAR Nix would not write, so that `write(read(x)) == x` always holds.

mod copy;
mod dump;
mod error;
mod listing;
mod reader;
mod restore;
mod token;
mod writer;

pub use copy::copy_canonical;
pub use dump::dump_path;
pub use error::NarError;
pub use listing::{list, ListError, ListFormat};
pub use reader::{Event, FileContents, Limits, NarReader};
pub use restore::{restore, RestoreOptions};
pub use writer::NarWriter;

/// Checks that `name` may be a directory entry name in a NAR: not empty, not `.` or
/// `..`, and free of `/` and NUL. Returns the reason when it may not.
pub fn check_name(name: &[u8]) -> Result<(), &'static str> {
    match name {
        b"" => Err("empty name"),
        b"." | b".." => Err("name is `.` or `..`"),
        _ if name.contains(&b'/') => Err("name contains `/`"),
        _ if name.contains(&0) => Err("name contains NUL"),
        _ => Ok(()),
    }
}

/// Shows bytes from the archive (a name, a target) readably in messages, cut at a
/// sensible length so that a hostile 1 MiB name does not become a 1 MiB message.
pub(crate) fn show(bytes: &[u8]) -> String {
    const MAX: usize = 80;
    let cut = bytes.len() > MAX;
    let mut s: String = bytes[..bytes.len().min(MAX)].escape_ascii().to_string();
    if cut {
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests;
