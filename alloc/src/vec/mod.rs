//! The one vector implementation behind [`FrameVec`](crate::FrameVec),
//! [`TaskVec`](crate::TaskVec) and [`PoolVec`](crate::PoolVec), and their iterators
//! [`IntoIter`] and [`Drain`].
//!
//! Each vector supplies only its buffer through the sealed trait `RawVec`: where the elements
//! are, how many, how to grow and how to make an empty vector in the same memory. Every
//! element operation is written once here, as generic functions, and the `vec_methods!` and
//! `vec_traits!` macros put them on each vector as inherent methods and trait impls.
//!
//! Growing methods never abort the process on an allocation failure: the plain form panics
//! with the [`AllocError`], the `try_` form returns it.

mod iter;
pub(crate) mod task;

pub use iter::{Drain, IntoIter};

use crate::error::{fail, AllocError};
use core::ops::{Bound, RangeBounds};
use core::ptr;

mod sealed {
    use crate::error::AllocError;

    /// A vector's buffer: the raw parts every element operation is built on.
    ///
    /// Public only so that [`IntoIter`](super::IntoIter) and [`Drain`](super::Drain) can name
    /// it in their bounds; it cannot be named or implemented outside this crate.
    ///
    /// # Safety
    /// Implementors guarantee: [`raw_ptr`](Self::raw_ptr) is non-null, aligned for `Elem` and
    /// valid for reads and writes of [`raw_capacity`](Self::raw_capacity) elements (a
    /// zero-sized `Elem` has capacity `usize::MAX`), the first [`raw_len`](Self::raw_len) of
    /// them initialised and owned by the vector; the pointer changes only in the growing
    /// methods; dropping the vector drops its first `raw_len` elements and frees the buffer.
    pub unsafe trait RawVec: Sized {
        /// The element type.
        type Elem;

        /// Where the elements are.
        fn raw_ptr(&self) -> *mut Self::Elem;

        /// Number of initialised elements.
        fn raw_len(&self) -> usize;

        /// Sets the number of initialised elements.
        ///
        /// # Safety
        /// `len <= raw_capacity()` and the first `len` elements are initialised; elements
        /// beyond `len` are no longer owned (nor dropped) by the vector.
        unsafe fn raw_set_len(&mut self, len: usize);

        /// Elements the buffer holds.
        fn raw_capacity(&self) -> usize;

        /// Room for `additional` more elements, the elements moved to a new buffer if needed.
        ///
        /// # Errors
        /// The buffer's allocation error; the vector is unchanged then.
        fn raw_try_reserve(&mut self, additional: usize) -> Result<(), AllocError>;

        /// Room for one more element in a full vector, or the panic with the error. Kept out
        /// of line by the implementors so that an inlined `push` stays a compare, a store and
        /// an increment.
        fn raw_grow_one(&mut self);

        /// An empty vector in the same memory (same arena, heap or `TaskAlloc`) with room for
        /// at least `capacity` elements.
        ///
        /// # Errors
        /// The buffer's allocation error.
        fn raw_empty_like(&self, capacity: usize) -> Result<Self, AllocError>;
    }
}

pub(crate) use sealed::RawVec;

/// The minimum non-zero capacity of a first buffer, like `std`'s: small elements waste
/// little, and a vector that is pushed to at all usually gets several.
#[inline(always)]
pub(crate) const fn min_capacity<T>() -> usize {
    match core::mem::size_of::<T>() {
        1 => 8,
        s if s <= 1024 => 4,
        _ => 1,
    }
}

/// The capacity a vector of `len` elements in a buffer of `cap` grows to for `additional`
/// more: what is needed, and at least double the old capacity (amortized growth). For a
/// zero-sized element (capacity `usize::MAX`) any request for more overflows.
#[inline]
pub(crate) fn grown_capacity(len: usize, cap: usize, additional: usize) -> Result<usize, AllocError> {
    let needed = len.checked_add(additional).ok_or_else(AllocError::capacity_overflow)?;
    Ok(needed.max(cap.saturating_mul(2)))
}

