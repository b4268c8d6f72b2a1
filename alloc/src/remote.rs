//! The two lock-free protocols a heap shares with other threads.
//!
//! A heap's fast path is plain code run by its *owner* (see [`crate::identity`]). Every other
//! thread that frees memory of the heap, or drops a handle that keeps it alive, goes through
//! the two structures here, and only these:
//!
//! * [`RemoteFreeList`]: a Treiber stack of freed blocks. Any thread pushes (CAS loop); the
//!   owner takes the whole list at once with a `swap` and reuses the blocks. There is no pop of
//!   a single element, so there is no ABA problem.
//! * [`EscapeRefs`]: how many handles (`PoolBox`, `PoolVec`) still point into the heap, plus a
//!   large bias while the heap's owner exists. While the owner exists the owner counts its own
//!   handles in a plain integer (no atomics on the fast path); other threads decrement the
//!   atomic. When the owner goes away it folds its plain count into the atomic and drops the
//!   bias. Whoever brings the atomic to zero frees the heap: the owner at release if nothing
//!   escaped, else the thread dropping the last escaped handle. (When no handle is alive at
//!   all, the owner sees the bare bias with a load and frees without the read-modify-write.)
//!
//! Ordering: a remote free pushes its block *before* it decrements `EscapeRefs` (`AcqRel`), and
//! the thread that observes zero has acquired every earlier push and write, so it can free the
//! chunks holding those blocks.

use crate::sync::{AtomicIsize, AtomicPtr, Ordering};
use core::ptr;

/// A block on a remote free list. Lives inside the freed memory (every small block is at
/// least 16 bytes and 16-aligned, so both fields fit).
#[repr(C)]
pub(crate) struct RemoteBlock {
    pub(crate) next: *mut RemoteBlock,
    pub(crate) class: usize,
}

/// Multi-producer, single-taker stack of freed blocks.
pub(crate) struct RemoteFreeList {
    head: AtomicPtr<RemoteBlock>,
}

impl RemoteFreeList {
    pub(crate) fn new() -> Self {
        Self { head: AtomicPtr::new(ptr::null_mut()) }
    }

    /// Pushes `block`, tagged with its size class.
    ///
    /// # Safety
    /// `block` points to at least 16 writable bytes, 16-aligned, that nobody else uses until
    /// a later [`take_all`](Self::take_all) hands them out again.
    pub(crate) unsafe fn push(&self, block: *mut RemoteBlock, class: usize) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: the caller gave us exclusive use of the block's memory.
            unsafe { block.write(RemoteBlock { next: head, class }) };
            match self.head.compare_exchange_weak(head, block, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// Takes the whole list; the caller walks it through `next`.
    pub(crate) fn take_all(&self) -> *mut RemoteBlock {
        // Cheap check first: the owner calls this on its refill path, usually with nothing there.
        if self.head.load(Ordering::Relaxed).is_null() {
            return ptr::null_mut();
        }
        self.head.swap(ptr::null_mut(), Ordering::Acquire)
    }
}

/// The bias added while the owner exists. Far above any real handle count, so remote
/// decrements can never reach zero before the owner folds in its own count.
const OWNER_BIAS: isize = 1 << (isize::BITS - 3);

/// Count of escaped handles plus the owner's bias. See the module docs.
pub(crate) struct EscapeRefs {
    count: AtomicIsize,
}

impl EscapeRefs {
    pub(crate) fn new() -> Self {
        Self { count: AtomicIsize::new(OWNER_BIAS) }
    }

    /// Back to the state of a fresh heap (for a heap that is reused; nothing refers to it).
    pub(crate) fn reset(&self) {
        self.count.store(OWNER_BIAS, Ordering::Relaxed);
    }

