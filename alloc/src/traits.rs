//! The traits every Rust box has, for the handles of every kind of memory: comparison,
//! hashing, borrowing and formatting delegate to the value (or slice), as `Box` does, so a
//! handle can stand in for its value in maps, sorts and messages.
//!
//! `Clone` is per kind, next to each handle: a clone needs memory of the same kind, and each
//! kind finds it its own way.

use crate::frame::{FrameBox, FrameSlice, ScopedBox};
use crate::pool::PoolBox;
use crate::task::TaskBox;
use core::fmt;

/// The traits of a handle that derefs to `$target` which follow from the target's alone:
/// `Eq`, `PartialOrd`, `Ord` and `Hash` as the target's (so they agree with `Borrow`), and
/// `AsRef`/`AsMut`/`Borrow`/`BorrowMut` to it. Shared by the boxes (here) and the vectors
/// (`vec_traits!`, target `[T]`), each of which supplies its own `PartialEq`.
macro_rules! delegate_value_traits {
    ([$($gen:tt)*] $ty:ty => $target:ty) => {
        delegate_value_traits!([$($gen)*] $ty => $target, bound $target);
    };
    // `$bound` is what the where clauses name: the target itself, or for a vector its element
    // type, on which the vector's own `PartialEq` (required by `Eq` and `PartialOrd`) is bounded.
    ([$($gen:tt)*] $ty:ty => $target:ty, bound $bound:ty) => {
        impl<$($gen)*> Eq for $ty where $bound: Eq {}

        impl<$($gen)*> PartialOrd for $ty
        where
            $bound: PartialOrd,
        {
            #[inline]
            fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
                <$target as PartialOrd>::partial_cmp(self, other)
            }
        }

        impl<$($gen)*> Ord for $ty
        where
            $bound: Ord,
        {
            #[inline]
            fn cmp(&self, other: &Self) -> core::cmp::Ordering {
                <$target as Ord>::cmp(self, other)
            }
        }

        impl<$($gen)*> core::hash::Hash for $ty
        where
            $bound: core::hash::Hash,
        {
            #[inline]
            fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
                <$target as core::hash::Hash>::hash(self, state)
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

        impl<$($gen)*> core::borrow::Borrow<$target> for $ty {
            #[inline]
            fn borrow(&self) -> &$target {
                self
            }
        }

        impl<$($gen)*> core::borrow::BorrowMut<$target> for $ty {
            #[inline]
            fn borrow_mut(&mut self) -> &mut $target {
                self
            }
        }
    };
}

pub(crate) use delegate_value_traits;

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

        delegate_value_traits!([$($gen)*] $ty => $target);

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
