//! [`compat`]: tokio futures (sockets, timers, tokio-based clients) inside tasks of another
//! executor, such as framealloc's runtime, driven by one background tokio reactor.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use pin_project_lite::pin_project;
use std::sync::OnceLock;
use tokio::runtime::{Builder, Handle};

/// The name of the background thread that drives the process-wide tokio runtime of [`compat`].
const THREAD_NAME: &str = "framealloc-tokio-compat";

/// The handle of the background tokio runtime, once the first [`Compat`] polled outside a tokio
/// runtime started it. It lives until the process exits.
static BACKGROUND: OnceLock<Handle> = OnceLock::new();

/// Runs `fut` so that tokio resources work inside it when it is polled by an executor that is
/// not tokio: a framealloc runtime task (`framealloc_runtime::spawn`, `rt.block_on`), or any
/// other executor. A tokio `TcpStream`, `tokio::time::sleep`, or a tokio-based client library
/// then finds a reactor and timers to register with.
///
/// * **Outside a tokio runtime** (when [`Handle::try_current`] fails), the first poll of any
///   `Compat` starts one tokio runtime for the whole process: a `current_thread` runtime with
///   I/O and timers enabled, driven by a background thread named `framealloc-tokio-compat`
///   that parks on tokio's driver and runs its I/O and timer events. Every poll of a `Compat`
///   enters that runtime's context around the inner poll (and around dropping the inner
///   future), so the tokio resources created or polled there register with its reactor.
/// * **Inside a tokio runtime** (a tokio task, `block_on`, after `Handle::enter`), the inner
///   future is polled as it is: it uses that runtime and starts nothing.
///
/// Either way the inner future is polled on the thread polling the `Compat`, by the executor
/// that polls it: in a framealloc task, inside that task's heap context, so `alloc.pool_*`
/// calls in it keep allocating from the task's heap. Only the readiness events cross threads.
///
/// # Costs
///
/// * **One extra thread for the whole process**, started on first use and parked in the
///   operating system's event wait (`epoll` on Linux) while idle. tokio's blocking pool adds
///   threads on demand only if the inner code uses it (`spawn_blocking`, `tokio::fs`, host
///   name lookups of `TcpStream::connect`); they exit after 10 s idle.
/// * **A cross-thread wake per event**: each tokio I/O readiness event or timer expiry is seen
///   by the background thread, which wakes the framealloc task; the worker that picks it up
///   then polls it. Expect the latency of one cross-thread wake-up on top of tokio's own.
/// * **No coop budget**: tokio's cooperative budget applies only to tokio's own tasks, so a
///   tokio resource that is always ready (a socket with data waiting) never forces a yield
///   inside a `Compat`. The executor's own budget, if any, still applies between polls.
/// * **Lives until process exit**: the background runtime is never shut down. Tasks spawned
///   with `tokio::spawn` inside a `Compat` (outside a tokio runtime) run on it, on its one
///   thread, not on the polling executor and without a framealloc task heap.
/// * Each poll checks for a current tokio runtime (a thread-local read) and enters the
///   context (a thread-local swap and a reference count), a few tens of nanoseconds.
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } pub mod tokio { pub use framealloc_tokio::*; } }
/// # // Not under Miri: the background thread outlives `main` (Miri's leak check refuses it).
/// # #[cfg(not(miri))] fn main() {
/// use framealloc::tokio::compat;
/// use std::time::{Duration, Instant};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let rt = framealloc::runtime::Runtime::new().unwrap();
/// let echoed = rt.block_on(rt.spawn(compat(async {
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
///     let mut client = tokio::net::TcpStream::connect(listener.local_addr()?).await?;
///     let (mut server, _) = listener.accept().await?;
///     client.write_all(b"ping").await?;
///     let mut buf = [0u8; 4];
///     server.read_exact(&mut buf).await?;
///     let start = Instant::now();
///     tokio::time::sleep(Duration::from_millis(5)).await;
///     assert!(start.elapsed() >= Duration::from_millis(5));
///     Ok::<_, std::io::Error>(buf)
/// })));
/// assert_eq!(&echoed.unwrap().unwrap(), b"ping");
/// # }
/// # #[cfg(miri)] fn main() {}
/// ```
///
/// # Panics
///
/// The returned future, when first polled outside a tokio runtime before the background
/// runtime exists, panics if that runtime cannot be built (the operating system refuses the
/// event queue: too many open files) or its thread cannot be spawned; a later poll tries
/// again. Polling it again after it returned `Ready` panics too.
#[inline]
pub fn compat<F: Future>(fut: F) -> Compat<F> {
    crate::init();
    Compat { future: Some(fut) }
}

pin_project! {
    /// A future that polls `F` inside a tokio runtime's context: the current one if there is
    /// one, else the process-wide background runtime. Made by [`compat`], which describes
    /// when the background runtime starts and what it costs.
    ///
    /// Its output is `F`'s. It is `Send` when `F` is, and `Unpin` when `F` is. The inner
    /// future is dropped as soon as it completes, or when the `Compat` is dropped (a cancelled
    /// or aborted task), in both cases inside the same tokio context as its polls.
    #[must_use = "futures do nothing unless polled"]
    pub struct Compat<F> {
        // `None` once `F` completed.
        #[pin]
        future: Option<F>,
    }

    impl<F> PinnedDrop for Compat<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut future = this.project().future;
            if future.is_some() {
                // Some futures spawn clean-up work or deregister in `Drop`: give them the
                // context of their polls. Never start the background runtime just to drop.
                match BACKGROUND.get() {
                    Some(handle) if Handle::try_current().is_err() => {
                        let _guard = handle.enter();
                        future.set(None);
                    }
                    _ => future.set(None),
                }
            }
        }
    }
}

impl<F: Future> Future for Compat<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut future = self.project().future;
        let _guard = match Handle::try_current() {
            Ok(_) => None,
            Err(_) => Some(background().enter()),
        };
        let Some(inner) = future.as_mut().as_pin_mut() else {
            panic!("`Compat` polled after completion");
        };
        let out = inner.poll(cx);
        if out.is_ready() {
            // Drop the finished future now, still inside the context.
            future.set(None);
        }
        out
    }
}

/// The background runtime's handle, starting it on first use.
fn background() -> &'static Handle {
    BACKGROUND.get_or_init(start_background)
}

#[cold]
fn start_background() -> Handle {
    let rt = Builder::new_current_thread()
        .enable_all()
        .thread_name("framealloc-tokio-compat-blocking")
        .build()
        .unwrap_or_else(|e| panic!("framealloc_tokio::compat: cannot build the background tokio runtime: {e}"));
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name(THREAD_NAME.to_string())
        // Parks on tokio's driver, running its I/O and timer events (and any task spawned
        // onto it), until the process exits.
        .spawn(move || rt.block_on(core::future::pending::<()>()))
        .unwrap_or_else(|e| panic!("framealloc_tokio::compat: cannot spawn the `{THREAD_NAME}` thread: {e}"));
    handle
}
