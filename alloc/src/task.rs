//! [`TaskAlloc`] and the handles it gives out, [`TaskBox`] and [`TaskVec`].
//!
//! Inside a task with a heap of its own (framealloc's runtime, `framealloc::tokio::spawn`), a
//! `TaskAlloc` uses the task's heap, as DESIGN.md says, and holds one counted handle on it,
//! like a `PoolBox`: the heap outlives the task while the `TaskAlloc` does (it is `'static` and
//! `Send`, so it can leave the task). Elsewhere (a plain thread, a plain `tokio::spawn` task) it
//! owns a heap of its own, returned whole, in O(chunks), when it drops.
//!
//! The heap's owner is whoever was running when it was made (the task, or the thread); the
//! owner allocates and frees without atomics, anyone else it is shared with (`&TaskAlloc`
//! across scoped threads, a `TaskBox` dropped elsewhere) takes the locked or lock-free slow
//! path. Handles borrow the `TaskAlloc`, so none outlives it.

use crate::error::{fail, AllocError};
use crate::heap::{placed, HeapCore};
use crate::identity;
use crate::place::{self, AllocHandle};
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use std::alloc::Layout;

pub use crate::vec::task::TaskVec;

/// Task-scoped allocator: every allocation is freed when it drops, and all at once when the
/// `TaskAlloc` drops.
///
/// `Send + Sync` and without a lifetime: create it at the start of a task and keep it for the
/// whole task, across `.await`s and thread moves.
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; }
/// use framealloc::{SmartAlloc, TaskAlloc};
/// let alloc = SmartAlloc::new(Default::default());
/// let task = TaskAlloc::new(&alloc);
/// let mut names = task.alloc_vec::<&str>();
/// names.push("ada");
/// let n = task.alloc_box(names.len());
/// assert_eq!(*n, 1);
/// drop((names, n));
/// assert_eq!(alloc.stats().task.live_bytes, 0);
/// ```
///
/// There is no frame memory here:
///
/// ```compile_fail,E0599
/// # mod framealloc { pub use framealloc_alloc::*; }
/// let alloc = framealloc::SmartAlloc::new(Default::default());
/// let task = framealloc::TaskAlloc::new(&alloc);
/// let x = task.frame_alloc::<u8>();
/// ```
///
/// Handles cannot outlive their `TaskAlloc`:
///
/// ```compile_fail,E0597
/// # mod framealloc { pub use framealloc_alloc::*; }
/// let alloc = framealloc::SmartAlloc::new(Default::default());
/// let b;
/// {
///     let task = framealloc::TaskAlloc::new(&alloc);
///     b = task.alloc_box(1u32);
/// }
/// assert_eq!(*b, 1);
/// ```
///
/// With the `TaskAlloc` living long enough, the same compiles:
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; }
/// let alloc = framealloc::SmartAlloc::new(Default::default());
/// let task = framealloc::TaskAlloc::new(&alloc);
/// let b;
/// {
///     b = task.alloc_box(1u32);
/// }
/// assert_eq!(*b, 1);
/// ```
pub struct TaskAlloc {
    heap: NonNull<HeapCore>,
    /// `heap` is the running task's, on which this holds one counted handle (not a heap of
    /// its own).
    task_heap: bool,
}

// SAFETY: the heap is `Send + Sync` (identity-checked fast path, locks and atomics otherwise),
// and `TaskAlloc` holds nothing else.
unsafe impl Send for TaskAlloc {}
// SAFETY: as above: every `&self` method is safe to call from several threads at once.
unsafe impl Sync for TaskAlloc {}

impl TaskAlloc {
    // `TaskAlloc::new(&SmartAlloc)` is written in `smart.rs`, with the front door it takes.

    /// [`TaskAlloc::new`] for `handle`'s `SmartAlloc`.
    #[inline]
    pub(crate) fn in_handle(handle: &AllocHandle) -> Self {
        if let Some(heap) = place::slot_heap(handle) {
            // SAFETY: a slot heap is owned by the running task (the caller), which keeps it
            // alive; the handle counted here keeps it alive after the task, until `drop`.
            unsafe { heap.as_ref().retain_handle_owned() };
            return Self { heap, task_heap: true };
        }
        Self::own_heap(handle)
    }

