//! Per-thread state of each `SmartAlloc`: the thread's frame arena, its pool heap, and the
//! task heaps released on this thread with nothing escaped, parked for the next task (so a
//! task's heap costs no registration, allocation or chunk traffic once the thread is warm).
//!
//! Entries live in a thread-local list; a one-entry cache (`LAST`) makes the common case (one
//! `SmartAlloc` used repeatedly on a thread) a compare and a load. When the last clone of a
//! `SmartAlloc` drops, the dropping thread's entry goes at once ([`release_entry`]); its entries
//! on other threads are dropped the next time those threads' lists are searched for a new
//! `SmartAlloc`, and all of them at thread exit.

use super::AllocHandle;
use crate::frame::arena::FrameArena;
use crate::heap::{HeapCore, ParkedHeap};
use crate::identity::{self, NOBODY};
use crate::shared::Shared;
use crate::stats::Kind;
use core::cell::{Cell, RefCell};
use core::ptr::{self, NonNull};
use std::rc::Rc;
use std::sync::{Arc, Weak};

pub(crate) struct ThreadEntry {
    id: u64,
    alive: Weak<AllocHandle>,
    pub(crate) frame: Rc<FrameArena>,
    pool: Cell<Option<NonNull<HeapCore>>>,
    parked: RefCell<Vec<ParkedHeap>>,
}

/// Task heaps parked per thread and `SmartAlloc`: a worker running a few hundred short tasks
/// at once gets all their heaps back without registering or allocating (each parked heap
/// holds one chunk: 4 MiB at most with the default 16 KiB chunks, the same bound as the chunk
/// cache, and released under total-budget pressure).
const PARK_LIMIT: usize = 256;

impl Drop for ThreadEntry {
    fn drop(&mut self) {
        // The parked heaps are freed with the entry's fields.
        if let Some(h) = self.pool.take() {
            // SAFETY: the pool heap's owner is this thread's identity; we are on this thread,
            // outside any use of it, and release it once. A pool heap is never parked.
            drop(unsafe { HeapCore::release_owner(h) });
        }
    }
}

/// Boxed so that an entry's address (cached in `LAST`) survives the vector growing.
#[allow(clippy::vec_box)]
struct Entries(Vec<Box<ThreadEntry>>);

impl Drop for Entries {
    fn drop(&mut self) {
        let _ = LAST.try_with(|l| l.set((0, ptr::null())));
        self.0.clear();
    }
}

#[cfg(not(loom))]
thread_local! {
    static ENTRIES: RefCell<Entries> = const { RefCell::new(Entries(Vec::new())) };
    static LAST: Cell<(u64, *const ThreadEntry)> = const { Cell::new((0, ptr::null())) };
}

// Per model thread under loom (a std thread-local would be shared by the model's threads and
// outlive an iteration, see `crate::identity`); dropped when the model thread ends.
#[cfg(loom)]
loom::thread_local! {
    static ENTRIES: RefCell<Entries> = RefCell::new(Entries(Vec::new()));
    static LAST: Cell<(u64, *const ThreadEntry)> = Cell::new((0, ptr::null()));
}

/// This thread's entry for `handle`, or `None` during thread teardown.
///
/// The entry stays valid while `handle` lives and the thread is not tearing down: entries are
/// removed only when their `SmartAlloc` is gone, or when the thread-local list is destroyed.
#[inline(always)]
pub(crate) fn entry(handle: &Arc<AllocHandle>) -> Option<NonNull<ThreadEntry>> {
    match cached_entry(handle) {
        Some(p) => Some(p),
        None => entry_slow(handle),
    }
}

/// `handle`'s entry if it is the cached one (`LAST`): a thread-local load and a compare.
#[inline(always)]
fn cached_entry(handle: &Arc<AllocHandle>) -> Option<NonNull<ThreadEntry>> {
    let (id, p) = LAST.try_with(|l| l.get()).ok()?;
    if id != handle.id {
        return None;
    }
    NonNull::new(p.cast_mut())
}

#[cold]
#[inline(never)]
fn entry_slow(handle: &Arc<AllocHandle>) -> Option<NonNull<ThreadEntry>> {
    ENTRIES
        .try_with(|e| {
            let mut e = e.borrow_mut();
            // A `SmartAlloc` used before on this thread: just switch the cache to it.
            if let Some(x) = e.0.iter().find(|x| x.id == handle.id) {
                let p = NonNull::from(&**x);
                let _ = LAST.try_with(|l| l.set((handle.id, p.as_ptr().cast_const())));
                return p;
            }
            // A new one: first drop entries of dead `SmartAlloc`s, outside the borrow (their
            // drop may allocate). Moving the boxes does not move the entries, so pointers to
            // live ones stay valid.
            let (live, dead): (Vec<_>, Vec<_>) =
                core::mem::take(&mut e.0).into_iter().partition(|x| x.alive.strong_count() > 0);
            e.0 = live;
            e.0.push(Box::new(ThreadEntry {
                id: handle.id,
                alive: Arc::downgrade(handle),
                frame: Rc::new(FrameArena::new(&handle.shared)),
                pool: Cell::new(None),
                parked: RefCell::new(Vec::new()),
            }));
            let p = NonNull::from(&**e.0.last().expect("just pushed"));
            drop(e);
            let _ = LAST.try_with(|l| l.set((handle.id, p.as_ptr().cast_const())));
            drop(dead);
            p
        })
        .ok()
}

