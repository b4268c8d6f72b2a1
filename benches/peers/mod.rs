//! The runtimes the `executor` and `net` benches compare, and their paired comparison.
//!
//! * [`Exec`]: what a workload needs of a runtime (spawning from outside and inside, joining,
//!   `block_on`), for framealloc's runtime, tokio's multi-thread runtime and [`AsyncEx`]
//!   (async-executor run by [`WORKERS`] threads).
//! * [`compare`]: runs the cases of one workload interleaved, `rounds` rounds each running
//!   every case once in turn (order rotated every round), a case being a batch of runs
//!   (enough for about 10 ms of framealloc's case, after one untimed run of each), and
//!   returns the line of per-case median times and per-round ratio quartiles.
//! * [`main`]: criterion's groups and the paired comparison, picked by the name filter.

// Each bench uses a part of it.
#![allow(dead_code)]

use async_executor::Executor;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Instant;

/// Worker threads of every runtime.
pub const WORKERS: usize = 2;
/// Rounds of a paired comparison (outside test mode).
pub const ROUNDS: usize = 15;
/// The case every ratio is taken against.
pub const OURS: &str = "framealloc";

/// Whether criterion is in test mode (`cargo bench` passes `--bench`, `cargo test` does not):
/// every case runs, small, as a check rather than a measurement.
pub fn smoke() -> bool {
    static SMOKE_MODE: OnceLock<bool> = OnceLock::new();
    *SMOKE_MODE.get_or_init(|| !std::env::args().any(|a| a == "--bench"))
}

/// The async-executor of every async-executor case (run by the threads of an [`AsyncEx`]).
pub static EX: Executor<'static> = Executor::new();

/// What the workloads need of a runtime.
pub trait Exec: Sync + 'static {
    /// A task's join handle.
    type Handle<T: Send + 'static>: Send + 'static;

    /// Spawns from outside the runtime (the bench thread).
    fn spawn<F>(&self, f: F) -> Self::Handle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Spawns from inside one of the runtime's tasks (or its `block_on`).
    fn spawn_in<F>(f: F) -> Self::Handle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Lets the task run on without a handle.
    fn detach<T: Send + 'static>(h: Self::Handle<T>);

    /// The task's output.
    fn join<T: Send + 'static>(h: Self::Handle<T>) -> impl Future<Output = T> + Send;

    /// Runs `f` on the bench thread to completion (the runtime's `block_on`).
    fn block_on<F: Future>(&self, f: F) -> F::Output;
}

impl Exec for framealloc::runtime::Runtime {
    type Handle<T: Send + 'static> = framealloc::runtime::JoinHandle<T>;

    fn spawn<F>(&self, f: F) -> Self::Handle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        framealloc::runtime::Runtime::spawn(self, f)
    }

    fn spawn_in<F>(f: F) -> Self::Handle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        framealloc::runtime::spawn(f)
    }

    fn detach<T: Send + 'static>(h: Self::Handle<T>) {
        drop(h);
    }

    async fn join<T: Send + 'static>(h: Self::Handle<T>) -> T {
        h.await.expect("task completed")
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        framealloc::runtime::Runtime::block_on(self, f)
    }
}

impl Exec for tokio::runtime::Runtime {
    type Handle<T: Send + 'static> = tokio::task::JoinHandle<T>;

    fn spawn<F>(&self, f: F) -> Self::Handle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::runtime::Runtime::spawn(self, f)
    }

    fn spawn_in<F>(f: F) -> Self::Handle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::spawn(f)
    }

    fn detach<T: Send + 'static>(h: Self::Handle<T>) {
        drop(h);
    }

    async fn join<T: Send + 'static>(h: Self::Handle<T>) -> T {
        h.await.expect("task completed")
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        tokio::runtime::Runtime::block_on(self, f)
    }
}

/// How the threads of an [`AsyncEx`] (and its `block_on`) wait.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Blocking {
    /// `futures_lite::future::block_on`: a thread with nothing to run sleeps (no reactor; the
    /// usual multi-threaded set-up for pure computation).
    Plain,
    /// `async_io::block_on`: a thread with nothing to run turns async-io's reactor (smol's
    /// set-up, for sockets and timers).
    Reactor,
}

impl Blocking {
    fn block_on<F: Future>(self, f: F) -> F::Output {
        match self {
            Blocking::Plain => futures_lite::future::block_on(f),
            Blocking::Reactor => async_io::block_on(f),
        }
    }
}

