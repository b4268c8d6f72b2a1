//! Which workers sleep, how many search for work, and whom to wake when work appears.
//!
//! A worker is *running* (it has a task), *searching* (its own queue is empty and it is
//! stealing from the others and the injector) or *parked*. One atomic word counts the
//! unparked workers and, among them, the searching ones; a locked list names the parked ones.
//!
//! The protocol, after tokio's (`runtime/scheduler/multi_thread/idle.rs`):
//!
//! * **Publishing work** (a spawn or wake-up that others could steal): push the task, then
//!   [`Idle::notify_one`]. It wakes a parked worker only if nobody is searching (a searcher
//!   will find the task) and somebody is parked. The woken worker comes back counted as
//!   searching, so a burst of pushes wakes one worker, not all of them.
//! * **Searching** is bounded: [`Idle::transition_to_searching`] refuses when half the
//!   workers already search, so idle workers do not all hammer the same queues.
//! * **Finding work**: a searcher that takes a task calls
//!   [`Idle::transition_from_searching`]; if it was the last searcher it wakes another
//!   ([`Idle::notify_one`]), because the push that woke it may have been one of many and no
//!   one else is looking now.
//! * **Parking** ([`Idle::park`]): the worker counts itself out and joins the list under the
//!   lock. If it was the last searcher, it looks at every queue once more and wakes a worker if
//!   any has work: a push that happened while it searched saw "a searcher exists" and woke
//!   nobody, so the last searcher must not leave it behind.
//!
//! No wake-up is lost: a publisher's push comes before its read of the counts (a `SeqCst`
//! fence between), and a parking searcher's decrement comes before its last look at the
//! queues (a `SeqCst` fence between). So either the publisher sees the decrement (nobody
//! searching) and wakes a sleeper, or the last searcher's look sees the push. The parker
//! itself ([`crate::park`]) keeps an unpark that comes before the park. The loom models
//! below check this with the real `Idle` and `Parker`.

use crate::park::{Parker, Unparker};
use crate::sync::{AtomicUsize, Mutex, Ordering::SeqCst};

/// Bits of the state word counting searching workers; the rest count unparked workers.
const SEARCH_BITS: u32 = 16;
const SEARCH_MASK: usize = (1 << SEARCH_BITS) - 1;
const ONE_UNPARKED: usize = 1 << SEARCH_BITS;

/// The most workers a runtime may have (the searching count must fit its bits).
pub(crate) const MAX_WORKERS: usize = SEARCH_MASK;

#[derive(Debug)]
pub(crate) struct Idle {
    /// `unparked << SEARCH_BITS | searching`.
    state: AtomicUsize,
    /// Parked workers, by index; a worker popped from here was woken by `notify_one`.
    sleepers: Mutex<Vec<usize>>,
    unparkers: Box<[Unparker]>,
}

fn searching(state: usize) -> usize {
    state & SEARCH_MASK
}

fn unparked(state: usize) -> usize {
    state >> SEARCH_BITS
}

impl Idle {
    /// All `unparkers.len()` workers start unparked and not searching.
    pub(crate) fn new(unparkers: Vec<Unparker>) -> Self {
        let n = unparkers.len();
        assert!(n <= MAX_WORKERS, "at most {MAX_WORKERS} workers");
        Self {
            state: AtomicUsize::new(n * ONE_UNPARKED),
            sleepers: Mutex::new(Vec::with_capacity(n)),
            unparkers: unparkers.into_boxed_slice(),
        }
    }

    fn num_workers(&self) -> usize {
        self.unparkers.len()
    }

    /// Work was published: wakes one parked worker if nobody searches. Returns `true` if it
    /// woke one.
    #[inline]
    pub(crate) fn notify_one(&self) -> bool {
        crate::sync::fence_seq_cst();
        if !self.should_wake() {
            return false;
        }
        self.notify_one_slow()
    }

    #[inline]
    fn should_wake(&self) -> bool {
        let s = self.state.load(SeqCst);
        searching(s) == 0 && unparked(s) < self.num_workers()
    }

    #[cold]
    fn notify_one_slow(&self) -> bool {
        let mut sleepers = self.sleepers.lock();
        // Checked again under the lock: another publisher may have woken the last sleeper.
        if !self.should_wake() {
            return false;
        }
        let Some(worker) = sleepers.pop() else {
            return false;
        };
        // The woken worker comes back unparked and searching.
        self.state.fetch_add(ONE_UNPARKED | 1, SeqCst);
        drop(sleepers);
        self.unparkers[worker].unpark();
        true
    }

    /// A worker whose queue is empty asks to search. Refused (`false`) while half the workers
    /// (rounded up) already search.
    pub(crate) fn transition_to_searching(&self) -> bool {
        let s = self.state.load(SeqCst);
        if 2 * searching(s) >= self.num_workers() {
            return false;
        }
        self.state.fetch_add(1, SeqCst);
        true
    }

