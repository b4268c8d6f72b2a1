//! [`BlockArena`]: bump allocation in chunks plus one free list per size class. Plain data,
//! no synchronisation: a heap keeps one for its owner and one, behind a lock, for everyone else.

use super::class::{CLASSES, CLASS_SIZE};
use crate::chunk;
use crate::remote::RemoteBlock;
use core::ptr::{self, NonNull};

/// A freed block, linked through its first word.
struct FreeBlock {
    next: *mut FreeBlock,
}

/// Each chunk starts with this link (16 bytes, so blocks after it stay 16-aligned).
#[repr(C, align(16))]
struct ChunkLink {
    next: *mut ChunkLink,
}

const LINK: usize = core::mem::size_of::<ChunkLink>();

pub(crate) struct BlockArena {
    bump: *mut u8,
    end: *mut u8,
    free: [*mut FreeBlock; CLASSES],
    chunks: *mut ChunkLink,
    chunk_count: usize,
}

// SAFETY: the arena owns plain memory (its chunks) with no tie to a thread; its owner
// (a heap) decides who may touch it, under the identity protocol or a lock.
unsafe impl Send for BlockArena {}

impl BlockArena {
    pub(crate) const fn new() -> Self {
        Self { bump: ptr::null_mut(), end: ptr::null_mut(), free: [ptr::null_mut(); CLASSES], chunks: ptr::null_mut(), chunk_count: 0 }
    }

    /// A block of `class`, from its free list or the current chunk; `None` when both are empty.
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
        let link = chunk.as_ptr().cast::<ChunkLink>();
        // SAFETY: the chunk is at least 4 KiB and 16-aligned.
        unsafe { link.write(ChunkLink { next: self.chunks }) };
        self.chunks = link;
        // SAFETY: both offsets are within (or one past) the chunk of `size > LINK` bytes.
        unsafe {
            self.bump = chunk.as_ptr().add(LINK);
            self.end = chunk.as_ptr().add(size);
        }
        self.chunk_count += 1;
    }

    pub(crate) fn chunk_count(&self) -> usize {
        self.chunk_count
    }

    /// Keeps only the newest chunk, empty, for reuse; returns the others. Forgets every free
    /// block. Returns how many chunks were given back.
    ///
    /// # Safety
    /// No block of the arena is used any more.
    pub(crate) unsafe fn trim_to_newest(&mut self, size: usize) -> usize {
        let newest = self.chunks;
        if newest.is_null() {
            return 0;
        }
        // SAFETY: the newest link was written by `add_chunk`; detach the older ones.
        let older = unsafe { core::mem::replace(&mut (*newest).next, ptr::null_mut()) };
        let mut rest = BlockArena { chunks: older, ..BlockArena::new() };
        let released = self.chunk_count - 1;
        // SAFETY: per the caller, nothing in the older chunks is used.
        unsafe { rest.release_chunks(size) };
        *self = BlockArena::new();
        // SAFETY: the newest chunk is unused and stays ours; re-adding it rewinds its bump.
        unsafe { self.add_chunk(NonNull::new_unchecked(newest.cast()), size) };
        released
    }

    /// Returns every chunk (all of `size` bytes) and empties the arena.
    ///
    /// # Safety
    /// No block of the arena is used any more.
    pub(crate) unsafe fn release_chunks(&mut self, size: usize) {
        let mut c = self.chunks;
        while !c.is_null() {
            // SAFETY: every link was written by `add_chunk` and the chunk is still ours.
            let next = unsafe { (*c).next };
            // SAFETY: the chunk came from `chunk::acquire(size)` and nothing uses it (caller).
            unsafe { chunk::release(NonNull::new_unchecked(c.cast()), size) };
            c = next;
        }
        *self = Self::new();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::chunk;

    const SIZE: usize = 4096;

    #[test]
    fn bump_then_reuse_freed_blocks_lifo() {
        let mut a = BlockArena::new();
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
        let mut a = BlockArena::new();
        // SAFETY: a fresh chunk, given to the arena.
        unsafe { a.add_chunk(chunk::acquire(SIZE).unwrap(), SIZE) };
        let class = CLASSES - 1; // 4096-byte blocks do not fit next to the link
        assert!(a.alloc(class).is_none());
        let per_chunk = (SIZE - LINK) / CLASS_SIZE[3];
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
}
