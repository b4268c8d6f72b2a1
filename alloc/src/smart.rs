//! [`SmartAlloc`]: the entry point for all three kinds of memory.

use crate::config::{AllocConfig, ConfigError};
use crate::error::{fail, AllocError};
use crate::frame::{arena::FrameArena, scope, FrameBox, FrameScope, FrameSlice, FrameVec};
use crate::guard::AsyncPoolGuard;
use crate::identity;
use crate::place::{self, AllocHandle};
use crate::pool::{self, PoolBox, PoolVec};
use crate::shared::Shared;
use crate::stats::AllocStats;
use crate::task::TaskAlloc;
use core::fmt;
use core::ptr::NonNull;
use std::alloc::Layout;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Frame, task and pool memory with one configuration and one set of statistics.
///
/// Cheap to clone (an `Arc`), `Send + Sync`. Every method takes `&self`.
///
/// Each thread that uses a `SmartAlloc` keeps a frame arena, a pool heap and a few cached task
/// heaps for it. When the last clone drops, the dropping thread's go at once (memory that
/// handles still hold stays valid until they drop). Another thread's go when it next uses a
/// new `SmartAlloc`, or exits: a long-lived worker that used this one and no other holds its
/// chunks until then.
///
/// * **Frame**: [`frame_box`](Self::frame_box), [`frame_vec`](Self::frame_vec),
///   [`frame_slice`](Self::frame_slice), [`frame_scope`](Self::frame_scope) bump-allocate in the
///   calling thread's arena, recycled all at once by the next [`begin_frame`](Self::begin_frame).
///   They need no open frame: what they allocate before a thread's first `begin_frame`, or
///   after an [`end_frame`](Self::end_frame), belongs to that thread's last frame (the one
///   before the first) and is recycled by its next `begin_frame`, under the same frame budget.
///   A thread that never calls `begin_frame` never recycles, so its frame memory only grows.
///   Calling them while a task is polled panics with `FA701` (use `TaskAlloc`). They also
///   panic when called from a thread-local destructor after the thread's arena is gone. The
///   `try_` twins panic in both cases too: these are misuse, not a shortage of memory. Pool
///   and task memory keep working in thread-local destructors.
/// * **Task**: [`TaskAlloc`], and `pool_*` inside a task that has a heap
///   of its own (one of framealloc's runtime or of `framealloc::tokio::spawn`).
/// * **Pool**: [`pool_box`](Self::pool_box), [`pool_vec`](Self::pool_vec), ... The handles own
///   their memory and may go anywhere. Where `pool_*` allocates ("the current task's heap or
///   this thread's pool" below): the heap of the innermost open
///   [`AsyncPoolGuard`] of the running task (or thread), else the
///   running task's own heap if it has one, else the calling thread's pool. A plain tokio
///   task has no heap of its own: with no guard open, its `pool_*` calls use the pool of the
///   thread it runs on, counted as pool memory.
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; }
/// use framealloc::SmartAlloc;
/// let alloc = SmartAlloc::new(Default::default());
/// alloc.begin_frame();
/// let mut hits = alloc.frame_vec::<u32>();
/// hits.extend([3, 1, 2]);
/// let total = alloc.frame_box(hits.iter().sum::<u32>());
/// alloc.end_frame();
/// assert_eq!(*total, 6);           // frame data stays readable while its handle lives
/// let kept = alloc.pool_box(String::from("pooled"));
/// assert_eq!(alloc.stats().pool.live_bytes, std::mem::size_of::<String>() as u64);
/// # drop((hits, total, kept));
/// ```
#[derive(Clone)]
pub struct SmartAlloc {
    handle: Arc<AllocHandle>,
}

impl SmartAlloc {
    /// A new allocator.
    ///
    /// # Panics
    /// With the [`ConfigError`]'s message, which names the field, if `config` is invalid
    /// ([`try_new`](Self::try_new) returns the error instead).
    #[track_caller]
    pub fn new(config: AllocConfig) -> Self {
        match Self::try_new(config) {
            Ok(alloc) => alloc,
            Err(e) => panic!("{e}"),
        }
    }

