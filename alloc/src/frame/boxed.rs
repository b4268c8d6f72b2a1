//! [`FrameBox`] and [`FrameSlice`]: frame values that drop their contents and keep their chunk
//! out of reuse while alive.

use super::arena::FrameArena;
use super::chunk::FrameChunk;
use crate::error::AllocError;
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use std::alloc::Layout;
use std::rc::Rc;

/// Makes a frame handle `!Send` and `!Sync`: its chunk's counters are plain cells of the
/// arena's thread.
pub(crate) type NotSend = PhantomData<*mut ()>;

/// A value in the calling thread's frame arena.
///
/// Compares, hashes, borrows and formats as its value does, like `Box`; clones go to the
/// current frame ([`try_clone`](Self::try_clone)).
///
/// Valid until dropped, even past `end_frame` and the next `begin_frame` (its chunk is then
/// quarantined until it drops). `!Send`: frame data never crosses threads or await points of a
/// spawned task (FA603):
///
/// ```compile_fail,E0277
/// # mod framealloc { pub use framealloc_alloc::*; }
/// let alloc = framealloc::SmartAlloc::new(Default::default());
/// let b = alloc.frame_box(1u32);
/// std::thread::scope(|s| {
///     s.spawn(move || assert_eq!(*b, 1));
/// });
/// ```
///
/// The same with the value copied out of the frame compiles (error code `E0277` above:
/// `FrameBox` is not `Send`):
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; }
/// let alloc = framealloc::SmartAlloc::new(Default::default());
/// let b = alloc.frame_box(1u32);
/// let v = *b;
/// std::thread::scope(|s| {
///     s.spawn(move || assert_eq!(v, 1));
/// });
/// ```
pub struct FrameBox<'a, T> {
    ptr: NonNull<T>,
    chunk: Option<NonNull<FrameChunk>>,
    _marker: PhantomData<(&'a (), T)>,
    _not_send: NotSend,
}

impl<'a, T> FrameBox<'a, T> {
    /// # Safety
    /// `ptr` holds an initialised `T` in `chunk` (counted for this handle), or is dangling
    /// for a zero-sized `T` with no chunk.
    pub(crate) unsafe fn from_raw(ptr: NonNull<T>, chunk: Option<NonNull<FrameChunk>>) -> Self {
        Self { ptr, chunk, _marker: PhantomData, _not_send: PhantomData }
    }

    /// Moves the value out.
    pub fn into_inner(this: Self) -> T {
        let this = ManuallyDrop::new(this);
        // SAFETY: read once; the chunk is released without dropping the value again.
        unsafe {
            let v = this.ptr.as_ptr().read();
            release::<T>(this.chunk, 1);
            v
        }
    }
}

/// Uncounts a handle of `len` `T`s from its chunk.
///
/// # Safety
/// The handle was counted in `chunk` and is gone.
pub(crate) unsafe fn release<T>(chunk: Option<NonNull<FrameChunk>>, len: usize) {
    if let Some(c) = chunk {
        // SAFETY: per the caller.
        unsafe { FrameChunk::release(c, core::mem::size_of::<T>() * len) };
    }
}

impl<T> Drop for FrameBox<'_, T> {
    fn drop(&mut self) {
        let chunk = self.chunk;
        if !core::mem::needs_drop::<T>() {
            // SAFETY: nothing to drop; our one count on the chunk is given back once.
            return unsafe { release::<T>(chunk, 1) };
        }
        // SAFETY: we own one count on the chunk, given back once, even if `T::drop` panics.
        let _release = crate::defer::Defer::new(|| unsafe { release::<T>(chunk, 1) });
        // SAFETY: we own the initialised value; dropped once.
        unsafe { self.ptr.as_ptr().drop_in_place() };
    }
}

