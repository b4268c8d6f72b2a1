//! [`BlockArena`]: bump allocation in chunks plus one free list per size class. Plain data,
//! no synchronisation: a heap keeps one for its owner and one, behind a lock, for everyone else.
//!
//! # Granules
//!
//! Every chunk is aligned to [`GRANULE`] (16 KiB), and every granule-aligned address inside a
//! chunk starts with a [`Header`] naming the heap that owns the chunk. A block never straddles
//! a granule boundary, so [`heap_of`] finds any small block's heap from its address alone (a
//! mask and a load): that is what lets a `PoolBox` be one pointer, like a `Box`. The header of
//! a granule is written when the bump pointer enters it, before any block in it is handed out.
//!
//! # The home chunk
//!
//! A heap lives in its own first chunk, its *home*, right after that chunk's header (see
//! `HeapCore::create`), so a heap whose blocks fit there costs one chunk and nothing else:
//! the pages it touches. The home starts *dormant*: reserved, not in the chunk list, not
//! charged to any budget. The first allocation that needs a chunk *activates* it (charged
//! like any chunk, the bump region starting after the heap), and from then on it is the
//! arena's oldest chunk, kept when the heap is trimmed for reuse and freed last, after the
//! heap itself is gone.

use super::class::{CLASSES, CLASS_SIZE};
use super::core::HeapCore;
use crate::chunk::{self, GRANULE};
use crate::remote::RemoteBlock;
use core::ptr::{self, NonNull};

/// A freed block, linked through its first word.
struct FreeBlock {
    next: *mut FreeBlock,
}

/// The first 16 bytes of every granule of a chunk (so blocks after it stay 16-aligned).
#[repr(C, align(16))]
struct Header {
    /// The heap whose arena holds the chunk.
    heap: *const HeapCore,
    /// At a chunk's start: the arena's next (older) chunk. Unused in later granules.
    next: *mut Header,
}

/// Bytes of a granule's header (the home chunk's heap follows it).
pub(crate) const HEADER: usize = core::mem::size_of::<Header>();

/// The heap holding `block`.
///
/// # Safety
/// `block` is a block handed out by a [`BlockArena`] (a small-class block) and not freed yet.
#[inline(always)]
pub(crate) unsafe fn heap_of(block: NonNull<u8>) -> NonNull<HeapCore> {
    let header = block.as_ptr().map_addr(|a| a & !(GRANULE - 1)).cast::<Header>();
    // SAFETY: the block lies inside a granule of a live chunk (per the caller), whose header
    // was written before the block was handed out and names the chunk's (live) heap; the
    // pointer keeps the chunk's provenance. Nobody writes that field while blocks are live.
    unsafe { NonNull::new_unchecked((*header).heap.cast_mut()) }
}

pub(crate) struct BlockArena {
    bump: *mut u8,
    /// End of the bump region: the current chunk's end or its next granule boundary.
    end: *mut u8,
    /// End of the current chunk.
    chunk_end: *mut u8,
    free: [*mut FreeBlock; CLASSES],
    chunks: *mut Header,
    /// Chunks in the `chunks` list (the home chunk once active).
    chunk_count: usize,
    /// The heap written in the headers.
    heap: *const HeapCore,
    /// The home chunk (null for an arena without one) and whether it is active (in `chunks`).
    home: *mut u8,
    home_active: bool,
    /// Bytes after the home chunk's header that the heap itself occupies (a multiple of 16).
    home_reserved: usize,
}

// SAFETY: the arena owns plain memory (its chunks) with no tie to a thread; its owner
// (a heap) decides who may touch it, under the identity protocol or a lock.
unsafe impl Send for BlockArena {}

impl BlockArena {
    pub(crate) const fn new() -> Self {
        Self {
            bump: ptr::null_mut(),
            end: ptr::null_mut(),
            chunk_end: ptr::null_mut(),
            free: [ptr::null_mut(); CLASSES],
            chunks: ptr::null_mut(),
            chunk_count: 0,
            heap: ptr::null(),
            home: ptr::null_mut(),
            home_active: false,
            home_reserved: 0,
        }
    }

