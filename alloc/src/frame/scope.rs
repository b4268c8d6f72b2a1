//! [`FrameScope`]: frame allocation whose handles borrow the scope, so the compiler proves
//! none survives it, and nothing is counted at run time.

use super::arena::FrameArena;
use super::boxed::NotSend;
use crate::error::{fail, AllocError};
use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::{self, NonNull};
use std::alloc::Layout;

/// Frame allocation for the length of one [`SmartAlloc::frame_scope`](crate::SmartAlloc::frame_scope)
/// call. When the outermost scope exits its memory is reused at once (unless a `frame_box`,
/// `frame_vec` or `frame_slice` was made in between, in which case it waits for the next
/// `begin_frame`); a nested scope's memory comes back with its outermost scope's.
///
/// Handles cannot leave the closure:
///
/// ```compile_fail,E0521
/// # mod framealloc { pub use framealloc_alloc::*; }
/// let alloc = framealloc::SmartAlloc::new(Default::default());
/// let mut out = None;
/// alloc.frame_scope(|f| out = Some(f.alloc(5u32)));
/// ```
///
/// Taking the value out instead compiles:
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; }
/// let alloc = framealloc::SmartAlloc::new(Default::default());
/// let mut out = None;
/// alloc.frame_scope(|f| out = Some(*f.alloc(5u32)));
/// assert_eq!(out, Some(5));
/// ```
#[repr(C)] // keeps the field order (see `parent`)
pub struct FrameScope<'s> {
    arena: &'s FrameArena,
    allocations: Cell<u64>,
    /// The open scope on the same arena that encloses this one (a `FrameScope`; null: none).
    /// Placed between the two counters, which then stay two plain adds: side by side, the
    /// compiler fuses them into a vector load, add and store, one instruction more.
    parent: Cell<*const ()>,
    /// Requested bytes of this scope's allocations (all alive until it ends).
    bytes: Cell<u64>,
    _not_send: NotSend,
}

impl<'s> FrameScope<'s> {
    fn new(arena: &'s FrameArena) -> Self {
        Self {
            arena,
            allocations: Cell::new(0),
            bytes: Cell::new(0),
            parent: Cell::new(ptr::null()),
            _not_send: PhantomData,
        }
    }

    #[inline(always)]
    pub(crate) fn raw(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let p = self.arena.alloc_scoped(layout)?;
        // Zero-sized values take no memory and are not counted (as everywhere).
        if layout.size() != 0 {
            self.allocations.set(self.allocations.get() + 1);
            self.bytes.set(self.bytes.get() + layout.size() as u64);
        }
        Ok(p)
    }

