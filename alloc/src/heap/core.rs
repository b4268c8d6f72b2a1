//! [`HeapCore`]: one task heap (or per-thread pool), shared by its owner and everyone else.
//!
//! # Protocol
//!
//! * `owner` is the identity (see [`crate::identity`]) allowed to touch `local`, the plain
//!   [`LocalState`], without synchronisation. Every entry point compares the caller's current
//!   identity, and its thread's own, with `owner`; equal means no one else can be in `local`
//!   now. The pool fast paths compare the identities cached in the thread-local context (no
//!   call; the current one is empty in a plain tokio task) and leave everything else to an
//!   out-of-line path that checks again.
//! * A heap with no owner identity may have a lock that stands in for the owner: whoever
//!   holds it uses the owner's paths on `local` (a guard's heap in the registry, under its
//!   shard's lock; see `place::guard`).
//! * Anyone else allocates from `foreign` (a second arena behind a mutex) and frees onto
//!   `remote` (a lock-free list the owner drains when a size class runs dry). All chunks of
//!   both arenas belong to the heap, so a block may be freed into either arena's lists.
//! * Large or over-aligned requests go straight to the system allocator with their layout.
//! * Handles that can outlive the owner (`PoolBox`, `PoolVec`, and an `AsyncPoolGuard` on its
//!   own heap) are counted in [`EscapeRefs`]: by the owner in `owner_handles` (a relaxed load
//!   and store, so that `AsyncPoolGuard::escaped` may read it from anywhere), by others
//!   atomically.
//! * [`HeapCore::release_owner`] ends ownership: `owner` becomes [`NOBODY`], the owner's count
//!   is folded in, and the heap is freed at once if nothing escaped, else by whoever drops the
//!   last escaped handle. Its caller must exclude every other use of the owner identity on
//!   this heap: executors release a task's heaps with `&mut TaskContext`, `TaskAlloc` on drop
//!   (no `TaskBox` can outlive it), a thread's pool on that thread. A task heap that nothing
//!   refers to then is not freed but reset and handed back to the caller as a [`ParkedHeap`],
//!   for the placement layer to keep for the next task: the heap knows nothing of per-thread
//!   state.
//!
//! Deviation from DESIGN.md ("an escaped handle keeps its chunk alive"): an escaped handle
//! keeps its whole heap alive, counted per heap rather than per chunk. A heap's free lists mix
//! blocks of all its chunks, so giving one chunk back early would mean unlinking its blocks
//! from them; one count per heap keeps the free path to a single counter.
//! `AllocStats::quarantined_chunks` reports the chunks such a retained heap holds.

use super::blocks::{BlockArena, HEADER};
use super::class::{class_of, ClassOf, BLOCK_ALIGN};
use crate::chunk;
use crate::error::{AllocError, Budget};
use crate::identity::{self, NOBODY};
use crate::remote::{EscapeRefs, RemoteBlock, RemoteFreeList};
use crate::shared::{Registration, Shared};
use crate::stats::{Counters, Kind};
use crate::sync::{cell_mut, AtomicBool, AtomicIsize, AtomicU64, CellMut, Mutex, Ordering, UnsafeCell};
use core::ptr::NonNull;
use std::alloc::Layout;
use std::sync::Arc;

/// What only the owner touches.
pub(crate) struct LocalState {
    pub(crate) arena: BlockArena,
}

pub(crate) struct HeapCore {
    owner: AtomicU64,
    /// The id of the `SmartAlloc` the heap belongs to (its `Shared`'s), kept here too so that
    /// a task's slot finds its heap with one load from a line the allocation reads anyway.
    alloc_id: u64,
    /// Set when the `AsyncPoolGuard` whose scope this heap is was dropped outside its task:
    /// the task stops allocating here and releases the heap (see `place::task`).
    guard_ended: AtomicBool,
    /// Escapable handles the owner made minus those it dropped. Written by the owner only
    /// (load and store; for a heap with no owner identity, by the holder of the lock that
    /// stands in for the owner), read by anyone for [`live_handles`](Self::live_handles).
    owner_handles: AtomicIsize,
    local: UnsafeCell<LocalState>,
    foreign: Mutex<BlockArena>,
    remote: RemoteFreeList,
    refs: EscapeRefs,
    reg: Registration,
    chunk_size: usize,
    max_small: usize,
    budget: Option<usize>,
}

/// Bytes a heap takes in its home chunk, after the chunk's header (a multiple of 16, so the
/// blocks after it stay 16-aligned).
const IN_HOME: usize = core::mem::size_of::<HeapCore>().next_multiple_of(16);

