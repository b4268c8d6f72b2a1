//! framealloc: an async runtime for games and frame-ticked simulations that understands
//! frame allocation.
//!
//! This facade only re-exports: memory from `framealloc-alloc`, the runtime from
//! `framealloc-runtime`, and (feature `tokio`) the tokio layer as [`tokio`].
//!
//! ```
//! use framealloc::{SmartAlloc, TaskAlloc};
//! let alloc = SmartAlloc::new(Default::default());
//! alloc.begin_frame();
//! let particles = alloc.frame_vec::<[f32; 3]>();
//! alloc.end_frame();
//! let task = TaskAlloc::new(&alloc);
//! let buf = task.alloc_vec::<u8>();
//! # drop((particles, buf));
//! ```

pub use framealloc_alloc::{
    hook, AllocConfig, AllocError, AllocStats, AsyncPoolGuard, ConfigError, FrameBox, FrameScope, FrameSlice, FrameVec,
    KindStats, PoolBox, PoolVec, ScopedBox, SmartAlloc, TaskAlloc, TaskBox, TaskVec,
};

/// The framealloc runtime (work in progress: see `framealloc-runtime`).
pub use framealloc_runtime as runtime;

/// framealloc on tokio: `TaskAlloc`, `AsyncPoolGuard` and per-task heaps for tokio tasks.
#[cfg(feature = "tokio")]
pub use framealloc_tokio as tokio;

/// The README's example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
