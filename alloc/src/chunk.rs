//! Raw chunks from the system, and the per-thread cache of task-heap chunks.
//!
//! Releasing a task heap returns its chunks here, so the next task on the same thread gets
//! its first chunk without a system call. Only chunks of the default task chunk size are
//! cached (all `SmartAlloc`s share them); the cache holds at most [`CACHE_LIMIT`] chunks and
//! frees the rest, and frees everything when the thread exits.

use crate::config::DEFAULT_TASK_CHUNK;
use core::cell::RefCell;
use core::ptr::NonNull;
use std::alloc::{alloc, dealloc, Layout};

/// Every chunk is aligned to this (see `heap::blocks`: a header at each granule boundary
/// names the chunk's heap). Chunks are powers of two from 4 KiB: smaller ones sit alone in
/// their granule.
pub(crate) const GRANULE: usize = 16 * 1024;

/// Chunks kept per thread: 256 × 16 KiB = 4 MiB, enough for a few hundred small tasks in
/// flight per worker to start without touching the system allocator.
const CACHE_LIMIT: usize = 256;

struct Cache(Vec<NonNull<u8>>);

impl Drop for Cache {
    fn drop(&mut self) {
        for p in self.0.drain(..) {
            // SAFETY: every cached pointer came from `system_alloc(DEFAULT_TASK_CHUNK)`.
            unsafe { system_free(p, DEFAULT_TASK_CHUNK) };
        }
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

/// A chunk of `size` bytes, [`GRANULE`]-aligned, from this thread's cache or the system.
pub(crate) fn acquire(size: usize) -> Option<NonNull<u8>> {
    if size == DEFAULT_TASK_CHUNK {
        if let Some(p) = CACHE.try_with(|c| c.borrow_mut().0.pop()).ok().flatten() {
            return Some(p);
        }
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
        if kept {
            return;
        }
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
    fn other_sizes_bypass_the_cache() {
        let before = cached();
        let a = acquire(8192).unwrap();
        // SAFETY: fresh chunk, unused afterwards.
        unsafe { release(a, 8192) };
        assert_eq!(cached(), before);
    }
}