impl<T> Deref for FrameBox<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: initialised and owned by us.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for FrameBox<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: initialised and owned by us, borrowed mutably through `&mut self`.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: fmt::Debug> fmt::Debug for FrameBox<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A fixed-length slice in the calling thread's frame arena; drops its elements.
///
/// Compares, hashes, borrows and formats as its slice does, like `Box<[T]>`; clones go to the
/// current frame ([`try_clone`](Self::try_clone)).
pub struct FrameSlice<'a, T> {
    ptr: NonNull<T>,
    len: usize,
    chunk: Option<NonNull<FrameChunk>>,
    _marker: PhantomData<(&'a (), T)>,
    _not_send: NotSend,
}

impl<'a, T> FrameSlice<'a, T> {
    /// # Safety
    /// `ptr` holds `len` initialised `T`s in `chunk` (counted for this handle), or no chunk
    /// when they take no memory.
    pub(crate) unsafe fn from_raw(ptr: NonNull<T>, len: usize, chunk: Option<NonNull<FrameChunk>>) -> Self {
        Self { ptr, len, chunk, _marker: PhantomData, _not_send: PhantomData }
    }
}

impl<T> Drop for FrameSlice<'_, T> {
    fn drop(&mut self) {
        let (chunk, len) = (self.chunk, self.len);
        // SAFETY: we own one count on the chunk, given back once, even if a drop panics.
        let _release = crate::defer::Defer::new(|| unsafe { release::<T>(chunk, len) });
        // SAFETY: we own `len` initialised values; dropped once.
        unsafe { core::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len).drop_in_place() };
    }
}

impl<T> Deref for FrameSlice<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialised values owned by us.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> DerefMut for FrameSlice<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as above, borrowed mutably through `&mut self`.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: fmt::Debug> fmt::Debug for FrameSlice<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// The calling thread's frame arena of the `SmartAlloc` that `chunk`'s arena belongs to: a
/// handle's way to allocate a clone of itself. `what` names the call in misuse panics.
///
/// # Panics
/// With FA701 while a task is polled (frame allocation there is refused as everywhere), and
/// during this thread's teardown once its frame arena is gone.
///
/// # Safety
/// `chunk` is live (the caller holds a count on it).
#[track_caller]
unsafe fn arena_of(chunk: NonNull<FrameChunk>, what: &str) -> Rc<FrameArena> {
    if crate::identity::in_task() {
        panic!(
            "FA701: frame allocation in async function: `{what}` was called while a task is being polled. \
             Frame memory belongs to the main loop; inside tasks use TaskAlloc or pool_* instead."
        );
    }
    // SAFETY: live per the caller.
    let shared = unsafe { chunk.as_ref() }.shared();
    // The handle borrowed for `'a` by the box keeps the `SmartAlloc` alive.
    let handle = crate::place::handle_of(shared).expect("a frame handle's SmartAlloc is alive");
    match crate::place::thread::entry(&handle) {
        // SAFETY: the entry lives while `handle` does, and this thread is not tearing down
        // (`entry` returned it); the arena is cloned out before either can end.
        Some(e) => unsafe { (*e.as_ptr()).frame.clone() },
        None => panic!("framealloc: `{what}` called while this thread is shutting down (its frame arena is gone)"),
    }
}

impl<'a, T: Clone> FrameBox<'a, T> {
    /// A clone of the value in the *current* frame of this thread's arena (the frame open now,
    /// which may be a later one than the original's), counted there like a
    /// [`frame_box`](crate::SmartAlloc::frame_box).
    ///
    /// # Errors
    /// The frame or total budget would be exceeded, or the system allocator refused a chunk;
    /// `T::clone` is not called then.
    ///
    /// # Panics
    /// If `T::clone` panics (the block is given back first); with FA701 while a task is polled;
    /// in a thread-local destructor after this thread's frame arena is gone.
    #[track_caller]
    pub fn try_clone(&self) -> Result<Self, AllocError> {
        let (ptr, chunk) = match self.chunk {
            // Only a zero-sized value has no chunk: nothing to allocate.
            None => (NonNull::dangling(), None),
            Some(c) => {
                // SAFETY: we hold a count on our chunk.
                let arena = unsafe { arena_of(c, "FrameBox::clone") };
                let (p, chunk) = arena.alloc_counted(Layout::new::<T>())?;
                (p.cast::<T>(), chunk)
            }
        };
        // SAFETY: runs only if `clone` unwinds: the count taken for the clone goes back once.
        let unwind = crate::defer::Defer::new(|| unsafe { release::<T>(chunk, 1) });
        // SAFETY: a fresh block for a `T` (dangling and aligned for a zero-sized `T`).
        unsafe { ptr.as_ptr().write(T::clone(self)) };
        core::mem::forget(unwind);
        // SAFETY: initialised, and counted in `chunk` for this handle.
        Ok(unsafe { Self::from_raw(ptr, chunk) })
    }
}

