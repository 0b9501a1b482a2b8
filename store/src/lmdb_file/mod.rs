//! Reading LMDB's data file (`blocks/data.mdb`) ourselves: by `pread`, with a bounds
//! check on every field, never through LMDB's memory map.
//!
//! Why: LMDB trusts its file. It follows the page numbers, node offsets and sizes it
//! finds in the map without checking them against the file, and it keeps no checksums,
//! so one flipped byte in a page header or a truncated file makes a read touch memory
//! past the end of the map or of the file: SIGSEGV or SIGBUS, which kills the whole
//! process (`narfs serve` for every client). Here a page is read with `pread` (a file
//! that ends early is a short read, an error, not a fault) and checked before use: its
//! header carries the page number asked for and exactly the page type expected at that
//! depth (no bit LMDB sets only in memory: its writer obeys `P_DIRTY`), every node
//! offset and size lies inside the page and no two nodes overlap, every page number it
//! names lies inside the snapshot's pages, keys ascend, and a walk of the whole file
//! reaches no page twice (trees and free list included), finds each value's overflow
//! header matching it (LMDB frees as many pages as that header says) and finds the
//! counts the meta page records.
//!
//! So every read of the store (decode, serve, verify, stats, gc's listing) goes through
//! this module; LMDB's own code walks the tree only in write transactions, after
//! [`View::check`] has walked the whole file in this process (`Blocks::write_txn`).
//! What a check cannot see is damage made to the file *while* a writer runs; a reader
//! is safe from that too, since it re-checks every page it reads.
//!
//! The layout is LMDB 0.9's (`mdb.c`, `MDB_DATA_VERSION` 1, 64-bit page numbers,
//! little-endian), which is what `lmdb-master-sys` builds.

use std::cmp::Ordering;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::Error;

mod branches;
mod check;
mod leaves;
mod page;

pub(crate) use leaves::Leaves;
use page::{Page, To};

/// `PAGEHDRSZ`: page number (8), pad (2), flags (2), lower and upper (2 + 2).
const HDR: usize = 16;
/// `NODESIZE`: lo, hi, flags, key size (4 × u16).
const NODE: usize = 8;
/// Bytes of the meta structure that follow a meta page's header.
const META: usize = 136;
const MAGIC: u32 = 0xBEEF_C0DE;
const VERSION: u32 = 1;
const P_BRANCH: u16 = 0x01;
const P_LEAF: u16 = 0x02;
const P_OVERFLOW: u16 = 0x04;
const P_META: u16 = 0x08;
/// A leaf node whose value lives on overflow pages.
const F_BIGDATA: u16 = 0x01;
/// A leaf node of the main tree naming a named tree (`MDB_db`, [`TREE`] bytes inline).
const F_SUBDATA: u16 = 0x02;
/// `sizeof(MDB_db)`: a named tree's record.
const TREE: usize = 48;
/// `MDB_INTEGERKEY`: the free list's keys are native u64 transaction ids.
const INTEGERKEY: u16 = 0x08;
/// `P_INVALID`: the root of an empty tree.
const NO_PAGE: u64 = u64::MAX;
/// `CURSOR_STACK`: LMDB walks no deeper.
const MAX_DEPTH: u16 = 32;
/// `MDB_MAXKEYSIZE`.
const MAX_KEY: usize = 511;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// A key's first 8 bytes, big-endian, zero-padded: keys in order have prefixes in
/// order (equal prefixes: compare the keys). Searching the prefixes, which lie side by
/// side, instead of keys each behind a pointer halved the lookups' time.
pub(super) fn prefix(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}

/// One tree's record in a meta page or a named tree's node (`MDB_db`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tree {
    flags: u16,
    depth: u16,
    branch_pages: u64,
    leaf_pages: u64,
    overflow_pages: u64,
    entries: u64,
    root: u64,
}

impl Tree {
    fn parse(b: &[u8]) -> Tree {
        Tree {
            flags: u16_at(b, 4),
            depth: u16_at(b, 6),
            branch_pages: u64_at(b, 8),
            leaf_pages: u64_at(b, 16),
            overflow_pages: u64_at(b, 24),
            entries: u64_at(b, 32),
            root: u64_at(b, 40),
        }
    }

