//! Parking one worker thread until another thread unparks it, with no lost wake-ups.
//!
//! The state is one atomic word, `EMPTY`, `PARKED` or `NOTIFIED`:
//!
//! * `unpark` swaps in `NOTIFIED`. If the old state was `PARKED`, the parked thread sleeps on
//!   the condition variable: `unpark` takes the lock (so the sleeper is really waiting, not
//!   between its state change and its wait) and notifies it.
//! * `park` first consumes a pending `NOTIFIED` without locking (the common case when work
//!   arrived while the worker was looking for some). Otherwise it takes the lock and moves
//!   `EMPTY` to `PARKED`; if that fails, a notification came in between and is consumed.
//!   Asleep, it returns only once it can move `NOTIFIED` back to `EMPTY`, so a spurious wake-up
//!   of the condition variable goes back to sleep.
//!
//! A notification is never lost: it is either seen by the `park` that follows it, or it finds
//! `PARKED` and wakes the sleeper through the lock. Notifications do not accumulate: many
//! `unpark`s before one `park` let one `park` return.
//!
//! A worker about to park first tries to take the runtime's [`Driver`] (the I/O and timer
//! driver, one per runtime): if no other worker holds it, the worker sleeps *on the driver*
//! (blocked in `epoll_wait`, woken by I/O, a due timer or [`Driver::wake`]) in a fourth
//! state, `PARKED_DRIVER`, whose `unpark` wakes the driver instead of the condition
//! variable. So the driver needs no thread of its own: the last worker to go idle runs it.
//! The state moves to `PARKED_DRIVER` only while the driver is held and before it blocks,
//! so an `unpark` either comes first (the worker sees `NOTIFIED` and does not block) or
//! finds `PARKED_DRIVER` and wakes a driver that is blocked or about to block (the driver's
//! wake-up is level-triggered: it stays pending until the next poll). A return from the
//! driver is not a notification: events woke tasks, which the caller looks for.

use crate::sync::{Arc, AtomicUsize, Condvar, Mutex, Ordering::SeqCst};
use core::time::Duration;

const EMPTY: usize = 0;
const PARKED: usize = 1;
const NOTIFIED: usize = 2;
const PARKED_DRIVER: usize = 3;

/// What a parked worker can sleep on besides its condition variable: the runtime's I/O and
/// timer driver, shared by all workers and held by one at a time.
pub(crate) trait Driver: Send + Sync {
    /// If no other thread holds the driver: takes it, calls `commit`, and if that returns
    /// `true` runs it (waits for events, due timers, `timeout` or [`wake`](Self::wake), and
    /// dispatches what came), then releases it and returns `true`. Returns `false` at once,
    /// without calling `commit`, if another thread holds it. A zero `timeout` (a busy
    /// worker's turn) may be skipped, `commit` uncalled, if the driver turned very recently.
    fn try_park(&self, timeout: Option<Duration>, commit: &mut dyn FnMut() -> bool) -> bool;

    /// Ends the current or next wait of the driver (callable from any thread).
    fn wake(&self);
}

/// The parking side, owned by one worker thread.
pub(crate) struct Parker {
    inner: Arc<Inner>,
}

/// The waking side: any thread may unpark the worker.
#[derive(Clone)]
pub(crate) struct Unparker {
    inner: Arc<Inner>,
}

struct Inner {
    state: AtomicUsize,
    lock: Mutex<()>,
    cvar: Condvar,
    /// Always a std `Arc`: loom's cannot hold a trait object, and only the state word is
    /// modelled.
    driver: Option<std::sync::Arc<dyn Driver>>,
}

impl core::fmt::Debug for Parker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Parker").field("state", &self.inner.state.load(SeqCst)).finish_non_exhaustive()
    }
}

impl core::fmt::Debug for Unparker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Unparker").finish_non_exhaustive()
    }
}

