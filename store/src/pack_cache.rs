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
//!   first. Each pack is cached, and the readers waiting for it woken, as soon as it
//!   is loaded: the pack asked for does not wait for the next. (The next as the other
//!   half of a `rayon::join` instead, no thread started per pack, saved a little
//!   system time but queued the next pack behind the reader's own whenever the other
//!   core was busy: slower walls, docs/BENCHMARKS.md "lz4read".) A miss elsewhere (an item
//!   reading older items' packs out of order) loads only the pack asked for: a wrong
//!   guess costs a whole pack's decompression.
//! - **hinted read-ahead**: the decoder says which blocks it will read next (the
//!   leaves after the run it is verifying, the next entries of a directory:
//!   [`BlockSource::will_need`](narfs_core::block::BlockSource::will_need)); the
//!   store looks up their packs and decompresses them on a rayon worker
//!   ([`Cache::load_ahead`], driven by `crate::read_ahead`) while the decoder's
//!   threads verify what they have. Bounded: at most [`AHEAD_PACKS`] packs loaded
//!   ahead and not read yet; such a pack is an ordinary cache entry (evicted like any
//!   other, which frees its place), so wrong hints cost a decompression, never
//!   memory beyond the cache or a wrong answer.
//! - **read through first**: when the cache is full, a pack whose bytes readers have
//!   all taken goes before the least recently used one. A grouped store
//!   ([`crate::repack_plan`]) lays an item's groups out in its DAG's order, each group
//!   a run of packs read front to back, so the walk's first phase (directories and
//!   small files spread over ~14 groups) cycles through more packs than the cache
//!   holds: plain LRU evicted each pack just before its next block was asked for,
//!   and it was decompressed again (read amplification ~1.11 on the large corpus). A
//!   pack read through is seldom asked for again in the same walk; one asked for
//!   again is only decompressed again, as before.
//! - **recycling**: buffers of packs evicted from the cache, and zstd decompression
//!   contexts, are kept (a few) and reused, so a pack is decompressed into pages that
//!   are already mapped, by a context whose tables are already allocated. (The
//!   buffers packs' stored values are read into are not: kept too, they saved no
//!   measurable page faults and held ~2 MiB more, docs/BENCHMARKS.md "lz4read".)
//!
//! A pack being decompressed by one thread is waited for by the others rather than
//! decompressed again (decode reads the leaves of a file in parallel: they are mostly
//! in one pack). Pack ids are never reused, so a cached pack is never stale.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use zstd::zstd_safe::DCtx;

/// Bytes of decompressed packs a [`Cache`] keeps, with the buffers of evicted packs it
/// keeps for reuse; beside them only the packs being decompressed.
pub(crate) const CACHE_BYTES: usize = 24 << 20;
/// Buffers of evicted packs, and decompression contexts, kept for reuse (the
/// buffers within [`CACHE_BYTES`], beside the packs cached).
const SPARE: usize = 4;
/// Most packs loaded ahead on a hint and not read yet (those being loaded included):
/// with 2 MiB packs, 8 MiB ahead of the decoder, a quarter of the cache.
pub(crate) const AHEAD_PACKS: usize = 4;

/// What [`Cache::load_ahead`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ahead {
    /// The pack was decompressed into the cache.
    Loaded,
    /// Nothing to do: cached, being loaded, absent, or its load failed (a reader
    /// asking for it loads it again and gets the error).
    Skipped,
    /// [`AHEAD_PACKS`] are ahead already: try again once some are read.
    Full,
}

