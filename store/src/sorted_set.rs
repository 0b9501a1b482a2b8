//! A set of byte strings (CIDs) too large for memory: an external sort. Keys are
//! gathered in a buffer of bounded size; a full buffer is sorted, deduplicated and
//! spilled to a run file in a directory of the store's own (never the system temp
//! dir: a store of 10⁷ blocks spills ~0.5 GB, which belongs with the store's disk);
//! the runs are then merged, at most [`FAN_IN`] at a time, into one sorted file of
//! distinct keys that can be read as often as needed ([`SortedSet::iter`]).
//!
//! Memory: the buffer's budget, plus one read buffer of [`RUN_BUFFER`] bytes per run
//! being merged. Not the `extsort` crate: it serialises through its own trait into
//! the system temp dir, has no dedup, and yields its result once; here gc joins the
//! result with the block table twice (check, then sweep) and the keys are plain bytes.

use std::collections::BinaryHeap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use narfs_core::varint;

use crate::Error;

/// Runs merged at once (each holds a [`RUN_BUFFER`] read buffer).
pub(crate) const FAN_IN: usize = 64;
const RUN_BUFFER: usize = 64 << 10;
/// The longest key a run holds (a CID is < 100 bytes; LMDB's keys are ≤ 511).
const MAX_KEY: u64 = 511;
/// What each buffered key costs beyond its bytes (its range in the arena).
const PER_KEY: usize = 16;

/// Gathers keys, spilling sorted runs to `dir` whenever `budget` bytes are buffered.
pub(crate) struct Spiller {
    dir: PathBuf,
    budget: usize,
    arena: Vec<u8>,
    ranges: Vec<(u32, u32)>,
    runs: Vec<PathBuf>,
    next: u64,
    /// Keys pushed (duplicates included), for reports and tests.
    pub(crate) pushed: u64,
}

/// The sorted, distinct keys: one file in the spill directory.
pub(crate) struct SortedSet {
    path: PathBuf,
    /// How many distinct keys.
    pub(crate) len: u64,
    /// How many runs were spilled before the merge (1 when all fit in the buffer).
    pub(crate) runs: usize,
}

impl Spiller {
    /// A spiller writing its runs into `dir` (created empty by the caller).
    pub(crate) fn new(dir: &Path, budget: usize) -> Spiller {
        Spiller {
            dir: dir.to_path_buf(),
            budget: budget.max(1),
            arena: Vec::new(),
            ranges: Vec::new(),
            runs: Vec::new(),
            next: 0,
            pushed: 0,
        }
    }

    pub(crate) fn push(&mut self, key: &[u8]) -> Result<(), Error> {
        let start = self.arena.len();
        self.arena.extend_from_slice(key);
        self.ranges.push((start as u32, key.len() as u32));
        self.pushed += 1;
        if self.arena.len() + self.ranges.len() * PER_KEY >= self.budget
            || self.arena.len() > u32::MAX as usize / 2
        {
            self.spill()?;
        }
        Ok(())
    }

    fn new_path(&mut self) -> PathBuf {
        self.next += 1;
        self.dir.join(format!("run-{}", self.next))
    }

    /// Sorts and deduplicates the buffer into a run file.
    fn spill(&mut self) -> Result<(), Error> {
        if self.ranges.is_empty() {
            return Ok(());
        }
        let path = self.new_path();
        let arena = &self.arena;
        let key = |&(s, l): &(u32, u32)| &arena[s as usize..(s + l) as usize];
        self.ranges.sort_unstable_by(|a, b| key(a).cmp(key(b)));
        self.ranges.dedup_by(|a, b| key(a) == key(b));
        let mut w = RunWriter::create(&path)?;
        for r in &self.ranges {
            w.put(key(r))?;
        }
        w.finish()?;
        self.runs.push(path);
        self.arena.clear();
        self.ranges.clear();
        Ok(())
    }

    /// Spills what is left and merges every run into one sorted set of distinct keys.
    pub(crate) fn finish(mut self) -> Result<SortedSet, Error> {
        self.spill()?;
        let spilled = self.runs.len();
        let mut runs = std::mem::take(&mut self.runs);
        // Merge passes, FAN_IN runs at a time, until one run is left.
        loop {
            if runs.len() <= 1 {
                let path = match runs.pop() {
                    Some(p) => p,
                    None => {
                        let p = self.new_path();
                        RunWriter::create(&p)?.finish()?;
                        p
                    }
                };
                let len = count(&path)?;
                return Ok(SortedSet {
                    path,
                    len,
                    runs: spilled,
                });
            }
            let group: Vec<PathBuf> = runs.drain(..runs.len().min(FAN_IN)).collect();
            let out = self.new_path();
            let mut w = RunWriter::create(&out)?;
            let mut merged = Merge::open(&group)?;
            while let Some(k) = merged.next_key()? {
                w.put(&k)?;
            }
            w.finish()?;
            for p in &group {
                std::fs::remove_file(p).map_err(Error::io(p))?;
            }
            runs.push(out);
        }
    }
}

impl SortedSet {
    /// The keys in ascending order, each once.
    pub(crate) fn iter(&self) -> Result<RunReader, Error> {
        RunReader::open(&self.path)
    }
}

