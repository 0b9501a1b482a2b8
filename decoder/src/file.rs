//! Reading one UnixFS file back: a depth-first walk over its `File` nodes and raw
//! leaves, fetching and verifying each block before use, checking every size claim
//! (`filesize`, `blocksizes`) against what the children really hold, and holding no
//! more than one block plus one link list per tree level in memory.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::mpsc;

use narfs_core::block::{BlockSource, RAW};
use narfs_core::dagpb::PBNode;
use narfs_core::unixfs::{DataType, UnixFsData};
use narfs_core::Cid;

use crate::error::{malformed, DecodeError, Problem};
use crate::fetch::{each, fetch, fetch_weighted};
use crate::runs::{first_run, next_part};
use crate::Limits;

/// A dag-pb node with its UnixFS data, decoded strictly.
pub fn unixfs_node(
    cid: &Cid,
    path: &str,
    bytes: &[u8],
) -> Result<(PBNode, UnixFsData), DecodeError> {
    let node = PBNode::decode(bytes).map_err(|e| DecodeError::new(cid, path, e))?;
    let data = node
        .data
        .as_deref()
        .ok_or_else(|| DecodeError::new(cid, path, Problem::NoData))?;
    let fs = UnixFsData::decode(data).map_err(|e| DecodeError::new(cid, path, e))?;
    Ok((node, fs))
}

/// One level of the walk: a node's children and how large each claims to be.
struct Level {
    children: Vec<(Cid, u64)>,
    next: usize,
    /// Children up to here were given to [`BlockSource::will_need`].
    hinted: usize,
    /// Children from `next` up to here are fetched (in `ready`) or being fetched
    /// (in `parts`).
    requested: usize,
}

/// The verified leaves of a part, or why one was refused, in order.
type Part = Vec<Result<Vec<u8>, DecodeError>>;

/// How far ahead of the child being read the source hears of the next ones
/// ([`BlockSource::will_need`]: the store decompresses their packs meanwhile), in
/// bytes the children claim (a 2 MiB pack holds ~2 MiB of them; the store bounds
/// what it does with hints itself) and in children.
const HINT_BYTES: u64 = 8 << 20;
const HINT_BLOCKS: usize = 512;

/// Streams the bytes of the file rooted at a block.
pub struct FileReader<'s, S: BlockSource + Sync> {
    source: &'s S,
    /// Verified raw leaves: the next children of the innermost level, in order.
    ready: VecDeque<Vec<u8>>,
    /// The parts of the leaves after them being fetched on the pool, in order
    /// ([`FileReader::for_each_block`]).
    parts: VecDeque<mpsc::Receiver<Part>>,
    path: String,
    limits: Limits,
    stack: Vec<Level>,
    /// Bytes fetched but not handed out yet, and the position in them.
    pending: Vec<u8>,
    at: usize,
    size: u64,
    executable: bool,
}

impl<'s, S: BlockSource + Sync> FileReader<'s, S> {
    /// Opens the file whose root block is `root` (already fetched and verified).
    pub fn open(
        source: &'s S,
        cid: &Cid,
        block: Vec<u8>,
        path: &str,
        limits: Limits,
    ) -> Result<Self, DecodeError> {
        if cid.codec() == RAW {
            let mut r = Self::empty(source, path, limits);
            r.size = block.len() as u64;
            r.pending = block;
            return Ok(r);
        }
        let (node, fs) = unixfs_node(cid, path, &block)?;
        Self::from_node(source, cid, node, fs, path, limits)
    }

    /// Opens the file whose root dag-pb node the caller has already decoded.
    pub fn from_node(
        source: &'s S,
        cid: &Cid,
        node: PBNode,
        fs: UnixFsData,
        path: &str,
        limits: Limits,
    ) -> Result<Self, DecodeError> {
        if !matches!(fs.data_type, DataType::File | DataType::Raw) {
            return Err(DecodeError::new(
                cid,
                path,
                malformed("expected a UnixFS file"),
            ));
        }
        let mut r = Self::empty(source, path, limits);
        r.executable = fs.mode.is_some_and(|m| m & 0o100 != 0);
        r.size = r.enter(cid, node, fs, None)?;
        if r.size > limits.max_output {
            return Err(DecodeError::new(
                cid,
                path,
                Problem::TooLarge(limits.max_output),
            ));
        }
        Ok(r)
    }

