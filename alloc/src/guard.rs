//! [`AsyncPoolGuard`]: a scope of the current task's `pool_*` allocations, as a heap of its own.
//!
//! Every guard gets a fresh heap, and while it is the innermost open guard of its task (or
//! thread) every `pool_*` call there allocates in it. What the scope has alive is then just
//! that heap's handle count: no allocation needs to remember its scope, and `pool_*` outside
//! guards pays nothing for them.
//!
//! Inside a task with a heap slot (framealloc's runtime, `framealloc::tokio::spawn`) the heap
//! is owned by the task and pushed on its slot: allocation and free without atomics.
//! Elsewhere (a plain `tokio::spawn` task, a plain thread) it goes in a registry where
//! `pool_*` finds it, with a lock standing in for its owner (see `place::guard`).
//!
//! The guard holds a counted handle on its heap, so the heap outlives it. Dropping the guard
//! releases the heap: what the scope allocated and already freed goes back at once; what is
//! still alive has escaped: it stays valid, keeps the heap alive, and is counted in
//! `AllocStats::guard_escapes`.
//!
//! Deviation from DESIGN.md ("marks a scope of the current task's heap"): the scope is a heap
//! of its own, so that no allocation has to carry its scope (a `PoolBox` stays one pointer and
//! `pool_*` outside guards pays nothing). The visible difference: when something escaped a
//! scope, the scope's already-freed blocks stay with its heap (reused by nobody) until the
//! last escapee drops, instead of going back to the task's heap at once.

use crate::heap::HeapCore;
use crate::place::guard::{self, Binding};
use crate::place::AllocHandle;
use crate::shared::Shared;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;
use std::sync::Arc;

/// RAII scope for `pool_*` allocations of the current task. See the module docs.
///
/// `Send + Sync`: a guard held across `.await` keeps working when the task moves to another
/// worker thread, and may be dropped anywhere.
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; }
/// use framealloc::{AsyncPoolGuard, SmartAlloc};
/// let alloc = SmartAlloc::new(Default::default());
/// let guard = AsyncPoolGuard::new(&alloc);
/// let kept = {
///     let a = alloc.pool_box(1u64);
///     let b = alloc.pool_box(2u64);
///     assert_eq!(guard.escaped(), 2);
///     drop(a);
///     b
/// };
/// assert_eq!(guard.escaped(), 1); // `kept` outlives the scope
/// drop(guard);
/// assert_eq!(*kept, 2);           // escaped allocations stay valid
/// assert_eq!(alloc.stats().guard_escapes, 1);
/// ```
///
/// The scope ends when the guard drops, so a guard that is not bound is a mistake the
/// compiler reports (`unused_must_use`; an error here):
///
/// ```compile_fail
/// # mod framealloc { pub use framealloc_alloc::*; }
/// #![deny(unused_must_use)]
/// let alloc = framealloc::SmartAlloc::default();
/// framealloc::AsyncPoolGuard::new(&alloc); // dropped at once: no scope
/// ```
#[must_use = "the scope ends when the guard drops: bind it (`let _guard = AsyncPoolGuard::new(&alloc);`)"]
pub struct AsyncPoolGuard {
    /// The scope's heap; this guard holds one counted handle on it.
    heap: NonNull<HeapCore>,
    shared: Arc<Shared>,
    /// Where the heap is; taken by `drop`.
    binding: Option<Binding>,
}

// SAFETY: the heap is reached only through its thread-safe entry points (ownership checks,
// atomics, its lock), and the guard's counted handle keeps it alive wherever the guard goes.
unsafe impl Send for AsyncPoolGuard {}
// SAFETY: `&AsyncPoolGuard` only reads atomics of the heap (`escaped`).
unsafe impl Sync for AsyncPoolGuard {}

impl AsyncPoolGuard {
    /// Opens a scope for `handle`'s `SmartAlloc` (see [`AsyncPoolGuard::new`]).
    pub(crate) fn open(handle: &AllocHandle) -> Self {
        let (heap, binding) = guard::open(handle);
        Self { heap, shared: handle.shared.clone(), binding: Some(binding) }
    }

    /// Handles made in this scope that are still alive now: its live allocations, and its
    /// `PoolVec`s that have not allocated yet (a `pool_vec()` belongs to the scope it was made
    /// in, where it will allocate).
    pub fn escaped(&self) -> usize {
        // SAFETY: our counted handle keeps the heap alive.
        let handles = unsafe { self.heap.as_ref() }.live_handles();
        handles.saturating_sub(1) // our own
    }
}

impl Drop for AsyncPoolGuard {
    fn drop(&mut self) {
        let Some(binding) = self.binding.take() else { return };
        // SAFETY: the heap and binding of our `open`, closed once (the binding is taken).
        unsafe { guard::close(self.heap, binding, || self.count_escapes()) };
    }
}

impl AsyncPoolGuard {
    /// Adds what is still alive in the scope to `AllocStats::guard_escapes`, as it ends.
    fn count_escapes(&self) {
        self.shared.guard_escapes.fetch_add(self.escaped() as u64, Ordering::Relaxed);
    }
}

impl core::fmt::Debug for AsyncPoolGuard {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AsyncPoolGuard").field("escaped", &self.escaped()).finish()
    }
}
