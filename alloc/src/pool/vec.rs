//! [`PoolVec`]: a growable vector from a pool or the current task's heap.
//!
//! Three words, like `Vec`: the heap is chosen when the vector is made (where `pool_vec` was
//! called) and found again from the buffer's address (see [`placed`]); while the vector has
//! no buffer, the pointer word holds the heap itself. The vector holds one counted handle on
//! its heap from creation to drop, so every buffer it grows into comes from that heap, which
//! outlives it wherever it goes.
//!
//! # New vectors stay in registers
//!
//! The out-of-line slow paths (making a vector off the class fast path, growing it in `push`)
//! take and return the vector's words by value, never the vector itself through memory or
//! `&mut self`. A vector whose address reaches a call, or that a slow path returns through
//! memory, lives in a stack slot: the fast path then stores its words there one by one, and the
//! next move reads them back as one 16-byte value, which the CPU cannot forward from the two
//! pending stores. That stall (a dozen cycles or more) cost more than the whole allocation:
//! making 64 buffers with `pool_vec_with_capacity` in a task took 330 ns, now 120.

use crate::error::{fail, AllocError};
use crate::heap::class::class_of;
use crate::heap::placed;
use crate::heap::HeapCore;
use crate::place::{cached_slot_heap, guard, owned_thread_pool, target, task, AllocHandle};
use crate::vec::RawVec;
use core::marker::PhantomData;
use core::mem::{self, ManuallyDrop};
use core::ptr::{self, NonNull};
use std::alloc::Layout;
use std::sync::Arc;

/// A growable vector from a pool (or the current task's heap). Frees itself when dropped, on
/// any thread.
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; }
/// # let alloc = framealloc::SmartAlloc::default();
/// let mut v = alloc.pool_vec::<u32>();
/// v.extend([1, 2, 3]);
/// v.push(4);
/// assert_eq!(v.iter().sum::<u32>(), 10);
/// assert_eq!(std::mem::size_of_val(&v), 3 * std::mem::size_of::<usize>());
/// ```
pub struct PoolVec<T> {
    /// `cap > 0`: the buffer. `cap == 0`: the heap (a `T` with a size), or dangling.
    ptr: NonNull<u8>,
    cap: usize,
    len: usize,
    _owns: PhantomData<T>,
}

// SAFETY: owns its elements like `Vec<T>`; the heap handle is counted and frees from any
// thread are handled by the heap's protocol.
unsafe impl<T: Send> Send for PoolVec<T> {}
// SAFETY: `&PoolVec<T>` only gives `&[T]`.
unsafe impl<T: Sync> Sync for PoolVec<T> {}

const fn is_zst<T>() -> bool {
    mem::size_of::<T>() == 0
}

impl<T> PoolVec<T> {
    /// An empty vector on the current target heap of `handle` (no heap for a zero-sized `T`:
    /// it never allocates).
    #[inline(always)]
    pub(crate) fn new_in(handle: &Arc<AllocHandle>) -> Self {
        if is_zst::<T>() {
            return Self { ptr: NonNull::dangling(), cap: usize::MAX, len: 0, _owns: PhantomData };
        }
        Self { ptr: target(handle).cast(), cap: 0, len: 0, _owns: PhantomData }
    }

    /// A vector with room for exactly `capacity` elements (none for 0, like
    /// `Vec::with_capacity`), on the current target heap of `handle`, or the error.
    #[inline(always)]
    pub(crate) fn with_capacity_in(handle: &Arc<AllocHandle>, capacity: usize) -> Result<Self, AllocError> {
        match Self::with_capacity_fast(handle, capacity) {
            Some(ptr) => Ok(Self { ptr, cap: capacity, len: 0, _owns: PhantomData }),
            None => Self::with_capacity_slow(handle, capacity),
        }
    }

