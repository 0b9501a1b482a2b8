//! The write session's lookups ahead ([`BlockSink::will_put`]): blocks the store
//! holds are skipped by their `put`, every other block is stored as ever, whatever
//! the batch holds and whatever commits come between the lookup and the puts.

use narfs_core::block::BlockSink;
use narfs_core::Cid;

use crate::test_blocks::{put_all, raw_blocks, store_holding};

fn blocks(tag: &str, n: u32) -> Vec<(Cid, Vec<u8>)> {
    raw_blocks(tag, 0..n)
}

#[test]
fn a_batch_mixing_held_and_absent_blocks_one_twice() {
    let (held, absent) = (blocks("held", 300), blocks("absent", 100));
    let (_dir, store) = store_holding(&held);
    // Interleaved; one held and one absent block twice.
    let mut batch = Vec::new();
    for (i, h) in held.iter().enumerate() {
        batch.push(h.clone());
        if let Some(a) = absent.get(i) {
            batch.push(a.clone());
        }
    }
    batch.push(held[5].clone());
    batch.push(absent[7].clone());
    let cids: Vec<Cid> = batch.iter().map(|(c, _)| *c).collect();
    let mut sink = store.sink().unwrap();
    sink.will_put(&cids);
    let want: Vec<Cid> = cids
        .iter()
        .filter(|c| held.iter().any(|(h, _)| h == *c))
        .copied()
        .collect();
    assert_eq!(sink.held, want);
    // A block nobody announced among them (a file node, say).
    let other = blocks("unannounced", 1).remove(0);
    for (i, (c, b)) in batch.iter().enumerate() {
        sink.put(c, b).unwrap();
        if i == 10 {
            sink.put(&other.0, &other.1).unwrap();
        }
    }
    // Every held block's put was skipped, in order.
    assert_eq!(sink.next_held, want.len());
    let w = sink.finish(None).unwrap();
    assert_eq!(w.new_blocks, 101);
    for (c, b) in held.iter().chain(&absent).chain([&other]) {
        assert_eq!(store.get_block(c).unwrap().as_ref(), Some(b), "{c}");
    }
}

#[test]
fn puts_out_of_the_announced_order_store_every_block() {
    let (held, absent) = (blocks("held", 50), blocks("absent", 50));
    let (_dir, store) = store_holding(&held);
    let all: Vec<_> = held.iter().chain(&absent).cloned().collect();
    let mut sink = store.sink().unwrap();
    sink.will_put(&all.iter().map(|(c, _)| *c).collect::<Vec<_>>());
    for (c, b) in all.iter().rev() {
        sink.put(c, b).unwrap();
    }
    assert_eq!(sink.finish(None).unwrap().new_blocks, 50);
    for (c, b) in &all {
        assert_eq!(store.get_block(c).unwrap().as_ref(), Some(b));
    }
}

#[test]
fn a_batch_that_straddles_a_commit() {
    // Blocks in the table, so lookups keep leaves of this snapshot.
    let (_dir, store) = store_holding(&blocks("before", 2000));
    let batch = blocks("batch", 200);
    let cids: Vec<Cid> = batch.iter().map(|(c, _)| *c).collect();
    let mut sink = store.sink().unwrap();
    sink.will_put(&cids);
    assert!(sink.held.is_empty());
    // Another writer commits half of the batch between the lookup and the puts.
    assert_eq!(put_all(&store, &batch[..100]), 100);
    for (c, b) in &batch[..150] {
        sink.put(c, b).unwrap();
    }
    // The next batch is looked up in the new snapshot: the half committed is held;
    // the blocks this item queued and the rest are not.
    sink.will_put(&cids);
    assert_eq!(sink.held, cids[..100]);
    for (c, b) in &batch {
        sink.put(c, b).unwrap();
    }
    assert_eq!(sink.finish(None).unwrap().new_blocks, 100);
    for (c, b) in &batch {
        assert_eq!(store.get_block(c).unwrap().as_ref(), Some(b));
    }
}
