//! The whole-file check ([`View::check`]): every tree and the free list walked, every
//! page checked and reached once, the meta page's counts matched. A write
//! transaction runs only after this has passed in the process
//! (`Blocks::write_txn`), since LMDB's own code trusts the file.

use super::*;

/// What a whole-tree walk found, to compare with the meta page.
#[derive(Default)]
struct Counts {
    branch: u64,
    leaf: u64,
    overflow: u64,
    entries: u64,
}

/// Pages seen by a walk of the whole file.
struct Seen(Vec<u64>);

impl Seen {
    /// Marks `n` pages from `first`; false if one was marked already.
    fn mark(&mut self, first: u64, n: u64) -> bool {
        for p in first..first + n {
            let (w, bit) = ((p / 64) as usize, 1u64 << (p % 64));
            if self.0[w] & bit != 0 {
                return false;
            }
            self.0[w] |= bit;
        }
        true
    }
}

impl View<'_> {
    /// Walks the whole file: both trees, every page checked, none reached twice, the
    /// free list's pages inside the file and used by no tree, the meta page's counts
    /// matched. `entry` sees every (key, value) of the block tree, in key order.
    pub(crate) fn check(&self, mut entry: impl FnMut(Vec<u8>, Value)) -> Result<(), Error> {
        let words = (self.meta.last / 64 + 1) as usize;
        let mut seen = Seen(vec![0; words]);
        seen.mark(0, 2);
        let main = self.meta.main;
        let mut named = Vec::new();
        self.walk(
            main,
            Keys::Bytes,
            Some(&mut named),
            &mut seen,
            "block tree",
            &mut entry,
        )?;
        for (name, tree) in named {
            let what = format!("named tree {:?}", String::from_utf8_lossy(&name));
            self.walk(tree, Keys::Bytes, None, &mut seen, &what, &mut |_, _| {})?;
        }
        let mut lists = Vec::new();
        let free = self.meta.free;
        self.walk(
            free,
            Keys::Integer,
            None,
            &mut seen,
            "free list",
            &mut |_, v| lists.push(v),
        )?;
        let max_list = (self.meta.last + 2) * 8;
        for v in lists {
            let ids = self.read_from(&v, max_list, 0)?;
            let n = if ids.len() >= 8 { u64_at(&ids, 0) } else { 0 };
            if ids.len() < 8
                || n.checked_add(1).and_then(|k| k.checked_mul(8)) != Some(ids.len() as u64)
            {
                return Err(self.damaged("a free-list record's length is not its count's"));
            }
            for i in 0..n as usize {
                let p = u64_at(&ids, 8 + 8 * i);
                if p < 2 || p > self.meta.last || !seen.mark(p, 1) {
                    return Err(self.damaged(format!(
                        "the free list names page {p}, which is not a free page"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Walks one tree; with `named`, its leaves may name named trees, which are
    /// collected there (their pages walked by the caller).
    fn walk(
        &self,
        tree: Tree,
        keys: Keys,
        mut named: Option<&mut Vec<(Vec<u8>, Tree)>>,
        seen: &mut Seen,
        name: &str,
        entry: &mut dyn FnMut(Vec<u8>, Value),
    ) -> Result<(), Error> {
        if tree.root == NO_PAGE {
            return Ok(());
        }
        let mut counts = Counts::default();
        let mut stack = vec![(tree.root, 1u16)];
        while let Some((pgno, level)) = stack.pop() {
            if !seen.mark(pgno, 1) {
                return Err(self.damaged(format!("{name}: page {pgno} is reached twice")));
            }
            let leaf = level == tree.depth;
            let page = self.page(pgno, leaf, keys, named.is_some())?;
            if !leaf {
                counts.branch += 1;
                // Pushed in reverse so that leaves come off the stack in key order.
                for n in page.nodes.iter().rev() {
                    if let To::Child(child) = n.to {
                        stack.push((child, level + 1));
                    }
                }
                continue;
            }
            counts.leaf += 1;
            for n in &page.nodes {
                if let (To::Named(t), Some(named)) = (&n.to, named.as_deref_mut()) {
                    counts.entries += 1;
                    named.push((page.key(n).to_vec(), *t));
                    continue;
                }
                if let Some(value) = page.value(n) {
                    let key = page.key(n).to_vec();
                    counts.entries += 1;
                    if let Value::Overflow { pgno, len } = value {
                        let pages = self.overflow_pages(len);
                        counts.overflow += pages;
                        if !seen.mark(pgno, pages) {
                            return Err(self.damaged(format!(
                                "{name}: the overflow pages at {pgno} are reached twice"
                            )));
                        }
                        let at = pgno * self.meta.psize;
                        let header = self.file.read(at, HDR, || format!("page {pgno}"))?;
                        self.overflow_header(&header, pgno, len)?;
                    }
                    entry(key, value);
                }
            }
        }
        let found = (counts.branch, counts.leaf, counts.overflow, counts.entries);
        let recorded = (
            tree.branch_pages,
            tree.leaf_pages,
            tree.overflow_pages,
            tree.entries,
        );
        if found != recorded {
            return Err(self.damaged(format!(
                "{name}: found (branch, leaf, overflow pages, entries) {found:?}, the meta page says {recorded:?}"
            )));
        }
        Ok(())
    }
}
