//! Pool blocks that name their heap: any `PoolBox` or `PoolVec` buffer finds the heap it
//! belongs to from its address and layout alone, so the handles need no heap pointer.
//!
//! * A layout every heap serves from a size class ([`in_class`]: at most 1 KiB, aligned to at
//!   most 16 bytes) is a class block of a heap's arena, whose granule header names the heap
//!   ([`blocks::heap_of`]).
//! * Any other layout is *framed*: allocated with a prefix of `max(align, 16)` bytes whose
//!   first word is the heap, the value right after it. Only the value counts in the
//!   statistics' live bytes.

use crate::error::AllocError;
use crate::heap::blocks;
use crate::heap::class::{class_of, ALWAYS_SMALL, BLOCK_ALIGN};
use crate::heap::HeapCore;
use core::ptr::NonNull;
use std::alloc::Layout;

/// `true` if every heap serves `layout` from a size class (so it lies in an arena chunk).
#[inline(always)]
pub(crate) const fn in_class(layout: Layout) -> bool {
    layout.size() <= ALWAYS_SMALL && layout.align() <= BLOCK_ALIGN
}

/// The prefix in front of a framed value: room for the heap pointer, keeping the value's
/// alignment (and at least the blocks' 16).
#[inline(always)]
const fn prefix(layout: Layout) -> usize {
    if layout.align() > BLOCK_ALIGN {
        layout.align()
    } else {
        BLOCK_ALIGN
    }
}

/// The block layout of a framed `layout`.
#[inline]
fn framed(layout: Layout) -> Result<Layout, AllocError> {
    let p = prefix(layout);
    layout
        .size()
        .checked_add(p)
        .and_then(|size| Layout::from_size_align(size, p).ok())
        .ok_or_else(AllocError::capacity_overflow)
}

/// Allocates `layout` (non-zero size) in `heap` so that [`heap_of`] finds the heap.
#[inline(always)]
pub(crate) fn allocate(heap: NonNull<HeapCore>, layout: Layout) -> Result<NonNull<u8>, AllocError> {
    debug_assert!(layout.size() != 0);
    if in_class(layout) {
        // SAFETY: the caller keeps the heap alive (a counted handle).
        unsafe { heap.as_ref() }.allocate_cached(layout)
    } else {
        allocate_framed(heap, layout)
    }
}

/// [`allocate`] for the holder of the lock that guards `heap`'s owner state: the owner's
/// paths without the ownership check (a registered guard heap, see `place::guard`).
///
/// # Safety
/// `heap` is alive and has no owner identity, and the caller holds the lock every other use
/// of its owner state holds (see [`HeapCore::allocate_owned`]).
pub(crate) unsafe fn allocate_locked(heap: NonNull<HeapCore>, layout: Layout) -> Result<NonNull<u8>, AllocError> {
    debug_assert!(layout.size() != 0);
    // SAFETY: alive per the caller.
    debug_assert!(unsafe { heap.as_ref() }.has_no_owner(), "a lock stands in only for no owner");
    if in_class(layout) {
        // SAFETY: per the caller.
        unsafe { heap.as_ref().allocate_owned(layout, layout.size()) }
    } else {
        allocate_framed_with(heap, layout, |h, block, counted| {
            // SAFETY: per the caller.
            unsafe { h.allocate_owned(block, counted) }
        })
    }
}

#[cold]
#[inline(never)]
fn allocate_framed(heap: NonNull<HeapCore>, layout: Layout) -> Result<NonNull<u8>, AllocError> {
    allocate_framed_with(heap, layout, HeapCore::allocate_counting)
}

/// A framed block for `layout` in `heap`, from `alloc(heap, block layout, bytes to count)`.
#[inline(always)]
fn allocate_framed_with(
    heap: NonNull<HeapCore>,
    layout: Layout,
    alloc: impl FnOnce(&HeapCore, Layout, usize) -> Result<NonNull<u8>, AllocError>,
) -> Result<NonNull<u8>, AllocError> {
    let block_layout = framed(layout)?;
    // Only the value counts as live bytes, not the prefix.
    // SAFETY: the caller keeps the heap alive.
    let block = alloc(unsafe { heap.as_ref() }, block_layout, layout.size())?;
    // SAFETY: a fresh block of `prefix + size` bytes aligned to the prefix (at least 16): the
    // heap pointer fits at its start and the value starts `prefix` bytes in.
    unsafe {
        block.as_ptr().cast::<NonNull<HeapCore>>().write(heap);
        Ok(block.add(prefix(layout)))
    }
}

/// The heap holding `ptr`.
///
/// # Safety
/// `ptr` came from [`allocate`] with `layout` and is not freed yet.
#[inline(always)]
pub(crate) unsafe fn heap_of(ptr: NonNull<u8>, layout: Layout) -> NonNull<HeapCore> {
    if in_class(layout) {
        // SAFETY: an in-class block is a class block of a heap's arena (caller).
        unsafe { blocks::heap_of(ptr) }
    } else {
        // SAFETY: a framed value: the heap pointer is at the start of its block (caller).
        unsafe { ptr.sub(prefix(layout)).cast::<NonNull<HeapCore>>().read() }
    }
}

/// Frees `ptr` (of `layout`, in `heap`) without touching handle counts.
///
/// # Safety
/// `ptr` came from [`allocate`] on `heap` with `layout`, is not used again, and `heap` is
/// alive.
#[inline(always)]
pub(crate) unsafe fn deallocate(heap: NonNull<HeapCore>, ptr: NonNull<u8>, layout: Layout) {
    // SAFETY: per the caller.
    unsafe {
        if in_class(layout) {
            heap.as_ref().deallocate(ptr, layout);
        } else {
            deallocate_framed(heap, ptr, layout);
        }
    }
}

/// # Safety
/// As for [`deallocate`], with a framed `layout`.
#[cold]
#[inline(never)]
unsafe fn deallocate_framed(heap: NonNull<HeapCore>, ptr: NonNull<u8>, layout: Layout) {
    // SAFETY: per the caller: the block starts `prefix` bytes before the value and was made
    // with the framed layout (which did not overflow then, so it does not now).
    unsafe {
        let block_layout = framed(layout).unwrap_unchecked();
        heap.as_ref().deallocate_counting(ptr.sub(prefix(layout)), block_layout, layout.size());
    }
}

/// Frees `ptr` (of `layout`) and drops the counted handle its owner held on its heap, with a
/// single ownership check for both when the block is in a class.
///
/// # Safety
/// `ptr` came from [`allocate`] with `layout` and is not used again; its owner held one
/// counted handle on the block's heap, now gone.
#[inline(always)]
pub(crate) unsafe fn free_and_release(ptr: NonNull<u8>, layout: Layout) {
    // SAFETY: per the caller; the handle keeps the heap alive until released here.
    unsafe {
        let heap = heap_of(ptr, layout);
        if in_class(layout) {
            HeapCore::free_class_and_release(heap, ptr, class_of(layout.size()), layout.size());
        } else {
            deallocate_framed(heap, ptr, layout);
            HeapCore::release_handle(heap);
        }
    }
}