    /// A non-owner made a new handle.
    pub(crate) fn retain_remote(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// A non-owner dropped a handle. Returns `true` if it was the last reference of any
    /// kind: the caller must then free the heap.
    pub(crate) fn release_remote(&self) -> bool {
        self.count.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// The owner goes away, holding `owner_count` handles it counted itself (may be negative
    /// if it dropped handles that non-owners made). Returns `true` if nothing is left and the
    /// caller must free the heap.
    pub(crate) fn release_owner(&self, owner_count: isize) -> bool {
        // The usual end of a task heap: no handle alive anywhere (the owner counts none and
        // the atomic holds the bias alone). Handles are made only by the owner (the caller,
        // not any more) or through a live handle, so none can appear or go now, and a load
        // decides without a read-modify-write; `Acquire` takes in the remote decrements that
        // led to this value, and what each did before it, as the RMW would. The count keeps
        // the bias, which reads as "nothing escaped" like zero does.
        if owner_count == 0 && self.count.load(Ordering::Acquire) == OWNER_BIAS {
            return true;
        }
        let delta = OWNER_BIAS - owner_count;
        self.count.fetch_sub(delta, Ordering::AcqRel) == delta
    }

    /// Handles alive now, given the owner's own count `owned` (zero once the owner released):
    /// exact when no handle is being made or dropped concurrently.
    pub(crate) fn live(&self, owned: isize) -> isize {
        let n = self.count.load(Ordering::Acquire);
        if n >= OWNER_BIAS / 2 {
            n - OWNER_BIAS + owned
        } else {
            n
        }
    }

    /// Handles still alive after the owner released (exact when no drop is in flight).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn escaped(&self) -> isize {
        let n = self.count.load(Ordering::Acquire);
        if n >= OWNER_BIAS / 2 {
            n - OWNER_BIAS
        } else {
            n
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn owner_release_with_nothing_escaped_frees() {
        let r = EscapeRefs::new();
        assert!(r.release_owner(0));
    }

    #[test]
    fn last_remote_release_frees_after_owner() {
        let r = EscapeRefs::new();
        // Owner made 3 handles; one was dropped remotely before the owner left.
        assert!(!r.release_remote());
        assert!(!r.release_owner(3));
        assert_eq!(r.escaped(), 2);
        assert!(!r.release_remote());
        assert!(r.release_remote());
    }

    #[test]
    fn remote_made_handle_dropped_by_owner() {
        let r = EscapeRefs::new();
        r.retain_remote();
        // The owner dropped it: its own count goes to -1.
        assert!(r.release_owner(-1));
    }

    #[test]
    fn take_all_returns_every_push_once() {
        let list = RemoteFreeList::new();
        let mut blocks = [[0u128; 1]; 8];
        for (i, b) in blocks.iter_mut().enumerate() {
            // SAFETY: each block is 16 bytes, 16-aligned and used only by the list.
            unsafe { list.push(b.as_mut_ptr().cast(), i) };
        }
        let mut seen = Vec::new();
        let mut p = list.take_all();
        while !p.is_null() {
            // SAFETY: every block on the list was written by push.
            let b = unsafe { p.read() };
            seen.push(b.class);
            p = b.next;
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..8).collect::<Vec<_>>());
        assert!(list.take_all().is_null());
    }
}

/// Model-checked with loom: `RUSTFLAGS="--cfg loom" cargo test -p framealloc-alloc --release --lib loom`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// A 16-byte, 16-aligned block standing in for freed heap memory.
    fn block() -> *mut RemoteBlock {
        Box::into_raw(Box::new(0u128)).cast()
    }

    fn free_list(mut p: *mut RemoteBlock) -> Vec<usize> {
        let mut out = Vec::new();
        while !p.is_null() {
            // SAFETY: every block on the list was written by `push` and is ours now.
            let b = unsafe { p.read() };
            out.push(b.class);
            // SAFETY: allocated by `block()` as a `u128`.
            drop(unsafe { Box::from_raw(p.cast::<u128>()) });
            p = b.next;
        }
        out.sort_unstable();
        out
    }

    struct Heap {
        list: RemoteFreeList,
        refs: EscapeRefs,
    }

    // SAFETY: test stand-in; the raw blocks are handed over through the list's atomics.
    unsafe impl Send for Heap {}
    // SAFETY: as above.
    unsafe impl Sync for Heap {}

    #[test]
    fn loom_concurrent_pushes_and_take() {
        loom::model(|| {
            let heap = Arc::new(Heap { list: RemoteFreeList::new(), refs: EscapeRefs::new() });
            let pushers: Vec<_> = (0..2)
                .map(|i| {
                    let heap = heap.clone();
                    let b = block() as usize;
                    // SAFETY: a fresh block, given to the list.
                    thread::spawn(move || unsafe { heap.list.push(b as *mut RemoteBlock, i) })
                })
                .collect();
            // The owner drains concurrently; whatever it misses stays on the list. (Without the
            // yield, loom never lets `take_all`'s relaxed pre-check read a push, so the drain
            // would always come back empty.)
            thread::yield_now();
            let mut seen = free_list(heap.list.take_all());
            for p in pushers {
                p.join().unwrap();
            }
            seen.extend(free_list(heap.list.take_all()));
            seen.sort_unstable();
            assert_eq!(seen, vec![0, 1]);
        });
    }

    /// The owner releases with no handle counted while the only other handle (made on
    /// another thread) is dropped there: the owner's load-only release and the remote
    /// decrement race, and exactly one of them frees, after the block is on the list.
    #[test]
    fn loom_owner_release_without_own_handles_races_the_last_remote_drop() {
        loom::model(|| {
            let heap = Arc::new(Heap { list: RemoteFreeList::new(), refs: EscapeRefs::new() });
            let frees = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
            heap.refs.retain_remote();
            let remote = {
                let heap = heap.clone();
                let frees = frees.clone();
                let b = block() as usize;
                thread::spawn(move || {
                    // SAFETY: a fresh block, given to the list.
                    unsafe { heap.list.push(b as *mut RemoteBlock, 7) };
                    if heap.refs.release_remote() {
                        assert_eq!(free_list(heap.list.take_all()), vec![7]);
                        frees.fetch_add(1, Ordering::Relaxed);
                    }
                })
            };
            if heap.refs.release_owner(0) {
                assert_eq!(free_list(heap.list.take_all()), vec![7]);
                frees.fetch_add(1, Ordering::Relaxed);
            }
            remote.join().unwrap();
            assert_eq!(frees.load(Ordering::Relaxed), 1, "the heap is freed exactly once");
        });
    }

    #[test]
    fn loom_exactly_one_frees_after_every_push() {
        loom::model(|| {
            let heap = Arc::new(Heap { list: RemoteFreeList::new(), refs: EscapeRefs::new() });
            let frees = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
            // The owner made two handles and gave them to two threads; it keeps none.
            let remotes: Vec<_> = (0..2)
                .map(|i| {
                    let heap = heap.clone();
                    let frees = frees.clone();
                    let b = block() as usize;
                    thread::spawn(move || {
                        // SAFETY: a fresh block, given to the list.
                        unsafe { heap.list.push(b as *mut RemoteBlock, i) };
                        if heap.refs.release_remote() {
                            // The freer must see both blocks: every push happened before.
                            assert_eq!(free_list(heap.list.take_all()), vec![0, 1]);
                            frees.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            if heap.refs.release_owner(2) {
                assert_eq!(free_list(heap.list.take_all()), vec![0, 1]);
                frees.fetch_add(1, Ordering::Relaxed);
            }
            for r in remotes {
                r.join().unwrap();
            }
            assert_eq!(frees.load(Ordering::Relaxed), 1, "the heap is freed exactly once");
        });
    }
}