fn count(path: &Path) -> Result<u64, Error> {
    let mut r = RunReader::open(path)?;
    let mut n = 0;
    while r.next_key()?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// A run file being written: each key as a varint length and its bytes.
struct RunWriter {
    path: PathBuf,
    out: BufWriter<File>,
    len: Vec<u8>,
}

impl RunWriter {
    fn create(path: &Path) -> Result<RunWriter, Error> {
        let f = crate::nofollow::open(path, OpenOptions::new().write(true).create_new(true))?;
        Ok(RunWriter {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(RUN_BUFFER, f),
            len: Vec::new(),
        })
    }

    fn put(&mut self, key: &[u8]) -> Result<(), Error> {
        self.len.clear();
        varint::put(&mut self.len, key.len() as u64);
        self.out
            .write_all(&self.len)
            .and_then(|_| self.out.write_all(key))
            .map_err(Error::io(&self.path))
    }

    fn finish(mut self) -> Result<(), Error> {
        self.out.flush().map_err(Error::io(&self.path))
    }
}

/// Reads a run's keys in order.
pub(crate) struct RunReader {
    path: PathBuf,
    input: BufReader<File>,
}

impl RunReader {
    fn open(path: &Path) -> Result<RunReader, Error> {
        let f = crate::nofollow::open(path, OpenOptions::new().read(true))?;
        Ok(RunReader {
            path: path.to_path_buf(),
            input: BufReader::with_capacity(RUN_BUFFER, f),
        })
    }

    fn damaged(&self, problem: &str) -> Error {
        Error::io(&self.path)(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            problem.to_string(),
        ))
    }

    /// The next key, or `None` at the end of the run.
    pub(crate) fn next_key(&mut self) -> Result<Option<Vec<u8>>, Error> {
        let buf = self.input.fill_buf().map_err(Error::io(&self.path))?;
        if buf.is_empty() {
            return Ok(None);
        }
        // A key's length is one or two varint bytes (≤ 511); read them one by one.
        let mut head = Vec::with_capacity(2);
        let len = loop {
            let mut b = [0u8; 1];
            std::io::Read::read_exact(&mut self.input, &mut b)
                .map_err(|_| self.damaged("a run ends inside a key's length"))?;
            head.push(b[0]);
            match varint::decode(&head, 2) {
                Ok(Some((n, _))) if n <= MAX_KEY => break n as usize,
                Ok(None) => continue,
                _ => return Err(self.damaged("a run holds a bad key length")),
            }
        };
        let mut key = vec![0; len];
        std::io::Read::read_exact(&mut self.input, &mut key)
            .map_err(|_| self.damaged("a run ends inside a key"))?;
        Ok(Some(key))
    }
}

/// A k-way merge of sorted runs, duplicates dropped.
struct Merge {
    readers: Vec<RunReader>,
    heap: BinaryHeap<std::cmp::Reverse<(Vec<u8>, usize)>>,
    last: Option<Vec<u8>>,
}

impl Merge {
    fn open(paths: &[PathBuf]) -> Result<Merge, Error> {
        let mut readers = Vec::with_capacity(paths.len());
        let mut heap = BinaryHeap::with_capacity(paths.len());
        for (i, p) in paths.iter().enumerate() {
            let mut r = RunReader::open(p)?;
            if let Some(k) = r.next_key()? {
                heap.push(std::cmp::Reverse((k, i)));
            }
            readers.push(r);
        }
        Ok(Merge {
            readers,
            heap,
            last: None,
        })
    }

    fn next_key(&mut self) -> Result<Option<Vec<u8>>, Error> {
        while let Some(std::cmp::Reverse((k, i))) = self.heap.pop() {
            if let Some(n) = self.readers[i].next_key()? {
                self.heap.push(std::cmp::Reverse((n, i)));
            }
            if self.last.as_ref() != Some(&k) {
                self.last = Some(k.clone());
                return Ok(Some(k));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sorted(keys: &[Vec<u8>], budget: usize) -> (Vec<Vec<u8>>, usize) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spiller::new(dir.path(), budget);
        for k in keys {
            s.push(k).unwrap();
        }
        let set = s.finish().unwrap();
        let mut it = set.iter().unwrap();
        let mut out = Vec::new();
        while let Some(k) = it.next_key().unwrap() {
            out.push(k);
        }
        assert_eq!(set.len, out.len() as u64);
        (out, set.runs)
    }

    /// A budget of a few keys spills hundreds of runs, merged in more than one pass
    /// (more than FAN_IN runs): the result is the sorted distinct keys all the same.
    #[test]
    fn many_runs_merge_into_the_sorted_distinct_keys() {
        let keys: Vec<Vec<u8>> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2654435761) % 3000).to_be_bytes().to_vec())
            .collect();
        let (out, runs) = sorted(&keys, 4 * (4 + PER_KEY));
        assert!(runs > FAN_IN, "{runs} runs");
        let mut want = keys.clone();
        want.sort();
        want.dedup();
        assert_eq!(out, want);
    }

    #[test]
    fn nothing_pushed_is_an_empty_set() {
        assert_eq!(sorted(&[], 100), (vec![], 0));
    }

    proptest! {
        #[test]
        fn any_keys_any_budget(keys in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..300), 0..200), budget in 1usize..4000) {
            let (out, _) = sorted(&keys, budget);
            let mut want = keys.clone();
            want.sort();
            want.dedup();
            prop_assert_eq!(out, want);
        }
    }
}