    fn check(&self, last: u64) -> Result<(), String> {
        if self.depth > MAX_DEPTH {
            return Err(format!("depth {} is more than LMDB walks", self.depth));
        }
        if self.root == NO_PAGE {
            if self.depth != 0 || self.entries != 0 {
                return Err("an empty tree with depth or entries".into());
            }
        } else if self.root < 2 || self.root > last || self.depth == 0 {
            return Err(format!("root page {} is not a page of the file", self.root));
        }
        Ok(())
    }
}

/// A meta page: one committed snapshot of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) txnid: u64,
    psize: u64,
    /// The last page the snapshot uses.
    last: u64,
    free: Tree,
    main: Tree,
}

/// Which of a file's keys a tree holds, for their order.
#[derive(Clone, Copy)]
enum Keys {
    Bytes,
    Integer,
}

impl Keys {
    fn cmp(self, a: &[u8], b: &[u8]) -> Ordering {
        match self {
            Keys::Bytes => a.cmp(b),
            Keys::Integer => u64_at(a, 0).cmp(&u64_at(b, 0)),
        }
    }
}

/// A value as a leaf holds it: inline, or the first of its overflow pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Inline(Vec<u8>),
    Overflow { pgno: u64, len: u64 },
}

impl Value {
    pub(crate) fn len(&self) -> u64 {
        match self {
            Value::Inline(v) => v.len() as u64,
            Value::Overflow { len, .. } => *len,
        }
    }
}

/// The data file, opened for `pread`.
#[derive(Debug)]
pub(crate) struct DataFile {
    file: File,
    path: PathBuf,
    /// The page size the meta pages gave when the file was opened.
    psize: u64,
    /// Branch pages checked by lookups, kept for the next ones.
    branches: branches::Branches,
}

impl DataFile {
    /// Opens `path` and checks both meta pages and the file's size against them, or
    /// `None` if it does not exist or is empty (LMDB creates a new file then).
    pub(crate) fn open(path: &Path) -> Result<Option<DataFile>, Error> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path)(e)),
        };
        let mut df = DataFile {
            file,
            path: path.to_path_buf(),
            psize: 0,
            branches: Default::default(),
        };
        if df.len()? == 0 {
            return Ok(None);
        }
        df.psize = df.metas()?[0].psize;
        Ok(Some(df))
    }

    /// Whether both meta pages are still in the file (LMDB reads them from its map
    /// at the start of every transaction: a file cut shorter would fault there).
    pub(crate) fn has_metas(&self) -> Result<(), Error> {
        let len = self.len()?;
        if len < 2 * self.psize {
            return Err(self.damaged(format!(
                "the file has {len} bytes, less than its two meta pages: truncated"
            )));
        }
        Ok(())
    }

    fn len(&self) -> Result<u64, Error> {
        let m = self.file.metadata().map_err(Error::io(&self.path))?;
        Ok(m.len())
    }

    pub(crate) fn damaged(&self, problem: impl std::fmt::Display) -> Error {
        Error::Damaged {
            path: self.path.clone(),
            problem: problem.to_string(),
        }
    }

    /// `len` bytes at `at`; `what` names them in the error (formatted only then: a
    /// lookup reads a page per block).
    fn read(&self, at: u64, len: usize, what: impl FnOnce() -> String) -> Result<Vec<u8>, Error> {
        let mut buf = vec![0; len];
        self.file.read_exact_at(&mut buf, at).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.damaged(format!("the file ends inside {} (truncated?)", what()))
            } else {
                Error::io(&self.path)(e)
            }
        })?;
        Ok(buf)
    }

    /// Both meta pages, each checked on its own and against the file's size.
    pub(crate) fn metas(&self) -> Result<[Meta; 2], Error> {
        let first = self.meta(0, None)?;
        let second = self.meta(1, Some(first.psize))?;
        let len = self.len()?;
        for m in [&first, &second] {
            let need = (m.last + 1).saturating_mul(m.psize);
            if len < need {
                return Err(self.damaged(format!(
                    "the file has {len} bytes, its meta page (transaction {}) uses {need}: truncated",
                    m.txnid
                )));
            }
        }
        Ok([first, second])
    }

    fn meta(&self, slot: u64, psize: Option<u64>) -> Result<Meta, Error> {
        let at = slot * psize.unwrap_or(0);
        let b = self.read(at, HDR + META, || format!("meta page {slot}"))?;
        let bad = |p: &str| self.damaged(format!("meta page {slot}: {p}"));
        if u64_at(&b, 0) != slot || u16_at(&b, 10) != P_META {
            return Err(bad("its header is not a meta page's"));
        }
        let m = &b[HDR..];
        if u32_at(m, 0) != MAGIC || u32_at(m, 4) != VERSION {
            return Err(bad("not an LMDB 0.9 file (magic or version)"));
        }
        if u64_at(m, 8) != 0 {
            return Err(bad("it asks for a fixed map address"));
        }
        let free = Tree::parse(&m[24..72]);
        let main = Tree::parse(&m[72..120]);
        // `mm_psize` is the free tree's `md_pad`; `mm_flags` its `md_flags`.
        let page_size = u64::from(u32_at(m, 24));
        if !(4096..=32768).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(bad(&format!("page size {page_size}")));
        }
        if psize.is_some_and(|p| p != page_size) {
            return Err(bad("its page size differs from meta page 0's"));
        }
        if free.flags != INTEGERKEY || main.flags != 0 {
            return Err(bad("tree flags this store never sets"));
        }
        let last = u64_at(m, 120);
        if last < 1 {
            return Err(bad("no last page"));
        }
        free.check(last)
            .map_err(|p| bad(&format!("free list: {p}")))?;
        main.check(last)
            .map_err(|p| bad(&format!("block tree: {p}")))?;
        Ok(Meta {
            txnid: u64_at(m, 128),
            psize: page_size,
            last,
            free,
            main,
        })
    }

    /// The meta page of the snapshot LMDB's transaction `txnid` reads.
    pub(crate) fn snapshot(&self, txnid: u64) -> Result<View<'_>, Error> {
        let metas = self.metas()?;
        let meta = metas
            .into_iter()
            .find(|m| m.txnid == txnid)
            .ok_or_else(|| {
                self.damaged(format!(
                    "no meta page holds transaction {txnid} (they hold {} and {})",
                    metas[0].txnid, metas[1].txnid
                ))
            })?;
        Ok(View { file: self, meta })
    }

    pub(crate) fn view(&self, meta: Meta) -> View<'_> {
        View { file: self, meta }
    }

    /// Branch pages kept by lookups (tests).
    #[cfg(test)]
    pub(crate) fn branches_kept(&self) -> usize {
        self.branches.len()
    }
}