/// `v`'s elements as a slice.
#[inline(always)]
pub(crate) fn as_slice<V: RawVec>(v: &V) -> &[V::Elem] {
    // SAFETY: `raw_len` initialised elements at a non-null, aligned pointer (`RawVec`).
    unsafe { core::slice::from_raw_parts(v.raw_ptr(), v.raw_len()) }
}

/// `v`'s elements as a mutable slice.
#[inline(always)]
pub(crate) fn as_mut_slice<V: RawVec>(v: &mut V) -> &mut [V::Elem] {
    // SAFETY: as in `as_slice`, borrowed mutably through `&mut v`.
    unsafe { core::slice::from_raw_parts_mut(v.raw_ptr(), v.raw_len()) }
}

/// Reserves or panics with the error.
#[inline]
#[track_caller]
pub(crate) fn reserve<V: RawVec>(v: &mut V, additional: usize) {
    if let Err(e) = v.raw_try_reserve(additional) {
        fail(e)
    }
}

/// Appends `value`, growing (or panicking) when full.
#[inline(always)]
#[track_caller]
pub(crate) fn push<V: RawVec>(v: &mut V, value: V::Elem) {
    let len = v.raw_len();
    if len == v.raw_capacity() {
        v.raw_grow_one();
    }
    // SAFETY: `len < capacity`: the slot is inside the buffer and not initialised; it is
    // counted right after the write.
    unsafe {
        v.raw_ptr().add(len).write(value);
        v.raw_set_len(len + 1);
    }
}

/// Appends `value`, or gives it back with the error.
#[inline(always)]
pub(crate) fn try_push<V: RawVec>(v: &mut V, value: V::Elem) -> Result<(), (V::Elem, AllocError)> {
    if let Err(e) = v.raw_try_reserve(1) {
        return Err((value, e));
    }
    let len = v.raw_len();
    // SAFETY: room for one more element was just made.
    unsafe {
        v.raw_ptr().add(len).write(value);
        v.raw_set_len(len + 1);
    }
    Ok(())
}

/// Removes the last element.
#[inline]
pub(crate) fn pop<V: RawVec>(v: &mut V) -> Option<V::Elem> {
    let len = v.raw_len().checked_sub(1)?;
    // SAFETY: the last element is initialised; it is uncounted first, then read once.
    unsafe {
        v.raw_set_len(len);
        Some(v.raw_ptr().add(len).read())
    }
}

/// Inserts `value` at `index`, shifting the rest right.
#[inline]
#[track_caller]
pub(crate) fn insert<V: RawVec>(v: &mut V, index: usize, value: V::Elem) {
    let len = v.raw_len();
    if index > len {
        insert_failed(index, len);
    }
    if len == v.raw_capacity() {
        v.raw_grow_one();
    }
    // SAFETY: room for `len + 1`; the tail moves up by one (overlapping copy), then the hole
    // is filled and counted. Nothing in between can panic.
    unsafe {
        let p = v.raw_ptr().add(index);
        ptr::copy(p, p.add(1), len - index);
        p.write(value);
        v.raw_set_len(len + 1);
    }
}

#[cold]
#[track_caller]
fn insert_failed(index: usize, len: usize) -> ! {
    panic!("insertion index (is {index}) should be <= len (is {len})")
}

/// Removes and returns the element at `index`, shifting the rest left.
#[inline]
#[track_caller]
pub(crate) fn remove<V: RawVec>(v: &mut V, index: usize) -> V::Elem {
    let len = v.raw_len();
    if index >= len {
        remove_failed("removal", index, len);
    }
    // SAFETY: `index < len`: the element is read once and its slot closed by moving the tail
    // down; the length drops by one. Nothing in between can panic.
    unsafe {
        let p = v.raw_ptr().add(index);
        let out = p.read();
        ptr::copy(p.add(1), p, len - index - 1);
        v.raw_set_len(len - 1);
        out
    }
}

#[cold]
#[track_caller]
fn remove_failed(what: &str, index: usize, len: usize) -> ! {
    panic!("{what} index (is {index}) should be < len (is {len})")
}

