//! [`PoolBox`] and [`PoolVec`]: owning handles for `pool_*` allocations.
//!
//! Where a `pool_*` call allocates: the innermost heap of the task being polled (framealloc's
//! runtime, `framealloc::tokio::spawn`: the heap of its newest open
//! [`AsyncPoolGuard`](crate::AsyncPoolGuard), else the task's own), else the heap of the
//! newest open guard of the current task or thread, else the calling thread's pool. The
//! handle counts itself in that heap, so it may go anywhere (across threads, out of its task
//! through a `JoinHandle`) and is never dangling: its heap is freed only after the last handle
//! drops.

mod boxed;
pub(crate) mod placed;
mod vec;

pub use boxed::PoolBox;
pub use vec::PoolVec;

use crate::error::fail;
use crate::heap::HeapCore;
use crate::identity;
use crate::smart::AllocHandle;
use core::ptr::NonNull;
use std::sync::Arc;

/// The heap of the task being polled on this thread, for `handle`'s `SmartAlloc`: the caller
/// runs as its owner.
#[inline(always)]
pub(crate) fn slot_heap(handle: &Arc<AllocHandle>) -> Option<NonNull<HeapCore>> {
    identity::with_slot(|slot| Some(slot?.heap_for(handle.id, &handle.shared)))
}

/// [`slot_heap`] if the task already made it and it is the task's first heap (no call): `None`
/// otherwise, for fast paths whose fallback finds the heap again.
#[inline(always)]
pub(crate) fn cached_slot_heap(handle: &Arc<AllocHandle>) -> Option<NonNull<HeapCore>> {
    identity::with_slot(|slot| slot?.cached_heap_for(handle.id))
}

/// This thread's pool for `handle`, if a `pool_*` call here allocates there and everything
/// needed is cached: no task of ours is polled here (no heap slot), no guard outside task
/// heaps is open anywhere (none can claim the call), and the thread's entry for `handle` is
/// the cached one, its pool made and owned by the caller (the pool's thread). Counts no
/// handle. `None` leaves the decision to the caller's general path: an open guard's heap
/// (`PoolBox`'s slow path allocates there under the registry's lock, `PoolVec`'s takes it
/// from [`target_outside_task`]), else the thread's pool found the long way. The slow paths
/// of plain threads and plain tokio tasks try it first, for the pool's class fast path.
#[inline(always)]
pub(crate) fn owned_thread_pool(handle: &Arc<AllocHandle>) -> Option<NonNull<HeapCore>> {
    if identity::with_slot(|slot| slot.is_some()) || crate::guard::any_registered() {
        return None;
    }
    let heap = crate::local::cached_thread_pool(handle)?;
    // SAFETY: the thread's entry keeps its pool alive during this call.
    unsafe { heap.as_ref() }.is_owner_cached().then_some(heap)
}

/// Where a `pool_*` call on `handle` allocates outside a task of ours, with one handle
/// counted: an open guard's heap, else this thread's pool.
#[inline(never)]
pub(crate) fn target_outside_task(handle: &Arc<AllocHandle>) -> NonNull<HeapCore> {
    if let Some(h) = crate::guard::registry_target(&handle.shared) {
        return h;
    }
    crate::local::thread_pool(handle)
}

/// Where a `pool_*` call on `handle` allocates, with one handle counted.
#[inline(always)]
pub(crate) fn target(handle: &Arc<AllocHandle>) -> NonNull<HeapCore> {
    match slot_heap(handle) {
        Some(heap) => {
            // SAFETY: a slot heap is owned by the running task, which keeps it alive.
            unsafe { heap.as_ref().retain_handle_owned() };
            heap
        }
        None => target_outside_task(handle),
    }
}

/// Builds a `PoolBox` or panics with the error.
#[inline(always)]
#[track_caller]
pub(crate) fn pool_box<T>(handle: &Arc<AllocHandle>, value: T) -> PoolBox<T> {
    match PoolBox::try_new_in(handle, value) {
        Ok(b) => b,
        Err(e) => fail(e),
    }
}