    /// A new allocator.
    ///
    /// # Errors
    /// The [`ConfigError`] naming the field of `config` that breaks its rule (see
    /// [`AllocConfig::validate`]).
    pub fn try_new(config: AllocConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { handle: AllocHandle::new(Shared::new(config)) })
    }

    /// The handle `pool_*` calls find their heap with (for tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn handle(&self) -> &Arc<AllocHandle> {
        &self.handle
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &AllocConfig {
        &self.handle.shared.config
    }

    /// The calling thread's frame arena; panics with FA701 inside a task.
    #[inline(always)]
    #[track_caller]
    fn arena(&self, what: &'static str) -> &Rc<FrameArena> {
        if identity::in_task() {
            fa701(what);
        }
        match place::thread::entry(&self.handle) {
            // SAFETY: the entry lives while `self.handle` does (we borrow it for the returned
            // lifetime) and the thread is not tearing down (`entry` returned it).
            Some(e) => unsafe { &(*e.as_ptr()).frame },
            None => teardown(what),
        }
    }

    /// Opens a frame on the calling thread: every frame allocation of the previous frame is
    /// recycled in O(1). Handles still alive keep their chunk (quarantined) until they drop.
    ///
    /// # Panics
    /// If a frame is already open on this thread, inside [`frame_scope`](Self::frame_scope),
    /// or (FA701) while a task is polled.
    #[track_caller]
    pub fn begin_frame(&self) {
        self.arena("begin_frame").begin_frame();
        self.shared().frames.fetch_add(1, Relaxed);
    }

    /// Closes the calling thread's frame. Its data stays readable while its handles live: the
    /// next `begin_frame` recycles the frame's memory, except the chunks live handles still
    /// use, which wait (quarantined) until those drop.
    ///
    /// # Panics
    /// If no frame is open on this thread, or (FA701) while a task is polled.
    #[track_caller]
    pub fn end_frame(&self) {
        self.arena("end_frame").end_frame();
    }

    /// `begin_frame` calls on this `SmartAlloc` so far (all threads).
    pub fn frame_number(&self) -> u64 {
        self.shared().frames.load(Relaxed)
    }

    /// Moves `value` into the current frame (dropping it if that fails).
    ///
    /// # Errors
    /// The frame or total budget would be exceeded, or the system allocator refused a chunk.
    ///
    /// # Panics
    /// On misuse, not on a shortage of memory: with FA701 while a task is polled, and in a
    /// thread-local destructor after this thread's frame arena is gone.
    #[inline]
    #[track_caller]
    pub fn try_frame_box<T>(&self, value: T) -> Result<FrameBox<'_, T>, AllocError> {
        self.try_frame_box_as("try_frame_box", value)
    }

    /// [`try_frame_box`](Self::try_frame_box) for the public method `what` (named in misuse
    /// panics).
    #[inline]
    #[track_caller]
    fn try_frame_box_as<T>(&self, what: &'static str, value: T) -> Result<FrameBox<'_, T>, AllocError> {
        let (p, chunk) = self.arena(what).alloc_counted(Layout::new::<T>())?;
        let p = p.cast::<T>();
        // SAFETY: fresh block for a `T`, counted in `chunk` for the handle we return.
        unsafe {
            p.as_ptr().write(value);
            Ok(FrameBox::from_raw(p, chunk))
        }
    }

    /// Moves `value` into the current frame.
    ///
    /// # Panics
    /// If the frame or total budget is exceeded or the system allocator refuses a chunk
    /// ([`try_frame_box`](Self::try_frame_box) returns the error instead); with FA701 while a task
    /// is polled; in a thread-local destructor after this thread's frame arena is gone.
    #[inline]
    #[track_caller]
    pub fn frame_box<T>(&self, value: T) -> FrameBox<'_, T> {
        self.frame_box_as("frame_box", value)
    }

    /// [`frame_box`](Self::frame_box) for the public method `what` (named in misuse panics).
    #[inline(always)]
    #[track_caller]
    fn frame_box_as<T>(&self, what: &'static str, value: T) -> FrameBox<'_, T> {
        // Allocate first and write once: the value is not moved through a `Result`, and the
        // error path (which panics) is out of line.
        let (p, chunk) = self.arena(what).alloc_counted_or_fail(Layout::new::<T>());
        let p = p.cast::<T>();
        // SAFETY: fresh block for a `T`, counted in `chunk` for the handle we return.
        unsafe {
            p.as_ptr().write(value);
            FrameBox::from_raw(p, chunk)
        }
    }

    /// A `T::default()` in the current frame.
    ///
    /// # Panics
    /// If the frame or total budget is exceeded or the system allocator refuses a chunk
    /// ([`try_frame_alloc`](Self::try_frame_alloc) returns the error instead); with FA701 while a
    /// task is polled; in a thread-local destructor after this thread's frame arena is gone.
    #[inline]
    #[track_caller]
    pub fn frame_alloc<T: Default>(&self) -> FrameBox<'_, T> {
        self.frame_box_as("frame_alloc", T::default())
    }

    /// A `T::default()` in the current frame.
    ///
    /// # Errors
    /// The frame or total budget would be exceeded, or the system allocator refused a chunk.
    ///
    /// # Panics
    /// On misuse, not on a shortage of memory: with FA701 while a task is polled, and in a
    /// thread-local destructor after this thread's frame arena is gone.
    #[inline]
    #[track_caller]
    pub fn try_frame_alloc<T: Default>(&self) -> Result<FrameBox<'_, T>, AllocError> {
        self.try_frame_box_as("try_frame_alloc", T::default())
    }

    /// An empty vector in the current frame; it allocates when it grows.
    ///
    /// # Panics
    /// With FA701 while a task is polled, and in a thread-local destructor after this thread's
    /// frame arena is gone.
    #[track_caller]
    pub fn frame_vec<T>(&self) -> FrameVec<'_, T> {
        FrameVec::new_in(self.arena("frame_vec").clone())
    }

    /// A vector in the current frame with room for exactly `capacity` elements (no block for
    /// 0, like `Vec::with_capacity`).
    ///
    /// ```
    /// # mod framealloc { pub use framealloc_alloc::*; }
    /// # let alloc = framealloc::SmartAlloc::default();
    /// let mut v = alloc.frame_vec_with_capacity::<u32>(16);
    /// assert_eq!(v.capacity(), 16);
    /// v.push(7);
    /// assert_eq!(alloc.stats().frame.live_bytes, 64);
    /// ```
    ///
    /// # Panics
    /// If the frame or total budget is exceeded, the system allocator refuses a chunk or the
    /// size overflows ([`try_frame_vec_with_capacity`](Self::try_frame_vec_with_capacity)
    /// returns the error instead); with FA701 while a task is polled; in a thread-local
    /// destructor after this thread's frame arena is gone.
    #[track_caller]
    pub fn frame_vec_with_capacity<T>(&self, capacity: usize) -> FrameVec<'_, T> {
        match FrameVec::with_capacity_in(self.arena("frame_vec_with_capacity").clone(), capacity) {
            Ok(v) => v,
            Err(e) => fail(e),
        }
    }

    /// A vector in the current frame with room for exactly `capacity` elements (no block for
    /// 0).
    ///
    /// # Errors
    /// The frame or total budget would be exceeded, the system allocator refused a chunk, or
    /// the size overflows.
    ///
    /// # Panics
    /// On misuse, not on a shortage of memory: with FA701 while a task is polled, and in a
    /// thread-local destructor after this thread's frame arena is gone.
    #[track_caller]
    pub fn try_frame_vec_with_capacity<T>(&self, capacity: usize) -> Result<FrameVec<'_, T>, AllocError> {
        FrameVec::with_capacity_in(self.arena("try_frame_vec_with_capacity").clone(), capacity)
    }

    /// A vector in the current frame holding the items of `iter`.
    ///
    /// # Panics
    /// If the frame or total budget is exceeded, the system allocator refuses a chunk or the
    /// size overflows; with FA701 while a task is polled; in a thread-local destructor after
    /// this thread's frame arena is gone.
    #[track_caller]
    pub fn frame_vec_from_iter<T>(&self, iter: impl IntoIterator<Item = T>) -> FrameVec<'_, T> {
        let mut v = FrameVec::new_in(self.arena("frame_vec_from_iter").clone());
        v.extend(iter);
        v
    }

    /// Clones `src` into the current frame.
    ///
    /// # Errors
    /// The frame or total budget would be exceeded, or the system allocator refused a chunk, or the
    /// size overflows.
    ///
    /// # Panics
    /// If a `clone` panics (the clones made so far are dropped); on misuse, not on a shortage of
    /// memory: with FA701 while a task is polled, and in a thread-local destructor after this
    /// thread's frame arena is gone.
    #[track_caller]
    pub fn try_frame_slice<T: Clone>(&self, src: &[T]) -> Result<FrameSlice<'_, T>, AllocError> {
        self.try_frame_slice_as("try_frame_slice", src)
    }

    /// [`try_frame_slice`](Self::try_frame_slice) for the public method `what` (named in
    /// misuse panics).
    #[track_caller]
    fn try_frame_slice_as<T: Clone>(&self, what: &'static str, src: &[T]) -> Result<FrameSlice<'_, T>, AllocError> {
        let layout = Layout::array::<T>(src.len()).map_err(|_| AllocError::capacity_overflow())?;
        {
            let (p, chunk) = self.arena(what).alloc_counted(layout)?;
            let p: NonNull<T> = p.cast();
            // Count initialised elements so a panicking `clone` drops exactly those, and gives
            // the chunk count back.
            struct Partial<T> {
                p: NonNull<T>,
                done: usize,
                chunk: Option<NonNull<crate::frame::chunk::FrameChunk>>,
                len: usize,
            }
            impl<T> Drop for Partial<T> {
                fn drop(&mut self) {
                    // SAFETY: the first `done` slots are initialised; the chunk count is ours.
                    unsafe {
                        core::ptr::slice_from_raw_parts_mut(self.p.as_ptr(), self.done).drop_in_place();
                        crate::frame::boxed::release::<T>(self.chunk, self.len);
                    }
                }
            }
            let mut partial = Partial { p, done: 0, chunk, len: src.len() };
            for v in src {
                // SAFETY: slot `done < len` of the fresh block.
                unsafe { p.as_ptr().add(partial.done).write(v.clone()) };
                partial.done += 1;
            }
            core::mem::forget(partial);
            // SAFETY: all `len` slots initialised; the count in `chunk` is the handle's.
            Ok(unsafe { FrameSlice::from_raw(p, src.len(), chunk) })
        }
    }

    /// Clones `src` into the current frame.
    ///
    /// # Panics
    /// If the frame or total budget is exceeded or the system allocator refuses a chunk, the size
    /// overflows or a `clone` panics ([`try_frame_slice`](Self::try_frame_slice) returns the error
    /// instead); with FA701 while a task is polled; in a thread-local destructor after this
    /// thread's frame arena is gone.
    #[track_caller]
    pub fn frame_slice<T: Clone>(&self, src: &[T]) -> FrameSlice<'_, T> {
        match self.try_frame_slice_as("frame_slice", src) {
            Ok(s) => s,
            Err(e) => fail(e),
        }
    }

    /// Runs `f` with a [`FrameScope`]: allocation without any run-time counting whose handles
    /// borrow the scope and so cannot leave `f`. The memory is reused as soon as `f` returns,
    /// unless a counted frame allocation (`frame_box`, ...) was made during `f`, which must
    /// stay valid, or the scope is nested in another, whose allocations may follow it: then
    /// it comes back at the next `begin_frame` or the outermost scope's exit.
    ///
    /// # Panics
    /// If `f` panics (the scope ends first); with FA701 while a task is polled, and in a
    /// thread-local destructor after this thread's frame arena is gone.
    #[track_caller]
    pub fn frame_scope<R>(&self, f: impl FnOnce(&FrameScope<'_>) -> R) -> R {
        scope::run(self.arena("frame_scope"), f)
    }

    /// Moves `value` into the current task's heap (inside a task) or this thread's pool
    /// (dropping it if that fails).
    ///
    /// # Errors
    /// A budget would be exceeded (the task heap's inside a task, the total) or the system
    /// allocator refused memory.
    #[inline]
    pub fn try_pool_box<T>(&self, value: T) -> Result<PoolBox<T>, AllocError> {
        PoolBox::try_new_in(&self.handle, value)
    }

    /// Moves `value` into the current task's heap (inside a task) or this thread's pool.
    ///
    /// # Panics
    /// If a budget is exceeded or the system allocator refuses memory
    /// ([`try_pool_box`](Self::try_pool_box) returns the error instead).
    #[inline(always)]
    #[track_caller]
    pub fn pool_box<T>(&self, value: T) -> PoolBox<T> {
        pool::pool_box(&self.handle, value)
    }

    /// A `T::default()` from the current task's heap or this thread's pool.
    ///
    /// # Panics
    /// If a budget is exceeded or the system allocator refuses memory
    /// ([`try_pool_alloc`](Self::try_pool_alloc) returns the error instead).
    #[inline]
    #[track_caller]
    pub fn pool_alloc<T: Default>(&self) -> PoolBox<T> {
        self.pool_box(T::default())
    }

    /// A `T::default()` from the current task's heap or this thread's pool.
    ///
    /// # Errors
    /// A budget would be exceeded (the task heap's inside a task, the total) or the system
    /// allocator refused memory.
    #[inline]
    pub fn try_pool_alloc<T: Default>(&self) -> Result<PoolBox<T>, AllocError> {
        self.try_pool_box(T::default())
    }

    /// An empty vector from the current task's heap or this thread's pool.
    #[inline]
    pub fn pool_vec<T>(&self) -> PoolVec<T> {
        PoolVec::new_in(&self.handle)
    }

    /// A vector with room for exactly `capacity` elements (no buffer for 0, like
    /// `Vec::with_capacity`), from the current task's heap or this thread's pool.
    ///
    /// ```
    /// # mod framealloc { pub use framealloc_alloc::*; }
    /// # let alloc = framealloc::SmartAlloc::default();
    /// let mut v = alloc.pool_vec_with_capacity::<u16>(100);
    /// assert_eq!(v.capacity(), 100);
    /// v.push(7);
    /// assert_eq!(alloc.stats().pool.live_bytes, 200);
    /// ```
    ///
    /// # Panics
    /// If a budget is exceeded, the size overflows or the system allocator refuses memory
    /// ([`try_pool_vec_with_capacity`](Self::try_pool_vec_with_capacity) returns the error
    /// instead).
    #[inline(always)]
    #[track_caller]
    pub fn pool_vec_with_capacity<T>(&self, capacity: usize) -> PoolVec<T> {
        PoolVec::with_capacity_or_fail(&self.handle, capacity)
    }

    /// A vector with room for exactly `capacity` elements (no buffer for 0), from the current
    /// task's heap or this thread's pool.
    ///
    /// # Errors
    /// A budget would be exceeded (the task heap's inside a task, the total), the size
    /// overflows, or the system allocator refused memory.
    #[inline]
    pub fn try_pool_vec_with_capacity<T>(&self, capacity: usize) -> Result<PoolVec<T>, AllocError> {
        PoolVec::with_capacity_in(&self.handle, capacity)
    }

    /// A vector from the current task's heap or this thread's pool holding the items of
    /// `iter`.
    ///
    /// # Panics
    /// If a budget is exceeded, the size overflows or the system allocator refuses memory.
    #[track_caller]
    pub fn pool_vec_from_iter<T>(&self, iter: impl IntoIterator<Item = T>) -> PoolVec<T> {
        let mut v = self.pool_vec();
        v.extend(iter);
        v
    }

    /// A snapshot of every kind of memory of this `SmartAlloc`, all threads and tasks.
    pub fn stats(&self) -> AllocStats {
        self.shared().stats()
    }
}

