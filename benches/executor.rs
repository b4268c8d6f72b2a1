//! framealloc's runtime against tokio's multi-thread runtime and async-executor, on tokio's
//! own scheduler benchmarks and on a request workload that allocates.
//!
//! Run with `cargo bench --bench executor` (criterion groups, then the paired comparison), or
//! `cargo bench --bench executor -- paired` for the paired comparison alone.
//!
//! Every workload runs on three runtimes, each with two worker threads, built once per group
//! in the same process:
//!
//! * `framealloc`: `framealloc::runtime::Runtime::builder().worker_threads(2)`, tasks spawned
//!   with `Runtime::spawn` from outside and `framealloc::runtime::spawn` inside a task; every
//!   task has a heap of its own (created when it first allocates).
//! * `tokio`: `tokio::runtime::Builder::new_multi_thread().worker_threads(2)`, `Runtime::spawn`
//!   from outside and `tokio::spawn` inside.
//! * `async-executor`: a `static` `async_executor::Executor` run by two threads
//!   (`futures_lite::future::block_on(EX.run(stop))`, the usual multi-threaded set-up), tasks
//!   spawned with `EX.spawn` everywhere (and `.detach()`ed where the others drop the handle);
//!   the bench thread waits with `futures_lite::future::block_on`.
//!
//! The workloads are those of tokio's `benches/rt_multi_threaded.rs`, with its constants:
//!
//! * `spawn_many_local`: one task spawns `NUM_SPAWN` = 10,000 empty tasks (from inside a task,
//!   so onto its worker's own queue); each decrements a shared counter and the last one sends
//!   on a `std::sync::mpsc` channel the bench thread waits on. (tokio's version spawns from
//!   `block_on`, which on its multi-thread runtime is not a worker: here the spawner is a task,
//!   as the name says.)
//! * `spawn_many_remote_idle`: the bench thread spawns 10,000 empty tasks onto the idle
//!   runtime, then awaits their join handles in `block_on`.
//! * `yield_many`: 200 tasks spawned from outside, each yielding 1,000 times (the runtime's
//!   own `yield_now`, `futures_lite::future::yield_now` on async-executor), then sending on an
//!   mpsc channel; the bench thread receives 200 times.
//! * `ping_pong`: one task spawns 1,000 tasks; each makes two oneshot channels, spawns a task
//!   that awaits the first and sends on the second, sends on the first and awaits the second;
//!   the last one done signals the bench thread. The channels are `futures::channel::oneshot`
//!   on all three runtimes (tokio's uses its own oneshot), so only the runtimes differ.
//! * `chained_spawn`: a chain of 1,000 tasks, each spawning the next; the last one signals.
//!
//! and a request workload:
//!
//! * `request`: `block_on` spawns 10,000 tasks and awaits them. Each task makes 64 byte
//!   buffers, 16 each of 16, 64, 128 and 256 bytes (in that order, repeated), pushes one byte
//!   into each, yields once, reads the bytes back (the task's result; the sum is checked) and
//!   frees the buffers. The buffers are kept in an array inside the task's future. On
//!   framealloc they come from the task's heap (`alloc.pool_vec_with_capacity::<u8>(n)`, with
//!   the `SmartAlloc` the runtime was built with, a `static` here so that no case pays an
//!   `Arc` clone per task); on tokio and async-executor from the system allocator
//!   (`Vec::with_capacity`); a fourth case, `tokio+mimalloc`, runs tokio with
//!   `allocator_api2::vec::Vec::with_capacity_in(n, Mi)` over `mimalloc::MiMalloc` (the
//!   adapter of `benches/handlers`), and a fifth, `runtime+mimalloc`, this runtime with the
//!   same mimalloc buffers: the two executors compared with the allocator held equal.
//!
//! Each workload is a criterion group with the cases side by side (throughput: tasks).
//!
//! After the groups, a **paired comparison** (`paired`) runs the cases of each workload
//! interleaved: `ROUNDS` rounds, each running every case once in turn (order rotated every
//! round), a case being a batch of runs (enough for about 10 ms, after one untimed run). It
//! prints per workload each case's median time and the median (with quartiles) of the
//! per-round ratio peer time / framealloc time: above 1, framealloc was faster. A slow spell
//! of the shared machine hits all cases alike, so these ratios are steadier than ones taken
//! across separate criterion runs.
//!
//! It then measures the **memory of an idle task**: 100,000 tasks spawned from outside, each
//! awaiting a `futures::channel::oneshot::Receiver<()>` (parked after its first poll); the
//! resident set's growth (`/proc/self/statm`, resident pages times 4096) from just before the
//! spawns to when all have been polled, divided by the number of tasks. The channels and the
//! vectors holding their ends are made before the first reading, so what is counted is the
//! task (its allocation and future, the runtime's records of it, queue blocks). Each runtime
//! is measured in a child process of its own (this binary, started again), so that memory one
//! runtime freed cannot be reused by the next and hide its cost. Then every oneshot is sent
//! on and the tasks are awaited.
//!
//! Then the same for a **busy task**, 10,000 of them, each holding a connection's state
//! across its wait: a 2 KiB byte buffer, 16 boxed 48-byte records and 64 `u32`s. On
//! framealloc (and on tokio through `framealloc::tokio::with_task_heap`, with the feature
//! `tokio`) they live in a `TaskAlloc` made in the task, as the guide teaches; on tokio and
//! async-executor in `Vec`s and `Box`es of the global allocator.
//!
//! Checks (correctness, not performance): every workload checks its own result (counters
//! reaching zero, sums, join results); before timing, each case runs once with framealloc's
//! statistics read around it (the request workload makes exactly 64 task-heap allocations a
//! task on framealloc, and no other case or workload makes any, nor any thread-pool
//! allocation); after every framealloc batch, criterion benchmark and idle-task measurement,
//! `heaps_alive` and the task heaps' `live_bytes` are 0.
//!
//! Under `cargo test --benches` (criterion's test mode: no `--bench` argument) every count is
//! small (a few hundred tasks, 2,000 idle ones) and the paired comparison runs two rounds of
//! one run: a check that every case works, not a measurement.