/// What [`View::scan`] calls on each (key, value): whether to go on.
pub(crate) type ScanFn<'a> = dyn FnMut(&[u8], Value) -> Result<bool, Error> + 'a;

/// One snapshot of the file, read page by page. The caller holds an LMDB transaction
/// on it, so no writer reuses its pages meanwhile.
#[derive(Clone, Copy)]
pub(crate) struct View<'f> {
    file: &'f DataFile,
    pub(crate) meta: Meta,
}

impl View<'_> {
    pub(crate) fn damaged(&self, problem: impl std::fmt::Display) -> Error {
        self.file.damaged(problem)
    }

    /// A stored value that is no block (its tag or zstd frame).
    pub(crate) fn damaged_block(&self, cid: &narfs_core::Cid, problem: &'static str) -> Error {
        Error::DamagedBlock {
            path: self.file.path.clone(),
            cid: Box::new(*cid),
            problem,
        }
    }

    /// Pages taken by a value of `len` bytes (`OVPAGES`).
    fn overflow_pages(&self, len: u64) -> u64 {
        (HDR as u64 - 1 + len) / self.meta.psize + 1
    }

    fn check_overflow(&self, pgno: u64, len: u64) -> Result<(), Error> {
        let end = pgno.checked_add(self.overflow_pages(len));
        if pgno < 2 || end.is_none_or(|e| e > self.meta.last + 1) {
            return Err(self.damaged(format!(
                "a value of {len} bytes at page {pgno} lies outside the file's pages"
            )));
        }
        Ok(())
    }

    /// Checks the header of the first overflow page of a value: its page number, its
    /// type and nothing else (see [`View::page`] on the flags), and its page count,
    /// which LMDB's writer uses as is when it frees the value.
    fn overflow_header(&self, header: &[u8], pgno: u64, len: u64) -> Result<(), Error> {
        let pages = u64::from(u32_at(header, 12));
        if u64_at(header, 0) != pgno
            || u16_at(header, 10) != P_OVERFLOW
            || pages != self.overflow_pages(len)
        {
            return Err(self.damaged(format!(
                "page {pgno}: not the first of {} overflow pages",
                self.overflow_pages(len)
            )));
        }
        Ok(())
    }

    /// The byte range of the file holding an overflow `value` (`None`: inline, in a
    /// tree page), checked to lie within the snapshot's pages.
    pub(crate) fn overflow_range(&self, value: &Value) -> Result<Option<(u64, u64)>, Error> {
        let Value::Overflow { pgno, len } = *value else {
            return Ok(None);
        };
        self.check_overflow(pgno, len)?;
        let psize = self.meta.psize;
        Ok(Some((
            pgno * psize,
            (pgno + self.overflow_pages(len)) * psize,
        )))
    }

    /// Drops the page-cache pages of bytes `from..to` of the file: a write session's
    /// hint once they are durable, see `crate::uncache`. Only a hint: the kernel keeps
    /// pages that are dirty or mapped, and nothing is read.
    pub(crate) fn uncache(&self, from: u64, to: u64) -> Result<(), Error> {
        use std::os::fd::AsRawFd;
        // SAFETY: `posix_fadvise` only reads its arguments; the descriptor is open.
        let r = unsafe {
            libc::posix_fadvise(
                self.file.file.as_raw_fd(),
                from as libc::off_t,
                to.saturating_sub(from) as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            )
        };
        match r {
            0 => Ok(()),
            e => Err(Error::io(&self.file.path)(
                std::io::Error::from_raw_os_error(e),
            )),
        }
    }

    /// The value stored under `key` in the block tree.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Value>, Error> {
        self.get_in(self.meta.main, true, key)
    }

    /// The named tree `name` of the snapshot (`None`: not created yet).
    pub(crate) fn named(&self, name: &[u8]) -> Result<Option<Tree>, Error> {
        let Some((page, i)) = self.leaf_of(self.meta.main, true, name)? else {
            return Ok(None);
        };
        let node = &page.nodes[i];
        match node.to {
            To::Named(t) if page.key(node) == name => Ok(Some(t)),
            _ if page.key(node) != name => Ok(None),
            _ => Err(self.damaged(format!(
                "the main tree's key {:?} is no named tree",
                String::from_utf8_lossy(name)
            ))),
        }
    }

    /// The value under `key` in `tree` (a named tree's, or the main tree's).
    pub(crate) fn get_in(
        &self,
        tree: Tree,
        named: bool,
        key: &[u8],
    ) -> Result<Option<Value>, Error> {
        let Some((page, i)) = self.leaf_of(tree, named, key)? else {
            return Ok(None);
        };
        let node = &page.nodes[i];
        Ok((page.key(node) == key).then(|| page.value(node)).flatten())
    }

    /// The leaf page that holds `key` if any page does, and the index of the first
    /// node whose key is ≥ `key` (or of its last node); `None` for an empty tree or
    /// when every key of the leaf is smaller.
    fn leaf_of(&self, tree: Tree, named: bool, key: &[u8]) -> Result<Option<(Page, usize)>, Error> {
        if tree.root == NO_PAGE {
            return Ok(None);
        }
        let mut pgno = tree.root;
        for level in 1..=tree.depth {
            if level < tree.depth {
                let page = self.branch(pgno)?;
                // The last child whose separator is ≤ key; the first has none.
                let i = page.separators_at_most(key);
                let To::Child(child) = page.nodes[i].to else {
                    unreachable!("a branch page holds branch nodes")
                };
                pgno = child;
                continue;
            }
            let page = self.page(pgno, true, Keys::Bytes, named)?;
            let i = page.nodes.partition_point(|n| page.key(n) < key);
            if i == page.nodes.len() {
                return Ok(None);
            }
            return Ok(Some((page, i)));
        }
        Ok(None)
    }

    /// Branch page `pgno`, checked ([`View::page`]) the first time a lookup of this
    /// snapshot goes through it, then kept ([`branches`]).
    fn branch(&self, pgno: u64) -> Result<std::sync::Arc<Page>, Error> {
        let kept = &self.file.branches;
        if let Some(page) = kept.get(&self.meta, pgno) {
            return Ok(page);
        }
        let mut page = self.page(pgno, false, Keys::Bytes, false)?;
        page.prefixes = page.nodes[1..]
            .iter()
            .map(|n| prefix(page.key(n)))
            .collect();
        let page = std::sync::Arc::new(page);
        kept.put(&self.meta, pgno, page.clone());
        Ok(page)
    }

    /// Calls `f` on the (key, value) of `tree` from the first key ≥ `from` on, in
    /// key order, until it returns false. Every page is checked as it is read, and keys
    /// must ascend across pages too, so a damaged tree cannot make the scan loop.
    pub(crate) fn scan(&self, tree: Tree, from: &[u8], f: &mut ScanFn<'_>) -> Result<(), Error> {
        self.scan_in(tree, false, from, f)
    }

    /// [`View::scan`] of the block tree (the main tree, whose leaves also name the
    /// named trees: those are skipped, as they are no block).
    pub(crate) fn scan_blocks(&self, from: &[u8], f: &mut ScanFn<'_>) -> Result<(), Error> {
        self.scan_in(self.meta.main, true, from, f)
    }

    fn scan_in(
        &self,
        tree: Tree,
        named: bool,
        from: &[u8],
        f: &mut ScanFn<'_>,
    ) -> Result<(), Error> {
        if tree.root == NO_PAGE {
            return Ok(());
        }
        // The branch pages on the way down, each with the index of its next child.
        let mut stack: Vec<(Page, usize)> = Vec::new();
        let mut pgno = tree.root;
        let mut last: Option<Vec<u8>> = None;
        let mut first = true;
        loop {
            // Down to a leaf: at the first descent toward `from`, then leftmost.
            while stack.len() + 1 < tree.depth as usize {
                let page = self.page(pgno, false, Keys::Bytes, false)?;
                let i = if first {
                    page.nodes[1..].partition_point(|n| page.key(n) <= from)
                } else {
                    0
                };
                let To::Child(child) = page.nodes[i].to else {
                    unreachable!("a branch page holds branch nodes")
                };
                pgno = child;
                stack.push((page, i + 1));
            }
            let leaf = self.page(pgno, true, Keys::Bytes, named)?;
            let start = if first {
                leaf.nodes.partition_point(|n| leaf.key(n) < from)
            } else {
                0
            };
            first = false;
            for n in &leaf.nodes[start..] {
                let key = leaf.key(n);
                if last.as_deref().is_some_and(|l| l >= key) {
                    return Err(
                        self.damaged(format!("page {pgno}: keys out of order across pages"))
                    );
                }
                last = Some(key.to_vec());
                let Some(value) = leaf.value(n) else {
                    continue;
                };
                if !f(key, value)? {
                    return Ok(());
                }
            }
            // Up to the nearest branch with a child left, then down its next child.
            loop {
                let Some((page, next)) = stack.last_mut() else {
                    return Ok(());
                };
                if *next < page.nodes.len() {
                    let To::Child(child) = page.nodes[*next].to else {
                        unreachable!("a branch page holds branch nodes")
                    };
                    *next += 1;
                    pgno = child;
                    break;
                }
                stack.pop();
            }
        }
    }

    /// The bytes of `value` from its `skip`th on, each read once, straight into the
    /// result; for overflow pages, their header is checked first. `max` bounds `len`.
    pub(crate) fn read_from(&self, value: &Value, max: u64, skip: u64) -> Result<Vec<u8>, Error> {
        match value {
            Value::Inline(v) => Ok(v[v.len().min(skip as usize)..].to_vec()),
            &Value::Overflow { pgno, len } => {
                self.read_prefix(value, max, 0)?;
                let skip = skip.min(len);
                let at = pgno * self.meta.psize + HDR as u64 + skip;
                self.file.read(at, (len - skip) as usize, || {
                    format!("the value at page {pgno}")
                })
            }
        }
    }

    /// The first `prefix` bytes of `value` (all of it if shorter).
    pub(crate) fn read_prefix(
        &self,
        value: &Value,
        max: u64,
        prefix: u64,
    ) -> Result<Vec<u8>, Error> {
        match value {
            Value::Inline(v) => Ok(v[..v.len().min(prefix as usize)].to_vec()),
            &Value::Overflow { pgno, len } => {
                if len > max {
                    return Err(self.damaged(format!(
                        "a value of {len} bytes at page {pgno}, longer than any this table holds"
                    )));
                }
                let n = len.min(prefix) as usize;
                let what = || format!("the value at page {pgno}");
                let b = self.file.read(pgno * self.meta.psize, HDR + n, what)?;
                self.overflow_header(&b, pgno, len)?;
                Ok(b[HDR..].to_vec())
            }
        }
    }
}