/// Removes and returns the element at `index`, the last element taking its place.
#[inline]
#[track_caller]
pub(crate) fn swap_remove<V: RawVec>(v: &mut V, index: usize) -> V::Elem {
    let len = v.raw_len();
    if index >= len {
        remove_failed("swap_remove", index, len);
    }
    // SAFETY: `index < len`: the element is read once and the last one moved into its slot
    // (a no-op copy when they are the same); the length drops by one.
    unsafe {
        let base = v.raw_ptr();
        let out = base.add(index).read();
        ptr::copy(base.add(len - 1), base.add(index), 1);
        v.raw_set_len(len - 1);
        out
    }
}

/// Drops the elements from `len` on.
#[inline]
pub(crate) fn truncate<V: RawVec>(v: &mut V, len: usize) {
    let old = v.raw_len();
    if len >= old {
        return;
    }
    // SAFETY: the tail is uncounted first, so a panicking drop can never make one drop twice;
    // then each of its initialised elements is dropped once.
    unsafe {
        v.raw_set_len(len);
        ptr::drop_in_place(ptr::slice_from_raw_parts_mut(v.raw_ptr().add(len), old - len));
    }
}

/// Appends clones of `other`'s elements.
#[inline]
#[track_caller]
pub(crate) fn extend_from_slice<V: RawVec>(v: &mut V, other: &[V::Elem])
where
    V::Elem: Clone,
{
    reserve(v, other.len());
    for x in other {
        let len = v.raw_len();
        // SAFETY: room was reserved; each clone is counted as soon as it is written, so a
        // panicking `clone` leaves a consistent vector.
        unsafe {
            v.raw_ptr().add(len).write(x.clone());
            v.raw_set_len(len + 1);
        }
    }
}

/// Appends bytes (or any `Copy` elements) with one copy, or returns the error.
#[inline]
pub(crate) fn try_extend_copied<V: RawVec>(v: &mut V, other: &[V::Elem]) -> Result<(), AllocError>
where
    V::Elem: Copy,
{
    v.raw_try_reserve(other.len())?;
    let len = v.raw_len();
    // SAFETY: room for `other.len()` more; `Copy` elements, which cannot overlap our buffer's
    // uninitialised part, are copied bitwise and then counted.
    unsafe {
        ptr::copy_nonoverlapping(other.as_ptr(), v.raw_ptr().add(len), other.len());
        v.raw_set_len(len + other.len());
    }
    Ok(())
}

/// Appends every item of `iter`.
#[inline]
#[track_caller]
pub(crate) fn extend<V: RawVec, I: IntoIterator<Item = V::Elem>>(v: &mut V, iter: I) {
    let iter = iter.into_iter();
    reserve(v, iter.size_hint().0);
    for x in iter {
        push(v, x);
    }
}

/// Resizes to `new_len`, filling with `f()` or dropping the tail.
#[inline]
#[track_caller]
pub(crate) fn resize_with<V: RawVec>(v: &mut V, new_len: usize, mut f: impl FnMut() -> V::Elem) {
    let len = v.raw_len();
    if new_len <= len {
        return truncate(v, new_len);
    }
    reserve(v, new_len - len);
    for i in len..new_len {
        // SAFETY: room was reserved; each value is counted as soon as it is written, so a
        // panicking `f` leaves a consistent vector.
        unsafe {
            v.raw_ptr().add(i).write(f());
            v.raw_set_len(i + 1);
        }
    }
}

/// Resizes to `new_len`, filling with clones of `value` (moved in last) or dropping the tail.
#[inline]
#[track_caller]
pub(crate) fn resize<V: RawVec>(v: &mut V, new_len: usize, value: V::Elem)
where
    V::Elem: Clone,
{
    let len = v.raw_len();
    if new_len <= len {
        return truncate(v, new_len);
    }
    let extra = new_len - len;
    let mut value = Some(value);
    let mut made = 0;
    resize_with(v, new_len, || {
        made += 1;
        if made == extra {
            value.take().expect("the last fill moves the value in")
        } else {
            value.as_ref().expect("clones come before the move").clone()
        }
    });
}

