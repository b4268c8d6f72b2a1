//! Allocation statistics: the public [`AllocStats`] and the per-container [`Counters`] it is
//! summed from.
//!
//! Each frame arena and each heap has one `Counters`. Its owner updates the `own_*` fields
//! with a relaxed load and store (a plain `mov`, no locked instruction: only one owner runs at
//! a time, see [`crate::identity`]); anyone else updates the `other_*` fields with atomic
//! read-modify-writes. [`SmartAlloc::stats`](crate::SmartAlloc::stats) sums both over every
//! registered container, plus what released containers folded in.

use core::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Figures for one kind of memory.
///
/// `#[non_exhaustive]`: made by [`SmartAlloc::stats`](crate::SmartAlloc::stats) (or
/// `Default`), read through its fields, so that figures can be added.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KindStats {
    /// Bytes of allocations alive now (requested sizes; not chunks held or cached).
    /// Zero-sized values take no memory and are not counted.
    pub live_bytes: u64,
    /// Highest `live_bytes` seen. Exact for a single arena or heap (its peak is recorded at
    /// the first free after an allocation and at every scope exit); over several arenas or
    /// heaps, the highest of their sum seen by `stats()` calls, and never below any single
    /// one's peak.
    pub high_water_bytes: u64,
    /// Allocations made so far (not counting zero-sized values).
    pub allocations: u64,
}

/// A snapshot of a [`SmartAlloc`](crate::SmartAlloc)'s memory. Exact once the operations it
/// counts have returned (and, for other threads, once they are synchronised with the caller).
///
/// `#[non_exhaustive]`: made by [`SmartAlloc::stats`](crate::SmartAlloc::stats) (or
/// `Default`), read through its fields, so that figures can be added.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AllocStats {
    /// Frame arenas (all threads).
    pub frame: KindStats,
    /// Task heaps: `TaskAlloc`s, and `pool_*` made inside a task.
    pub task: KindStats,
    /// Per-thread pools: `pool_*` outside any task.
    pub pool: KindStats,
    /// `begin_frame` calls on this `SmartAlloc` so far.
    pub frames: u64,
    /// Task heaps not yet freed (including ones kept alive only by escaped allocations).
    pub heaps_alive: u64,
    /// Chunks kept out of reuse because a handle still points into them: frame chunks of a
    /// past frame, and the chunks of released heaps with escaped allocations.
    pub quarantined_chunks: u64,
    /// Handles that outlived the `AsyncPoolGuard` scope they were made in (as counted by
    /// [`escaped`](crate::AsyncPoolGuard::escaped): empty `PoolVec`s included).
    pub guard_escapes: u64,
}

/// Which [`KindStats`] a container counts into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Frame = 0,
    Task = 1,
    Pool = 2,
}

/// Live counters of one arena or heap. See the module docs for who writes what.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) kind: Kind,
    own_live: AtomicI64,
    own_allocs: AtomicU64,
    other_live: AtomicI64,
    other_allocs: AtomicU64,
    peak: AtomicU64,
    /// `own_allocs` when the owner last recorded the peak: live bytes can only have risen
    /// above it since if the owner allocated since (a non-owner records its own peaks).
    peak_allocs: AtomicU64,
    /// Bytes held from the system (chunks and large blocks), for budgets.
    pub(crate) held: AtomicU64,
    /// Chunks quarantined (frame) or retained (released heap with escapees).
    pub(crate) quarantined: AtomicU64,
    /// A released task heap kept in a thread's cache for the next task (not "alive").
    pub(crate) parked: core::sync::atomic::AtomicBool,
    /// Released with escapees: every chunk it holds, including ones it gains afterwards (an
    /// escaped vector growing), counts in `quarantined`.
    pub(crate) retained: core::sync::atomic::AtomicBool,
}

