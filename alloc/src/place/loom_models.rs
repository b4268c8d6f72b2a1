//! Loom models of the placement protocols on the real code: `RUSTFLAGS="--cfg loom" cargo test -p framealloc-alloc --release --lib loom`.
//!
//! Under `--cfg loom` the guard registry's shard locks and counts, the shared list of parked
//! heaps and its count come from `crate::sync` (loom's), the registry is a loom lazy static
//! (made afresh in each iteration), and the per-thread entries (`place::thread`) and who is
//! current (`crate::identity`) are loom thread-locals, one per model thread. A thread's own
//! park list holds nothing under loom, so every released task heap goes to the shared list.
//! The heaps are the real `HeapCore`s (see `heap::core`'s `loom_models`): an access to a
//! heap's owner state that is not ordered after the previous one fails the model.
//!
//! The models drive the placement layer's own entry points, as the handles above it call
//! them: `TaskContext::enter`/`release` and `target` for a task's `pool_*` call,
//! `guard::open`/`guard::close` for an `AsyncPoolGuard`, `guard::registry_allocate` for a
//! `pool_box` under a registered guard, `placed::free_and_release` for a `PoolBox`'s drop,
//! and `release`, `AllocHandle::push_spare` and `obtain_task_heap` for parked heaps.
//!
//! A block's contents are not loom-tracked memory, so where a model needs to see that a
//! block's reuse is ordered after its last use, it keeps a loom cell inside the block, 16
//! bytes in (the allocator writes only the first 16 bytes of a free block: its list link).

use super::guard::{self, Binding};
use super::task::TaskContext;
use super::{target, AllocHandle};
use crate::config::AllocConfig;
use crate::heap::class::BLOCK_ALIGN;
use crate::heap::core::loom_models::Block;
use crate::heap::placed;
use crate::heap::HeapCore;
use crate::shared::Shared;
use core::ptr::NonNull;
use core::sync::atomic::AtomicUsize;
use core::sync::atomic::Ordering::Relaxed;
use loom::thread;
use std::alloc::Layout;
use std::sync::Arc;

/// Chunks of 4 KiB: the smallest, so that a heap is one small chunk.
const CHUNK: usize = 4096;

fn handle() -> (Arc<Shared>, Arc<AllocHandle>) {
    let shared = Shared::new(AllocConfig::default().with_task_chunk_bytes(CHUNK));
    (shared.clone(), AllocHandle::new(shared))
}

/// The layout of the models' `PoolBox`es: a class block with room for a loom cell 16 bytes in.
fn layout() -> Layout {
    Layout::from_size_align(256, BLOCK_ALIGN).expect("a block layout")
}

/// Everything freed: the last reference to `shared` is ours once `handle` (and with it the
/// shared parked heaps) is gone; a heap freed twice would have dropped one reference too many.
fn all_freed(shared: Arc<Shared>, handle: Arc<AllocHandle>) {
    drop(handle);
    assert_eq!(Arc::strong_count(&shared), 1, "every heap freed exactly once");
}

/// A heap pointer handed to another model thread.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Heap(NonNull<HeapCore>);

// SAFETY: `HeapCore` is `Send + Sync`; each model uses the pointer under the protocol it checks.
unsafe impl Send for Heap {}

/// A `pool_box` in the running task: its heap (`target`, a handle counted) and a block there.
fn task_pool_box(handle: &Arc<AllocHandle>) -> Block {
    let heap = target(handle);
    Block::of(placed::allocate(heap, layout()).expect("a block"))
}

/// A `PoolBox`'s drop: the block freed and its handle dropped.
///
/// # Safety
/// The block came from `placed::allocate` with `layout()`, with its handle, and is not used again.
unsafe fn drop_pool_box(b: Block) {
    // SAFETY: per the caller.
    unsafe { placed::free_and_release(b.ptr(), layout()) }
}

/// An `AsyncPoolGuard`'s drop: `guard::close`, counting the escapes as it does (the guard's
/// own handle and one box of its scope are all the models make).
///
/// # Safety
/// As for `guard::close`.
unsafe fn drop_guard(heap: Heap, binding: Binding) {
    let count_escapes = || {
        // SAFETY: the guard's handle keeps the heap alive during `close`.
        let live = unsafe { heap.0.as_ref() }.live_handles();
        assert!((1..=2).contains(&live), "live handles {live}");
    };
    // SAFETY: per the caller.
    unsafe { guard::close(heap.0, binding, count_escapes) };
}

/// How many runs of a model ended which way, to check that loom explored each.
struct Outcomes<const N: usize>([AtomicUsize; N]);

impl<const N: usize> Outcomes<N> {
    const fn new() -> Self {
        Self([const { AtomicUsize::new(0) }; N])
    }

    fn saw(&self, i: usize) {
        self.0[i].fetch_add(1, Relaxed);
    }

    fn all_seen(&self) -> bool {
        self.0.iter().all(|n| n.load(Relaxed) > 0)
    }
}