/// Keeps the elements for which `f` returns `true`, in order.
#[inline]
pub(crate) fn retain_mut<V: RawVec>(v: &mut V, mut f: impl FnMut(&mut V::Elem) -> bool) {
    let len = v.raw_len();
    if len == 0 {
        return;
    }
    /// Closes the gap of the deleted elements, also if `f` or a drop panics.
    struct Compact<'v, V: RawVec> {
        v: &'v mut V,
        processed: usize,
        deleted: usize,
        len: usize,
    }
    impl<V: RawVec> Drop for Compact<'_, V> {
        fn drop(&mut self) {
            // SAFETY: `[processed, len)` are initialised and unvisited; they move down over
            // the `deleted` dropped or moved-out slots; then the count covers exactly the
            // kept elements.
            unsafe {
                let p = self.v.raw_ptr();
                if self.deleted > 0 {
                    ptr::copy(p.add(self.processed), p.add(self.processed - self.deleted), self.len - self.processed);
                }
                self.v.raw_set_len(self.len - self.deleted);
            }
        }
    }
    // Uncounted while visited: a panic leaves the guard to restore a consistent vector.
    // SAFETY: 0 is always a valid length.
    unsafe { v.raw_set_len(0) };
    let mut g = Compact { v, processed: 0, deleted: 0, len };
    while g.processed < g.len {
        let p = g.v.raw_ptr();
        // SAFETY: `processed < len`: an initialised element no one else refers to.
        let cur = unsafe { &mut *p.add(g.processed) };
        if f(cur) {
            if g.deleted > 0 {
                // SAFETY: the slot `deleted` places down was dropped or moved out.
                unsafe { ptr::copy_nonoverlapping(p.add(g.processed), p.add(g.processed - g.deleted), 1) };
            }
            g.processed += 1;
        } else {
            // Counted as gone before the drop, so a panicking drop is not repeated.
            g.processed += 1;
            g.deleted += 1;
            // SAFETY: the element is initialised and now outside the kept range.
            unsafe { ptr::drop_in_place(p.add(g.processed - 1)) };
        }
    }
}

/// Removes consecutive elements that `same` says equal the kept one before them.
#[inline]
pub(crate) fn dedup_by<V: RawVec>(v: &mut V, mut same: impl FnMut(&mut V::Elem, &mut V::Elem) -> bool) {
    let len = v.raw_len();
    if len <= 1 {
        return;
    }
    /// Moves the unvisited rest down to `write` and counts the kept elements, also if `same`
    /// or a drop panics.
    struct Compact<'v, V: RawVec> {
        v: &'v mut V,
        read: usize,
        write: usize,
        len: usize,
    }
    impl<V: RawVec> Drop for Compact<'_, V> {
        fn drop(&mut self) {
            // SAFETY: `[0, write)` are kept, `[read, len)` initialised and unvisited, the slots
            // between dropped or moved out.
            unsafe {
                let p = self.v.raw_ptr();
                let rest = self.len - self.read;
                ptr::copy(p.add(self.read), p.add(self.write), rest);
                self.v.raw_set_len(self.write + rest);
            }
        }
    }
    // SAFETY: 0 is always a valid length; the guard restores it.
    unsafe { v.raw_set_len(0) };
    let mut g = Compact { v, read: 1, write: 1, len };
    while g.read < g.len {
        let p = g.v.raw_ptr();
        // SAFETY: `write - 1 < read < len`: two distinct initialised elements.
        let dup = unsafe { same(&mut *p.add(g.read), &mut *p.add(g.write - 1)) };
        g.read += 1;
        if dup {
            // SAFETY: counted as visited before the drop, so it is dropped once.
            unsafe { ptr::drop_in_place(p.add(g.read - 1)) };
        } else {
            // SAFETY: the slot at `write` (if not the element itself) was dropped or moved out.
            unsafe { ptr::copy(p.add(g.read - 1), p.add(g.write), 1) };
            g.write += 1;
        }
    }
}

/// `range` as start and end indices into a slice of `len`, or the panic std's `drain` gives.
#[inline]
#[track_caller]
fn range_of(range: impl RangeBounds<usize>, len: usize) -> (usize, usize) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1).unwrap_or_else(|| range_overflow()),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1).unwrap_or_else(|| range_overflow()),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => len,
    };
    if start > end {
        range_failed(format_args!("slice index starts at {start} but ends at {end}"));
    }
    if end > len {
        range_failed(format_args!("range end index {end} out of range for slice of length {len}"));
    }
    (start, end)
}