    fn empty(source: &'s S, path: &str, limits: Limits) -> Self {
        FileReader {
            source,
            ready: VecDeque::new(),
            parts: VecDeque::new(),
            path: path.to_string(),
            limits,
            stack: Vec::new(),
            pending: Vec::new(),
            at: 0,
            size: 0,
            executable: false,
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Takes the first leaves of the file, fetched and verified ahead by the walk
    /// (the leading raw children of its node, in order), before any is read; each is
    /// still checked against its size as it is reached.
    pub(crate) fn fetched_ahead(&mut self, leaves: VecDeque<Vec<u8>>) {
        debug_assert!(self.ready.is_empty() && self.stack.len() == 1);
        // They count as requested and hinted: the parts fetched ahead, and the hints,
        // start after them.
        if let Some(level) = self.stack.last_mut() {
            let end = level.next + leaves.len();
            level.requested = level.requested.max(end);
            level.hinted = level.hinted.max(end);
        }
        self.ready = leaves;
    }

    pub fn executable(&self) -> bool {
        self.executable
    }

    /// Checks a `File` node's claims, queues its inline data and its children, and
    /// returns the file size it claims.
    fn enter(
        &mut self,
        cid: &Cid,
        node: PBNode,
        fs: UnixFsData,
        expected: Option<u64>,
    ) -> Result<u64, DecodeError> {
        let bad = |msg: String| DecodeError::new(cid, &self.path, malformed(msg));
        if self.stack.len() >= self.limits.max_file_depth {
            return Err(DecodeError::new(
                cid,
                &self.path,
                Problem::TooDeep(self.limits.max_file_depth),
            ));
        }
        let inline = fs.data.unwrap_or_default();
        if node.links.len() != fs.blocksizes.len() {
            return Err(bad(format!(
                "{} links but {} blocksizes",
                node.links.len(),
                fs.blocksizes.len()
            )));
        }
        // Empty children repeated at every level would let a few blocks make a walk
        // that never ends while producing nothing. An empty child is allowed only
        // alone (narfs wraps an empty executable's leaf so), where a chain of them
        // is bounded by `max_file_depth`.
        if fs.blocksizes.len() > 1 && fs.blocksizes.contains(&0) {
            return Err(bad(format!(
                "a file node of {} children has one that claims 0 bytes",
                fs.blocksizes.len()
            )));
        }
        let children_size = fs
            .blocksizes
            .iter()
            .try_fold(0u64, |a, &b| a.checked_add(b));
        let total = children_size
            .and_then(|c| c.checked_add(inline.len() as u64))
            .ok_or_else(|| bad("sizes overflow".into()))?;
        let claimed = fs.filesize.unwrap_or(total);
        if claimed != total {
            return Err(bad(format!(
                "filesize {claimed} but data and blocksizes add up to {total}"
            )));
        }
        if let Some(e) = expected {
            if e != total {
                return Err(bad(format!("parent says {e} bytes, node holds {total}")));
            }
        }
        let children = node
            .links
            .into_iter()
            .map(|l| l.hash)
            .zip(fs.blocksizes)
            .collect();
        self.stack.push(Level {
            children,
            next: 0,
            hinted: 0,
            requested: 0,
        });
        self.pending = inline;
        self.at = 0;
        Ok(total)
    }

    /// Makes sure unread bytes are pending; false at the end of the file. With a
    /// `scope`, the parts after the leaves at hand are fetched on the pool meanwhile.
    fn fill<'scope>(&mut self, scope: Option<&rayon::Scope<'scope>>) -> Result<bool, DecodeError>
    where
        's: 'scope,
    {
        while self.at == self.pending.len() {
            let Some(level) = self.stack.last_mut() else {
                return Ok(false);
            };
            let Some(&(cid, expected)) = level.children.get(level.next) else {
                self.stack.pop();
                continue;
            };
            if self.ready.is_empty() {
                match self.parts.pop_front() {
                    Some(part) => {
                        let part = part
                            .recv()
                            .expect("a part's job answers unless it panicked");
                        for block in part {
                            self.ready.push_back(block?);
                        }
                    }
                    None => {
                        self.hint();
                        if cid.codec() == RAW {
                            self.prefetch()?;
                        }
                    }
                }
            }
            if let (Some(scope), RAW) = (scope, cid.codec()) {
                self.fetch_ahead(scope);
            }
            let level = self.stack.last_mut().expect("looked at above");
            level.next += 1;
            let block = match self.ready.pop_front() {
                Some(block) => block,
                None => fetch(self.source, &cid, &self.path)?,
            };
            if cid.codec() == RAW {
                if block.len() as u64 != expected {
                    let msg = format!(
                        "raw leaf of {} bytes where the parent says {expected}",
                        block.len()
                    );
                    return Err(DecodeError::new(&cid, &self.path, malformed(msg)));
                }
                self.pending = block;
                self.at = 0;
            } else {
                let (node, fs) = unixfs_node(&cid, &self.path, &block)?;
                if !matches!(fs.data_type, DataType::File | DataType::Raw) {
                    return Err(DecodeError::new(
                        &cid,
                        &self.path,
                        malformed("a file's child is not a file node"),
                    ));
                }
                self.enter(&cid, node, fs, Some(expected))?;
            }
        }
        Ok(true)
    }

    /// Tells the source of the innermost level's children from the next one on, up to
    /// [`HINT_BYTES`] claimed or [`HINT_BLOCKS`] children, each child once; called
    /// once per run read, with no new children too (the store then resumes hints it
    /// deferred while its packs ahead were unread).
    fn hint(&mut self) {
        let Some(level) = self.stack.last_mut() else {
            return;
        };
        let mut claimed = 0u64;
        let end = level.next
            + level.children[level.next..]
                .iter()
                .take(HINT_BLOCKS)
                .take_while(|(_, size)| {
                    claimed = claimed.saturating_add(*size);
                    claimed <= HINT_BYTES
                })
                .count();
        let from = level.hinted.max(level.next);
        let new: Vec<Cid> = level.children[from..end.max(from)]
            .iter()
            .map(|(cid, _)| *cid)
            .collect();
        level.hinted = end.max(from);
        self.source.will_need(&new);
    }

    /// The claimed sizes of the run of raw leaves of the innermost level from child
    /// `from` on.
    fn run_sizes(&self, from: usize) -> Vec<u64> {
        let level = self.stack.last().expect("called with a level");
        level.children[from.min(level.children.len())..]
            .iter()
            .take_while(|(cid, _)| cid.codec() == RAW)
            .take(crate::runs::AHEAD_LEAVES)
            .map(|(_, size)| *size)
            .collect()
    }

    /// Fetches and verifies the first run of raw leaves that starts at the innermost
    /// level's next child, together ([`fetch_weighted`], on both cores); verification
    /// (hashing) is most of decoding's work. The run is [`first_run`]'s.
    fn prefetch(&mut self) -> Result<(), DecodeError> {
        let next = self.stack.last().expect("called with a level").next;
        let n = first_run(&self.run_sizes(next), self.limits.readahead);
        let level = self.stack.last_mut().expect("called with a level");
        let (cids, sizes): (Vec<Cid>, Vec<u64>) =
            level.children[next..next + n].iter().copied().unzip();
        level.requested = next + n;
        for block in fetch_weighted(self.source, &cids, &sizes, &self.path) {
            self.ready.push_back(block?);
        }
        Ok(())
    }

    /// Starts fetching the next parts of the run ([`next_part`]), each one job on the
    /// pool within `scope`, its answer sent back in order; hints the source of what
    /// follows first.
    fn fetch_ahead<'scope>(&mut self, scope: &rayon::Scope<'scope>)
    where
        's: 'scope,
    {
        let mut hinted = false;
        loop {
            let level = self.stack.last().expect("called with a level");
            let (next, requested) = (level.next, level.requested.max(level.next));
            let ahead: Vec<u64> = level.children[next..requested]
                .iter()
                .map(|(_, size)| *size)
                .collect();
            let n = next_part(&ahead, &self.run_sizes(requested), self.limits.readahead);
            if n == 0 {
                return;
            }
            if !hinted {
                self.hint();
                hinted = true;
            }
            let level = self.stack.last_mut().expect("called with a level");
            let cids: Vec<Cid> = level.children[requested..requested + n]
                .iter()
                .map(|(cid, _)| *cid)
                .collect();
            level.requested = requested + n;
            let (tx, rx) = mpsc::sync_channel(1);
            let (source, path) = (self.source, self.path.clone());
            scope.spawn(move |_| {
                // One part, one hash call: its leaves fill the wide kernel together.
                let _ = tx.send(each(source, &cids, &path));
            });
            self.parts.push_back(rx);
        }
    }

