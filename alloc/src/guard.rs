//! [`AsyncPoolGuard`]: a scope of the current task's `pool_*` allocations, as a heap of its own.
//!
//! Every guard gets a fresh heap, and while it is the innermost open guard of its task (or
//! thread) every `pool_*` call there allocates in it. What the scope has alive is then just
//! that heap's handle count: no allocation needs to remember its scope, and `pool_*` outside
//! guards pays nothing for them.
//!
//! * Inside a task with a heap slot (framealloc's runtime, `framealloc::tokio::spawn`) the
//!   heap is owned by the task and pushed on its slot (see `TaskSlot`): allocation and free
//!   without atomics.
//! * Elsewhere (a plain `tokio::spawn` task, a plain thread) the heap goes on a stack in a
//!   registry keyed by (`SmartAlloc`, identity), where `pool_*` finds it: a tokio task keeps its
//!   guard heap when it moves between worker threads. That heap has no owner identity
//!   ([`NOBODY`]), since a guard may be dropped on another thread than the one allocating.
//!   Instead, the lock of its registry shard stands in for the owner: every `pool_*` call
//!   counts its handle with the owner's paths while it holds that lock, `pool_box` and
//!   `pool_vec_with_capacity` take their block so too, and the guard's drop takes the heap out
//!   of the registry under that lock before it releases the owner state. Everything else
//!   treats the heap as any non-owner does (a vector growing allocates under the heap's own
//!   lock, frees go on its remote list).
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

use crate::error::AllocError;
use crate::heap::HeapCore;
use crate::identity::{self, NOBODY};
use crate::pool::placed;
use crate::shared::Shared;
use crate::stats::Kind;
use crate::SmartAlloc;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use parking_lot::Mutex;
use std::alloc::Layout;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Guard heaps of one (`SmartAlloc`, identity), innermost last.
struct GuardHeaps(Vec<NonNull<HeapCore>>);

// SAFETY: the heaps' owner state is used only under their shard's lock (see the module
// docs), and everything else of theirs is thread-safe.
unsafe impl Send for GuardHeaps {}

/// One part of the registry: the keys whose hash picks it ([`shard_of`]), and how many there
/// are. Aligned to its own cache lines, so that guards of different shards opening and
/// closing on different threads do not contend.
#[repr(align(128))]
struct Shard {
    /// Keys in `map`: while it is 0, a `pool_*` call whose key hashes here skips the lock,
    /// which is what lets guards open for other keys (other tasks, threads or `SmartAlloc`s)
    /// cost it nothing. A key's own entry is added (under the lock) before its `pool_*` calls
    /// can look for it, by the same identity, so they see the count.
    keys: AtomicUsize,
    map: Mutex<BTreeMap<(u64, u64), GuardHeaps>>,
}

/// The registry, in shards: one global lock made every `pool_*` call under a guard, in every
/// task and thread, wait for the others' (2 threads each allocating under a guard of their
/// own: 80-95 ns per `pool_box` made and dropped instead of 63 alone).
static SHARDS: [Shard; SHARD_COUNT] =
    [const { Shard { keys: AtomicUsize::new(0), map: Mutex::new(BTreeMap::new()) } }; SHARD_COUNT];
const SHARD_COUNT: usize = 64;
/// Keys in the registry, all told: while it is 0, `pool_*` need not even name its key.
static REGISTERED: AtomicUsize = AtomicUsize::new(0);

/// The shard of `key` (keys that share one share its lock).
fn shard_of(key: (u64, u64)) -> &'static Shard {
    // Fibonacci hashing of both words; the top bits pick the shard.
    let h = (key.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ key.1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    &SHARDS[(h >> (64 - SHARD_COUNT.trailing_zeros())) as usize]
}

/// `true` if a guard outside task heaps is open anywhere (one may claim a `pool_*` call).
#[inline(always)]
pub(crate) fn any_registered() -> bool {
    REGISTERED.load(Ordering::Acquire) != 0
}

/// The innermost guard heap of the current identity for `shared`, with one handle counted
/// for the caller, if a guard is open there.
#[inline]
pub(crate) fn registry_target(shared: &Shared) -> Option<NonNull<HeapCore>> {
    if !any_registered() {
        return None;
    }
    registry_lookup(shared)
}

#[cold]
fn registry_lookup(shared: &Shared) -> Option<NonNull<HeapCore>> {
    with_innermost(shared, |heap| {
        // SAFETY: as for `with_innermost`'s callback: the owner count is ours to update, and
        // the handle keeps the heap alive after we let go of the lock.
        unsafe { heap.as_ref().retain_handle_owned() };
        heap
    })
}

/// Allocates `layout` (non-zero size) in the innermost guard heap of the current identity
/// for `shared`, with one handle counted, if a guard is open there: `None` (nothing done)
/// otherwise.
///
/// The block is taken under the shard's lock with the owner's paths (see the module docs): a
/// registered heap's owner state is used only by the holder of its shard's lock, and by the
/// guard's release once the heap has left the registry.
#[inline]
pub(crate) fn registry_allocate(shared: &Shared, layout: Layout) -> Option<Result<NonNull<u8>, AllocError>> {
    if !any_registered() {
        return None;
    }
    registry_allocate_slow(shared, layout)
}

