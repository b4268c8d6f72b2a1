//! Trait impls written once for every handle that derefs to its value (or slice).

/// The traits of a handle that derefs to `$target` which follow from the target's alone:
/// `Eq`, `PartialOrd`, `Ord` and `Hash` as the target's (so they agree with `Borrow`), and
/// `AsRef`/`AsMut`/`Borrow`/`BorrowMut` to it. Shared by the boxes (`traits`) and the vectors
/// (`vec_traits!`, target `[T]`), each of which supplies its own `PartialEq`.
macro_rules! delegate_value_traits {
    ([$($gen:tt)*] $ty:ty => $target:ty) => {
        $crate::delegate::delegate_value_traits!([$($gen)*] $ty => $target, bound $target);
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
