//! Models of heap-level protocols on a *copy* of the heap (a stand-in `Heap` over the real
//! `RemoteFreeList` and `EscapeRefs`): the owner's plain state is a loom `UnsafeCell`, so a
//! freer or adopter that is not ordered after every earlier write is reported.
//!
//! The heap's own protocols are modelled on the real `HeapCore` in `heap::core`'s
//! `loom_models` (remote free against the owner's refill drain, `release_owner` against the
//! last escaped handle with the owner's count positive, zero or negative, and the owner check
//! across threads); the copies of those were removed. What is left here is what lives above
//! the heap, in the placement layer, which those models do not drive:
//!
//! * `loom_guard_ended_outside_task_races_task_release`: `place::task`'s reading of a guard's
//!   end (`guard_ended`) and `live` while the guard's handle drops elsewhere;
//! * `loom_registry_allocation_races_guard_drop`: `place::guard`'s registry, whose shard lock
//!   stands in for the owner of a heap with no owner identity;
//! * `loom_parked_heap_adopted_after_last_remote_drop`: a parked heap put on the shared spare
//!   list and adopted by another thread's task (`place`), ordered after the last remote drop.

use super::*;
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicUsize};
use loom::sync::{Arc, Mutex};
use loom::thread;

fn block() -> usize {
    Box::into_raw(Box::new(0u128)) as usize
}

fn free_block(p: usize) {
    // SAFETY: allocated by `block()`.
    drop(unsafe { Box::from_raw(p as *mut u128) });
}

/// Classes on a taken list; frees the blocks.
fn drain(mut p: *mut RemoteBlock) -> Vec<usize> {
    let mut out = Vec::new();
    while !p.is_null() {
        // SAFETY: written by `push`; ours now.
        let b = unsafe { p.read() };
        out.push(b.class);
        free_block(p as usize);
        p = b.next;
    }
    out
}

/// A heap: the lock-free parts plus the owner's plain state (`arena`: blocks it took
/// back) and a stand-in for the memory of one block (`mem`).
struct Heap {
    list: RemoteFreeList,
    refs: EscapeRefs,
    arena: UnsafeCell<Vec<(usize, usize)>>,
    mem: UnsafeCell<u64>,
    /// The owner's own handle count (`HeapCore::owner_handles`).
    owned: UnsafeCell<isize>,
    guard_ended: AtomicBool,
}
// SAFETY: test stand-in; plain state is handed over by the protocol under test.
unsafe impl Send for Heap {}
// SAFETY: as above.
unsafe impl Sync for Heap {}

impl Heap {
    fn new() -> Self {
        Self {
            list: RemoteFreeList::new(),
            refs: EscapeRefs::new(),
            arena: UnsafeCell::new(Vec::new()),
            mem: UnsafeCell::new(0),
            owned: UnsafeCell::new(0),
            guard_ended: AtomicBool::new(false),
        }
    }

    /// `HeapCore::destroy`: touches all plain state; returns every block's class.
    fn destroy(&self) -> Vec<usize> {
        // SAFETY: loom tracks the cell / the block is ours, per the model.
        self.mem.with_mut(|m| unsafe { *m = 0xdead });
        // SAFETY: loom tracks the cell / the block is ours, per the model.
        let mut seen: Vec<usize> = self
            .arena
            .with_mut(|a| unsafe { core::mem::take(&mut *a) })
            .into_iter()
            .map(|(p, c)| {
                free_block(p);
                c
            })
            .collect();
        seen.extend(drain(self.list.take_all()));
        seen.sort_unstable();
        seen
    }
}

