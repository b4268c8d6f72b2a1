//! framealloc on tokio: the same [`TaskAlloc`] and [`AsyncPoolGuard`] for tokio tasks.
//!
//! Work in progress: the tokio-specific pieces (per-task heaps for spawned tasks, task-id
//! identity) come with the tokio compatibility issue.

pub use framealloc_alloc::{AsyncPoolGuard, TaskAlloc};
