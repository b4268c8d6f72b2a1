//! [`TaskContext`], what an executor keeps per task, and its [`TaskSlot`]: the heaps of one
//! executor task, one per `SmartAlloc` it uses, created on the
//! task's first `pool_*` call and released when the task ends, plus one heap per open
//! [`AsyncPoolGuard`](crate::AsyncPoolGuard) of the task.
//!
//! `pool_*` inside the task allocates in the *innermost* heap of its `SmartAlloc`: the heap of
//! the newest open guard, else the task's base heap. A guard's scope is a heap of its own, so
//! "what this scope still has alive" is that heap's handle count, and nothing per allocation
//! has to remember its scope.
//!
//! A guard dropped inside its task removes and releases its heap at once. A guard dropped
//! elsewhere cannot (the task may be allocating there right now): it marks the heap ended, and
//! the task drops it from the slot when it next opens a guard, or on a `pool_*` call that
//! looks past its cached heap (the cached one ended, or another `SmartAlloc`'s), or at its end.

use super::AllocHandle;
use crate::heap::HeapCore;
use crate::identity;
use core::cell::{Cell, OnceCell, RefCell};
use core::ptr::NonNull;

/// One heap of the slot: `(heap, is a guard's heap)` (the heap knows its `SmartAlloc`).
type Entry = (NonNull<HeapCore>, bool);

pub(crate) struct TaskSlot {
    identity: u64,
    /// The innermost heap of the `SmartAlloc` used last (a heap knows its `SmartAlloc`'s id).
    /// A cache over `base` and `more`.
    first: Cell<Option<NonNull<HeapCore>>>,
    /// The base heap of the first `SmartAlloc` the task used (usually its only heap).
    base: Cell<Option<NonNull<HeapCore>>>,
    /// Every other heap, oldest first: base heaps of further `SmartAlloc`s and guard heaps.
    /// Boxed and made on first use, so that the slot (moved with every spawned future) stays
    /// small: four words. (Small matters: tokio copies a task's whole future, the slot
    /// included, each time it moves it or writes its stage, inline up to 128 bytes or so and
    /// through a `memcpy` call above.)
    more: OnceCell<Box<RefCell<Vec<Entry>>>>,
}

// SAFETY: the slot moves with its `TaskContext` between threads; it is used only inside
// `TaskContext::enter` (one thread at a time, `&mut` borrow) or through `&mut` for release.
unsafe impl Send for TaskSlot {}

impl TaskSlot {
    pub(crate) fn new(identity: u64) -> Self {
        Self { identity, first: Cell::new(None), base: Cell::new(None), more: OnceCell::new() }
    }

    /// The list of further heaps, made on first use.
    fn more(&self) -> &RefCell<Vec<Entry>> {
        self.more.get_or_init(Box::default)
    }

    /// The task's innermost heap for `handle`'s `SmartAlloc` (made on first use). The caller
    /// is running as this task (inside `enter`), so it is the heap's owner.
    #[inline(always)]
    pub(crate) fn heap_for(&self, handle: &AllocHandle) -> NonNull<HeapCore> {
        match self.cached_heap_for(handle.id) {
            Some(h) => h,
            None => self.heap_for_slow(handle),
        }
    }

    /// [`heap_for`](Self::heap_for) without the slow path: `None` unless the task's first
    /// heap is the one (the caller falls back to a path that calls `heap_for`).
    #[inline(always)]
    pub(crate) fn cached_heap_for(&self, id: u64) -> Option<NonNull<HeapCore>> {
        let h = self.first.get()?;
        // SAFETY: heaps in the slot are owned by this task and live until released here.
        let heap = unsafe { h.as_ref() };
        (heap.alloc_id() == id && !heap.guard_ended()).then_some(h)
    }