/// Decompresses pack `id` into the buffer given (its contents are garbage, its
/// capacity is reused) with the context given; `None`: no such pack.
pub(crate) type Load<'a, E> =
    dyn Fn(u64, Vec<u8>, &mut DCtx<'static>) -> Result<Option<Vec<u8>>, E> + Sync + 'a;

/// Capacity of the buffers kept for reuse: counted in [`CACHE_BYTES`].
fn spare_bytes(spare: &[Vec<u8>]) -> usize {
    spare.iter().map(Vec::capacity).sum()
}

/// Decompressed packs, the most recently used kept up to [`CACHE_BYTES`].
#[derive(Debug, Default)]
pub(crate) struct Cache {
    state: Mutex<State>,
    loaded: Condvar,
    /// Packs decompressed and their bytes, for read amplification figures (packs
    /// read ahead included).
    pub(crate) unpacked: AtomicU64,
    pub(crate) unpacked_bytes: AtomicU64,
    /// Packs a reader found neither cached nor being loaded, and decompressed itself
    /// while the decoder waited (a pack read ahead of the walk is never one).
    pub(crate) missed: AtomicU64,
    /// Times a reader found its pack being decompressed by another thread, and waited.
    pub(crate) waited: AtomicU64,
    /// The pack a reader asked for last, plus one (0: none yet): where the decoder
    /// is, for the read-ahead of a recorded pack order (`crate::read_ahead`).
    pub(crate) reading: AtomicU64,
}

#[derive(Default)]
struct State {
    ready: VecDeque<Entry>,
    bytes: usize,
    loading: HashSet<u64>,
    /// Packs loaded (or being loaded) ahead on a hint and not read yet.
    ahead: usize,
    /// The highest pack the last miss loaded (read ahead included).
    last: Option<u64>,
    spare: Vec<Vec<u8>>,
    dctxs: Vec<DCtx<'static>>,
}

/// A decompressed pack in the cache.
struct Entry {
    id: u64,
    data: Arc<Vec<u8>>,
    /// Loaded ahead on a hint and not read since: counted in [`State::ahead`].
    fresh: bool,
    /// Bytes of blocks readers took from it (a block taken twice counts twice: an
    /// estimate, it only orders evictions).
    taken: usize,
}

impl Entry {
    /// Readers took as many bytes as the pack holds: evicted first.
    fn read_through(&self) -> bool {
        self.taken >= self.data.len()
    }
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
        self.loading.contains(&id) || self.ready.iter().any(|e| e.id == id)
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
    /// Pack `id` decompressed, from the cache or by `load` (`None`: no such pack), for
    /// a reader taking `take` bytes of it (one block); the next pack read ahead when
    /// reads go through packs in order.
    pub(crate) fn get<E: Send>(
        &self,
        id: u64,
        take: usize,
        load: &Load<'_, E>,
    ) -> Result<Option<Arc<Vec<u8>>>, E> {
        // Stored only when it changes: readers share the cache line.
        if self.reading.load(Ordering::Relaxed) != id.wrapping_add(1) {
            self.reading.store(id.wrapping_add(1), Ordering::Relaxed);
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(i) = st.ready.iter().position(|e| e.id == id) {
                let mut hit = st.ready.remove(i).expect("found");
                if std::mem::take(&mut hit.fresh) {
                    st.ahead -= 1;
                }
                hit.taken = hit.taken.saturating_add(take);
                let data = hit.data.clone();
                st.ready.push_back(hit);
                return Ok(Some(data));
            }
            if !st.loading.contains(&id) {
                break;
            }
            self.waited.fetch_add(1, Ordering::Relaxed);
            st = self.loaded.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        self.missed.fetch_add(1, Ordering::Relaxed);
        let in_order = st.last.is_none_or(|l| l.checked_add(1) == Some(id));
        let ahead = id.checked_add(1).filter(|&n| in_order && !st.has(n));
        st.last = Some(ahead.unwrap_or(id));
        st.loading.insert(id);
        let (buf, dctx) = st.scratch();
        let next = ahead.map(|n| {
            st.loading.insert(n);
            (n, st.scratch())
        });
        drop(st);
        // Should a load panic, the ids leave `loading` anyway: no reader waits forever.
        let _unmark = Unmark(self, [Some(id), ahead], false);
        let own = |mut dctx: DCtx<'static>| {
            let r = load(id, buf, &mut dctx);
            self.loaded(id, r, dctx, take)
        };
        let Some((n, (buf2, mut dctx2))) = next else {
            return own(dctx);
        };
        let guess = move || {
            // A failed read-ahead is no error: the pack is read again if asked.
            let r = load(n, buf2, &mut dctx2).ok().flatten();
            let _ = self.loaded(n, Ok::<_, E>(r), dctx2, 0);
        };
        std::thread::scope(|s| {
            s.spawn(guess);
            own(dctx)
        })
    }

    /// Caches what the load of pack `id` gave (an error or no pack: nothing), takes
    /// `id` out of [`State::loading`], keeps `dctx` for the next load and wakes the
    /// readers waiting for the pack.
    fn loaded<E>(
        &self,
        id: u64,
        r: Result<Option<Vec<u8>>, E>,
        dctx: DCtx<'static>,
        take: usize,
    ) -> Result<Option<Arc<Vec<u8>>>, E> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.loading.remove(&id);
        st.put_back(dctx);
        let out = r.map(|o| o.map(|data| self.insert(&mut st, id, data, false, take)));
        drop(st);
        self.loaded.notify_all();
        out
    }

    /// Decompresses pack `id` into the cache ahead of the readers (on a hint), unless
    /// it is there or being loaded, or [`AHEAD_PACKS`] are ahead already. Readers
    /// asking for it meanwhile wait for this load rather than repeat it.
    pub(crate) fn load_ahead<E: Send>(&self, id: u64, load: &Load<'_, E>) -> Ahead {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.has(id) {
            return Ahead::Skipped;
        }
        if st.ahead >= AHEAD_PACKS {
            return Ahead::Full;
        }
        st.ahead += 1;
        st.loading.insert(id);
        let (buf, mut dctx) = st.scratch();
        drop(st);
        let unmark = Unmark(self, [Some(id), None], true);
        let r = load(id, buf, &mut dctx);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.put_back(dctx);
        st.loading.remove(&id);
        let done = match r {
            Ok(Some(data)) => {
                self.insert(&mut st, id, data, true, 0);
                Ahead::Loaded
            }
            _ => {
                st.ahead -= 1;
                Ahead::Skipped
            }
        };
        drop(st);
        drop(unmark);
        done
    }

    /// Whether a pack could be loaded ahead now (fewer than [`AHEAD_PACKS`] are).
    pub(crate) fn has_room_ahead(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).ahead < AHEAD_PACKS
    }

    /// Caches pack `id`'s `data`, evicting beyond [`CACHE_BYTES`] the packs read
    /// through, then the least recently used (their buffers kept for reuse when no
    /// reader holds them). `fresh`: loaded ahead on a hint (already counted in
    /// [`State::ahead`]); `taken`: bytes a reader takes of it now.
    fn insert(
        &self,
        st: &mut State,
        id: u64,
        data: Vec<u8>,
        fresh: bool,
        taken: usize,
    ) -> Arc<Vec<u8>> {
        self.unpacked.fetch_add(1, Ordering::Relaxed);
        self.unpacked_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let data = Arc::new(data);
        st.bytes += data.len();
        st.ready.push_back(Entry {
            id,
            data: data.clone(),
            fresh,
            taken,
        });
        while st.bytes > CACHE_BYTES && st.ready.len() > 1 {
            // Never the pack just inserted (the last): its reader has not read it yet.
            let last = st.ready.len() - 1;
            let at = st.ready.iter().take(last).position(Entry::read_through);
            let old = st.ready.remove(at.unwrap_or(0)).expect("not empty");
            st.bytes -= old.data.len();
            if old.fresh {
                st.ahead -= 1;
            }
            if let Ok(buf) = Arc::try_unwrap(old.data) {
                st.spare.push(buf);
            }
        }
        // The kept buffers are within the same bytes: beside full packs they were ~8
        // MiB more, which took a decode of 46,469 small files to 60–66 MiB of peak
        // RssAnon (53 with them counted). The one a load takes leaves the count.
        while st.spare.len() > SPARE || st.bytes + spare_bytes(&st.spare) > CACHE_BYTES {
            st.spare.pop();
        }
        data
    }

    /// Bytes of packs held (tests).
    #[cfg(test)]
    pub(crate) fn held(&self) -> (usize, Vec<u64>) {
        let st = self.state.lock().unwrap();
        (st.bytes, st.ready.iter().map(|e| e.id).collect())
    }

    /// Bytes of the buffers kept for reuse (tests).
    #[cfg(test)]
    pub(crate) fn spare(&self) -> usize {
        spare_bytes(&self.state.lock().unwrap().spare)
    }

    /// Packs counted ahead (tests).
    #[cfg(test)]
    pub(crate) fn ahead(&self) -> usize {
        self.state.lock().unwrap().ahead
    }
}