/// Clones into the current frame (see [`try_clone`](FrameBox::try_clone)): sound in a later
/// frame too, the original's chunk staying quarantined while it lives.
impl<T: Clone> Clone for FrameBox<'_, T> {
    /// # Panics
    /// As [`try_clone`](FrameBox::try_clone), and if the frame cannot hold the clone.
    #[track_caller]
    fn clone(&self) -> Self {
        match self.try_clone() {
            Ok(b) => b,
            Err(e) => crate::error::fail(e),
        }
    }
}

impl<'a, T: Clone> FrameSlice<'a, T> {
    /// A clone of the elements in the current frame of this thread's arena, as
    /// [`FrameBox::try_clone`] does.
    ///
    /// # Errors
    /// The frame or total budget would be exceeded, or the system allocator refused a chunk;
    /// no `clone` is called then.
    ///
    /// # Panics
    /// If a `clone` panics (the clones made so far are dropped and the block given back);
    /// with FA701 while a task is polled; in a thread-local destructor after this thread's
    /// frame arena is gone.
    #[track_caller]
    pub fn try_clone(&self) -> Result<Self, AllocError> {
        /// The clones made so far, dropped (and the count given back) if one panics.
        struct Partial<T> {
            ptr: NonNull<T>,
            done: usize,
            len: usize,
            chunk: Option<NonNull<FrameChunk>>,
        }
        impl<T> Drop for Partial<T> {
            fn drop(&mut self) {
                // SAFETY: the first `done` slots are initialised and ours; the count is ours.
                unsafe {
                    core::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.done).drop_in_place();
                    release::<T>(self.chunk, self.len);
                }
            }
        }
        let (ptr, chunk) = match self.chunk {
            // No chunk: the elements take no memory.
            None => (NonNull::dangling(), None),
            Some(c) => {
                // The original's layout did not overflow, so this one does not.
                let layout = Layout::array::<T>(self.len).map_err(|_| AllocError::capacity_overflow())?;
                // SAFETY: we hold a count on our chunk.
                let arena = unsafe { arena_of(c, "FrameSlice::clone") };
                let (p, chunk) = arena.alloc_counted(layout)?;
                (p.cast::<T>(), chunk)
            }
        };
        let mut partial = Partial { ptr, done: 0, len: self.len, chunk };
        for v in self.iter() {
            // SAFETY: slot `done < len` of the fresh block (or a zero-sized slot).
            unsafe { ptr.as_ptr().add(partial.done).write(v.clone()) };
            partial.done += 1;
        }
        core::mem::forget(partial);
        // SAFETY: all `len` slots initialised; the count in `chunk` is this handle's.
        Ok(unsafe { Self::from_raw(ptr, self.len, chunk) })
    }
}

/// Clones into the current frame (see [`try_clone`](FrameSlice::try_clone)).
impl<T: Clone> Clone for FrameSlice<'_, T> {
    /// # Panics
    /// As [`try_clone`](FrameSlice::try_clone), and if the frame cannot hold the clone.
    #[track_caller]
    fn clone(&self) -> Self {
        match self.try_clone() {
            Ok(b) => b,
            Err(e) => crate::error::fail(e),
        }
    }
}