    #[cold]
    fn own_heap(handle: &AllocHandle) -> Self {
        Self { heap: place::obtain_task_heap(handle, identity::current()), task_heap: false }
    }

    #[inline]
    pub(crate) fn heap(&self) -> &HeapCore {
        // SAFETY: the heap lives until `drop` releases it (or our handle on it).
        unsafe { self.heap.as_ref() }
    }

    /// Moves `value` into the heap (dropping it if that fails).
    ///
    /// # Errors
    /// The task heap or total budget would be exceeded, or the system allocator refused
    /// memory (see [`AllocError`]).
    #[inline]
    pub fn try_alloc_box<T>(&self, value: T) -> Result<TaskBox<'_, T>, AllocError> {
        let ptr = allocate_box::<T>(self.heap())?;
        // SAFETY: `ptr` is valid for a `T` (fresh block, or dangling for a zero-sized `T`).
        unsafe { ptr.as_ptr().write(value) };
        Ok(TaskBox { ptr, _owns: PhantomData })
    }

    /// Moves `value` into the heap.
    ///
    /// # Panics
    /// If the task heap or total budget is exceeded or the system allocator refuses memory
    /// ([`try_alloc_box`](Self::try_alloc_box) returns the error instead).
    #[inline]
    #[track_caller]
    pub fn alloc_box<T>(&self, value: T) -> TaskBox<'_, T> {
        // Allocate first and write once: the value is not moved through a `Result`.
        let ptr = match allocate_box::<T>(self.heap()) {
            Ok(p) => p,
            Err(e) => fail(e),
        };
        // SAFETY: `ptr` is valid for a `T` (fresh block, or dangling for a zero-sized `T`).
        unsafe { ptr.as_ptr().write(value) };
        TaskBox { ptr, _owns: PhantomData }
    }

    /// Allocates first, then stores `f()` straight into the block: no copy of a large value
    /// through the stack (like bumpalo's `alloc_with`).
    ///
    /// # Panics
    /// If `f` panics (the block is freed first), or as [`alloc_box`](Self::alloc_box) does
    /// ([`try_alloc_with`](Self::try_alloc_with) returns the error instead).
    #[inline]
    #[track_caller]
    pub fn alloc_with<T>(&self, f: impl FnOnce() -> T) -> TaskBox<'_, T> {
        let ptr = match allocate_box::<T>(self.heap()) {
            Ok(p) => p,
            Err(e) => fail(e),
        };
        // SAFETY: a fresh block of this heap for a `T`.
        unsafe { fill_with(ptr, f) }
    }

    /// Allocates first, then stores `f()` straight into the block, as
    /// [`alloc_with`](Self::alloc_with) does.
    ///
    /// # Errors
    /// As [`try_alloc_box`](Self::try_alloc_box); `f` is not called then.
    ///
    /// # Panics
    /// If `f` panics (the block is freed first).
    #[inline]
    pub fn try_alloc_with<T>(&self, f: impl FnOnce() -> T) -> Result<TaskBox<'_, T>, AllocError> {
        let ptr = allocate_box::<T>(self.heap())?;
        // SAFETY: a fresh block of this heap for a `T`.
        Ok(unsafe { fill_with(ptr, f) })
    }

    /// An empty vector in the heap; it allocates when it grows.
    #[inline]
    pub fn alloc_vec<T>(&self) -> TaskVec<'_, T> {
        TaskVec::new_in(self.heap())
    }

    /// A vector with room for exactly `capacity` elements (no buffer for 0, like
    /// `Vec::with_capacity`).
    ///
    /// # Panics
    /// If a budget is exceeded, the system allocator refuses memory, or the size overflows
    /// ([`try_alloc_vec_with_capacity`](Self::try_alloc_vec_with_capacity) returns the error
    /// instead).
    #[inline]
    #[track_caller]
    pub fn alloc_vec_with_capacity<T>(&self, capacity: usize) -> TaskVec<'_, T> {
        match TaskVec::with_capacity_in(self.heap(), capacity) {
            Ok(v) => v,
            Err(e) => fail(e),
        }
    }

    /// A vector with room for exactly `capacity` elements (no buffer for 0).
    ///
    /// # Errors
    /// A budget would be exceeded, the system allocator refused memory, or the size
    /// overflows.
    #[inline]
    pub fn try_alloc_vec_with_capacity<T>(&self, capacity: usize) -> Result<TaskVec<'_, T>, AllocError> {
        TaskVec::with_capacity_in(self.heap(), capacity)
    }

    /// A vector in the heap holding the items of `iter`.
    ///
    /// # Panics
    /// If a budget is exceeded, the system allocator refuses memory, or the size overflows.
    #[track_caller]
    pub fn alloc_vec_from_iter<T>(&self, iter: impl IntoIterator<Item = T>) -> TaskVec<'_, T> {
        let mut v = self.alloc_vec();
        v.extend(iter);
        v
    }

    /// Bytes of this heap's live allocations. Inside a task with a heap of its own that is
    /// the task's heap, so the task's `pool_*` allocations count too.
    pub fn live_bytes(&self) -> u64 {
        self.heap().counters().live()
    }
}

