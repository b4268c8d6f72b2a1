//! The traits every Rust box has, for the handles of every kind of memory: comparison,
//! hashing, borrowing and formatting delegate to the value (or slice), as `Box` does, so a
//! handle can stand in for its value in maps, sorts and messages.
//!
//! `Clone` is per kind, next to each handle: a clone needs memory of the same kind, and each
//! kind finds it its own way.

use crate::frame::{FrameBox, FrameSlice, ScopedBox};
use crate::pool::PoolBox;
use crate::task::TaskBox;
use core::borrow::{Borrow, BorrowMut};
use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};

/// Implements the delegating traits for a handle type `$ty` (generic over `$gen`) that derefs
/// to `$target`; the `display` form adds `Display`, for handles of one value.
macro_rules! delegate_box_traits {
    ([$($gen:tt)*] $ty:ty => $target:ty, display) => {
        delegate_box_traits!([$($gen)*] $ty => $target);

        impl<$($gen)*> fmt::Display for $ty
        where
            $target: fmt::Display,
        {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                <$target as fmt::Display>::fmt(self, f)
            }
        }
    };
    ([$($gen:tt)*] $ty:ty => $target:ty) => {
        impl<$($gen)*> PartialEq for $ty
        where
            $target: PartialEq,
        {
            #[inline]
            fn eq(&self, other: &Self) -> bool {
                <$target as PartialEq>::eq(self, other)
            }
        }

        impl<$($gen)*> Eq for $ty where $target: Eq {}

        impl<$($gen)*> PartialOrd for $ty
        where
            $target: PartialOrd,
        {
            #[inline]
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                <$target as PartialOrd>::partial_cmp(self, other)
            }
        }

        impl<$($gen)*> Ord for $ty
        where
            $target: Ord,
        {
            #[inline]
            fn cmp(&self, other: &Self) -> Ordering {
                <$target as Ord>::cmp(self, other)
            }
        }

        impl<$($gen)*> Hash for $ty
        where
            $target: Hash,
        {
            #[inline]
            fn hash<H: Hasher>(&self, state: &mut H) {
                <$target as Hash>::hash(self, state)
            }
        }

        impl<$($gen)*> AsRef<$target> for $ty {
            #[inline]
            fn as_ref(&self) -> &$target {
                self
            }
        }

        impl<$($gen)*> AsMut<$target> for $ty {
            #[inline]
            fn as_mut(&mut self) -> &mut $target {
                self
            }
        }

        impl<$($gen)*> Borrow<$target> for $ty {
            #[inline]
            fn borrow(&self) -> &$target {
                self
            }
        }

        impl<$($gen)*> BorrowMut<$target> for $ty {
            #[inline]
            fn borrow_mut(&mut self) -> &mut $target {
                self
            }
        }

        /// The address of the value, as `Box`'s `{:p}` prints.
        impl<$($gen)*> fmt::Pointer for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Pointer::fmt(&core::ptr::from_ref::<$target>(self), f)
            }
        }

    };
}

delegate_box_traits!(['a, T] FrameBox<'a, T> => T, display);
delegate_box_traits!(['a, T] FrameSlice<'a, T> => [T]);
delegate_box_traits!(['s, T] ScopedBox<'s, T> => T, display);
delegate_box_traits!(['a, T] TaskBox<'a, T> => T, display);
delegate_box_traits!([T] PoolBox<T> => T, display);
