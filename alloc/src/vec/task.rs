//! [`TaskVec`]: a growable vector in a [`TaskAlloc`](crate::TaskAlloc)'s heap.
//!
//! Its buffer comes from the heap it borrows: the first one inline (the usual case for
//! short-lived buffers: the owner's class fast path), later ones out of line.

use super::{min_capacity, RawVec};
use crate::error::{fail, AllocError};
use crate::heap::HeapCore;
use core::marker::PhantomData;
use core::mem;
use core::ptr::{self, NonNull};
use std::alloc::Layout;

/// A growable vector in a [`TaskAlloc`](crate::TaskAlloc)'s heap; it borrows the
/// `TaskAlloc`, so it cannot outlive it.
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; }
/// # let alloc = framealloc::SmartAlloc::default();
/// let task = framealloc::TaskAlloc::new(&alloc);
/// let mut v = task.alloc_vec::<u32>();
/// v.extend([3, 1, 2]);
/// v.sort();
/// assert_eq!(v, [1, 2, 3]);
/// assert_eq!(v.clone().into_iter().rev().collect::<Vec<_>>(), [3, 2, 1]);
/// ```
pub struct TaskVec<'a, T> {
    ptr: NonNull<T>,
    len: usize,
    cap: usize,
    heap: &'a HeapCore,
    _owns: PhantomData<T>,
}

// SAFETY: owns its elements like `Vec<T>`; the heap reference is `Sync` and frees from any
// thread are handled by the heap's protocol.
unsafe impl<T: Send> Send for TaskVec<'_, T> {}
// SAFETY: `&TaskVec<T>` only gives `&[T]`.
unsafe impl<T: Sync> Sync for TaskVec<'_, T> {}

const fn is_zst<T>() -> bool {
    mem::size_of::<T>() == 0
}

impl<'a, T> TaskVec<'a, T> {
    /// An empty vector on `heap`; it allocates when it grows.
    #[inline]
    pub(crate) fn new_in(heap: &'a HeapCore) -> Self {
        let cap = if is_zst::<T>() { usize::MAX } else { 0 };
        Self { ptr: NonNull::dangling(), len: 0, cap, heap, _owns: PhantomData }
    }

    /// A vector on `heap` with room for exactly `capacity` elements (no buffer for 0).
    #[inline]
    pub(crate) fn with_capacity_in(heap: &'a HeapCore, capacity: usize) -> Result<Self, AllocError> {
        let mut v = Self::new_in(heap);
        if capacity != 0 && !is_zst::<T>() {
            v.ptr = v.allocate(capacity)?;
            v.cap = capacity;
        }
        Ok(v)
    }

    /// The layout of a buffer of `cap` elements (checked when the buffer was made).
    #[inline(always)]
    fn layout(cap: usize) -> Layout {
        // SAFETY: `cap` elements fit a layout: checked by `allocate` before the buffer existed.
        unsafe { Layout::from_size_align_unchecked(cap * mem::size_of::<T>(), mem::align_of::<T>()) }
    }

    /// A fresh buffer of `cap > 0` elements (`T` has a size).
    #[inline(always)]
    fn allocate(&self, cap: usize) -> Result<NonNull<T>, AllocError> {
        let layout = Layout::array::<T>(cap).map_err(|_| AllocError::capacity_overflow())?;
        self.heap.allocate(layout).map(NonNull::cast)
    }

    /// A new buffer for at least `len + additional` elements: the first exactly that (at
    /// least the minimum), inline; later ones at least double, out of line.
    #[inline(always)]
    fn grow(&mut self, additional: usize) -> Result<(), AllocError> {
        if self.cap == 0 && !is_zst::<T>() {
            let cap = additional.max(min_capacity::<T>());
            self.ptr = self.allocate(cap)?;
            self.cap = cap;
            return Ok(());
        }
        self.grow_buffer(additional)
    }

    /// Growth of a vector that has a buffer (or of a zero-sized `T`, which overflows).
    #[cold]
    #[inline(never)]
    fn grow_buffer(&mut self, additional: usize) -> Result<(), AllocError> {
        let cap = super::grown_capacity(self.len, self.cap, additional)?;
        let new = self.allocate(cap)?;
        // SAFETY: `new` is a fresh buffer for `cap > len` elements; the elements move bitwise
        // and the old buffer is freed once, with its layout, on its heap.
        unsafe {
            ptr::copy_nonoverlapping(self.ptr.as_ptr(), new.as_ptr(), self.len);
            self.heap.deallocate(self.ptr.cast(), Self::layout(self.cap));
        }
        self.ptr = new;
        self.cap = cap;
        Ok(())
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn grow_one(&mut self) {
        if let Err(e) = self.grow(1) {
            fail(e)
        }
    }

    crate::vec::vec_methods!();
}

// SAFETY: `ptr` is dangling (aligned) with no buffer, else a buffer of `cap` elements from
// `heap`; `len <= cap` elements initialised; only the growing methods move the buffer.
unsafe impl<T> RawVec for TaskVec<'_, T> {
    type Elem = T;

    #[inline(always)]
    fn raw_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    crate::vec::raw_len_cap!();

    #[inline(always)]
    fn raw_try_reserve(&mut self, additional: usize) -> Result<(), AllocError> {
        if self.cap - self.len >= additional {
            return Ok(());
        }
        self.grow(additional)
    }

    #[inline(always)]
    #[track_caller]
    fn raw_grow_one(&mut self) {
        self.grow_one()
    }

    fn raw_empty_like(&self, capacity: usize) -> Result<Self, AllocError> {
        Self::with_capacity_in(self.heap, capacity)
    }
}

impl<T> Drop for TaskVec<'_, T> {
    fn drop(&mut self) {
        let (heap, ptr, cap) = (self.heap, self.ptr, self.cap);
        // The buffer (if any) is freed once, after the elements, even if one's drop panics.
        let _free = crate::defer::Defer::new(|| {
            if cap != 0 && !is_zst::<T>() {
                // SAFETY: our buffer, from `heap` with this layout, no longer used.
                unsafe { heap.deallocate(ptr.cast(), Self::layout(cap)) }
            }
        });
        // SAFETY: `len` initialised elements, dropped once.
        unsafe { ptr::drop_in_place(ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len)) };
    }
}

crate::vec::vec_traits!(['a, T,] TaskVec<'a, T>, ['a,] TaskVec<'a, u8>);
