//! The seed's cost: each NAR compressed on its own with `zstd -19`, as a binary cache
//! publishes it (one `.nar.zst` per item). Every disk and wire figure of the
//! experiment is compared with it.
//!
//! `zstd -19` runs at about 3 MB/s per core, so the sizes are cached: one small file
//! per NAR under `<cache>/zstd19/<sha256 of the NAR>` holding the size, which a rerun
//! reads instead of compressing again (a NAR is named by its bytes, so a cache entry
//! cannot go stale). Compression streams each NAR from its file through one zstd frame
//! at level 19 with the size pledged, as the `zstd -19` command does, several NARs at
//! once (one per core) rather than one NAR over several threads (`zstd -T2`): same
//! bytes out, no frame split.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::corpus::Item;
use crate::Error;

/// The seed's zstd level.
pub const SEED_LEVEL: i32 = 19;

/// The `zstd -19` size of every item, in order, from `cache` (a directory) where it
/// holds one, computed (on every core) and stored there otherwise. `progress` is told
/// the NAR bytes done, from the calling thread.
pub(crate) fn sizes(
    items: &[Item],
    cache: Option<&Path>,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<u64>, Error> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<u64, Error>>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    std::thread::scope(|s| {
        for _ in 0..threads.min(items.len()) {
            let tx = tx.clone();
            let (next, results) = (&next, &results);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { return };
                let r = size_of(item, cache);
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
                let _ = tx.send(item.size);
            });
        }
        drop(tx);
        for n in rx {
            progress(n);
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.expect("every item was done"))
        .collect()
}

fn size_of(item: &Item, cache: Option<&Path>) -> Result<u64, Error> {
    let read_error = |source| Error::ReadNar {
        path: item.path.clone(),
        source,
    };
    let sha = sha256_of(&item.path).map_err(read_error)?;
    let entry = cache.map(|c| c.join("zstd19").join(&sha));
    if let Some(size) = entry.as_deref().and_then(cached) {
        return Ok(size);
    }
    let mut file = File::open(&item.path).map_err(read_error)?;
    let len = file.metadata().map_err(read_error)?.len();
    let mut enc = zstd::stream::Encoder::new(Count(0), SEED_LEVEL).map_err(Error::Zstd)?;
    enc.set_pledged_src_size(Some(len)).map_err(Error::Zstd)?;
    enc.include_contentsize(true).map_err(Error::Zstd)?;
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(read_error)?;
        if n == 0 {
            break;
        }
        enc.write_all(&buf[..n]).map_err(Error::Zstd)?;
    }
    let size = enc.finish().map_err(Error::Zstd)?.0;
    if let Some(entry) = entry {
        // A cache that cannot be written only costs the next run the time again.
        let _ = store(&entry, size);
    }
    Ok(size)
}

fn sha256_of(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The size a cache entry holds, if it holds one that parses.
fn cached(entry: &Path) -> Option<u64> {
    fs::read_to_string(entry).ok()?.trim().parse().ok()
}

/// Writes a cache entry whole or not at all (a temporary file renamed into place).
fn store(entry: &Path, size: u64) -> io::Result<()> {
    let dir = entry.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp: PathBuf = entry.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, format!("{size}\n"))?;
    fs::rename(&tmp, entry)
}

/// A writer that only counts.
pub(crate) struct Count(pub(crate) u64);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_zstd_19_and_cached() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let path = dir.path().join("a.nar");
        fs::write(&path, &data).unwrap();
        let item = Item {
            name: "a.nar".into(),
            path: path.clone(),
            size: data.len() as u64,
            package: "a".into(),
        };
        let cache = dir.path().join("cache");
        let mut done = 0;
        let got = sizes(std::slice::from_ref(&item), Some(&cache), &mut |n| {
            done += n
        })
        .unwrap();
        let want = zstd::bulk::compress(&data, SEED_LEVEL).unwrap().len() as u64;
        assert_eq!(got, [want]);
        assert_eq!(done, data.len() as u64);
        // The cache answers the next run: a planted entry is what comes back.
        let entry = cache.join("zstd19").join(sha256_of(&path).unwrap());
        assert_eq!(cached(&entry), Some(want));
        fs::write(&entry, "12345\n").unwrap();
        assert_eq!(
            sizes(std::slice::from_ref(&item), Some(&cache), &mut |_| {}).unwrap(),
            [12345]
        );
        // A damaged entry is recomputed.
        fs::write(&entry, "garbage").unwrap();
        assert_eq!(sizes(&[item], Some(&cache), &mut |_| {}).unwrap(), [want]);
    }
}
