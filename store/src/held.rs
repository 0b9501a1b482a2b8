//! Which of many CIDs the store holds, asked together: through one snapshot, leaf
//! pages kept for the session ([`crate::lmdb_file::Leaves`]). A write
//! session asks this twice: its packers for the blocks of a pack job, and an item's
//! handle for a batch of leaves the encoder announces ([`BlockSink::will_put`]), so
//! that a block the store holds is never copied or queued.
//!
//! [`BlockSink::will_put`]: narfs_core::block::BlockSink::will_put

use narfs_core::Cid;

use crate::blocks::Blocks;
use crate::lmdb_file::Leaves;
use crate::Error;

/// Bytes of a CID kept inline: every CID narfs makes (CIDv0, or CIDv1 with a 32-byte
/// digest) takes at most 37.
pub(crate) const SHORT: usize = 40;

/// A CID as the block table's key, without an allocation for the usual ones.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// The CID's bytes zero-padded to [`SHORT`], and how many are its.
    Short([u8; SHORT], u8),
    Long(Vec<u8>),
}

impl Key {
    pub(crate) fn of(cid: &Cid) -> Key {
        let mut key = [0u8; SHORT];
        match cid.write_bytes(&mut key[..]) {
            Ok(n) => Key::Short(key, n as u8),
            Err(_) => Key::Long(cid.to_bytes()),
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Key::Short(k, n) => &k[..*n as usize],
            Key::Long(k) => k,
        }
    }
}

/// After this many lookups of an announced batch, the rest are looked up only while
/// at least a quarter were found (a fresh store holds none of them: its blocks are
/// looked up once, by the packers).
pub(crate) const PROBE: usize = 16;

/// Whether the store holds each of `keys`, in their order: `Some(held)` for those
/// looked up, `None` for those a `probe` stopped before (see [`PROBE`]).
pub(crate) fn held(
    blocks: &Blocks,
    kept: &Leaves,
    keys: &[Key],
    probe: bool,
) -> Result<Vec<Option<bool>>, Error> {
    let mut out = vec![None; keys.len()];
    let snap = blocks.read_txn()?;
    let mut look = snap.view().lookup(kept);
    let (mut looked, mut found) = (0, 0);
    // In the order given: CIDs are hashes, so any PROBE of them is a fair sample.
    for (key, answer) in keys.iter().zip(&mut out) {
        if probe && looked >= PROBE && found * 4 < looked {
            break;
        }
        let h = look.holds(key.bytes())?;
        *answer = Some(h);
        looked += 1;
        found += usize::from(h);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use narfs_core::Cid;

    use super::{held, Key, PROBE};
    use crate::lmdb_file::Leaves;
    use crate::test_blocks::{raw_blocks, store_holding};

    fn cids(from: u32, to: u32) -> Vec<(Cid, Vec<u8>)> {
        raw_blocks("held", from..to)
    }

    #[test]
    fn a_batch_mixing_held_and_absent_keys_and_repeating_one() {
        let (present, absent) = (cids(0, 500), cids(500, 700));
        let (_dir, store) = store_holding(&present);
        // Interleaved, one key twice, and a CID of an unusual (long) form.
        let mut keys = Vec::new();
        let mut want = Vec::new();
        for (i, (c, _)) in present.iter().enumerate() {
            keys.push(Key::of(c));
            want.push(Some(true));
            if let Some((a, _)) = absent.get(i) {
                keys.push(Key::of(a));
                want.push(Some(false));
            }
        }
        keys.push(Key::of(&present[7].0));
        want.push(Some(true));
        keys.push(Key::Long(vec![0x01; 60]));
        want.push(Some(false));
        let kept = Leaves::default();
        assert_eq!(held(&store.blocks, &kept, &keys, false).unwrap(), want);
        // Most are held: a probe looks every one up too.
        assert_eq!(held(&store.blocks, &kept, &keys, true).unwrap(), want);
    }

    #[test]
    fn a_probe_stops_early_in_a_store_holding_few() {
        let (present, absent) = (cids(0, 20), cids(20, 1020));
        let (_dir, store) = store_holding(&present);
        let keys: Vec<Key> = absent
            .iter()
            .chain(&present)
            .map(|(c, _)| Key::of(c))
            .collect();
        let kept = Leaves::default();
        let all = held(&store.blocks, &kept, &keys, false).unwrap();
        assert!(all.iter().all(Option::is_some));
        assert_eq!(all.iter().filter(|h| **h == Some(true)).count(), 20);
        let probed = held(&store.blocks, &kept, &keys, true).unwrap();
        let looked = probed.iter().filter(|h| h.is_some()).count();
        assert!((PROBE..PROBE + 8).contains(&looked), "{looked}");
        // What it answered, it answered right.
        for (p, a) in probed.iter().zip(&all) {
            assert!(p.is_none() || p == a);
        }
    }
}
