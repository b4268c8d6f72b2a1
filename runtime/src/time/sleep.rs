//! [`Sleep`]: one timer in the wheel, armed at its first poll and disarmed on drop.

use crate::coop;
use crate::driver::{self, time::Armed, TimerKey};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Waits until `duration` has passed.
///
/// # Panics
/// Outside a framealloc runtime (see the [module docs](crate::time)).
#[track_caller]
pub fn sleep(duration: Duration) -> Sleep {
    // A duration too long to add is as good as forever.
    let deadline = Instant::now().checked_add(duration).unwrap_or_else(far_future);
    Sleep::new(deadline, "sleep")
}

/// Waits until `deadline`.
///
/// # Panics
/// Outside a framealloc runtime (see the [module docs](crate::time)).
#[track_caller]
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep::new(deadline, "sleep_until")
}

/// About thirty years from now: later than any timer could matter.
pub(crate) fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// The future of [`sleep`] and [`sleep_until`]: completes once its deadline has passed.
///
/// It is `Unpin`, so it can be polled in place and [reset](Self::reset) through `&mut`.
/// Dropping it disarms the timer.
#[must_use = "a Sleep does nothing unless awaited"]
#[derive(Debug)]
pub struct Sleep {
    handle: Arc<driver::Handle>,
    deadline: Instant,
    /// Armed in the wheel under this key (from the first poll until it fires or drops).
    key: Option<TimerKey>,
    elapsed: bool,
}

impl Sleep {
    #[track_caller]
    pub(crate) fn new(deadline: Instant, what: &str) -> Sleep {
        Sleep { handle: crate::context::current_driver_time(what), deadline, key: None, elapsed: false }
    }

    /// The instant this sleep completes at.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed (and a poll would complete).
    pub fn is_elapsed(&self) -> bool {
        self.elapsed || Instant::now() >= self.deadline
    }

    /// Moves the deadline; a completed sleep becomes pending again if `deadline` is in the
    /// future. The timer is disarmed now and armed again, for the new deadline, by the next
    /// poll (the owner of the `&mut` is the one who polls it).
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        self.elapsed = false;
        if let Some(key) = self.key {
            // Re-armed at the next poll, with that poll's waker; until then nothing fires.
            self.handle.time.disarm(key);
            self.key = None;
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.elapsed {
            return Poll::Ready(());
        }
        core::task::ready!(coop::poll_proceed(cx));
        if this.handle.time.is_shut_down() {
            panic!("a framealloc timer was polled after its runtime shut down");
        }
        match this.key {
            Some(key) if Instant::now() < this.deadline => {
                if this.handle.time.poll_armed(key, cx.waker()) {
                    return Poll::Pending;
                }
                // Fired: the wheel holds nothing of it any more.
                this.key = None;
            }
            Some(key) => {
                // Due by the clock before the wheel turned.
                this.handle.time.disarm(key);
                this.key = None;
            }
            None => match this.handle.time.arm(this.deadline, cx.waker()) {
                Armed::Pending { key, wake_driver } => {
                    this.key = Some(key);
                    if wake_driver {
                        this.handle.wake();
                    }
                    return Poll::Pending;
                }
                Armed::Due => {}
            },
        }
        this.elapsed = true;
        coop::spend();
        Poll::Ready(())
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.handle.time.disarm(key);
        }
    }
}