use criterion::{criterion_group, Criterion, Throughput};
// The request handlers' helpers of the tokio bench: mimalloc as an allocator-api2 allocator,
// and the system allocator's settling (the rest is that bench's).
mod handlers;
mod peers;
use framealloc::SmartAlloc;
use handlers::{settle_system_allocator, Mi};
use peers::{smoke, AsyncEx, Blocking, Case, OURS, WORKERS};
use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::{mpsc, Arc, LazyLock};
use std::time::{Duration, Instant};

/// Allocations per request task.
const ALLOCS: usize = 64;
/// The request buffers' sizes, repeated: 16 of each.
const SIZES: [usize; 4] = [16, 64, 128, 256];
/// Environment variable that makes this binary an idle-task-memory child: `<runtime>:<tasks>`.
const MEMORY_CHILD: &str = "FRAMEALLOC_EXECUTOR_BENCH_MEMORY_CHILD";

/// The workloads' sizes.
#[derive(Clone, Copy, Debug)]
struct Counts {
    /// Tasks of `spawn_many_local` and `spawn_many_remote_idle` (tokio's `NUM_SPAWN`).
    spawn: usize,
    /// Tasks of `yield_many` (tokio's `TASKS`).
    yield_tasks: usize,
    /// Yields per `yield_many` task (tokio's `NUM_YIELD`).
    yields: usize,
    /// Pings of `ping_pong` (tokio's `NUM_PINGS`).
    pings: usize,
    /// Length of `chained_spawn`'s chain (tokio's `ITER`).
    chain: usize,
    /// Tasks of `request`.
    requests: usize,
    /// Idle tasks of the memory measurement.
    idle: usize,
    /// Busy tasks of the busy-task memory measurement.
    busy: usize,
}

/// tokio's constants, and the request and idle-memory sizes.
const FULL: Counts = Counts {
    spawn: 10_000,
    yield_tasks: 200,
    yields: 1_000,
    pings: 1_000,
    chain: 1_000,
    requests: 10_000,
    idle: 100_000,
    busy: 10_000,
};

