//! An async runtime for games and frame-ticked simulations that understands frame allocation.
//!
//! Three kinds of memory, each freed the way its data dies, all measured by
//! [`SmartAlloc::stats`]:
//!
//! | kind | for | freed | API |
//! |---|---|---|---|
//! | frame | this frame's scratch, on the thread that runs the frames | all at once at the next [`begin_frame`](SmartAlloc::begin_frame) | [`frame_box`](SmartAlloc::frame_box), [`frame_vec`](SmartAlloc::frame_vec), [`frame_slice`](SmartAlloc::frame_slice), [`frame_scope`](SmartAlloc::frame_scope) |
//! | task | a task's or a request's data | one by one, and all at once when the task ends | `pool_*` inside a task; [`TaskAlloc`] |
//! | pool | data that outlives its task or crosses threads | wherever the handle drops | [`pool_box`](SmartAlloc::pool_box), [`pool_vec`](SmartAlloc::pool_vec) outside a task |
//!
//! And three ways in, one per kind of program:
//!
//! * **A server on framealloc's runtime**, [`runtime`]: a work-stealing executor with tokio's
//!   names (`Runtime`, `spawn`, `JoinHandle`, `net`, `time`) in which every task owns a heap:
//!   `alloc.pool_vec()` in a task allocates from it with no atomics, and the heap goes back in
//!   one step when the task ends.
//! * **An existing tokio service**, [`tokio`] (feature `tokio`): `framealloc::tokio::spawn`
//!   gives a tokio task the same heap; [`TaskAlloc`] and [`AsyncPoolGuard`] follow the guide
//!   (`docs/async.md` in the repository).
//! * **A fixed-step loop**: [`begin_frame`](SmartAlloc::begin_frame) and
//!   [`end_frame`](SmartAlloc::end_frame) around each tick, frame memory inside. (The
//!   runtime's own frame loop, driving tasks from the main thread once per frame, is not
//!   built yet.)
//!
//! ```
//! use framealloc::runtime::Runtime;
//! use framealloc::SmartAlloc;
//!
//! let alloc = SmartAlloc::new(Default::default());
//! let rt = Runtime::builder().worker_threads(2).alloc(&alloc).build().unwrap();
//!
//! // A task: its data lives in its own heap, released when it ends.
//! let a = alloc.clone();
//! let sum = rt.block_on(async move {
//!     framealloc::runtime::spawn(async move {
//!         let mut ids = a.pool_vec::<u32>();
//!         ids.extend(1..=4);
//!         framealloc::runtime::yield_now().await;
//!         ids.iter().sum::<u32>()
//!     })
//!     .await
//!     .unwrap()
//! });
//! assert_eq!(sum, 10);
//!
//! // A frame: scratch memory, recycled in O(1) by the next `begin_frame`.
//! alloc.begin_frame();
//! let mut particles = alloc.frame_vec::<[f32; 3]>();
//! particles.push([0.0, 1.0, 0.0]);
//! alloc.end_frame();
//! assert_eq!(particles[0][1], 1.0); // a handle stays valid past its frame
//! drop(particles);
//!
//! // Outside the runtime, a `TaskAlloc` gives a scope its own heap.
//! let task = framealloc::TaskAlloc::new(&alloc);
//! let mut buf = task.alloc_vec::<u8>();
//! buf.extend_from_slice(b"ping");
//! assert_eq!(task.live_bytes(), buf.capacity() as u64);
//! drop(buf);
//! drop(task);
//!
//! drop(rt);
//! let stats = alloc.stats();
//! assert_eq!((stats.frames, stats.task.live_bytes, stats.heaps_alive), (1, 0, 0));
//! ```
//!
//! # Rules
//!
//! No sequence of safe calls causes undefined behaviour. What would be misuse is refused:
//!
//! * frame handles are `!Send`, so frame data held across an `.await` in a spawned task does
//!   not compile (FA603), and a frame call inside a task panics with `FA701:`;
//! * [`TaskBox`] and [`TaskVec`] borrow their [`TaskAlloc`]; [`PoolBox`] and [`PoolVec`] keep
//!   their heap alive wherever they go;
//! * budgets ([`AllocConfig`]) are enforced by `try_*` errors ([`AllocError`]) or a panic
//!   naming the budget, never by aborting.
//!
//! # Features
//!
//! * `tokio`: the [`tokio`] layer, and tokio's `AsyncRead`/`AsyncWrite` on the runtime's
//!   streams. Without it, tokio is not in the dependency tree.
//!
//! # Crates
//!
//! This crate only re-exports: memory from `framealloc-alloc`, the runtime from
//! `framealloc-runtime`, the tokio layer from `framealloc-tokio`. Depend on this one.

pub use framealloc_alloc::{
    hook, AllocConfig, AllocError, AllocStats, AsyncPoolGuard, ConfigError, FrameBox, FrameScope, FrameSlice, FrameVec,
    KindStats, PoolBox, PoolVec, ScopedBox, SmartAlloc, TaskAlloc, TaskBox, TaskVec,
};

/// The vectors' iterators ([`vec::IntoIter`], [`vec::Drain`]).
pub use framealloc_alloc::vec;

/// The `allocator-api2` crate framealloc's allocators implement: [`TaskAlloc`] and
/// [`FrameScope`] are `allocator_api2::alloc::Allocator`s, so its `Vec` and `Box`, and
/// `hashbrown`'s maps (feature `allocator-api2`), live in task or frame memory.
pub use framealloc_alloc::allocator_api2;

/// The framealloc runtime: a work-stealing executor whose tasks each own a heap
/// (`Runtime`, `spawn`, `JoinHandle`, ...), with its reactor and timers (`net`, `time`).
///
/// Not built yet: the frame loop (tasks driven from the main thread once per frame).
pub use framealloc_runtime as runtime;

/// framealloc on tokio: `TaskAlloc`, `AsyncPoolGuard` and per-task heaps for tokio tasks.
#[cfg(feature = "tokio")]
pub use framealloc_tokio as tokio;

/// The README's examples run as doctests (with the feature `tokio`, which one of them uses:
/// the README's test command enables every feature).
#[cfg(all(doctest, feature = "tokio"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