    /// A searching worker found a task. Returns `true` if it was the last searcher: the caller
    /// then calls [`notify_one`](Self::notify_one) after taking its task.
    pub(crate) fn transition_from_searching(&self) -> bool {
        let prev = self.state.fetch_sub(1, SeqCst);
        debug_assert!(searching(prev) > 0);
        searching(prev) == 1
    }

    /// Parks worker `index` (which found no work; `searching` tells whether it was counted as
    /// a searcher) until [`notify_one`](Self::notify_one) picks it, the driver it slept on
    /// woke tasks onto its own queue (`has_local_work`), or `stop()` becomes true after an
    /// [`unpark_all`](Self::unpark_all). `has_work` looks at every queue (for the last
    /// searcher's final look). Returns `true` if the worker comes back counted as searching
    /// (woken to search), `false` if not (it has its own work, or it stopped).
    pub(crate) fn park(
        &self,
        index: usize,
        searching_now: bool,
        parker: &Parker,
        has_work: impl Fn() -> bool,
        has_local_work: impl Fn() -> bool,
        stop: impl Fn() -> bool,
    ) -> bool {
        let last_searcher = {
            let mut sleepers = self.sleepers.lock();
            let prev = self.state.fetch_sub(ONE_UNPARKED | usize::from(searching_now), SeqCst);
            sleepers.push(index);
            searching_now && searching(prev) == 1
        };
        if last_searcher {
            crate::sync::fence_seq_cst();
            if has_work() {
                self.notify_one();
            }
        }
        loop {
            if stop() {
                return false;
            }
            parker.park();
            if has_local_work() {
                // Woken by its own driver turn: back to running, not searching (unless a
                // `notify_one` popped it meanwhile, which counted it as searching).
                return !self.unpark_by_index(index);
            }
            if !self.is_parked(index) {
                return true;
            }
            // Unparked without being popped: a shutdown (checked above) or a stale
            // notification from an earlier round; sleep again.
        }
    }

    /// Takes parked worker `index` off the list, counted as unparked and not searching;
    /// `false` if it was not on it (a `notify_one` took it).
    fn unpark_by_index(&self, index: usize) -> bool {
        let mut sleepers = self.sleepers.lock();
        let Some(at) = sleepers.iter().position(|&i| i == index) else {
            return false;
        };
        sleepers.swap_remove(at);
        self.state.fetch_add(ONE_UNPARKED, SeqCst);
        true
    }

    fn is_parked(&self, index: usize) -> bool {
        self.sleepers.lock().contains(&index)
    }

    /// Unparks every worker (shutdown); they see `stop()` and return from [`park`](Self::park).
    pub(crate) fn unpark_all(&self) {
        for u in self.unparkers.iter() {
            u.unpark();
        }
    }

    /// Workers parked now.
    pub(crate) fn parked(&self) -> usize {
        self.num_workers() - unparked(self.state.load(SeqCst))
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::sync::{Arc, AtomicUsize};

    /// Two workers and a publisher. Each worker takes tasks from a shared count (the queues'
    /// stand-in, published with the same fences), searching and parking with the real `Idle`
    /// and `Parker`, until both tasks are taken. A lost wake-up would leave a task untaken
    /// with every worker parked: loom reports the deadlock.
    #[test]
    fn loom_publish_while_workers_search_and_park() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(|| {
            let parkers: Vec<Parker> = (0..2).map(|_| Parker::new(None)).collect();
            let idle = Arc::new(Idle::new(parkers.iter().map(Parker::unparker).collect()));
            let queue = Arc::new(AtomicUsize::new(0));
            let taken = Arc::new(AtomicUsize::new(0));
            const TASKS: usize = 2;

            let workers: Vec<_> = parkers
                .into_iter()
                .enumerate()
                .map(|(index, parker)| {
                    let (idle, queue, taken) = (idle.clone(), queue.clone(), taken.clone());
                    loom::thread::spawn(move || {
                        let mut searching = false;
                        while taken.load(SeqCst) < TASKS {
                            if !searching {
                                searching = idle.transition_to_searching();
                            }
                            let got = searching && queue.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).is_ok();
                            if got {
                                searching = false;
                                if idle.transition_from_searching() {
                                    idle.notify_one();
                                }
                                taken.fetch_add(1, SeqCst);
                                continue;
                            }
                            let stop = || taken.load(SeqCst) >= TASKS;
                            if stop() {
                                break;
                            }
                            searching = idle.park(index, searching, &parker, || queue.load(SeqCst) > 0, || false, stop);
                        }
                    })
                })
                .collect();

            for _ in 0..TASKS {
                queue.fetch_add(1, SeqCst);
                idle.notify_one();
            }
            // Wait for the tasks to be taken, then release any parked worker (the shutdown path).
            while taken.load(SeqCst) < TASKS {
                loom::thread::yield_now();
            }
            idle.unpark_all();
            for w in workers {
                w.join().unwrap();
            }
            assert_eq!(queue.load(SeqCst), 0);
        });
    }
}
