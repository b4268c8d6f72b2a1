//! [`FrameArena`]: one thread's frame memory for one `SmartAlloc`.
//!
//! Bump allocation *downwards* through a list of chunks (the first small, each new one twice
//! the last, up to the configured maximum). The fast path is a subtract, a mask and a compare
//! against `limit`; everything else (next chunk, new chunk, budget) is out of line.
//!
//! * `end_frame` only closes the frame: its memory stays readable.
//! * `begin_frame` recycles: if no counted handle is alive anywhere in the arena (the usual
//!   case) it rewinds to the first chunk in O(1), whatever was allocated; otherwise the chunks
//!   still pointed into are detached (quarantined, freed by their last handle) and the rest
//!   rewound.
//! * The frame budget is folded into `limit`: when the budget would end inside the current
//!   chunk, `limit` is raised to that point, so the fast path needs no extra check.
//! * `begin_frame` recycles in O(1) when no counted handle is alive (the arena's live bytes are
//!   zero: every counted handle holds a non-zero size there), without touching any chunk; else
//!   in O(chunks used by the frame): it checks each for live handles (one load each; chunks
//!   double in size, so that is a handful) and rewinds to the first.
//! * `frame_scope` marks the bump position; the outermost scope rewinds to it on exit, unless a
//!   counted (handle) allocation was made in between. Nested scopes do not rewind: an outer
//!   scope may allocate while an inner one is open, and its values must survive the inner exit.
//!   Their memory comes back when the outermost scope ends, so a scope allocation costs a bump
//!   and a count, with no check of who else is allocating.

use super::chunk::{ArenaStats, FrameChunk, HEADER};
use crate::error::{fail, AllocError, Budget};
use crate::identity;
use crate::shared::Shared;
use crate::stats::{Counters, Kind};
use core::cell::{Cell, RefCell};
use core::ptr::{self, NonNull};
use std::alloc::Layout;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

pub(crate) struct FrameArena {
    /// Next allocation ends at or below this address.
    ptr: Cell<*mut u8>,
    /// Allocations may not start below this address (chunk data start or budget floor).
    limit: Cell<*mut u8>,
    /// The chunk `ptr` is in.
    cur: Cell<Option<NonNull<FrameChunk>>>,
    /// Index of `cur` in `chunks`.
    cur_index: Cell<usize>,
    chunks: RefCell<Vec<NonNull<FrameChunk>>>,
    /// Bytes handed out this frame in chunks before the current segment.
    used_before: Cell<usize>,
    /// `ptr` when the current segment (chunk) started.
    seg_start: Cell<*mut u8>,
    /// The registered counters (kept alive by `stats`). Their allocation count doubles as
    /// the sequence number scope rewinds check.
    counters: NonNull<Counters>,
    frame_open: Cell<bool>,
    /// Depth of the innermost open scope (0: none).
    open_scopes: Cell<usize>,
    /// Allocations of ended scopes, counted into the counters at scope exit.
    scope_allocations: Cell<u64>,
    /// The innermost open scope (a `FrameScope`, opaque here): its chain of enclosing scopes
    /// is what sums the open scopes' bytes at a scope's exit (see `scope::run`).
    innermost_scope: Cell<*const ()>,
    next_chunk: Cell<usize>,
    stats: Rc<ArenaStats>,
    max_chunk: usize,
    budget: Option<usize>,
}

/// Where a scope started.
#[derive(Clone, Copy)]
pub(crate) struct Mark {
    ptr: *mut u8,
    limit: *mut u8,
    cur: Option<NonNull<FrameChunk>>,
    cur_index: usize,
    used_before: usize,
    seg_start: *mut u8,
    /// Counted (handle) allocations so far: the counters' total minus scope allocations.
    counted: u64,
    /// Depth of the scope this mark opens.
    pub(crate) depth: usize,
}

