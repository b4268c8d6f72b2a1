//! [`PoolBox`] and [`PoolVec`]: owning handles for `pool_*` allocations.
//!
//! Where a `pool_*` call allocates is placement's to say (`place`): the innermost heap of the
//! task being polled (framealloc's runtime, `framealloc::tokio::spawn`: the heap of its
//! newest open [`AsyncPoolGuard`](crate::AsyncPoolGuard), else the task's own), else the heap
//! of the newest open guard of the current task or thread, else the calling thread's pool.
//! The handle counts itself in that heap, so it may go anywhere (across threads, out of its task
//! through a `JoinHandle`) and is never dangling: its heap is freed only after the last handle
//! drops.

mod boxed;
mod vec;

pub use boxed::PoolBox;
pub use vec::PoolVec;

use crate::error::fail;
use crate::place::AllocHandle;
use std::sync::Arc;

/// Builds a `PoolBox` or panics with the error.
#[inline(always)]
#[track_caller]
pub(crate) fn pool_box<T>(handle: &Arc<AllocHandle>, value: T) -> PoolBox<T> {
    match PoolBox::try_new_in(handle, value) {
        Ok(b) => b,
        Err(e) => fail(e),
    }
}