/// A guard dropped outside its task: its handle was counted by the owner, so the remote
/// drop takes the atomic below the bias; the task may or may not see `guard_ended`
/// before it releases. Exactly one side frees, and `live` never reads negative.
#[test]
fn loom_guard_ended_outside_task_races_task_release() {
    loom::model(|| {
        let heap = Arc::new(Heap::new());
        let frees = Arc::new(AtomicUsize::new(0));
        let remote = {
            let (heap, frees) = (heap.clone(), frees.clone());
            thread::spawn(move || {
                heap.guard_ended.store(true, Ordering::Release);
                if heap.refs.release_remote() {
                    heap.destroy();
                    frees.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        // The task: one guard handle of its own; it writes its plain state meanwhile.
        // SAFETY: loom tracks the cell / the block is ours, per the model.
        heap.arena.with_mut(|a| unsafe { (*a).clear() });
        let ended = heap.guard_ended.load(Ordering::Relaxed);
        let live = heap.refs.live(1);
        assert!(live == 1 || live == 0, "live {live}, ended {ended}");
        if heap.refs.release_owner(1) {
            heap.destroy();
            frees.fetch_add(1, Ordering::Relaxed);
        }
        remote.join().unwrap();
        assert_eq!(frees.load(Ordering::Relaxed), 1);
    });
}

/// A registry guard's heap (owner NOBODY; its shard's lock stands in for the owner, see
/// `guard`) while its guard is dropped: its identity's `pool_box` looks it up under that
/// lock and allocates with the owner's paths there (the owner's plain state, the owner's
/// handle count), then frees the box on the remote path. The guard's drop takes the heap
/// out under the lock and releases its own handle and the owner state after: exactly one
/// free, never before the allocation's writes.
#[test]
fn loom_registry_allocation_races_guard_drop() {
    loom::model(|| {
        let heap = Arc::new(Heap::new());
        let registry = Arc::new(Mutex::new(true)); // the guard's heap is registered
        let frees = Arc::new(AtomicUsize::new(0));
        heap.refs.retain_remote(); // the guard's handle (`AsyncPoolGuard::new`)
        let lookup = {
            let (heap, registry, frees) = (heap.clone(), registry.clone(), frees.clone());
            let b = block();
            thread::spawn(move || {
                let got = {
                    let reg = registry.lock().unwrap();
                    if *reg {
                        // The owner's paths: its plain state and its own handle count.
                        // SAFETY: loom tracks the cells; the lock makes us the owner.
                        heap.mem.with_mut(|m| unsafe { *m += 1 });
                        // SAFETY: as above.
                        heap.owned.with_mut(|n| unsafe { *n += 1 });
                    }
                    *reg
                };
                if got {
                    // The `PoolBox` freed at once, on the remote path.
                    // SAFETY: a fresh block, ours.
                    unsafe { heap.list.push(b as *mut RemoteBlock, 1) };
                    if heap.refs.release_remote() {
                        heap.destroy();
                        frees.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    free_block(b);
                }
            })
        };
        // `AsyncPoolGuard::drop`, registry binding: out of the registry under the lock,
        // then its handle, then the owner state.
        *registry.lock().unwrap() = false;
        if heap.refs.release_remote() {
            heap.destroy();
            frees.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: loom tracks the cell: no lock holder can reach the heap any more.
        let owned = heap.owned.with_mut(|n| unsafe { core::mem::take(&mut *n) });
        if heap.refs.release_owner(owned) {
            heap.destroy();
            frees.fetch_add(1, Ordering::Relaxed);
        }
        lookup.join().unwrap();
        assert_eq!(frees.load(Ordering::Relaxed), 1);
    });
}

/// The owner ends with nothing of its own while the last remote-made handle drops (its
/// block written, then pushed); if the owner frees (load-only path), the reset heap goes
/// to the shared spare list and another thread's task adopts it and reuses the block's
/// memory: that reuse must be ordered after the remote thread's writes.
#[test]
fn loom_parked_heap_adopted_after_last_remote_drop() {
    loom::model(|| {
        let heap = Arc::new(Heap::new());
        let spare: Arc<Mutex<Option<Arc<Heap>>>> = Arc::new(Mutex::new(None));
        heap.refs.retain_remote();
        let remote = {
            let heap = heap.clone();
            let b = block();
            thread::spawn(move || {
                // SAFETY: loom tracks the cell / the block is ours, per the model.
                heap.mem.with_mut(|m| unsafe { *m = 1 }); // the value's last write
                                                          // SAFETY: a fresh block.
                unsafe { heap.list.push(b as *mut RemoteBlock, 5) };
                if heap.refs.release_remote() {
                    heap.destroy(); // `destroy`, never parked
                }
            })
        };
        let adopter = {
            let spare = spare.clone();
            thread::spawn(move || {
                let adopted = spare.lock().unwrap().take();
                if let Some(h) = adopted {
                    // `obtain_task_heap`: a new owner reuses the memory and the arena.
                    // SAFETY: loom tracks the cell / the block is ours, per the model.
                    h.mem.with_mut(|m| unsafe { *m = 2 });
                    // SAFETY: loom tracks the cell / the block is ours, per the model.
                    h.arena.with_mut(|a| unsafe { (*a).clear() });
                    assert_eq!(h.refs.live(0), 0);
                    h.destroy();
                }
            })
        };
        if heap.refs.release_owner(0) {
            // `park_or_destroy`: forget the remote list, reset, park on the shared list.
            drain(heap.list.take_all());
            // SAFETY: loom tracks the cell / the block is ours, per the model.
            heap.arena.with_mut(|a| unsafe { (*a).clear() });
            heap.refs.reset();
            *spare.lock().unwrap() = Some(heap.clone());
        }
        remote.join().unwrap();
        adopter.join().unwrap();
        let left = spare.lock().unwrap().take();
        if let Some(h) = left {
            h.destroy();
        }
    });
}
