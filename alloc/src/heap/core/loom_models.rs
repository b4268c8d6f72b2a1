//! Loom models of the real [`HeapCore`]: `RUSTFLAGS="--cfg loom" cargo test -p framealloc-alloc --release --lib loom`.
//!
//! Under `--cfg loom` the heap's atomics, its `foreign` lock and its owner state `local` are
//! loom's (see `crate::sync`), and who is current (`crate::identity`) is per model thread, so
//! these drive the code that runs for real: `create`, `allocate`, `deallocate`,
//! `retain_handle`, `release_handle`, `free_class_and_release`, `release_owner`, `destroy`.
//! An access to `local` (or to `foreign` outside its lock) that is not ordered after the
//! previous one fails the model.
//!
//! The protocols above the heap (a guard's end read by its task, the guard registry's lock
//! standing in for an owner, parked heaps adopted across threads) are modelled on the real
//! placement code in `place`'s `loom_models`.
//!
//! A block's contents are not loom-tracked memory, so where a model needs to see that a
//! block's reuse is ordered after its last use, it keeps a loom cell inside the block, 16
//! bytes in (the allocator writes only the first 16 bytes of a free block: its list link).

use super::*;
use crate::config::AllocConfig;
use core::sync::atomic::Ordering::Relaxed;
use loom::sync::atomic::AtomicUsize as LoomUsize;
use loom::thread;
use std::sync::atomic::AtomicUsize;

/// Chunks of 4 KiB, one granule each: a class runs dry after a few blocks, so the owner's next
/// allocation refills, and the refill drains the remote list.
const CHUNK: usize = 4096;
/// The largest small block of such a heap (a quarter of a chunk).
const BIG: usize = CHUNK / 4;

fn shared() -> Arc<Shared> {
    Shared::new(AllocConfig::default().with_task_chunk_bytes(CHUNK))
}

fn big() -> Layout {
    Layout::from_size_align(BIG, BLOCK_ALIGN).expect("a block layout")
}

/// A heap as the handles hold it: a pointer any thread may use.
#[derive(Clone, Copy)]
struct Heap(NonNull<HeapCore>);

// SAFETY: `HeapCore` is `Send + Sync`; the pointer is used under the heap's protocol.
unsafe impl Send for Heap {}
// SAFETY: as above.
unsafe impl Sync for Heap {}

impl Heap {
    fn get(&self) -> &HeapCore {
        // SAFETY: each model uses the heap only until it is freed (the asserts check who frees).
        unsafe { self.0.as_ref() }
    }
}

/// A block's address, to hand to another model thread (also used by `place`'s models).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Block(usize);

impl Block {
    pub(crate) fn of(p: NonNull<u8>) -> Self {
        Self(p.as_ptr() as usize)
    }

    pub(crate) fn ptr(self) -> NonNull<u8> {
        NonNull::new(self.0 as *mut u8).expect("a block")
    }

    fn cell(self) -> *mut loom::cell::UnsafeCell<u64> {
        // 16 bytes in: past the free-list link, inside the block (every block here is larger).
        (self.0 + 16) as *mut loom::cell::UnsafeCell<u64>
    }

    /// Puts a loom-tracked value in the block (its owner's first write, untracked).
    ///
    /// # Safety
    /// The block is a live block of at least 64 bytes, used by the caller alone, with no value.
    pub(crate) unsafe fn put(self, v: u64) {
        // SAFETY: per the caller; 16-aligned.
        unsafe { self.cell().write(loom::cell::UnsafeCell::new(v)) }
    }

    /// Writes the value: loom checks this is ordered after every earlier access.
    ///
    /// # Safety
    /// [`put`](Self::put) ran and [`take`](Self::take) did not; the block's memory is live.
    pub(crate) unsafe fn write(self, v: u64) {
        // SAFETY: per the caller; loom tracks the access itself.
        unsafe { (*self.cell()).with_mut(|x| *x = v) }
    }

    /// Reads the value: loom checks this is ordered after every earlier write.
    ///
    /// # Safety
    /// As for [`write`](Self::write).
    pub(crate) unsafe fn read(self) -> u64 {
        // SAFETY: per the caller; loom tracks the access itself.
        unsafe { (*self.cell()).with(|x| *x) }
    }

    /// Drops the value (before the block's memory goes).
    ///
    /// # Safety
    /// As for [`write`](Self::write); the value is not used again.
    pub(crate) unsafe fn take(self) -> u64 {
        // SAFETY: per the caller.
        unsafe {
            let v = self.read();
            core::ptr::drop_in_place(self.cell());
            v
        }
    }
}

