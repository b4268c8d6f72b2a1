//! What all clones of one [`SmartAlloc`](crate::SmartAlloc) share: configuration, the
//! registry of live arenas and heaps (for [`stats`](crate::SmartAlloc::stats)), and the
//! total-budget counter.
//!
//! Heaps and arenas hold it, so it names nothing above it: what the placement layer keeps per
//! `SmartAlloc` (parked heaps, the handle per-thread state is made from) it reaches through
//! [`Above`], which that layer implements.

use crate::config::AllocConfig;
use crate::error::{AllocError, Budget};
use crate::stats::{AllocStats, Counters, Kind, KindStats};
use core::any::Any;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock, Weak};

static NEXT_ALLOC_ID: AtomicU64 = AtomicU64::new(1);

/// The placement layer's state of one `SmartAlloc`, as this layer sees it.
pub(crate) trait Above: Send + Sync {
    /// Frees what that layer caches (parked heaps) so that the budget can say yes; `true` if
    /// anything was freed.
    fn reclaim(&self) -> bool;

    /// The state itself, for that layer to downcast.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

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
    /// The placement layer's state (set once, when the `SmartAlloc` is made); weak, so that
    /// it goes once every `SmartAlloc` clone does.
    above: OnceLock<Weak<dyn Above>>,
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
            above: OnceLock::new(),
        })
    }

    /// Links the placement layer's state; only the first call takes effect.
    pub(crate) fn set_above(&self, above: Weak<dyn Above>) {
        let _ = self.above.set(above);
    }

    /// The placement layer's state, while a `SmartAlloc` clone is alive.
    pub(crate) fn above(&self) -> Option<Arc<dyn Above>> {
        self.above.get().and_then(Weak::upgrade)
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
    /// `requested` bytes (named in the error). Parked task heaps are a cache, so they are freed
    /// before the budget says no.
    pub(crate) fn charge(&self, bytes: usize, requested: usize, owner: u64) -> Result<(), AllocError> {
        match self.try_charge(bytes, requested, owner) {
            Err(_) if self.above().is_some_and(|a| a.reclaim()) => self.try_charge(bytes, requested, owner),
            r => r,
        }
    }

    /// Bytes of chunks and large blocks held, as charged to the total budget (for tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn held_bytes(&self) -> u64 {
        self.held.load(Relaxed)
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