impl Drop for TaskAlloc {
    fn drop(&mut self) {
        if self.task_heap {
            // SAFETY: the heap is live (our counted handle keeps it) and we held that one
            // handle, given back once here.
            unsafe { HeapCore::release_handle(self.heap) };
            return;
        }
        // SAFETY: `&mut self`: every `TaskBox`/`TaskVec` borrowed `self` and is gone (threads
        // that dropped one were joined for the borrow to end), and no escapable handle is ever
        // made from a heap of a `TaskAlloc`'s own, so nothing else can touch the heap now.
        unsafe { place::release(self.heap) };
    }
}

impl fmt::Debug for TaskAlloc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskAlloc").field("live_bytes", &self.live_bytes()).finish()
    }
}

/// A value in a [`TaskAlloc`]'s heap; freed when dropped.
///
/// One pointer, like a `Box` (`size_of::<TaskBox<T>>() == size_of::<usize>()`): the heap is
/// found from the value's address when it is freed or cloned, and the borrow of the
/// `TaskAlloc` keeps that heap alive meanwhile.
///
/// Compares, hashes, borrows and formats as its value does, like `Box`; clones go to the same
/// heap ([`try_clone`](Self::try_clone)).
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; }
/// let alloc = framealloc::SmartAlloc::default();
/// let task = framealloc::TaskAlloc::new(&alloc);
/// let b = task.alloc_box([7u8; 64]);
/// assert_eq!(std::mem::size_of_val(&b), std::mem::size_of::<usize>());
/// assert_eq!(b[63], 7);
/// ```
pub struct TaskBox<'a, T> {
    ptr: NonNull<T>,
    /// Owns a `T`; borrows the `TaskAlloc` whose heap holds it.
    _owns: PhantomData<(T, &'a HeapCore)>,
}

/// A block for a `T` in `heap` that [`free_box`] finds the heap of again: a size-class block
/// (its granule names the heap) or, for a layout no heap serves from a class, a framed one
/// (see `heap::placed`). Dangling for a zero-sized `T`.
#[inline(always)]
fn allocate_box<T>(heap: &HeapCore) -> Result<NonNull<T>, AllocError> {
    let layout = Layout::new::<T>();
    if placed::in_class(layout) {
        heap.allocate_typed::<T>()
    } else {
        placed::allocate(NonNull::from(heap), layout).map(NonNull::cast)
    }
}

/// Frees a block from [`allocate_box`], found in its heap by its address.
///
/// # Safety
/// `ptr` came from `allocate_box::<T>`, is not used again, and its heap is alive (the box's
/// borrow of the `TaskAlloc` keeps it).
#[inline(always)]
unsafe fn free_box<T>(ptr: NonNull<T>) {
    let layout = Layout::new::<T>();
    if layout.size() == 0 {
        return; // dangling: no block, no heap
    }
    // SAFETY: per the caller; `heap_of` reads what `allocate_box` placed (a class block's
    // granule, or a framed block's prefix) for the same layout.
    unsafe {
        let heap = placed::heap_of(ptr.cast(), layout);
        if placed::in_class(layout) {
            heap.as_ref().deallocate_typed(ptr);
        } else {
            placed::deallocate(heap, ptr.cast(), layout);
        }
    }
}