/// This thread's existing entry for the `SmartAlloc` with `id` (never creates one).
fn existing_entry(id: u64) -> Option<NonNull<ThreadEntry>> {
    let (last, p) = LAST.try_with(|l| l.get()).ok()?;
    if last == id {
        return NonNull::new(p.cast_mut());
    }
    ENTRIES
        .try_with(|e| {
            let e = e.try_borrow().ok()?;
            e.0.iter().find(|x| x.id == id).map(|x| NonNull::from(&**x))
        })
        .ok()
        .flatten()
}

/// Drops this thread's entry for the `SmartAlloc` with `id`, whose last clone just dropped:
/// its frame arena (chunks still held by frame handles stay with them), its pool heap (blocks
/// still held stay valid) and its parked task heaps. Without this they stayed until the
/// thread next used a new `SmartAlloc` or exited. Nothing of the entry can be in use: every
/// user of an entry holds a clone of its `SmartAlloc` (or runs in `with_parked`, which runs no
/// code that could drop one).
pub(crate) fn release_entry(id: u64) {
    let removed = ENTRIES
        .try_with(|e| {
            // Borrowed only if a clone drops while the list is being read (nothing here drops
            // one then); the entry would then be pruned like any other dead one, later.
            let mut e = e.try_borrow_mut().ok()?;
            let i = e.0.iter().position(|x| x.id == id)?;
            Some(e.0.swap_remove(i))
        })
        .ok()
        .flatten();
    if removed.is_some() {
        let _ = LAST.try_with(|l| {
            if l.get().0 == id {
                l.set((0, ptr::null()));
            }
        });
    }
    // Outside the borrow: the entry's drop may allocate.
    drop(removed);
}

/// Runs `f` on this thread's parked heaps in `entry`, if they are free.
fn with_parked<R>(entry: NonNull<ThreadEntry>, f: impl FnOnce(&mut Vec<ParkedHeap>) -> R) -> Option<R> {
    // Entries are freed only by `entry_slow`'s pruning (which then points `LAST` at another
    // entry, so `LAST` never names a freed one), by `release_entry` (which clears `LAST` if it
    // names the entry) and by the thread-local's destruction (which clears `LAST` first). None
    // of them can run during this call: `f` only pushes, pops or takes parked heaps.
    // SAFETY: so the entry is live; we only touch its parked list, on its own thread.
    let entry = unsafe { entry.as_ref() };
    let mut parked = entry.parked.try_borrow_mut().ok()?;
    Some(f(&mut parked))
}

/// Parks a task heap: in this thread's entry (made if needed), else, if that is full, on the
/// shared list for other threads. Frees it if both are full, the thread is ending, or every
/// `SmartAlloc` clone is gone.
pub(crate) fn park(heap: ParkedHeap) {
    let existing = existing_entry(heap.shared().id);
    let mut heap = Some(heap);
    // The usual case: this thread's entry exists (if its `SmartAlloc` is gone, the entry and
    // what it parks are freed when the thread's entries are next pruned, or at thread exit).
    if let Some(e) = existing {
        push_parked(e, &mut heap);
    }
    let Some(h) = heap else { return };
    // Held until the heap is parked: while it lives, the `SmartAlloc` (whose drop empties the
    // shared list) cannot go.
    let Some(handle) = super::handle_of(h.shared()) else { return };
    let mut heap = Some(h);
    // No entry yet: make one (an existing one was full, and stays full).
    if existing.is_none() {
        if let Some(e) = entry(&handle) {
            push_parked(e, &mut heap);
        }
    }
    if let Some(h) = heap {
        // Freed (dropped) if the shared list is full too.
        let _ = handle.push_spare(h);
    }
}

/// Moves `heap` onto `entry`'s parked list unless that is full (or busy). Never under loom:
/// every parked heap goes to the shared list, the hand-over between threads that the
/// models check.
fn push_parked(entry: NonNull<ThreadEntry>, heap: &mut Option<ParkedHeap>) {
    with_parked(entry, |p| {
        if !cfg!(loom) && p.len() < PARK_LIMIT {
            p.extend(heap.take());
        }
    });
}

