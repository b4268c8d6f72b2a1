//! Memory for framealloc: frame arenas, task heaps and pools.
//!
//! | kind | where | freed | API |
//! |---|---|---|---|
//! | frame | per-thread bump arena | all at once, O(1), at the next `begin_frame` | [`SmartAlloc::frame_box`], [`SmartAlloc::frame_vec`], [`SmartAlloc::frame_slice`], [`SmartAlloc::frame_scope`] |
//! | task | a heap owned by one task | individually, and wholesale when the task ends | [`TaskAlloc`]; `pool_*` inside a task |
//! | pool | per-thread size-class pools | individually, wherever the handle drops | [`SmartAlloc::pool_box`], [`SmartAlloc::pool_vec`] |
//!
//! No sequence of safe calls can cause undefined behaviour: frame handles are `!Send` and
//! keep their chunk alive past a frame recycle; task handles borrow their `TaskAlloc`; pool
//! handles keep their heap alive wherever they go. The fast paths use no atomics: see
//! [`identity`](crate::hook) for who may touch a heap's plain state.
//!
//! Handles compare, hash, borrow and format as `Box` does, and clone into memory of their own
//! kind (all but [`ScopedBox`], which does not know its scope). Collections of
//! [`allocator_api2`] live in task memory (`Vec::new_in(&task)`) or in a frame scope
//! (`Vec::new_in(f)`): [`TaskAlloc`] and [`FrameScope`] implement its `Allocator`.
//!
//! Executors integrate through [`hook`]: a [`hook::TaskContext`] per task, entered around
//! every poll.

mod allocator;
mod chunk;
mod config;
mod defer;
mod error;
mod frame;
mod guard;
mod heap;
mod identity;
mod local;
mod pool;
mod remote;
mod shared;
mod smart;
mod stats;
mod sync;
mod task;
mod traits;
pub mod vec;

/// The allocator-api2 version whose `Allocator` [`TaskAlloc`] and [`FrameScope`] implement:
/// build collections for them with this one.
pub use allocator_api2;
pub use config::{AllocConfig, ConfigError};
pub use error::AllocError;
pub use frame::{FrameBox, FrameScope, FrameSlice, FrameVec, ScopedBox};
pub use guard::AsyncPoolGuard;
pub use pool::{PoolBox, PoolVec};
pub use smart::SmartAlloc;
pub use stats::{AllocStats, KindStats};
pub use task::{TaskAlloc, TaskBox, TaskVec};

/// For executors: tell framealloc which task is running.
pub mod hook {
    pub use crate::identity::{set_external_identity_source, TaskContext};
}