/// Stores `f()` in `ptr` and boxes it; frees the block if `f` unwinds.
///
/// # Safety
/// `ptr` comes from `allocate_box::<T>()` on a heap that lives for `'a`, and is not used by
/// anything else.
#[inline(always)]
unsafe fn fill_with<'a, T>(ptr: NonNull<T>, f: impl FnOnce() -> T) -> TaskBox<'a, T> {
    // SAFETY: the block is unused until `f` returns; freed once if `f` unwinds.
    let unwind = crate::defer::Defer::new(|| unsafe { free_box(ptr) });
    // SAFETY: `ptr` is valid for a `T` (caller).
    unsafe { ptr.as_ptr().write(f()) };
    core::mem::forget(unwind);
    TaskBox { ptr, _owns: PhantomData }
}

// SAFETY: owns a `T` like `Box<T>`; its heap (found from the block, borrowed through the
// `TaskAlloc`) is `Sync`, and frees from any thread are handled by the heap's protocol.
unsafe impl<T: Send> Send for TaskBox<'_, T> {}
// SAFETY: `&TaskBox<T>` only gives `&T`.
unsafe impl<T: Sync> Sync for TaskBox<'_, T> {}

impl<'a, T> TaskBox<'a, T> {
    /// Moves the value out, freeing its block.
    pub fn into_inner(this: Self) -> T {
        let this = ManuallyDrop::new(this);
        // SAFETY: the value is initialised and read once; the block is freed right after and
        // `this` is not dropped.
        unsafe {
            let v = this.ptr.as_ptr().read();
            free_box(this.ptr);
            v
        }
    }
}

impl<T> Drop for TaskBox<'_, T> {
    #[inline]
    fn drop(&mut self) {
        let ptr = self.ptr;
        if !core::mem::needs_drop::<T>() {
            // SAFETY: nothing to drop; the block is freed once.
            return unsafe { free_box(ptr) };
        }
        // SAFETY: we own the block; freed once, even if `T::drop` panics.
        let _free = crate::defer::Defer::new(|| unsafe { free_box(ptr) });
        // SAFETY: we own the initialised value; dropped once.
        unsafe { self.ptr.as_ptr().drop_in_place() };
    }
}

impl<T> Deref for TaskBox<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: initialised and owned by us.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for TaskBox<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: initialised and owned by us, borrowed mutably through `&mut self`.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: fmt::Debug> fmt::Debug for TaskBox<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<'a, T: Clone> TaskBox<'a, T> {
    /// A clone of the value in the same `TaskAlloc`'s heap (from any thread, as
    /// [`TaskAlloc::alloc_box`] allows).
    ///
    /// # Errors
    /// As [`TaskAlloc::try_alloc_box`]; `T::clone` is not called then.
    ///
    /// # Panics
    /// If `T::clone` panics (the block is freed first).
    pub fn try_clone(&self) -> Result<Self, AllocError> {
        let layout = Layout::new::<T>();
        let ptr = if layout.size() == 0 {
            NonNull::dangling()
        } else {
            // SAFETY: our block came from `allocate_box::<T>` (so `heap_of` finds its heap) and
            // is live; the borrow of the `TaskAlloc` keeps the heap alive for `'a`.
            allocate_box::<T>(unsafe { placed::heap_of(self.ptr.cast(), layout).as_ref() })?
        };
        // SAFETY: a fresh block from `allocate_box` on a heap that lives for `'a`, unused.
        Ok(unsafe { fill_with(ptr, || T::clone(self)) })
    }
}

/// Clones into the same `TaskAlloc`'s heap, counted there like any allocation.
impl<T: Clone> Clone for TaskBox<'_, T> {
    /// # Panics
    /// If the heap cannot hold the clone ([`try_clone`](TaskBox::try_clone) returns the error
    /// instead), or if `T::clone` panics.
    #[track_caller]
    fn clone(&self) -> Self {
        match self.try_clone() {
            Ok(b) => b,
            Err(e) => fail(e),
        }
    }
}
