//! What all clones of one [`SmartAlloc`](crate::SmartAlloc) share: configuration, the
//! registry of live arenas and heaps (for [`stats`](crate::SmartAlloc::stats)), and the
//! total-budget counter.

use crate::config::AllocConfig;
use crate::error::{AllocError, Budget};
use crate::heap::HeapCore;
use crate::stats::{AllocStats, Counters, Kind, KindStats};
use core::ptr::NonNull;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

static NEXT_ALLOC_ID: AtomicU64 = AtomicU64::new(1);

/// Parked task heaps kept for any thread (see [`Shared::push_spare`]): 4 MiB at most with the
/// default 16 KiB chunks.
const SPARE_LIMIT: usize = 256;

/// A parked task heap on the shared list.
struct Spare(NonNull<HeapCore>);

// SAFETY: a parked heap is referred to by nothing else; whoever takes it off the list owns it.
unsafe impl Send for Spare {}

#[derive(Default)]
struct Registry {
    slots: Vec<Option<Arc<Counters>>>,
    free: Vec<usize>,
}

/// Counters of containers that are gone.
#[derive(Default)]
struct Folded {
    allocations: AtomicU64,
    peak: AtomicU64,
}

pub(crate) struct Shared {
    /// Unique per `SmartAlloc::new` call; keys per-thread and per-task state.
    pub(crate) id: u64,
    pub(crate) config: AllocConfig,
    /// One registry per [`Kind`], so frame boundaries only sum frame arenas.
    registries: [Mutex<Registry>; 3],
    folded: [Folded; 3],
    high_water: [AtomicU64; 3],
    pub(crate) frames: AtomicU64,
    held: AtomicU64,
    pub(crate) guard_escapes: AtomicU64,
    /// Parked task heaps any thread may take: what threads that release more heaps than they
    /// start (a worker finishing tasks another one began) give to those that start more.
    spare: Mutex<Vec<Spare>>,
    /// `spare.len()`, read without the lock to skip it when the list is empty.
    spare_count: AtomicUsize,
    /// The user-facing handle (set once by `SmartAlloc::new`), for per-thread state made from
    /// the heap side; weak, so that per-thread state goes once every `SmartAlloc` clone does.
    pub(crate) handle: std::sync::OnceLock<std::sync::Weak<crate::smart::AllocHandle>>,
}

/// A container's place in the registry; unregisters (folding its counters) on drop.
pub(crate) struct Registration {
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    slot: usize,
}

impl Registration {
    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let k = self.counters.kind as usize;
        // Folded under the registry's lock, which `kind_stats` also reads the folded totals
        // under: a `stats()` call sees the container either in its slot or in the totals,
        // never in both (it used to count a container that was going away twice) or neither.
        let mut reg = self.shared.registries[k].lock();
        let folded = &self.shared.folded[k];
        folded.allocations.fetch_add(self.counters.allocations(), Relaxed);
        folded.peak.fetch_max(self.counters.peak(), Relaxed);
        reg.slots[self.slot] = None;
        reg.free.push(self.slot);
    }
}

impl Shared {
    /// Shared state for a configuration already checked by [`AllocConfig::validate`].
    pub(crate) fn new(config: AllocConfig) -> Arc<Self> {
        debug_assert_eq!(config.validate(), Ok(()));
        Arc::new(Self {
            id: NEXT_ALLOC_ID.fetch_add(1, Relaxed),
            config,
            registries: Default::default(),
            folded: Default::default(),
            high_water: Default::default(),
            frames: AtomicU64::new(0),
            held: AtomicU64::new(0),
            guard_escapes: AtomicU64::new(0),
            spare: Mutex::new(Vec::new()),
            spare_count: AtomicUsize::new(0),
            handle: std::sync::OnceLock::new(),
        })
    }

    /// Registers a new container of `kind`.
    pub(crate) fn register(self: &Arc<Self>, kind: Kind) -> Registration {
        let counters = Arc::new(Counters::new(kind));
        let mut reg = self.registries[kind as usize].lock();
        let slot = match reg.free.pop() {
            Some(i) => {
                reg.slots[i] = Some(counters.clone());
                i
            }
            None => {
                reg.slots.push(Some(counters.clone()));
                reg.slots.len() - 1
            }
        };
        drop(reg);
        Registration { shared: self.clone(), counters, slot }
    }

