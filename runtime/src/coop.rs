//! The cooperative budget: how many times a task may find a resource ready in one poll before
//! it must yield, so one busy task cannot starve the others (tokio's scheme and number).
//!
//! The scheduler gives each poll a budget of [`BUDGET`] units; every resource of this runtime
//! that completes (a `JoinHandle` today, I/O and timers later) spends one. A task whose budget
//! is spent sees its next resource as "not ready", wakes itself and so goes to the back of its
//! worker's queue. Outside a poll of this runtime there is no budget and nothing is limited.

use core::cell::Cell;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

/// Units per poll.
pub(crate) const BUDGET: u8 = 128;

thread_local! {
    /// `None` outside a poll of this runtime: unconstrained.
    static REMAINING: Cell<Option<u8>> = const { Cell::new(None) };
}

/// Runs `f` (one poll) with a fresh budget, restoring the previous one afterwards (also on
/// panic, and for nested polls such as `block_on` inside `spawn_blocking`).
#[inline]
pub(crate) fn with_budget<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(Option<u8>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = REMAINING.try_with(|r| r.set(self.0));
        }
    }
    let prev = REMAINING.try_with(|r| r.replace(Some(BUDGET))).ok().flatten();
    let _restore = Restore(prev);
    f()
}

/// `Ready` if the current poll may still make progress on a resource; else wakes the task
/// and returns `Pending`. Spend the unit with [`spend`] once the resource was ready.
#[inline]
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<()> {
    match REMAINING.try_with(Cell::get) {
        Ok(Some(0)) => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        _ => Poll::Ready(()),
    }
}

/// Spends one unit of the current poll's budget (a resource was ready).
#[inline]
pub(crate) fn spend() {
    let _ = REMAINING.try_with(|r| {
        if let Some(n) = r.get() {
            r.set(Some(n.saturating_sub(1)));
        }
    });
}

/// Spends one unit of the task's budget, yielding first if it is used up: call it in a loop
/// that does a lot of work without awaiting anything that could be pending, so that the loop
/// gives other tasks their turn now and then (like `tokio::task::consume_budget`).
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } }
/// # framealloc::runtime::Runtime::new().unwrap().block_on(async {
/// let mut sum = 0u64;
/// for i in 0..1_000u64 {
///     framealloc::runtime::task::consume_budget().await;
///     sum += i;
/// }
/// assert_eq!(sum, 499_500);
/// # });
/// ```
pub async fn consume_budget() {
    ConsumeBudget.await
}

struct ConsumeBudget;

impl Future for ConsumeBudget {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        core::task::ready!(poll_proceed(cx));
        spend();
        Poll::Ready(())
    }
}
