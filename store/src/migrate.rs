//! Moving a store of an older layout into the block table's environment, once, when
//! it is opened: blocks of the first layout (one file per block, `blocks/XY/<cid>` or
//! `<cid>.zst`, as Kubo's flatfs), and root records of the second (one JSON file per
//! record in `roots/`). Each file is read and checked (a block against its CID, a
//! record as JSON with a CID for root), committed, and only then removed; a killed
//! migration resumes where it stopped (a record written twice is the same record). A
//! damaged block file is left where it is and is no block of the store; a record that
//! does not parse is renamed `*.json.bad` and is no record. A shard, block or record
//! file that is a symbolic link is an error: nothing outside the store is read or
//! removed.

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::str::FromStr;

use narfs_core::block::verify;
use narfs_core::Cid;

use crate::blocks::{decompress, Blocks, Packer, MAX_BLOCK};
use crate::roots::RootRecord;
use crate::{nofollow, Error};

/// Records moved per transaction.
const RECORDS_PER_COMMIT: usize = 4096;
/// A JSON record is a few hundred bytes; a longer file is no record of ours.
const MAX_JSON_RECORD: u64 = 1 << 20;

/// Moves every record of `dir/roots/*.json` into the record table; how many.
pub(crate) fn json_roots(dir: &Path, blocks: &Blocks) -> Result<u64, Error> {
    let roots = dir.join("roots");
    match fs::symlink_metadata(&roots) {
        Err(_) => return Ok(0),
        Ok(m) if m.file_type().is_symlink() => return Err(nofollow::refused(&roots)),
        Ok(m) if !m.is_dir() => return Err(Error::NotADirectory { path: roots }),
        Ok(_) => {}
    }
    let mut files = Vec::new();
    for e in fs::read_dir(&roots).map_err(Error::io(&roots))? {
        let path = e.map_err(Error::io(&roots))?.path();
        if path.extension().is_some_and(|x| x == "json") {
            files.push(path);
        }
    }
    files.sort();
    let mut moved = 0;
    for chunk in files.chunks(RECORDS_PER_COMMIT) {
        let mut records = Vec::new();
        for path in chunk {
            let bytes = nofollow::read(path, MAX_JSON_RECORD)?;
            match serde_json::from_slice::<RootRecord>(&bytes) {
                Ok(r) if r.cid().is_ok() => records.push((path, r)),
                _ => {
                    let bad = path.with_extension("json.bad");
                    fs::rename(path, &bad).map_err(Error::io(path))?;
                }
            }
        }
        let mut txn = blocks.write_txn()?;
        for (_, r) in &records {
            // Text files anyone could edit: their NarHash is checked as they decode.
            blocks.tables().add(&mut txn, r, false)?;
        }
        blocks.commit(txn)?;
        moved += records.len() as u64;
        for (p, _) in records {
            fs::remove_file(p).map_err(Error::io(p))?;
        }
    }
    // Gone once empty (a `*.json.bad` keeps it, for whoever looks).
    let _ = fs::remove_dir(&roots);
    Ok(moved)
}

/// Suffix of a compressed block file in the old layout.
const ZST: &str = ".zst";

/// Moves every old-layout block file under `blocks/` into `blocks`; how many.
pub(crate) fn flat_files(dir: &Path, blocks: &Blocks, level: Option<i32>) -> Result<u64, Error> {
    let mut moved = 0;
    let mut packer = Packer::new(level, crate::Codec::Zstd, crate::LZ4_ACCELERATION);
    for shard in fs::read_dir(dir).map_err(Error::io(dir))? {
        let shard = shard.map_err(Error::io(dir))?;
        let kind = shard.file_type().map_err(Error::io(&shard.path()))?;
        let shard = shard.path();
        if kind.is_symlink() {
            return Err(nofollow::refused(&shard));
        }
        if !kind.is_dir() {
            continue;
        }
        let mut done = Vec::new();
        let mut txn = blocks.write_txn()?;
        for e in fs::read_dir(&shard).map_err(Error::io(&shard))? {
            let e = e.map_err(Error::io(&shard))?;
            let path = e.path();
            if e.file_type().map_err(Error::io(&path))?.is_symlink() {
                return Err(nofollow::refused(&path));
            }
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let (stem, compressed) = match name.strip_suffix(ZST) {
                Some(s) => (s.to_owned(), true),
                None => (name.to_string(), false),
            };
            let Ok(cid) = Cid::from_str(&stem) else {
                continue;
            };
            let Ok(bytes) = read(&path, compressed) else {
                continue;
            };
            if verify(&cid, &bytes).is_err() {
                continue;
            }
            blocks.put(&mut txn, &cid, &packer.pack(bytes))?;
            done.push(path);
        }
        blocks.commit(txn)?;
        moved += done.len() as u64;
        for p in done {
            fs::remove_file(&p).map_err(Error::io(&p))?;
        }
        let _ = fs::remove_dir(&shard);
    }
    Ok(moved)
}

/// A block file's bytes (decompressed), read no further than a block can be long.
fn read(path: &Path, compressed: bool) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?
        .take(MAX_BLOCK + 1)
        .read_to_end(&mut bytes)?;
    if !compressed {
        return Ok(bytes);
    }
    decompress(&bytes).map_err(|p| std::io::Error::new(std::io::ErrorKind::InvalidData, p))
}