#[cold]
fn registry_allocate_slow(shared: &Shared, layout: Layout) -> Option<Result<NonNull<u8>, AllocError>> {
    with_innermost(shared, |heap| {
        // SAFETY: as for `with_innermost`'s callback.
        let block = unsafe { placed::allocate_locked(heap, layout) };
        if block.is_ok() {
            // SAFETY: as above: the owner count is ours to update.
            unsafe { heap.as_ref().retain_handle_owned() };
        }
        block
    })
}

/// Runs `f` on the innermost guard heap of the current identity for `shared`, if a guard is
/// open there, under its shard's lock. There the heap is alive (its guard's handle) and has
/// no owner identity, and `f` holds the lock that guards its owner state (see the module
/// docs): `f` may use it as the owner would.
#[inline(always)]
fn with_innermost<R>(shared: &Shared, f: impl FnOnce(NonNull<HeapCore>) -> R) -> Option<R> {
    let key = (shared.id, identity::current());
    let shard = shard_of(key);
    if shard.keys.load(Ordering::Acquire) == 0 {
        return None;
    }
    let map = shard.map.lock();
    let heap = *map.get(&key)?.0.last()?;
    Some(f(heap))
}

enum Binding {
    /// The heap is on the slot of the task that was current at creation, owned by it.
    Slot,
    /// The heap is in the registry under this key, owned by nobody.
    Registry { key: (u64, u64) },
}

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
    binding: Binding,
}

// SAFETY: the heap is reached only through its thread-safe entry points (ownership checks,
// atomics, its lock), and the guard's counted handle keeps it alive wherever the guard goes.
unsafe impl Send for AsyncPoolGuard {}
// SAFETY: `&AsyncPoolGuard` only reads atomics of the heap (`escaped`).
unsafe impl Sync for AsyncPoolGuard {}

impl AsyncPoolGuard {
    /// Opens a scope on the current task (or thread) for `alloc`: its `pool_*` allocations
    /// there go to the scope's heap until the guard drops or a newer guard opens.
    pub fn new(alloc: &SmartAlloc) -> Self {
        let shared = alloc.shared().clone();
        let in_slot = identity::with_slot(|slot| {
            let slot = slot?;
            let heap = HeapCore::obtain_task_heap(&shared, slot.identity());
            // SAFETY: the slot is current, so we run as its task, the heap's owner.
            unsafe { heap.as_ref().retain_handle_owned() };
            slot.push_guard(heap);
            Some(heap)
        });
        if let Some(heap) = in_slot {
            return Self { heap, shared, binding: Binding::Slot };
        }
        let id = identity::current();
        let key = (shared.id, id);
        let kind = if identity::is_task(id) { Kind::Task } else { Kind::Pool };
        let heap = HeapCore::create(&shared, kind, NOBODY);
        // SAFETY: fresh heap, alive until its ownership is released (in `drop`).
        unsafe { heap.as_ref() }.retain_handle();
        let shard = shard_of(key);
        let mut map = shard.map.lock();
        let heaps = map.entry(key).or_insert_with(|| {
            REGISTERED.fetch_add(1, Ordering::AcqRel);
            shard.keys.fetch_add(1, Ordering::AcqRel);
            GuardHeaps(Vec::new())
        });
        heaps.0.push(heap);
        Self { heap, shared, binding: Binding::Registry { key } }
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
        let heap = self.heap;
        match self.binding {
            Binding::Slot => {
                self.count_escapes();
                // SAFETY: our counted handle keeps the heap alive.
                let owner_here = unsafe { heap.as_ref() }.is_owner();
                // Running as the owner task means its slot is the current one.
                let removed = owner_here && identity::with_slot(|s| s.is_some_and(|s| s.remove_guard(heap)));
                if !removed {
                    // The task is elsewhere (or over): it drops the heap itself.
                    // SAFETY: as above.
                    unsafe { heap.as_ref() }.end_guard();
                }
                // SAFETY: our handle, dropped once; the heap is alive until then.
                unsafe { HeapCore::release_handle(heap) };
                if removed {
                    // SAFETY: we run as the owner task and the heap left its slot, so nothing
                    // else uses the owner identity on it and it is released once.
                    unsafe { HeapCore::release_owner(heap) };
                }
            }
            Binding::Registry { key } => {
                {
                    let shard = shard_of(key);
                    let mut map = shard.map.lock();
                    if let Some(heaps) = map.get_mut(&key) {
                        heaps.0.retain(|h| *h != heap);
                        if heaps.0.is_empty() {
                            map.remove(&key);
                            REGISTERED.fetch_sub(1, Ordering::AcqRel);
                            shard.keys.fetch_sub(1, Ordering::AcqRel);
                        }
                    }
                }
                // Counted only now: until the heap left the registry its identity could still
                // allocate there (a guard dropped on another thread), uncounted if read before.
                self.count_escapes();
                // SAFETY: our handle, dropped once; the heap's bias (released next) keeps it
                // alive until then.
                unsafe { HeapCore::release_handle(heap) };
                // SAFETY: the heap's owner is NOBODY, so no owner identity can touch it; the
                // holders of its shard's lock, who use its owner state, could only find it in
                // the registry, which it left under that lock (so their uses happened before
                // this); and it is released exactly once.
                unsafe { HeapCore::release_owner(heap) };
            }
        }
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