    /// Takes `bytes` from the total budget (chunk or large block acquisition) for a request of
    /// `requested` bytes (named in the error). Parked task heaps (this thread's and the shared
    /// spares) are a cache, so they are freed before the budget says no.
    pub(crate) fn charge(&self, bytes: usize, requested: usize, owner: u64) -> Result<(), AllocError> {
        match self.try_charge(bytes, requested, owner) {
            Err(_) if crate::local::release_parked(self.id) | self.release_spares() => {
                self.try_charge(bytes, requested, owner)
            }
            r => r,
        }
    }

    /// Puts a parked task heap (reset, referred to by nothing) on the shared list, or gives it
    /// back if the list is full.
    ///
    /// The caller holds a strong reference to this `Shared`'s `SmartAlloc` handle, so the list
    /// cannot be emptied for good (when the last clone goes) before the heap is on it.
    pub(crate) fn push_spare(&self, heap: NonNull<HeapCore>) -> Result<(), NonNull<HeapCore>> {
        let mut spare = self.spare.lock();
        if spare.len() >= SPARE_LIMIT {
            return Err(heap);
        }
        spare.push(Spare(heap));
        self.spare_count.store(spare.len(), Relaxed);
        Ok(())
    }

    /// A parked task heap from the shared list, if any.
    pub(crate) fn pop_spare(&self) -> Option<NonNull<HeapCore>> {
        if self.spare_count.load(Relaxed) == 0 {
            return None;
        }
        let mut spare = self.spare.lock();
        let heap = spare.pop()?.0;
        self.spare_count.store(spare.len(), Relaxed);
        Some(heap)
    }

    /// Heaps on the shared list (for tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn spare_len(&self) -> usize {
        self.spare.lock().len()
    }

    /// Bytes of chunks and large blocks held, as charged to the total budget (for tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn held_bytes(&self) -> u64 {
        self.held.load(Relaxed)
    }

    /// Frees the shared parked heaps; `true` if there were any.
    pub(crate) fn release_spares(&self) -> bool {
        let heaps = core::mem::take(&mut *self.spare.lock());
        self.spare_count.store(0, Relaxed);
        let any = !heaps.is_empty();
        for Spare(h) in heaps {
            // SAFETY: taken off the list, which was their only reference.
            unsafe { HeapCore::destroy_parked(h) };
        }
        any
    }

    fn try_charge(&self, bytes: usize, requested: usize, owner: u64) -> Result<(), AllocError> {
        let before = self.held.fetch_add(bytes as u64, Relaxed);
        if let Some(cap) = self.config.max_total_bytes {
            if before + bytes as u64 > cap as u64 {
                self.held.fetch_sub(bytes as u64, Relaxed);
                return Err(AllocError::budget(Budget::Total, cap, before as usize, requested, bytes, owner));
            }
        }
        Ok(())
    }

    /// Gives `bytes` back to the total budget.
    pub(crate) fn uncharge(&self, bytes: usize) {
        self.held.fetch_sub(bytes as u64, Relaxed);
    }

    /// Sums one kind over live and folded containers and records the high-water mark.
    fn kind_stats(&self, kind: Kind) -> (KindStats, u64, u64) {
        let k = kind as usize;
        let reg = self.registries[k].lock();
        let (mut live, mut allocations, mut peak, mut count, mut quarantined) = (0u64, 0u64, 0u64, 0u64, 0u64);
        for c in reg.slots.iter().flatten() {
            live += c.live();
            allocations += c.allocations();
            peak = peak.max(c.peak());
            count += u64::from(!c.parked.load(Relaxed));
            quarantined += c.quarantined.load(Relaxed);
        }
        // Read under the lock: see `Registration::drop`.
        let folded = &self.folded[k];
        allocations += folded.allocations.load(Relaxed);
        peak = peak.max(folded.peak.load(Relaxed)).max(live);
        drop(reg);
        let high = self.high_water[k].fetch_max(peak, Relaxed).max(peak);
        (KindStats { live_bytes: live, high_water_bytes: high, allocations }, count, quarantined)
    }

    pub(crate) fn stats(&self) -> AllocStats {
        let (frame, _, fq) = self.kind_stats(Kind::Frame);
        let (task, task_heaps, tq) = self.kind_stats(Kind::Task);
        let (pool, _, pq) = self.kind_stats(Kind::Pool);
        AllocStats {
            frame,
            task,
            pool,
            frames: self.frames.load(Relaxed),
            heaps_alive: task_heaps,
            quarantined_chunks: fq + tq + pq,
            guard_escapes: self.guard_escapes.load(Relaxed),
        }
    }
}
