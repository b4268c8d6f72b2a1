//! [`FrameVec`]: a growable vector in the calling thread's frame arena.
//!
//! Growth takes a new block from the arena and moves the elements; the old block is left to
//! the frame (freed in bulk at the next `begin_frame`). The vector holds the arena (`Rc`), so
//! it can grow until it drops, and one count on the chunk of its current block.

use super::arena::FrameArena;
use super::boxed::{release, NotSend};
use super::chunk::FrameChunk;
use crate::error::{fail, AllocError};
use crate::vec::RawVec;
use core::marker::PhantomData;
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

    /// A vector with room for exactly `capacity` elements (no block for 0).
    pub(crate) fn with_capacity_in(arena: Rc<FrameArena>, capacity: usize) -> Result<Self, AllocError> {
        let mut v = Self::new_in(arena);
        if capacity > v.cap {
            v.move_to_block(capacity)?;
        }
        Ok(v)
    }

    /// Moves the elements to a new block of `new_cap >= len` elements; the old block is left
    /// to the frame.
    fn move_to_block(&mut self, new_cap: usize) -> Result<(), AllocError> {
        let layout = Layout::array::<T>(new_cap).map_err(|_| AllocError::capacity_overflow())?;
        let (p, chunk) = self.arena.alloc_counted(layout)?;
        let p = p.cast::<T>();
        // SAFETY: the new block holds `new_cap >= len` elements and does not overlap the old
        // one; the elements move bitwise, the old block is no longer read and its count is
        // given back once.
        unsafe {
            core::ptr::copy_nonoverlapping(self.ptr.as_ptr(), p.as_ptr(), self.len);
            release::<T>(self.chunk, self.cap);
        }
        self.ptr = p;
        self.cap = new_cap;
        self.chunk = chunk;
        Ok(())
    }

    /// Room for `additional` more: at least double the capacity, and at least 4.
    #[inline]
    fn try_grow(&mut self, additional: usize) -> Result<(), AllocError> {
        if self.cap - self.len >= additional {
            return Ok(());
        }
        self.move_to_block(crate::vec::grown_capacity(self.len, self.cap, additional)?.max(4))
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn grow_one(&mut self) {
        if let Err(e) = self.try_grow(1) {
            fail(e)
        }
    }

    crate::vec::vec_methods!();
}

// SAFETY: `ptr` is dangling (aligned) with no block, else a block of `cap` elements counted
// in `chunk`, which the arena (held by the `Rc`) keeps out of reuse while the count lives;
// `len <= cap` elements initialised; only the growing methods move the block.
unsafe impl<T> RawVec for FrameVec<'_, T> {
    type Elem = T;

    #[inline(always)]
    fn raw_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    crate::vec::raw_len_cap!();

    #[inline]
    fn raw_try_reserve(&mut self, additional: usize) -> Result<(), AllocError> {
        self.try_grow(additional)
    }

    #[inline(always)]
    #[track_caller]
    fn raw_grow_one(&mut self) {
        self.grow_one()
    }

    fn raw_empty_like(&self, capacity: usize) -> Result<Self, AllocError> {
        Self::with_capacity_in(self.arena.clone(), capacity)
    }
}

impl<T> Drop for FrameVec<'_, T> {
    fn drop(&mut self) {
        let (chunk, cap) = (self.chunk, self.cap);
        // SAFETY: our one count on the chunk of the current block, released once, even if an
        // element's drop panics.
        let _release = crate::defer::Defer::new(|| unsafe { release::<T>(chunk, cap) });
        crate::vec::truncate(self, 0);
    }
}

crate::vec::vec_traits!(['a, T,] FrameVec<'a, T>, ['a,] FrameVec<'a, u8>);
