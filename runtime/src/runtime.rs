//! The front door: [`Runtime`], its [`Builder`] and its [`Handle`].

use crate::context::{self, EnterGuard};
use crate::driver::{self, Driver};
use crate::idle::{Idle, MAX_WORKERS};
use crate::metrics::RuntimeMetrics;
use crate::park::{self, Parker};
use crate::scheduler::{self, blocking, Shared, ThreadKind, ThreadSpawner};
use crate::task::JoinHandle;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use framealloc_alloc::hook::TaskContext;
use framealloc_alloc::SmartAlloc;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

type Callback = Arc<dyn Fn() + Send + Sync>;

/// Configures and builds a [`Runtime`] (tokio's names where tokio has the setting).
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } }
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// let started = Arc::new(AtomicUsize::new(0));
/// let s = started.clone();
/// let rt = framealloc::runtime::Runtime::builder()
///     .worker_threads(2)
///     .thread_name("game-worker")
///     .on_thread_start(move || { s.fetch_add(1, Ordering::Relaxed); })
///     .build()
///     .unwrap();
/// let name = rt.block_on(rt.spawn(async { std::thread::current().name().map(str::to_owned) }));
/// assert_eq!(name.unwrap().as_deref(), Some("game-worker"));
/// drop(rt); // joins the workers
/// assert_eq!(started.load(Ordering::Relaxed), 2);
/// ```
#[must_use = "a Builder does nothing until `build` is called"]
pub struct Builder {
    worker_threads: Option<usize>,
    max_blocking_threads: usize,
    thread_keep_alive: Duration,
    thread_name: Arc<dyn Fn() -> String + Send + Sync>,
    thread_stack_size: Option<usize>,
    on_thread_start: Option<Callback>,
    on_thread_stop: Option<Callback>,
    alloc: Option<SmartAlloc>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// A builder with the defaults: one worker per available core, up to 512 blocking
    /// threads kept 10 s when idle, threads named `framealloc-worker`.
    pub fn new() -> Self {
        Self {
            worker_threads: None,
            max_blocking_threads: 512,
            thread_keep_alive: Duration::from_secs(10),
            thread_name: Arc::new(|| "framealloc-worker".to_string()),
            thread_stack_size: None,
            on_thread_start: None,
            on_thread_stop: None,
            alloc: None,
        }
    }

    /// Worker threads that run tasks (default: the available cores). `build` refuses 0.
    pub fn worker_threads(mut self, n: usize) -> Self {
        self.worker_threads = Some(n);
        self
    }

    /// The most threads the blocking pool may run at once (default 512). `build` refuses 0.
    pub fn max_blocking_threads(mut self, n: usize) -> Self {
        self.max_blocking_threads = n;
        self
    }

    /// How long an idle blocking thread waits for another job before it exits (default 10 s).
    pub fn thread_keep_alive(mut self, d: Duration) -> Self {
        self.thread_keep_alive = d;
        self
    }

