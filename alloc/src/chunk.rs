//! Raw chunks from the system, and where task-heap chunks come from and go back to.
//!
//! Chunks of the default task size ([`DEFAULT_TASK_CHUNK`], one granule) are carved from
//! [`SEGMENT`]-byte segments rather than asked of the system one by one: the system
//! allocator serves a granule-aligned request by splitting a larger block and writing its
//! bookkeeping into the pieces, which makes three or four pages of every chunk resident
//! whatever the task uses. Carved chunks touch only the pages their blocks use, so a task
//! holding a few KiB costs a few KiB.
//!
//! Releasing a task heap returns its chunks to this thread's cache (at most [`CACHE_LIMIT`]),
//! so the next task on the same thread gets its first chunk without a lock or a system call;
//! past the limit, and when a thread exits, chunks go to a process-wide free list that any
//! thread takes from before carving a new segment. Segments are kept for the life of the
//! process (a peak of tasks is reused, not returned), listed in a static so that they stay
//! reachable. Chunks of other sizes come from and go back to the system allocator.

use crate::config::DEFAULT_TASK_CHUNK;
use core::cell::RefCell;
use core::ptr::NonNull;
use parking_lot::Mutex;
use std::alloc::{alloc, dealloc, Layout};

/// Every chunk is aligned to this (see `heap::blocks`: a header at each granule boundary
/// names the chunk's heap). Chunks are powers of two from 4 KiB: smaller ones sit alone in
/// their granule.
pub(crate) const GRANULE: usize = 16 * 1024;

/// Chunks kept per thread: 256 × 16 KiB = 4 MiB, enough for a few hundred small tasks in
/// flight per worker to start without touching the shared list.
const CACHE_LIMIT: usize = 256;

/// Bytes of a segment that default chunks are carved from (64 chunks).
pub(crate) const SEGMENT: usize = 64 * DEFAULT_TASK_CHUNK;

/// A default-size chunk, free.
struct FreeChunk(NonNull<u8>);

// SAFETY: a free chunk is plain memory owned by whoever holds this value.
unsafe impl Send for FreeChunk {}

/// The process-wide part: free default chunks, and the segment being carved.
struct Segments {
    free: Vec<FreeChunk>,
    /// Next chunk to carve and the end of its segment (equal when none is left).
    next: usize,
    end: usize,
    /// The current segment (its provenance carves the chunks).
    current: Option<FreeChunk>,
    /// Every segment ever allocated, so that they stay reachable (they are never freed).
    all: Vec<FreeChunk>,
}

static SEGMENTS: Mutex<Segments> =
    Mutex::new(Segments { free: Vec::new(), next: 0, end: 0, current: None, all: Vec::new() });

impl Segments {
    /// A free default chunk: a freed one, else a new one carved from the current segment
    /// (allocating a segment when it is used up). `None` if the system refuses memory.
    fn take(&mut self) -> Option<NonNull<u8>> {
        if let Some(FreeChunk(p)) = self.free.pop() {
            return Some(p);
        }
        if self.next == self.end {
            let seg = system_alloc(SEGMENT)?;
            self.all.push(FreeChunk(seg));
            self.current = Some(FreeChunk(seg));
            self.next = 0;
            self.end = SEGMENT;
        }
        let seg = self.current.as_ref().expect("a segment is being carved").0;
        // SAFETY: `next + DEFAULT_TASK_CHUNK <= SEGMENT`: the chunk lies inside the segment.
        let p = unsafe { seg.add(self.next) };
        self.next += DEFAULT_TASK_CHUNK;
        Some(p)
    }
}

struct Cache(Vec<NonNull<u8>>);

impl Drop for Cache {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let mut segs = SEGMENTS.lock();
        segs.free.extend(self.0.drain(..).map(FreeChunk));
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = const { RefCell::new(Cache(Vec::new())) };
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, GRANULE).expect("chunk size fits a Layout")
}

fn system_alloc(size: usize) -> Option<NonNull<u8>> {
    // SAFETY: chunk sizes are never zero (the configuration enforces a minimum).
    NonNull::new(unsafe { alloc(layout(size)) })
}

/// # Safety
/// `p` came from `system_alloc(size)` and is not used afterwards.
unsafe fn system_free(p: NonNull<u8>, size: usize) {
    // SAFETY: same pointer and layout as the allocation, per the caller.
    unsafe { dealloc(p.as_ptr(), layout(size)) }
}

