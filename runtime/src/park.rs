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
//! The reactor (a later issue) will add a fourth state, "parked on the I/O driver", whose
//! `unpark` wakes the driver instead of the condition variable.

use crate::sync::{Arc, AtomicUsize, Condvar, Mutex, Ordering::SeqCst};

const EMPTY: usize = 0;
const PARKED: usize = 1;
const NOTIFIED: usize = 2;

/// The parking side, owned by one worker thread.
#[derive(Debug)]
pub(crate) struct Parker {
    inner: Arc<Inner>,
}

/// The waking side: any thread may unpark the worker.
#[derive(Debug, Clone)]
pub(crate) struct Unparker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: AtomicUsize,
    lock: Mutex<()>,
    cvar: Condvar,
}

impl Parker {
    pub(crate) fn new() -> Self {
        Self { inner: Arc::new(Inner { state: AtomicUsize::new(EMPTY), lock: Mutex::new(()), cvar: Condvar::new() }) }
    }

    pub(crate) fn unparker(&self) -> Unparker {
        Unparker { inner: self.inner.clone() }
    }

    /// Blocks until [`Unparker::unpark`] is called, or returns at once if it was called since
    /// the last `park`.
    pub(crate) fn park(&self) {
        let inner = &*self.inner;
        if inner.state.compare_exchange(NOTIFIED, EMPTY, SeqCst, SeqCst).is_ok() {
            return;
        }
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
            let parker = Parker::new();
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
            let parker = Parker::new();
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
}