    #[cold]
    #[inline(never)]
    fn heap_for_slow(&self, handle: &AllocHandle) -> NonNull<HeapCore> {
        self.drop_ended_guards();
        let id = handle.id;
        // SAFETY: heaps in the slot are live until released here.
        let of_id = |h: &NonNull<HeapCore>| unsafe { h.as_ref() }.alloc_id() == id;
        let innermost = self.more.get().and_then(|m| m.borrow().iter().rev().map(|e| e.0).find(of_id));
        let base_of_id = self.base.get().filter(of_id);
        let h = match (innermost, base_of_id) {
            (Some(h), _) | (None, Some(h)) => h,
            (None, None) => {
                let h = super::obtain_task_heap(handle, self.identity);
                match self.base.get() {
                    None => self.base.set(Some(h)),
                    Some(_) => self.more().borrow_mut().push((h, false)),
                }
                h
            }
        };
        self.first.set(Some(h));
        h
    }

    /// Releases the heaps of guards dropped outside the task.
    fn drop_ended_guards(&self) {
        let Some(more) = self.more.get() else { return };
        let ended: Vec<NonNull<HeapCore>> = {
            let mut more = more.borrow_mut();
            // SAFETY: heaps in the slot are live until released here.
            let is_ended = |e: &Entry| e.1 && unsafe { e.0.as_ref() }.guard_ended();
            if !more.iter().any(is_ended) {
                return;
            }
            let ended = more.iter().filter(|e| is_ended(e)).map(|e| e.0).collect();
            more.retain(|e| !is_ended(e));
            ended
        };
        self.first.set(None);
        for h in ended {
            // SAFETY: we run as the task (its only user of the owner identity), and the heap
            // just left the slot, so it is released once.
            unsafe { super::release(h) };
        }
    }

    /// Makes `heap` (a fresh heap owned by this task) the innermost one of its `SmartAlloc`: a
    /// guard's.
    ///
    /// Releases the heaps of guards dropped elsewhere first: a task that opens a guard before
    /// each `pool_*` call always finds the newest one cached, so without this the ended ones
    /// under it would stay (a chunk each) until the task ends.
    pub(crate) fn push_guard(&self, heap: NonNull<HeapCore>) {
        self.drop_ended_guards();
        self.more().borrow_mut().push((heap, true));
        self.first.set(Some(heap));
    }

    /// Takes a guard's heap out of the slot (the guard is dropped inside the task); the caller
    /// releases it. `false` if it is not here (the task already ended and released it).
    pub(crate) fn remove_guard(&self, heap: NonNull<HeapCore>) -> bool {
        let Some(more) = self.more.get() else { return false };
        let mut more = more.borrow_mut();
        let Some(i) = more.iter().position(|e| e.0 == heap) else { return false };
        more.remove(i);
        self.first.set(None);
        true
    }

    /// The task's identity: the owner of every heap in the slot.
    pub(crate) fn identity(&self) -> u64 {
        self.identity
    }

    fn for_each_heap(&self, mut f: impl FnMut(NonNull<HeapCore>)) {
        if let Some(h) = self.base.get() {
            f(h);
        }
        for e in self.more.get().map(|m| m.borrow()).iter().flat_map(|m| m.iter()) {
            f(e.0);
        }
    }

    pub(crate) fn live_bytes(&self) -> u64 {
        let mut total = 0;
        // SAFETY: heaps in the slot are live until `release`.
        self.for_each_heap(|h| total += unsafe { h.as_ref() }.counters().live());
        total
    }

    pub(crate) fn release(&mut self) {
        // `&mut self` means no `enter` of this task is running anywhere, and the task's
        // identity is used only inside `enter`: nothing else can use the owner identity.
        self.first.set(None);
        if let Some(h) = self.base.take() {
            // SAFETY: see above; the heap leaves the slot here, so it is released once.
            unsafe { super::release(h) };
        }
        // Most tasks never made `more`: no iterator to build and drop then.
        if let Some(more) = self.more.get_mut() {
            for (h, _) in more.get_mut().drain(..) {
                // SAFETY: as above.
                unsafe { super::release(h) };
            }
        }
    }
}