    /// Gives the arena its dormant home chunk, whose first `reserved` bytes after the header
    /// hold the heap (before any chunk is added).
    ///
    /// # Safety
    /// `home` is an unused chunk from [`chunk::acquire`] of the size the arena's chunks have,
    /// owned by this arena from now on except for the `reserved` bytes after its header; the
    /// chunk is larger than `HEADER + reserved` plus one block of every class the arena serves.
    pub(crate) unsafe fn set_home(&mut self, home: NonNull<u8>, reserved: usize) {
        debug_assert!(self.home.is_null() && self.chunks.is_null());
        debug_assert_eq!(reserved % 16, 0);
        self.home = home.as_ptr();
        self.home_reserved = reserved;
    }

    /// `true` if the home chunk is reserved but not in use yet.
    #[inline]
    pub(crate) fn home_is_dormant(&self) -> bool {
        !self.home.is_null() && !self.home_active
    }

    /// Puts the dormant home chunk (of `size` bytes) in use: it becomes the current chunk,
    /// its bump region starting after the heap.
    ///
    /// # Safety
    /// [`home_is_dormant`](Self::home_is_dormant), and `size` is the size the home was
    /// acquired with.
    pub(crate) unsafe fn activate_home(&mut self, size: usize) {
        debug_assert!(self.home_is_dormant());
        // SAFETY: the home is an unused chunk of `size` bytes owned by this arena (per
        // `set_home`), granule-aligned; the reserved bytes follow the header, so moving the
        // bump past them keeps every block off the heap.
        unsafe {
            self.add_chunk(NonNull::new_unchecked(self.home), size);
            self.bump = self.bump.add(self.home_reserved);
        }
        self.home_active = true;
    }

    /// Names the heap this arena's chunks belong to (before the first chunk is added).
    pub(crate) fn set_heap(&mut self, heap: *const HeapCore) {
        self.heap = heap;
    }

    /// A block of `class`, from its free list or the current granule; `None` when both are
    /// empty (then [`alloc_next_granule`](Self::alloc_next_granule), else a new chunk).
    #[inline]
    pub(crate) fn alloc(&mut self, class: usize) -> Option<NonNull<u8>> {
        let head = self.free[class];
        if !head.is_null() {
            // SAFETY: blocks on a free list are unused blocks of this arena's chunks whose first
            // word was written by `free`.
            self.free[class] = unsafe { (*head).next };
            // SAFETY: non-null checked above.
            return Some(unsafe { NonNull::new_unchecked(head.cast()) });
        }
        let size = CLASS_SIZE[class];
        if self.end as usize - self.bump as usize >= size {
            let p = self.bump;
            // SAFETY: `p + size <= end`, both inside (or one past) the current chunk.
            self.bump = unsafe { p.add(size) };
            // SAFETY: `p` is inside a live chunk, so non-null.
            return Some(unsafe { NonNull::new_unchecked(p) });
        }
        None
    }

    /// Moves the bump region to the current chunk's next granule (abandoning the rest of this
    /// one) and allocates `class` there; `None` if the chunk has no granule left.
    #[cold]
    pub(crate) fn alloc_next_granule(&mut self, class: usize) -> Option<NonNull<u8>> {
        if self.end == self.chunk_end {
            return None;
        }
        // `end` is a granule boundary inside the chunk.
        // SAFETY: the granule lies inside the current chunk, which this arena owns.
        unsafe { self.enter_granule(self.end, ptr::null_mut()) };
        self.alloc(class)
    }

    /// Writes the header at `granule` and makes the rest of that granule the bump region.
    ///
    /// # Safety
    /// `granule` is a granule-aligned address inside the current chunk (whose end is
    /// `chunk_end`), owned by this arena, with no block handed out in that granule.
    unsafe fn enter_granule(&mut self, granule: *mut u8, next: *mut Header) {
        debug_assert!(!self.heap.is_null(), "set_heap before adding chunks");
        debug_assert_eq!(granule as usize % GRANULE, 0);
        // SAFETY: per the caller, the granule is ours and at least `HEADER` bytes long.
        unsafe {
            granule.cast::<Header>().write(Header { heap: self.heap, next });
            self.bump = granule.add(HEADER);
        }
        let room = self.chunk_end as usize - granule as usize;
        // SAFETY: within (or one past) the chunk.
        self.end = unsafe { granule.add(room.min(GRANULE)) };
    }

