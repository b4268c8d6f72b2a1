//! framealloc on tokio: the same [`TaskAlloc`] and [`AsyncPoolGuard`] for tokio tasks, and
//! per-task heaps for tasks started with [`spawn`] / [`spawn_local`].
//!
//! With the facade's feature `tokio` this crate is `framealloc::tokio`.
//!
//! # Two ways a tokio task gets framealloc memory
//!
//! * **Plain `tokio::spawn`**: the task is recognised by [`tokio::task::try_id`]. A
//!   [`TaskAlloc`] created in it is owned by the task (allocation and free without atomics,
//!   also after the task moved to another worker thread) and freed when it drops; an
//!   [`AsyncPoolGuard`] collects the task's `alloc.pool_*` allocations until it drops (each
//!   under the lock of the guard's registry shard, and freed with atomics: a guard may be
//!   dropped on another thread than its task runs on; about 40 ns a `pool_box` made and
//!   dropped, against 5 without a guard). With no guard open, `alloc.pool_*` use the pool of
//!   the worker thread the task runs on, as any code on that thread does, without atomics.
//! * **[`spawn`] / [`spawn_local`]** (or [`with_task_heap`] for `JoinSet`, `Handle::spawn`, ...):
//!   the task also gets its own heap, installed around each poll, so `alloc.pool_*` inside it
//!   allocate there. The heap is released when the task completes (before tokio publishes
//!   its output), is aborted, or panics. Allocations that escape the task (returned through
//!   the `JoinHandle`, sent on a channel) stay valid and keep the task's whole heap (all its
//!   chunks) until they drop; an empty `PoolVec` made in the task counts too, since it would
//!   allocate there.
//!
//! ```
//! # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } pub mod tokio { pub use framealloc_tokio::*; } }
//! use framealloc::{SmartAlloc, TaskAlloc};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! let alloc = SmartAlloc::new(Default::default());
//! let a = alloc.clone();
//! let sum = framealloc::tokio::spawn(async move {
//!     let mut scratch = a.pool_vec::<u32>();      // in this task's heap
//!     scratch.extend(1..=10);
//!     tokio::task::yield_now().await;
//!     let task = TaskAlloc::new(&a);              // owned by this task
//!     let total = task.alloc_box(scratch.iter().sum::<u32>());
//!     *total
//! })
//! .await
//! .unwrap();
//! assert_eq!(sum, 55);
//! let stats = alloc.stats();
//! assert_eq!((stats.task.live_bytes, stats.heaps_alive), (0, 0)); // all returned
//! # }
//! ```
//!
//! # tokio futures on another executor: [`compat`]
//!
//! The other direction: code that needs tokio's reactor or timers (a tokio `TcpStream`,
//! `tokio::time::sleep`, a tokio-based client library) inside a task of framealloc's runtime
//! (or any executor that is not tokio). `compat(fut)` polls `fut` inside the context of a
//! tokio runtime started once per process, whose one background thread runs tokio's I/O and
//! timers; `fut` itself still runs in the framealloc task, in its heap. Inside a tokio runtime
//! it uses that runtime instead. See [`compat`] for the costs.
//!
//! # Tokio tasks polled inside a task of `spawn`
//!
//! A task of [`spawn`] / [`spawn_local`] is installed for the whole of each of its polls, and
//! tokio gives no signal when it starts polling another task inside that poll. That happens
//! when the task drives a `LocalSet` (`run_until`, or awaiting it), or calls a runtime's
//! `block_on` inside `block_in_place`. A task started there with [`spawn_local`] / [`spawn`] /
//! [`with_task_heap`] is installed in turn and gets a heap of its own; the outer task is back
//! when it returns. A *plain* tokio task polled there runs as the outer task: its `pool_*`
//! calls use the outer task's heap, a [`TaskAlloc`] it creates is owned by the outer task
//! (still correct, but off the fast path once the inner task runs elsewhere), and an
//! [`AsyncPoolGuard`] it opens scopes the outer task's allocations too until it drops. All of
//! this stays sound and frees everything; only where memory is counted differs. Checking
//! tokio's task id on every allocation would cost each one about 27 instructions, so inner
//! tasks should be spawned with this crate's functions instead.
//!
//! # Identity registration
//!
//! framealloc's core asks "which task is running?" through a hook this crate fills with
//! tokio's task id ([`init`]). It is registered at program start, before `main`, by a
//! constructor in the binary's init section (ELF platforms: Linux, Android, the BSDs; also
//! macOS/iOS and Windows, not tested here), so the guide's code, which only names the
//! re-exported types, is covered; and again by every entry point of this crate ([`spawn`],
//! [`spawn_local`], [`with_task_heap`], [`compat`], [`init`]). On another platform, call
//! [`init`] at the start of `main`.
//!
//! # FA701 and FA603
//!
//! Frame memory belongs to the main loop. `alloc.frame_*`, `begin_frame` and `end_frame`
//! panic with a message starting `FA701:` while a tokio task is being polled (a plain
//! `tokio::spawn` task, a task of [`spawn`], code in `spawn_blocking`; tokio's `block_on`
//! root future gives no signal and is not covered). The check is where frame memory is
//! requested: a `FrameVec` made outside tasks and moved into a `spawn_local` task (frame
//! handles are `!Send`, so only a `LocalSet` task can hold one) still grows there unchecked.
//!
//! A frame handle held across `.await` in a spawned task does not compile (FA603): frame
//! handles are `!Send`, so the future is not `Send`. (rustc reports this as "future cannot be
//! sent between threads safely", an error without a code, so these `compile_fail` tests name
//! none. Twins that compile follow each, so that neither fails for another reason.)
//!
//! ```compile_fail
//! # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } pub mod tokio { pub use framealloc_tokio::*; } }
//! # #[tokio::main] async fn main() {
//! let alloc = framealloc::SmartAlloc::new(Default::default());
//! tokio::spawn(async move {
//!     let b = alloc.frame_box(1);
//!     tokio::task::yield_now().await; // `b` lives across this await: the future is !Send
//!     drop(b);
//! });
//! # }
//! ```
//!
//! The same task with a pool handle compiles and runs:
//!
//! ```
//! # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } pub mod tokio { pub use framealloc_tokio::*; } }
//! # #[tokio::main] async fn main() {
//! let alloc = framealloc::SmartAlloc::new(Default::default());
//! tokio::spawn(async move {
//!     let b = alloc.pool_box(1);
//!     tokio::task::yield_now().await;
//!     drop(b);
//! })
//! .await
//! .unwrap();
//! # }
//! ```
//!
//! and so does the frame handle dropped before the `.await` (not run: inside a tokio task
//! `frame_*` panics with FA701):
//!
//! ```no_run
//! # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } pub mod tokio { pub use framealloc_tokio::*; } }
//! # #[tokio::main] async fn main() {
//! let alloc = framealloc::SmartAlloc::new(Default::default());
//! tokio::spawn(async move {
//!     let b = alloc.frame_box(1);
//!     drop(b); // gone before the await: the future is Send
//!     tokio::task::yield_now().await;
//! });
//! # }
//! ```
//!
//! The guide's FA603 snippet, spawned, is rejected for the same reason:
//!
//! ```compile_fail
//! # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } pub mod tokio { pub use framealloc_tokio::*; } }
//! use framealloc::SmartAlloc;
//! async fn async_op() { tokio::task::yield_now().await }
//! fn use_data(_: &[u8]) {}
//!
//! // Error - cargo-fa FA603
//! async fn crossing_await() {
//!     let alloc = SmartAlloc::new(Default::default());
//!     alloc.begin_frame();
//!     let data = alloc.frame_vec::<u8>();
//!     async_op().await; // Frame data crosses await!
//!     use_data(&data);
//!     alloc.end_frame();
//! }
//!
//! # #[tokio::main] async fn main() {
//! tokio::spawn(crossing_await());
//! # }
//! ```
//!
//! and its twin without the frame vector held across the await compiles (it is not run:
//! inside a task `begin_frame` panics with FA701):
//!
//! ```no_run
//! # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } pub mod tokio { pub use framealloc_tokio::*; } }
//! use framealloc::SmartAlloc;
//! async fn async_op() { tokio::task::yield_now().await }
//! fn use_data(_: &[u8]) {}
//!
//! async fn not_crossing_await() {
//!     let alloc = SmartAlloc::new(Default::default());
//!     alloc.begin_frame();
//!     {
//!         let data = alloc.frame_vec::<u8>();
//!         use_data(&data);
//!     }
//!     async_op().await;
//!     alloc.end_frame();
//! }
//!
//! # #[tokio::main] async fn main() {
//! tokio::spawn(not_crossing_await());
//! # }
//! ```

mod compat;
mod identity;
mod spawn;

pub use compat::{compat, Compat};
pub use framealloc_alloc::{AsyncPoolGuard, TaskAlloc};
pub use identity::{current_task_id, init};
pub use spawn::{spawn, spawn_local, with_task_heap, WithTaskHeap};