/// Frees this thread's parked task heaps of the `SmartAlloc` with `id`; `true` if there were
/// any.
pub(crate) fn release_parked(id: u64) -> bool {
    let Some(entry) = existing_entry(id) else { return false };
    let heaps = with_parked(entry, core::mem::take).unwrap_or_default();
    !heaps.is_empty()
}

/// A parked task heap of the `SmartAlloc` with `id` from this thread's entry, if any.
pub(crate) fn unpark(id: u64) -> Option<ParkedHeap> {
    existing_entry(id).and_then(|e| with_parked(e, Vec::pop).flatten())
}

/// This thread's pool heap for `handle` if `handle`'s entry is the cached one (`LAST`) and
/// its pool exists: thread-local loads and compares, no call. Counts no handle.
#[inline(always)]
pub(crate) fn cached_thread_pool(handle: &Arc<AllocHandle>) -> Option<NonNull<HeapCore>> {
    let entry = cached_entry(handle)?;
    // SAFETY: `LAST` never names a freed entry (see `with_parked`), and the reference does
    // not outlive this call, during which no entry can be freed.
    unsafe { entry.as_ref() }.pool.get()
}

/// This thread's pool heap for `handle`, with one handle counted.
pub(crate) fn thread_pool(handle: &Arc<AllocHandle>) -> NonNull<HeapCore> {
    // SAFETY: see `entry`: valid for this call, which `handle` outlives.
    match entry(handle).map(|e| unsafe { e.as_ref() }) {
        Some(e) => {
            let heap = match e.pool.get() {
                Some(h) => h,
                None => {
                    let h = HeapCore::create(&handle.shared, Kind::Pool, identity::current_thread());
                    e.pool.set(Some(h));
                    h
                }
            };
            // SAFETY: the entry keeps its pool heap alive.
            unsafe { heap.as_ref() }.retain_handle();
            heap
        }
        None => teardown_heap(&handle.shared),
    }
}

/// During thread teardown: a heap with no owner, kept alive only by the handle made from it.
#[cold]
fn teardown_heap(shared: &Arc<Shared>) -> NonNull<HeapCore> {
    let heap = HeapCore::create(shared, Kind::Pool, NOBODY);
    // SAFETY: fresh heap; it has no owner identity, so releasing ownership right after
    // counting our handle is exclusive and leaves the handle as its only reference.
    unsafe {
        heap.as_ref().retain_handle();
        drop(HeapCore::release_owner(heap)); // a pool heap: never parked
    }
    heap
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::hook::TaskContext;
    use crate::SmartAlloc;

    /// A thread that releases more task heaps than it can park gives the rest to the shared
    /// list, where another thread's next task finds them; dropping the `SmartAlloc` frees them
    /// (Miri's leak check covers that).
    #[test]
    fn surplus_heaps_go_to_other_threads() {
        let alloc = SmartAlloc::default();
        let extra = 3;
        let n = super::PARK_LIMIT + extra;
        let mut tasks: Vec<TaskContext> = (0..n).map(|_| TaskContext::new()).collect();
        for t in &mut tasks {
            t.enter(|| drop(alloc.pool_box(1u64)));
        }
        let handle = alloc.handle().clone();
        assert_eq!(alloc.stats().heaps_alive, n as u64);
        drop(tasks); // releases all on this thread: PARK_LIMIT parked here, `extra` shared
        assert_eq!(alloc.stats().heaps_alive, 0);
        assert_eq!(handle.spare_len(), extra);
        let a = alloc.clone();
        std::thread::spawn(move || {
            let mut t = TaskContext::new();
            t.enter(|| drop(a.pool_box(2u64)));
        })
        .join()
        .unwrap();
        // It took a spare heap instead of making one (and parked it in its own entry, freed at
        // its exit).
        assert_eq!(handle.spare_len(), extra - 1);
        let shared = handle.shared.clone();
        drop(handle);
        drop(alloc);
        assert_eq!(shared.held_bytes(), 0, "freed with the last SmartAlloc clone");
    }

    /// Dropping the last clone frees the dropping thread's frame arena, pool heap and parked
    /// task heaps at once: they used to stay until the thread met a new `SmartAlloc` or exited.
    #[test]
    fn the_last_clone_frees_this_threads_memory() {
        let alloc = SmartAlloc::default();
        let shared = alloc.shared().clone();
        alloc.begin_frame();
        let mut big = alloc.frame_vec::<u8>();
        big.extend(core::iter::repeat_n(1, 100_000)); // several frame chunks
        drop(big);
        drop(alloc.pool_box(2u64)); // this thread's pool heap
        let mut task = TaskContext::new();
        task.enter(|| drop(alloc.pool_box(3u64)));
        drop(task); // its heap is parked in this thread's entry
        alloc.end_frame();
        assert!(super::existing_entry(shared.id).is_some());
        drop(alloc);
        assert!(super::existing_entry(shared.id).is_none());
        assert_eq!(shared.held_bytes(), 0, "every chunk went back");
    }
}
