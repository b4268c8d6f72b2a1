//! [`FrameChunk`]: one chunk of a frame arena, with the count of handles that still point
//! into it.
//!
//! A chunk is owned by its arena while it is in the arena's list. When a frame is recycled
//! while a handle still points into one of its chunks, or the arena goes away, the chunk is
//! *detached* instead of reused: it then belongs to its handles, and the last one to drop
//! frees it. Everything here runs on the arena's thread (frame handles are `!Send`).

use crate::shared::Registration;
use crate::stats::Counters;
use core::cell::Cell;
use core::ptr::NonNull;
use std::alloc::{alloc, dealloc, Layout};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;

/// What chunks and handles share with their arena: its registered counters.
pub(crate) struct ArenaStats {
    pub(crate) reg: Registration,
}

/// Header at the start of every frame chunk.
#[repr(C, align(16))]
pub(crate) struct FrameChunk {
    /// Counted handles pointing into the chunk, plus [`DETACHED`] once the arena let it go.
    live: Cell<usize>,
    /// The arena's counters, kept alive by `stats`: a handle's drop reaches them in one load.
    counters: NonNull<Counters>,
    size: usize,
    stats: Rc<ArenaStats>,
}

/// Added to `live` when the chunk leaves its arena with handles still in it: the last
/// handle's release then sees exactly `DETACHED`, so one compare covers both conditions.
const DETACHED: usize = 1 << (usize::BITS - 1);

/// Bytes of the header; data starts right after.
pub(crate) const HEADER: usize = core::mem::size_of::<FrameChunk>();
const ALIGN: usize = 16;

impl FrameChunk {
    /// A new chunk of `size` bytes (header included), or `None` if the system refuses.
    pub(crate) fn create(size: usize, stats: &Rc<ArenaStats>) -> Option<NonNull<FrameChunk>> {
        let layout = Layout::from_size_align(size, ALIGN).ok()?;
        // SAFETY: `size > HEADER > 0`.
        let p = NonNull::new(unsafe { alloc(layout) })?.cast::<FrameChunk>();
        // SAFETY: fresh memory, sized and aligned for the header.
        unsafe {
            p.as_ptr().write(FrameChunk {
                live: Cell::new(0),
                counters: NonNull::from(&**stats.reg.counters()),
                size,
                stats: stats.clone(),
            })
        };
        Some(p)
    }

    /// First byte after the header.
    pub(crate) fn data_start(this: NonNull<FrameChunk>) -> *mut u8 {
        // SAFETY: the chunk is larger than its header.
        unsafe { this.as_ptr().cast::<u8>().add(HEADER) }
    }

    /// One past the last byte.
    pub(crate) fn end(this: NonNull<FrameChunk>) -> *mut u8 {
        // SAFETY: `size` is the chunk's length.
        unsafe { this.as_ptr().cast::<u8>().add((*this.as_ptr()).size) }
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// What every clone of the chunk's `SmartAlloc` shares (a handle's way back to its arena).
    pub(crate) fn shared(&self) -> &std::sync::Arc<crate::shared::Shared> {
        self.stats.reg.shared()
    }

    pub(crate) fn live(&self) -> usize {
        self.live.get()
    }

    /// A new counted handle points into this chunk.
    #[inline(always)]
    pub(crate) fn retain(&self) {
        self.live.set(self.live.get() + 1);
    }

    /// A counted handle of `bytes` dropped; frees a detached chunk whose last handle it was.
    ///
    /// # Safety
    /// `this` is live and the caller held one counted handle into it, now gone.
    #[inline(always)]
    pub(crate) unsafe fn release(this: NonNull<FrameChunk>, bytes: usize) {
        // SAFETY: live per the caller.
        let c = unsafe { this.as_ref() };
        // SAFETY: the counters live as long as `c.stats`, which the live chunk holds.
        unsafe { c.counters.as_ref() }.own_free(bytes);
        let live = c.live.get() - 1;
        c.live.set(live);
        if live == DETACHED {
            // SAFETY: detached and no handle left: nobody refers to the chunk.
            unsafe { Self::free_detached(this) };
        }
    }

    /// The last handle of a detached chunk is gone: frees it.
    ///
    /// # Safety
    /// Nothing refers to the chunk any more.
    #[cold]
    #[inline(never)]
    unsafe fn free_detached(this: NonNull<FrameChunk>) {
        // SAFETY: live per the caller.
        unsafe { this.as_ref() }.stats.reg.counters().quarantined.fetch_sub(1, Relaxed);
        // SAFETY: per the caller.
        unsafe { Self::free(this) };
    }

    /// Leaves the arena: freed now if no handle points into it, else by its last handle.
    ///
    /// # Safety
    /// `this` is live and was just removed from its arena's list.
    pub(crate) unsafe fn detach(this: NonNull<FrameChunk>) {
        // SAFETY: live per the caller.
        let c = unsafe { this.as_ref() };
        if c.live.get() == 0 {
            // SAFETY: no handle and no arena refer to it.
            unsafe { Self::free(this) };
        } else {
            c.live.set(c.live.get() + DETACHED);
            c.stats.reg.counters().quarantined.fetch_add(1, Relaxed);
        }
    }

    /// # Safety
    /// Nothing refers to the chunk any more.
    pub(crate) unsafe fn free(this: NonNull<FrameChunk>) {
        // SAFETY: the header was written by `create`; read it out to drop its `Rc`.
        let header = unsafe { this.as_ptr().read() };
        header.stats.reg.counters().held.fetch_sub(header.size as u64, Relaxed);
        header.stats.reg.shared().uncharge(header.size);
        let layout = Layout::from_size_align(header.size, ALIGN).expect("valid at creation");
        drop(header);
        // SAFETY: allocated by `create` with this layout.
        unsafe { dealloc(this.as_ptr().cast(), layout) };
    }
}