/// Test mode's (`cargo test --benches`): every case checked, quickly, in a debug build.
const SMOKE: Counts =
    Counts { spawn: 500, yield_tasks: 20, yields: 50, pings: 100, chain: 100, requests: 500, idle: 2_000, busy: 500 };

/// The counts of this run.
fn counts() -> Counts {
    if smoke() {
        SMOKE
    } else {
        FULL
    }
}

/// The `SmartAlloc` every framealloc runtime here is built with and the request tasks
/// allocate from.
static ALLOC: LazyLock<SmartAlloc> = LazyLock::new(|| SmartAlloc::new(Default::default()));

/// What the workloads need of a runtime beyond spawning: yielding.
trait Exec: peers::Exec {
    /// Yields to the scheduler once.
    fn yield_now() -> impl Future<Output = ()> + Send;
}

impl Exec for framealloc::runtime::Runtime {
    fn yield_now() -> impl Future<Output = ()> + Send {
        framealloc::runtime::yield_now()
    }
}

impl Exec for tokio::runtime::Runtime {
    fn yield_now() -> impl Future<Output = ()> + Send {
        tokio::task::yield_now()
    }
}

impl Exec for AsyncEx {
    fn yield_now() -> impl Future<Output = ()> + Send {
        futures_lite::future::yield_now()
    }
}

/// tokio's `spawn_many_local`, the spawner a task.
fn spawn_many_local<E: Exec>(rt: &E, n: usize) {
    let (tx, rx) = mpsc::sync_channel(1);
    let rem = Arc::new(AtomicUsize::new(n));
    let left = rem.clone();
    E::detach(rt.spawn(async move {
        for _ in 0..n {
            let tx = tx.clone();
            let rem = rem.clone();
            E::detach(E::spawn_in(async move {
                if rem.fetch_sub(1, Relaxed) == 1 {
                    tx.send(()).unwrap();
                }
            }));
        }
    }));
    rx.recv().expect("the last task signalled");
    assert_eq!(left.load(Relaxed), 0);
}

/// tokio's `spawn_many_remote_idle`.
fn spawn_many_remote_idle<E: Exec>(rt: &E, n: usize) {
    let handles: Vec<_> = (0..n).map(|_| rt.spawn(async { 1u64 })).collect();
    let sum = rt.block_on(async {
        let mut sum = 0;
        for h in handles {
            sum += E::join(h).await;
        }
        sum
    });
    assert_eq!(sum, n as u64);
}

/// tokio's `yield_many`.
fn yield_many<E: Exec>(rt: &E, tasks: usize, yields: usize) {
    let (tx, rx) = mpsc::sync_channel(tasks);
    for _ in 0..tasks {
        let tx = tx.clone();
        E::detach(rt.spawn(async move {
            let mut n = 0;
            for _ in 0..yields {
                E::yield_now().await;
                n += 1;
            }
            tx.send(n).unwrap();
        }));
    }
    for _ in 0..tasks {
        assert_eq!(rx.recv().expect("a task finished"), yields);
    }
}

/// tokio's `ping_pong`, with `futures::channel::oneshot`.
fn ping_pong<E: Exec>(rt: &E, pings: usize) {
    use futures::channel::oneshot;
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    let rem = Arc::new(AtomicUsize::new(pings));
    let left = rem.clone();
    E::detach(rt.spawn(async move {
        for _ in 0..pings {
            let rem = rem.clone();
            let done_tx = done_tx.clone();
            E::detach(E::spawn_in(async move {
                let (tx1, rx1) = oneshot::channel::<()>();
                let (tx2, rx2) = oneshot::channel::<()>();
                E::detach(E::spawn_in(async move {
                    rx1.await.unwrap();
                    tx2.send(()).unwrap();
                }));
                tx1.send(()).unwrap();
                rx2.await.unwrap();
                if rem.fetch_sub(1, Relaxed) == 1 {
                    done_tx.send(()).unwrap();
                }
            }));
        }
    }));
    done_rx.recv().expect("the last ping signalled");
    assert_eq!(left.load(Relaxed), 0);
}

