//! [`FrameBox`] and [`FrameSlice`]: frame values that drop their contents and keep their chunk
//! out of reuse while alive.

use super::chunk::FrameChunk;
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

/// Makes a frame handle `!Send` and `!Sync`: its chunk's counters are plain cells of the
/// arena's thread.
pub(crate) type NotSend = PhantomData<*mut ()>;

/// A value in the calling thread's frame arena.
///
/// Valid until dropped, even past `end_frame` and the next `begin_frame` (its chunk is then
/// quarantined until it drops). `!Send`: frame data never crosses threads or await points of a
/// spawned task (FA603):
///
/// ```compile_fail,E0277
/// let alloc = framealloc_alloc::SmartAlloc::new(Default::default());
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
/// let alloc = framealloc_alloc::SmartAlloc::new(Default::default());
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