    /// Puts a free block of `class` on its list.
    ///
    /// # Safety
    /// `block` is a block of `class` from a chunk of this heap, no longer in use.
    #[inline]
    pub(crate) unsafe fn free(&mut self, block: NonNull<u8>, class: usize) {
        let b = block.as_ptr().cast::<FreeBlock>();
        // SAFETY: the block is at least 16 bytes, 16-aligned and unused, per the caller.
        unsafe { b.write(FreeBlock { next: self.free[class] }) };
        self.free[class] = b;
    }

    /// Moves every block of a remote list onto the free lists.
    ///
    /// # Safety
    /// Every block on the list belongs to a chunk of the same heap and is unused.
    pub(crate) unsafe fn absorb(&mut self, mut list: *mut RemoteBlock) {
        while !list.is_null() {
            // SAFETY: written by `RemoteFreeList::push`; the block is ours now.
            let RemoteBlock { next, class } = unsafe { list.read() };
            // SAFETY: per the caller.
            unsafe { self.free(NonNull::new_unchecked(list.cast()), class) };
            list = next;
        }
    }

    /// `true` if `class` has a free block right now.
    pub(crate) fn has_free(&self, class: usize) -> bool {
        !self.free[class].is_null()
    }

    /// Makes `chunk` (of `size` bytes) the current chunk; the rest of the old one is abandoned.
    ///
    /// # Safety
    /// `chunk` is an unused chunk of `size` bytes from [`chunk::acquire`], now owned by this arena.
    pub(crate) unsafe fn add_chunk(&mut self, chunk: NonNull<u8>, size: usize) {
        let start = chunk.as_ptr();
        // SAFETY: one past the end of the chunk.
        self.chunk_end = unsafe { start.add(size) };
        // SAFETY: the chunk is granule-aligned, unused and at least 4 KiB.
        unsafe { self.enter_granule(start, self.chunks) };
        self.chunks = start.cast();
        self.chunk_count += 1;
    }

    pub(crate) fn chunk_count(&self) -> usize {
        self.chunk_count
    }

    /// Keeps only the home chunk (emptied, still active if it was), for reuse; returns the
    /// others. Forgets every free block. Returns how many chunks were given back.
    ///
    /// # Safety
    /// No block of the arena is used any more.
    pub(crate) unsafe fn trim_to_home(&mut self, size: usize) -> usize {
        let (heap, home, reserved, active) = (self.heap, self.home, self.home_reserved, self.home_active);
        let released = self.chunk_count - usize::from(active);
        // SAFETY: per the caller, nothing in the arena's chunks is used; the home is skipped.
        unsafe { self.release_list(size, home) };
        *self = BlockArena::new();
        self.heap = heap;
        if !home.is_null() {
            // SAFETY: the home chunk stays ours, unused but for the heap's reserved bytes.
            unsafe { self.set_home(NonNull::new_unchecked(home), reserved) };
            if active {
                // SAFETY: dormant again just above, same size; re-adding it rewinds its bump.
                unsafe { self.activate_home(size) };
            }
        }
        released
    }

    /// Returns every chunk of the list except `keep` (null: none kept).
    ///
    /// # Safety
    /// No block of those chunks is used any more.
    unsafe fn release_list(&mut self, size: usize, keep: *mut u8) {
        let mut c = self.chunks;
        while !c.is_null() {
            // SAFETY: every link was written by `add_chunk` and the chunk is still ours.
            let next = unsafe { (*c).next };
            if c.cast::<u8>() != keep {
                // SAFETY: the chunk came from `chunk::acquire(size)` and nothing uses it (caller).
                unsafe { chunk::release(NonNull::new_unchecked(c.cast()), size) };
            }
            c = next;
        }
    }