/// Blocks of `BIG` that fit in a heap's home chunk after the heap itself.
fn fit_in_home() -> usize {
    (CHUNK - HEADER - IN_HOME) / BIG
}

/// Blocks of `BIG` in a fresh chunk.
fn fit_in_chunk() -> usize {
    (CHUNK - HEADER) / BIG
}

/// (a) The owner fills its class, another thread frees one of its blocks (a non-owner: the
/// remote list) while the owner's next allocation refills, which drains the remote list.
/// The freed block is handed out again exactly once (by that refill or a later one), its
/// reuse is ordered after the freeing thread's last write to it, the freer never touches the
/// owner's plain state, and every owner allocation took the owner's path.
#[test]
fn loom_remote_free_races_owner_refill() {
    static REUSED_AT_ONCE: AtomicUsize = AtomicUsize::new(0);
    static REUSED_LATER: AtomicUsize = AtomicUsize::new(0);
    loom::model(|| {
        let shared = shared();
        // A thread's pool: owned by this model thread's own identity.
        let heap = Heap(HeapCore::create(&shared, Kind::Pool, identity::current()));
        let h = heap.get();
        let fits = fit_in_home();
        assert!(fits >= 1);
        let mine: Vec<Block> = (0..fits).map(|_| Block::of(h.allocate(big()).expect("a block"))).collect();
        let victim = mine[0];
        // SAFETY: a fresh block of ours.
        unsafe { victim.put(1) };
        let freer = thread::spawn(move || {
            let h = heap.get();
            assert!(!h.is_owner());
            // The value's last write before the free.
            // SAFETY: the block was handed to us (spawn orders its `put` before this).
            unsafe { victim.write(99) };
            // SAFETY: a block of this heap's `allocate` with this layout, not used again.
            unsafe { h.deallocate(victim.ptr(), big()) };
        });
        // Else loom never lets the drain's relaxed pre-check read the push (see `remote.rs`).
        thread::yield_now();
        // The class is dry: this refills, draining the remote list if the free is on it.
        let first = Block::of(h.allocate(big()).expect("a block"));
        if first == victim {
            // Reused: its memory is ours again only after the freer's last write (push is
            // Release, the drain Acquire), which loom checks here.
            // SAFETY: the block is ours again; its value is still there, 16 bytes in.
            assert_eq!(unsafe { victim.take() }, 99);
        }
        freer.join().unwrap();
        if first != victim {
            // Still on the remote list, its memory in a live chunk: drop the value (after the
            // join, nothing to check).
            // SAFETY: as above; nobody else uses the block now.
            assert_eq!(unsafe { victim.take() }, 99);
        }
        // A new chunk's worth more: if the first refill took a new chunk, the next dry refill
        // drains the victim; if it took the victim, none of these is it.
        let mut later: Vec<Block> = vec![first];
        later.extend((0..fit_in_chunk()).map(|_| Block::of(h.allocate(big()).expect("a block"))));
        assert_eq!(later.iter().filter(|b| **b == victim).count(), 1, "the freed block is reused exactly once");
        let mut all: Vec<Block> = mine[1..].iter().chain(&later).copied().collect();
        all.sort_unstable_by_key(|b| b.0);
        all.dedup();
        assert_eq!(all.len(), fits - 1 + later.len(), "no block is handed out twice");
        assert_eq!(h.counters().own_allocations() as usize, fits + later.len(), "the owner's path every time");
        if first == victim {
            REUSED_AT_ONCE.fetch_add(1, Relaxed);
        } else {
            REUSED_LATER.fetch_add(1, Relaxed);
        }
        for b in all {
            // SAFETY: blocks of ours from `allocate(big())`, not used again.
            unsafe { h.deallocate(b.ptr(), big()) };
        }
        // SAFETY: the owner (this thread) is done with the heap; nothing escaped.
        assert!(unsafe { HeapCore::release_owner(heap.0) }.is_none(), "a pool heap is freed, not parked");
        assert_eq!(Arc::strong_count(&shared), 1, "the heap is gone");
    });
    assert!(REUSED_AT_ONCE.load(Relaxed) > 0 && REUSED_LATER.load(Relaxed) > 0, "both outcomes explored");
}

/// Who freed the heap in one run of a release model.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Freed {
    /// `release_owner` found nothing escaped and handed the heap back, parked.
    Parked,
    /// The last escaped handle's drop freed it.
    ByHandle,
}