impl Drop for TaskSlot {
    fn drop(&mut self) {
        self.release();
    }
}

/// Calls `f` with the heap slot of the task being polled by [`TaskContext::enter`], if any.
#[inline(always)]
pub(crate) fn with_slot<R>(f: impl FnOnce(Option<&TaskSlot>) -> R) -> R {
    let p = identity::current_slot().cast::<TaskSlot>();
    // Only `TaskContext::enter` enters a task with a slot pointer, a pointer to its `&mut self`'s
    // slot, restored to the previous value before that borrow ends. We are inside that `enter`
    // call on this thread (the pointer is non-null only then), and `f` returns before `enter`.
    // SAFETY: so a non-null slot outlives the reference.
    f(unsafe { p.as_ref() })
}

/// What an executor keeps per task so that framealloc knows which task runs: its identity
/// and its lazily created per-[`SmartAlloc`](crate::SmartAlloc) heaps for `pool_*` calls.
///
/// Executors create one per task, wrap every poll in [`enter`](Self::enter), and drop it (or
/// call [`release`](Self::release)) when the task completes, is cancelled or panics: the heaps
/// go back at once; allocations that escaped the task keep their heap alive until they drop.
pub struct TaskContext {
    slot: TaskSlot,
}

impl TaskContext {
    /// A context with a fresh identity and no heap (a heap costs nothing until first used).
    pub fn new() -> Self {
        Self { slot: TaskSlot::new(identity::new_task_identity()) }
    }

    /// The task's number, as shown in error messages.
    pub fn id(&self) -> u64 {
        identity::number(self.slot.identity())
    }

    /// Runs `f` (a poll, or dropping the task's future) as this task: `pool_*` calls use the
    /// task's heap, frees of its memory take the fast path, and `frame_*` calls panic (FA701).
    /// Nested entries restore the outer task on return, also on panic.
    pub fn enter<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let slot: *const TaskSlot = &self.slot;
        // `&mut self`: this task is entered nowhere else now (the identity rule), and it
        // stays so until `enter_task` returns.
        identity::enter_task(self.slot.identity(), slot.cast(), f)
    }

    /// Returns the task's heaps now (also done on drop). Allocations that escaped keep their
    /// heap alive until they drop; everything else goes back to the chunk cache.
    pub fn release(&mut self) {
        self.slot.release();
    }

    /// Bytes of the task's heaps' live allocations (all `SmartAlloc`s).
    pub fn live_bytes(&self) -> u64 {
        self.slot.live_bytes()
    }
}

impl Default for TaskContext {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TaskContext").field("id", &self.id()).finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn enter_sets_the_task_and_its_slot_and_restores_them() {
        let mut a = TaskContext::new();
        let mut b = TaskContext::new();
        let outer = identity::current();
        let (ia, ib, ia2) = a.enter(|| {
            let ia = with_slot(|s| s.map(TaskSlot::identity));
            let ib = b.enter(|| with_slot(|s| s.map(TaskSlot::identity)));
            (ia, ib, with_slot(|s| s.map(TaskSlot::identity)))
        });
        assert_eq!(ia, Some(a.slot.identity()));
        assert_eq!(ib, Some(b.slot.identity()));
        assert_ne!(ia, ib);
        assert_eq!(ia, ia2, "nested enter restores the outer task");
        assert_eq!(identity::current(), outer);
        assert!(with_slot(|s| s.is_none()) && !identity::in_task());
        assert_eq!(identity::number(a.slot.identity()), a.id());
    }

    #[test]
    fn enter_restores_on_panic() {
        let mut a = TaskContext::new();
        let outer = identity::current();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.enter(|| panic!("boom"))));
        assert!(r.is_err());
        assert_eq!(identity::current(), outer);
        assert!(with_slot(|s| s.is_none()) && !identity::in_task());
    }
}
