//! framealloc's runtime: a work-stealing executor whose tasks each own a heap.
//!
//! ```
//! # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } }
//! use framealloc::SmartAlloc;
//! use framealloc::runtime::Runtime;
//!
//! let alloc = SmartAlloc::new(Default::default());
//! let rt = Runtime::builder().worker_threads(2).alloc(&alloc).build().unwrap();
//! let total = rt.block_on(async {
//!     let mut handles = Vec::new();
//!     for i in 0..8u64 {
//!         let a = alloc.clone();
//!         handles.push(framealloc::runtime::spawn(async move {
//!             let mut scratch = a.pool_vec::<u64>();      // the task's own heap
//!             scratch.extend(0..=i);
//!             framealloc::runtime::yield_now().await;
//!             scratch.iter().sum::<u64>()
//!         }));
//!     }
//!     let mut total = 0;
//!     for h in handles {
//!         total += h.await.unwrap();
//!     }
//!     total
//! });
//! assert_eq!(total, 84);
//! assert_eq!(alloc.stats().heaps_alive, 0);             // every task's heap went back
//! ```
//!
//! # What it is
//!
//! * **Tasks** are `async-task` allocations. Each wraps its future in a framealloc task
//!   context, entered around every poll: `alloc.pool_*` inside a task allocates from the
//!   task's heap with no atomics, `frame_*` panics (FA701), and the heap is released in one
//!   step when the task completes, panics or is cancelled, before its output is published.
//!   The heap costs nothing until the task first allocates.
//! * **Scheduling** follows tokio's multi-thread scheduler: a local queue per worker
//!   (`crossbeam-deque`), a LIFO slot for the task just woken, a global injector checked every
//!   61 turns, stealing half of a random victim's queue, at most half the workers searching,
//!   and a cooperative budget of 128 per poll.
//! * **I/O and timers**: one `mio` reactor and one hierarchical timer wheel (1 ms ticks) per
//!   runtime, with no thread of their own: a worker about to park blocks in the reactor
//!   (one at a time), and busy workers turn it without blocking now and then. Sockets in
//!   [`net`] ([`net::TcpListener`], [`net::TcpStream`], [`net::UdpSocket`]), timers in
//!   [`time`] ([`time::sleep`], [`time::interval`], [`time::timeout`]). I/O readiness counts
//!   against the cooperative budget.
//! * **API** with tokio's names and meanings: [`Runtime`], [`Builder`], [`Handle`],
//!   [`spawn`], [`spawn_blocking`], [`yield_now`], [`task::JoinHandle`] (dropping it detaches;
//!   `abort`, `is_finished`), [`task::JoinError`].
//!
//! Not yet here: the frame loop (a later issue).
//!
//! # What the compiler refuses
//!
//! A spawned task may run on any worker, so its future must be `Send`: one that holds an
//! `Rc` across an `.await` does not compile. (rustc reports "future cannot be sent between
//! threads safely", an error without a code, so these `compile_fail` tests name none; a twin
//! that compiles follows each, so that neither fails for another reason.)
//!
//! ```compile_fail
//! # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } }
//! let rt = framealloc::runtime::Runtime::new().unwrap();
//! rt.spawn(async {
//!     let shared = std::rc::Rc::new(1);
//!     framealloc::runtime::yield_now().await; // `shared` lives across the await
//!     drop(shared);
//! });
//! ```
//!
//! ```
//! # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } }
//! let rt = framealloc::runtime::Runtime::new().unwrap();
//! rt.spawn(async {
//!     drop(std::rc::Rc::new(1)); // gone before the await
//!     framealloc::runtime::yield_now().await;
//! });
//! ```
//!
//! Frame memory belongs to the thread whose frame it is: a frame handle held across an
//! `.await` in a spawned task does not compile either (FA603, "frame data crossing an await
//! point"). Task memory is the right kind there: `alloc.pool_vec()` or a `TaskAlloc`.
//!
//! ```compile_fail
//! # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } }
//! let alloc = framealloc::SmartAlloc::new(Default::default());
//! let rt = framealloc::runtime::Runtime::new().unwrap();
//! let a = alloc.clone();
//! rt.spawn(async move {
//!     let positions = a.frame_vec::<f32>();
//!     framealloc::runtime::yield_now().await;
//!     drop(positions);
//! });
//! ```
//!
//! ```
//! # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } }
//! let alloc = framealloc::SmartAlloc::new(Default::default());
//! let rt = framealloc::runtime::Runtime::new().unwrap();
//! let a = alloc.clone();
//! let h = rt.spawn(async move {
//!     let mut positions = a.pool_vec::<f32>();
//!     positions.push(1.5);
//!     framealloc::runtime::yield_now().await;
//!     positions[0]
//! });
//! assert_eq!(rt.block_on(h).unwrap(), 1.5);
//! ```
//!
//! # Layers
//!
//! Each layer uses only those before it: `sync`, `park`, `idle` (the park/notify protocol,
//! loom-checked) → `coop`, `task` (the task allocation, its heap, join handles, registry) →
//! `scheduler` (workers, queues, blocking pool, shutdown) → `driver` (reactor, timer wheel)
//! → `context`, `runtime` (the API) → `net`, `time` (sockets and timers on the driver).
//! Two references go back, each through a seam: the task header's pointer to its scheduler,
//! which async-task calls to schedule it, and the `park::Driver` trait, through which a
//! parking worker blocks in the driver.

mod idle;
mod park;
mod sync;

#[cfg(not(loom))]
mod context;
#[cfg(not(loom))]
mod coop;
#[cfg(not(loom))]
mod driver;
#[cfg(not(loom))]
mod metrics;
#[cfg(not(loom))]
pub mod net;
#[cfg(not(loom))]
mod runtime;
#[cfg(not(loom))]
mod scheduler;
#[cfg(not(loom))]
pub mod task;
#[cfg(not(loom))]
pub mod time;

#[cfg(not(loom))]
pub use context::EnterGuard;
#[cfg(not(loom))]
pub use metrics::RuntimeMetrics;
#[cfg(not(loom))]
pub use runtime::{Builder, Handle, Runtime, TryCurrentError};
#[cfg(not(loom))]
pub use task::{yield_now, JoinHandle};

#[cfg(not(loom))]
const NO_RUNTIME: &str = "must be called from the context of a framealloc runtime (inside a task, inside \
                          `Runtime::block_on`, or after `Runtime::enter`)";

/// Spawns `future` as a task on the current runtime (tokio's `spawn`): see [`Handle::spawn`].
///
/// # Panics
/// Outside a runtime.
#[cfg(not(loom))]
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: core::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut future = Some(future);
    let spawned = scheduler::with_current(|w| w.map(|w| w.shared.spawn(future.take().expect("spawned once"))));
    match spawned {
        Some(join) => join,
        None => context::with_current(|h| match h {
            Some(h) => h.spawn(future.take().expect("spawned once")),
            None => panic!("`framealloc_runtime::spawn` {NO_RUNTIME}"),
        }),
    }
}

/// Runs the blocking function `f` on the current runtime's blocking pool: see
/// [`Handle::spawn_blocking`].
///
/// # Panics
/// Outside a runtime.
#[cfg(not(loom))]
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    context::with_current(|h| match h {
        Some(h) => h.spawn_blocking(f),
        None => panic!("`framealloc_runtime::spawn_blocking` {NO_RUNTIME}"),
    })
}
