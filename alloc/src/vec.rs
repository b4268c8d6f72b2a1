//! How [`TaskVec`](crate::TaskVec) grows: an `allocator-api2` vector over a heap, with
//! allocation errors carried back to the caller. ([`PoolVec`](crate::PoolVec) is its own
//! three-word vector, see `pool::vec`.)
//!
//! `allocator_api2::vec::Vec`'s infallible methods abort the process when the allocator fails;
//! a budget must never do that. So every growing method first reserves with `try_reserve`, and
//! the heap's `Allocator` impl leaves the real [`AllocError`] in a thread-local for it to pick
//! up (the failure happens synchronously on this thread).

use crate::error::AllocError;
use crate::heap::HeapCore;
use allocator_api2::alloc::Allocator;
use core::cell::RefCell;
use core::ptr::NonNull;
use std::alloc::Layout;

thread_local! {
    static LAST_ERROR: RefCell<Option<AllocError>> = const { RefCell::new(None) };
}

/// Allocates for an `allocator-api2` collection, recording the error for [`take_error`].
#[inline(always)]
pub(crate) fn heap_allocate(
    heap: &HeapCore,
    layout: Layout,
) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
    if layout.size() == 0 {
        // A dangling, aligned pointer: zero-sized blocks need no memory.
        let p = crate::frame::arena::dangling(layout);
        return Ok(NonNull::slice_from_raw_parts(p, 0));
    }
    match heap.allocate(layout) {
        Ok(p) => Ok(NonNull::slice_from_raw_parts(p, layout.size())),
        Err(e) => {
            record_error(e);
            Err(allocator_api2::alloc::AllocError)
        }
    }
}

#[cold]
fn record_error(e: AllocError) {
    let _ = LAST_ERROR.try_with(|l| *l.borrow_mut() = Some(e));
}

/// Frees for an `allocator-api2` collection.
///
/// # Safety
/// As `Allocator::deallocate`: `ptr` came from [`heap_allocate`] on `heap` with `layout`.
#[inline(always)]
pub(crate) unsafe fn heap_deallocate(heap: &HeapCore, ptr: NonNull<u8>, layout: Layout) {
    if layout.size() != 0 {
        // SAFETY: per the caller.
        unsafe { heap.deallocate(ptr, layout) }
    }
}

/// The error of the last failed allocation on this thread. `try_reserve` fails without
/// asking the allocator only when the size overflows.
pub(crate) fn take_error() -> AllocError {
    LAST_ERROR.try_with(|l| l.borrow_mut().take()).ok().flatten().unwrap_or_else(AllocError::capacity_overflow)
}

/// Reserves room for `additional` more elements or returns the heap's error.
#[inline(always)]
pub(crate) fn try_reserve<T, A: Allocator>(
    v: &mut allocator_api2::vec::Vec<T, A>,
    additional: usize,
) -> Result<(), AllocError> {
    if v.capacity() - v.len() >= additional {
        return Ok(());
    }
    if v.capacity() == 0 && core::mem::size_of::<T>() != 0 {
        return first_reserve(v, additional);
    }
    v.try_reserve(additional).map_err(|_| take_error())
}

/// Room for one more element for `push`, or the panic with the heap's error. Out of line, like
/// `Vec`'s own growth, so that the inlined `push` stays a compare, a store and an increment.
#[cold]
#[inline(never)]
#[track_caller]
pub(crate) fn reserve_one<T, A: Allocator>(v: &mut allocator_api2::vec::Vec<T, A>) {
    if let Err(e) = try_reserve(v, 1) {
        crate::error::fail(e)
    }
}

/// The first allocation of an empty vector (the usual case for short-lived buffers): one
/// exact allocation instead of the amortized-growth path. Same minimum capacity as
/// `allocator-api2` (and `std`).
#[inline(always)]
fn first_reserve<T, A: Allocator>(v: &mut allocator_api2::vec::Vec<T, A>, additional: usize) -> Result<(), AllocError> {
    let min = match core::mem::size_of::<T>() {
        1 => 8,
        s if s <= 1024 => 4,
        _ => 1,
    };
    let cap = additional.max(min);
    let layout = Layout::array::<T>(cap).map_err(|_| AllocError::capacity_overflow())?;
    let block = v.allocator().allocate(layout).map_err(|_| take_error())?;
    // SAFETY: `v` is empty with no buffer (capacity 0, `T` not zero-sized), so taking it apart
    // frees nothing; it is rebuilt at once around a block of `cap` elements from its own
    // allocator, with the layout `Vec` will free it with. Nothing in between can panic.
    unsafe {
        let (_, len, _, alloc) = core::ptr::read(v).into_raw_parts_with_alloc();
        debug_assert_eq!(len, 0);
        core::ptr::write(v, allocator_api2::vec::Vec::from_raw_parts_in(block.cast::<T>().as_ptr(), 0, cap, alloc));
    }
    Ok(())
}

