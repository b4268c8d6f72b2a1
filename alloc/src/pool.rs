//! [`PoolBox`] and [`PoolVec`]: owning handles for `pool_*` allocations.
//!
//! Where a `pool_*` call allocates: the innermost heap of the task being polled (framealloc's
//! runtime, `framealloc::tokio::spawn`: the heap of its newest open
//! [`AsyncPoolGuard`](crate::AsyncPoolGuard), else the task's own), else the heap of the
//! newest open guard of the current task or thread, else the calling thread's pool. The
//! handle counts itself in that heap, so it may go anywhere (across threads, out of its task
//! through a `JoinHandle`) and is never dangling: its heap is freed only after the last handle
//! drops.

use crate::error::{fail, AllocError};
use crate::heap::blocks::heap_of;
use crate::heap::class::ClassOf;
use crate::heap::HeapCore;
use crate::identity;
use crate::smart::AllocHandle;
use crate::vec::{heap_allocate, heap_deallocate, heap_vec_methods};
use allocator_api2::alloc::Allocator;
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use std::alloc::Layout;
use std::sync::Arc;

/// The heap of the task being polled on this thread, for `handle`'s `SmartAlloc`: the caller
/// runs as its owner.
#[inline(always)]
fn slot_heap(handle: &Arc<AllocHandle>) -> Option<NonNull<HeapCore>> {
    identity::with_slot(|slot| Some(slot?.heap_for(handle.id, &handle.shared)))
}

/// Where a `pool_*` call on `handle` allocates outside a task of ours, with one handle
/// counted: an open guard's heap, else this thread's pool.
#[inline(never)]
fn target_outside_task(handle: &Arc<AllocHandle>) -> NonNull<HeapCore> {
    if let Some(h) = crate::guard::registry_target(&handle.shared) {
        return h;
    }
    crate::local::thread_pool(handle)
}

/// Where a `pool_*` call on `handle` allocates, with one handle counted.
#[inline]
fn target(handle: &Arc<AllocHandle>) -> NonNull<HeapCore> {
    match slot_heap(handle) {
        Some(heap) => {
            // SAFETY: a slot heap is owned by the running task, which keeps it alive.
            unsafe { heap.as_ref().retain_handle_owned() };
            heap
        }
        None => target_outside_task(handle),
    }
}

/// An owned value from a pool (or the current task's heap). Frees itself when dropped, on
/// any thread.
///
/// One pointer, like a `Box` (`size_of::<PoolBox<T>>() == size_of::<usize>()`): the heap the
/// value belongs to is found from its address (see [`PoolBox::heap`]).
pub struct PoolBox<T> {
    ptr: NonNull<T>,
    _owns: PhantomData<T>,
}

