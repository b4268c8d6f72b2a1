//! The work-stealing scheduler: what the workers share ([`Shared`]), how a task is queued
//! when it is spawned or woken, and how the runtime shuts down.
//!
//! Where a task goes:
//!
//! * **spawned on a worker** of this runtime: the back of that worker's local queue (no lock,
//!   no shared write);
//! * **woken on a worker** (one task waking another): that worker's LIFO slot, run right after
//!   the current task (messages between two tasks stay hot in cache); the task it displaces
//!   goes to the back of the local queue. A task that wakes *itself* (`yield_now`, a spent
//!   budget) goes to the back of the local queue, never the LIFO slot;
//! * **from any other thread**: the global injector.
//!
//! Whenever a task lands where another worker could take it, [`Idle::notify_one`] wakes a
//! parked worker if nobody is searching (see `idle.rs` for why no wake-up is lost).
//!
//! Shutdown ([`Shared::shutdown`]): a flag stops every worker at its next turn; each drops the
//! tasks in its LIFO slot and local queue, then the injector's, then wakes every task still
//! registered (every task that waits for a wake-up registers itself: see `task::registry`).
//! From then on the
//! schedule hook drops a woken task instead of queueing it, so each of those futures is dropped
//! on the thread that drains the registry, a worker. Spawns after shutdown make a task that is
//! cancelled at once.

pub(crate) mod blocking;

pub(crate) use blocking::ThreadKind;
mod worker;

pub(crate) use worker::{run_worker, with_current};

use crate::idle::Idle;
use crate::metrics::WorkerStats;
use crate::task::{self, registry::Registry, JoinHandle, Task};
use async_task::ScheduleInfo;
use core::future::Future;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use crossbeam_deque::{Injector, Steal, Stealer};
use crossbeam_utils::CachePadded;
use framealloc_alloc::SmartAlloc;
use std::sync::Arc;

/// Everything a runtime's threads share.
pub(crate) struct Shared {
    pub(crate) injector: Injector<Task>,
    pub(crate) stealers: Box<[Stealer<Task>]>,
    pub(crate) idle: Idle,
    pub(crate) registry: Registry,
    pub(crate) blocking: blocking::Pool,
    pub(crate) stats: Box<[CachePadded<WorkerStats>]>,
    /// Spawns from threads that are not this runtime's workers.
    pub(crate) external_spawns: AtomicU64,
    /// Tasks whose future went away on threads that are not this runtime's workers.
    pub(crate) external_finished: AtomicU64,
    shutdown: AtomicBool,
    /// The allocator the runtime reports on (`Runtime::metrics`).
    pub(crate) alloc: SmartAlloc,
    /// Starts a thread of this runtime (name, stack size, hooks and context are the API
    /// layer's business).
    pub(crate) spawn_thread: ThreadSpawner,
}

/// Starts a runtime thread of the given kind that runs `body`.
pub(crate) type ThreadSpawner = Box<
    dyn Fn(&Arc<Shared>, ThreadKind, Box<dyn FnOnce() + Send>) -> std::io::Result<std::thread::JoinHandle<()>>
        + Send
        + Sync,
>;