    /// The name of every thread the runtime starts.
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        let name: String = name.into();
        self.thread_name = Arc::new(move || name.clone());
        self
    }

    /// A function that names each thread the runtime starts.
    pub fn thread_name_fn(mut self, f: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.thread_name = Arc::new(f);
        self
    }

    /// The stack size of the runtime's threads (default: the standard library's).
    pub fn thread_stack_size(mut self, bytes: usize) -> Self {
        self.thread_stack_size = Some(bytes);
        self
    }

    /// Runs `f` on each thread the runtime starts (workers and blocking threads), first thing.
    pub fn on_thread_start(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_thread_start = Some(Arc::new(f));
        self
    }

    /// Runs `f` on each runtime thread as it exits.
    pub fn on_thread_stop(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_thread_stop = Some(Arc::new(f));
        self
    }

    /// The allocator whose statistics [`Runtime::metrics`] reports, usually the one the tasks
    /// allocate from (default: a new `SmartAlloc` of the default configuration). Every task has
    /// a heap in each `SmartAlloc` it uses, whichever this is.
    pub fn alloc(mut self, alloc: &SmartAlloc) -> Self {
        self.alloc = Some(alloc.clone());
        self
    }

    /// Starts the runtime's worker threads.
    ///
    /// # Errors
    /// `InvalidInput` for 0 worker or blocking threads, or more workers than the runtime
    /// supports; the operating system's error if a thread cannot be started.
    pub fn build(self) -> io::Result<Runtime> {
        let workers = match self.worker_threads {
            Some(n) => n,
            None => thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if workers == 0 || workers > MAX_WORKERS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("worker_threads must be between 1 and {MAX_WORKERS}, not {workers}"),
            ));
        }
        if self.max_blocking_threads == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "max_blocking_threads must be at least 1"));
        }
        let deques: Vec<_> = (0..workers).map(|_| crossbeam_deque::Worker::new_fifo()).collect();
        let (driver, driver_handle) = Driver::new()?;
        let parkers: Vec<_> =
            (0..workers).map(|_| Parker::new(Some(driver.clone() as Arc<dyn park::Driver>))).collect();
        let spawn_thread = self.thread_spawner(driver_handle.clone());
        let shared = Arc::new(Shared::new(
            deques.iter().map(crossbeam_deque::Worker::stealer).collect(),
            Idle::new(parkers.iter().map(Parker::unparker).collect()),
            blocking::Pool::new(self.max_blocking_threads, self.thread_keep_alive),
            self.alloc.unwrap_or_else(|| SmartAlloc::new(Default::default())),
            spawn_thread,
        ));
        let mut rt = Runtime {
            handle: Handle { shared: shared.clone(), driver: driver_handle },
            workers: Vec::with_capacity(workers),
        };
        for (index, (deque, parker)) in deques.into_iter().zip(parkers).enumerate() {
            let s = shared.clone();
            let body = Box::new(move || scheduler::run_worker(s, index, deque, parker));
            // On error `rt` drops here: the workers already started are shut down and joined.
            rt.workers.push((shared.spawn_thread)(&shared, ThreadKind::Worker, body)?);
        }
        Ok(rt)
    }

    fn thread_spawner(&self, driver: Arc<driver::Handle>) -> ThreadSpawner {
        let name = self.thread_name.clone();
        let stack = self.thread_stack_size;
        let (start, stop) = (self.on_thread_start.clone(), self.on_thread_stop.clone());
        Box::new(move |shared: &Arc<Shared>, kind: ThreadKind, body: Box<dyn FnOnce() + Send>| {
            let mut b = thread::Builder::new().name(name());
            if let Some(bytes) = stack {
                b = b.stack_size(bytes);
            }
            let handle = Handle { shared: shared.clone(), driver: driver.clone() };
            let (start, stop) = (start.clone(), stop.clone());
            b.spawn(move || {
                let _entered = context::enter(handle);
                let _driving = (kind == ThreadKind::Worker).then(|| context::enter_driving("start a worker"));
                struct OnStop(Option<Callback>);
                impl Drop for OnStop {
                    fn drop(&mut self) {
                        if let Some(f) = &self.0 {
                            f();
                        }
                    }
                }
                let _on_stop = OnStop(stop);
                if let Some(f) = &start {
                    f();
                }
                body();
            })
        })
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("worker_threads", &self.worker_threads)
            .field("max_blocking_threads", &self.max_blocking_threads)
            .field("thread_keep_alive", &self.thread_keep_alive)
            .field("thread_stack_size", &self.thread_stack_size)
            .finish_non_exhaustive()
    }
}

/// A framealloc runtime: worker threads that run tasks, each task with a heap of its own
/// (see the crate docs).
///
/// Dropping it shuts it down: tasks still alive are cancelled (their futures dropped on a
/// runtime thread, their heaps released), the workers are joined, and running
/// `spawn_blocking` jobs are waited for ([`shutdown_timeout`](Self::shutdown_timeout) bounds
/// that wait). Dropped inside one of its own tasks, it joins the other workers but not the one
/// it runs on (which exits once that poll returns), and does not wait for blocking jobs.
pub struct Runtime {
    handle: Handle,
    workers: Vec<thread::JoinHandle<()>>,
}