/// The block of a `PoolBox<T>` whose `T` has no size class (large or over-aligned): the heap
/// is written in front of the value.
#[repr(C)]
struct Prefixed<T> {
    heap: NonNull<HeapCore>,
    value: T,
}

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
        } else {
            let fast = slot_heap(handle).and_then(|heap| {
                // SAFETY: a slot heap is owned by the running task (us) and kept alive by it.
                unsafe { heap.as_ref().try_alloc_handle_owned::<T>() }
            });
            match fast {
                Some(p) => p,
                None => Self::allocate_slow(handle)?,
            }
        };
        // SAFETY: a fresh block sized and aligned for `T` (a dangling, aligned pointer for a
        // zero-sized `T`, where writes are no-ops).
        unsafe { ptr.as_ptr().write(value) };
        Ok(Self { ptr, _owns: PhantomData })
    }

    /// A block for a (non-zero-sized) `T` with its handle counted, when the owner's class fast
    /// path of the running task's heap could not serve it: a refill, a `T` without a class,
    /// or no task of ours.
    #[cold]
    #[inline(never)]
    fn allocate_slow(handle: &Arc<AllocHandle>) -> Result<NonNull<T>, AllocError> {
        let heap = match slot_heap(handle) {
            Some(heap) => {
                // SAFETY: a slot heap is owned by the running task (us) and kept alive by it.
                unsafe { heap.as_ref().retain_handle_owned() };
                heap
            }
            None => target_outside_task(handle),
        };
        // SAFETY: a handle is counted, so the heap is alive.
        let h = unsafe { heap.as_ref() };
        let block = if ClassOf::<T>::SMALL.is_some() {
            h.allocate_typed::<T>()
        } else {
            h.allocate_typed::<Prefixed<T>>().map(|b| {
                // SAFETY: a fresh block for a `Prefixed<T>`: its fields are ours to write.
                unsafe {
                    core::ptr::addr_of_mut!((*b.as_ptr()).heap).write(heap);
                    NonNull::new_unchecked(core::ptr::addr_of_mut!((*b.as_ptr()).value))
                }
            })
        };
        if block.is_err() {
            // SAFETY: we counted this handle and never made it.
            unsafe { HeapCore::release_handle(heap) };
        }
        block
    }

    /// The heap holding the value of a non-zero-sized `T`: named by the header of the block's
    /// granule for a `T` with a size class, written in front of the value otherwise.
    ///
    /// # Safety
    /// `ptr` is the live value of a `PoolBox<T>`, `T` not zero-sized.
    #[inline(always)]
    unsafe fn heap(ptr: NonNull<T>) -> NonNull<HeapCore> {
        if ClassOf::<T>::SMALL.is_some() {
            // SAFETY: a `T` with a class is always a class block of a heap's arena.
            unsafe { heap_of(ptr.cast()) }
        } else {
            // SAFETY: such a `T` is the `value` field of a live `Prefixed<T>` block.
            unsafe { Self::prefixed(ptr).as_ref().heap }
        }
    }

    /// The `Prefixed<T>` block around the value at `ptr`.
    ///
    /// # Safety
    /// `ptr` points to the `value` field of a `Prefixed<T>`.
    #[inline(always)]
    unsafe fn prefixed(ptr: NonNull<T>) -> NonNull<Prefixed<T>> {
        // SAFETY: per the caller, stepping back to the start of the same block.
        unsafe { ptr.byte_sub(core::mem::offset_of!(Prefixed<T>, value)).cast() }
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
    if core::mem::size_of::<T>() == 0 {
        return; // no memory, no heap
    }
    // SAFETY: the box's counted handle kept the heap alive; the block is the box's.
    unsafe {
        let heap = PoolBox::<T>::heap(ptr);
        match ClassOf::<T>::SMALL {
            Some(class) => HeapCore::free_class_and_release(heap, ptr.cast(), class, core::mem::size_of::<T>()),
            None => {
                heap.as_ref().deallocate_typed::<Prefixed<T>>(PoolBox::<T>::prefixed(ptr));
                HeapCore::release_handle(heap);
            }
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

/// A counted handle on a heap, used as the allocator of a [`PoolVec`].
pub(crate) struct PoolHeapHandle {
    heap: NonNull<HeapCore>,
}

// SAFETY: the handle is counted, so the heap outlives it; the heap is `Send + Sync`.
unsafe impl Send for PoolHeapHandle {}
// SAFETY: as above.
unsafe impl Sync for PoolHeapHandle {}

impl Drop for PoolHeapHandle {
    fn drop(&mut self) {
        // SAFETY: this handle was counted when made and is gone now.
        unsafe { HeapCore::release_handle(self.heap) };
    }
}

// SAFETY: blocks stay valid until deallocated: the heap is freed only after this handle
// (owned by the vector, dropped after its buffer) is gone.
unsafe impl Allocator for PoolHeapHandle {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        // SAFETY: counted handle, heap alive.
        heap_allocate(unsafe { self.heap.as_ref() }, layout)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: counted handle, heap alive; forwarded contract.
        unsafe { heap_deallocate(self.heap.as_ref(), ptr, layout) }
    }
}

/// A growable vector from a pool (or the current task's heap). Frees itself when dropped, on
/// any thread.
pub struct PoolVec<T> {
    inner: allocator_api2::vec::Vec<T, PoolHeapHandle>,
}

impl<T> PoolVec<T> {
    #[inline]
    pub(crate) fn new_in(handle: &Arc<AllocHandle>) -> Self {
        Self { inner: allocator_api2::vec::Vec::new_in(PoolHeapHandle { heap: target(handle) }) }
    }

    heap_vec_methods!(inner);

    /// Moves the elements into a `std` `Vec` (the pool buffer is freed).
    pub fn into_inner(self) -> Vec<T> {
        let this = ManuallyDrop::new(self);
        // SAFETY: `inner` is read once and `this` is never dropped, so it is owned once.
        let inner = unsafe { core::ptr::read(&this.inner) };
        crate::vec::into_std(inner)
    }
}

impl<T> Deref for PoolVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.inner
    }
}

impl<T> DerefMut for PoolVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.inner
    }
}

impl<T> Extend<T> for PoolVec<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        let iter = iter.into_iter();
        self.reserve(iter.size_hint().0);
        for v in iter {
            self.push(v);
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for PoolVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Builds a `PoolBox` or panics with the error.
#[inline(always)]
#[track_caller]
pub(crate) fn pool_box<T>(handle: &Arc<AllocHandle>, value: T) -> PoolBox<T> {
    match PoolBox::try_new_in(handle, value) {
        Ok(b) => b,
        Err(e) => fail(e),
    }
}