    /// The next bytes of the file, or an empty slice at its end.
    pub fn next_bytes(&mut self) -> Result<&[u8], DecodeError> {
        if !self.fill(None)? {
            return Ok(&[]);
        }
        let from = self.at;
        self.at = self.pending.len();
        Ok(&self.pending[from..])
    }
}

impl<'s, S: BlockSource + Sync> FileReader<'s, S> {
    /// Hands every block of the file not read yet to `f`, in order (those
    /// [`next_block`](Self::next_block) gives), while the leaves after those at hand
    /// are fetched and verified on rayon's pool in parts (`decoder/src/runs.rs`): one part
    /// is written while the next is hashed, 16 leaves at once in the wide kernel. On a
    /// thread of a rayon pool (which must not block waiting for its pool) it reads as
    /// `next_block` does.
    pub fn for_each_block(
        mut self,
        mut f: impl FnMut(Vec<u8>) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        // A one-leaf file (most of a NAR of small files) has nothing to fetch.
        if self.stack.is_empty() || rayon::current_thread_index().is_some() {
            while let Some(block) = self.next_block()? {
                f(block)?;
            }
            return Ok(());
        }
        rayon::in_place_scope(|scope| {
            while let Some(block) = self.block_in(Some(scope))? {
                f(block)?;
            }
            Ok(())
        })
    }

    /// The next bytes of the file in a buffer of their own (a verified leaf as it was
    /// read, not copied, when nothing of it was read yet), or `None` at its end.
    pub fn next_block(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        self.block_in(None)
    }

    fn block_in<'scope>(
        &mut self,
        scope: Option<&rayon::Scope<'scope>>,
    ) -> Result<Option<Vec<u8>>, DecodeError>
    where
        's: 'scope,
    {
        if !self.fill(scope)? {
            return Ok(None);
        }
        let block = match self.at {
            0 => std::mem::take(&mut self.pending),
            at => self.pending.split_off(at),
        };
        self.pending.clear();
        self.at = 0;
        Ok(Some(block))
    }
}

impl<S: BlockSource + Sync> Read for FileReader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.fill(None).map_err(io::Error::other)? {
            return Ok(0);
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
