//! [`PoolBox`] and [`PoolVec`]: owning handles for `pool_*` allocations.
//!
//! Where a `pool_*` call allocates ([`target`]): the heap of the task being polled (framealloc's
//! runtime, `framealloc::tokio::spawn`), else the guard heap of an open
//! [`AsyncPoolGuard`](crate::AsyncPoolGuard) of the current task or thread, else the calling
//! thread's pool. The handle counts itself in that heap, so it may go anywhere (across
//! threads, out of its task through a `JoinHandle`) and is never dangling: its heap is freed
//! only after the last handle drops.

use crate::error::{fail, AllocError};
use crate::guard::{self, Scope, Target};
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

/// Resolves where a `pool_*` call on `shared` allocates, with one handle counted.
#[inline(always)]
pub(crate) fn target(handle: &Arc<AllocHandle>) -> Target {
    let from_slot = identity::with_slot(|slot| {
        let heap = slot?.heap_for(&handle.shared);
        // SAFETY: the slot is current, so we run as its task, the heap's owner, which keeps it
        // alive while we count our handle.
        let scope = unsafe {
            heap.as_ref().retain_handle_owned();
            guard::owned_scope(heap.as_ref())
        };
        Some(Target { heap, scope })
    });
    match from_slot {
        Some(t) => t,
        None => target_outside_task(handle),
    }
}

/// `target` outside a task of ours: an open guard's heap, else this thread's pool.
#[inline(never)]
fn target_outside_task(handle: &Arc<AllocHandle>) -> Target {
    if let Some(t) = guard::registry_target(&handle.shared) {
        return t;
    }
    crate::local::thread_pool(handle)
}

/// An owned value from a pool (or the current task's heap). Frees itself when dropped, on
/// any thread.
pub struct PoolBox<T> {
    ptr: NonNull<T>,
    heap: Option<NonNull<HeapCore>>,
    scope: Option<Arc<Scope>>,
    _owns: PhantomData<T>,
}

// SAFETY: owns a `T` like `Box<T>`; the heap handle is counted and frees from any thread are
// handled by the heap's protocol.
unsafe impl<T: Send> Send for PoolBox<T> {}
// SAFETY: `&PoolBox<T>` only gives `&T`.
unsafe impl<T: Sync> Sync for PoolBox<T> {}

impl<T> PoolBox<T> {
    pub(crate) fn try_new_in(handle: &Arc<AllocHandle>, value: T) -> Result<Self, AllocError> {
        let layout = Layout::new::<T>();
        if layout.size() == 0 {
            let ptr = NonNull::<T>::dangling();
            // SAFETY: zero-sized writes to a dangling, aligned pointer are valid.
            unsafe { ptr.as_ptr().write(value) };
            return Ok(Self { ptr, heap: None, scope: None, _owns: PhantomData });
        }
        let t = target(handle);
        // SAFETY: `target` counted a handle, so the heap is alive.
        let heap = unsafe { t.heap.as_ref() };
        match heap.allocate_typed::<T>() {
            Ok(ptr) => {
                // SAFETY: fresh block sized and aligned for `T`.
                unsafe { ptr.as_ptr().write(value) };
                if let Some(s) = &t.scope {
                    s.enter();
                }
                Ok(Self { ptr, heap: Some(t.heap), scope: t.scope, _owns: PhantomData })
            }
            Err(e) => {
                // SAFETY: we counted this handle in `target` and never made it.
                unsafe { HeapCore::release_handle(t.heap) };
                Err(e)
            }
        }
    }

    /// Moves the value out, freeing its block.
    pub fn into_inner(this: Self) -> T {
        let mut this = ManuallyDrop::new(this);
        // SAFETY: read once; the block is freed without dropping the value again, and `this`
        // is never dropped.
        unsafe {
            let v = this.ptr.as_ptr().read();
            release::<T>(this.heap, this.ptr, this.scope.take());
            v
        }
    }
}

/// Frees a `PoolBox`'s block, uncounts its handle and its scope.
///
/// # Safety
/// The value was moved out or dropped; called once per box.
unsafe fn release<T>(heap: Option<NonNull<HeapCore>>, ptr: NonNull<T>, scope: Option<Arc<Scope>>) {
    if let Some(heap) = heap {
        // SAFETY: the box's counted handle kept the heap alive; the block is the box's, of
        // `T`'s class when it has one.
        unsafe {
            match ClassOf::<T>::SMALL {
                Some(class) => HeapCore::free_class_and_release(heap, ptr.cast(), class, core::mem::size_of::<T>()),
                None => {
                    heap.as_ref().deallocate_slow(ptr.cast(), Layout::new::<T>());
                    HeapCore::release_handle(heap);
                }
            }
        }
    }
    if let Some(s) = scope {
        s.leave();
    }
}

impl<T> Drop for PoolBox<T> {
    fn drop(&mut self) {
        let (heap, ptr, scope) = (self.heap, self.ptr, self.scope.take());
        if !core::mem::needs_drop::<T>() {
            // SAFETY: nothing to drop; the block, handle and scope are released once.
            return unsafe { release::<T>(heap, ptr, scope) };
        }
        // SAFETY: runs once, after the value's drop (even if it panics).
        let _release = crate::defer::Defer::new(move || unsafe { release::<T>(heap, ptr, scope) });
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
    scope: Option<Arc<Scope>>,
}

impl<T> PoolVec<T> {
    pub(crate) fn new_in(handle: &Arc<AllocHandle>) -> Self {
        let t = target(handle);
        if let Some(s) = &t.scope {
            s.enter();
        }
        Self { inner: allocator_api2::vec::Vec::new_in(PoolHeapHandle { heap: t.heap }), scope: t.scope }
    }

    heap_vec_methods!(inner);

    /// Moves the elements into a `std` `Vec` (the pool buffer is freed).
    pub fn into_inner(self) -> Vec<T> {
        let mut this = ManuallyDrop::new(self);
        if let Some(s) = this.scope.take() {
            s.leave();
        }
        // SAFETY: `inner` is read once and `this` is never dropped, so it is owned once.
        let inner = unsafe { core::ptr::read(&this.inner) };
        crate::vec::into_std(inner)
    }
}

impl<T> Drop for PoolVec<T> {
    fn drop(&mut self) {
        if let Some(s) = self.scope.take() {
            s.leave();
        }
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
#[track_caller]
pub(crate) fn pool_box<T>(handle: &Arc<AllocHandle>, value: T) -> PoolBox<T> {
    match PoolBox::try_new_in(handle, value) {
        Ok(b) => b,
        Err(e) => fail(e),
    }
}
