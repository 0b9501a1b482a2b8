//! The decompressed packs the readers of one store share in this process.
//!
//! Reading one packed block decompresses its whole pack, so the next blocks of an item
//! (mostly in the same pack) come from here. Profiling a decode from a packed store
//! (`perf record`, FastCDC 4/16/64 after `repack` at zstd -19) showed where the time
//! went besides zstd itself: one core decompressing while the other waited for the
//! same pack, and fresh page faults on every new pack buffer. So:
//!
//! - **read-ahead**: a miss on the pack after the last one loaded (reads going
//!   through packs in write order: an item decoded as it was written) loads that pack
//!   and the next one at once, the next on a scoped thread of its own, so the two
//!   cores decompress two packs side by side while the decoder's threads wait for the
//!   first. A miss elsewhere (an item reading older items' packs out of order) loads
//!   only the pack asked for: a wrong guess costs a whole pack's decompression.
//! - **recycling**: buffers of packs evicted from the cache, and zstd decompression
//!   contexts, are kept (a few) and reused, so a pack is decompressed into pages that
//!   are already mapped, by a context whose tables are already allocated.
//!
//! A pack being decompressed by one thread is waited for by the others rather than
//! decompressed again (decode reads the leaves of a file in parallel: they are mostly
//! in one pack). Pack ids are never reused, so a cached pack is never stale.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use zstd::zstd_safe::DCtx;

/// Bytes of decompressed packs a [`Cache`] keeps.
pub(crate) const CACHE_BYTES: usize = 32 << 20;
/// Buffers of evicted packs, and decompression contexts, kept for reuse.
const SPARE: usize = 4;