impl core::fmt::Debug for Shared {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Shared").field("workers", &self.stealers.len()).finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(
        stealers: Vec<Stealer<Task>>,
        idle: Idle,
        blocking: blocking::Pool,
        alloc: SmartAlloc,
        spawn_thread: ThreadSpawner,
    ) -> Self {
        let workers = stealers.len();
        Self {
            injector: Injector::new(),
            stealers: stealers.into_boxed_slice(),
            idle,
            registry: Registry::new(workers + 1),
            blocking,
            stats: (0..workers).map(|_| CachePadded::new(WorkerStats::default())).collect(),
            external_spawns: AtomicU64::new(0),
            external_finished: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
            alloc,
            spawn_thread,
        }
    }

    pub(crate) fn workers(&self) -> usize {
        self.stealers.len()
    }

    #[inline]
    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Spawns `future` as a task of this runtime: onto the calling worker's queue if the caller
    /// is one of this runtime's workers, else onto the injector. After shutdown the task is
    /// dropped at once (its handle reports it cancelled).
    pub(crate) fn spawn<F>(self: &Arc<Self>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (task, join) = task::spawn(self, false, future, schedule);
        with_current(|w| match w.filter(|w| Arc::ptr_eq(&w.shared, self)) {
            Some(w) => {
                w.stats().spawns.bump();
                w.push_spawned(task);
            }
            None => {
                self.external_spawns.fetch_add(1, Ordering::Release);
                if self.is_shutdown() {
                    drop(task);
                } else {
                    self.push_remote(task);
                }
            }
        });
        join
    }

    /// The registry shard for a task that starts waiting on this thread: the worker's own, or
    /// the one for other threads.
    pub(crate) fn registry_shard(self: &Arc<Self>) -> usize {
        with_current(|w| match w {
            Some(w) if Arc::ptr_eq(&w.shared, self) => w.index,
            _ => self.registry.external_shard(),
        })
    }

    /// Counts a task whose future is gone (for `tasks_alive`).
    pub(crate) fn count_finished(self: &Arc<Self>) {
        with_current(|w| match w {
            Some(w) if Arc::ptr_eq(&w.shared, self) => w.stats().finished.bump(),
            _ => {
                self.external_finished.fetch_add(1, Ordering::Release);
            }
        });
    }

    /// Queues `task` on the injector and wakes a worker for it.
    pub(crate) fn push_remote(&self, task: Task) {
        self.injector.push(task);
        // `notify_one` begins with a SeqCst fence: the push is ordered before the shutdown check
        // below, and `shutdown` orders its flag before its drain, so a task pushed while the
        // runtime shuts down is dropped by one side or the other, never left in the injector.
        self.idle.notify_one();
        if self.is_shutdown() {
            self.drain_injector();
        }
    }

    /// Drops every task in the injector (shutdown).
    pub(crate) fn drain_injector(&self) {
        loop {
            match self.injector.steal() {
                Steal::Success(task) => drop(task),
                Steal::Empty => break,
                Steal::Retry => {}
            }
        }
    }

    /// `true` if any queue a worker could take from holds a task.
    pub(crate) fn has_work(&self) -> bool {
        !self.injector.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }

    /// Starts shutting down: stops the workers at their next turn (each then drops what it
    /// holds: see [`drop_remaining_tasks`](Self::drop_remaining_tasks)). Idempotent. The
    /// blocking pool is closed separately (`blocking::Pool::shutdown`).
    pub(crate) fn shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        crate::sync::fence_seq_cst();
        self.idle.unpark_all();
    }

    /// What a worker (or the thread shutting the runtime down) does after the flag: drop the
    /// injector's tasks and every registered task's future.
    pub(crate) fn drop_remaining_tasks(&self) {
        self.drain_injector();
        self.registry.close_and_wake_all();
        self.drain_injector();
    }
}

/// The schedule hook of every (non-blocking) task: called by async-task when the task is
/// woken (`info.woken_while_running` if it woke itself during its own poll).
pub(crate) fn schedule(task: Task, info: ScheduleInfo) {
    let runtime = Arc::as_ptr(&task.metadata().shared);
    let task = with_current(move |w| match w {
        Some(w) if core::ptr::eq(Arc::as_ptr(&w.shared), runtime) => {
            w.schedule_local(task, info.woken_while_running);
            None
        }
        _ => Some(task),
    });
    if let Some(task) = task {
        // Our own reference: once the task is in the injector another worker may run and
        // finish it, and its header's reference may be the runtime's last.
        let shared = task.metadata().shared.clone();
        if shared.is_shutdown() {
            drop(task);
        } else {
            shared.push_remote(task);
        }
    }
}