/// tokio's `chained_spawn`.
fn chained_spawn<E: Exec>(rt: &E, depth: usize) {
    fn link<E: Exec>(done: mpsc::SyncSender<usize>, n: usize, depth: usize) {
        if n == depth {
            done.send(n).unwrap();
        } else {
            E::detach(E::spawn_in(async move { link::<E>(done, n + 1, depth) }));
        }
    }
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    E::detach(rt.spawn(async move { link::<E>(done_tx, 0, depth) }));
    assert_eq!(done_rx.recv().expect("the chain ended"), depth);
}

/// One request: `ALLOCS` buffers made with `$make(capacity)`, a byte pushed into each, held
/// across one yield of runtime `$e`, read back (the result: `ALLOCS * 7`) and freed.
macro_rules! request_body {
    ($e:ty, $make:expr) => {{
        let held: [_; ALLOCS] = std::array::from_fn(|i| {
            let mut v = $make(SIZES[i % SIZES.len()]);
            v.push(7u8);
            v
        });
        <$e>::yield_now().await;
        black_box(&held).iter().map(|v| u64::from(v[0])).sum::<u64>()
    }};
}

/// A request on the system allocator.
async fn request_system<E: Exec>() -> u64 {
    request_body!(E, Vec::<u8>::with_capacity)
}

/// A request on mimalloc.
async fn request_mimalloc<E: Exec>() -> u64 {
    request_body!(E, |n| allocator_api2::vec::Vec::<u8, Mi>::with_capacity_in(n, Mi))
}

/// A request on the task's heap (framealloc's runtime).
async fn request_pool<E: Exec>() -> u64 {
    let alloc: &SmartAlloc = &ALLOC;
    request_body!(E, |n| alloc.pool_vec_with_capacity::<u8>(n))
}

/// `n` request tasks spawned from `block_on`, awaited, their sum checked.
fn request<E: Exec, Fut>(rt: &E, n: usize, handler: fn() -> Fut)
where
    Fut: Future<Output = u64> + Send + 'static,
{
    let sum = rt.block_on(async {
        let handles: Vec<_> = (0..n).map(|_| E::spawn_in(handler())).collect();
        let mut sum = 0;
        for h in handles {
            sum += E::join(h).await;
        }
        sum
    });
    assert_eq!(sum, (n * ALLOCS * 7) as u64);
}

/// A workload of the bench.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    SpawnManyLocal,
    SpawnManyRemoteIdle,
    YieldMany,
    PingPong,
    ChainedSpawn,
    Request,
}

impl Workload {
    const ALL: [Workload; 6] = [
        Workload::SpawnManyLocal,
        Workload::SpawnManyRemoteIdle,
        Workload::YieldMany,
        Workload::PingPong,
        Workload::ChainedSpawn,
        Workload::Request,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::SpawnManyLocal => "spawn_many_local",
            Workload::SpawnManyRemoteIdle => "spawn_many_remote_idle",
            Workload::YieldMany => "yield_many",
            Workload::PingPong => "ping_pong",
            Workload::ChainedSpawn => "chained_spawn",
            Workload::Request => "request",
        }
    }

    /// Tasks (for `yield_many`: yields) per run: the throughput's elements.
    fn elements(self, c: &Counts) -> u64 {
        (match self {
            Workload::SpawnManyLocal | Workload::SpawnManyRemoteIdle => c.spawn,
            Workload::YieldMany => c.yield_tasks * c.yields,
            Workload::PingPong => c.pings * 2,
            Workload::ChainedSpawn => c.chain,
            Workload::Request => c.requests,
        }) as u64
    }

    /// What a run is, for the paired comparison's heading.
    fn describe(self, c: &Counts) -> String {
        match self {
            Workload::SpawnManyLocal | Workload::SpawnManyRemoteIdle => format!("{} tasks", c.spawn),
            Workload::YieldMany => format!("{} tasks x {} yields", c.yield_tasks, c.yields),
            Workload::PingPong => format!("{} pings", c.pings),
            Workload::ChainedSpawn => format!("chain of {}", c.chain),
            Workload::Request => format!("{} tasks x {ALLOCS} allocations", c.requests),
        }
    }
}