/// Decompresses pack `id` into the buffer given (its contents are garbage, its
/// capacity is reused) with the context given; `None`: no such pack.
pub(crate) type Load<'a, E> =
    dyn Fn(u64, Vec<u8>, &mut DCtx<'static>) -> Result<Option<Vec<u8>>, E> + Sync + 'a;

/// Decompressed packs, the most recently used kept up to [`CACHE_BYTES`].
#[derive(Debug, Default)]
pub(crate) struct Cache {
    state: Mutex<State>,
    loaded: Condvar,
    /// Packs decompressed and their bytes, for read amplification figures (packs
    /// read ahead included).
    pub(crate) unpacked: AtomicU64,
    pub(crate) unpacked_bytes: AtomicU64,
}

#[derive(Default)]
struct State {
    ready: VecDeque<(u64, Arc<Vec<u8>>)>,
    bytes: usize,
    loading: HashSet<u64>,
    /// The highest pack the last miss loaded (read ahead included).
    last: Option<u64>,
    spare: Vec<Vec<u8>>,
    dctxs: Vec<DCtx<'static>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("packs", &self.ready.len())
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl State {
    fn has(&self, id: u64) -> bool {
        self.loading.contains(&id) || self.ready.iter().any(|(p, _)| *p == id)
    }

    fn scratch(&mut self) -> (Vec<u8>, DCtx<'static>) {
        let buf = self.spare.pop().unwrap_or_default();
        let dctx = self.dctxs.pop().unwrap_or_else(DCtx::create);
        (buf, dctx)
    }

    fn put_back(&mut self, dctx: DCtx<'static>) {
        if self.dctxs.len() < SPARE {
            self.dctxs.push(dctx);
        }
    }
}

impl Cache {
    /// Pack `id` decompressed, from the cache or by `load` (`None`: no such pack);
    /// the next pack read ahead when reads go through packs in order.
    pub(crate) fn get<E: Send>(
        &self,
        id: u64,
        load: &Load<'_, E>,
    ) -> Result<Option<Arc<Vec<u8>>>, E> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(i) = st.ready.iter().position(|(p, _)| *p == id) {
                let hit = st.ready.remove(i).expect("found");
                let data = hit.1.clone();
                st.ready.push_back(hit);
                return Ok(Some(data));
            }
            if !st.loading.contains(&id) {
                break;
            }
            st = self.loaded.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        let in_order = st.last.is_none_or(|l| l.checked_add(1) == Some(id));
        let ahead = id.checked_add(1).filter(|&n| in_order && !st.has(n));
        st.last = Some(ahead.unwrap_or(id));
        st.loading.insert(id);
        let (buf, mut dctx) = st.scratch();
        let mut next = ahead.map(|n| {
            st.loading.insert(n);
            (n, st.scratch())
        });
        drop(st);
        let (r, r_next) = match next.as_mut() {
            None => (load(id, buf, &mut dctx), None),
            Some((n, (buf2, dctx2))) => std::thread::scope(|s| {
                let buf2 = std::mem::take(buf2);
                let ahead = s.spawn(move || load(*n, buf2, dctx2));
                let r = load(id, buf, &mut dctx);
                // A failed read-ahead is no error: the pack is read again if asked.
                let r_next = ahead.join().ok().and_then(|r| r.ok()).flatten();
                (r, r_next)
            }),
        };
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.loading.remove(&id);
        st.put_back(dctx);
        let out = r.map(|o| o.map(|data| self.insert(&mut st, id, data)));
        if let Some((n, (_, dctx2))) = next {
            st.loading.remove(&n);
            st.put_back(dctx2);
            if let Some(data) = r_next {
                self.insert(&mut st, n, data);
            }
        }
        drop(st);
        self.loaded.notify_all();
        out
    }

    /// Caches pack `id`'s `data`, evicting the least recently used beyond
    /// [`CACHE_BYTES`] (their buffers kept for reuse when no reader holds them).
    fn insert(&self, st: &mut State, id: u64, data: Vec<u8>) -> Arc<Vec<u8>> {
        self.unpacked.fetch_add(1, Ordering::Relaxed);
        self.unpacked_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let data = Arc::new(data);
        st.bytes += data.len();
        st.ready.push_back((id, data.clone()));
        while st.bytes > CACHE_BYTES && st.ready.len() > 1 {
            let (_, old) = st.ready.pop_front().expect("not empty");
            st.bytes -= old.len();
            if let Ok(buf) = Arc::try_unwrap(old) {
                if st.spare.len() < SPARE {
                    st.spare.push(buf);
                }
            }
        }
        data
    }

    /// Bytes of packs held (tests).
    #[cfg(test)]
    pub(crate) fn held(&self) -> (usize, Vec<u64>) {
        let st = self.state.lock().unwrap();
        (st.bytes, st.ready.iter().map(|(id, _)| *id).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn counting(
        loads: &AtomicUsize,
        size: usize,
    ) -> impl Fn(u64, Vec<u8>, &mut DCtx<'static>) -> Result<Option<Vec<u8>>, ()> + Sync + '_ {
        move |id, mut buf, _| {
            loads.fetch_add(1, Ordering::Relaxed);
            if id >= 100 {
                return Ok(None);
            }
            buf.clear();
            buf.resize(size, id as u8);
            Ok(Some(buf))
        }
    }

    #[test]
    fn the_cache_keeps_recent_packs_within_its_bytes() {
        let c = Cache::default();
        let loads = AtomicUsize::new(0);
        let load = counting(&loads, 1000);
        // 1 loads 2 ahead (the first miss is in order); 5 is out of order: alone.
        for id in [1, 2, 1, 1, 2, 5, 5] {
            assert_eq!(c.get(id, &load).unwrap().unwrap()[0], id as u8);
        }
        assert_eq!(loads.load(Ordering::Relaxed), 3);
        assert_eq!(c.held().1, vec![1, 2, 5]);
        // No such pack: `None`, nothing cached.
        assert!(c.get(100, &load).unwrap().is_none());
        // Larger than the cache: the older go.
        let big = counting(&loads, CACHE_BYTES / 4);
        for id in 10..20 {
            c.get(id, &big).unwrap().unwrap();
        }
        let (bytes, held) = c.held();
        assert!(bytes <= CACHE_BYTES, "{bytes}");
        assert!(!held.contains(&1), "{held:?}");
    }

    #[test]
    fn reads_in_order_load_the_next_pack_ahead_and_others_do_not() {
        let c = Cache::default();
        let loads = AtomicUsize::new(0);
        let load = counting(&loads, 10);
        for id in 0..10 {
            c.get(id, &load).unwrap().unwrap();
        }
        // Every other pack was a hit, read ahead by the miss before it.
        assert_eq!(loads.load(Ordering::Relaxed), 10);
        assert_eq!(c.unpacked.load(Ordering::Relaxed), 10);
        loads.store(0, Ordering::Relaxed);
        for id in [50, 40, 30, 20] {
            c.get(id, &load).unwrap().unwrap();
        }
        assert_eq!(loads.load(Ordering::Relaxed), 4);
        assert!(!c.held().1.contains(&41));
    }

    #[test]
    fn an_error_is_the_callers_only_for_the_pack_asked_for() {
        let c = Cache::default();
        let fail_ahead = |id: u64, _: Vec<u8>, _: &mut DCtx<'static>| match id {
            7 => Err("damaged"),
            _ => Ok(Some(vec![id as u8])),
        };
        // 6 reads 7 ahead, which fails: 6 is still served, 7 not cached.
        assert_eq!(c.get(6, &fail_ahead).unwrap().unwrap()[0], 6);
        assert_eq!(c.held().1, vec![6]);
        assert_eq!(c.get(7, &fail_ahead), Err("damaged"));
    }

    #[test]
    fn readers_of_one_pack_share_one_load() {
        let c = Cache::default();
        let loads = AtomicUsize::new(0);
        let load = counting(&loads, 1 << 20);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| c.get(3, &load).unwrap().unwrap());
            }
        });
        // 3, and 4 ahead: once each, whatever the threads' order.
        assert_eq!(loads.load(Ordering::Relaxed), 2);
    }
}
