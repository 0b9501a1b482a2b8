//! One file's DAG: raw leaves under dag-pb `File` nodes in Kubo's balanced layout,
//! built bottom-up as the leaves stream in, holding at most `max_links` links per
//! level of the tree.

use narfs_core::block::{cid_for, BlockSink, HashAlg, StoreError, DAG_PB, RAW};
use narfs_core::dagpb::{encode_node_into, PBLinkRef};
use narfs_core::unixfs::UnixFsData;
use narfs_core::Cid;

/// The mode narfs writes on executable files (UnixFS 1.5); other files carry none.
pub const EXECUTABLE_MODE: u32 = 0o755;

/// A finished subtree: its CID, cumulative DAG size (`Tsize`) and file bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sub {
    pub cid: Cid,
    pub tsize: u64,
    pub filesize: u64,
}

/// Counts of what a builder handed to its sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub blocks: u64,
    pub bytes: u64,
}

/// Puts a block and counts it.
pub(crate) fn put(
    sink: &mut impl BlockSink,
    counts: &mut Counts,
    cid: &Cid,
    data: &[u8],
) -> Result<(), StoreError> {
    counts.blocks += 1;
    counts.bytes += data.len() as u64;
    sink.put(cid, data)
}

/// Builds one file's tree. Feed leaves with [`FileTree::leaf`], then [`FileTree::finish`].
pub struct FileTree {
    hash: HashAlg,
    max_links: usize,
    /// `levels[0]` holds leaves, `levels[i]` nodes of height `i`, none of them full
    /// until a new item arrives (so the root is always made by `finish`).
    levels: Vec<Vec<Sub>>,
    scratch: Vec<u8>,
    data: Vec<u8>,
}