/// Where the request workload's buffers come from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Memory {
    System,
    Mimalloc,
    TaskHeap,
}

/// Runs workload `w` once on `rt`.
fn run<E: Exec>(rt: &E, w: Workload, c: &Counts, memory: Memory) {
    match w {
        Workload::SpawnManyLocal => spawn_many_local(rt, c.spawn),
        Workload::SpawnManyRemoteIdle => spawn_many_remote_idle(rt, c.spawn),
        Workload::YieldMany => yield_many(rt, c.yield_tasks, c.yields),
        Workload::PingPong => ping_pong(rt, c.pings),
        Workload::ChainedSpawn => chained_spawn(rt, c.chain),
        Workload::Request => match memory {
            Memory::System => request(rt, c.requests, request_system::<E>),
            Memory::Mimalloc => request(rt, c.requests, request_mimalloc::<E>),
            Memory::TaskHeap => request(rt, c.requests, request_pool::<E>),
        },
    }
}

/// The three runtimes of a group.
struct Runtimes {
    framealloc: framealloc::runtime::Runtime,
    tokio: tokio::runtime::Runtime,
    async_ex: AsyncEx,
}

impl Runtimes {
    fn new() -> Self {
        Self { framealloc: framealloc_runtime(), tokio: tokio_runtime(), async_ex: AsyncEx::new(Blocking::Plain) }
    }
}

fn framealloc_runtime() -> framealloc::runtime::Runtime {
    framealloc::runtime::Runtime::builder().worker_threads(WORKERS).alloc(&ALLOC).build().expect("runtime built")
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(WORKERS).enable_all().build().expect("runtime built")
}

/// The cases of workload `w` (framealloc first; `tokio+mimalloc` and `runtime+mimalloc` for
/// `request` only).
fn cases<'a>(rts: &'a Runtimes, w: Workload, c: Counts) -> Vec<Case<'a>> {
    let mut cases: Vec<Case<'a>> = vec![
        (OURS, Box::new(move || run(&rts.framealloc, w, &c, Memory::TaskHeap))),
        ("tokio", Box::new(move || run(&rts.tokio, w, &c, Memory::System))),
        ("async-executor", Box::new(move || run(&rts.async_ex, w, &c, Memory::System))),
    ];
    if w == Workload::Request {
        cases.push(("tokio+mimalloc", Box::new(move || run(&rts.tokio, w, &c, Memory::Mimalloc))));
        // The executors alone, with the same allocator: this runtime with mimalloc.
        cases.push(("runtime+mimalloc", Box::new(move || run(&rts.framealloc, w, &c, Memory::Mimalloc))));
    }
    cases
}

/// No task heap is alive and no task-heap memory is in use.
fn assert_heaps_released() {
    let s = ALLOC.stats();
    assert_eq!((s.heaps_alive, s.task.live_bytes), (0, 0), "task heaps left after a case: {s:?}");
}

/// Runs every case once with framealloc's statistics read around it: only framealloc's
/// request workload allocates in task heaps, exactly `ALLOCS` blocks a task; nothing
/// allocates in a thread's pool.
fn verify(cases: &[Case], w: Workload, c: &Counts) {
    for (name, run) in cases {
        let before = ALLOC.stats();
        run();
        let after = ALLOC.stats();
        assert_heaps_released();
        let expect = if *name == OURS && w == Workload::Request { (c.requests * ALLOCS) as u64 } else { 0 };
        assert_eq!(after.task.allocations - before.task.allocations, expect, "{} {name}: {after:?}", w.name());
        assert_eq!(after.pool.allocations, 0, "{} {name}: {after:?}", w.name());
    }
}

/// One criterion group per workload, the cases side by side.
fn groups(c: &mut Criterion) {
    let counts = counts();
    for w in Workload::ALL {
        let rts = Runtimes::new();
        let cases = cases(&rts, w, counts);
        verify(&cases, w, &counts);
        let mut g = c.benchmark_group(w.name());
        g.throughput(Throughput::Elements(w.elements(&counts)));
        g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
        for (name, run) in &cases {
            g.bench_function(*name, |b| b.iter(run));
            assert_heaps_released();
        }
        g.finish();
    }
}

