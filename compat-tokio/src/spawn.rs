//! [`spawn`], [`spawn_local`] and the future wrapper behind them, [`WithTaskHeap`].

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use framealloc_alloc::hook::TaskContext;
use pin_project_lite::pin_project;
use tokio::task::JoinHandle;

/// Spawns `future` on the current tokio runtime, like [`tokio::spawn`], with a heap of its
/// own: `alloc.pool_*` calls inside it allocate in the task's heap (no atomics), which is
/// released when the task completes (before its output is published to the `JoinHandle`), is
/// aborted, or panics. Allocations returned through the `JoinHandle` stay valid until they drop.
///
/// The heap has a cost per task (taking a parked heap at the first `pool_*` call and giving
/// it back at the end, and the wrapper: a few hundred instructions in all), which pays off
/// when the task allocates a lot. For a tiny task that allocates once or not at all, plain
/// [`tokio::spawn`] is cheaper, its `pool_*` calls going to the worker thread's pool (the
/// README's small-task bench: 4–9% faster than this `spawn` for a task with one object).
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } pub mod tokio { pub use framealloc_tokio::*; } }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let alloc = framealloc::SmartAlloc::new(Default::default());
/// let a = alloc.clone();
/// let kept = framealloc::tokio::spawn(async move { a.pool_box([7u8; 32]) }).await.unwrap();
/// assert_eq!(kept[31], 7);                           // escaped: still valid
/// assert_eq!(alloc.stats().task.live_bytes, 32);
/// drop(kept);
/// assert_eq!(alloc.stats().heaps_alive, 0);           // the task's heap is gone
/// # }
/// ```
///
/// # Panics
/// Outside a tokio runtime, like [`tokio::spawn`].
#[inline(always)]
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    // `Handle::current().spawn` rather than `tokio::spawn` (the same runtime, the same
    // automatic boxing of huge futures, the same panic outside a runtime): `tokio::spawn`
    // passes the future through a closure and an `Option` on its way to the task cell, and
    // for a future with drop glue (the wrapper always has some) the compiler keeps each of
    // those stack copies: four `memcpy`s of the whole future instead of one. Measured with
    // the bench's handlers under callgrind: 300 (objects, a 0.6 KiB future) to 500 (byte
    // buffers, 1.5 KiB) fewer instructions per task, for one reference-count increment and
    // decrement of the handle. By time it is even at those sizes (copies within L1 are cheap:
    // 1.00x against `tokio::spawn` in a paired run); the copies grow with the future.
    tokio::runtime::Handle::current().spawn(with_task_heap(future))
}

/// Spawns a `!Send` future on the current [`tokio::task::LocalSet`], like
/// [`tokio::task::spawn_local`], with a heap of its own (see [`spawn`]).
///
/// # Panics
/// Outside a `LocalSet`, like [`tokio::task::spawn_local`].
#[track_caller]
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    tokio::task::spawn_local(with_task_heap(future))
}

/// Wraps `future` so that it runs with a heap of its own, for spawners other than [`spawn`]:
/// `JoinSet::spawn`, `Handle::spawn`, `LocalSet::spawn_local`, ...
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } pub mod tokio { pub use framealloc_tokio::*; } }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let alloc = framealloc::SmartAlloc::new(Default::default());
/// let mut set = tokio::task::JoinSet::new();
/// for i in 0..4u64 {
///     let a = alloc.clone();
///     set.spawn(framealloc::tokio::with_task_heap(async move { *a.pool_box(i * 10) }));
/// }
/// let mut total = 0;
/// while let Some(v) = set.join_next().await {
///     total += v.unwrap();
/// }
/// assert_eq!(total, 60);
/// assert_eq!(alloc.stats().task.allocations, 4);      // each in its task's heap
/// assert_eq!(alloc.stats().heaps_alive, 0);
/// # }
/// ```
#[inline(always)]
pub fn with_task_heap<F: Future>(future: F) -> WithTaskHeap<F> {
    crate::init();
    // The context first: with no call between, the future can go straight into place.
    let ctx = TaskContext::new();
    WithTaskHeap { future: Some(future), ctx }
}

pin_project! {
    /// A future that runs `F` as a framealloc task: every poll (and the drop of `F`) happens
    /// inside the task's [`TaskContext`], whose heaps are released as soon as `F` completes or
    /// the wrapper is dropped. Made by [`with_task_heap`].
    #[must_use = "futures do nothing unless polled"]
    pub struct WithTaskHeap<F> {
        // `None` once `F` completed (it is dropped right away, as the task).
        #[pin]
        future: Option<F>,
        ctx: TaskContext,
    }

    impl<F> PinnedDrop for WithTaskHeap<F> {
        fn drop(this: Pin<&mut Self>) {
            // Aborted, cancelled, dropped after a panic, or never polled: drop the future as
            // the task (its pool handles free on the fast path, a `Drop` impl that allocates
            // uses the task's heap), then give the heaps back.
            let this = this.project();
            let mut future = this.future;
            if future.is_some() {
                this.ctx.enter(|| future.set(None));
            }
            this.ctx.release();
        }
    }
}

impl<F: Future> Future for WithTaskHeap<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut future = this.future;
        let out = this.ctx.enter(|| {
            let inner = future.as_mut().as_pin_mut().expect("`WithTaskHeap` polled after it completed");
            let out = inner.poll(cx);
            if out.is_ready() {
                // The task is over: drop its future (and what it still holds) as the task.
                future.set(None);
            }
            out
        });
        if out.is_ready() {
            // Release before returning, so the heap is gone before tokio publishes the output.
            this.ctx.release();
        }
        out
    }
}

impl<F> core::fmt::Debug for WithTaskHeap<F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WithTaskHeap").field("ctx", &self.ctx).field("completed", &self.future.is_none()).finish()
    }
}