impl FileTree {
    /// `max_links` below 2 is taken as 2: a file node needs room for two links for
    /// the tree to converge.
    pub fn new(hash: HashAlg, max_links: usize) -> Self {
        let max_links = max_links.max(2);
        FileTree {
            hash,
            max_links,
            levels: vec![Vec::new()],
            scratch: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Starts a new file, keeping the buffers.
    pub fn reset(&mut self) {
        self.levels.iter_mut().for_each(Vec::clear);
    }

    /// Stores a chunk as a raw leaf and adds it.
    pub fn leaf(
        &mut self,
        chunk: &[u8],
        sink: &mut impl BlockSink,
        counts: &mut Counts,
    ) -> Result<(), StoreError> {
        let cid = cid_for(RAW, self.hash, chunk);
        put(sink, counts, &cid, chunk)?;
        let len = chunk.len() as u64;
        self.push(
            0,
            Sub {
                cid,
                tsize: len,
                filesize: len,
            },
            sink,
            counts,
        )
    }

    /// Stores a chunk whose CID the caller computed (hashing many at once) and adds it.
    pub fn hashed_leaf(
        &mut self,
        cid: Cid,
        chunk: &[u8],
        sink: &mut impl BlockSink,
        counts: &mut Counts,
    ) -> Result<(), StoreError> {
        put(sink, counts, &cid, chunk)?;
        let len = chunk.len() as u64;
        let leaf = Sub {
            cid,
            tsize: len,
            filesize: len,
        };
        self.push(0, leaf, sink, counts)
    }

    /// Adds a leaf that is already stored (for callers that hash in parallel).
    pub fn stored_leaf(
        &mut self,
        leaf: Sub,
        sink: &mut impl BlockSink,
        counts: &mut Counts,
    ) -> Result<(), StoreError> {
        self.push(0, leaf, sink, counts)
    }

    fn push(
        &mut self,
        level: usize,
        sub: Sub,
        sink: &mut impl BlockSink,
        counts: &mut Counts,
    ) -> Result<(), StoreError> {
        if self.levels[level].len() == self.max_links {
            let items = std::mem::take(&mut self.levels[level]);
            let node = self.node(&items, None, sink, counts)?;
            self.levels[level] = items;
            self.levels[level].clear();
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.push(level + 1, node, sink, counts)?;
        }
        self.levels[level].push(sub);
        Ok(())
    }

    /// Closes the tree and returns the file's root. A one-leaf file is its leaf,
    /// unless it is executable: then a `File` node with the mode wraps it.
    pub fn finish(
        &mut self,
        executable: bool,
        sink: &mut impl BlockSink,
        counts: &mut Counts,
    ) -> Result<Sub, StoreError> {
        let mode = executable.then_some(EXECUTABLE_MODE);
        let mut level = 0;
        loop {
            let top = self.levels[level + 1..].iter().all(Vec::is_empty);
            let items = std::mem::take(&mut self.levels[level]);
            if top {
                let root = if items.len() == 1 && level == 0 && mode.is_none() {
                    items[0]
                } else {
                    self.node(&items, mode, sink, counts)?
                };
                self.levels[level] = items;
                self.reset();
                return Ok(root);
            }
            if !items.is_empty() {
                let node = self.node(&items, None, sink, counts)?;
                self.push(level + 1, node, sink, counts)?;
            }
            self.levels[level] = items;
            self.levels[level].clear();
            level += 1;
        }
    }

    fn node(
        &mut self,
        items: &[Sub],
        mode: Option<u32>,
        sink: &mut impl BlockSink,
        counts: &mut Counts,
    ) -> Result<Sub, StoreError> {
        let meta = UnixFsData::file(items.iter().map(|s| s.filesize).collect(), mode);
        meta.encode_into(&mut self.data);
        let links = items.iter().map(|s| PBLinkRef {
            hash: &s.cid,
            name: Some(""),
            tsize: Some(s.tsize),
        });
        encode_node_into(links, Some(&self.data), &mut self.scratch);
        let cid = cid_for(DAG_PB, self.hash, &self.scratch);
        put(sink, counts, &cid, &self.scratch)?;
        Ok(Sub {
            cid,
            tsize: self.scratch.len() as u64 + items.iter().map(|s| s.tsize).sum::<u64>(),
            filesize: meta.filesize.unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use narfs_core::block::MemoryStore;

    fn build(leaves: usize, max_links: usize, executable: bool) -> (Sub, MemoryStore) {
        let mut store = MemoryStore::new();
        let mut counts = Counts::default();
        let mut t = FileTree::new(HashAlg::Sha2_256, max_links);
        for i in 0..leaves {
            t.leaf(&(i as u32).to_le_bytes(), &mut store, &mut counts)
                .unwrap();
        }
        (
            t.finish(executable, &mut store, &mut counts).unwrap(),
            store,
        )
    }

    /// Heights of the tree, by following first links.
    fn height(store: &MemoryStore, cid: &Cid) -> usize {
        if cid.codec() == RAW {
            return 0;
        }
        let node = narfs_core::dagpb::PBNode::decode(store.get_ref(cid).unwrap()).unwrap();
        1 + height(store, &node.links[0].hash)
    }

    #[test]
    fn balanced_shapes() {
        let (one, store) = build(1, 4, false);
        assert_eq!(one.cid.codec(), RAW);
        assert_eq!(height(&store, &one.cid), 0);
        let (exe, store) = build(1, 4, true);
        assert_eq!(height(&store, &exe.cid), 1);
        assert_eq!(build(4, 4, false).0.filesize, 16);
        assert_eq!(height(&build(4, 4, false).1, &build(4, 4, false).0.cid), 1);
        let (five, store) = build(5, 4, false);
        assert_eq!(height(&store, &five.cid), 2);
        let root = narfs_core::dagpb::PBNode::decode(store.get_ref(&five.cid).unwrap()).unwrap();
        assert_eq!(root.links.len(), 2, "a full subtree and a one-leaf subtree");
        let (seventeen, store) = build(17, 4, false);
        assert_eq!(height(&store, &seventeen.cid), 3);
        assert_eq!(seventeen.filesize, 68);
        // 16 leaves: exactly full at height 2.
        let (sixteen, store) = build(16, 4, false);
        assert_eq!(height(&store, &sixteen.cid), 2);
        let root = narfs_core::dagpb::PBNode::decode(store.get_ref(&sixteen.cid).unwrap()).unwrap();
        assert_eq!(root.links.len(), 4);
    }

    #[test]
    fn tsize_is_cumulative() {
        let (root, store) = build(9, 4, false);
        let total: u64 = store.iter().map(|(_, d)| d.len() as u64).sum();
        // Leaves are distinct, so every block is reached exactly once.
        assert_eq!(root.tsize, total);
    }
}