/// The paired comparison (see the module docs), then the idle-task memory.
fn paired() {
    let counts = counts();
    let rts = Runtimes::new();
    println!("{}", peers::heading());
    for w in Workload::ALL {
        let cases = cases(&rts, w, counts);
        verify(&cases, w, &counts);
        println!("{}", peers::compare(w.name(), 23, &w.describe(&counts), &cases, assert_heaps_released));
    }
    drop(rts);
    task_memory(counts.idle, Held::Idle);
    task_memory(counts.busy, Held::Busy);
}

/// What the tasks of a memory measurement hold while they wait.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Held {
    /// Nothing: an idle task.
    Idle,
    /// A busy connection's state: a 2 KiB buffer, 16 boxed 48-byte records and 64 `u32`s
    /// (on framealloc in a `TaskAlloc`, elsewhere on the global allocator).
    Busy,
}

impl Held {
    fn name(self) -> &'static str {
        match self {
            Held::Idle => "idle",
            Held::Busy => "busy",
        }
    }
}

/// The memory per waiting task of each runtime, each measured in a child process.
fn task_memory(n: usize, held: Held) {
    let exe = std::env::current_exe().expect("the bench binary's path");
    let mut results = Vec::new();
    let mut runtimes = vec![OURS, "tokio", "async-executor"];
    if held == Held::Busy && cfg!(feature = "tokio") {
        runtimes.push("tokio+framealloc");
    }
    for which in runtimes {
        let out = std::process::Command::new(&exe)
            .env(MEMORY_CHILD, format!("{which}:{n}:{}", held.name()))
            .output()
            .expect("task-memory child started");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "task-memory child for {which} failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = stdout
            .lines()
            .find_map(|l| l.strip_prefix("bytes_per_task "))
            .map(|v| v.trim().parse::<f64>().expect("a number"));
        results.push((which, bytes));
    }
    let note = if smoke() { "; a smoke run, not a measurement" } else { "" };
    let Some(ours) = results[0].1 else {
        println!("\n{} task memory: /proc/self/statm unavailable, not measured", held.name());
        return;
    };
    let what = match held {
        Held::Idle => "parked on a oneshot",
        Held::Busy => "each holding 2 KiB + 16 x 48 B + 64 u32 across a oneshot",
    };
    let mut line = format!(
        "\n{} task memory ({n} tasks {what}, resident set growth per task{note}): {OURS} {ours:.0} B",
        held.name()
    );
    for (which, bytes) in &results[1..] {
        if let Some(b) = bytes {
            line += &format!(" | {which} {b:.0} B, ours/{which} = {:.2}x", ours / b);
        }
    }
    println!("{line}");
}

/// Resident set size in bytes (Linux; `None` elsewhere).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Idle tasks that have been polled once.
static STARTED: AtomicUsize = AtomicUsize::new(0);
/// Idle tasks that have ended.
static DONE: AtomicUsize = AtomicUsize::new(0);