// The heap sits right after a 16-byte header in a granule-aligned chunk, and its first blocks
// after it: its alignment must not exceed the header's, and it must leave room in the smallest
// chunk (4 KiB) for the largest block such a chunk serves (a quarter of it).
const _: () = assert!(core::mem::align_of::<HeapCore>() <= HEADER && HEADER + IN_HOME + 1024 <= 4096);

// SAFETY: `local` is touched only by the current owner identity (one thread at a time, with
// happens-before between successive owners' threads, see `crate::identity`), by the holder of
// the lock that stands in for the owner of a heap with no owner identity (a registered guard
// heap's shard lock, see `place::guard`), or by `release_owner`/`destroy`, whose callers
// exclude both. Everything else is atomics or a mutex.
unsafe impl Sync for HeapCore {}
// SAFETY: as above; the heap has no affinity to the thread that created it.
unsafe impl Send for HeapCore {}

impl HeapCore {
    /// A new heap of `kind` owned by `owner` ([`NOBODY`] for a heap used only by holders of a
    /// lock that stands in for the owner, or under its own).
    ///
    /// The heap is written into a chunk of its own, its home (see `heap::blocks`), which its
    /// first blocks then share: a small task heap costs the pages it touches, not a chunk
    /// plus a separate allocation.
    pub(crate) fn create(shared: &Arc<Shared>, kind: Kind, owner: u64) -> NonNull<HeapCore> {
        let cfg = &shared.config;
        let size = cfg.task_chunk_bytes;
        let Some(home) = chunk::acquire(size) else {
            std::alloc::handle_alloc_error(Layout::from_size_align(size, chunk::GRANULE).expect("a chunk layout"))
        };
        let heap = HeapCore {
            owner: AtomicU64::new(owner),
            alloc_id: shared.id,
            guard_ended: AtomicBool::new(false),
            owner_handles: AtomicIsize::new(0),
            local: UnsafeCell::new(LocalState { arena: BlockArena::new() }),
            foreign: Mutex::new(BlockArena::new()),
            remote: RemoteFreeList::new(),
            refs: EscapeRefs::new(),
            reg: shared.register(kind),
            chunk_size: size,
            max_small: (size / 4).min(super::class::MAX_CLASS_SIZE),
            // The task-heap budget caps task heaps (a task's, a `TaskAlloc`'s, a guard's in a
            // task), not a thread's pool or a guard's scope on a plain thread.
            budget: if kind == Kind::Task { cfg.max_task_heap_bytes } else { None },
        };
        // SAFETY: the home chunk is fresh, granule-aligned (so `HEADER`-aligned, which is at
        // least the heap's alignment, see `IN_HOME`) and larger than `HEADER + IN_HOME`
        // (chunks are at least 4 KiB); the heap is written into bytes nothing else uses.
        let heap = unsafe {
            let p = home.as_ptr().add(HEADER).cast::<HeapCore>();
            p.write(heap);
            NonNull::new_unchecked(p)
        };
        // SAFETY: fresh heap, not shared yet: exclusive access to both arenas; the home chunk
        // is the local arena's from now on, but for the heap's own bytes.
        unsafe {
            let h = heap.as_ptr();
            (*(*h).local.get()).arena.set_heap(h);
            (*(*h).local.get()).arena.set_home(home, IN_HOME);
            (*h).foreign.get_mut().set_heap(h);
        }
        heap
    }

    #[inline]
    pub(crate) fn counters(&self) -> &Counters {
        self.reg.counters()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        self.reg.shared()
    }

    /// `true` if the caller is the owner now (see [`identity::is_owner`]).
    #[inline]
    pub(crate) fn is_owner(&self) -> bool {
        identity::is_owner(self.owner.load(Ordering::Relaxed))
    }

    /// `true` if the caller is the owner by this thread's cached identities (a task of ours,
    /// or the thread itself): loads and compares, no call, so that the fast paths stay leaf
    /// code. `false` may still be the owner (a plain tokio task's own heap): the slow paths
    /// check again with [`is_owner`](Self::is_owner).
    #[inline(always)]
    pub(crate) fn is_owner_cached(&self) -> bool {
        identity::is_owner_cached(self.owner.load(Ordering::Relaxed))
    }

