//! [`JoinHandle`], [`AbortHandle`], [`JoinError`] and task [`Id`]s.

use super::{Header, HeaderRef, Outcome, Payload};
use async_task::FallibleTask;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::any::Any;
use std::sync::Mutex;
use std::task::Waker;

/// A task's id: unique among the tasks of the process (the number framealloc's error
/// messages name as "task N").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub(crate) u64);

impl Id {
    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An owned permission to join a task: `.await` it for the task's output.
///
/// Like tokio's: dropping it detaches the task (it keeps running); [`abort`](Self::abort)
/// cancels it; awaiting it gives `Ok(output)`, or a [`JoinError`] if the task panicked or was
/// cancelled (aborted, or dropped at runtime shutdown).
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } }
/// let rt = framealloc::runtime::Runtime::new().unwrap();
/// let handle = rt.spawn(async { 6 * 7 });
/// assert_eq!(rt.block_on(handle).unwrap(), 42);
///
/// let panicky = rt.spawn(async { panic!("boom") });
/// let err = rt.block_on(panicky).unwrap_err();
/// assert!(err.is_panic());
/// assert_eq!(*err.into_panic().downcast::<&str>().unwrap(), "boom");
/// ```
pub struct JoinHandle<T> {
    task: Option<FallibleTask<Outcome<T>, Header>>,
    header: HeaderRef,
    /// The task's waker, to wake it when it is aborted.
    waker: Waker,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: async_task::Task<Outcome<T>, Header>, waker: Waker) -> Self {
        let header = HeaderRef::new(task.metadata());
        Self { task: Some(task.fallible()), header, waker }
    }

    /// Cancels the task: if it has not completed, its future is dropped at its next turn on
    /// a worker (before its first poll, while it waits, or right after a poll in progress),
    /// its heap released, and awaiting this handle gives a cancelled [`JoinError`]. Once the
    /// task has completed, this does nothing and the output stays available.
    pub fn abort(&self) {
        self.header.get().abort(&self.waker);
    }

    /// `true` once the task has completed, panicked or been cancelled (its output, if any,
    /// is ready to be taken).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(FallibleTask::is_finished)
    }

    /// A handle that can abort the task without owning its output.
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle { waker: self.waker.clone(), header: self.header }
    }

    /// The task's id.
    pub fn id(&self) -> Id {
        self.header.get().id()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        core::task::ready!(crate::coop::poll_proceed(cx));
        let id = self.id();
        let task = self.task.as_mut().expect("a JoinHandle polled after it returned its output");
        let out = core::task::ready!(Pin::new(task).poll(cx));
        crate::coop::spend();
        // The output is taken: the task reference goes now, not when the handle drops.
        self.task = None;
        Poll::Ready(match out {
            Some(Outcome::Done(v)) => Ok(v),
            Some(Outcome::Panicked(payload)) => Err(JoinError { id, repr: Repr::Panic(Mutex::new(payload)) }),
            // Aborted (`Cancelled`), or closed by the runtime's shutdown (`None`).
            Some(Outcome::Cancelled) | None => Err(JoinError { id, repr: Repr::Cancelled }),
        })
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("id", &self.id()).field("finished", &self.is_finished()).finish()
    }
}

/// Aborts a task without owning its output (made by [`JoinHandle::abort_handle`]).
/// Cloneable; keeps the task's allocation (not its future) alive while it exists.
#[derive(Clone)]
pub struct AbortHandle {
    /// A waker of the task (the reference that keeps `header` valid).
    waker: Waker,
    header: HeaderRef,
}

impl AbortHandle {
    /// Cancels the task, as [`JoinHandle::abort`] does.
    pub fn abort(&self) {
        self.header.get().abort(&self.waker);
    }

    /// `true` once the task's future is gone: it completed, panicked or was cancelled.
    pub fn is_finished(&self) -> bool {
        self.header.get().is_finished()
    }

    /// The task's id.
    pub fn id(&self) -> Id {
        self.header.get().id()
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle").field("id", &self.id()).finish()
    }
}

/// Why a task gave no output: it panicked, or it was cancelled (aborted, or dropped when its
/// runtime shut down).
pub struct JoinError {
    id: Id,
    repr: Repr,
}

enum Repr {
    Cancelled,
    // A `Mutex` only to make the error `Sync` (as `std::error::Error` users expect): the payload
    // is never shared, it is taken by value.
    Panic(Mutex<Payload>),
}

impl JoinError {
    /// `true` if the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// `true` if the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The panic's payload (resume it with `std::panic::resume_unwind`).
    ///
    /// # Panics
    /// If the task was cancelled rather than panicking; [`try_into_panic`](Self::try_into_panic)
    /// does not.
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic().expect("`JoinError::into_panic` on a task that was cancelled, not panicking")
    }

    /// The panic's payload, or the error back if the task was cancelled.
    ///
    /// # Errors
    /// `Err(self)` if the task was cancelled.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(p) => Ok(p.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner)),
            Repr::Cancelled => Err(self),
        }
    }

    /// The id of the task.
    pub fn id(&self) -> Id {
        self.id
    }

    fn message(&self) -> Option<String> {
        let Repr::Panic(p) = &self.repr else { return None };
        let p = p.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned())
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.repr, self.message()) {
            (Repr::Cancelled, _) => write!(f, "task {} was cancelled", self.id),
            (Repr::Panic(_), Some(m)) => write!(f, "task {} panicked with message {m:?}", self.id),
            (Repr::Panic(_), None) => write!(f, "task {} panicked", self.id),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.repr, self.message()) {
            (Repr::Cancelled, _) => write!(f, "JoinError::Cancelled({})", self.id),
            (Repr::Panic(_), Some(m)) => write!(f, "JoinError::Panic({}, {m:?})", self.id),
            (Repr::Panic(_), None) => write!(f, "JoinError::Panic({}, ..)", self.id),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> Self {
        std::io::Error::other(e.to_string())
    }
}
