//! One worker thread: its local queue, its LIFO slot, and the loop that runs tasks, steals
//! and parks.
//!
//! Each turn a worker takes, in order: (every [`GLOBAL_QUEUE_INTERVAL`] turns, the injector
//! first, so remote tasks are not starved by a busy local queue), its local queue, the
//! injector, and otherwise becomes a searcher (if [`Idle`](crate::idle::Idle) allows) and
//! steals half of a random victim's queue. With nothing found it parks. After each task it
//! runs the task in its LIFO slot, at most [`MAX_LIFO_POLLS`] in a row: two tasks waking each
//! other could otherwise hold the worker forever.

use super::Shared;
use crate::park::Parker;
use crate::task::Task;
use core::cell::{Cell, RefCell};
use crossbeam_deque::{Steal, Worker as Deque};
use std::rc::Rc;
use std::sync::Arc;

/// Turns between two looks at the injector ahead of the local queue (tokio's number).
const GLOBAL_QUEUE_INTERVAL: u32 = 61;

/// LIFO-slot tasks run in a row after one task before the slot's task goes to the queue.
const MAX_LIFO_POLLS: u32 = 3;

pub(crate) struct Worker {
    pub(crate) index: usize,
    pub(crate) shared: Arc<Shared>,
    local: Deque<Task>,
    lifo: Cell<Option<Task>>,
    searching: Cell<bool>,
    /// Turning the driver (parked on it, or a busy worker's turn): tasks it wakes stay on
    /// its queue without waking other workers one by one.
    parked: Cell<bool>,
    tick: Cell<u32>,
    rng: Cell<u64>,
    parker: Parker,
}

thread_local! {
    /// The worker running on this thread, if it is a worker thread.
    static CURRENT: RefCell<Option<Rc<Worker>>> = const { RefCell::new(None) };
}

/// Calls `f` with this thread's worker, if it is a worker thread of any runtime.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Worker>) -> R) -> R {
    let mut f = Some(f);
    let out = CURRENT.try_with(|c| {
        let c = c.borrow();
        (f.take().expect("called once"))(c.as_deref())
    });
    match out {
        Ok(r) => r,
        // Thread teardown: no worker.
        Err(_) => (f.take().expect("not called yet"))(None),
    }
}

/// The body of worker thread `index`: runs tasks until the runtime shuts down, then drops
/// what is left of them.
pub(crate) fn run_worker(shared: Arc<Shared>, index: usize, local: Deque<Task>, parker: Parker) {
    let worker = Rc::new(Worker {
        index,
        shared,
        local,
        lifo: Cell::new(None),
        searching: Cell::new(false),
        parked: Cell::new(false),
        tick: Cell::new(0),
        // Any odd seed differing per worker.
        rng: Cell::new(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(index as u64 + 1) | 1),
        parker,
    });
    CURRENT.with(|c| *c.borrow_mut() = Some(worker.clone()));
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            let w = CURRENT.with(|c| c.borrow_mut().take());
            drop(w);
        }
    }
    let _clear = Clear;
    worker.run();
    worker.drain();
}

impl Worker {
    pub(crate) fn stats(&self) -> &crate::metrics::WorkerStats {
        &self.shared.stats[self.index]
    }

    fn run(&self) {
        while !self.shared.is_shutdown() {
            let tick = self.tick.get().wrapping_add(1);
            self.tick.set(tick);
            if let Some(task) = self.next_task(tick) {
                self.run_task(task);
                continue;
            }
            if let Some(task) = self.search() {
                self.run_task(task);
                continue;
            }
            self.park();
        }
    }

    fn next_task(&self, tick: u32) -> Option<Task> {
        if tick % GLOBAL_QUEUE_INTERVAL == 0 {
            // Serve I/O and timers now and then while busy (no-op if another worker holds
            // the driver, which it then runs).
            self.parked.set(true);
            self.parker.poll_driver();
            self.parked.set(false);
            if self.local.len() > 1 {
                self.notify_if_not_searching();
            }
            if let Some(t) = self.take_injected() {
                return Some(t);
            }
        }
        self.local.pop().or_else(|| self.take_injected())
    }