    /// Moves `value` into the frame (dropping it if that fails).
    ///
    /// # Errors
    /// The frame or total budget would be exceeded, or the system allocator refused a chunk.
    #[inline]
    pub fn try_alloc<T>(&self, value: T) -> Result<ScopedBox<'_, T>, AllocError> {
        let p = self.raw(Layout::new::<T>())?.cast::<T>();
        // SAFETY: fresh block for a `T` (or dangling and aligned for a zero-sized `T`).
        unsafe { p.as_ptr().write(value) };
        Ok(ScopedBox { ptr: p, _marker: PhantomData })
    }

    /// Moves `value` into the frame.
    ///
    /// # Panics
    /// If the frame or total budget is exceeded or the system allocator refuses a chunk
    /// ([`try_alloc`](Self::try_alloc) returns the error instead).
    #[inline]
    #[track_caller]
    pub fn alloc<T>(&self, value: T) -> ScopedBox<'_, T> {
        match self.try_alloc(value) {
            Ok(b) => b,
            Err(e) => fail(e),
        }
    }

    /// Copies `src` into the frame. `T: Copy` has no destructor, so a plain reference
    /// suffices.
    ///
    /// # Errors
    /// The frame or total budget would be exceeded, or the system allocator refused a chunk.
    #[allow(clippy::mut_from_ref)] // each call hands out fresh memory, like bumpalo's `alloc`
    pub fn try_alloc_slice_copy<T: Copy>(&self, src: &[T]) -> Result<&mut [T], AllocError> {
        let layout = Layout::array::<T>(src.len()).map_err(|_| AllocError::capacity_overflow())?;
        let p = self.raw(layout)?.cast::<T>();
        // SAFETY: fresh block for `src.len()` elements, not overlapping `src`; borrowed from
        // `self` for its life, and never handed out twice.
        unsafe {
            core::ptr::copy_nonoverlapping(src.as_ptr(), p.as_ptr(), src.len());
            Ok(core::slice::from_raw_parts_mut(p.as_ptr(), src.len()))
        }
    }

    /// Copies `src` into the frame. `T: Copy` has no destructor, so a plain reference suffices.
    ///
    /// # Panics
    /// If the frame or total budget is exceeded or the system allocator refuses a chunk
    /// ([`try_alloc_slice_copy`](Self::try_alloc_slice_copy) returns the error instead).
    #[track_caller]
    #[allow(clippy::mut_from_ref)] // each call hands out fresh memory, like bumpalo's `alloc`
    pub fn alloc_slice_copy<T: Copy>(&self, src: &[T]) -> &mut [T] {
        match self.try_alloc_slice_copy(src) {
            Ok(s) => s,
            Err(e) => fail(e),
        }
    }

    /// Bytes alive in the open scopes now: this one's and those of the scopes around it
    /// (an outer scope may allocate while an inner one is open; its values outlive the inner).
    fn open_bytes(&self) -> u64 {
        let mut total = self.bytes.get();
        let mut p = self.parent.get();
        // A parent is the scope that was innermost on this arena when its child opened (`run`);
        // it belongs to a `run` call further up this thread's stack, which restores the arena's
        // innermost scope only as it ends (returning or unwinding), after every scope it
        // encloses has ended.
        // SAFETY: so a non-null parent is alive while its child is.
        while let Some(s) = unsafe { p.cast::<FrameScope<'_>>().as_ref() } {
            total += s.bytes.get();
            p = s.parent.get();
        }
        total
    }
}

impl fmt::Debug for FrameScope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameScope").field("allocations", &self.allocations.get()).finish()
    }
}

/// A value in a [`FrameScope`]; dropped when the handle drops, and cannot outlive the scope.
///
/// Compares, hashes, borrows and formats as its value does, like `Box`. Not `Clone`: it does
/// not know its scope (that keeps it one pointer); clone the value into the scope instead,
/// `f.alloc(T::clone(&b))`.
pub struct ScopedBox<'s, T> {
    ptr: NonNull<T>,
    _marker: PhantomData<(&'s (), T, NotSend)>,
}

impl<T> Drop for ScopedBox<'_, T> {
    fn drop(&mut self) {
        // SAFETY: we own the initialised value; dropped once.
        unsafe { self.ptr.as_ptr().drop_in_place() };
    }
}

impl<T> Deref for ScopedBox<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: initialised and owned by us.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for ScopedBox<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: initialised and owned by us, borrowed mutably through `&mut self`.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: fmt::Debug> fmt::Debug for ScopedBox<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Runs `f` with a scope on `arena`, rewinding on exit (also on panic).
pub(crate) fn run<R>(arena: &FrameArena, f: impl FnOnce(&FrameScope<'_>) -> R) -> R {
    struct End<'a> {
        mark: super::arena::Mark,
        scope: FrameScope<'a>,
    }
    impl Drop for End<'_> {
        fn drop(&mut self) {
            let scope = &self.scope;
            scope.arena.replace_innermost_scope(scope.parent.get());
            scope.arena.end_scope(self.mark, scope.allocations.get(), scope.open_bytes());
        }
    }
    let end = End { mark: arena.mark(), scope: FrameScope::new(arena) };
    // `end` stays where it is until it drops, so the arena may point at its scope till then.
    let me: *const FrameScope<'_> = &end.scope;
    end.scope.parent.set(arena.replace_innermost_scope(me.cast()));
    f(&end.scope)
}