/// Checks who freed the heap (exactly one of them) and drops a parked heap.
fn settle(shared: &Arc<Shared>, parked: Option<ParkedHeap>, baseline: usize) -> Freed {
    match parked {
        Some(p) => {
            // SAFETY: the parked heap is live and ours.
            let h = unsafe { p.0.as_ref() };
            assert_eq!(h.live_handles(), 0, "a heap is parked only when nothing escaped");
            assert!(h.counters().parked.load(Relaxed));
            assert_eq!(Arc::strong_count(shared), baseline + 1, "the parked heap is alive");
            drop(p);
            assert_eq!(Arc::strong_count(shared), baseline, "dropping it frees it");
            Freed::Parked
        }
        None => {
            assert_eq!(Arc::strong_count(shared), baseline, "the last handle freed the heap, once");
            Freed::ByHandle
        }
    }
}

/// (b) A task's heap: the task fills its class and makes one escapable handle (a `PoolBox`)
/// that goes to another thread; the task allocates again (a refill, which may drain the
/// handle's block) and ends, `release_owner`, while the other thread drops the handle
/// (`free_class_and_release`: not the owner, so a remote free and the remote release). The
/// heap is freed exactly once: parked by the owner if the handle was gone before the fold
/// (and then with nothing escaped), else by the handle's drop, never before the owner's last
/// read of its plain state.
#[test]
fn loom_owner_release_races_last_escaped_handle() {
    static OUTCOMES: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
    loom::model(|| {
        let shared = shared();
        // Ours, and one more that a double free would take away.
        let keep = shared.clone();
        let task = identity::new_task_identity();
        let heap = Heap(HeapCore::create(&shared, Kind::Task, task));
        let baseline = Arc::strong_count(&shared) - 1;
        let (boxed, mine) = identity::enter_task(task, core::ptr::null(), || {
            let h = heap.get();
            let mine: Vec<Block> = (0..fit_in_home()).map(|_| Block::of(h.allocate(big()).expect("a block"))).collect();
            // The `PoolBox`: its first block, with a handle counted by the owner.
            h.retain_handle();
            assert_eq!(h.live_handles(), 1);
            (mine[0], mine[1..].to_vec())
        });
        let dropper = thread::spawn(move || {
            let h = heap.get();
            assert!(!h.is_owner());
            // SAFETY: the heap is live while our handle is; the block is the handle's, a
            // `BIG` block (its class and size), not used again; the handle goes with it.
            unsafe { HeapCore::free_class_and_release(heap.0, boxed.ptr(), class_of(BIG), BIG) };
        });
        // The task's last poll: one more block (its refill takes the remote list or a new
        // chunk), then everything of its own back.
        identity::enter_task(task, core::ptr::null(), || {
            let h = heap.get();
            let last = h.allocate(big()).expect("a block");
            for b in mine.iter().copied().chain([Block::of(last)]) {
                // SAFETY: blocks of ours from `allocate(big())`, not used again.
                unsafe { h.deallocate(b.ptr(), big()) };
            }
        });
        // The task ended: no use of its identity can follow.
        // SAFETY: live (the handle's drop frees it only after the fold in here); the owner
        // identity is not in use any more.
        let parked = unsafe { HeapCore::release_owner(heap.0) };
        dropper.join().unwrap();
        let freed = settle(&keep, parked, baseline);
        OUTCOMES[freed as usize].fetch_add(1, Relaxed);
        drop(shared);
    });
    assert!(OUTCOMES.iter().all(|n| n.load(Relaxed) > 0), "both outcomes explored");
}

/// (b') Handles a non-owner made: one thread allocates (from `foreign`, under its lock) and
/// counts two handles (`retain_handle` off the owner: the atomic count); the task drops one
/// (its own count goes to -1) when `owner_drops`, else none (`release_owner` then decides by
/// a load alone), and ends while another thread drops the last handle. Exactly one frees.
fn owner_release_races_remote_made_handle(owner_drops: bool) {
    static OUTCOMES: [[AtomicUsize; 2]; 2] =
        [[AtomicUsize::new(0), AtomicUsize::new(0)], [AtomicUsize::new(0), AtomicUsize::new(0)]];
    loom::model(move || {
        let shared = shared();
        let keep = shared.clone();
        let task = identity::new_task_identity();
        let heap = Heap(HeapCore::create(&shared, Kind::Task, task));
        let baseline = Arc::strong_count(&shared) - 1;
        let handles = if owner_drops { 2 } else { 1 };
        let maker = thread::spawn(move || {
            let h = heap.get();
            let b = Block::of(h.allocate(big()).expect("a block"));
            for _ in 0..handles {
                h.retain_handle();
            }
            b
        });
        // The task allocates meanwhile (its own arena; the maker's is `foreign`).
        let own = identity::enter_task(task, core::ptr::null(), || heap.get().allocate(big()).expect("a block"));
        let boxed = maker.join().unwrap();
        let dropper = thread::spawn(move || {
            // SAFETY: as in the model above: the last handle goes with its block.
            unsafe { HeapCore::free_class_and_release(heap.0, boxed.ptr(), class_of(BIG), BIG) };
        });
        identity::enter_task(task, core::ptr::null(), || {
            let h = heap.get();
            // SAFETY: a block of ours, not used again.
            unsafe { h.deallocate(own, big()) };
            if owner_drops {
                // A handle the maker counted, dropped by the owner.
                // SAFETY: the heap is live; the handle is gone.
                unsafe { HeapCore::release_handle(heap.0) };
                assert_eq!(h.owner_handles.load(Relaxed), -1);
            }
        });
        // SAFETY: as in the model above.
        let parked = unsafe { HeapCore::release_owner(heap.0) };
        dropper.join().unwrap();
        let freed = settle(&keep, parked, baseline);
        OUTCOMES[owner_drops as usize][freed as usize].fetch_add(1, Relaxed);
        drop(shared);
    });
    assert!(OUTCOMES[owner_drops as usize].iter().all(|n| n.load(Relaxed) > 0), "both outcomes explored");
}

