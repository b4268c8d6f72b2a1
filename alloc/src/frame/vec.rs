//! [`FrameVec`]: a growable vector in the calling thread's frame arena.
//!
//! Growth takes a new block from the arena and moves the elements; the old block is left to
//! the frame (freed in bulk at the next `begin_frame`). The vector holds the arena (`Rc`), so
//! it can grow until it drops, and one count on the chunk of its current block.

use super::arena::FrameArena;
use super::boxed::{release, NotSend};
use super::chunk::FrameChunk;
use crate::error::{fail, AllocError};
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use std::alloc::Layout;
use std::rc::Rc;

/// A growable vector in the calling thread's frame arena. `!Send`, like every frame handle.
pub struct FrameVec<'a, T> {
    ptr: NonNull<T>,
    len: usize,
    cap: usize,
    chunk: Option<NonNull<FrameChunk>>,
    arena: Rc<FrameArena>,
    _marker: PhantomData<(&'a (), T)>,
    _not_send: NotSend,
}

impl<'a, T> FrameVec<'a, T> {
    pub(crate) fn new_in(arena: Rc<FrameArena>) -> Self {
        let cap = if core::mem::size_of::<T>() == 0 { usize::MAX } else { 0 };
        Self { ptr: NonNull::dangling(), len: 0, cap, chunk: None, arena, _marker: PhantomData, _not_send: PhantomData }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` if there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Elements it can hold without growing.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Makes room for `additional` more elements.
    ///
    /// # Errors
    /// The frame or total budget would be exceeded, the system allocator refused a chunk, or
    /// the size overflows. The vector is unchanged then.
    pub fn try_reserve(&mut self, additional: usize) -> Result<(), AllocError> {
        let needed = self.len.checked_add(additional).ok_or_else(AllocError::capacity_overflow)?;
        if needed <= self.cap {
            return Ok(());
        }
        let new_cap = needed.max(self.cap.saturating_mul(2)).max(4);
        let layout = Layout::array::<T>(new_cap).map_err(|_| AllocError::capacity_overflow())?;
        let (p, chunk) = self.arena.alloc_counted(layout)?;
        let p = p.cast::<T>();
        // SAFETY: the new block holds `new_cap >= len` elements and does not overlap the old
        // one; the elements move bitwise, and the old block is no longer read.
        unsafe {
            core::ptr::copy_nonoverlapping(self.ptr.as_ptr(), p.as_ptr(), self.len);
            release::<T>(self.chunk, self.cap);
        }
        self.ptr = p;
        self.cap = new_cap;
        self.chunk = chunk;
        Ok(())
    }

    /// Makes room for `additional` more elements.
    ///
    /// # Panics
    /// If the frame or total budget is exceeded, the system allocator refuses a chunk, or the
    /// size overflows ([`try_reserve`](Self::try_reserve) returns the error instead).
    #[track_caller]
    pub fn reserve(&mut self, additional: usize) {
        if let Err(e) = self.try_reserve(additional) {
            fail(e)
        }
    }

    /// Appends `value`.
    ///
    /// # Panics
    /// If the vector must grow and cannot, as [`reserve`](Self::reserve) does
    /// ([`try_push`](Self::try_push) returns the error instead).
    #[inline]
    #[track_caller]
    pub fn push(&mut self, value: T) {
        if self.len == self.cap {
            self.reserve(1);
        }
        // SAFETY: `len < cap`, so the slot is inside the block and uninitialised.
        unsafe { self.ptr.as_ptr().add(self.len).write(value) };
        self.len += 1;
    }

    /// Appends `value`.
    ///
    /// # Errors
    /// If the vector must grow and cannot (see [`try_reserve`](Self::try_reserve)): `value`
    /// comes back with the error.
    pub fn try_push(&mut self, value: T) -> Result<(), (T, AllocError)> {
        if let Err(e) = self.try_reserve(1) {
            return Err((value, e));
        }
        self.push(value);
        Ok(())
    }

    /// Removes the last element.
    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: the slot was initialised and is now outside `len`, so it is read once.
        Some(unsafe { self.ptr.as_ptr().add(self.len).read() })
    }

    /// Appends clones of every element of `other`.
    ///
    /// # Panics
    /// As [`reserve`](Self::reserve) does, or if a `clone` panics (the clones made so far stay).
    #[track_caller]
    pub fn extend_from_slice(&mut self, other: &[T])
    where
        T: Clone,
    {
        self.reserve(other.len());
        for v in other {
            self.push(v.clone());
        }
    }

    /// Drops every element, keeping the capacity.
    pub fn clear(&mut self) {
        let len = self.len;
        self.len = 0;
        // SAFETY: the first `len` slots were initialised and are now outside `len`.
        unsafe { core::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), len).drop_in_place() };
    }

    /// Moves the elements into a `std` `Vec` (the frame block stays with the frame).
    pub fn into_inner(self) -> Vec<T> {
        let mut this = ManuallyDrop::new(self);
        let len = this.len;
        let mut out = Vec::with_capacity(len);
        // SAFETY: the elements move bitwise into `out` (room for `len`); `this` forgets them
        // and is never dropped, so its count and arena are released by hand below.
        unsafe {
            core::ptr::copy_nonoverlapping(this.ptr.as_ptr(), out.as_mut_ptr(), len);
            out.set_len(len);
            this.len = 0;
            release::<T>(this.chunk, this.cap);
            core::ptr::drop_in_place(&mut this.arena);
        }
        out
    }
}

impl<T> Drop for FrameVec<'_, T> {
    fn drop(&mut self) {
        let (chunk, cap) = (self.chunk, self.cap);
        // SAFETY: our one count on the chunk of the current block, released once, even if an
        // element's drop panics.
        let _release = crate::defer::Defer::new(|| unsafe { release::<T>(chunk, cap) });
        self.clear();
    }
}

impl<T> Deref for FrameVec<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialised elements.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> DerefMut for FrameVec<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as above, borrowed mutably through `&mut self`.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Extend<T> for FrameVec<'_, T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        let iter = iter.into_iter();
        self.reserve(iter.size_hint().0);
        for v in iter {
            self.push(v);
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for FrameVec<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
