//! `allocator_api2::alloc::Allocator` for task memory ([`TaskAlloc`]) and frame-scope memory
//! ([`FrameScope`]), so that allocator-generic collections live there as they do in a
//! bumpalo arena.
//!
//! Failures are `Err(AllocError)`, never an abort here: a budget that is hit is an ordinary
//! error. A collection's own infallible methods (`push`, `reserve`, `Vec::with_capacity_in`)
//! still treat that error as any allocator's, with `handle_alloc_error` (an abort); their
//! `try_reserve` returns it instead.

use crate::frame::FrameScope;
use crate::task::TaskAlloc;
use allocator_api2::alloc::{AllocError, Allocator};
use core::ptr::NonNull;
use std::alloc::Layout;

/// A zero-sized block: dangling, aligned, never freed.
#[inline]
fn empty(layout: Layout) -> NonNull<[u8]> {
    NonNull::slice_from_raw_parts(crate::frame::arena::dangling(layout), 0)
}

/// Blocks of the task heap: freed one by one when the collection frees them, and all at once
/// when the `TaskAlloc` drops (which the borrow in `&TaskAlloc` makes wait for every
/// collection using it). Its bytes count in [`AllocStats::task`](crate::AllocStats::task).
///
/// The heap's owner (the task or thread that made the `TaskAlloc`) allocates and frees
/// without atomics. `TaskAlloc` is `Sync`, so a `&TaskAlloc` may be used from other threads
/// too (scoped threads, a collection sent elsewhere): they take the heap's slow path, as
/// `alloc_box` does for them, a locked arena to allocate and a lock-free list to free onto.
///
/// A collection's infallible methods abort on failure, as with any allocator; a budget then
/// shows up as an `Err` only through the fallible ones (`try_reserve`):
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; }
/// use framealloc::allocator_api2::vec::Vec;
/// use framealloc::{AllocConfig, SmartAlloc, TaskAlloc};
/// let alloc = SmartAlloc::new(AllocConfig::default().with_task_heap_budget(64 * 1024));
/// let task = TaskAlloc::new(&alloc);
/// let mut bytes: Vec<u8, &TaskAlloc> = Vec::new_in(&task);
/// bytes.extend_from_slice(b"hello");
/// assert!(task.live_bytes() >= 5);
/// assert!(bytes.try_reserve(1 << 20).is_err(), "over the heap's budget: an error, no abort");
/// drop(bytes);
/// assert_eq!(task.live_bytes(), 0);
/// ```
///
/// A collection cannot outlive its `TaskAlloc`:
///
/// ```compile_fail,E0597
/// # mod framealloc { pub use framealloc_alloc::*; }
/// use framealloc::allocator_api2::vec::Vec;
/// let alloc = framealloc::SmartAlloc::new(Default::default());
/// let v;
/// {
///     let task = framealloc::TaskAlloc::new(&alloc);
///     v = Vec::<u8, _>::new_in(&task);
/// }
/// drop(v);
/// ```
///
/// A `Vec<T, TaskAlloc>` may also own its `TaskAlloc` (moving an allocator keeps its blocks
/// valid: the heap is not inside it).
// SAFETY: blocks come from the heap, which stays alive until the `TaskAlloc` drops (moving it
// moves only a pointer to the heap); a collection holds the `TaskAlloc` or a borrow of it, so
// it frees or forgets its blocks first. Any thread may allocate and free: the heap checks
// the caller's identity against its owner and takes the synchronised path for anyone else.
unsafe impl Allocator for TaskAlloc {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(empty(layout));
        }
        // The heap's error (which budget, how much) cannot travel through `AllocError`.
        match self.heap().allocate(layout) {
            Ok(p) => {
                // Exposed for `deallocate`, which takes the block back with this provenance.
                let _ = p.as_ptr().expose_provenance();
                Ok(NonNull::slice_from_raw_parts(p, layout.size()))
            }
            Err(_) => Err(AllocError),
        }
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // The heap writes its free-list links over the whole class block, which may be
            // larger than `layout`, and the caller's pointer may carry provenance for `layout`
            // only (`allocator_api2::boxed::Box` narrows it to its value): free through the
            // provenance `allocate` exposed, which covers the block.
            let block = core::ptr::with_exposed_provenance_mut::<u8>(ptr.as_ptr().addr());
            // SAFETY: the block came from `allocate` on this heap with `layout` (the caller's
            // contract: `layout` fits it), at this address; `block` is non-null like `ptr`.
            unsafe { self.heap().deallocate(NonNull::new_unchecked(block), layout) }
        }
    }
}

/// Bump allocation in the scope: the scope's memory, which comes back when the outermost
/// `frame_scope` ends (or at the next `begin_frame`). Freeing is a no-op and growing copies
/// into a new block, so a growing collection leaves its old buffers behind until then: size it
/// up front (`with_capacity_in`, `try_reserve`) where it can be. Shrinking keeps the block.
/// The blocks count in [`AllocStats::frame`](crate::AllocStats::frame) as the scope's other
/// allocations do: in `allocations` and `high_water_bytes` when the scope ends.
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; }
/// use framealloc::allocator_api2::vec::Vec;
/// let alloc = framealloc::SmartAlloc::new(Default::default());
/// let sum = alloc.frame_scope(|f| {
///     let mut v: Vec<u32, &_> = Vec::with_capacity_in(4, f);
///     v.extend([1, 2, 3, 4]);
///     v.iter().sum::<u32>()
/// });
/// assert_eq!(sum, 10);
/// ```
///
/// Collections borrow the scope and cannot leave it:
///
/// ```compile_fail,E0521
/// # mod framealloc { pub use framealloc_alloc::*; }
/// use framealloc::allocator_api2::vec::Vec;
/// let alloc = framealloc::SmartAlloc::new(Default::default());
/// let mut out = None;
/// alloc.frame_scope(|f| {
///     let v: Vec<u8, &_> = Vec::new_in(f);
///     out = Some(v);
/// });
/// ```
// SAFETY: blocks come from the scope's arena, which reuses them only after the outermost
// scope ends (or at a `begin_frame`, which panics while a scope is open); collections borrow
// the scope, so none outlives it. `FrameScope` is neither `Send` nor `Sync`: everything runs
// on the arena's thread.
unsafe impl Allocator for FrameScope<'_> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        match self.raw(layout) {
            Ok(p) => Ok(NonNull::slice_from_raw_parts(p, layout.size())),
            Err(_) => Err(AllocError),
        }
    }

    #[inline]
    unsafe fn deallocate(&self, _ptr: NonNull<u8>, _layout: Layout) {
        // The scope's exit reclaims every block at once.
    }

    #[inline]
    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if new_layout.align() <= old_layout.align() {
            // The block stays, already aligned for `new_layout`: its first bytes are the new
            // block (the caller's contract: `new_layout.size() <= old_layout.size()`).
            return Ok(NonNull::slice_from_raw_parts(ptr, new_layout.size()));
        }
        let new = self.allocate(new_layout)?;
        // SAFETY: both blocks are valid for `new_layout.size()` bytes (the smaller one) and do
        // not overlap (the old one is still allocated).
        unsafe { core::ptr::copy_nonoverlapping(ptr.as_ptr(), new.cast::<u8>().as_ptr(), new_layout.size()) };
        Ok(new)
    }
}