    /// A batch from the injector into the local queue, returning one of its tasks.
    fn take_injected(&self) -> Option<Task> {
        loop {
            match self.shared.injector.steal_batch_and_pop(&self.local) {
                Steal::Success(t) => return Some(t),
                Steal::Empty => return None,
                Steal::Retry => core::hint::spin_loop(),
            }
        }
    }

    /// Steals from the other workers (a random one first) and then the injector, as a
    /// searcher; `None` if searching was refused or found nothing.
    fn search(&self) -> Option<Task> {
        if !self.searching.get() {
            if !self.shared.idle.transition_to_searching() {
                return None;
            }
            self.searching.set(true);
        }
        let n = self.shared.stealers.len();
        let start = self.next_random() as usize % n;
        for i in 0..n {
            let victim = (start + i) % n;
            if victim == self.index {
                continue;
            }
            loop {
                match self.shared.stealers[victim].steal_batch_and_pop(&self.local) {
                    Steal::Success(t) => {
                        self.stats().steals.bump();
                        return Some(t);
                    }
                    Steal::Empty => break,
                    Steal::Retry => core::hint::spin_loop(),
                }
            }
        }
        self.take_injected()
    }

    fn next_random(&self) -> u64 {
        // xorshift64
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        x
    }

    fn run_task(&self, task: Task) {
        if self.searching.replace(false) && self.shared.idle.transition_from_searching() {
            // The last searcher found work; there may be more: let another worker look.
            self.shared.idle.notify_one();
        }
        self.poll(task);
        let mut lifo_polls = 0;
        while let Some(next) = self.lifo.take() {
            if lifo_polls == MAX_LIFO_POLLS || self.shared.is_shutdown() {
                self.local.push(next);
                self.shared.idle.notify_one();
                break;
            }
            lifo_polls += 1;
            self.poll(next);
        }
    }

    #[inline]
    fn poll(&self, task: Task) {
        self.stats().polls.bump();
        crate::coop::with_budget(|| task.run());
    }

    fn park(&self) {
        self.stats().parks.bump();
        let shared = &*self.shared;
        self.parked.set(true);
        let searching = shared.idle.park(
            self.index,
            self.searching.replace(false),
            &self.parker,
            || shared.has_work(),
            || !self.local.is_empty(),
            || shared.is_shutdown(),
        );
        self.parked.set(false);
        self.searching.set(searching);
        // The driver may have woken many tasks onto this worker: let another take some.
        if !searching && !self.local.is_empty() {
            self.shared.idle.notify_one();
        }
    }

    /// Shutdown: drop the tasks this worker holds, then the injector's and the registered ones.
    fn drain(&self) {
        drop(self.lifo.take());
        while let Some(t) = self.local.pop() {
            drop(t);
        }
        self.shared.drop_remaining_tasks();
    }

    /// A task spawned on this worker: the back of the local queue.
    #[inline]
    pub(crate) fn push_spawned(&self, task: Task) {
        if self.shared.is_shutdown() {
            drop(task);
            return;
        }
        self.local.push(task);
        self.notify_if_not_searching();
    }

    /// A task woken on this worker (see the module docs of `scheduler`).
    #[inline]
    pub(crate) fn schedule_local(&self, task: Task, yielded: bool) {
        if self.shared.is_shutdown() {
            drop(task);
            return;
        }
        // A task the driver wakes goes to the queue, where `next_task` and `park` look: the
        // LIFO slot is only drained after a poll, and none runs while the driver turns.
        if yielded || self.parked.get() {
            self.local.push(task);
        } else if let Some(prev) = self.lifo.replace(Some(task)) {
            self.local.push(prev);
        } else {
            // Only the LIFO slot changed, which nobody else can take from.
            return;
        }
        self.notify_if_not_searching();
    }

    #[inline]
    fn notify_if_not_searching(&self) {
        // A searching worker is about to run what it found and will wake another if needed;
        // a worker turning the driver runs what it woke, and wakes another after if needed.
        if !self.searching.get() && !self.parked.get() {
            self.shared.idle.notify_one();
        }
    }
}