    /// [`with_capacity_in`](Self::with_capacity_in) that panics with the error.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn with_capacity_or_fail(handle: &Arc<AllocHandle>, capacity: usize) -> Self {
        // Both paths give the words in registers (see the module docs).
        let (ptr, cap) = match Self::with_capacity_fast(handle, capacity) {
            Some(ptr) => (ptr, capacity),
            None => Self::with_capacity_slow_or_fail(handle, capacity),
        };
        Self { ptr, cap, len: 0, _owns: PhantomData }
    }

    /// Inside a task of ours, a buffer every heap serves from a size class comes straight from
    /// the task heap's class fast path: one slot lookup and one ownership decision for both
    /// the handle and the buffer: the buffer of exactly `capacity` elements, with one handle
    /// counted for the vector the caller builds. `None` (nothing done) otherwise.
    #[inline(always)]
    fn with_capacity_fast(handle: &Arc<AllocHandle>, capacity: usize) -> Option<NonNull<u8>> {
        // SAFETY: a slot heap is owned by the running task (us) and kept alive by it.
        unsafe { Self::class_block(capacity, || cached_slot_heap(handle)) }
    }

    /// A buffer of exactly `capacity` elements from the class fast path of the heap `owned`
    /// finds, with one handle counted for the vector the caller builds, if the buffer fits a
    /// size class every heap serves. `None` (nothing done) otherwise.
    ///
    /// # Safety
    /// A heap `owned` returns is alive and owned by the caller for this call.
    #[inline(always)]
    unsafe fn class_block(capacity: usize, owned: impl FnOnce() -> Option<NonNull<HeapCore>>) -> Option<NonNull<u8>> {
        if is_zst::<T>() || capacity == 0 {
            return None;
        }
        let layout = Layout::array::<T>(capacity).ok()?;
        if !placed::in_class(layout) {
            return None;
        }
        let heap = owned()?;
        // An in-class block of `layout`, so `heap_of` finds its heap again.
        // SAFETY: alive and ours (caller); the class is the layout's.
        unsafe { heap.as_ref().try_alloc_handle_owned_class(class_of(layout.size()), layout.size()) }
    }

    /// [`with_capacity_in`](Self::with_capacity_in) off the task heap's class fast path.
    #[cold]
    #[inline(never)]
    fn with_capacity_slow(handle: &Arc<AllocHandle>, capacity: usize) -> Result<Self, AllocError> {
        // A plain thread or a plain tokio task with this thread's pool at hand: its class
        // fast path, without the general path's lookups.
        // SAFETY: `owned_thread_pool` returns a live pool that we own.
        if let Some(ptr) = unsafe { Self::class_block(capacity, || owned_thread_pool(handle)) } {
            return Ok(Self { ptr, cap: capacity, len: 0, _owns: PhantomData });
        }
        if capacity == 0 || is_zst::<T>() {
            return Ok(Self::new_in(handle)); // no buffer to make
        }
        // Exactly `capacity` (no minimum), like `Vec::with_capacity`.
        let layout = Layout::array::<T>(capacity).map_err(|_| AllocError::capacity_overflow())?;
        if task::with_slot(|slot| slot.is_none()) {
            // An open guard of ours allocates under its registry lock, handle and all.
            if let Some(block) = guard::registry_allocate(&handle.shared, layout) {
                return Ok(Self { ptr: block?, cap: capacity, len: 0, _owns: PhantomData });
            }
        }
        let mut v = Self::new_in(handle);
        v.ptr = placed::allocate(v.ptr.cast(), layout)?;
        v.cap = capacity;
        Ok(v)
    }

    /// [`with_capacity_slow`](Self::with_capacity_slow) that panics with the error, as the
    /// vector's pointer word and capacity (its length is 0; the caller rebuilds it, taking
    /// over its counted handle).
    #[cold]
    #[inline(never)]
    #[track_caller]
    fn with_capacity_slow_or_fail(handle: &Arc<AllocHandle>, capacity: usize) -> (NonNull<u8>, usize) {
        match Self::with_capacity_slow(handle, capacity) {
            Ok(v) => {
                let v = ManuallyDrop::new(v);
                (v.ptr, v.cap)
            }
            Err(e) => fail(e),
        }
    }

    /// The heap this vector allocates from (`T` has a size).
    #[inline(always)]
    fn heap(&self) -> NonNull<HeapCore> {
        debug_assert!(!is_zst::<T>());
        if self.cap == 0 {
            self.ptr.cast()
        } else {
            // SAFETY: a buffer of `cap` elements from `placed::allocate` with this layout.
            unsafe { placed::heap_of(self.ptr, Self::layout(self.cap)) }
        }
    }

    /// The layout of a buffer of `cap` elements (it was checked when the buffer was made).
    #[inline(always)]
    fn layout(cap: usize) -> Layout {
        // SAFETY: `cap` elements fit a layout: checked by `grow` before any buffer exists.
        unsafe { Layout::from_size_align_unchecked(cap * mem::size_of::<T>(), mem::align_of::<T>()) }
    }

    /// Where the elements are. With no buffer, the pointer word (the heap) serves as the
    /// empty slice's pointer whenever the heap's alignment suffices for `T`, so that reads
    /// and `push` need no branch: a slice of no elements only needs a non-null, aligned
    /// pointer, and no element is read or written through it (`len` stays 0 until a buffer
    /// exists). Zero-sized `T`s (whose pointer word is not aligned for them) get `T`'s own
    /// dangling pointer; both tests are decided at compile time.
    #[inline(always)]
    fn data(&self) -> *mut T {
        if is_zst::<T>() || (mem::align_of::<T>() > mem::align_of::<HeapCore>() && self.cap == 0) {
            NonNull::<T>::dangling().as_ptr()
        } else {
            self.ptr.as_ptr().cast()
        }
    }

    /// A new buffer for at least `len + additional` elements (exactly that for the first
    /// buffer, at least double the old capacity after), the elements moved over.
    #[inline(always)]
    fn grow(&mut self, additional: usize) -> Result<(), AllocError> {
        if self.cap == 0 && !is_zst::<T>() {
            // The first buffer (the usual case for short-lived buffers), inline.
            let cap = additional.max(crate::vec::min_capacity::<T>());
            let layout = Layout::array::<T>(cap).map_err(|_| AllocError::capacity_overflow())?;
            self.ptr = placed::allocate(self.ptr.cast(), layout)?;
            self.cap = cap;
            return Ok(());
        }
        self.grow_buffer(additional)
    }

    /// Growth of a vector that has a buffer (or of a zero-sized `T`, which overflows).
    #[cold]
    #[inline(never)]
    fn grow_buffer(&mut self, additional: usize) -> Result<(), AllocError> {
        let cap = crate::vec::grown_capacity(self.len, self.cap, additional)?;
        let layout = Layout::array::<T>(cap).map_err(|_| AllocError::capacity_overflow())?;
        let heap = self.heap();
        let new = placed::allocate(heap, layout)?;
        // SAFETY: `new` is a fresh buffer for `cap > len` elements on `heap`.
        unsafe { self.move_to(heap, new) };
        self.ptr = new;
        self.cap = cap;
        Ok(())
    }

    /// Moves the elements to `new` and frees the old buffer.
    ///
    /// # Safety
    /// `new` is a fresh buffer on `heap` (this vector's) with room for `len` elements, and
    /// the vector has a buffer.
    unsafe fn move_to(&mut self, heap: NonNull<HeapCore>, new: NonNull<u8>) {
        // SAFETY: the old buffer holds `len` initialised elements and does not overlap the
        // fresh one; it is freed once, with its layout, on its (live) heap.
        unsafe {
            ptr::copy_nonoverlapping(self.ptr.as_ptr().cast::<T>(), new.as_ptr().cast::<T>(), self.len);
            placed::deallocate(heap, self.ptr, Self::layout(self.cap));
        }
    }

    /// Room for one more element for [`push`](Self::push): the new buffer and capacity of the
    /// vector with these parts, or the panic (the vector, still the caller's, unchanged).
    #[cold]
    #[inline(never)]
    #[track_caller]
    fn grow_one(ptr: NonNull<u8>, cap: usize, len: usize) -> (NonNull<u8>, usize) {
        // Borrowed parts: on success the old buffer was freed and the caller takes the new
        // one; on failure nothing changed and the caller still owns its buffer.
        let mut v = ManuallyDrop::new(Self { ptr, cap, len, _owns: PhantomData });
        if let Err(e) = v.grow(1) {
            fail(e)
        }
        (v.ptr, v.cap)
    }

    /// The heap a copy of this vector goes to, with one handle counted for the copy.
    #[inline]
    fn retain_heap(&self) -> NonNull<HeapCore> {
        let heap = self.heap();
        // SAFETY: our own counted handle keeps the heap alive during the call.
        unsafe { heap.as_ref().retain_handle() };
        heap
    }

    crate::vec::vec_methods!();
}