/// Waits until `counter` reaches `n`.
fn wait_for(counter: &AtomicUsize, n: usize) {
    let start = Instant::now();
    while counter.load(Acquire) < n {
        assert!(start.elapsed() < Duration::from_secs(120), "tasks stuck: {} of {n}", counter.load(Acquire));
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The child's part: `n` tasks on `rt` waiting on a oneshot, each made by `task` from its
/// receiver; prints the resident bytes per task.
fn waiting_tasks<E: Exec, F>(rt: &E, n: usize, task: impl Fn(futures::channel::oneshot::Receiver<()>) -> F)
where
    F: Future<Output = ()> + Send + 'static,
{
    use futures::channel::oneshot;
    // Warm-up: worker threads, their stacks and thread-locals all in use once.
    for _ in 0..4 {
        let handles: Vec<_> = (0..64).map(|_| rt.spawn(async { E::yield_now().await })).collect();
        rt.block_on(async {
            for h in handles {
                E::join(h).await;
            }
        });
    }
    let (mut senders, mut receivers) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let (tx, rx) = oneshot::channel::<()>();
        senders.push(tx);
        receivers.push(rx);
    }
    let before = resident_bytes();
    for rx in receivers.drain(..) {
        E::detach(rt.spawn(task(rx)));
    }
    wait_for(&STARTED, n);
    let after = resident_bytes();
    if let (Some(before), Some(after)) = (before, after) {
        println!("bytes_per_task {}", after.saturating_sub(before) as f64 / n as f64);
    }
    for tx in senders {
        tx.send(()).expect("task waiting");
    }
    wait_for(&DONE, n);
    drop(receivers);
}

/// An idle task: waits for its oneshot.
async fn idle_task(rx: futures::channel::oneshot::Receiver<()>) {
    STARTED.fetch_add(1, Release);
    rx.await.expect("sent");
    DONE.fetch_add(1, Release);
}

/// The state a busy task holds across its wait, built by `buffer`, `record` and `words`.
macro_rules! busy_body {
    ($rx:expr, $buffer:expr, $record:expr, $words:expr) => {{
        let mut buffer = $buffer;
        buffer.extend_from_slice(&[7u8; 2048]);
        let records: [_; 16] = std::array::from_fn(|i| $record([i as u8; 48]));
        let mut words = $words;
        words.extend_from_slice(&[3u32; 64]);
        STARTED.fetch_add(1, Release);
        $rx.await.expect("sent");
        let sum = buffer[2047] as usize + records.iter().map(|r| r[47] as usize).sum::<usize>() + words[63] as usize;
        assert_eq!(sum, 7 + 120 + 3);
        DONE.fetch_add(1, Release);
    }};
}

/// A busy task on the global allocator.
async fn busy_system(rx: futures::channel::oneshot::Receiver<()>) {
    busy_body!(rx, Vec::<u8>::new(), Box::new, Vec::<u32>::new())
}

/// A busy task with its state in a `TaskAlloc` (the guide's pattern).
async fn busy_task_alloc(rx: futures::channel::oneshot::Receiver<()>) {
    let task = framealloc::TaskAlloc::new(&ALLOC);
    busy_body!(rx, task.alloc_vec::<u8>(), |r| task.alloc_box(r), task.alloc_vec::<u32>())
}

/// The task-memory child process: `spec` is `<runtime>:<tasks>:<idle|busy>`.
fn memory_child(spec: &str) {
    let mut parts = spec.split(':');
    let (which, n, held) = (parts.next(), parts.next(), parts.next());
    let (Some(which), Some(n), Some(held)) = (which, n, held) else {
        panic!("<runtime>:<tasks>:<idle|busy>, not {spec}")
    };
    let n: usize = n.parse().expect("a task count");
    let busy = match held {
        "idle" => false,
        "busy" => true,
        other => panic!("idle or busy, not {other}"),
    };
    match (which, busy) {
        (OURS, false) | (OURS, true) => {
            let rt = framealloc_runtime();
            if busy {
                waiting_tasks(&rt, n, busy_task_alloc);
            } else {
                waiting_tasks(&rt, n, idle_task);
            }
            drop(rt);
            assert_heaps_released();
        }
        ("tokio", false) => waiting_tasks(&tokio_runtime(), n, idle_task),
        ("tokio", true) => waiting_tasks(&tokio_runtime(), n, busy_system),
        ("async-executor", false) => waiting_tasks(&AsyncEx::new(Blocking::Plain), n, idle_task),
        ("async-executor", true) => waiting_tasks(&AsyncEx::new(Blocking::Plain), n, busy_system),
        #[cfg(feature = "tokio")]
        ("tokio+framealloc", true) => {
            let rt = tokio_runtime();
            waiting_tasks(&rt, n, |rx| framealloc::tokio::with_task_heap(busy_task_alloc(rx)));
            drop(rt);
            assert_heaps_released();
        }
        (other, _) => panic!("unknown runtime {other}"),
    }
}

criterion_group!(benches, groups);

fn main() {
    // glibc's malloc in a long-running process's state (see `settle_system_allocator`).
    settle_system_allocator();
    if let Ok(spec) = std::env::var(MEMORY_CHILD) {
        memory_child(&spec);
        return;
    }
    peers::main(benches, paired);
}