/// A chunk of `size` bytes, [`GRANULE`]-aligned: a default-size one from this thread's
/// cache or the segments, any other from the system.
pub(crate) fn acquire(size: usize) -> Option<NonNull<u8>> {
    if size == DEFAULT_TASK_CHUNK {
        if let Some(p) = CACHE.try_with(|c| c.borrow_mut().0.pop()).ok().flatten() {
            return Some(p);
        }
        return SEGMENTS.lock().take();
    }
    system_alloc(size)
}

/// Gives a chunk back.
///
/// # Safety
/// `p` came from [`acquire`] with the same `size`, and nothing uses it any more.
pub(crate) unsafe fn release(p: NonNull<u8>, size: usize) {
    if size == DEFAULT_TASK_CHUNK {
        let kept = CACHE
            .try_with(|c| {
                let mut c = c.borrow_mut();
                if c.0.len() < CACHE_LIMIT {
                    c.0.push(p);
                    true
                } else {
                    false
                }
            })
            .unwrap_or(false);
        if !kept {
            SEGMENTS.lock().free.push(FreeChunk(p));
        }
        return;
    }
    // SAFETY: per the caller, `p` is an unused chunk of `size` bytes from the system.
    unsafe { system_free(p, size) }
}

/// Chunks cached on this thread (for tests).
#[cfg(all(test, not(loom)))]
pub(crate) fn cached() -> usize {
    CACHE.with(|c| c.borrow().0.len())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn default_chunks_are_recycled_per_thread() {
        let before = cached();
        let a = acquire(DEFAULT_TASK_CHUNK).unwrap();
        // SAFETY: fresh chunk, unused afterwards.
        unsafe { release(a, DEFAULT_TASK_CHUNK) };
        assert_eq!(cached(), before + 1);
        let b = acquire(DEFAULT_TASK_CHUNK).unwrap();
        assert_eq!(a, b, "the cached chunk is handed out again");
        // SAFETY: as above.
        unsafe { release(b, DEFAULT_TASK_CHUNK) };
    }

    #[test]
    fn default_chunks_are_carved_granule_aligned_and_distinct() {
        let chunks: Vec<_> =
            (0..SEGMENT / DEFAULT_TASK_CHUNK + 3).map(|_| acquire(DEFAULT_TASK_CHUNK).unwrap()).collect();
        let mut addrs: Vec<usize> = chunks.iter().map(|p| p.as_ptr().addr()).collect();
        assert!(addrs.iter().all(|a| a % GRANULE == 0));
        addrs.sort_unstable();
        assert!(addrs.windows(2).all(|w| w[1] - w[0] >= DEFAULT_TASK_CHUNK), "no two overlap");
        // Every chunk is writable in full (Miri checks the bounds).
        for p in &chunks {
            // SAFETY: a fresh chunk of DEFAULT_TASK_CHUNK bytes, ours.
            unsafe { p.as_ptr().write_bytes(0xA5, DEFAULT_TASK_CHUNK) };
        }
        for p in chunks {
            // SAFETY: fresh chunks, unused afterwards.
            unsafe { release(p, DEFAULT_TASK_CHUNK) };
        }
    }

    #[test]
    fn segments_carve_new_chunks_after_reusing_freed_ones() {
        // A private instance, so that other tests' chunks do not mix in.
        let mut segs = Segments { free: Vec::new(), next: 0, end: 0, current: None, all: Vec::new() };
        let per_segment = SEGMENT / DEFAULT_TASK_CHUNK;
        let first: Vec<_> = (0..per_segment + 1).map(|_| segs.take().unwrap()).collect();
        assert_eq!(segs.all.len(), 2, "the segment's last chunk, then a new segment");
        assert_eq!(first[1].as_ptr().addr() - first[0].as_ptr().addr(), DEFAULT_TASK_CHUNK);
        segs.free.push(FreeChunk(first[3]));
        assert_eq!(segs.take(), Some(first[3]), "a freed chunk goes out before a new one is carved");
        assert_eq!(segs.take().unwrap().as_ptr().addr(), first[per_segment].as_ptr().addr() + DEFAULT_TASK_CHUNK);
        for FreeChunk(seg) in segs.all.drain(..) {
            // SAFETY: the test's own segments, no chunk of them used any more.
            unsafe { system_free(seg, SEGMENT) };
        }
    }

    #[test]
    fn other_sizes_bypass_the_cache() {
        let before = cached();
        let a = acquire(8192).unwrap();
        // SAFETY: fresh chunk, unused afterwards.
        unsafe { release(a, 8192) };
        assert_eq!(cached(), before);
    }
}
