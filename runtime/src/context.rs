//! What a thread knows of the runtime it runs in: the handle that free functions (`spawn`,
//! `Handle::current`) use, and whether it is driving tasks (a worker, or inside `block_on`),
//! where blocking on another future would deadlock or starve the runtime.

use crate::driver;
use crate::runtime::Handle;
use core::cell::{Cell, RefCell};
use core::marker::PhantomData;
use std::sync::Arc;

thread_local! {
    static HANDLE: RefCell<Option<Handle>> = const { RefCell::new(None) };
    /// Set on worker threads and inside `block_on`.
    static DRIVING: Cell<bool> = const { Cell::new(false) };
}

/// The runtime entered on this thread, if any.
pub(crate) fn current() -> Option<Handle> {
    HANDLE.try_with(|h| h.borrow().clone()).ok().flatten()
}

/// Calls `f` with the runtime entered on this thread, without cloning its handle.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Handle>) -> R) -> R {
    let mut f = Some(f);
    match HANDLE.try_with(|h| (f.take().expect("called once"))(h.borrow().as_ref())) {
        Ok(r) => r,
        Err(_) => (f.take().expect("not called yet"))(None),
    }
}

/// The driver of the runtime entered on this thread.
///
/// # Errors
/// Outside a runtime.
pub(crate) fn current_driver_io() -> std::io::Result<Arc<driver::Handle>> {
    with_current(|h| h.map(|h| h.driver.clone())).ok_or_else(|| {
        std::io::Error::other(
            "no framealloc runtime on this thread: create sockets inside `Runtime::block_on`, a \
             task, or after `Runtime::enter`",
        )
    })
}

/// The driver of the runtime entered on this thread.
///
/// # Panics
/// Outside a runtime; `what` names the operation for the message.
#[track_caller]
pub(crate) fn current_driver_time(what: &str) -> Arc<driver::Handle> {
    match with_current(|h| h.map(|h| h.driver.clone())) {
        Some(h) => h,
        None => panic!(
            "`{what}` needs a framealloc runtime: call it inside `Runtime::block_on`, a task, or \
             after `Runtime::enter`"
        ),
    }
}

/// Makes `handle` this thread's runtime until the guard drops (which restores the previous).
pub(crate) fn enter<'a>(handle: Handle) -> EnterGuard<'a> {
    let prev = HANDLE.with(|h| h.replace(Some(handle)));
    EnterGuard { prev, _not_send: PhantomData }
}

/// Marks this thread as driving tasks until the guard drops.
///
/// # Panics
/// If it already is: `what` is the operation that would block, for the message.
#[track_caller]
pub(crate) fn enter_driving(what: &str) -> DrivingGuard {
    if DRIVING.with(|d| d.replace(true)) {
        panic!(
            "Cannot {what} from within a framealloc runtime: this thread is already driving \
             tasks (a task is being polled on a worker, or `block_on` is running), and blocking it \
             would stall them. Await the future instead, or move the blocking call into \
             `spawn_blocking`."
        );
    }
    DrivingGuard { _not_send: PhantomData }
}

/// Leaves the driving state on drop.
pub(crate) struct DrivingGuard {
    _not_send: PhantomData<*const ()>,
}

impl Drop for DrivingGuard {
    fn drop(&mut self) {
        let _ = DRIVING.try_with(|d| d.set(false));
    }
}

/// Keeps a runtime entered on this thread (see [`Handle::enter`]); leaving restores the
/// runtime entered before. Not `Send`: it must drop on the thread that made it.
#[must_use = "the runtime is entered only while the guard lives"]
pub struct EnterGuard<'a> {
    prev: Option<Handle>,
    _not_send: PhantomData<(&'a Handle, *const ())>,
}

impl Drop for EnterGuard<'_> {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let _ = HANDLE.try_with(|h| *h.borrow_mut() = prev);
    }
}

impl core::fmt::Debug for EnterGuard<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EnterGuard").finish_non_exhaustive()
    }
}
