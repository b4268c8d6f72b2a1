//! Atomics used by the cross-thread protocols, switchable to `loom`'s model-checked
//! versions with `RUSTFLAGS="--cfg loom"`.
//!
//! Only the protocols that loom tests cover ([`crate::remote`]) go through this module;
//! everything else uses `core` atomics directly.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicIsize, AtomicPtr, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicIsize, AtomicPtr, Ordering};
