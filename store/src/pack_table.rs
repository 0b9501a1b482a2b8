//! The packs in the store's LMDB environment (format in [`crate::pack`]): reading a
//! pack value, writing a new pack with its blocks' entries, releasing a block of a
//! pack when its entry is deleted.

use heed::RwTxn;
use narfs_core::Cid;

use crate::blocks::Blocks;
use crate::lmdb_file::View;
use crate::pack::{self, NewPack, Slot, MAX_PACK_VALUE, NEXT, PACKS};
use crate::Error;

/// Pack `id`'s value as `view` sees it (`None`: no such pack).
pub(crate) fn value(view: View<'_>, id: u64) -> Result<Option<Vec<u8>>, Error> {
    let Some(tree) = view.named(PACKS.as_bytes())? else {
        return Ok(None);
    };
    match view.get_in(tree, false, &pack::key(id))? {
        Some(v) => view.read_from(&v, MAX_PACK_VALUE, 0).map(Some),
        None => Ok(None),
    }
}

/// Pack `id`'s stored length and uncompressed size (its header's first bytes only).
pub(crate) fn sizes(view: View<'_>, id: u64) -> Result<Option<(u64, u64)>, Error> {
    let Some(tree) = view.named(PACKS.as_bytes())? else {
        return Ok(None);
    };
    let Some(v) = view.get_in(tree, false, &pack::key(id))? else {
        return Ok(None);
    };
    let head = view.read_prefix(&v, MAX_PACK_VALUE, 6)?;
    let size = head
        .get(2..6)
        .map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
    Ok(Some((v.len(), u64::from(size))))
}

/// One entry of the packs' tree, as [`each`] gives it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PackInfo {
    pub(crate) id: u64,
    /// The zstd level ([`pack::level_of`]: an LZ4 pack's is below every level).
    pub(crate) level: i8,
    /// Blocks in the pack, and of them live (their entry points here).
    pub(crate) blocks: u32,
    pub(crate) live: u32,
    pub(crate) live_bytes: u64,
    /// The value's length.
    pub(crate) stored: u64,
    /// Its blocks' bytes, decompressed (what a read of one of them decompresses).
    pub(crate) raw: u64,
}

/// Every pack `view` holds, in id order (a pack's value, then its live count).
pub(crate) fn each(view: View<'_>) -> Result<Vec<PackInfo>, Error> {
    let Some(tree) = view.named(PACKS.as_bytes())? else {
        return Ok(Vec::new());
    };
    let mut out: Vec<PackInfo> = Vec::new();
    view.scan(tree, b"", &mut |key, v| {
        if key.len() == 8 {
            let head = view.read_prefix(&v, MAX_PACK_VALUE, 10)?;
            let id = u64::from_be_bytes(key.try_into().expect("8 bytes"));
            out.push(PackInfo {
                id,
                level: pack::level_of(&head),
                blocks: head
                    .get(6..10)
                    .map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes"))),
                stored: v.len(),
                raw: head.get(2..6).map_or(0, |b| {
                    u64::from(u32::from_le_bytes(b.try_into().expect("4 bytes")))
                }),
                ..PackInfo::default()
            });
        } else if key.len() == 9 {
            let id = u64::from_be_bytes(key[..8].try_into().expect("8 bytes"));
            let live = view.read_from(&v, 12, 0)?;
            if let (Some(p), Some((n, bytes))) = (out.last_mut(), pack::live_decode(&live)) {
                if p.id == id {
                    (p.live, p.live_bytes) = (n, bytes);
                }
            }
        }
        Ok(true)
    })?;
    Ok(out)
}

impl Blocks {
    /// Stores `p` under a new id and an entry for each of its blocks not stored yet;
    /// which of them were new. A pack none of whose blocks is new is not stored.
    pub(crate) fn put_pack(&self, txn: &mut RwTxn<'_>, p: &NewPack) -> Result<Vec<bool>, Error> {
        let id = self.next_pack(txn)?;
        let mut new = Vec::with_capacity(p.header.blocks.len());
        let (mut live, mut bytes) = (0u32, 0u64);
        for (cid, slot) in p.header.slots(id) {
            let key = cid.to_bytes();
            // One search of the tree for both (`MDB_NOOVERWRITE`).
            let fresh = self
                .table
                .get_or_put(txn, &key, &slot.encode())
                .map_err(self.err())?
                .is_none();
            if fresh {
                live += 1;
                bytes += u64::from(slot.len);
            }
            new.push(fresh);
        }
        if live > 0 {
            self.write_pack(txn, id, &p.value, live, bytes)?;
        }
        Ok(new)
    }

    /// Writes pack `id`'s value and live count.
    fn write_pack(
        &self,
        txn: &mut RwTxn<'_>,
        id: u64,
        value: &[u8],
        live: u32,
        bytes: u64,
    ) -> Result<(), Error> {
        let packs = self.packs();
        packs.put(txn, &pack::key(id), value).map_err(self.err())?;
        packs
            .put(txn, &pack::live_key(id), &pack::live_encode(live, bytes))
            .map_err(self.err())
    }

