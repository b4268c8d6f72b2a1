//! [`PoolBox`]: one value from a pool or the current task's heap.

use crate::error::AllocError;
use crate::heap::class::ClassOf;
use crate::heap::placed;
use crate::heap::HeapCore;
use crate::place::{cached_slot_heap, guard, owned_thread_pool, slot_heap, thread, AllocHandle};
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use std::alloc::Layout;
use std::sync::Arc;

/// An owned value from a pool (or the current task's heap). Frees itself when dropped, on
/// any thread.
///
/// One pointer, like a `Box` (`size_of::<PoolBox<T>>() == size_of::<usize>()`): the heap the
/// value belongs to is found from its address.
///
/// Compares, hashes, borrows and formats as its value does, like `Box`; clones go to the same
/// heap ([`try_clone`](Self::try_clone)). `T` is sized: the block's layout, and so its heap,
/// is found from `T` alone, where a `PoolBox<[T]>` or `PoolBox<str>` would need a fat pointer
/// and a run-time layout on every free; a [`PoolVec`](crate::PoolVec) holds a pooled slice.
pub struct PoolBox<T> {
    ptr: NonNull<T>,
    _owns: PhantomData<T>,
}

/// Values above this size are allocated by an out-of-line call (see `try_new_in`).
const BUILT_IN_PLACE: usize = 128;

// SAFETY: owns a `T` like `Box<T>`; the heap handle is counted and frees from any thread are
// handled by the heap's protocol.
unsafe impl<T: Send> Send for PoolBox<T> {}
// SAFETY: `&PoolBox<T>` only gives `&T`.
unsafe impl<T: Sync> Sync for PoolBox<T> {}

impl<T> PoolBox<T> {
    /// Moves `value` into a block of the current target heap. Inlined whole (the slow paths
    /// are out of line) so that the value is built in place.
    #[inline(always)]
    pub(crate) fn try_new_in(handle: &Arc<AllocHandle>, value: T) -> Result<Self, AllocError> {
        let ptr = if core::mem::size_of::<T>() == 0 {
            NonNull::dangling()
        } else if core::mem::size_of::<T>() > BUILT_IN_PLACE {
            // A call the compiler cannot see into: it then builds a large value right in the
            // block after the call, instead of on the stack first and copied over after.
            Self::allocate(handle)?
        } else {
            // The task's heap is looked up again on the slow path: no call here.
            let fast = cached_slot_heap(handle).and_then(|heap| {
                // SAFETY: a slot heap is owned by the running task (us) and kept alive by it.
                unsafe { heap.as_ref().try_alloc_handle_owned::<T>() }
            });
            if let Some(p) = fast {
                // Written on each path of its own, so that the compiler can build the value
                // right in the block on the fast one.
                // SAFETY: a fresh block sized and aligned for `T`.
                unsafe { p.as_ptr().write(value) };
                return Ok(Self { ptr: p, _owns: PhantomData });
            }
            Self::allocate_slow(handle)?
        };
        // SAFETY: a fresh block sized and aligned for `T` (a dangling, aligned pointer for a
        // zero-sized `T`, where writes are no-ops).
        unsafe { ptr.as_ptr().write(value) };
        Ok(Self { ptr, _owns: PhantomData })
    }

    /// A block for a (non-zero-sized) `T` with its handle counted, out of line.
    #[inline(never)]
    fn allocate(handle: &Arc<AllocHandle>) -> Result<NonNull<T>, AllocError> {
        let fast = cached_slot_heap(handle).and_then(|heap| {
            // SAFETY: a slot heap is owned by the running task (us) and kept alive by it.
            unsafe { heap.as_ref().try_alloc_handle_owned::<T>() }
        });
        match fast {
            Some(p) => Ok(p),
            None => Self::allocate_slow(handle),
        }
    }

    /// A block for a (non-zero-sized) `T` with its handle counted, when the owner's class fast
    /// path of the running task's heap could not serve it: a refill, a `T` without a class,
    /// or no task of ours.
    #[cold]
    #[inline(never)]
    fn allocate_slow(handle: &Arc<AllocHandle>) -> Result<NonNull<T>, AllocError> {
        // A plain thread or a plain tokio task with this thread's pool at hand: its class
        // fast path, without the general path's lookups.
        if let Some(heap) = owned_thread_pool(handle) {
            // SAFETY: the pool is alive and we own it (`owned_thread_pool`).
            if let Some(p) = unsafe { heap.as_ref().try_alloc_handle_owned::<T>() } {
                return Ok(p);
            }
        }
        let heap = match slot_heap(handle) {
            Some(heap) => {
                // SAFETY: a slot heap is owned by the running task (us) and kept alive by it.
                unsafe { heap.as_ref().retain_handle_owned() };
                heap
            }
            None => {
                // An open guard of ours allocates under its registry lock, handle and all.
                if let Some(block) = guard::registry_allocate(&handle.shared, Layout::new::<T>()) {
                    return block.map(NonNull::cast);
                }
                thread::thread_pool(handle)
            }
        };
        let block = placed::allocate(heap, Layout::new::<T>());
        if block.is_err() {
            // SAFETY: we counted this handle and never made it.
            unsafe { HeapCore::release_handle(heap) };
        }
        block.map(NonNull::cast)
    }