/// [`WORKERS`] threads running [`EX`] until dropped.
pub struct AsyncEx {
    blocking: Blocking,
    stops: Vec<futures::channel::oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl AsyncEx {
    pub fn new(blocking: Blocking) -> Self {
        let (mut stops, mut threads) = (Vec::new(), Vec::new());
        for i in 0..WORKERS {
            let (tx, rx) = futures::channel::oneshot::channel::<()>();
            stops.push(tx);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("async-executor-{i}"))
                    .spawn(move || {
                        blocking.block_on(EX.run(async move {
                            let _ = rx.await;
                        }))
                    })
                    .expect("thread started"),
            );
        }
        Self { blocking, stops, threads }
    }
}

impl Drop for AsyncEx {
    fn drop(&mut self) {
        for tx in self.stops.drain(..) {
            let _ = tx.send(());
        }
        for t in self.threads.drain(..) {
            t.join().expect("async-executor thread ended normally");
        }
    }
}

impl Exec for AsyncEx {
    type Handle<T: Send + 'static> = async_executor::Task<T>;

    fn spawn<F>(&self, f: F) -> Self::Handle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        EX.spawn(f)
    }

    fn spawn_in<F>(f: F) -> Self::Handle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        EX.spawn(f)
    }

    fn detach<T: Send + 'static>(h: Self::Handle<T>) {
        h.detach();
    }

    fn join<T: Send + 'static>(h: Self::Handle<T>) -> impl Future<Output = T> + Send {
        h
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.blocking.block_on(f)
    }
}

/// One case of a workload: a name and a function running the workload once.
pub type Case<'a> = (&'static str, Box<dyn Fn() + 'a>);

/// The 25th, 50th and 75th percentiles of `v`.
fn quartiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 4], v[v.len() / 2], v[v.len() * 3 / 4])
}

/// Time in the most readable unit.
fn show(secs: f64) -> String {
    if secs >= 1e-3 {
        format!("{:.2} ms", secs * 1e3)
    } else {
        format!("{:.1} us", secs * 1e6)
    }
}

/// The heading of a paired comparison.
pub fn heading() -> String {
    let note = if smoke() { "; a smoke run, not a measurement" } else { "" };
    format!(
        "\npaired comparison, {WORKERS} workers each, {} rounds{note} (ratios: peer time / framealloc time, median and quartiles of the per-round ratios):",
        rounds()
    )
}

fn rounds() -> usize {
    if smoke() {
        2
    } else {
        ROUNDS
    }
}

/// Runs `cases` (one of them [`OURS`]) interleaved and returns the result line, starting
/// with `label` padded to `width`; `after_each` runs after every timed batch (a check).
pub fn compare(label: &str, width: usize, describe: &str, cases: &[Case], after_each: impl Fn()) -> String {
    let rounds = rounds();
    let ours = cases.iter().position(|c| c.0 == OURS).expect("case present");
    // Runs per batch: about 10 ms of framealloc's case.
    let batch = if smoke() {
        1
    } else {
        let start = Instant::now();
        (cases[ours].1)();
        let once = start.elapsed().as_secs_f64();
        ((0.01 / once).ceil() as u32).clamp(1, 100)
    };
    after_each();
    let mut times = vec![Vec::with_capacity(rounds); cases.len()];
    for round in 0..rounds {
        for k in 0..cases.len() {
            let i = (round + k) % cases.len();
            (cases[i].1)(); // untimed: the case starts warm, whatever ran before it
            let start = Instant::now();
            for _ in 0..batch {
                (cases[i].1)();
            }
            times[i].push(start.elapsed().as_secs_f64() / f64::from(batch));
            after_each();
        }
    }
    let mut line = format!(
        "  {label:<width$} ({describe}, batches of {batch}): {OURS} {}",
        show(quartiles(times[ours].clone()).1)
    );
    for (i, (name, _)) in cases.iter().enumerate() {
        if i == ours {
            continue;
        }
        let ratios = times[i].iter().zip(&times[ours]).map(|(t, o)| t / o).collect();
        let (q1, r, q3) = quartiles(ratios);
        line += &format!(" | {name} {}, {name}/ours = {r:.2}x ({q1:.2}-{q3:.2})", show(quartiles(times[i].clone()).1));
    }
    line
}

/// A bench's `main`: a name filter on the command line that does not ask for "paired" skips
/// the comparison; the filter "paired" skips the criterion groups (which would build their
/// runtimes and check their cases before criterion filters them out).
pub fn main(groups: fn(), paired: fn()) {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.as_deref() != Some("paired") {
        groups();
    }
    if filter.as_deref().is_none_or(|f| "paired".contains(f) || f.contains("paired")) {
        paired();
    }
    criterion::Criterion::default().configure_from_args().final_summary();
}
