//! [`Interval`]: a sleep re-armed one period after each tick.

use super::sleep::Sleep;
use core::future::poll_fn;
use core::task::{Context, Poll};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// Ticks every `period`, the first tick at once.
///
/// # Panics
/// If `period` is zero, or outside a framealloc runtime.
#[track_caller]
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// Ticks every `period`, the first tick at `start`.
///
/// # Panics
/// If `period` is zero, or outside a framealloc runtime.
#[track_caller]
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(period > Duration::ZERO, "`interval` period must be non-zero");
    Interval { delay: Sleep::new(start, "interval"), period, missed: MissedTickBehavior::default() }
}

/// What an [`Interval`] does when ticks were missed because its consumer was slow (a tick is
/// missed when it is taken more than 5 ms late).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// Catch up: the missed ticks complete at once, one after another, until the schedule
    /// is met again (the default, as in tokio).
    #[default]
    Burst,
    /// Start over: the next tick is one period after the late one was taken.
    Delay,
    /// Skip the missed ticks: the next tick is the next one of the original schedule.
    Skip,
}

/// Lateness within which a tick counts as on time (a timer fires up to a tick late).
const TOLERANCE: Duration = Duration::from_millis(5);

impl MissedTickBehavior {
    fn next(self, scheduled: Instant, now: Instant, period: Duration) -> Instant {
        match self {
            MissedTickBehavior::Burst => scheduled + period,
            MissedTickBehavior::Delay => now + period,
            MissedTickBehavior::Skip => {
                let late = now.duration_since(scheduled).as_nanos() % period.as_nanos();
                now + period - Duration::from_nanos(late as u64)
            }
        }
    }
}

/// The stream of ticks of [`interval`] / [`interval_at`]: await [`tick`](Self::tick).
#[derive(Debug)]
pub struct Interval {
    delay: Sleep,
    period: Duration,
    missed: MissedTickBehavior,
}

impl Interval {
    /// Waits for the next tick and returns the instant it was scheduled for.
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick (for hand-written futures and streams).
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        core::task::ready!(Pin::new(&mut self.delay).poll(cx));
        let scheduled = self.delay.deadline();
        let now = Instant::now();
        let next = if now > scheduled + TOLERANCE {
            self.missed.next(scheduled, now, self.period)
        } else {
            scheduled + self.period
        };
        self.delay.reset(next);
        Poll::Ready(scheduled)
    }

    /// Restarts the schedule: the next tick is one period from now.
    pub fn reset(&mut self) {
        self.delay.reset(Instant::now() + self.period);
    }

    /// The period between ticks.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// What happens to missed ticks.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed
    }

    /// Sets what happens to missed ticks.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed = behavior;
    }
}