impl Runtime {
    /// A runtime with the default configuration ([`Builder::new`]).
    ///
    /// # Errors
    /// If a worker thread cannot be started.
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// A [`Builder`] to configure a runtime.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Runs `future` to completion on this thread, with this runtime entered (so the free
    /// [`spawn`](crate::spawn) works inside), and returns its output. The future is a task of
    /// its own for framealloc: it has a heap, and `frame_*` inside it panics (FA701).
    ///
    /// # Panics
    /// Inside a task or inside another `block_on` (the thread already drives tasks: blocking it
    /// could deadlock), and if `future` panics.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// Spawns `future` as a task (see [`Handle::spawn`]).
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Runs `f` on the blocking pool (see [`Handle::spawn_blocking`]).
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle.spawn_blocking(f)
    }

    /// A handle to this runtime.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Enters the runtime on this thread until the guard drops (see [`Handle::enter`]).
    pub fn enter(&self) -> EnterGuard<'_> {
        self.handle.enter()
    }

    /// Counters and allocator figures (see [`RuntimeMetrics`]).
    pub fn metrics(&self) -> RuntimeMetrics {
        self.handle.metrics()
    }

    /// Shuts down, waiting at most `timeout` for running `spawn_blocking` jobs (which cannot be
    /// interrupted; those still running afterwards are left to finish on their own). Tasks
    /// are cancelled and the workers joined as on drop.
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        self.shutdown(Some(Instant::now() + timeout));
    }

    /// Shuts down without waiting for running `spawn_blocking` jobs.
    pub fn shutdown_background(self) {
        self.shutdown_timeout(Duration::ZERO);
    }

    fn shutdown(&mut self, blocking_deadline: Option<Instant>) {
        let shared = &self.handle.shared;
        // Dropped inside one of its own tasks: that worker cannot be joined from itself (it
        // leaves its loop once the current poll returns), nor should it wait for blocking jobs.
        let on_own_worker = scheduler::with_current(|w| w.is_some_and(|w| Arc::ptr_eq(&w.shared, shared)));
        shared.shutdown();
        let here = thread::current().id();
        for w in self.workers.drain(..) {
            if w.thread().id() != here {
                // A worker never unwinds (task panics are caught), so `join` is `Ok`.
                let _ = w.join();
            }
        }
        // Tasks a worker could not reach (woken from outside while the workers left).
        shared.drop_remaining_tasks();
        // Sockets and timers still held outside the runtime fail or stay pending from now on.
        self.handle.driver.shutdown();
        shared.blocking.shutdown(if on_own_worker { Some(Instant::now()) } else { blocking_deadline });
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if !self.workers.is_empty() || !self.handle.shared.is_shutdown() {
            self.shutdown(None);
        }
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime").field("workers", &self.handle.shared.workers()).finish_non_exhaustive()
    }
}

/// A cheap, cloneable reference to a [`Runtime`]: spawn on it from anywhere, or block on a
/// future with it entered. `Send + Sync`.
///
/// Once the runtime is shut down, tasks spawned through a handle are cancelled at once (their
/// `JoinHandle` reports a cancelled [`JoinError`](crate::task::JoinError)).
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
    pub(crate) driver: Arc<driver::Handle>,
}

impl Handle {
    /// The runtime this thread runs in: a worker's or blocking thread's runtime, or the one
    /// entered with [`enter`](Self::enter) or `block_on`.
    ///
    /// # Panics
    /// Outside any runtime; [`try_current`](Self::try_current) does not.
    #[track_caller]
    pub fn current() -> Handle {
        match Self::try_current() {
            Ok(h) => h,
            Err(e) => panic!("{e}"),
        }
    }

    /// The runtime this thread runs in, if any.
    ///
    /// # Errors
    /// [`TryCurrentError`] outside any runtime.
    pub fn try_current() -> Result<Handle, TryCurrentError> {
        context::current().ok_or(TryCurrentError { _private: () })
    }