/// Wakes the readers waiting for its ids when dropped; on a panic first takes the ids
/// out of [`State::loading`] (a load that returns does that itself, under the lock that
/// caches the pack: taking them out again later could unmark another reader's new load
/// of the same id); `.2`: a load ahead, whose place a panic gives back.
struct Unmark<'c>(&'c Cache, [Option<u64>; 2], bool);

impl Drop for Unmark<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut st = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
            for id in self.1.iter().flatten() {
                st.loading.remove(id);
            }
            if self.2 {
                st.ahead -= 1;
            }
        }
        self.0.loaded.notify_all();
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
            assert_eq!(c.get(id, 1, &load).unwrap().unwrap()[0], id as u8);
        }
        assert_eq!(loads.load(Ordering::Relaxed), 3);
        assert_eq!(c.held().1, vec![1, 2, 5]);
        // Two misses (1, with 2 guessed beside it, and 5); nobody waited.
        assert_eq!(c.missed.load(Ordering::Relaxed), 2);
        assert_eq!(c.waited.load(Ordering::Relaxed), 0);
        // No such pack: `None`, nothing cached.
        assert!(c.get(100, 1, &load).unwrap().is_none());
        // Larger than the cache: the older go.
        let big = counting(&loads, CACHE_BYTES / 4);
        for id in 10..20 {
            c.get(id, 1, &big).unwrap().unwrap();
        }
        let (bytes, held) = c.held();
        assert!(bytes <= CACHE_BYTES, "{bytes}");
        assert!(!held.contains(&1), "{held:?}");
    }

    #[test]
    fn the_buffers_kept_for_reuse_are_within_the_cache_bytes() {
        let c = Cache::default();
        let loads = AtomicUsize::new(0);
        // Packs of a sixth of the cache, read out of order (no read-ahead): each miss
        // past the sixth evicts one, whose buffer the next miss reuses.
        let load = counting(&loads, CACHE_BYTES / 6);
        for id in (0..40).rev() {
            c.get(id, 1, &load).unwrap().unwrap();
            let (bytes, _) = c.held();
            let spare = c.spare();
            assert!(bytes + spare <= CACHE_BYTES, "{bytes} + {spare}");
        }
        // The cache still holds all it can.
        assert!(c.held().0 > CACHE_BYTES - CACHE_BYTES / 6, "{:?}", c.held());
    }

    #[test]
    fn reads_in_order_load_the_next_pack_ahead_and_others_do_not() {
        let c = Cache::default();
        let loads = AtomicUsize::new(0);
        let load = counting(&loads, 10);
        for id in 0..10 {
            c.get(id, 1, &load).unwrap().unwrap();
        }
        // Every other pack was a hit, read ahead by the miss before it.
        assert_eq!(loads.load(Ordering::Relaxed), 10);
        assert_eq!(c.unpacked.load(Ordering::Relaxed), 10);
        loads.store(0, Ordering::Relaxed);
        for id in [50, 40, 30, 20] {
            c.get(id, 1, &load).unwrap().unwrap();
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
        assert_eq!(c.get(6, 1, &fail_ahead).unwrap().unwrap()[0], 6);
        assert_eq!(c.held().1, vec![6]);
        assert_eq!(c.get(7, 1, &fail_ahead), Err("damaged"));
    }

    #[test]
    fn a_pack_is_served_before_the_one_read_ahead_beside_it_is_loaded() {
        let c = Cache::default();
        let (release, held_back) = std::sync::mpsc::channel::<()>();
        let held_back = Mutex::new(held_back);
        // Pack 4 loads only once released.
        let load = |id: u64, mut buf: Vec<u8>, _: &mut DCtx<'static>| {
            if id == 4 {
                held_back.lock().unwrap().recv().unwrap();
            }
            buf.clear();
            buf.resize(10, id as u8);
            Ok::<_, ()>(Some(buf))
        };
        std::thread::scope(|s| {
            // The first miss is in order: 3 is loaded, and 4 beside it.
            let first = s.spawn(|| c.get(3, 1, &load).unwrap().unwrap()[0]);
            let start = std::time::Instant::now();
            while !c.held().1.contains(&3) {
                if start.elapsed() > std::time::Duration::from_secs(10) {
                    release.send(()).unwrap();
                    panic!("pack 3 waited for pack 4");
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            // Cached while 4 still loads: another reader has it (a hit, no load).
            assert_eq!(c.get(3, 1, &load).unwrap().unwrap()[0], 3);
            assert_eq!(c.held().1, vec![3]);
            release.send(()).unwrap();
            assert_eq!(first.join().unwrap(), 3);
        });
        assert_eq!(c.held().1, vec![3, 4]);
        assert_eq!(c.missed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn readers_of_one_pack_share_one_load() {
        let c = Cache::default();
        let loads = AtomicUsize::new(0);
        let load = counting(&loads, 1 << 20);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| c.get(3, 1, &load).unwrap().unwrap());
            }
        });
        // 3, and 4 ahead: once each, whatever the threads' order.
        assert_eq!(loads.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn packs_loaded_ahead_are_hits_and_bounded_until_read() {
        let c = Cache::default();
        let loads = AtomicUsize::new(0);
        let load = counting(&loads, 1000);
        for id in 10..10 + AHEAD_PACKS as u64 {
            assert_eq!(c.load_ahead(id, &load), Ahead::Loaded);
        }
        assert_eq!(c.ahead(), AHEAD_PACKS);
        // Full: nothing more is loaded until a pack ahead is read.
        assert_eq!(c.load_ahead(50, &load), Ahead::Full);
        assert!(!c.has_room_ahead());
        assert_eq!(loads.load(Ordering::Relaxed), AHEAD_PACKS);
        // Reading one is a hit (no load, no miss), and frees its place.
        assert_eq!(c.get(10, 1, &load).unwrap().unwrap()[0], 10);
        assert_eq!(c.missed.load(Ordering::Relaxed), 0);
        assert_eq!(loads.load(Ordering::Relaxed), AHEAD_PACKS);
        assert_eq!(c.ahead(), AHEAD_PACKS - 1);
        // Cached or absent: skipped, no place taken.
        assert_eq!(c.load_ahead(11, &load), Ahead::Skipped);
        assert_eq!(c.load_ahead(100, &load), Ahead::Skipped);
        assert_eq!(c.ahead(), AHEAD_PACKS - 1);
        assert_eq!(c.load_ahead(50, &load), Ahead::Loaded);
    }

    #[test]
    fn packs_read_through_go_before_the_least_recently_used() {
        let c = Cache::default();
        let quarter = CACHE_BYTES / 4;
        // Packs 10, 20, ...: the next pack, guessed ahead on a miss, is none.
        let big = |id: u64, mut buf: Vec<u8>, _: &mut DCtx<'static>| {
            if !id.is_multiple_of(10) {
                return Ok::<_, ()>(None);
            }
            buf.clear();
            buf.resize(quarter, id as u8);
            Ok(Some(buf))
        };
        // 10, 20, 30, 40 fill the cache; a reader takes all of 30 (in two halves),
        // some of 10.
        for id in [10, 20, 30, 40] {
            c.get(id, 1, &big).unwrap().unwrap();
        }
        c.get(30, quarter / 2, &big).unwrap().unwrap();
        c.get(30, quarter / 2, &big).unwrap().unwrap();
        c.get(10, 100, &big).unwrap().unwrap();
        // 50 evicts 30 (read through), not 20 (the least recently used).
        c.get(50, 1, &big).unwrap().unwrap();
        assert_eq!(c.held().1, vec![20, 40, 10, 50]);
        // None read through: the least recently used goes.
        c.get(60, 1, &big).unwrap().unwrap();
        assert_eq!(c.held().1, vec![40, 10, 50, 60]);
        // A pack its loading reader takes whole is not evicted by its own insertion,
        // but first by the next.
        c.get(70, quarter, &big).unwrap().unwrap();
        assert_eq!(c.held().1, vec![10, 50, 60, 70]);
        c.get(80, 1, &big).unwrap().unwrap();
        assert_eq!(c.held().1, vec![10, 50, 60, 80]);
    }

    #[test]
    fn wrong_guesses_are_evicted_and_give_their_place_back() {
        let c = Cache::default();
        let loads = AtomicUsize::new(0);
        let big = counting(&loads, CACHE_BYTES / 8);
        for id in 0..AHEAD_PACKS as u64 {
            assert_eq!(c.load_ahead(id, &big), Ahead::Loaded);
        }
        assert_eq!(c.ahead(), AHEAD_PACKS);
        // The reader goes elsewhere (out of order: no guess of its own): the packs
        // read ahead age out of the cache, and the place ahead is free again.
        for id in (20..40).rev() {
            c.get(id, 1, &big).unwrap().unwrap();
        }
        let (bytes, held) = c.held();
        assert!(bytes <= CACHE_BYTES, "{bytes}");
        assert!(held.iter().all(|&id| id >= 20), "{held:?}");
        assert_eq!(c.ahead(), 0);
        assert!(c.has_room_ahead());
    }

    #[test]
    fn a_damaged_pack_ahead_is_the_readers_error_not_a_hang() {
        let c = Cache::default();
        let damaged = |id: u64, _: Vec<u8>, _: &mut DCtx<'static>| match id {
            7 => Err("damaged"),
            _ => Ok(Some(vec![id as u8])),
        };
        assert_eq!(c.load_ahead(7, &damaged), Ahead::Skipped);
        assert_eq!(c.ahead(), 0);
        assert_eq!(c.get(7, 1, &damaged), Err("damaged"));
        // A load ahead that panics leaves no pack marked as loading, nor its place.
        let panics = |_: u64, _: Vec<u8>, _: &mut DCtx<'static>| -> Result<Option<Vec<u8>>, &str> {
            panic!("a bug")
        };
        let r =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.load_ahead(20, &panics)));
        assert!(r.is_err());
        assert_eq!(c.ahead(), 0);
        assert_eq!(c.get(20, 1, &damaged).unwrap().unwrap()[0], 20);
    }

    #[test]
    fn a_reader_waits_for_the_load_ahead_of_its_pack() {
        let c = Cache::default();
        let loads = AtomicUsize::new(0);
        let (started, go) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        // The first load blocks until let go; any other fails at once.
        let slow = |id: u64, _: Vec<u8>, _: &mut DCtx<'static>| {
            if loads.load(Ordering::SeqCst) > 0 {
                return Err("loaded twice");
            }
            loads.store(1, Ordering::SeqCst);
            started.wait();
            go.wait();
            Ok(Some(vec![id as u8; 10]))
        };
        std::thread::scope(|s| {
            let ahead = s.spawn(|| c.load_ahead(3, &slow));
            started.wait();
            // Pack 3 is being loaded ahead: the reader waits for it rather than
            // load it a second time.
            let reader = s.spawn(|| c.get(3, 1, &slow).unwrap().unwrap()[0]);
            // Time for the reader to reach the cache (if it does not wait, it fails).
            std::thread::sleep(std::time::Duration::from_millis(50));
            go.wait();
            assert_eq!(ahead.join().unwrap(), Ahead::Loaded);
            assert_eq!(reader.join().unwrap(), 3);
        });
        // The reader waited (at least once: a wake-up may be spurious), missed nothing.
        assert!(c.waited.load(Ordering::Relaxed) >= 1);
        assert_eq!(c.missed.load(Ordering::Relaxed), 0);
        assert_eq!(loads.load(Ordering::Relaxed), 1);
    }
}