    /// A new pack id (ids are never reused).
    fn next_pack(&self, txn: &mut RwTxn<'_>) -> Result<u64, Error> {
        let packs = self.packs();
        let id = match packs.get(txn, NEXT).map_err(self.err())? {
            Some(v) => u64::from_le_bytes(
                v.try_into()
                    .map_err(|_| self.damaged("the pack counter is not 8 bytes"))?,
            ),
            None => 0,
        };
        packs
            .put(txn, NEXT, &(id + 1).to_le_bytes())
            .map_err(self.err())?;
        Ok(id)
    }

    /// A block of `slot`'s pack is gone: one live block less, the pack deleted with
    /// its last one.
    pub(crate) fn release(&self, txn: &mut RwTxn<'_>, slot: Slot) -> Result<(), Error> {
        let packs = self.packs();
        let lk = pack::live_key(slot.pack);
        let Some((n, bytes)) = packs
            .get(txn, &lk)
            .map_err(self.err())?
            .and_then(pack::live_decode)
        else {
            return Ok(());
        };
        if n <= 1 {
            packs.delete(txn, &lk).map_err(self.err())?;
            packs
                .delete(txn, &pack::key(slot.pack))
                .map_err(self.err())?;
        } else {
            let rest = pack::live_encode(n - 1, bytes.saturating_sub(u64::from(slot.len)));
            packs.put(txn, &lk, &rest).map_err(self.err())?;
        }
        Ok(())
    }

    /// Stores `p` under a new id and moves into it every block whose entry still
    /// points where `was` says (each release of its old pack deletes that pack with
    /// its last live block). Its id and how many blocks moved; with none, `p` is not
    /// stored.
    pub(crate) fn move_into(
        &self,
        txn: &mut RwTxn<'_>,
        was: &[Slot],
        p: &NewPack,
    ) -> Result<(u64, u32), Error> {
        self.store_moved(txn, was, p, true)
    }

    /// Stores `p` under a new id and points at it every block whose entry still says
    /// `was`, each old place released (`release`) or left for the caller to delete;
    /// with no block moved, `p` is not stored. Its id and how many blocks moved.
    fn store_moved(
        &self,
        txn: &mut RwTxn<'_>,
        was: &[Slot],
        p: &NewPack,
        release: bool,
    ) -> Result<(u64, u32), Error> {
        let (mut live, mut bytes) = (0u32, 0u64);
        let id = self.next_pack(txn)?;
        for ((cid, slot), before) in p.header.slots(id).zip(was) {
            let key = cid.to_bytes();
            let now = self.table.get(txn, &key).map_err(self.err())?;
            if now.and_then(|v| Slot::decode(v).ok()) != Some(*before) {
                continue;
            }
            self.table
                .put(txn, &key, &slot.encode())
                .map_err(self.err())?;
            if release {
                self.release(txn, *before)?;
            }
            live += 1;
            bytes += u64::from(slot.len);
        }
        if live > 0 {
            self.write_pack(txn, id, &p.value, live, bytes)?;
        }
        Ok((id, live))
    }

    /// Replaces packs `old` by `p`: every block of `p` whose entry still points where
    /// `was` says (in one of `old`) is moved into `p`; then `old` are deleted (with no
    /// `p`, they held nothing alive). How many blocks moved.
    pub(crate) fn replace_packs(
        &self,
        txn: &mut RwTxn<'_>,
        old: &[u64],
        was: &[Slot],
        p: Option<&NewPack>,
    ) -> Result<u32, Error> {
        let live = match p {
            Some(p) => self.store_moved(txn, was, p, false)?.1,
            None => 0,
        };
        let packs = self.packs();
        for &o in old {
            packs.delete(txn, &pack::key(o)).map_err(self.err())?;
            packs.delete(txn, &pack::live_key(o)).map_err(self.err())?;
        }
        Ok(live)
    }
}

/// The live blocks of pack `id` as `view` sees it: each block whose entry points into
/// it, with its bytes (not verified: the caller verifies).
pub(crate) fn live_blocks(view: View<'_>, id: u64) -> Result<Vec<(Cid, Slot, Vec<u8>)>, Error> {
    let Some(value) = value(view, id)? else {
        return Ok(Vec::new());
    };
    let damaged = |p: &'static str| view.damaged(format!("pack {id}: {p}"));
    let (header, data) = pack::unpack(&value).map_err(damaged)?;
    let mut out = Vec::new();
    for (cid, slot) in header.slots(id) {
        let Some(entry) = view.get(&cid.to_bytes())? else {
            continue;
        };
        let head = view.read_prefix(&entry, MAX_PACK_VALUE, pack::SLOT_LEN as u64)?;
        if Slot::decode(&head).ok() == Some(slot) {
            let (at, len) = (slot.offset as usize, slot.len as usize);
            out.push((cid, slot, data[at..at + len].to_vec()));
        }
    }
    Ok(out)
}
