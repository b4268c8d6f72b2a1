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
//!
//! # Layers
//!
//! Each module uses only its own layer and the ones above it in this table, and no two
//! modules use each other (`tests/layers.rs` reads this table and checks both). A heap never
//! calls into per-thread state: releasing one hands a parkable heap back to its caller.
//!
//! | layer | modules | what they hold |
//! |---|---|---|
//! | 0 | `config` `sync` `defer` `delegate` `stats` `identity` | configuration, loom-switchable atomics, drop guards, trait impls through `Deref`, counters, who is running |
//! | 1 | `error` | errors, which name who asked (an identity) |
//! | 2 | `chunk` `remote` `heap::class` | chunks, size classes, remote free lists |
//! | 3 | `shared` | what a `SmartAlloc`'s clones share: configuration, registry, budget |
//! | 4 | `heap` `frame::arena` `frame::chunk` | containers: task heaps (their blocks, and pool blocks that name them), frame arenas |
//! | 5 | `place` | placement: task slots, per-thread state, guard scopes, parked heaps |
//! | 6 | `vec` | the one vector implementation, over any raw buffer |
//! | 7 | `frame` `pool` `task` `guard` | the handles |
//! | 8 | `traits` `allocator` | std and allocator-api2 traits for the handles |
//! | 9 | `smart` | [`SmartAlloc`], the front door |

mod allocator;
mod chunk;
mod config;
mod defer;
mod delegate;
mod error;
mod frame;
mod guard;
mod heap;
mod identity;
mod place;
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
    pub use crate::identity::set_external_identity_source;
    pub use crate::place::task::TaskContext;
}
