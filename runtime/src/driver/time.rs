//! Timers: the wheel behind a lock, the clock that turns instants into 1 ms ticks, and the
//! handshake that wakes a sleeping driver when a timer comes due before its wake-up.
//!
//! A deadline becomes the first tick *at or after* it (rounded up) and "now" the tick at or
//! before it (rounded down), so a timer fires only once its deadline has passed: never
//! early, at most about 1 ms late plus scheduling.
//!
//! The driver, before it blocks, asks [`TimeHandle::park_timeout`] how long it may sleep and
//! records the tick it will wake at. A timer armed for an earlier tick (from any thread)
//! sees that and wakes the driver, which then recomputes. After blocking the driver calls
//! [`TimeHandle::process`], which fires every due timer (waking outside the lock).

use super::wheel::{TimerKey, Wheel};
use core::task::Waker;
use parking_lot::Mutex;
use std::sync::atomic::{
    AtomicBool,
    Ordering::{Acquire, Release},
};
use std::time::{Duration, Instant};

/// The runtime's timers.
pub(crate) struct TimeHandle {
    start: Instant,
    inner: Mutex<Inner>,
    /// Set by shutdown: no driver will ever fire a timer again.
    shut_down: AtomicBool,
}

struct Inner {
    wheel: Wheel<Option<Waker>>,
    /// The tick the blocked driver wakes at by itself (`u64::MAX`: only for I/O); `0` while
    /// no driver is blocked, when a new timer needs no wake-up to be seen.
    parked_until: u64,
}

impl core::fmt::Debug for TimeHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TimeHandle").field("timers", &self.inner.lock().wheel.len()).finish_non_exhaustive()
    }
}

/// What arming a timer asks of the caller.
#[must_use]
pub(crate) enum Armed {
    /// Armed; `wake_driver` says whether the blocked driver must be woken to see it.
    Pending { key: TimerKey, wake_driver: bool },
    /// The deadline has passed already.
    Due,
}

impl TimeHandle {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            inner: Mutex::new(Inner { wheel: Wheel::new(), parked_until: 0 }),
            shut_down: AtomicBool::new(false),
        }
    }

    /// The first tick at or after `t`.
    fn deadline_tick(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.start);
        let ms = d.as_millis() as u64;
        if d > Duration::from_millis(ms) {
            ms + 1
        } else {
            ms
        }
    }

    /// The last tick at or before `t`.
    fn now_tick(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_millis() as u64
    }

    /// Arms a timer for `deadline` that wakes `waker`.
    pub(crate) fn arm(&self, deadline: Instant, waker: &Waker) -> Armed {
        if deadline <= Instant::now() {
            return Armed::Due;
        }
        let tick = self.deadline_tick(deadline);
        let mut inner = self.inner.lock();
        let key = inner.wheel.insert(tick, Some(waker.clone()));
        let wake_driver = tick < inner.parked_until;
        if wake_driver {
            // One wake-up is enough until the driver blocks again.
            inner.parked_until = 0;
        }
        Armed::Pending { key, wake_driver }
    }

    /// Whether `key` is still armed (not fired); if so, makes `waker` the one it wakes.
    pub(crate) fn poll_armed(&self, key: TimerKey, waker: &Waker) -> bool {
        let mut inner = self.inner.lock();
        match inner.wheel.get_mut(key) {
            Some(slot) => {
                update_waker(slot, waker);
                true
            }
            None => false,
        }
    }

    /// Disarms `key` (a dropped or reset timer); nothing stays behind.
    pub(crate) fn disarm(&self, key: TimerKey) {
        self.inner.lock().wheel.remove(key);
    }

    /// How long the driver may block (at most `max`), recording that it does.
    pub(crate) fn park_timeout(&self, max: Option<Duration>) -> Option<Duration> {
        if max == Some(Duration::ZERO) {
            // A turn that does not block needs no wake-up.
            return max;
        }
        let mut inner = self.inner.lock();
        let Some(tick) = inner.wheel.next_expiration() else {
            inner.parked_until = u64::MAX;
            return max;
        };
        inner.parked_until = tick;
        let until = self.start + Duration::from_millis(tick);
        let wait = until.saturating_duration_since(Instant::now());
        Some(max.map_or(wait, |m| m.min(wait)))
    }

    /// Fires every due timer (the driver, after blocking), waking into `woken`'s wakers
    /// outside the lock; `woken` is the driver's reusable buffer.
    pub(crate) fn process(&self, woken: &mut Vec<Waker>) {
        let now = self.now_tick(Instant::now());
        {
            let mut inner = self.inner.lock();
            inner.parked_until = 0;
            if inner.wheel.is_empty() {
                return;
            }
            inner.wheel.poll(now, |_, waker| woken.extend(waker));
        }
        for w in woken.drain(..) {
            w.wake();
        }
    }

    /// Timers armed now.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().wheel.len()
    }

    /// Shutdown: no timer fires from now on.
    pub(crate) fn shutdown(&self) {
        self.shut_down.store(true, Release);
    }

    /// Whether the runtime shut down (a timer polled now could never fire).
    #[inline]
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Acquire)
    }
}

#[inline]
fn update_waker(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(w) if w.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}