// SAFETY: `data()` is non-null and aligned for `T` (see there), the buffer of `cap` elements
// when `cap > 0`; `len <= cap` elements initialised; only the growing methods move the
// buffer.
unsafe impl<T> RawVec for PoolVec<T> {
    type Elem = T;

    #[inline(always)]
    fn raw_ptr(&self) -> *mut T {
        self.data()
    }

    crate::vec::raw_len_cap!();

    #[inline(always)]
    fn raw_try_reserve(&mut self, additional: usize) -> Result<(), AllocError> {
        if self.cap.wrapping_sub(self.len) >= additional {
            return Ok(());
        }
        self.grow(additional)
    }

    #[inline(always)]
    #[track_caller]
    fn raw_grow_one(&mut self) {
        // By value, not `&mut self` (see the module docs).
        (self.ptr, self.cap) = Self::grow_one(self.ptr, self.cap, self.len);
    }

    fn raw_empty_like(&self, capacity: usize) -> Result<Self, AllocError> {
        if is_zst::<T>() {
            return Ok(Self { ptr: NonNull::dangling(), cap: usize::MAX, len: 0, _owns: PhantomData });
        }
        // The copy holds its own handle on the same heap from here on (released by its drop
        // also if the allocation fails).
        let mut v = Self { ptr: self.retain_heap().cast(), cap: 0, len: 0, _owns: PhantomData };
        if capacity != 0 {
            // Exactly `capacity`, like `Vec::clone`.
            let layout = Layout::array::<T>(capacity).map_err(|_| AllocError::capacity_overflow())?;
            v.ptr = placed::allocate(v.ptr.cast(), layout)?;
            v.cap = capacity;
        }
        Ok(v)
    }
}