#[cold]
#[track_caller]
fn range_overflow() -> ! {
    panic!("range bound overflows usize")
}

#[cold]
#[track_caller]
fn range_failed(msg: core::fmt::Arguments<'_>) -> ! {
    panic!("{msg}")
}

/// Removes `range` from `v`, yielding its elements.
#[inline]
#[track_caller]
pub(crate) fn drain<V: RawVec>(v: &mut V, range: impl RangeBounds<usize>) -> Drain<'_, V> {
    let len = v.raw_len();
    let (start, end) = range_of(range, len);
    // SAFETY: `[start, end)` and the tail are initialised; the vector keeps `[0, start)` while
    // the drain owns the rest (it restores the tail when dropped, or leaks it if forgotten).
    unsafe { Drain::new(v, start, end, len) }
}

/// Moves the elements into a `std` vector; `v`'s buffer is freed by its drop.
#[inline]
pub(crate) fn into_std<V: RawVec>(mut v: V) -> Vec<V::Elem> {
    let len = v.raw_len();
    let mut out = Vec::with_capacity(len);
    // SAFETY: `out` has room for `len` elements; they are moved bitwise and `v` forgets them
    // (len 0) before it drops, so each is owned once.
    unsafe {
        ptr::copy_nonoverlapping(v.raw_ptr(), out.as_mut_ptr(), len);
        v.raw_set_len(0);
        out.set_len(len);
    }
    out
}

/// A copy of `v` in the same memory, or the error.
#[inline]
pub(crate) fn try_clone<V: RawVec>(v: &V) -> Result<V, AllocError>
where
    V::Elem: Clone,
{
    let mut out = v.raw_empty_like(v.raw_len())?;
    extend_from_slice(&mut out, as_slice(v));
    Ok(out)
}

