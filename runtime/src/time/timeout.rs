//! [`timeout`]: a future raced against a sleep.

use super::sleep::{far_future, Sleep};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Runs `future` for at most `duration`: its output, or [`Elapsed`] if time ran out first
/// (the future is then dropped when the `Timeout` is).
///
/// # Panics
/// Outside a framealloc runtime.
#[track_caller]
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    let deadline = Instant::now().checked_add(duration).unwrap_or_else(far_future);
    Timeout { future, delay: Sleep::new(deadline, "timeout") }
}

/// Runs `future` until `deadline` at most; see [`timeout`].
///
/// # Panics
/// Outside a framealloc runtime.
#[track_caller]
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout { future, delay: Sleep::new(deadline, "timeout_at") }
}

pin_project_lite::pin_project! {
    /// The future of [`timeout`] and [`timeout_at`].
    #[must_use = "a Timeout does nothing unless awaited"]
    #[derive(Debug)]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        delay: Sleep,
    }
}

impl<F> Timeout<F> {
    /// The wrapped future.
    pub fn get_ref(&self) -> &F {
        &self.future
    }

    /// The wrapped future, to take it back.
    pub fn into_inner(self) -> F {
        self.future
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.future.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        Pin::new(this.delay).poll(cx).map(|()| Err(Elapsed(())))
    }
}

/// The error of a [`timeout`] whose time ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elapsed(());

impl core::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(e: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}