impl FrameArena {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        let cfg = &shared.config;
        let stats = Rc::new(ArenaStats { reg: shared.register(Kind::Frame) });
        Self {
            counters: NonNull::from(&**stats.reg.counters()),
            ptr: Cell::new(ptr::null_mut()),
            limit: Cell::new(ptr::null_mut()),
            cur: Cell::new(None),
            cur_index: Cell::new(0),
            chunks: RefCell::new(Vec::new()),
            used_before: Cell::new(0),
            seg_start: Cell::new(ptr::null_mut()),
            frame_open: Cell::new(false),
            open_scopes: Cell::new(0),
            scope_allocations: Cell::new(0),
            innermost_scope: Cell::new(ptr::null()),
            next_chunk: Cell::new(cfg.frame_chunk_bytes),
            stats,
            max_chunk: cfg.frame_chunk_max_bytes,
            budget: cfg.max_frame_bytes,
        }
    }

    /// Bump-down fast path: `None` if the current segment cannot hold `layout`.
    #[inline(always)]
    pub(crate) fn bump(&self, layout: Layout) -> Option<NonNull<u8>> {
        let ptr = self.ptr.get();
        let addr = ptr as usize;
        let new = addr.checked_sub(layout.size())? & !(layout.align() - 1);
        if new < self.limit.get() as usize {
            return None;
        }
        // Derive from `ptr` to keep its provenance; `new <= addr` and both are in the chunk.
        let p = ptr.wrapping_sub(addr - new);
        self.ptr.set(p);
        // SAFETY: `new >= limit > 0`.
        Some(unsafe { NonNull::new_unchecked(p) })
    }

    /// Allocates `layout` (any size, zero included) for a counted handle: returns the block and
    /// the chunk it is in, with the handle already counted there.
    #[inline(always)]
    pub(crate) fn alloc_counted(
        &self,
        layout: Layout,
    ) -> Result<(NonNull<u8>, Option<NonNull<FrameChunk>>), AllocError> {
        if layout.size() == 0 {
            return Ok((dangling(layout), None));
        }
        match self.bump_counted(layout) {
            Some(r) => Ok(r),
            None => self.alloc_counted_slow(layout),
        }
    }

    /// [`alloc_counted`](Self::alloc_counted) for the panicking forms: the fast path inline,
    /// everything else (a new segment, or the panic on an error) out of line.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn alloc_counted_or_fail(&self, layout: Layout) -> (NonNull<u8>, Option<NonNull<FrameChunk>>) {
        if layout.size() == 0 {
            return (dangling(layout), None);
        }
        match self.bump_counted(layout) {
            Some(r) => r,
            None => self.alloc_counted_cold(layout),
        }
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn alloc_counted_cold(&self, layout: Layout) -> (NonNull<u8>, Option<NonNull<FrameChunk>>) {
        match self.alloc_counted_slow(layout) {
            Ok(r) => r,
            Err(e) => fail(e),
        }
    }

    /// The fast path of [`alloc_counted`](Self::alloc_counted) for a non-zero size: a bump
    /// in the current segment, counted in the current chunk; `None` (nothing done) if the
    /// segment is full.
    #[inline(always)]
    fn bump_counted(&self, layout: Layout) -> Option<(NonNull<u8>, Option<NonNull<FrameChunk>>)> {
        let p = self.bump(layout)?;
        Some((p, self.count_in_current(layout.size())))
    }

    /// Counts a handle of `size` bytes just bumped in the current chunk, and returns that
    /// chunk (read once: the count's store may alias `cur` as far as the compiler knows).
    #[inline(always)]
    fn count_in_current(&self, size: usize) -> Option<NonNull<FrameChunk>> {
        // A bump succeeded, so there is a current chunk (with none, `ptr` is null and every
        // non-zero bump fails).
        let cur = self.cur.get();
        if let Some(chunk) = cur {
            // SAFETY: the current chunk is owned by this arena and live.
            unsafe { chunk.as_ref() }.retain();
        }
        self.note_alloc(size);
        cur
    }

    /// [`alloc_counted`](Self::alloc_counted) when the current segment is full.
    #[cold]
    #[inline(never)]
    fn alloc_counted_slow(&self, layout: Layout) -> Result<(NonNull<u8>, Option<NonNull<FrameChunk>>), AllocError> {
        let p = self.alloc_slow(layout)?;
        Ok((p, self.count_in_current(layout.size())))
    }

    /// Allocates `layout` for a scope (not counted: the scope counts its allocations and
    /// reports them when it ends).
    #[inline(always)]
    pub(crate) fn alloc_scoped(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        if layout.size() == 0 {
            return Ok(dangling(layout));
        }
        match self.bump(layout) {
            Some(p) => Ok(p),
            None => self.alloc_slow(layout),
        }
    }

    #[inline(always)]
    fn counters(&self) -> &Counters {
        // SAFETY: the counters live in an `Arc` held by `self.stats`, which lives as long as
        // `self`.
        unsafe { self.counters.as_ref() }
    }

    #[inline(always)]
    fn note_alloc(&self, size: usize) {
        self.counters().own_alloc(size);
    }

    /// Bytes handed out this frame so far.
    fn used(&self) -> usize {
        if self.cur.get().is_some() {
            self.used_now()
        } else {
            self.used_before.get()
        }
    }

    fn used_now(&self) -> usize {
        self.used_before.get() + (self.seg_start.get() as usize - self.ptr.get() as usize)
    }

    /// The current segment cannot serve `layout`: check the budget, then use the rest of the
    /// current chunk, the next chunk in the list, or a new one.
    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let cap = self.budget.unwrap_or(usize::MAX);
        let used = self.used();
        // `needed` counts the alignment padding the request would take too.
        let over = |needed| AllocError::budget(Budget::Frame, cap, used, layout.size(), needed, identity::current());
        if used.saturating_add(layout.size()) > cap {
            return Err(over(layout.size()));
        }
        loop {
            if let Some(chunk) = self.cur.get() {
                let start = FrameChunk::data_start(chunk) as usize;
                let addr = self.ptr.get() as usize;
                if let Some(new) = addr.checked_sub(layout.size()).map(|a| a & !(layout.align() - 1)) {
                    if new >= start {
                        if used + (addr - new) > cap {
                            return Err(over(addr - new));
                        }
                        self.limit.set(FrameChunk::data_start(chunk));
                        let p = self.bump(layout).expect("fits the chunk");
                        self.apply_budget_floor();
                        return Ok(p);
                    }
                }
            }
            self.next_segment(layout)?;
        }
    }

    /// Raises `limit` to where the frame budget ends, if that is inside the current chunk.
    fn apply_budget_floor(&self) {
        let (Some(cap), Some(chunk)) = (self.budget, self.cur.get()) else { return };
        let remaining = cap.saturating_sub(self.used_now());
        let start = FrameChunk::data_start(chunk) as usize;
        let addr = self.ptr.get() as usize;
        if addr - start > remaining {
            self.limit.set(self.ptr.get().wrapping_sub(remaining));
        }
    }

    /// Moves to the next chunk of the list, or a new chunk that can hold `layout`.
    fn next_segment(&self, layout: Layout) -> Result<(), AllocError> {
        let used = self.used();
        let mut chunks = self.chunks.borrow_mut();
        let next = if self.cur.get().is_some() { self.cur_index.get() + 1 } else { 0 };
        // A request near `isize::MAX` (a `Layout` allows it) has no chunk size: an error, not
        // a wrapped size whose chunk could never hold it (the caller would loop on new chunks).
        let needed = HEADER
            .checked_add(layout.align())
            .and_then(|n| n.checked_add(layout.size()))
            .ok_or_else(AllocError::capacity_overflow)?;
        // Reuse a chunk already in the list if it is big enough; skip small ones.
        let mut idx = next;
        while idx < chunks.len() {
            // SAFETY: chunks in the list are live.
            if unsafe { chunks[idx].as_ref() }.size() >= needed {
                break;
            }
            idx += 1;
        }
        if idx == chunks.len() {
            // A request bigger than the next chunk gets a chunk of its own size, rounded to
            // whole pages (a power of two, as before, could double the memory of a large one).
            let fits = needed.checked_add(PAGE - 1).ok_or_else(AllocError::capacity_overflow)? & !(PAGE - 1);
            if fits > isize::MAX as usize {
                // No `Layout` has this size: the system allocator cannot even be asked.
                return Err(AllocError::capacity_overflow());
            }
            let mut size = self.next_chunk.get().max(fits);
            let shared = self.stats.reg.shared();
            if let Err(e) = shared.charge(size, layout.size(), identity::current()) {
                // Chunks double as the frame grows: under a total budget, the smallest chunk
                // that holds the request may still fit where the next doubled one does not.
                let smallest = fits.max(shared.config.frame_chunk_bytes);
                if smallest >= size {
                    return Err(e);
                }
                size = smallest;
                shared.charge(size, layout.size(), identity::current())?;
            }
            let Some(c) = FrameChunk::create(size, &self.stats) else {
                shared.uncharge(size);
                return Err(AllocError::out_of_memory(layout.size(), size));
            };
            self.stats.reg.counters().held.fetch_add(size as u64, Relaxed);
            self.next_chunk.set((self.next_chunk.get() * 2).min(self.max_chunk));
            chunks.push(c);
        }
        let chunk = chunks[idx];
        drop(chunks);
        self.cur.set(Some(chunk));
        self.cur_index.set(idx);
        self.ptr.set(FrameChunk::end(chunk));
        self.limit.set(FrameChunk::data_start(chunk));
        self.used_before.set(used);
        self.seg_start.set(self.ptr.get());
        Ok(())
    }

    /// Opens a frame: recycles everything the last one allocated.
    pub(crate) fn begin_frame(&self) {
        if self.open_scopes.get() != 0 {
            misuse("begin_frame() inside frame_scope(): the scope's allocations would be recycled while borrowed");
        }
        if self.frame_open.get() {
            misuse("begin_frame() called twice on this thread without end_frame() in between");
        }
        // No counted handle alive anywhere (the usual case): nothing to look at. Every counted
        // handle holds a non-zero size in the owner's live bytes (`alloc_counted`), so zero
        // there means no chunk has a count, and the chunks need not be touched at all.
        if self.cur.get().is_some() && self.counters().live() != 0 {
            self.quarantine_live_chunks();
        }
        debug_assert!(
            self.cur.get().is_none()
                // SAFETY: chunks in the list are live.
                || self.chunks.borrow().iter().all(|c| unsafe { c.as_ref() }.live() == 0)
                || self.counters().live() != 0,
            "a chunk has a counted handle that the live bytes do not show"
        );
        self.rewind_to_start();
        self.frame_open.set(true);
    }

    /// Closes the frame; its memory stays readable while its handles live (see
    /// `begin_frame`: chunks with live handles are quarantined, not recycled).
    pub(crate) fn end_frame(&self) {
        if !self.frame_open.get() {
            misuse("end_frame() called with no open frame on this thread (call begin_frame() first)");
        }
        self.frame_open.set(false);
    }

    /// Detaches every chunk of this frame that some handle still points into. Only chunks up
    /// to the current one were used (a scope never rewinds past a counted allocation).
    #[cold]
    #[inline(never)]
    fn quarantine_live_chunks(&self) {
        let used = self.cur_index.get() + 1;
        let chunks = self.chunks.borrow();
        // SAFETY: chunks in the list are live.
        if chunks[..used].iter().all(|c| unsafe { c.as_ref() }.live() == 0) {
            return;
        }
        drop(chunks);
        self.detach_live_chunks(used);
    }

    #[cold]
    fn detach_live_chunks(&self, used: usize) {
        let mut chunks = self.chunks.borrow_mut();
        let mut i = 0;
        let mut end = used;
        while i < end {
            let c = chunks[i];
            // SAFETY: chunks in the list are live.
            if unsafe { c.as_ref() }.live() == 0 {
                i += 1;
            } else {
                chunks.remove(i);
                end -= 1;
                // SAFETY: just removed from the list.
                unsafe { FrameChunk::detach(c) };
            }
        }
    }

    fn rewind_to_start(&self) {
        self.cur.set(None);
        self.cur_index.set(0);
        self.ptr.set(ptr::null_mut());
        self.limit.set(ptr::null_mut());
        self.used_before.set(0);
        self.seg_start.set(ptr::null_mut());
    }

    pub(crate) fn mark(&self) -> Mark {
        let depth = self.open_scopes.get() + 1;
        self.open_scopes.set(depth);
        Mark {
            ptr: self.ptr.get(),
            limit: self.limit.get(),
            cur: self.cur.get(),
            cur_index: self.cur_index.get(),
            used_before: self.used_before.get(),
            seg_start: self.seg_start.get(),
            counted: self.counted(),
            depth,
        }
    }

    fn counted(&self) -> u64 {
        self.counters().own_allocations() - self.scope_allocations.get()
    }

    /// Makes `scope` the innermost open scope; returns the one it encloses (null: none).
    pub(crate) fn replace_innermost_scope(&self, scope: *const ()) -> *const () {
        self.innermost_scope.replace(scope)
    }

    /// Ends the scope `mark` opened, which made `allocations`, while the open scopes (it and
    /// those around it) have `open_bytes` alive: counts them, and rewinds if it is the
    /// outermost scope and no counted allocation was made since the mark.
    pub(crate) fn end_scope(&self, mark: Mark, allocations: u64, open_bytes: u64) {
        self.open_scopes.set(mark.depth - 1);
        let clean = mark.depth == 1 && self.counted() == mark.counted;
        if allocations != 0 {
            // The allocations of every open scope (this one's and its enclosing scopes' so far)
            // are all alive now, on top of the counted ones, and this scope's die now.
            self.counters().scope_ended(allocations, open_bytes);
            self.scope_allocations.set(self.scope_allocations.get() + allocations);
        }
        if !clean {
            return;
        }
        self.ptr.set(mark.ptr);
        self.limit.set(mark.limit);
        self.cur.set(mark.cur);
        self.cur_index.set(mark.cur_index);
        self.used_before.set(mark.used_before);
        self.seg_start.set(mark.seg_start);
    }
}

impl Drop for FrameArena {
    fn drop(&mut self) {
        for c in self.chunks.get_mut().drain(..) {
            // SAFETY: removed from the list; detach frees it or leaves it to its handles.
            unsafe { FrameChunk::detach(c) };
        }
    }
}

/// Chunks made for one large request are rounded up to a multiple of this.
const PAGE: usize = 4096;

/// An aligned, non-null pointer with no provenance, for zero-sized values.
pub(crate) fn dangling(layout: Layout) -> NonNull<u8> {
    NonNull::new(ptr::without_provenance_mut(layout.align())).expect("alignment is non-zero")
}

#[cold]
#[track_caller]
fn misuse(msg: &str) -> ! {
    panic!("framealloc: {msg}")
}