impl Default for SmartAlloc {
    fn default() -> Self {
        Self::new(AllocConfig::default())
    }
}

impl fmt::Debug for SmartAlloc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmartAlloc").field("id", &self.handle.id).finish_non_exhaustive()
    }
}

// The constructors that take the front door: written here so that the handles' own modules
// name nothing above them.

impl TaskAlloc {
    /// Inside a task of framealloc's runtime or of `framealloc::tokio::spawn`, the running
    /// task's heap (its innermost: an open `AsyncPoolGuard`'s, else its own), kept alive while
    /// this lives; elsewhere a new, empty heap owned by the current thread or plain tokio
    /// task, which costs no memory until the first allocation takes a chunk from the thread's
    /// cache.
    #[must_use = "the heap goes back when the `TaskAlloc` drops: bind it for the whole task"]
    #[inline]
    pub fn new(alloc: &SmartAlloc) -> Self {
        Self::in_handle(&alloc.handle)
    }
}

impl AsyncPoolGuard {
    /// Opens a scope on the current task (or thread) for `alloc`: its `pool_*` allocations
    /// there go to the scope's heap until the guard drops or a newer guard opens.
    pub fn new(alloc: &SmartAlloc) -> Self {
        Self::open(&alloc.handle)
    }
}

/// FA701: frame memory used while a task is polled.
#[cold]
#[track_caller]
fn fa701(what: &str) -> ! {
    panic!(
        "FA701: frame allocation in async function: `{what}` was called while a task is being polled. \
         Frame memory is recycled at the next begin_frame and belongs to the main loop; \
         inside tasks use TaskAlloc (task.alloc_box / task.alloc_vec) or pool_* instead. \
         Code run by spawn_blocking counts as a task too: run a frame loop on a std::thread of its own."
    )
}

#[cold]
#[track_caller]
fn teardown(what: &str) -> ! {
    panic!("framealloc: `{what}` called while this thread is shutting down (its frame arena is gone)")
}