    /// Spawns `future` as a task with a heap of its own: `alloc.pool_*` inside it uses that
    /// heap, which is released when the task completes, is aborted or panics (before the
    /// output is published). From one of the runtime's workers it goes on that worker's own
    /// queue; from anywhere else, onto the shared injector.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.shared.spawn(future)
    }

    /// Runs the blocking function `f` on the blocking pool, a set of threads apart from the
    /// workers, started on demand up to [`Builder::max_blocking_threads`]. Like a task, `f`
    /// runs with a heap of its own; a panic in it comes back as a [`JoinError`](crate::task::JoinError).
    ///
    /// ```
    /// # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } }
    /// let rt = framealloc::runtime::Runtime::new().unwrap();
    /// let sum = rt.block_on(async {
    ///     framealloc::runtime::spawn_blocking(|| (1..=100u64).sum::<u64>()).await.unwrap()
    /// });
    /// assert_eq!(sum, 5050);
    /// ```
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        blocking::spawn_blocking(&self.shared, f)
    }

    /// Runs `future` to completion on this thread with the runtime entered (see
    /// [`Runtime::block_on`]).
    ///
    /// # Panics
    /// Inside a task or another `block_on`, and if `future` panics.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _driving = context::enter_driving("call `block_on`");
        let _entered = context::enter(self.clone());
        block_on_here(future)
    }

    /// Makes this the runtime of the current thread until the guard drops, so that the free
    /// [`spawn`](crate::spawn) and [`Handle::current`] work outside `block_on`.
    ///
    /// ```
    /// # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } }
    /// let rt = framealloc::runtime::Runtime::new().unwrap();
    /// let _guard = rt.enter();
    /// let t = framealloc::runtime::spawn(async { 1 + 1 });
    /// assert_eq!(rt.block_on(t).unwrap(), 2);
    /// ```
    pub fn enter(&self) -> EnterGuard<'_> {
        context::enter(self.clone())
    }

    /// Counters and allocator figures (see [`RuntimeMetrics`]).
    pub fn metrics(&self) -> RuntimeMetrics {
        RuntimeMetrics::collect(&self.shared, &self.driver)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("workers", &self.shared.workers()).finish_non_exhaustive()
    }
}

/// `Handle::try_current` outside any runtime.
#[derive(Debug)]
pub struct TryCurrentError {
    _private: (),
}

impl TryCurrentError {
    /// `true`: the thread is in no runtime (the only reason today).
    pub fn is_missing_context(&self) -> bool {
        true
    }
}

impl fmt::Display for TryCurrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "there is no framealloc runtime on this thread: call this from a task, inside \
             `Runtime::block_on`, or after `Runtime::enter`",
        )
    }
}

impl std::error::Error for TryCurrentError {}

/// Wakes the thread that `block_on` parks.
struct Unpark {
    thread: thread::Thread,
    woken: AtomicBool,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::Release) {
            self.thread.unpark();
        }
    }
}

/// Polls `future` on this thread until it completes, as a framealloc task.
fn block_on_here<F: Future>(future: F) -> F::Output {
    /// The root task: its future is dropped inside its context, also on panic.
    struct Root<'a, F> {
        future: Pin<&'a mut Option<F>>,
        ctx: TaskContext,
    }
    impl<F> Drop for Root<'_, F> {
        fn drop(&mut self) {
            let future = &mut self.future;
            self.ctx.enter(|| future.set(None));
            self.ctx.release();
        }
    }

    let unpark = Arc::new(Unpark { thread: thread::current(), woken: AtomicBool::new(false) });
    let waker = Waker::from(unpark.clone());
    let mut cx = Context::from_waker(&waker);
    let future = core::pin::pin!(Some(future));
    let mut root = Root { future, ctx: TaskContext::new() };
    loop {
        let future = &mut root.future;
        let polled = root.ctx.enter(|| {
            crate::coop::with_budget(|| future.as_mut().as_pin_mut().expect("polled until ready").poll(&mut cx))
        });
        if let Poll::Ready(out) = polled {
            return out; // `root` drops the future as the task
        }
        while !unpark.woken.swap(false, Ordering::Acquire) {
            thread::park();
        }
    }
}
