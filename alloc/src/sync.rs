//! What the cross-thread protocols share between threads, switchable to `loom`'s
//! model-checked versions with `RUSTFLAGS="--cfg loom"`.
//!
//! Only the protocols that loom tests cover go through this module: the remote free list and
//! escape count ([`crate::remote`]), a heap's own state (`heap::core`: its atomics, its
//! `foreign` arena's lock, and the owner's plain state), and the placement layer's shared
//! state (`place`: the guard registry's shards and the shared list of parked heaps).
//! Everything else uses `core` atomics and `parking_lot` directly.
//!
//! Without `--cfg loom` everything here is a plain re-export or an `#[inline(always)]`
//! function that is the code it replaces, so the real build is unchanged. Under loom:
//!
//! * [`Mutex`] keeps `parking_lot`'s shape (`lock()` without poisoning, `get_mut`,
//!   `data_ptr`) over a `loom::sync::Mutex<()>` and a `loom::cell::UnsafeCell` for the data,
//!   so that loom also checks the unlocked accesses (`get_mut`, `data_ptr`) are ordered.
//! * [`UnsafeCell`] keeps `core`'s shape (`get`, `get_mut`) over `loom::cell::UnsafeCell`;
//!   `get` records one write access when called.
//! * [`cell_mut`] is how the owner's plain state is borrowed: a plain `&mut T` in the real
//!   build, a [`CellMut`] guard under loom that keeps loom's write access open for as long as
//!   the borrow lives, so that an access from another thread that is not ordered after it
//!   (or that overlaps it) is reported.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicIsize, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicBool, AtomicIsize, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

#[cfg(not(loom))]
pub(crate) use core::cell::UnsafeCell;

#[cfg(not(loom))]
pub(crate) use parking_lot::Mutex;

/// An exclusive borrow of an [`UnsafeCell`]'s value, from [`cell_mut`]: `&mut T` in the real
/// build.
#[cfg(not(loom))]
pub(crate) type CellMut<'a, T> = &'a mut T;

/// The value of `cell`, borrowed exclusively: `&mut *cell.get()`.
///
/// # Safety
/// No other reference to the value exists while the result lives (as for `&mut *cell.get()`).
#[cfg(not(loom))]
#[inline(always)]
#[allow(clippy::mut_from_ref)]
pub(crate) unsafe fn cell_mut<T>(cell: &UnsafeCell<T>) -> CellMut<'_, T> {
    // SAFETY: exclusive per the caller's contract.
    unsafe { &mut *cell.get() }
}

#[cfg(loom)]
pub(crate) use self::loom_impl::{cell_mut, CellMut, Mutex, UnsafeCell};

#[cfg(loom)]
mod loom_impl {
    use core::marker::PhantomData;
    use core::ops::{Deref, DerefMut};

    /// `core::cell::UnsafeCell`'s shape over loom's tracked cell.
    pub(crate) struct UnsafeCell<T>(loom::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::cell::UnsafeCell::new(value))
        }

        /// A raw pointer to the value, after loom has checked a write access here (the
        /// pointer's later uses are not tracked: [`cell_mut`] is the tracked borrow).
        #[track_caller]
        pub(crate) fn get(&self) -> *mut T {
            self.0.with_mut(|p| p)
        }

        /// The value, through `&mut self`, after loom has checked a write access here.
        #[track_caller]
        pub(crate) fn get_mut(&mut self) -> &mut T {
            // SAFETY: `&mut self` is exclusive, so is the borrow made from it.
            self.0.with_mut(|p| unsafe { &mut *p })
        }
    }

    /// An exclusive borrow of an [`UnsafeCell`]'s value that loom tracks as a write access
    /// until it is dropped.
    pub(crate) struct CellMut<'a, T> {
        ptr: loom::cell::MutPtr<T>,
        _cell: PhantomData<&'a mut T>,
    }

    impl<T> Deref for CellMut<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            // SAFETY: loom's access is open while `self` lives; exclusive per `cell_mut`.
            unsafe { self.ptr.deref() }
        }
    }

    impl<T> DerefMut for CellMut<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            // SAFETY: as for `deref`.
            unsafe { self.ptr.deref() }
        }
    }

    /// The value of `cell`, borrowed exclusively; loom reports any access from elsewhere that
    /// is not ordered with this one, or that happens while the result lives.
    ///
    /// # Safety
    /// No other reference to the value exists while the result lives.
    #[track_caller]
    pub(crate) unsafe fn cell_mut<T>(cell: &UnsafeCell<T>) -> CellMut<'_, T> {
        CellMut { ptr: cell.0.get_mut(), _cell: PhantomData }
    }

    /// `parking_lot::Mutex`'s shape over loom's lock; the data is in a loom cell so that the
    /// lock-free accesses (`get_mut`, `data_ptr`) are checked too.
    pub(crate) struct Mutex<T> {
        lock: loom::sync::Mutex<()>,
        data: UnsafeCell<T>,
    }

    // SAFETY: as `parking_lot::Mutex`: the data is reached by one holder of `lock` at a time,
    // or through `&mut self`, or by `data_ptr` callers that exclude both.
    unsafe impl<T: Send> Sync for Mutex<T> {}
    // SAFETY: as above.
    unsafe impl<T: Send> Send for Mutex<T> {}

    /// The lock held, and loom's write access to the data open, until dropped.
    pub(crate) struct MutexGuard<'a, T> {
        // Field order: the data access ends before the lock is released.
        data: CellMut<'a, T>,
        _lock: loom::sync::MutexGuard<'a, ()>,
    }

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self { lock: loom::sync::Mutex::new(()), data: UnsafeCell::new(value) }
        }

        #[track_caller]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            let lock = self.lock.lock().expect("a loom model panicked while holding a lock");
            // SAFETY: we hold the lock, so no other guard's borrow exists.
            MutexGuard { data: unsafe { cell_mut(&self.data) }, _lock: lock }
        }

        #[track_caller]
        pub(crate) fn get_mut(&mut self) -> &mut T {
            self.data.get_mut()
        }

        /// A raw pointer to the data, after loom has checked a write access here.
        #[track_caller]
        pub(crate) fn data_ptr(&self) -> *mut T {
            self.data.get()
        }
    }

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.data
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            &mut self.data
        }
    }
}