    /// The owner's plain state: `&mut LocalState` (see [`CellMut`]).
    ///
    /// Under `--cfg loom` the borrow is a guard that keeps loom's write access to `local` open
    /// while it lives, so callers keep it in a temporary or a binding that ends where the
    /// `&mut` would end (not across a point where the heap may be freed by someone else).
    ///
    /// # Safety
    /// The caller is the owner ([`is_owner`](Self::is_owner)) or excludes it, and holds no
    /// other reference from this method.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn local(&self) -> CellMut<'_, LocalState> {
        // SAFETY: exclusive per the caller's contract.
        unsafe { cell_mut(&self.local) }
    }

    #[inline]
    fn is_small(&self, layout: Layout) -> bool {
        layout.size() <= self.max_small && layout.align() <= BLOCK_ALIGN
    }

    /// The owner takes a block of `class` from its arena and counts `size` bytes: `None` when
    /// the class needs a refill. Every owner fast path allocates through this.
    ///
    /// # Safety
    /// The caller is the owner (as for [`local`](Self::local)).
    #[inline(always)]
    unsafe fn alloc_class_owned(&self, class: usize, size: usize) -> Option<NonNull<u8>> {
        // SAFETY: owner, per the caller.
        let p = unsafe { self.local() }.arena.alloc(class)?;
        self.counters().own_alloc(size);
        Some(p)
    }

    /// The owner puts a block of `class` back on its arena's list and uncounts `size` bytes.
    /// Every owner fast path frees through this.
    ///
    /// # Safety
    /// The caller is the owner; `ptr` is an unused block of `class` of this heap.
    #[inline(always)]
    unsafe fn free_class_owned(&self, ptr: NonNull<u8>, class: usize, size: usize) {
        // SAFETY: per the caller.
        unsafe { self.local().arena.free(ptr, class) };
        self.counters().own_free(size);
    }

    /// Owner fast path for a class known at compile time (see [`ClassOf`]): `None` when the
    /// caller is not the owner or the class needs a refill; the caller then uses
    /// [`allocate`](Self::allocate).
    #[inline(always)]
    pub(crate) fn try_alloc_owned_class(&self, class: usize, size: usize) -> Option<NonNull<u8>> {
        if !self.is_owner() {
            return None;
        }
        // SAFETY: we are the owner.
        unsafe { self.alloc_class_owned(class, size) }
    }

    /// Owner fast path of [`deallocate`](Self::deallocate) for a class known at compile time:
    /// `false` (nothing done) when the caller is not the owner.
    ///
    /// # Safety
    /// As for `deallocate`, and `class`/`size` are those of the block's `T` ([`ClassOf`]).
    #[inline(always)]
    pub(crate) unsafe fn try_free_owned_class(&self, ptr: NonNull<u8>, class: usize, size: usize) -> bool {
        if !self.is_owner() {
            return false;
        }
        // SAFETY: we are the owner; the block is ours and unused (caller).
        unsafe { self.free_class_owned(ptr, class, size) };
        true
    }

    /// Allocates `layout` (non-zero size) for whoever is calling: the owner's small-class
    /// fast path inline, everything else out of line.
    #[inline]
    pub(crate) fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        if self.is_small(layout) {
            if let Some(p) = self.try_alloc_owned_class(class_of(layout.size()), layout.size()) {
                return Ok(p);
            }
        }
        self.allocate_slow(layout)
    }

    /// [`allocate`](Self::allocate) for pool buffers: the owner's fast path checks the cached
    /// identity only (no call, see [`is_owner_cached`](Self::is_owner_cached)); a plain tokio
    /// task's owner check happens out of line.
    #[inline(always)]
    pub(crate) fn allocate_cached(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        if self.is_small(layout) && self.is_owner_cached() {
            // SAFETY: we are the owner.
            if let Some(p) = unsafe { self.alloc_class_owned(class_of(layout.size()), layout.size()) } {
                return Ok(p);
            }
        }
        self.allocate_slow(layout)
    }

    /// A block for a `T`: the owner's compile-time class fast path ([`ClassOf`]), else the
    /// general path; a dangling pointer for a zero-sized `T`.
    #[inline(always)]
    pub(crate) fn allocate_typed<T>(&self) -> Result<NonNull<T>, AllocError> {
        let size = core::mem::size_of::<T>();
        if let Some(class) = ClassOf::<T>::SMALL {
            if let Some(p) = self.try_alloc_owned_class(class, size) {
                return Ok(p.cast());
            }
        }
        if size == 0 {
            return Ok(NonNull::dangling());
        }
        self.allocate_slow(Layout::new::<T>()).map(NonNull::cast)
    }

    /// The owner's class fast path for a `T`, with a handle counted for the block: `None`
    /// (nothing done) when `T` has no class or the class needs a refill.
    ///
    /// # Safety
    /// The caller is the owner (as for [`local`](Self::local)).
    #[inline(always)]
    pub(crate) unsafe fn try_alloc_handle_owned<T>(&self) -> Option<NonNull<T>> {
        let class = ClassOf::<T>::SMALL?;
        // SAFETY: owner, per the caller; the class is `T`'s.
        unsafe { self.try_alloc_handle_owned_class(class, core::mem::size_of::<T>()) }.map(NonNull::cast)
    }

    /// The owner's class fast path for a run-time `class` of `size` bytes, with a handle
    /// counted for the block: `None` (nothing done) when the class needs a refill.
    ///
    /// # Safety
    /// The caller is the owner (as for [`local`](Self::local)); `class` is `class_of(size)`.
    #[inline(always)]
    pub(crate) unsafe fn try_alloc_handle_owned_class(&self, class: usize, size: usize) -> Option<NonNull<u8>> {
        // SAFETY: owner, per the caller (both calls).
        unsafe {
            let p = self.alloc_class_owned(class, size)?;
            self.retain_handle_owned();
            Some(p)
        }
    }

    /// Frees a block from [`allocate_typed`](Self::allocate_typed) (nothing for a zero-sized
    /// `T`).
    ///
    /// # Safety
    /// `ptr` came from `allocate_typed::<T>` on this heap, and is not used again.
    #[inline(always)]
    pub(crate) unsafe fn deallocate_typed<T>(&self, ptr: NonNull<T>) {
        let size = core::mem::size_of::<T>();
        if let Some(class) = ClassOf::<T>::SMALL {
            // SAFETY: per the caller; the class is `T`'s.
            if unsafe { self.try_free_owned_class(ptr.cast(), class, size) } {
                return;
            }
        }
        if size != 0 {
            // SAFETY: per the caller.
            unsafe { self.deallocate_slow(ptr.cast(), Layout::new::<T>()) };
        }
    }

    /// Everything but the owner's small-class fast path (also called directly by callers that
    /// tried a compile-time class first).
    #[inline]
    pub(crate) fn allocate_slow(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        self.allocate_counting(layout, layout.size())
    }

    /// [`allocate_slow`](Self::allocate_slow) that counts `counted` bytes as live instead of
    /// the block's size (a framed pool value counts its value only, see `heap::placed`).
    #[cold]
    #[inline(never)]
    pub(crate) fn allocate_counting(&self, layout: Layout, counted: usize) -> Result<NonNull<u8>, AllocError> {
        if self.is_owner() {
            // SAFETY: we are the owner.
            unsafe { self.allocate_owned(layout, counted) }
        } else {
            self.allocate_foreign(layout, counted)
        }
    }

    /// The owner's general path, without the ownership check: for the owner, and for the
    /// holder of the lock that guards the owner state of a heap with no owner identity (a
    /// registered guard heap, see `place::guard`).
    ///
    /// # Safety
    /// The caller is the owner or excludes it (as for [`local`](Self::local)).
    pub(crate) unsafe fn allocate_owned(&self, layout: Layout, counted: usize) -> Result<NonNull<u8>, AllocError> {
        debug_assert!(layout.size() > 0);
        if !self.is_small(layout) {
            return self.allocate_large(layout, true, counted);
        }
        let class = class_of(layout.size());
        // Two borrows of `local`, one after the other (the first ends with its statement; see
        // `local` for why not one binding).
        // SAFETY: owner, per the caller (both borrows).
        let fast = unsafe { self.local() }.arena.alloc(class);
        let p = match fast {
            Some(p) => p,
            // SAFETY: as above.
            None => self.refill(&mut unsafe { self.local() }.arena, class, counted)?,
        };
        self.counters().own_alloc(counted);
        Ok(p)
    }

    fn allocate_foreign(&self, layout: Layout, counted: usize) -> Result<NonNull<u8>, AllocError> {
        if !self.is_small(layout) {
            return self.allocate_large(layout, false, counted);
        }
        let class = class_of(layout.size());
        let mut arena = self.foreign.lock();
        let p = match arena.alloc(class) {
            Some(p) => p,
            None => self.refill(&mut arena, class, counted)?,
        };
        drop(arena);
        self.counters().other_alloc(counted);
        Ok(p)
    }

    /// `arena` has no block of `class`: take the remote frees, else a new chunk. `requested`
    /// is what the caller asked for (the value's bytes), named in a budget error.
    #[cold]
    #[inline(never)]
    fn refill(&self, arena: &mut BlockArena, class: usize, requested: usize) -> Result<NonNull<u8>, AllocError> {
        if let Some(p) = arena.alloc_next_granule(class) {
            return Ok(p);
        }
        // SAFETY: blocks on our remote list are unused blocks of our chunks.
        unsafe { arena.absorb(self.remote.take_all()) };
        if arena.has_free(class) {
            return Ok(arena.alloc(class).expect("a free block was just absorbed"));
        }
        let size = self.chunk_size;
        self.charge(size, requested)?;
        if arena.home_is_dormant() {
            // SAFETY: dormant, and acquired with this heap's chunk size (`create`).
            unsafe { arena.activate_home(size) };
            self.count_retained_chunk();
            return Ok(arena.alloc(class).expect("a home chunk holds any small class"));
        }
        let Some(chunk) = chunk::acquire(size) else {
            self.uncharge(size);
            return Err(AllocError::out_of_memory(requested, size));
        };
        // SAFETY: a fresh chunk of `size` bytes, now the arena's.
        unsafe { arena.add_chunk(chunk, size) };
        self.count_retained_chunk();
        Ok(arena.alloc(class).expect("a fresh chunk holds any small class"))
    }

    /// A chunk added to a heap released with escapees is retained like the ones it had then.
    fn count_retained_chunk(&self) {
        if self.counters().retained.load(Ordering::Relaxed) {
            self.counters().quarantined.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Checks the heap and total budgets for `bytes` more held memory and takes them.
    fn charge(&self, bytes: usize, requested: usize) -> Result<(), AllocError> {
        let held = &self.counters().held;
        let before = held.fetch_add(bytes as u64, Ordering::Relaxed);
        if let Some(cap) = self.budget {
            if before + bytes as u64 > cap as u64 {
                held.fetch_sub(bytes as u64, Ordering::Relaxed);
                return Err(AllocError::budget(Budget::TaskHeap, cap, before as usize, requested, bytes, self.blame()));
            }
        }
        if let Err(e) = self.shared().charge(bytes, requested, self.blame()) {
            held.fetch_sub(bytes as u64, Ordering::Relaxed);
            return Err(e);
        }
        Ok(())
    }

    fn uncharge(&self, bytes: usize) {
        self.counters().held.fetch_sub(bytes as u64, Ordering::Relaxed);
        self.shared().uncharge(bytes);
    }

    /// `true` if the heap has no owner identity (a registered guard heap).
    #[inline]
    pub(crate) fn has_no_owner(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == NOBODY
    }

    /// Identity to name in an error: the owner, else the caller.
    fn blame(&self) -> u64 {
        match self.owner.load(Ordering::Relaxed) {
            NOBODY => identity::current(),
            o => o,
        }
    }

    #[cold]
    fn allocate_large(&self, layout: Layout, owner: bool, counted: usize) -> Result<NonNull<u8>, AllocError> {
        // The error names what the caller asked for, not the block with its prefix.
        self.charge(layout.size(), counted)?;
        // SAFETY: non-zero size (callers handle zero-sized values without allocating).
        let Some(p) = NonNull::new(unsafe { std::alloc::alloc(layout) }) else {
            self.uncharge(layout.size());
            return Err(AllocError::out_of_memory(counted, layout.size()));
        };
        if owner {
            self.counters().own_alloc(counted);
        } else {
            self.counters().other_alloc(counted);
        }
        Ok(p)
    }

    /// Frees a block from [`allocate`](Self::allocate), for whoever is calling: the owner's
    /// small-class fast path inline (the owner checked against the cached identities only, so
    /// that it calls nothing), everything else out of line.
    ///
    /// # Safety
    /// `ptr` came from this heap's `allocate*` with the same `layout`, and is not used again.
    #[inline]
    pub(crate) unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if self.is_small(layout) {
            // A small layout's class is the one the block was allocated in.
            let (class, size) = (class_of(layout.size()), layout.size());
            if self.is_owner_cached() {
                // SAFETY: we are the owner; the block is ours and unused (caller).
                unsafe { self.free_class_owned(ptr, class, size) };
            } else {
                // SAFETY: forwarded contract.
                unsafe { self.free_class_checked(ptr, class, size) };
            }
            return;
        }
        // SAFETY: forwarded contract.
        unsafe { self.deallocate_slow(ptr, layout) }
    }

    /// Everything but the owner's small-class fast path.
    ///
    /// # Safety
    /// As for [`deallocate`](Self::deallocate).
    #[inline]
    pub(crate) unsafe fn deallocate_slow(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { self.deallocate_counting(ptr, layout, layout.size()) }
    }

    /// [`deallocate_slow`](Self::deallocate_slow) for a block allocated with
    /// [`allocate_counting`](Self::allocate_counting) and the same `counted`.
    ///
    /// # Safety
    /// As for [`deallocate`](Self::deallocate).
    #[cold]
    #[inline(never)]
    pub(crate) unsafe fn deallocate_counting(&self, ptr: NonNull<u8>, layout: Layout, counted: usize) {
        let owner = self.is_owner();
        if !self.is_small(layout) {
            // SAFETY: large blocks come from the system allocator with this layout.
            unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) };
            self.uncharge(layout.size());
            if owner {
                self.counters().own_free(counted);
            } else {
                self.counters().other_free(counted);
            }
            return;
        }
        let class = class_of(layout.size());
        if owner {
            // SAFETY: we are the owner; the block is ours and unused (caller).
            unsafe { self.free_class_owned(ptr, class, counted) };
        } else {
            // SAFETY: the block is unused and at least 16 bytes, 16-aligned (small class).
            unsafe { self.remote.push(ptr.as_ptr().cast::<RemoteBlock>(), class) };
            self.counters().other_free(counted);
        }
    }

    /// Frees a block of `class` (`size` bytes counted) after the full owner check: the owner's
    /// path (a plain tokio task's own heap, whose identity no thread-local caches), else the
    /// remote list. Out of line, so that [`deallocate`](Self::deallocate) calls nothing on its
    /// fast path.
    ///
    /// # Safety
    /// `ptr` is an unused block of `class` of this heap, allocated with `size` counted.
    #[inline(never)]
    unsafe fn free_class_checked(&self, ptr: NonNull<u8>, class: usize, size: usize) {
        if self.is_owner() {
            // SAFETY: we are the owner; the block is ours and unused (caller).
            unsafe { self.free_class_owned(ptr, class, size) };
        } else {
            // SAFETY: the block is unused and at least 16 bytes, 16-aligned (small class).
            unsafe { self.remote.push(ptr.as_ptr().cast::<RemoteBlock>(), class) };
            self.counters().other_free(size);
        }
    }

    /// Counts a new escapable handle (`PoolBox`, `PoolVec`, `AsyncPoolGuard`).
    #[inline]
    pub(crate) fn retain_handle(&self) {
        if self.is_owner() {
            // SAFETY: we are the owner.
            unsafe { self.retain_handle_owned() };
        } else {
            self.refs.retain_remote();
        }
    }

    /// Counts a new escapable handle for a caller known to be the owner.
    ///
    /// # Safety
    /// The caller is the owner.
    #[inline(always)]
    pub(crate) unsafe fn retain_handle_owned(&self) {
        self.add_owner_handles(1);
    }

    /// Owner-only update of `owner_handles` (a load and a store: nobody else writes it).
    #[inline(always)]
    fn add_owner_handles(&self, delta: isize) {
        let n = self.owner_handles.load(Ordering::Relaxed);
        self.owner_handles.store(n + delta, Ordering::Relaxed);
    }

    /// Handles counted on this heap now, from any thread: exact when no handle of it is being
    /// made or dropped concurrently.
    pub(crate) fn live_handles(&self) -> usize {
        let owned = self.owner_handles.load(Ordering::Acquire);
        self.refs.live(owned).max(0) as usize
    }

    /// Marks a guard heap whose guard was dropped outside its task (see `place::task`).
    pub(crate) fn end_guard(&self) {
        self.guard_ended.store(true, Ordering::Release);
    }

    /// The id of the `SmartAlloc` this heap belongs to.
    #[inline(always)]
    pub(crate) fn alloc_id(&self) -> u64 {
        self.alloc_id
    }

    /// `true` once [`end_guard`](Self::end_guard) ran (since the heap was obtained).
    #[inline(always)]
    pub(crate) fn guard_ended(&self) -> bool {
        self.guard_ended.load(Ordering::Relaxed)
    }

    /// Frees a block of a compile-time class and uncounts its handle, with one ownership check
    /// for both; frees the heap if that handle was the last thing keeping it.
    ///
    /// # Safety
    /// `this` is live; `ptr` is an unused block of `class` (`size` bytes of its `T`) of this
    /// heap, and the caller held one counted handle for it, now gone.
    #[inline(always)]
    pub(crate) unsafe fn free_class_and_release(this: NonNull<HeapCore>, ptr: NonNull<u8>, class: usize, size: usize) {
        // SAFETY: live per the caller.
        let heap = unsafe { this.as_ref() };
        if heap.is_owner_cached() {
            // SAFETY: we are the owner; the block is ours (caller).
            unsafe { heap.free_owned_and_release(ptr, class, size) };
        } else {
            // SAFETY: forwarded contract.
            unsafe { Self::free_class_and_release_slow(this, ptr, class, size) };
        }
    }

    /// The owner's half of [`free_class_and_release`](Self::free_class_and_release).
    ///
    /// # Safety
    /// The caller is the owner; as for `free_class_and_release` otherwise.
    #[inline(always)]
    unsafe fn free_owned_and_release(&self, ptr: NonNull<u8>, class: usize, size: usize) {
        // SAFETY: owner, per the caller; the block is ours and unused.
        unsafe { self.free_class_owned(ptr, class, size) };
        self.add_owner_handles(-1);
    }

    /// [`free_class_and_release`](Self::free_class_and_release) when the cached identity is
    /// not the owner: checks again with the full identity.
    ///
    /// # Safety
    /// As for `free_class_and_release`.
    #[cold]
    #[inline(never)]
    unsafe fn free_class_and_release_slow(this: NonNull<HeapCore>, ptr: NonNull<u8>, class: usize, size: usize) {
        // SAFETY: live per the caller.
        let heap = unsafe { this.as_ref() };
        if heap.is_owner() {
            // SAFETY: we are the owner; forwarded contract.
            unsafe { heap.free_owned_and_release(ptr, class, size) };
        } else {
            // SAFETY: forwarded contract.
            unsafe {
                heap.deallocate_slow(ptr, Layout::from_size_align_unchecked(size, BLOCK_ALIGN));
                Self::release_handle(this);
            }
        }
    }

    /// Uncounts an escapable handle; frees the heap if it was the last thing keeping it.
    ///
    /// # Safety
    /// `this` is a live heap and the caller held one counted handle, now gone.
    #[inline]
    pub(crate) unsafe fn release_handle(this: NonNull<HeapCore>) {
        // SAFETY: live heap per the caller.
        let heap = unsafe { this.as_ref() };
        if heap.is_owner_cached() {
            heap.add_owner_handles(-1);
        } else {
            // SAFETY: forwarded contract.
            unsafe { Self::release_handle_slow(this) };
        }
    }

    /// # Safety
    /// As for [`release_handle`](Self::release_handle).
    #[cold]
    #[inline(never)]
    unsafe fn release_handle_slow(this: NonNull<HeapCore>) {
        // SAFETY: live heap per the caller.
        let heap = unsafe { this.as_ref() };
        if heap.is_owner() {
            heap.add_owner_handles(-1);
        } else if heap.refs.release_remote() {
            // SAFETY: the count reached zero: the owner is gone and so is every handle.
            unsafe { Self::destroy(this) };
        }
    }

    /// Ends ownership; frees the heap now unless escaped handles keep it. A task heap that
    /// nothing keeps is reset and handed back to be parked (dropping it frees it).
    ///
    /// # Safety
    /// `this` is live, ownership has not been released yet, and no use of the owner identity
    /// on this heap can run concurrently with this call or after it (see the module docs).
    #[must_use = "a parked heap is freed when dropped: park it or drop it"]
    pub(crate) unsafe fn release_owner(this: NonNull<HeapCore>) -> Option<ParkedHeap> {
        // SAFETY: live heap per the caller.
        let heap = unsafe { this.as_ref() };
        // Only the owner writes `owner_handles`, and the caller excludes it: no RMW needed. It
        // keeps its value: until the fold below, `live_handles` on another thread needs it
        // (zeroed first, a guard's `escaped` could count too few in between), and after it
        // `EscapeRefs::live` ignores it (a parked heap starts again from 0).
        let handles = heap.owner_handles.load(Ordering::Relaxed);
        // Handles can only be made by the owner (us, not any more) or through a live handle,
        // so `live == 0` stays 0. With escapees, the chunks they retain are counted now: once
        // ownership is folded in, the last escapee may free the heap at any moment.
        let escaped = heap.refs.live(handles) > 0;
        if escaped {
            // The owner's plain state is read here, before the fold below: after it, the last
            // escapee may free the heap.
            // SAFETY: the caller excludes the owner.
            let chunks = unsafe { heap.local() }.arena.chunk_count() + heap.foreign.lock().chunk_count();
            heap.counters().quarantined.store(chunks as u64, Ordering::Relaxed);
            heap.counters().retained.store(true, Ordering::Relaxed);
        }
        heap.owner.store(NOBODY, Ordering::Release);
        if heap.refs.release_owner(handles) {
            if escaped {
                // Dropped between the count and the fold.
                heap.counters().quarantined.store(0, Ordering::Relaxed);
                heap.counters().retained.store(false, Ordering::Relaxed);
            }
            // SAFETY: nothing refers to the heap any more.
            return unsafe { Self::reset_or_destroy(this) };
        }
        None
    }

    /// A heap nobody refers to any more: a task heap is reset to its home chunk, empty, to be
    /// parked for the next task; any other is destroyed.
    ///
    /// # Safety
    /// Nothing refers to the heap or any of its blocks any more.
    unsafe fn reset_or_destroy(this: NonNull<HeapCore>) -> Option<ParkedHeap> {
        // SAFETY: exclusive per the caller.
        let heap = unsafe { this.as_ref() };
        if heap.counters().kind != Kind::Task {
            // SAFETY: per the caller.
            unsafe { Self::destroy(this) };
            return None;
        }
        heap.owner_handles.store(0, Ordering::Relaxed);
        // Blocks of chunks being reset or returned.
        let _ = heap.remote.take_all();
        // Always reset, even when every block is back on the free lists: the next task then
        // bump-allocates in address order, which is faster in wall time than popping the last
        // task's blocks off the lists (a dependent load per allocation), although it costs more
        // instructions (clearing the lists).
        // SAFETY: exclusive per the caller: no block is used and no other thread can reach the
        // heap, so its plain state and its foreign arena (no lock needed) can be reset.
        let released = unsafe {
            let foreign = &mut *heap.foreign.data_ptr();
            let foreign_chunks = foreign.chunk_count();
            if foreign_chunks != 0 {
                foreign.release_chunks(heap.chunk_size);
            }
            heap.local().arena.trim_to_home(heap.chunk_size) + foreign_chunks
        };
        if released != 0 {
            heap.uncharge(released * heap.chunk_size);
        }
        heap.counters().reset_live();
        heap.counters().parked.store(true, Ordering::Relaxed);
        heap.refs.reset();
        Some(ParkedHeap(this))
    }

    /// Frees every chunk and the heap itself.
    ///
    /// # Safety
    /// Nothing refers to the heap or any of its blocks any more.
    unsafe fn destroy(this: NonNull<HeapCore>) {
        let p = this.as_ptr();
        // SAFETY: exclusive per the caller: the arenas are moved out of the heap, the heap is
        // dropped in place (unregistering its counters, which folds them into the totals), and
        // only then are the chunks, its home among them, given back.
        unsafe {
            let heap = &mut *p;
            let size = heap.chunk_size;
            let mut local = core::mem::replace(&mut heap.local.get_mut().arena, BlockArena::new());
            let mut foreign = core::mem::replace(heap.foreign.get_mut(), BlockArena::new());
            heap.uncharge((local.chunk_count() + foreign.chunk_count()) * size);
            core::ptr::drop_in_place(p);
            foreign.release_chunks(size);
            local.release_chunks(size);
        }
    }
}

