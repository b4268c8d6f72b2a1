//! The traits every Rust box has, for the handles of every kind of memory: comparison,
//! hashing, borrowing and formatting delegate to the value (or slice), as `Box` does, so a
//! handle can stand in for its value in maps, sorts and messages.
//!
//! `Clone` is per kind, next to each handle: a clone needs memory of the same kind, and each
//! kind finds it its own way.

use crate::delegate::delegate_value_traits;
use crate::frame::{FrameBox, FrameSlice, FrameVec, ScopedBox};
use crate::pool::{PoolBox, PoolVec};
use crate::task::{TaskBox, TaskVec};
use crate::vec::vec_eq;
use core::fmt;

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

// Every kind of vector compares with every other, as `Vec<T>` with `Vec<U>`.
vec_eq!(@one [T, U] PoolVec<T>, PoolVec<U>);
vec_eq!(@one ['r, T, U] PoolVec<T>, FrameVec<'r, U>);
vec_eq!(@one ['r, T, U] PoolVec<T>, TaskVec<'r, U>);
vec_eq!(@one ['a, T, U] FrameVec<'a, T>, PoolVec<U>);
vec_eq!(@one ['a, 'r, T, U] FrameVec<'a, T>, FrameVec<'r, U>);
vec_eq!(@one ['a, 'r, T, U] FrameVec<'a, T>, TaskVec<'r, U>);
vec_eq!(@one ['a, T, U] TaskVec<'a, T>, PoolVec<U>);
vec_eq!(@one ['a, 'r, T, U] TaskVec<'a, T>, FrameVec<'r, U>);
vec_eq!(@one ['a, 'r, T, U] TaskVec<'a, T>, TaskVec<'r, U>);
