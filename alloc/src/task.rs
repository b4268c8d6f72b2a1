//! [`TaskAlloc`] and the handles it gives out, [`TaskBox`] and [`TaskVec`].
//!
//! A `TaskAlloc` owns one heap. Its owner is whoever was running when it was created (a task,
//! or a thread outside any task); the owner allocates and frees without atomics, anyone else
//! it is shared with (`&TaskAlloc` across scoped threads, a `TaskBox` dropped elsewhere) takes
//! the locked or lock-free slow path. Handles borrow the `TaskAlloc`, so none outlives it, and
//! dropping it returns the whole heap in O(chunks).
//!
//! Deviation from DESIGN.md ("`TaskAlloc::new` inside a task uses the task's heap"): a
//! `TaskAlloc` always owns a heap of its own, also inside a task. That keeps its release
//! exclusive by construction (`drop` has `&mut self` and every handle borrows it), where a
//! shared heap would need a reference count between the task and each `TaskAlloc`. The cost is
//! the same: its chunks come from the same per-thread cache as the task heap's.

use crate::error::{fail, AllocError};
use crate::heap::HeapCore;
use crate::identity;
use crate::vec::{heap_allocate, heap_deallocate, heap_vec_methods};
use crate::SmartAlloc;
use allocator_api2::alloc::Allocator;
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use std::alloc::Layout;

/// Task-scoped allocator: every allocation is freed when it drops, and all at once when the
/// `TaskAlloc` drops.
///
/// `Send + Sync` and without a lifetime: create it at the start of a task and keep it for the
/// whole task, across `.await`s and thread moves.
///
/// ```
/// use framealloc_alloc::{SmartAlloc, TaskAlloc};
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
/// let alloc = framealloc_alloc::SmartAlloc::new(Default::default());
/// let task = framealloc_alloc::TaskAlloc::new(&alloc);
/// let x = task.frame_alloc::<u8>();
/// ```
///
/// Handles cannot outlive their `TaskAlloc`:
///
/// ```compile_fail,E0597
/// let alloc = framealloc_alloc::SmartAlloc::new(Default::default());
/// let b;
/// {
///     let task = framealloc_alloc::TaskAlloc::new(&alloc);
///     b = task.alloc_box(1u32);
/// }
/// assert_eq!(*b, 1);
/// ```
///
/// With the `TaskAlloc` living long enough, the same compiles:
///
/// ```
/// let alloc = framealloc_alloc::SmartAlloc::new(Default::default());
/// let task = framealloc_alloc::TaskAlloc::new(&alloc);
/// let b;
/// {
///     b = task.alloc_box(1u32);
/// }
/// assert_eq!(*b, 1);
/// ```
pub struct TaskAlloc {
    heap: NonNull<HeapCore>,
}

// SAFETY: the heap is `Send + Sync` (identity-checked fast path, locks and atomics otherwise),
// and `TaskAlloc` holds nothing else.
unsafe impl Send for TaskAlloc {}
// SAFETY: as above: every `&self` method is safe to call from several threads at once.
unsafe impl Sync for TaskAlloc {}

impl TaskAlloc {
    /// A new, empty heap owned by the current task (or thread). Costs no memory until the
    /// first allocation, which takes a chunk from the thread's cache.
    #[must_use = "the heap goes back when the `TaskAlloc` drops: bind it for the whole task"]
    pub fn new(alloc: &SmartAlloc) -> Self {
        Self { heap: HeapCore::obtain_task_heap(alloc.shared(), identity::current()) }
    }

    #[inline]
    fn heap(&self) -> &HeapCore {
        // SAFETY: the heap lives until `drop` releases it.
        unsafe { self.heap.as_ref() }
    }

