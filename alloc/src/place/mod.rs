//! Placement: which heap a `pool_*` call, a `TaskAlloc` or a guard gets, and where released
//! task heaps wait for the next task.
//!
//! A `pool_*` call allocates in the innermost heap of the task being polled (framealloc's
//! runtime, `framealloc::tokio::spawn`: its task slot, [`task`]), else in the heap of the
//! newest open guard of the current task or thread (the registry, [`guard`]), else in the
//! calling thread's pool ([`thread`]). Released task heaps are parked: in the releasing
//! thread's entry, else on this `SmartAlloc`'s shared list ([`AllocHandle`]), for any thread.

pub(crate) mod guard;
pub(crate) mod task;
pub(crate) mod thread;

/// Loom models of the placement protocols, driving the real code (see `crate::sync`).
#[cfg(all(test, loom))]
mod loom_models;

use crate::heap::{HeapCore, ParkedHeap};
use crate::shared::{Above, Shared};
use crate::stats::Kind;
use crate::sync::{AtomicUsize, Mutex, Ordering::Relaxed};
use core::any::Any;
use core::ptr::NonNull;
use std::sync::Arc;

/// Parked task heaps kept for any thread (see [`AllocHandle::push_spare`]): 4 MiB at most
/// with the default 16 KiB chunks.
const SPARE_LIMIT: usize = 256;

/// What `SmartAlloc` clones point to. Per-thread entries hold it weakly, so they are dropped
/// once every clone is gone.
pub(crate) struct AllocHandle {
    pub(crate) id: u64,
    pub(crate) shared: Arc<Shared>,
    /// Parked task heaps any thread may take: what threads that release more heaps than they
    /// start (a worker finishing tasks another one began) give to those that start more.
    spare: Mutex<Vec<ParkedHeap>>,
    /// `spare.len()`, read without the lock to skip it when the list is empty.
    spare_count: AtomicUsize,
}

impl AllocHandle {
    /// The handle of a new `SmartAlloc` over `shared`, linked to it as its [`Above`].
    pub(crate) fn new(shared: Arc<Shared>) -> Arc<Self> {
        let handle =
            Arc::new(Self { id: shared.id, shared, spare: Mutex::new(Vec::new()), spare_count: AtomicUsize::new(0) });
        let above: Arc<dyn Above> = handle.clone();
        handle.shared.set_above(Arc::downgrade(&above));
        handle
    }

    /// Puts a parked task heap on the shared list, or gives it back if the list is full.
    pub(crate) fn push_spare(&self, heap: ParkedHeap) -> Result<(), ParkedHeap> {
        let mut spare = self.spare.lock();
        if spare.len() >= SPARE_LIMIT {
            return Err(heap);
        }
        spare.push(heap);
        self.spare_count.store(spare.len(), Relaxed);
        Ok(())
    }

    /// A parked task heap from the shared list, if any.
    fn pop_spare(&self) -> Option<ParkedHeap> {
        if self.spare_count.load(Relaxed) == 0 {
            return None;
        }
        let mut spare = self.spare.lock();
        let heap = spare.pop()?;
        self.spare_count.store(spare.len(), Relaxed);
        Some(heap)
    }

    /// Frees the shared parked heaps; `true` if there were any.
    fn release_spares(&self) -> bool {
        let heaps = core::mem::take(&mut *self.spare.lock());
        self.spare_count.store(0, Relaxed);
        !heaps.is_empty()
    }

    /// Heaps on the shared list (for tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn spare_len(&self) -> usize {
        self.spare.lock().len()
    }
}

impl Above for AllocHandle {
    fn reclaim(&self) -> bool {
        thread::release_parked(self.id) | self.release_spares()
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

impl Drop for AllocHandle {
    fn drop(&mut self) {
        // The last clone is gone: this thread's frame arena, pool heap and parked heaps go
        // now (other threads' go when they next meet a new `SmartAlloc`, or exit), and the
        // shared parked heaps with this handle. Heaps released later are freed, not parked.
        thread::release_entry(self.id);
    }
}

/// The heap of the task being polled on this thread, for `handle`'s `SmartAlloc`: the caller
/// runs as its owner.
#[inline(always)]
pub(crate) fn slot_heap(handle: &AllocHandle) -> Option<NonNull<HeapCore>> {
    task::with_slot(|slot| Some(slot?.heap_for(handle)))
}

/// [`slot_heap`] if the task already made it and it is the task's first heap (no call): `None`
/// otherwise, for fast paths whose fallback finds the heap again.
#[inline(always)]
pub(crate) fn cached_slot_heap(handle: &AllocHandle) -> Option<NonNull<HeapCore>> {
    task::with_slot(|slot| slot?.cached_heap_for(handle.id))
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
    if task::with_slot(|slot| slot.is_some()) || guard::any_registered() {
        return None;
    }
    let heap = thread::cached_thread_pool(handle)?;
    // SAFETY: the thread's entry keeps its pool alive during this call.
    unsafe { heap.as_ref() }.is_owner_cached().then_some(heap)
}

/// Where a `pool_*` call on `handle` allocates outside a task of ours, with one handle
/// counted: an open guard's heap, else this thread's pool.
#[inline(never)]
pub(crate) fn target_outside_task(handle: &Arc<AllocHandle>) -> NonNull<HeapCore> {
    if let Some(h) = guard::registry_target(&handle.shared) {
        return h;
    }
    thread::thread_pool(handle)
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

/// The handle of the `SmartAlloc` that `shared` belongs to, while a clone of it is alive.
pub(crate) fn handle_of(shared: &Shared) -> Option<Arc<AllocHandle>> {
    shared.above()?.into_any().downcast::<AllocHandle>().ok()
}

/// A task heap for `handle` owned by `owner`: a parked one (this thread's, else a shared one)
/// if there is one, else a new one.
pub(crate) fn obtain_task_heap(handle: &AllocHandle, owner: u64) -> NonNull<HeapCore> {
    match thread::unpark(handle.id).or_else(|| handle.pop_spare()) {
        Some(parked) => parked.reuse(owner),
        None => HeapCore::create(&handle.shared, Kind::Task, owner),
    }
}

/// Ends the ownership of `heap` ([`HeapCore::release_owner`]) and parks it if it comes back
/// parkable (see [`thread::park`]).
///
/// # Safety
/// As for [`HeapCore::release_owner`].
pub(crate) unsafe fn release(heap: NonNull<HeapCore>) {
    // SAFETY: forwarded contract.
    if let Some(parked) = unsafe { HeapCore::release_owner(heap) } {
        thread::park(parked);
    }
}