/// The inherent methods every vector has, forwarding to this module's functions. Expanded
/// inside `impl<..> Vector<.., T>` (`T` is the element type).
macro_rules! vec_methods {
    () => {
        /// Appends `value`.
        ///
        /// # Panics
        /// If the vector must grow and cannot, as [`reserve`](Self::reserve) does
        /// ([`try_push`](Self::try_push) returns the error instead).
        #[inline]
        #[track_caller]
        pub fn push(&mut self, value: T) {
            $crate::vec::push(self, value)
        }

        /// Appends `value`.
        ///
        /// # Errors
        /// If the vector must grow and cannot (see [`try_reserve`](Self::try_reserve)): `value`
        /// comes back with the error.
        #[inline]
        pub fn try_push(&mut self, value: T) -> Result<(), (T, $crate::AllocError)> {
            $crate::vec::try_push(self, value)
        }

        /// Makes room for `additional` more elements.
        ///
        /// # Panics
        /// If a budget is exceeded, the system allocator refuses memory, or the size overflows
        /// ([`try_reserve`](Self::try_reserve) returns the error instead).
        #[inline]
        #[track_caller]
        pub fn reserve(&mut self, additional: usize) {
            $crate::vec::reserve(self, additional)
        }

        /// Makes room for `additional` more elements.
        ///
        /// # Errors
        /// A budget would be exceeded, the system allocator refused memory, or the size
        /// overflows. The vector is unchanged then.
        #[inline]
        pub fn try_reserve(&mut self, additional: usize) -> Result<(), $crate::AllocError> {
            $crate::vec::RawVec::raw_try_reserve(self, additional)
        }

        /// Removes the last element.
        #[inline]
        pub fn pop(&mut self) -> Option<T> {
            $crate::vec::pop(self)
        }

        /// Inserts `value` at `index`, shifting the elements after it to the right.
        ///
        /// # Panics
        /// If `index > len`, or as [`reserve`](Self::reserve) does when the vector must grow.
        #[inline]
        #[track_caller]
        pub fn insert(&mut self, index: usize, value: T) {
            $crate::vec::insert(self, index, value)
        }

        /// Removes and returns the element at `index`, shifting the elements after it to the
        /// left.
        ///
        /// # Panics
        /// If `index >= len`.
        #[inline]
        #[track_caller]
        pub fn remove(&mut self, index: usize) -> T {
            $crate::vec::remove(self, index)
        }

        /// Removes and returns the element at `index`, replacing it with the last element
        /// (O(1), does not keep the order).
        ///
        /// # Panics
        /// If `index >= len`.
        #[inline]
        #[track_caller]
        pub fn swap_remove(&mut self, index: usize) -> T {
            $crate::vec::swap_remove(self, index)
        }

        /// Keeps only the elements for which `f` returns `true`, in their order.
        ///
        /// # Panics
        /// If `f` or an element's drop panics (the vector then holds the elements kept so far
        /// and those not yet visited).
        #[inline]
        pub fn retain(&mut self, mut f: impl FnMut(&T) -> bool) {
            $crate::vec::retain_mut(self, |x| f(x))
        }

        /// Keeps only the elements for which `f` returns `true`, in their order; `f` may
        /// change them.
        ///
        /// # Panics
        /// As [`retain`](Self::retain).
        #[inline]
        pub fn retain_mut(&mut self, f: impl FnMut(&mut T) -> bool) {
            $crate::vec::retain_mut(self, f)
        }

        /// Removes consecutive equal elements, keeping the first of each run.
        #[inline]
        pub fn dedup(&mut self)
        where
            T: PartialEq,
        {
            $crate::vec::dedup_by(self, |a, b| a == b)
        }

        /// Removes consecutive elements with equal keys, keeping the first of each run.
        #[inline]
        pub fn dedup_by_key<K: PartialEq>(&mut self, mut key: impl FnMut(&mut T) -> K) {
            $crate::vec::dedup_by(self, |a, b| key(a) == key(b))
        }

        /// Removes each element for which `same(element, previous kept element)` is `true`.
        #[inline]
        pub fn dedup_by(&mut self, same: impl FnMut(&mut T, &mut T) -> bool) {
            $crate::vec::dedup_by(self, same)
        }

        /// Removes the elements in `range` and yields them; the tail moves down when the
        /// iterator drops (elements not yielded are dropped then).
        ///
        /// # Panics
        /// If the range starts after it ends or ends after the last element.
        #[inline]
        #[track_caller]
        pub fn drain(&mut self, range: impl core::ops::RangeBounds<usize>) -> $crate::vec::Drain<'_, Self> {
            $crate::vec::drain(self, range)
        }

        /// Shortens to `len` elements, dropping the rest (nothing happens if it is not
        /// shorter). Keeps the capacity.
        #[inline]
        pub fn truncate(&mut self, len: usize) {
            $crate::vec::truncate(self, len)
        }

        /// Drops every element, keeping the capacity.
        #[inline]
        pub fn clear(&mut self) {
            $crate::vec::truncate(self, 0)
        }

        /// Resizes to `new_len`: clones of `value` fill the new slots (`value` itself the
        /// last one), or the elements past `new_len` are dropped.
        ///
        /// # Panics
        /// As [`reserve`](Self::reserve) does, or if a `clone` panics (the clones made so far
        /// stay).
        #[inline]
        #[track_caller]
        pub fn resize(&mut self, new_len: usize, value: T)
        where
            T: Clone,
        {
            $crate::vec::resize(self, new_len, value)
        }

        /// Resizes to `new_len`: `f()` fills the new slots, or the elements past `new_len` are
        /// dropped.
        ///
        /// # Panics
        /// As [`reserve`](Self::reserve) does, or if `f` panics (the values made so far stay).
        #[inline]
        #[track_caller]
        pub fn resize_with(&mut self, new_len: usize, f: impl FnMut() -> T) {
            $crate::vec::resize_with(self, new_len, f)
        }

        /// Appends clones of every element of `other`.
        ///
        /// # Panics
        /// As [`reserve`](Self::reserve) does, or if a `clone` panics (the clones made so far
        /// stay).
        #[inline]
        #[track_caller]
        pub fn extend_from_slice(&mut self, other: &[T])
        where
            T: Clone,
        {
            $crate::vec::extend_from_slice(self, other)
        }

        /// The elements as a slice.
        #[inline]
        pub fn as_slice(&self) -> &[T] {
            $crate::vec::as_slice(self)
        }

        /// The elements as a mutable slice.
        #[inline]
        pub fn as_mut_slice(&mut self) -> &mut [T] {
            $crate::vec::as_mut_slice(self)
        }

        /// A pointer to the first element (non-null and aligned also when empty); valid until
        /// the vector grows or drops.
        #[inline]
        pub fn as_ptr(&self) -> *const T {
            $crate::vec::RawVec::raw_ptr(self)
        }

        /// A mutable pointer to the first element (non-null and aligned also when empty);
        /// valid until the vector grows or drops.
        #[inline]
        pub fn as_mut_ptr(&mut self) -> *mut T {
            $crate::vec::RawVec::raw_ptr(self)
        }

        /// Sets the number of elements without dropping or initialising any.
        ///
        /// # Safety
        /// `new_len <= capacity()`, and the first `new_len` elements are initialised. Elements
        /// past `new_len` are no longer dropped by the vector.
        #[inline]
        pub unsafe fn set_len(&mut self, new_len: usize) {
            debug_assert!(new_len <= self.capacity());
            // SAFETY: per the caller.
            unsafe { $crate::vec::RawVec::raw_set_len(self, new_len) }
        }

        /// Number of elements.
        #[inline]
        pub fn len(&self) -> usize {
            $crate::vec::RawVec::raw_len(self)
        }

        /// `true` if there are no elements.
        #[inline]
        pub fn is_empty(&self) -> bool {
            $crate::vec::RawVec::raw_len(self) == 0
        }

        /// Elements it can hold without growing (`usize::MAX` for a zero-sized `T`).
        #[inline]
        pub fn capacity(&self) -> usize {
            $crate::vec::RawVec::raw_capacity(self)
        }

        /// Moves the elements into a `std` `Vec` (this vector's buffer is freed or, in a frame,
        /// left to the frame).
        #[inline]
        pub fn into_inner(self) -> Vec<T> {
            $crate::vec::into_std(self)
        }
    };
}