    /// Moves `value` into the heap (dropping it if that fails).
    ///
    /// # Errors
    /// The task heap or total budget would be exceeded, or the system allocator refused
    /// memory (see [`AllocError`]).
    #[inline]
    pub fn try_alloc_box<T>(&self, value: T) -> Result<TaskBox<'_, T>, AllocError> {
        let ptr = self.heap().allocate_typed::<T>()?;
        // SAFETY: `ptr` is valid for a `T` (fresh block, or dangling for a zero-sized `T`).
        unsafe { ptr.as_ptr().write(value) };
        Ok(TaskBox { ptr, heap: self.heap(), _owns: PhantomData })
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
        let ptr = match self.heap().allocate_typed::<T>() {
            Ok(p) => p,
            Err(e) => fail(e),
        };
        // SAFETY: `ptr` is valid for a `T` (fresh block, or dangling for a zero-sized `T`).
        unsafe { ptr.as_ptr().write(value) };
        TaskBox { ptr, heap: self.heap(), _owns: PhantomData }
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
        let ptr = match self.heap().allocate_typed::<T>() {
            Ok(p) => p,
            Err(e) => fail(e),
        };
        // SAFETY: a fresh block of this heap for a `T`.
        unsafe { self.fill_with(ptr, f) }
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
        let ptr = self.heap().allocate_typed::<T>()?;
        // SAFETY: a fresh block of this heap for a `T`.
        Ok(unsafe { self.fill_with(ptr, f) })
    }

    /// Stores `f()` in `ptr` and boxes it; frees the block if `f` unwinds.
    ///
    /// # Safety
    /// `ptr` comes from this heap's `allocate_typed::<T>()` and is not used by anything else.
    #[inline(always)]
    unsafe fn fill_with<T>(&self, ptr: NonNull<T>, f: impl FnOnce() -> T) -> TaskBox<'_, T> {
        let heap = self.heap();
        // SAFETY: the block is unused until `f` returns; freed once if `f` unwinds.
        let unwind = crate::defer::Defer::new(|| unsafe { heap.deallocate_typed(ptr) });
        // SAFETY: `ptr` is valid for a `T` (caller).
        unsafe { ptr.as_ptr().write(f()) };
        core::mem::forget(unwind);
        TaskBox { ptr, heap, _owns: PhantomData }
    }

    /// An empty vector in the heap; it allocates when it grows.
    #[inline]
    pub fn alloc_vec<T>(&self) -> TaskVec<'_, T> {
        TaskVec { inner: allocator_api2::vec::Vec::new_in(TaskHeapRef(self.heap())) }
    }

    /// A vector with room for `capacity` elements.
    ///
    /// # Panics
    /// If a budget is exceeded, the system allocator refuses memory, or the size overflows
    /// ([`try_alloc_vec_with_capacity`](Self::try_alloc_vec_with_capacity) returns the error
    /// instead).
    #[inline]
    #[track_caller]
    pub fn alloc_vec_with_capacity<T>(&self, capacity: usize) -> TaskVec<'_, T> {
        let mut v = self.alloc_vec();
        v.reserve(capacity);
        v
    }

    /// A vector with room for `capacity` elements.
    ///
    /// # Errors
    /// A budget would be exceeded, the system allocator refused memory, or the size
    /// overflows.
    #[inline]
    pub fn try_alloc_vec_with_capacity<T>(&self, capacity: usize) -> Result<TaskVec<'_, T>, AllocError> {
        let mut v = self.alloc_vec();
        v.try_reserve(capacity)?;
        Ok(v)
    }

    /// Bytes of this heap's live allocations.
    pub fn live_bytes(&self) -> u64 {
        self.heap().counters().live()
    }
}

impl Drop for TaskAlloc {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: every `TaskBox`/`TaskVec` borrowed `self` and is gone (threads
        // that dropped one were joined for the borrow to end), and no escapable handle is ever
        // made from a `TaskAlloc` heap, so nothing else can touch the heap now.
        unsafe { HeapCore::release_owner(self.heap) };
    }
}

impl fmt::Debug for TaskAlloc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskAlloc").field("live_bytes", &self.live_bytes()).finish()
    }
}

/// A value in a [`TaskAlloc`]'s heap; freed when dropped.
pub struct TaskBox<'a, T> {
    ptr: NonNull<T>,
    heap: &'a HeapCore,
    _owns: PhantomData<T>,
}

// SAFETY: owns a `T` like `Box<T>`; the heap reference is `Sync` and frees from any thread are
// handled by the heap's protocol.
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
            this.heap.deallocate_typed(this.ptr);
            v
        }
    }
}

impl<T> Drop for TaskBox<'_, T> {
    #[inline]
    fn drop(&mut self) {
        let (heap, ptr) = (self.heap, self.ptr);
        if !core::mem::needs_drop::<T>() {
            // SAFETY: nothing to drop; the block is freed once.
            return unsafe { heap.deallocate_typed(ptr) };
        }
        // SAFETY: we own the block; freed once, even if `T::drop` panics.
        let _free = crate::defer::Defer::new(|| unsafe { heap.deallocate_typed(ptr) });
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

/// The `Allocator` over a borrowed task heap.
#[derive(Clone, Copy)]
pub(crate) struct TaskHeapRef<'a>(&'a HeapCore);

// SAFETY: blocks stay valid until deallocated or until the heap is released, which cannot
// happen while this borrow of its `TaskAlloc` lives.
unsafe impl Allocator for TaskHeapRef<'_> {
    // Always: left to itself the compiler may keep it out of line, which costs a `TaskVec`'s
    // first buffer about 40 instructions in spills and reloads.
    #[inline(always)]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        heap_allocate(self.0, layout)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { heap_deallocate(self.0, ptr, layout) }
    }
}

impl fmt::Debug for TaskHeapRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TaskHeapRef")
    }
}

/// A growable vector in a [`TaskAlloc`]'s heap.
pub struct TaskVec<'a, T> {
    inner: allocator_api2::vec::Vec<T, TaskHeapRef<'a>>,
}

impl<'a, T> TaskVec<'a, T> {
    heap_vec_methods!(inner);

    /// Moves the elements into a `std` `Vec` (this heap's buffer is freed).
    pub fn into_inner(self) -> Vec<T> {
        crate::vec::into_std(self.inner)
    }
}

impl<T> Deref for TaskVec<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.inner
    }
}

impl<T> DerefMut for TaskVec<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.inner
    }
}

impl<T> Extend<T> for TaskVec<'_, T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        let iter = iter.into_iter();
        self.reserve(iter.size_hint().0);
        for v in iter {
            self.push(v);
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for TaskVec<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
