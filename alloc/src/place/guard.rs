//! The guard registry: where the scope of an [`AsyncPoolGuard`](crate::AsyncPoolGuard) opened
//! outside a task slot lives, and how a guard's heap is opened and closed (see
//! [`crate::guard`] for the scopes themselves).
//!
//! Inside a task with a heap slot the guard's heap is owned by the task and pushed on its slot
//! (see [`TaskSlot`](super::task::TaskSlot)). Elsewhere (a plain `tokio::spawn` task, a plain
//! thread) the heap goes on a stack in a registry keyed by (`SmartAlloc`, identity), where
//! `pool_*` finds it: a tokio task keeps its guard heap when it moves between worker threads.
//! That heap has no owner identity ([`NOBODY`]), since a guard may be dropped on another
//! thread than the one allocating. Instead, the lock of its registry shard stands in for the
//! owner: every `pool_*` call counts its handle with the owner's paths while it holds that
//! lock, `pool_box` and `pool_vec_with_capacity` take their block so too, and [`close`] takes
//! the heap out of the registry under that lock before it releases the owner state.
//! Everything else treats the heap as any non-owner does (a vector growing allocates under
//! the heap's own lock, frees go on its remote list).

use super::task::with_slot;
use super::AllocHandle;
use crate::error::AllocError;
use crate::heap::placed;
use crate::heap::HeapCore;
use crate::identity::{self, NOBODY};
use crate::shared::Shared;
use crate::stats::Kind;
use crate::sync::{AtomicUsize, Mutex, Ordering};
use core::ptr::NonNull;
use std::alloc::Layout;
use std::collections::BTreeMap;

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
#[cfg(not(loom))]
static SHARDS: [Shard; SHARD_COUNT] =
    [const { Shard { keys: AtomicUsize::new(0), map: Mutex::new(BTreeMap::new()) } }; SHARD_COUNT];
/// Keys in the registry, all told: while it is 0, `pool_*` need not even name its key.
#[cfg(not(loom))]
static REGISTERED: AtomicUsize = AtomicUsize::new(0);

// Under loom the registry's lock and atomics are loom objects, which belong to one model
// iteration: loom's lazy statics are made afresh in each. Two shards keep the model small.
#[cfg(loom)]
loom::lazy_static! {
    static ref SHARDS: [Shard; SHARD_COUNT] =
        core::array::from_fn(|_| Shard { keys: AtomicUsize::new(0), map: Mutex::new(BTreeMap::new()) });
    static ref REGISTERED: AtomicUsize = AtomicUsize::new(0);
}

const SHARD_COUNT: usize = if cfg!(loom) { 2 } else { 64 };

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

/// Where a guard's heap is.
pub(crate) enum Binding {
    /// The heap is on the slot of the task that was current at creation, owned by it.
    Slot,
    /// The heap is in the registry under this key, owned by nobody.
    Registry { key: (u64, u64) },
}

/// Opens a guard's scope on the current task (or thread) for `handle`: a fresh heap, the
/// innermost of the task's slot or of the registry, with one handle counted for the guard.
pub(crate) fn open(handle: &AllocHandle) -> (NonNull<HeapCore>, Binding) {
    let in_slot = with_slot(|slot| {
        let slot = slot?;
        let heap = super::obtain_task_heap(handle, slot.identity());
        // SAFETY: the slot is current, so we run as its task, the heap's owner.
        unsafe { heap.as_ref().retain_handle_owned() };
        slot.push_guard(heap);
        Some(heap)
    });
    if let Some(heap) = in_slot {
        return (heap, Binding::Slot);
    }
    let id = identity::current();
    let key = (handle.id, id);
    let kind = if identity::is_task(id) { Kind::Task } else { Kind::Pool };
    let heap = HeapCore::create(&handle.shared, kind, NOBODY);
    // SAFETY: fresh heap, alive until its ownership is released (in `close`).
    unsafe { heap.as_ref() }.retain_handle();
    let shard = shard_of(key);
    let mut map = shard.map.lock();
    let heaps = map.entry(key).or_insert_with(|| {
        REGISTERED.fetch_add(1, Ordering::AcqRel);
        shard.keys.fetch_add(1, Ordering::AcqRel);
        GuardHeaps(Vec::new())
    });
    heaps.0.push(heap);
    (heap, Binding::Registry { key })
}

/// Closes the scope [`open`] made: takes the heap out of its slot or the registry, calls
/// `count_escapes` once nothing more can be allocated in the scope, drops the guard's handle
/// and releases the heap (or, for a slot heap whose task is elsewhere or over, marks it ended
/// for the task to release).
///
/// # Safety
/// `heap` and `binding` come from one `open` call, and this is called once for it.
pub(crate) unsafe fn close(heap: NonNull<HeapCore>, binding: Binding, count_escapes: impl FnOnce()) {
    match binding {
        Binding::Slot => {
            count_escapes();
            // SAFETY: the guard's counted handle keeps the heap alive.
            let owner_here = unsafe { heap.as_ref() }.is_owner();
            // Running as the owner task means its slot is the current one.
            let removed = owner_here && with_slot(|s| s.is_some_and(|s| s.remove_guard(heap)));
            if !removed {
                // The task is elsewhere (or over): it drops the heap itself.
                // SAFETY: as above.
                unsafe { heap.as_ref() }.end_guard();
            }
            // SAFETY: the guard's handle, dropped once; the heap is alive until then.
            unsafe { HeapCore::release_handle(heap) };
            if removed {
                // We run as the owner task and the heap left its slot.
                // SAFETY: so nothing else uses the owner identity on it; released once.
                unsafe { super::release(heap) };
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
            count_escapes();
            // SAFETY: the guard's handle, dropped once; the heap's bias (released next) keeps
            // it alive until then.
            unsafe { HeapCore::release_handle(heap) };
            // The heap's owner is NOBODY, so no owner identity can touch it; the holders of its
            // shard's lock, who use its owner state, could only find it in the registry, which
            // it left under that lock (so their uses happened before this).
            // SAFETY: so nothing else uses its owner state now; released exactly once.
            unsafe { super::release(heap) };
        }
    }
}