/// Moves the elements into a `std` vector (the heap buffer is freed).
pub(crate) fn into_std<T, A: Allocator>(mut v: allocator_api2::vec::Vec<T, A>) -> Vec<T> {
    let len = v.len();
    let mut out = Vec::with_capacity(len);
    // SAFETY: `out` has room for `len` elements; the elements are moved bitwise and `v` forgets
    // them (len 0) before its buffer is freed, so each is owned exactly once.
    unsafe {
        core::ptr::copy_nonoverlapping(v.as_ptr(), out.as_mut_ptr(), len);
        v.set_len(0);
        out.set_len(len);
    }
    out
}

/// The methods both heap vectors have. `$inner` is the field holding the
/// `allocator_api2::vec::Vec`.
macro_rules! heap_vec_methods {
    ($inner:ident) => {
        /// Appends `value`.
        ///
        /// # Panics
        /// If the vector must grow and cannot, as [`reserve`](Self::reserve) does
        /// ([`try_push`](Self::try_push) returns the error instead).
        #[inline]
        #[track_caller]
        pub fn push(&mut self, value: T) {
            if self.$inner.len() == self.$inner.capacity() {
                crate::vec::reserve_one(&mut self.$inner);
            }
            self.$inner.push(value);
        }

        /// Appends `value`.
        ///
        /// # Errors
        /// If the vector must grow and cannot (see [`try_reserve`](Self::try_reserve)): `value`
        /// comes back with the error.
        #[inline]
        pub fn try_push(&mut self, value: T) -> Result<(), (T, crate::AllocError)> {
            match crate::vec::try_reserve(&mut self.$inner, 1) {
                Ok(()) => {
                    self.$inner.push(value);
                    Ok(())
                }
                Err(e) => Err((value, e)),
            }
        }

        /// Makes room for `additional` more elements.
        ///
        /// # Panics
        /// If a budget is exceeded, the system allocator refuses memory, or the size overflows
        /// ([`try_reserve`](Self::try_reserve) returns the error instead).
        #[track_caller]
        #[inline]
        pub fn reserve(&mut self, additional: usize) {
            if let Err(e) = crate::vec::try_reserve(&mut self.$inner, additional) {
                crate::error::fail(e)
            }
        }

        /// Makes room for `additional` more elements.
        ///
        /// # Errors
        /// A budget would be exceeded, the system allocator refused memory, or the size
        /// overflows. The vector is unchanged then.
        #[inline]
        pub fn try_reserve(&mut self, additional: usize) -> Result<(), crate::AllocError> {
            crate::vec::try_reserve(&mut self.$inner, additional)
        }

        /// Appends clones of every element of `other`.
        ///
        /// # Panics
        /// As [`reserve`](Self::reserve) does, or if a `clone` panics (the clones made so far
        /// stay).
        #[track_caller]
        #[inline]
        pub fn extend_from_slice(&mut self, other: &[T])
        where
            T: Clone,
        {
            self.reserve(other.len());
            self.$inner.extend_from_slice(other);
        }

        /// Removes the last element.
        #[inline]
        pub fn pop(&mut self) -> Option<T> {
            self.$inner.pop()
        }

        /// Drops every element, keeping the capacity.
        #[inline]
        pub fn clear(&mut self) {
            self.$inner.clear();
        }

        /// Shortens to `len` elements, dropping the rest.
        #[inline]
        pub fn truncate(&mut self, len: usize) {
            self.$inner.truncate(len);
        }

        /// Number of elements.
        #[inline]
        pub fn len(&self) -> usize {
            self.$inner.len()
        }

        /// `true` if there are no elements.
        #[inline]
        pub fn is_empty(&self) -> bool {
            self.$inner.is_empty()
        }

        /// Elements it can hold without growing.
        #[inline]
        pub fn capacity(&self) -> usize {
            self.$inner.capacity()
        }

        /// The elements as a slice.
        #[inline]
        pub fn as_slice(&self) -> &[T] {
            self.$inner.as_slice()
        }

        /// The elements as a mutable slice.
        #[inline]
        pub fn as_mut_slice(&mut self) -> &mut [T] {
            self.$inner.as_mut_slice()
        }
    };
}

pub(crate) use heap_vec_methods;