impl Counters {
    pub(crate) fn new(kind: Kind) -> Self {
        Self {
            kind,
            own_live: AtomicI64::new(0),
            own_allocs: AtomicU64::new(0),
            other_live: AtomicI64::new(0),
            other_allocs: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            peak_allocs: AtomicU64::new(0),
            held: AtomicU64::new(0),
            quarantined: AtomicU64::new(0),
            parked: core::sync::atomic::AtomicBool::new(false),
            retained: core::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Owner made an allocation of `bytes`.
    #[inline]
    pub(crate) fn own_alloc(&self, bytes: usize) {
        self.own_live.store(self.own_live.load(Relaxed) + bytes as i64, Relaxed);
        self.own_allocs.store(self.own_allocs.load(Relaxed) + 1, Relaxed);
    }

    /// Owner freed `bytes`; records the peak first if the owner allocated since it last did
    /// (live bytes only grow through allocations, and a non-owner's allocations record the peak
    /// themselves).
    #[inline]
    pub(crate) fn own_free(&self, bytes: usize) {
        let own = self.own_live.load(Relaxed);
        let allocs = self.own_allocs.load(Relaxed);
        if allocs != self.peak_allocs.load(Relaxed) {
            self.record_own_peak(own, allocs);
        }
        self.own_live.store(own - bytes as i64, Relaxed);
    }

    /// The peak part of [`own_free`](Self::own_free): once per run of frees.
    #[inline]
    fn record_own_peak(&self, own: i64, allocs: u64) {
        let live = own + self.other_live.load(Relaxed);
        if live > 0 && live as u64 > self.peak.load(Relaxed) {
            self.peak.store(live as u64, Relaxed);
        }
        self.peak_allocs.store(allocs, Relaxed);
    }

    /// A frame scope that made `allocations` ended: with the scope allocations of `bytes`
    /// (its own and its enclosing scopes'), all alive together on top of what is live now.
    pub(crate) fn scope_ended(&self, allocations: u64, bytes: u64) {
        self.own_allocs.store(self.own_allocs.load(Relaxed) + allocations, Relaxed);
        let peak = (self.own_live.load(Relaxed) + self.other_live.load(Relaxed)).max(0) as u64 + bytes;
        if peak > self.peak.load(Relaxed) {
            self.peak.store(peak, Relaxed);
        }
    }

    /// Nothing the container handed out is alive any more (its memory was reclaimed): live
    /// bytes go to zero, after recording the peak. Only for a container nobody else touches.
    pub(crate) fn reset_live(&self) {
        let live = self.live();
        if live > self.peak.load(Relaxed) {
            self.peak.fetch_max(live, Relaxed);
        }
        self.own_live.store(0, Relaxed);
        self.other_live.store(0, Relaxed);
    }

    /// A non-owner made an allocation of `bytes`.
    pub(crate) fn other_alloc(&self, bytes: usize) {
        let live = self.other_live.fetch_add(bytes as i64, Relaxed) + bytes as i64 + self.own_live.load(Relaxed);
        self.other_allocs.fetch_add(1, Relaxed);
        self.peak.fetch_max(live.max(0) as u64, Relaxed);
    }

    /// A non-owner freed `bytes`. Records the peak first: the owner records it at its first
    /// free after allocating, and without this a peak whose frees all came from other threads
    /// was never recorded.
    pub(crate) fn other_free(&self, bytes: usize) {
        let before = self.other_live.fetch_sub(bytes as i64, Relaxed) + self.own_live.load(Relaxed);
        if before > 0 && before as u64 > self.peak.load(Relaxed) {
            self.peak.fetch_max(before as u64, Relaxed);
        }
    }

    /// Bytes alive now.
    pub(crate) fn live(&self) -> u64 {
        (self.own_live.load(Relaxed) + self.other_live.load(Relaxed)).max(0) as u64
    }

    /// Allocations the owner made so far.
    #[inline]
    pub(crate) fn own_allocations(&self) -> u64 {
        self.own_allocs.load(Relaxed)
    }

    /// Allocations made so far.
    pub(crate) fn allocations(&self) -> u64 {
        self.own_allocs.load(Relaxed) + self.other_allocs.load(Relaxed)
    }

    /// Highest live bytes seen, including now.
    pub(crate) fn peak(&self) -> u64 {
        self.peak.fetch_max(self.live(), Relaxed).max(self.live())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn live_allocations_and_peak() {
        let c = Counters::new(Kind::Task);
        c.own_alloc(100);
        c.own_alloc(50);
        c.own_free(100);
        c.other_free(50);
        c.other_alloc(10);
        assert_eq!(c.live(), 10);
        assert_eq!(c.allocations(), 3);
        assert_eq!(c.peak(), 150);
    }

    #[test]
    fn peak_is_recorded_once_per_run_of_frees_and_never_missed() {
        let c = Counters::new(Kind::Task);
        // A rise, then a run of frees: the top is recorded at the first free.
        c.own_alloc(100);
        c.own_alloc(20);
        c.own_free(100);
        c.own_free(20);
        assert_eq!(c.peak.load(Relaxed), 120);
        // A lower rise changes nothing; a higher one after a free is caught again.
        c.own_alloc(60);
        c.own_free(60);
        c.own_alloc(90);
        c.own_alloc(50);
        c.own_free(50);
        assert_eq!(c.peak.load(Relaxed), 140);
        // A non-owner's allocation counts with what the owner holds (90 + 200), and the owner's
        // next frees (no owner allocation since its last record) leave it alone.
        c.other_alloc(200);
        c.own_free(90);
        c.other_free(200);
        assert_eq!(c.peak.load(Relaxed), 290);
        // A scope's burst, then an owner allocation on top of a non-owner's.
        c.scope_ended(3, 400);
        assert_eq!(c.peak.load(Relaxed), 400);
        c.other_alloc(300);
        c.own_alloc(250);
        c.own_free(250);
        assert_eq!((c.peak(), c.live()), (550, 300));
    }
}