pub(crate) use vec_methods;

/// The `RawVec` accessors of a vector whose length and capacity are its `len` and `cap`
/// fields (all three are).
macro_rules! raw_len_cap {
    () => {
        #[inline(always)]
        fn raw_len(&self) -> usize {
            self.len
        }

        #[inline(always)]
        unsafe fn raw_set_len(&mut self, len: usize) {
            self.len = len;
        }

        #[inline(always)]
        fn raw_capacity(&self) -> usize {
            self.cap
        }
    };
}

pub(crate) use raw_len_cap;

/// `PartialEq` of a vector (`$v`, element `T`) against slices, arrays and `Vec`s (element
/// `U`), and of slices and `Vec`s against it; `@one` alone is one such impl (`traits` makes
/// the ones between vector kinds with it).
macro_rules! vec_eq {
    ([$($g:tt)*] $v:ty) => {
        $crate::vec::vec_eq!(@one [$($g)* U] $v, [U]);
        $crate::vec::vec_eq!(@one ['r, $($g)* U] $v, &'r [U]);
        $crate::vec::vec_eq!(@one ['r, $($g)* U] $v, &'r mut [U]);
        $crate::vec::vec_eq!(@one [$($g)* U, const N: usize] $v, [U; N]);
        $crate::vec::vec_eq!(@one ['r, $($g)* U, const N: usize] $v, &'r [U; N]);
        $crate::vec::vec_eq!(@one [$($g)* U] $v, Vec<U>);
        $crate::vec::vec_eq!(@rev [$($g)* U] Vec<U>, $v);
        $crate::vec::vec_eq!(@rev [$($g)* U] [U], $v);
        $crate::vec::vec_eq!(@rev ['r, $($g)* U] &'r [U], $v);
    };
    (@one [$($g:tt)*] $v:ty, $rhs:ty) => {
        impl<$($g)*> PartialEq<$rhs> for $v
        where
            T: PartialEq<U>,
        {
            #[inline]
            fn eq(&self, other: &$rhs) -> bool {
                self[..] == other[..]
            }
        }
    };
    (@rev [$($g:tt)*] $lhs:ty, $v:ty) => {
        impl<$($g)*> PartialEq<$v> for $lhs
        where
            U: PartialEq<T>,
        {
            #[inline]
            fn eq(&self, other: &$v) -> bool {
                self[..] == other[..]
            }
        }
    };
}

pub(crate) use vec_eq;

/// The trait impls every vector has. `[$g]` are the vector's generics (ending in `T,`), `$v`
/// the vector of `T`, `[$gb]`/`$vb` the same for the vector of bytes.
macro_rules! vec_traits {
    ([$($g:tt)*] $v:ty, [$($gb:tt)*] $vb:ty) => {
        impl<$($g)*> core::ops::Deref for $v {
            type Target = [T];
            #[inline]
            fn deref(&self) -> &[T] {
                $crate::vec::as_slice(self)
            }
        }

        impl<$($g)*> core::ops::DerefMut for $v {
            #[inline]
            fn deref_mut(&mut self) -> &mut [T] {
                $crate::vec::as_mut_slice(self)
            }
        }

        /// Appends every item.
        ///
        /// # Panics
        /// As `reserve` does when the vector must grow.
        impl<$($g)*> Extend<T> for $v {
            #[inline]
            #[track_caller]
            fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
                $crate::vec::extend(self, iter)
            }
        }

        /// Appends a copy of every item.
        ///
        /// # Panics
        /// As `reserve` does when the vector must grow.
        impl<'x, $($g)*> Extend<&'x T> for $v
        where
            T: Copy + 'x,
        {
            #[inline]
            #[track_caller]
            fn extend<I: IntoIterator<Item = &'x T>>(&mut self, iter: I) {
                $crate::vec::extend(self, iter.into_iter().copied())
            }
        }

        impl<$($g)*> IntoIterator for $v {
            type Item = T;
            type IntoIter = $crate::vec::IntoIter<Self>;
            #[inline]
            fn into_iter(self) -> Self::IntoIter {
                $crate::vec::IntoIter::new(self)
            }
        }

        impl<'x, $($g)*> IntoIterator for &'x $v {
            type Item = &'x T;
            type IntoIter = core::slice::Iter<'x, T>;
            #[inline]
            fn into_iter(self) -> Self::IntoIter {
                $crate::vec::as_slice(self).iter()
            }
        }

        impl<'x, $($g)*> IntoIterator for &'x mut $v {
            type Item = &'x mut T;
            type IntoIter = core::slice::IterMut<'x, T>;
            #[inline]
            fn into_iter(self) -> Self::IntoIter {
                $crate::vec::as_mut_slice(self).iter_mut()
            }
        }

        /// A copy in the same memory (the same frame arena, task heap or pool heap).
        ///
        /// # Panics
        /// If the copy's buffer cannot be allocated (a budget, the system allocator), or if a
        /// `clone` panics.
        impl<$($g)*> Clone for $v
        where
            T: Clone,
        {
            #[track_caller]
            fn clone(&self) -> Self {
                match $crate::vec::try_clone(self) {
                    Ok(v) => v,
                    Err(e) => $crate::error::fail(e),
                }
            }
        }

        // Ordering and hashing as the slice of its elements (so they agree with
        // `Borrow<[T]>`), and the borrows of that slice.
        $crate::delegate::delegate_value_traits!([$($g)*] $v => [T], bound T);

        impl<$($g)*> core::fmt::Debug for $v
        where
            T: core::fmt::Debug,
        {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::Debug::fmt(&self[..], f)
            }
        }

        /// Appends the bytes, growing as needed. A failed allocation is an error of kind
        /// [`OutOfMemory`](std::io::ErrorKind::OutOfMemory) wrapping the
        /// [`AllocError`](crate::AllocError), not a panic.
        impl<$($gb)*> std::io::Write for $vb {
            #[inline]
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.write_all(buf)?;
                Ok(buf.len())
            }

            #[inline]
            fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
                $crate::vec::try_extend_copied(self, buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::OutOfMemory, e))
            }

            #[inline]
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        $crate::vec::vec_eq!([$($g)*] $v);
    };
}

pub(crate) use vec_traits;