impl Parker {
    /// A parker that sleeps on `driver` when it can take it, else on its condition variable.
    pub(crate) fn new(driver: Option<std::sync::Arc<dyn Driver>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: AtomicUsize::new(EMPTY),
                lock: Mutex::new(()),
                cvar: Condvar::new(),
                driver,
            }),
        }
    }

    pub(crate) fn unparker(&self) -> Unparker {
        Unparker { inner: self.inner.clone() }
    }

    /// Blocks until [`Unparker::unpark`] is called or, when it sleeps on the driver, until the
    /// driver dispatched events; returns at once if `unpark` was called since the last `park`.
    pub(crate) fn park(&self) {
        let inner = &*self.inner;
        if inner.state.compare_exchange(NOTIFIED, EMPTY, SeqCst, SeqCst).is_ok() {
            return;
        }
        if let Some(driver) = &inner.driver {
            let mut notified = false;
            let took =
                driver.try_park(
                    None,
                    &mut || match inner.state.compare_exchange(EMPTY, PARKED_DRIVER, SeqCst, SeqCst) {
                        Ok(_) => true,
                        Err(NOTIFIED) => {
                            notified = true;
                            false
                        }
                        Err(other) => unreachable!("park: inconsistent state {other}"),
                    },
                );
            if took {
                if notified {
                    inner.state.store(EMPTY, SeqCst);
                } else {
                    // PARKED_DRIVER, or NOTIFIED by an unpark that woke the driver: either
                    // way this park is over.
                    inner.state.swap(EMPTY, SeqCst);
                }
                return;
            }
        }
        self.park_condvar();
    }

    /// Runs the driver once without blocking, if no other thread holds it: a busy worker
    /// calls this now and then so I/O and timers are served while no worker parks.
    #[cfg_attr(loom, allow(dead_code))] // the worker that calls it is not built under loom
    #[cfg_attr(loom, allow(dead_code))] // the worker that calls it is not built under loom
    pub(crate) fn poll_driver(&self) {
        if let Some(driver) = &self.inner.driver {
            driver.try_park(Some(Duration::ZERO), &mut || true);
        }
    }

    fn park_condvar(&self) {
        let inner = &*self.inner;
        let mut guard = inner.lock.lock();
        match inner.state.compare_exchange(EMPTY, PARKED, SeqCst, SeqCst) {
            Ok(_) => {}
            Err(NOTIFIED) => {
                // Notified between the first check and the lock: consume it.
                inner.state.store(EMPTY, SeqCst);
                return;
            }
            Err(other) => unreachable!("park: inconsistent state {other}"),
        }
        loop {
            inner.cvar.wait(&mut guard);
            if inner.state.compare_exchange(NOTIFIED, EMPTY, SeqCst, SeqCst).is_ok() {
                return;
            }
            // A spurious wake-up: still PARKED, sleep again.
        }
    }
}

impl Unparker {
    /// Wakes the parked thread, or makes its next `park` return at once.
    pub(crate) fn unpark(&self) {
        let inner = &*self.inner;
        match inner.state.swap(NOTIFIED, SeqCst) {
            EMPTY | NOTIFIED => return,
            PARKED => {}
            PARKED_DRIVER => {
                if let Some(driver) = &inner.driver {
                    driver.wake();
                }
                return;
            }
            other => unreachable!("unpark: inconsistent state {other}"),
        }
        // The sleeper changed the state to PARKED under the lock and releases it only by
        // waiting: once we hold the lock it is waiting, and the notification reaches it.
        drop(inner.lock.lock());
        inner.cvar.notify_one();
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::*;

    /// An unpark from another thread, before, during or after the park, always ends the park.
    #[test]
    fn loom_unpark_is_never_lost() {
        loom::model(|| {
            let parker = Parker::new(None);
            let unparker = parker.unparker();
            let t = loom::thread::spawn(move || unparker.unpark());
            parker.park();
            t.join().unwrap();
        });
    }

    /// The way workers use it: check for work, park if there is none. Work published before
    /// an unpark is seen after the park returns, in every interleaving.
    #[test]
    fn loom_work_published_before_unpark_is_seen() {
        loom::model(|| {
            let parker = Parker::new(None);
            let unparker = parker.unparker();
            let work = Arc::new(AtomicUsize::new(0));
            let w = work.clone();
            let t = loom::thread::spawn(move || {
                for _ in 0..2 {
                    w.fetch_add(1, SeqCst);
                    unparker.unpark();
                }
            });
            let mut seen = 0;
            while seen < 2 {
                let now = work.load(SeqCst);
                if now > seen {
                    seen = now;
                } else {
                    parker.park();
                }
            }
            t.join().unwrap();
        });
    }

    /// A stand-in for the I/O driver with its real wake-up semantics: one holder at a time,
    /// and a `wake` that stays pending until the next wait (an eventfd).
    struct MockDriver {
        held: loom::sync::Mutex<()>,
        woken: loom::sync::Mutex<bool>,
        cvar: loom::sync::Condvar,
    }

    impl Driver for MockDriver {
        fn try_park(&self, _timeout: Option<Duration>, commit: &mut dyn FnMut() -> bool) -> bool {
            let Ok(_held) = self.held.try_lock() else {
                return false;
            };
            if commit() {
                let mut woken = self.woken.lock().unwrap();
                while !*woken {
                    woken = self.cvar.wait(woken).unwrap();
                }
                *woken = false;
            }
            true
        }

        fn wake(&self) {
            *self.woken.lock().unwrap() = true;
            self.cvar.notify_one();
        }
    }

    fn mock_driver() -> std::sync::Arc<dyn Driver> {
        std::sync::Arc::new(MockDriver {
            held: loom::sync::Mutex::new(()),
            woken: loom::sync::Mutex::new(false),
            cvar: loom::sync::Condvar::new(),
        })
    }

    /// Two workers share one driver: whichever takes it sleeps on it, the other on its
    /// condition variable. Unparks from a third thread end both parks in every interleaving.
    #[test]
    fn loom_unpark_reaches_a_worker_parked_on_the_driver() {
        loom::model(|| {
            let driver = mock_driver();
            let a = Parker::new(Some(driver.clone()));
            let b = Parker::new(Some(driver));
            let (ua, ub) = (a.unparker(), b.unparker());
            let t = loom::thread::spawn(move || {
                ua.unpark();
                ub.unpark();
            });
            let other = loom::thread::spawn(move || b.park());
            a.park();
            other.join().unwrap();
            t.join().unwrap();
        });
    }
}