    /// Moves the value out, freeing its block.
    pub fn into_inner(this: Self) -> T {
        let this = ManuallyDrop::new(this);
        // SAFETY: read once; the block is freed without dropping the value again, and `this`
        // is never dropped.
        unsafe {
            let v = this.ptr.as_ptr().read();
            release::<T>(this.ptr);
            v
        }
    }
}

/// Frees a `PoolBox`'s block and uncounts its handle.
///
/// # Safety
/// `ptr` is a `PoolBox<T>`'s value, moved out or dropped; called once per box.
#[inline(always)]
unsafe fn release<T>(ptr: NonNull<T>) {
    let size = core::mem::size_of::<T>();
    if size == 0 {
        return; // no memory, no heap
    }
    // SAFETY: the box's block came from `placed::allocate` (or the class fast path, the same
    // placement) with `T`'s layout, and the box held one counted handle on its heap.
    unsafe {
        match ClassOf::<T>::SMALL {
            Some(class) => {
                let heap = placed::heap_of(ptr.cast(), Layout::new::<T>());
                HeapCore::free_class_and_release(heap, ptr.cast(), class, size);
            }
            None => placed::free_and_release(ptr.cast(), Layout::new::<T>()),
        }
    }
}

impl<T> Drop for PoolBox<T> {
    #[inline]
    fn drop(&mut self) {
        let ptr = self.ptr;
        if !core::mem::needs_drop::<T>() {
            // SAFETY: nothing to drop; the block and handle are released once.
            return unsafe { release::<T>(ptr) };
        }
        // SAFETY: runs once, after the value's drop (even if it panics).
        let _release = crate::defer::Defer::new(move || unsafe { release::<T>(ptr) });
        // SAFETY: we own the initialised value; dropped once.
        unsafe { ptr.as_ptr().drop_in_place() };
    }
}

impl<T> Deref for PoolBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: initialised and owned by us.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for PoolBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: initialised and owned by us, borrowed mutably through `&mut self`.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: fmt::Debug> fmt::Debug for PoolBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Clone> PoolBox<T> {
    /// A clone of the value in the same heap as this one (the same task heap, guard scope or
    /// thread pool), wherever it is called: the heap stays alive for it as for any handle.
    ///
    /// # Errors
    /// The heap's budget (a task heap's) or the total budget would be exceeded, or the system
    /// allocator refused memory; `T::clone` is not called then.
    ///
    /// # Panics
    /// If `T::clone` panics (the block is freed first).
    pub fn try_clone(&self) -> Result<Self, AllocError> {
        let layout = Layout::new::<T>();
        let ptr = if layout.size() == 0 {
            NonNull::dangling()
        } else {
            // SAFETY: our block came from `placed::allocate` with `T`'s layout, and our
            // counted handle keeps its heap alive.
            let heap = unsafe { placed::heap_of(self.ptr.cast(), layout) };
            // SAFETY: as above: the heap is alive.
            let h = unsafe { heap.as_ref() };
            // A new handle made through a live one, as the heap's protocol allows even after
            // its owner released it.
            h.retain_handle();
            match placed::allocate(heap, layout) {
                Ok(p) => p.cast::<T>(),
                Err(e) => {
                    // SAFETY: the handle counted just above, never made; ours keeps the heap.
                    unsafe { HeapCore::release_handle(heap) };
                    return Err(e);
                }
            }
        };
        // SAFETY: runs only if `clone` unwinds: the fresh block and its handle go back once.
        let unwind = crate::defer::Defer::new(|| unsafe { release::<T>(ptr) });
        // SAFETY: a fresh block for a `T` (dangling and aligned for a zero-sized `T`).
        unsafe { ptr.as_ptr().write(T::clone(self)) };
        core::mem::forget(unwind);
        Ok(Self { ptr, _owns: PhantomData })
    }
}

/// Clones into the same heap as the original (see [`try_clone`](PoolBox::try_clone)), counted
/// there like any allocation.
impl<T: Clone> Clone for PoolBox<T> {
    /// # Panics
    /// If the heap cannot hold the clone ([`try_clone`](PoolBox::try_clone) returns the error
    /// instead), or if `T::clone` panics.
    #[track_caller]
    fn clone(&self) -> Self {
        match self.try_clone() {
            Ok(b) => b,
            Err(e) => crate::error::fail(e),
        }
    }
}
