//! [`IntoIter`] and [`Drain`], shared by every vector kind.

use super::RawVec;
use core::fmt;
use core::iter::FusedIterator;
use core::ptr;

/// The by-value iterator of a vector (`V` is `FrameVec<'a, T>`, `TaskVec<'a, T>` or
/// `PoolVec<T>`): yields the elements in order, drops those not yielded and frees the buffer
/// when dropped.
pub struct IntoIter<V: RawVec> {
    /// The vector, its length set to 0: it owns the buffer, no element.
    vec: V,
    /// The elements `[head, tail)` are initialised and not yet yielded.
    head: usize,
    tail: usize,
}

impl<V: RawVec> IntoIter<V> {
    #[inline]
    pub(crate) fn new(mut vec: V) -> Self {
        let tail = vec.raw_len();
        // SAFETY: the elements are now the iterator's; the vector keeps its buffer only.
        unsafe { vec.raw_set_len(0) };
        Self { vec, head: 0, tail }
    }

    /// The elements not yet yielded.
    pub fn as_slice(&self) -> &[V::Elem] {
        // SAFETY: `[head, tail)` are initialised and owned by the iterator.
        unsafe { core::slice::from_raw_parts(self.vec.raw_ptr().add(self.head), self.tail - self.head) }
    }

    /// The elements not yet yielded, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [V::Elem] {
        // SAFETY: as above, borrowed mutably through `&mut self`.
        unsafe { core::slice::from_raw_parts_mut(self.vec.raw_ptr().add(self.head), self.tail - self.head) }
    }
}

impl<V: RawVec> Iterator for IntoIter<V> {
    type Item = V::Elem;

    #[inline]
    fn next(&mut self) -> Option<V::Elem> {
        if self.head == self.tail {
            return None;
        }
        self.head += 1;
        // SAFETY: the element at the old `head` is initialised and no longer counted, so it is
        // read once.
        Some(unsafe { self.vec.raw_ptr().add(self.head - 1).read() })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.tail - self.head;
        (n, Some(n))
    }
}

impl<V: RawVec> DoubleEndedIterator for IntoIter<V> {
    #[inline]
    fn next_back(&mut self) -> Option<V::Elem> {
        if self.head == self.tail {
            return None;
        }
        self.tail -= 1;
        // SAFETY: as in `next`, at the back.
        Some(unsafe { self.vec.raw_ptr().add(self.tail).read() })
    }
}

impl<V: RawVec> ExactSizeIterator for IntoIter<V> {}

impl<V: RawVec> FusedIterator for IntoIter<V> {}

impl<V: RawVec> Drop for IntoIter<V> {
    fn drop(&mut self) {
        let (head, tail) = (self.head, self.tail);
        self.head = tail;
        // SAFETY: the elements not yielded are dropped once (uncounted first). The vector
        // field drops after this, also if one of these drops panics, and frees the buffer.
        unsafe { ptr::drop_in_place(ptr::slice_from_raw_parts_mut(self.vec.raw_ptr().add(head), tail - head)) };
    }
}

impl<V: RawVec> fmt::Debug for IntoIter<V>
where
    V::Elem: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IntoIter").field(&self.as_slice()).finish()
    }
}

/// The iterator of a vector's `drain(range)`: yields the removed elements; when dropped, it
/// drops those not yielded and moves the elements after the range down.
///
/// Forgetting it (`mem::forget`) leaks the range and the elements after it; the vector keeps
/// those before.
pub struct Drain<'v, V: RawVec> {
    vec: &'v mut V,
    /// The removed elements `[head, end)` are initialised and not yet yielded.
    head: usize,
    end: usize,
    /// The elements after the range: `[tail_start, tail_start + tail_len)`.
    tail_start: usize,
    tail_len: usize,
}

impl<'v, V: RawVec> Drain<'v, V> {
    /// # Safety
    /// `start <= end <= len == vec.raw_len()`.
    #[inline]
    pub(crate) unsafe fn new(vec: &'v mut V, start: usize, end: usize, len: usize) -> Self {
        // SAFETY: the vector keeps `[0, start)`; the drain owns the rest until it drops.
        unsafe { vec.raw_set_len(start) };
        Self { vec, head: start, end, tail_start: end, tail_len: len - end }
    }

    /// The removed elements not yet yielded.
    pub fn as_slice(&self) -> &[V::Elem] {
        // SAFETY: `[head, end)` are initialised and owned by the drain.
        unsafe { core::slice::from_raw_parts(self.vec.raw_ptr().add(self.head), self.end - self.head) }
    }
}

impl<V: RawVec> Iterator for Drain<'_, V> {
    type Item = V::Elem;

    #[inline]
    fn next(&mut self) -> Option<V::Elem> {
        if self.head == self.end {
            return None;
        }
        self.head += 1;
        // SAFETY: initialised and no longer counted: read once.
        Some(unsafe { self.vec.raw_ptr().add(self.head - 1).read() })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.head;
        (n, Some(n))
    }
}

impl<V: RawVec> DoubleEndedIterator for Drain<'_, V> {
    #[inline]
    fn next_back(&mut self) -> Option<V::Elem> {
        if self.head == self.end {
            return None;
        }
        self.end -= 1;
        // SAFETY: as in `next`, at the back.
        Some(unsafe { self.vec.raw_ptr().add(self.end).read() })
    }
}

impl<V: RawVec> ExactSizeIterator for Drain<'_, V> {}

impl<V: RawVec> FusedIterator for Drain<'_, V> {}

impl<V: RawVec> Drop for Drain<'_, V> {
    fn drop(&mut self) {
        /// Moves the tail down behind the kept elements, also if a drop below panics.
        struct MoveTail<'d, 'v, V: RawVec>(&'d mut Drain<'v, V>);
        impl<V: RawVec> Drop for MoveTail<'_, '_, V> {
            fn drop(&mut self) {
                let d = &mut *self.0;
                let start = d.vec.raw_len();
                // SAFETY: the tail is initialised and owned by the drain; it moves (possibly
                // overlapping) right behind the kept elements, and is counted again.
                unsafe {
                    let p = d.vec.raw_ptr();
                    if d.tail_start != start {
                        ptr::copy(p.add(d.tail_start), p.add(start), d.tail_len);
                    }
                    d.vec.raw_set_len(start + d.tail_len);
                }
            }
        }
        let (head, end) = (self.head, self.end);
        self.head = end;
        let guard = MoveTail(self);
        // SAFETY: the removed elements not yielded are initialised and dropped once
        // (uncounted first).
        unsafe { ptr::drop_in_place(ptr::slice_from_raw_parts_mut(guard.0.vec.raw_ptr().add(head), end - head)) };
    }
}

impl<V: RawVec> fmt::Debug for Drain<'_, V>
where
    V::Elem: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Drain").field(&self.as_slice()).finish()
    }
}
