//! Tasks: [`JoinHandle`], [`AbortHandle`], [`JoinError`], task [`Id`]s, and the cooperative
//! helpers [`yield_now`] and [`consume_budget`].
//!
//! Every task owns a framealloc heap: `alloc.pool_*` inside it allocates there, and the heap
//! is released when the task completes, panics or is cancelled, before its output reaches
//! the `JoinHandle`.

// Tasks: one `async-task` allocation per task, holding a `Header` (its runtime, id, abort
// and finished flags), the schedule hook, and the future wrapped in a `TaskFuture` that gives
// it a heap of its own and registers it for shutdown the first time it waits.
//
// Every poll of a task, and the drop of its future, runs inside the task's
// `TaskContext`: `alloc.pool_*` there uses the task's heap, a `TaskAlloc` made there is
// owned by the task, and `frame_*` panics (FA701). When the future completes, panics or is
// dropped (abort, shutdown), the wrapper drops it as the task, releases the heap and
// deregisters the task, all before the output is published: a `JoinHandle` that sees the
// output sees the heap gone.
//
// A panic in the future is caught in the wrapper and becomes the task's output
// (`Outcome::Panicked`, a `JoinError` for whoever joins), so it never unwinds into a worker.
//
// Abort is a flag in the header and a wake-up. The wrapper checks the flag at the start of
// every poll, after async-task has marked the task running, and then cancels the task in
// place (`Outcome::Cancelled`) instead of polling its future. Checking it any earlier (in the
// scheduler, before `Runnable::run`) would lose an abort that lands between that check and
// the run: its wake-up finds the task still scheduled and is absorbed, and once the poll
// returns `Pending` nothing queues the task again. Checked inside the poll, the abort is
// either seen there (its wake-up's state change came before the run's, which acquires it)
// or its wake-up came during the poll, and async-task schedules the task once more.
//
// The task layer knows its runtime only as the header's `Arc<Shared>`: the schedule hook
// and the registry live there.

mod join;
pub(crate) mod registry;

pub use join::{AbortHandle, Id, JoinError, JoinHandle};

use crate::scheduler::Shared;
use async_task::{Builder, Runnable, ScheduleInfo, WithInfo};
use core::future::Future;
use core::pin::Pin;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll};
use framealloc_alloc::hook::TaskContext;
use pin_project_lite::pin_project;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

pub use crate::coop::consume_budget;

/// A panic's payload, as `std::panic::catch_unwind` returns it.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// How a task ended, as its `JoinHandle` receives it.
pub(crate) enum Outcome<T> {
    /// The future completed with this output.
    Done(T),
    /// The future panicked with this payload.
    Panicked(Payload),
    /// The task was aborted before the future completed.
    Cancelled,
}

/// The runnable half of a task, as the scheduler queues it.
pub(crate) type Task = Runnable<Header>;

/// The metadata of every task, inside its allocation (`async-task` pins it there before the
/// future is made, and drops it only after the future and every handle are gone).
#[derive(Debug)]
pub(crate) struct Header {
    /// The runtime that schedules the task.
    pub(crate) shared: Arc<Shared>,
    id: u64,
    /// A `spawn_blocking` job (not counted among the runtime's tasks).
    blocking: bool,
    aborted: AtomicBool,
    /// Set when the future is gone (completed, panicked or dropped).
    finished: AtomicBool,
}

impl Header {
    pub(crate) fn id(&self) -> Id {
        Id(self.id)
    }

    /// `true` once the task was aborted: its next poll cancels it instead of polling it.
    #[inline]
    fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    /// `true` once the task's future is gone (completed, panicked or dropped).
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Marks the task aborted and wakes it with `waker` (one of its own), so that its next poll
    /// cancels it (see the module comment): at once if it is idle, after the current poll if
    /// it is running. Waking a task that has completed does nothing.
    pub(crate) fn abort(&self, waker: &std::task::Waker) {
        self.aborted.store(true, Ordering::Release);
        waker.wake_by_ref();
    }
}

/// A pointer to a task's [`Header`], for the parts of a task that live as long as its
/// allocation but cannot borrow it: the wrapped future and the `JoinHandle`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderRef(NonNull<Header>);

// SAFETY: `Header` is `Sync` (an `Arc`, integers and atomics), and `HeaderRef` only gives out
// `&Header`; sending the pointer is sending a shared reference.
unsafe impl Send for HeaderRef {}
// SAFETY: as above: only `&Header` is reachable through it.
unsafe impl Sync for HeaderRef {}

impl HeaderRef {
    fn new(header: &Header) -> Self {
        Self(NonNull::from(header))
    }

    /// The header.
    ///
    /// Why the pointer is valid: a `HeaderRef` is held only by the task's own future (dropped
    /// by async-task before it destroys the header: the header goes with the last task
    /// reference, and the runnable that drops the future holds one) and by a `JoinHandle` or
    /// `AbortHandle`, which hold a task reference themselves (the `Task`, a `Waker`). The
    /// header does not move: async-task writes it once into the task's allocation and hands
    /// out `&Header` from there.
    #[inline]
    pub(crate) fn get(&self) -> &Header {
        // SAFETY: the header outlives every holder of a `HeaderRef` and never moves (above).
        unsafe { self.0.as_ref() }
    }
}

