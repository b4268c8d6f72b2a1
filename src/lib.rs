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
//! let mut particles = alloc.frame_vec::<[f32; 3]>();
//! particles.push([0.0, 1.0, 0.0]);
//! alloc.end_frame();
//! assert_eq!(particles[0][1], 1.0);
//! drop(particles);
//! let task = TaskAlloc::new(&alloc);
//! let mut buf = task.alloc_vec::<u8>();
//! buf.extend_from_slice(b"ping");
//! assert_eq!(task.live_bytes(), buf.capacity() as u64); // its buffer, rounded up by `Vec`
//! drop(buf);
//! drop(task);
//! let stats = alloc.stats();
//! assert_eq!((stats.frames, stats.task.live_bytes, stats.heaps_alive), (1, 0, 0));
//! ```

pub use framealloc_alloc::{
    hook, AllocConfig, AllocError, AllocStats, AsyncPoolGuard, ConfigError, FrameBox, FrameScope, FrameSlice, FrameVec,
    KindStats, PoolBox, PoolVec, ScopedBox, SmartAlloc, TaskAlloc, TaskBox, TaskVec,
};

/// The framealloc runtime: a work-stealing executor whose tasks each own a heap
/// (`Runtime`, `spawn`, `JoinHandle`, ...), with its reactor and timers (`net`, `time`). Its
/// frame loop is not built yet.
pub use framealloc_runtime as runtime;

/// framealloc on tokio: `TaskAlloc`, `AsyncPoolGuard` and per-task heaps for tokio tasks.
#[cfg(feature = "tokio")]
pub use framealloc_tokio as tokio;

/// The README's examples run as doctests (with the feature `tokio`, which one of them uses:
/// the README's test command enables every feature).
#[cfg(all(doctest, feature = "tokio"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