    /// Returns every chunk (all of `size` bytes), the home chunk included, and empties the
    /// arena.
    ///
    /// # Safety
    /// No block of the arena is used any more, and nothing uses the home chunk's reserved
    /// bytes any more (the heap there is gone: call this on an arena moved out of it).
    pub(crate) unsafe fn release_chunks(&mut self, size: usize) {
        let home = self.home;
        // SAFETY: per the caller; the home is released below, once.
        unsafe { self.release_list(size, home) };
        if !home.is_null() {
            // SAFETY: the home came from `chunk::acquire(size)` and nothing uses it (caller).
            unsafe { chunk::release(NonNull::new_unchecked(home), size) };
        }
        let heap = self.heap;
        *self = Self::new();
        self.heap = heap;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::chunk;

    const SIZE: usize = 4096;

    /// A stand-in heap address for arenas tested alone (only compared, never read as a heap).
    fn arena() -> BlockArena {
        let mut a = BlockArena::new();
        a.set_heap(NonNull::<HeapCore>::dangling().as_ptr());
        a
    }

    #[test]
    fn bump_then_reuse_freed_blocks_lifo() {
        let mut a = arena();
        assert!(a.alloc(0).is_none(), "no chunk yet");
        // SAFETY: a fresh chunk, given to the arena.
        unsafe { a.add_chunk(chunk::acquire(SIZE).unwrap(), SIZE) };
        let x = a.alloc(0).unwrap();
        let y = a.alloc(0).unwrap();
        assert_eq!(y.as_ptr() as usize - x.as_ptr() as usize, CLASS_SIZE[0]);
        assert_eq!(x.as_ptr() as usize % 16, 0);
        // SAFETY: both blocks are unused blocks of class 0 of this arena.
        unsafe {
            a.free(x, 0);
            a.free(y, 0);
        }
        assert!(a.has_free(0) && !a.has_free(1));
        assert_eq!(a.alloc(0), Some(y));
        assert_eq!(a.alloc(0), Some(x));
        // SAFETY: nothing is in use.
        unsafe { a.release_chunks(SIZE) };
        assert_eq!(a.chunk_count(), 0);
    }

    #[test]
    fn a_chunk_runs_out_and_remote_blocks_are_absorbed() {
        let mut a = arena();
        // SAFETY: a fresh chunk, given to the arena.
        unsafe { a.add_chunk(chunk::acquire(SIZE).unwrap(), SIZE) };
        let class = CLASSES - 1; // 4096-byte blocks do not fit next to the header
        assert!(a.alloc(class).is_none());
        assert!(a.alloc_next_granule(class).is_none(), "a 4 KiB chunk is one granule");
        let per_chunk = (SIZE - HEADER) / CLASS_SIZE[3];
        let blocks: Vec<_> = (0..per_chunk).map(|_| a.alloc(3).unwrap()).collect();
        assert!(a.alloc(3).is_none(), "chunk exhausted");
        let list = crate::remote::RemoteFreeList::new();
        for b in &blocks {
            // SAFETY: unused blocks of this arena.
            unsafe { list.push(b.as_ptr().cast(), 3) };
        }
        // SAFETY: the list holds unused blocks of this arena.
        unsafe { a.absorb(list.take_all()) };
        let again: Vec<_> = (0..per_chunk).map(|_| a.alloc(3).unwrap()).collect();
        assert_eq!(again.len(), blocks.len());
        // SAFETY: nothing is in use.
        unsafe { a.release_chunks(SIZE) };
    }

    #[test]
    fn blocks_never_straddle_a_granule_and_name_their_heap() {
        const BIG: usize = 4 * GRANULE;
        let mut a = arena();
        // SAFETY: a fresh chunk, given to the arena.
        unsafe { a.add_chunk(chunk::acquire(BIG).unwrap(), BIG) };
        let class = CLASSES - 1; // 4096-byte blocks: three per granule after its header
        let mut blocks = Vec::new();
        while let Some(b) = a.alloc(class).or_else(|| a.alloc_next_granule(class)) {
            blocks.push(b);
        }
        assert_eq!(blocks.len(), 4 * 3, "every granule of the chunk was used");
        for b in &blocks {
            let start = b.as_ptr() as usize;
            assert_eq!(start / GRANULE, (start + CLASS_SIZE[class] - 1) / GRANULE, "straddles a granule");
            assert_ne!(start % GRANULE, 0, "overlaps a header");
            // SAFETY: a live block of the arena.
            assert_eq!(unsafe { heap_of(*b) }.as_ptr().cast_const(), a.heap);
        }
        // SAFETY: nothing is in use.
        unsafe { a.release_chunks(BIG) };
    }
}