/// `TaskFuture::key` of a task that is not registered.
const UNREGISTERED: usize = usize::MAX;

pin_project! {
    /// A task's future: `F` run as a framealloc task (see the module docs).
    pub(crate) struct TaskFuture<F> {
        // `None` once `F` is done (dropped at once, as the task).
        #[pin]
        future: Option<F>,
        ctx: TaskContext,
        header: HeaderRef,
        // Where the task is registered while it waits: registry shard and key
        // (`UNREGISTERED` before its first `Pending`).
        shard: u32,
        key: usize,
    }

    impl<F> PinnedDrop for TaskFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Shut down, or never polled: drop the future as the task. (A future that
            // completed or was aborted was dropped, and its task finished, in `poll`.)
            let this = this.project();
            if this.future.is_some() {
                cancel(this.future, this.ctx, this.header.get(), *this.shard, *this.key);
            }
        }
    }
}

/// Drops a task's future as the task, releases its heap and finishes it. A panic in the
/// future's drop is swallowed: there is nobody to give it to (async-task would abort).
fn cancel<F>(mut future: Pin<&mut Option<F>>, ctx: &mut TaskContext, header: &Header, shard: u32, key: usize) {
    let _ = catch_unwind(AssertUnwindSafe(|| ctx.enter(|| future.set(None))));
    ctx.release();
    finish(header, shard, key);
}

/// The future is gone: marks the task finished, takes it out of the registry and counts it.
fn finish(header: &Header, shard: u32, key: usize) {
    header.finished.store(true, Ordering::Release);
    if key != UNREGISTERED {
        header.shared.registry.remove(shard as usize, key);
    }
    if !header.blocking {
        header.shared.count_finished();
    }
}

impl<F: Future> Future for TaskFuture<F> {
    type Output = Outcome<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let header = this.header.get();
        if header.is_aborted() {
            cancel(this.future, this.ctx, header, *this.shard, *this.key);
            return Poll::Ready(Outcome::Cancelled);
        }
        let mut future = this.future;
        let out = this.ctx.enter(|| {
            let polled = catch_unwind(AssertUnwindSafe(|| {
                future.as_mut().as_pin_mut().expect("a task polled after it completed").poll(cx)
            }));
            let out = match polled {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(v)) => Outcome::Done(v),
                Err(payload) => Outcome::Panicked(payload),
            };
            // The task is over: drop its future (and what it still holds) as the task.
            match catch_unwind(AssertUnwindSafe(|| future.set(None))) {
                Ok(()) => Poll::Ready(out),
                Err(payload) => Poll::Ready(Outcome::Panicked(payload)),
            }
        });
        if out.is_ready() {
            // Before async-task publishes the output: the heap is gone when the join sees it.
            this.ctx.release();
            finish(header, *this.shard, *this.key);
        } else if *this.key == UNREGISTERED {
            // The task waits for the first time: make it reachable for shutdown.
            let shared = &header.shared;
            let shard = shared.registry_shard();
            match shared.registry.insert(shard, cx.waker().clone()) {
                Ok(key) => {
                    *this.shard = shard as u32;
                    *this.key = key;
                }
                // Shutting down: wake it, so that the scheduler drops it after this poll.
                Err(waker) => waker.wake(),
            }
        }
        out
    }
}

/// Makes a task of `future` that `schedule` schedules (a `spawn_blocking` job if `blocking`).
/// Returns the runnable, for the caller to queue (or drop, after shutdown), and the join
/// handle.
pub(crate) fn spawn<F, S>(shared: &Arc<Shared>, blocking: bool, future: F, schedule: S) -> (Task, JoinHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Fn(Task, ScheduleInfo) + Send + Sync + 'static,
{
    let ctx = TaskContext::new();
    let header = Header {
        shared: shared.clone(),
        id: ctx.id(),
        blocking,
        aborted: AtomicBool::new(false),
        finished: AtomicBool::new(false),
    };
    let (runnable, task) = Builder::new().metadata(header).spawn(
        move |h: &Header| TaskFuture {
            future: Some(future),
            ctx,
            header: HeaderRef::new(h),
            shard: 0,
            key: UNREGISTERED,
        },
        WithInfo(schedule),
    );
    let waker = runnable.waker();
    (runnable, JoinHandle::new(task, waker))
}

/// Yields to the scheduler once: the task goes to the back of its worker's queue, so the
/// other tasks there run first. The returned future is `Send`.
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } }
/// # framealloc::runtime::Runtime::new().unwrap().block_on(async {
/// let t = framealloc::runtime::spawn(async {
///     framealloc::runtime::yield_now().await;
///     7
/// });
/// assert_eq!(t.await.unwrap(), 7);
/// # });
/// ```
pub async fn yield_now() {
    YieldNow { yielded: false }.await
}

struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        // Woken while running: the scheduler puts the task at the back of the queue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