/// An `AsyncPoolGuard` opened inside a task (its heap on the task's slot, owned by the task,
/// the guard's handle counted by the owner) and dropped on another thread: `guard::close`
/// reads the live handles, marks the heap ended and drops its handle on the remote count,
/// while the task's next `pool_*` call (`target`) reads the heap's end, releases the heap
/// if it ended (`drop_ended_guards`) or allocates in it, and the task then ends
/// (`TaskContext::release`). Exactly one side frees (the task parks the heap, or the guard's
/// handle destroys it), never while the task uses the heap's owner state.
#[test]
fn loom_guard_ended_outside_task_races_task_release() {
    // Whether the task's `pool_*` call saw the guard's end.
    static ENDED_SEEN: Outcomes<2> = Outcomes::new();
    loom::model(|| {
        let (shared, handle) = handle();
        let mut task = TaskContext::new();
        let (heap, binding) = task.enter(|| guard::open(&handle));
        assert!(matches!(binding, Binding::Slot));
        let guard_heap = Heap(heap);
        let dropper = thread::spawn(move || {
            // SAFETY: the heap and binding of one `open`, closed once.
            unsafe { drop_guard(guard_heap, binding) };
        });
        // The task's next poll: a `pool_box` made and dropped.
        let ended = task.enter(|| {
            let b = task_pool_box(&handle);
            // SAFETY: a block of the task's heap, live until freed here.
            let in_guard = unsafe { placed::heap_of(b.ptr(), layout()) } == guard_heap.0;
            // SAFETY: our box's block and handle, not used again.
            unsafe { drop_pool_box(b) };
            !in_guard
        });
        ENDED_SEEN.saw(ended as usize);
        task.release();
        dropper.join().unwrap();
        drop(task);
        all_freed(shared, handle);
    });
    assert!(ENDED_SEEN.all_seen(), "the task both missed and saw the guard's end");
}

/// A guard opened on a plain thread (its heap in the registry, owned by nobody, its shard's
/// lock standing in for the owner) and dropped on another thread (`guard::close`), while
/// its thread's `pool_box` allocates in it under that lock (`guard::registry_allocate`:
/// the owner's paths, the owner's handle count) and drops the box (the remote path). Exactly
/// one frees, never before the allocation's writes to the heap's owner state.
#[test]
fn loom_registry_allocation_races_guard_drop() {
    // Whether the `pool_box` found the guard's heap.
    static FOUND: Outcomes<2> = Outcomes::new();
    loom::model(|| {
        let (shared, handle) = handle();
        let (heap, binding) = guard::open(&handle);
        assert!(matches!(binding, Binding::Registry { .. }));
        let guard_heap = Heap(heap);
        let dropper = thread::spawn(move || {
            // SAFETY: the heap and binding of one `open`, closed once.
            unsafe { drop_guard(guard_heap, binding) };
        });
        let found = match guard::registry_allocate(&shared, layout()) {
            Some(block) => {
                let b = Block::of(block.expect("a block"));
                // SAFETY: the block is ours, with its handle; not used again.
                unsafe { drop_pool_box(b) };
                true
            }
            None => false,
        };
        FOUND.saw(found as usize);
        dropper.join().unwrap();
        all_freed(shared, handle);
    });
    assert!(FOUND.all_seen(), "the allocation both found the guard's heap and missed it");
}

/// A task's heap whose owner ends with nothing of its own (its count 0) while the last
/// handle made off the task drops (its block written, then freed on the remote path). If the
/// owner's release frees (the load-only path), the reset heap goes to the shared spare list
/// (`release`, `AllocHandle::push_spare`) and another thread's task adopts it
/// (`obtain_task_heap`, `pop_spare`) and reuses the block's memory: that reuse must be
/// ordered after the remote thread's writes.
#[test]
fn loom_parked_heap_adopted_after_last_remote_drop() {
    // Whether the adopter reused the parked heap or made its own.
    static ADOPTED: Outcomes<2> = Outcomes::new();
    loom::model(|| {
        let (shared, handle) = handle();
        let mut owner = TaskContext::new();
        let (heap, b) = owner.enter(|| {
            let b = task_pool_box(&handle);
            // SAFETY: a live block of ours, with no value.
            unsafe { b.put(1) };
            // SAFETY: ours, live.
            (Heap(unsafe { placed::heap_of(b.ptr(), layout()) }), b)
        });
        // The box is cloned off the task (`PoolBox::try_clone`'s count: `retain_handle` by a
        // non-owner) and the task drops its own handle: the owner's count is 0, and the
        // remaining handle is one made off the owner. The clone's block plays no part.
        // SAFETY: the task's handle keeps the heap alive.
        unsafe { heap.0.as_ref() }.retain_handle();
        // SAFETY: the task's handle, dropped once.
        owner.enter(|| unsafe { HeapCore::release_handle(heap.0) });
        let remote = thread::spawn(move || {
            // SAFETY: the box is ours now (spawn orders its `put` before this).
            unsafe { b.write(2) };
            // SAFETY: our box's block and handle, not used again.
            unsafe { drop_pool_box(b) };
        });
        let adopter = {
            let handle = handle.clone();
            thread::spawn(move || {
                let mut task = TaskContext::new();
                let adopted = task.enter(|| {
                    let h = target(&handle);
                    // SAFETY: the task's heap is alive while it runs.
                    let reused = unsafe { h.as_ref() }.counters().own_allocations() > 0;
                    let c = Block::of(placed::allocate(h, layout()).expect("a block"));
                    if reused {
                        assert_eq!(Heap(h), heap, "only the model's heap is parked");
                        assert_eq!(c, b, "a reset heap hands out its first block again");
                        // The block's memory is ours: its reuse must be ordered after the
                        // remote thread's write (loom checks it here).
                        // SAFETY: the block is live and ours; its value is still there.
                        unsafe { c.write(3) };
                        // SAFETY: as above.
                        assert_eq!(unsafe { c.take() }, 3);
                    }
                    // SAFETY: our box's block and handle, not used again.
                    unsafe { drop_pool_box(c) };
                    reused
                });
                drop(task);
                adopted
            })
        };
        owner.release();
        remote.join().unwrap();
        let adopted = adopter.join().unwrap();
        ADOPTED.saw(adopted as usize);
        drop(owner);
        all_freed(shared, handle);
    });
    assert!(ADOPTED.all_seen(), "the parked heap was both adopted and not");
}
