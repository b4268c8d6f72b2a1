//! The synchronisation primitives of the park/notify protocol, swapped for loom's under
//! `--cfg loom` so that the loom models in `idle.rs` and `park.rs` check the real code.
//!
//! The lock and condition variable keep `parking_lot`'s shape (no poisoning, a guard that a
//! wait takes and gives back); under loom they wrap `loom::sync`'s.

#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

#[cfg(not(loom))]
pub(crate) use parking_lot::{Condvar, Mutex};

#[cfg(loom)]
pub(crate) use self::loom_lock::{Condvar, Mutex};

#[cfg(loom)]
mod loom_lock {
    /// `parking_lot::Mutex`'s shape over `loom::sync::Mutex`.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().expect("a loom model panicked while holding a lock")
        }
    }

    /// `parking_lot::Condvar`'s shape over `loom::sync::Condvar`.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(loom::sync::Condvar::new())
        }

        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            // loom's wait takes the guard by value: swap a temporary in and out of `guard`.
            replace_with(guard, |g| self.0.wait(g).expect("a loom model panicked while holding a lock"));
        }

        pub(crate) fn notify_one(&self) -> bool {
            self.0.notify_one();
            true
        }
    }

    /// Replaces `*slot` with `f(old)`, aborting if `f` panics (the slot would be left moved out).
    fn replace_with<T>(slot: &mut T, f: impl FnOnce(T) -> T) {
        struct AbortOnUnwind;
        impl Drop for AbortOnUnwind {
            fn drop(&mut self) {
                std::process::abort();
            }
        }
        let bomb = AbortOnUnwind;
        // SAFETY: `slot` is read out and written back before anyone can observe it; if `f`
        // unwinds in between, `bomb` aborts the process, so the moved-out value is never
        // dropped twice or observed.
        unsafe {
            let old = std::ptr::read(slot);
            std::ptr::write(slot, f(old));
        }
        std::mem::forget(bomb);
    }
}

/// A sequentially consistent fence (loom's under `--cfg loom`).
#[inline]
pub(crate) fn fence_seq_cst() {
    #[cfg(not(loom))]
    std::sync::atomic::fence(Ordering::SeqCst);
    #[cfg(loom)]
    loom::sync::atomic::fence(Ordering::SeqCst);
}