/// A reset task heap that nothing refers to: what [`HeapCore::release_owner`] hands back, for
/// the layers above to keep for the next task ([`reuse`](Self::reuse)). Dropping it frees the
/// heap, so a parked heap cannot leak.
pub(crate) struct ParkedHeap(NonNull<HeapCore>);

// SAFETY: nothing else refers to a parked heap; it has no affinity to a thread.
unsafe impl Send for ParkedHeap {}

impl ParkedHeap {
    /// What the heap's `SmartAlloc` clones share.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        // SAFETY: the parked heap is live and ours.
        unsafe { self.0.as_ref() }.shared()
    }

    /// Takes the heap back into use, owned by `owner`.
    pub(crate) fn reuse(self, owner: u64) -> NonNull<HeapCore> {
        let this = core::mem::ManuallyDrop::new(self).0;
        // SAFETY: the parked heap is live and ours alone until handed out here.
        let heap = unsafe { this.as_ref() };
        heap.counters().parked.store(false, Ordering::Relaxed);
        heap.guard_ended.store(false, Ordering::Relaxed);
        heap.owner.store(owner, Ordering::Release);
        this
    }
}

impl Drop for ParkedHeap {
    fn drop(&mut self) {
        // SAFETY: nothing else refers to a parked heap, and it is dropped once.
        unsafe { HeapCore::destroy(self.0) };
    }
}

/// Loom models of this heap's protocols, driving the real code (see `crate::sync`).
#[cfg(all(test, loom))]
pub(crate) mod loom_models;