impl<T> Drop for PoolVec<T> {
    #[inline]
    fn drop(&mut self) {
        // Declared first, so it runs last: after the elements, even if one's drop panics.
        let _release = ReleaseTyped::<T> { ptr: self.ptr, cap: self.cap, _t: PhantomData };
        if mem::needs_drop::<T>() {
            // SAFETY: `len` initialised elements, dropped once.
            unsafe { ptr::drop_in_place(ptr::slice_from_raw_parts_mut(self.data(), self.len)) };
        }
    }
}

/// Frees a dropped vector's buffer and handle (also when an element's drop panicked).
struct ReleaseTyped<T> {
    ptr: NonNull<u8>,
    cap: usize,
    _t: PhantomData<T>,
}

impl<T> Drop for ReleaseTyped<T> {
    #[inline(always)]
    fn drop(&mut self) {
        if is_zst::<T>() {
            return;
        }
        // SAFETY: the vector is gone: its buffer (if any) and its counted handle are released
        // once; with no buffer, `ptr` is the heap the handle was counted on.
        unsafe {
            if self.cap == 0 {
                HeapCore::release_handle(self.ptr.cast());
            } else {
                placed::free_and_release(self.ptr, PoolVec::<T>::layout(self.cap));
            }
        }
    }
}

crate::vec::vec_traits!([T,] PoolVec<T>, [] PoolVec<u8>);