#[test]
fn loom_owner_release_by_load_races_remote_made_handle() {
    owner_release_races_remote_made_handle(false);
}

#[test]
fn loom_owner_negative_count_races_remote_made_handle() {
    owner_release_races_remote_made_handle(true);
}

/// (c) The owner check: a task polled on this thread uses its heap, then is polled on another
/// thread after the executor's hand-off (the block's address, stored with `hand_off`, loaded
/// with `take_over` there: Release and Acquire). There it takes
/// the owner's path: its free goes on the plain free list and the next allocation takes the
/// same block straight back (the remote path would leave it on the remote list and bump a new
/// one). This thread, no longer in the task, frees another block of the heap at the same time
/// and takes the slow path: the block ends up on the remote list.
fn task_moves_threads(hand_off: Ordering, take_over: Ordering) {
    loom::model(move || {
        let shared = shared();
        let task = identity::new_task_identity();
        let heap = Heap(HeapCore::create(&shared, Kind::Task, task));
        let small = Layout::from_size_align(64, BLOCK_ALIGN).expect("a block layout");
        let block = loom::sync::Arc::new(LoomUsize::new(0));
        let second = {
            let block = block.clone();
            thread::spawn(move || {
                let a = loop {
                    match block.load(take_over) {
                        0 => thread::yield_now(),
                        a => break Block(a),
                    }
                };
                identity::enter_task(task, core::ptr::null(), || {
                    let h = heap.get();
                    // SAFETY: a block of the task's from `allocate(small)`, not used again.
                    unsafe { h.deallocate(a.ptr(), small) };
                    let again = Block::of(h.allocate(small).expect("a block"));
                    assert_eq!(again, a, "the owner's free list hands the block straight back");
                    // SAFETY: as above.
                    unsafe { h.deallocate(again.ptr(), small) };
                });
            })
        };
        let h = heap.get();
        let (a, b) = identity::enter_task(task, core::ptr::null(), || {
            (h.allocate(small).expect("a block"), h.allocate(small).expect("a block"))
        });
        block.store(a.as_ptr() as usize, hand_off);
        // Not the task any more: a non-owner's free, racing the task's second poll.
        // SAFETY: a block of the heap's from `allocate(small)`, not used again.
        unsafe { h.deallocate(b, small) };
        second.join().unwrap();
        let remote = h.remote.take_all();
        assert_eq!(remote.cast::<u8>(), b.as_ptr(), "the non-owner's free went on the remote list");
        // SAFETY: a block of the list, ours now.
        assert!(unsafe { (*remote).next }.is_null(), "and only it");
        assert_eq!(h.counters().own_allocations(), 3, "every allocation was the owner's");
        // SAFETY: the task is done; nothing escaped.
        let parked = unsafe { HeapCore::release_owner(heap.0) };
        assert!(parked.is_some(), "a task heap nothing refers to is parked");
    });
}

#[test]
fn loom_task_moves_threads_after_hand_off() {
    task_moves_threads(Ordering::Release, Ordering::Acquire);
}

/// The model has teeth: without the hand-off's happens-before edge the second poll's use of
/// the owner's plain state races the first's, and loom says so.
#[test]
#[should_panic(expected = "Causality violation")]
fn loom_task_moved_without_hand_off_is_reported() {
    task_moves_threads(Ordering::Relaxed, Ordering::Relaxed);
}
