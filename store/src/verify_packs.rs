//! verify's packs pass: every pack decompressed once, its live blocks re-hashed.
//!
//! The blocks pass goes in key order (CIDs: random), packs in write order, so
//! checking packed blocks there decompressed a pack once for every chunk of 4,096
//! keys that touched it: on a large store, each pack as many times as it has blocks.
//! Here the packs' tree is read in id order, [`PACK_CHUNK`] packs at a time in
//! parallel; each block a pack's header lists whose entry still points there is
//! verified against its CID. The blocks pass counts the packed entries it passed
//! over; when this pass did not find as many (an entry pointing into a missing or
//! damaged pack, or at bytes no header lists), the packed entries are checked one by
//! one in key order, as before, to say which.

use narfs_core::block::verify as verify_block;
use narfs_core::{error_chain, Cid};
use rayon::prelude::*;

use crate::blocks::Entry;
use crate::pack::{self, Slot, MAX_PACK_VALUE, SLOT_LEN};
use crate::pack_table;
use crate::verify::{unhex, Run};
use crate::Error;

/// Packs decompressed and checked per parallel chunk.
const PACK_CHUNK: usize = if cfg!(test) { 2 } else { 16 };
/// Packed entries checked per parallel chunk by the fallback.
const FALLBACK_CHUNK: usize = 4096;

/// The packs pass, from the pack after the checkpoint's.
pub(crate) fn packs_phase(run: &mut Run) -> Result<(), Error> {
    let after = unhex(&run.cp.after)
        .and_then(|k| <[u8; 8]>::try_from(k.as_slice()).ok())
        .map(u64::from_be_bytes);
    let snap = run.store.blocks.read_txn()?;
    let view = snap.view();
    let infos = pack_table::each(view)?;
    let ids: Vec<u64> = infos
        .iter()
        .map(|p| p.id)
        .filter(|&id| after.is_none_or(|a| id > a))
        .collect();
    for chunk in ids.chunks(PACK_CHUNK) {
        let done: Vec<(u64, Vec<String>)> = chunk
            .par_iter()
            .map(|&id| check_pack(view, id))
            .collect::<Result<_, _>>()?;
        for (n, problems) in done {
            run.cp.blocks += n;
            run.cp.packed_ok += n;
            run.add(problems);
        }
        let last = *chunk.last().expect("chunks are not empty");
        run.reached(&pack::key(last))?;
    }
    if run.cp.packed_ok != run.cp.packed {
        fallback(run)?;
    }
    Ok(())
}

/// Pack `id`'s live blocks, verified: how many, and their problems. A pack that
/// cannot be read counts none (the fallback then says which blocks it fails).
fn check_pack(view: crate::lmdb_file::View<'_>, id: u64) -> Result<(u64, Vec<String>), Error> {
    let Ok(Some(value)) = pack_table::value(view, id) else {
        return Ok((0, Vec::new()));
    };
    let Ok((header, data)) = pack::unpack(&value) else {
        return Ok((0, Vec::new()));
    };
    let (mut n, mut problems) = (0, Vec::new());
    for (cid, slot) in header.slots(id) {
        let Some(entry) = view.get(&cid.to_bytes())? else {
            continue;
        };
        let head = view.read_prefix(&entry, MAX_PACK_VALUE, SLOT_LEN as u64)?;
        if Slot::decode(&head).ok() != Some(slot) {
            continue;
        }
        n += 1;
        let (at, len) = (slot.offset as usize, slot.len as usize);
        if let Err(e) = verify_block(&cid, &data[at..at + len]) {
            problems.push(error_chain(&e));
        }
    }
    Ok((n, problems))
}

/// Every packed entry checked on its own, in key order (its pack decompressed once
/// per chunk): what the packs pass could not account for. Problems it already
/// listed are not listed again.
fn fallback(run: &mut Run) -> Result<(), Error> {
    run.cp.blocks += run.cp.packed.saturating_sub(run.cp.packed_ok);
    let snap = run.store.blocks.read_txn()?;
    let reader = snap.reader();
    let mut chunk: Vec<Entry> = Vec::with_capacity(FALLBACK_CHUNK);
    let mut found = Vec::new();
    let mut flush = |chunk: &mut Vec<Entry>| {
        chunk.sort_by_cached_key(|(_, v)| reader.pack_of(v));
        found.extend(
            chunk
                .par_iter()
                .filter_map(|(key, value)| {
                    let cid = Cid::try_from(key.as_slice()).ok()?;
                    match reader.block(&cid, value) {
                        Ok(bytes) => verify_block(&cid, &bytes).err().map(|e| error_chain(&e)),
                        Err(e) => Some(error_chain(&e)),
                    }
                })
                .collect::<Vec<_>>(),
        );
        chunk.clear();
    };
    snap.scan_blocks(b"", &mut |key, value| {
        if reader.pack_of(&value).is_some() {
            chunk.push((key.to_vec(), value));
            if chunk.len() == FALLBACK_CHUNK {
                flush(&mut chunk);
            }
        }
        Ok(true)
    })?;
    flush(&mut chunk);
    found.retain(|p| !run.problems.list.contains(p));
    if found.is_empty() {
        // Counted differently (a writer added packs between the passes): all good.
        return Ok(());
    }
    run.add(found);
    Ok(())
}
