//! [`RuntimeMetrics`]: what a runtime has done and holds, read with `Runtime::metrics`.

use core::sync::atomic::{AtomicU64, Ordering};
use framealloc_alloc::AllocStats;

/// A counter written by one thread (its worker) and read by any: an increment is a plain
/// load and store, no read-modify-write. Release and acquire, so that a reader that sees a
/// count also sees what happened before it (a task's spawn before its finish).
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub(crate) fn bump(&self) {
        self.0.store(self.0.load(Ordering::Relaxed) + 1, Ordering::Release);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// One worker's counters.
#[derive(Debug, Default)]
pub(crate) struct WorkerStats {
    pub(crate) polls: Counter,
    pub(crate) steals: Counter,
    pub(crate) parks: Counter,
    pub(crate) spawns: Counter,
    /// Tasks whose future went away on this worker.
    pub(crate) finished: Counter,
}

/// A snapshot of a runtime's counters and of its allocator's task figures.
///
/// Counters are totals since the runtime started; they are read one by one, so a snapshot
/// taken while tasks run may be a little inconsistent between fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RuntimeMetrics {
    /// Worker threads.
    pub workers: usize,
    /// Tasks spawned (not counting `spawn_blocking` tasks).
    pub tasks_spawned: u64,
    /// Spawned tasks whose future is still alive (queued, running or waiting).
    pub tasks_alive: u64,
    /// Tasks waiting for a wake-up now (registered so that shutdown can reach them).
    pub tasks_waiting: u64,
    /// Task polls by the workers.
    pub polls: u64,
    /// Successful steals from another worker's queue.
    pub steals: u64,
    /// Times a worker parked for lack of work.
    pub parks: u64,
    /// Workers parked now.
    pub parked_workers: usize,
    /// Tasks waiting in the global injector now.
    pub injector_depth: usize,
    /// Threads of the blocking pool alive now.
    pub blocking_threads: usize,
    /// Blocking-pool threads idle now.
    pub idle_blocking_threads: usize,
    /// `spawn_blocking` jobs waiting for a thread now.
    pub blocking_queue_depth: usize,
    /// Sockets registered with the runtime's reactor now.
    pub io_registrations: usize,
    /// Timers armed now (`Sleep`s, `Interval`s and `Timeout`s polled and not yet fired or
    /// dropped).
    pub timers: usize,
    /// The statistics of the runtime's `SmartAlloc` (see `Builder::alloc`): `task` is the
    /// memory of task heaps, `heaps_alive` the heaps not yet returned.
    pub alloc: AllocStats,
}

impl RuntimeMetrics {
    pub(crate) fn collect(shared: &crate::scheduler::Shared, driver: &crate::driver::Handle) -> Self {
        let sum = |f: fn(&WorkerStats) -> &Counter| shared.stats.iter().map(|s| f(s).get()).sum::<u64>();
        let blocking = shared.blocking.counts();
        // Finished first: every finish it counts happened after its spawn, which the spawn
        // counts read next then include, so `alive` is never understated.
        let finished = sum(|s| &s.finished) + shared.external_finished.load(Ordering::Acquire);
        let spawned = sum(|s| &s.spawns) + shared.external_spawns.load(Ordering::Acquire);
        Self {
            workers: shared.workers(),
            tasks_spawned: spawned,
            tasks_alive: spawned.saturating_sub(finished),
            tasks_waiting: shared.registry.len() as u64,
            polls: sum(|s| &s.polls),
            steals: sum(|s| &s.steals),
            parks: sum(|s| &s.parks),
            parked_workers: shared.idle.parked(),
            injector_depth: shared.injector.len(),
            blocking_threads: blocking.threads,
            idle_blocking_threads: blocking.idle,
            blocking_queue_depth: blocking.queued,
            io_registrations: driver.io.registrations(),
            timers: driver.time.len(),
            alloc: shared.alloc.stats(),
        }
    }
}
