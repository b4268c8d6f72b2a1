//! Size classes of task heaps: 28 classes from 16 B to 4 KiB, each a multiple of 16 so every
//! block stays 16-aligned. Spacing grows with size (16, 32, 64, 128, 256, 512 B steps), so a
//! request wastes less than 16 bytes up to 128 B, and at most a quarter of its size above.

/// Number of size classes.
pub(crate) const CLASSES: usize = 28;

/// Largest size any class serves.
pub(crate) const MAX_CLASS_SIZE: usize = 4096;

/// Every block is at least this aligned; larger alignments go to the system allocator.
pub(crate) const BLOCK_ALIGN: usize = 16;

/// Block size of each class.
pub(crate) const CLASS_SIZE: [usize; CLASSES] = {
    let mut t = [0; CLASSES];
    let mut i = 0;
    let mut size = 0;
    while i < CLASSES {
        let step = if size < 128 {
            16
        } else if size < 256 {
            32
        } else if size < 512 {
            64
        } else if size < 1024 {
            128
        } else if size < 2048 {
            256
        } else {
            512
        };
        size += step;
        t[i] = size;
        i += 1;
    }
    t
};

/// Class of each size rounded up to 16, indexed by `(size + 15) / 16`.
const CLASS_OF: [u8; MAX_CLASS_SIZE / 16 + 1] = {
    let mut t = [0u8; MAX_CLASS_SIZE / 16 + 1];
    let mut i = 0;
    let mut class = 0;
    while i < t.len() {
        let size = i * 16;
        while CLASS_SIZE[class] < size {
            class += 1;
        }
        t[i] = class as u8;
        i += 1;
    }
    t
};

/// The class serving `size` bytes (`1..=MAX_CLASS_SIZE`).
#[inline]
pub(crate) const fn class_of(size: usize) -> usize {
    debug_assert!(size > 0 && size <= MAX_CLASS_SIZE);
    CLASS_OF[(size + 15) >> 4] as usize
}

/// Sizes every heap serves from a class, whatever its chunk size (chunks are at least 4 KiB
/// and serve up to a quarter of that).
pub(crate) const ALWAYS_SMALL: usize = 1024;

/// The class of a `T`, known at compile time, when every heap serves it from a class.
pub(crate) struct ClassOf<T>(core::marker::PhantomData<T>);

impl<T> ClassOf<T> {
    pub(crate) const SMALL: Option<usize> = {
        let (size, align) = (core::mem::size_of::<T>(), core::mem::align_of::<T>());
        if size > 0 && size <= ALWAYS_SMALL && align <= BLOCK_ALIGN {
            Some(class_of(size))
        } else {
            None
        }
    };
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_every_size_tightly() {
        assert_eq!(CLASS_SIZE[CLASSES - 1], MAX_CLASS_SIZE);
        for size in 1..=MAX_CLASS_SIZE {
            let c = class_of(size);
            assert!(CLASS_SIZE[c] >= size, "class {c} too small for {size}");
            assert_eq!(CLASS_SIZE[c] % BLOCK_ALIGN, 0);
            if c > 0 {
                assert!(CLASS_SIZE[c - 1] < size, "{size} could use the smaller class {}", c - 1);
            }
            let waste = CLASS_SIZE[c] - size;
            assert!(waste < 16 || waste * 4 <= size, "{size} wastes {waste} in class {c}");
        }
    }
}
