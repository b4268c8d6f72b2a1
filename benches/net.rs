//! framealloc's reactor and timer wheel against tokio's and async-io's: loopback TCP echo and
//! many timers.
//!
//! Run with `cargo bench --bench net` (criterion groups, then the paired comparison), or
//! `cargo bench --bench net -- paired` for the paired comparison alone.
//!
//! Every workload runs on three runtimes, each with two worker threads, built once in the
//! same process (and kept for the whole run):
//!
//! * `framealloc`: `framealloc::runtime::Runtime::builder().worker_threads(2)`, with its
//!   `net::{TcpListener, TcpStream}` and `time::sleep`; its workers turn the reactor and
//!   timer wheel themselves (no driver thread).
//! * `tokio`: `tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all()`,
//!   with `tokio::net` and `tokio::time::sleep`.
//! * `async-executor`: a `static` `async_executor::Executor` run by two threads with
//!   `async_io::block_on(EX.run(stop))` (smol's set-up: a thread with nothing to run turns
//!   async-io's reactor), with `async_io::Async<std::net::{TcpListener, TcpStream}>`,
//!   futures-lite's `AsyncReadExt`/`AsyncWriteExt`, and `async_io::Timer::after`.
//!
//! Tasks are spawned as in `benches/executor.rs`: from outside with the runtime's `spawn`
//! (`EX.spawn` and `.detach()` on async-executor), from inside a task with
//! `framealloc::runtime::spawn`, `tokio::spawn` and `EX.spawn`. Each run starts with one task
//! spawned from the bench thread, which sends the run's result on a `std::sync::mpsc`
//! channel the bench thread waits on (at most a minute: a run that hangs fails the bench).
//!
//! The workloads:
//!
//! * `tcp_echo`: each runtime has, from its start, an echo server on `127.0.0.1` (port 0): a
//!   task accepting connections in a loop and spawning one echo task per connection, which
//!   reads into a 64-byte buffer and writes what it read back (`write_all`) until end of
//!   stream; and `CONNS` = 50 client connections to it, connected once when the runtime is
//!   built (outside any timing; persistent, so that many runs leave no sockets in
//!   `TIME_WAIT` and no run pays a handshake). `TCP_NODELAY` is set on both ends of every
//!   connection. A run spawns one client task per connection, each making `ROUND_TRIPS` =
//!   200 round trips of a 32-byte message (its connection's number and the round's, so no
//!   two are alike): `write_all`, then `read_exact` of 32 bytes, checked equal to what was
//!   sent. The client tasks hand their connections back, and the run ends when all have
//!   (10,000 round trips; throughput: round trips). The server's tasks and the clients' share
//!   the runtime's two workers.
//! * `timers`: one task spawns `TIMERS` = 100,000 tasks; task `i` sleeps for `1 + i % 10`
//!   ms (`framealloc::runtime::time::sleep`, `tokio::time::sleep`, `async_io::Timer::after`),
//!   checks that at least that long has passed since just before the sleep, and decrements a
//!   shared counter; the last one signals. A run thus arms and fires 100,000 timers, ten
//!   deadlines' worth (throughput: timers); it lasts at least 10 ms whatever the runtime, and
//!   what the runtimes differ in is the time beyond that: spawning, arming, firing and
//!   waking.
//!
//! Each workload is a criterion group with the cases side by side.
//!
//! After the groups, a **paired comparison** (`paired`) runs the cases of each workload
//! interleaved: `ROUNDS` rounds, each running every case once in turn (order rotated every
//! round), a case being a batch of runs (enough for about 10 ms, after one untimed run). It
//! prints per workload each case's median time and the median (with quartiles) of the
//! per-round ratio peer time / framealloc time: above 1, framealloc was faster. A slow spell
//! of the shared machine hits all cases alike, so these ratios are steadier than ones taken
//! across separate criterion runs.
//!
//! Checks (correctness, not performance): every echoed message equals the one sent, every
//! connection comes back, every timer fired and none early.
//!
//! Under `cargo test --benches` (criterion's test mode: no `--bench` argument) every count is
//! small (10 connections of 20 round trips, 2,000 timers) and the paired comparison runs two
//! rounds of one run: a check that every case works, not a measurement.

mod peers;

use criterion::{criterion_group, Criterion, Throughput};
use peers::{smoke, AsyncEx, Blocking, Case, Exec, EX, OURS, WORKERS};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Bytes of an echo message.
const MSG: usize = 32;
/// Bytes an echo task reads at most at once.
const SERVER_BUF: usize = 64;
/// Longest a run may take before it counts as hung.
const HANG: Duration = Duration::from_secs(60);

/// The workloads' sizes.
#[derive(Clone, Copy, Debug)]
struct Counts {
    /// Client connections of `tcp_echo`.
    conns: usize,
    /// Round trips per connection per run.
    round_trips: usize,
    /// Timers of `timers`.
    timers: usize,
}

/// The measured sizes.
const FULL: Counts = Counts { conns: 50, round_trips: 200, timers: 100_000 };

/// Test mode's (`cargo test --benches`): every case checked, quickly, in a debug build.
const SMOKE: Counts = Counts { conns: 10, round_trips: 20, timers: 2_000 };

/// The counts of this run.
fn counts() -> Counts {
    if smoke() {
        SMOKE
    } else {
        FULL
    }
}

/// What the workloads need of a runtime beyond spawning: a TCP stream and a timer.
trait Rt: peers::Exec {
    /// A client's end of an echo connection.
    type Stream: Send + 'static;

    /// Starts an echo server on the runtime and connects `n` clients to it.
    fn echo_clients(&self, n: usize) -> Vec<Self::Stream>;

    /// Client `id`'s `m` round trips on `s` (see [`round_trips!`]); `s` back if all echoed.
    fn round_trips(
        s: Self::Stream,
        id: usize,
        m: usize,
    ) -> impl Future<Output = io::Result<Self::Stream>> + Send + 'static;

    /// Sleeps for `d` (inside a task).
    fn sleep(d: Duration) -> impl Future<Output = ()> + Send + 'static;
}

/// The message of client `id`'s round `r`: both numbers, then filler.
fn message(id: usize, r: usize) -> [u8; MSG] {
    let mut msg = [0xa5; MSG];
    msg[..8].copy_from_slice(&(id as u64).to_le_bytes());
    msg[8..16].copy_from_slice(&(r as u64).to_le_bytes());
    msg
}

/// Client `$id`'s `$m` round trips on stream `$s` (moved in; every runtime's streams have
/// `write_all` and `read_exact`, inherent or from the extension traits in scope): the stream
/// back, or the first error (`InvalidData` for a wrong echo).
macro_rules! round_trips {
    ($s:expr, $id:expr, $m:expr) => {{
        #[allow(unused_mut)]
        let mut s = $s;
        let mut back = [0u8; MSG];
        for r in 0..$m {
            let msg = message($id, r);
            s.write_all(&msg).await?;
            s.read_exact(&mut back).await?;
            if back != msg {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "echo differs from the message"));
            }
        }
        Ok(s)
    }};
}

/// An echo connection's server task on stream `$s` (moved in): reads up to `SERVER_BUF`
/// bytes and writes them back, until end of stream or an error.
macro_rules! echo {
    ($s:expr) => {{
        #[allow(unused_mut)]
        let mut s = $s;
        let mut buf = [0u8; SERVER_BUF];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
    }};
}

/// Loopback, any free port.
const LOOPBACK: &str = "127.0.0.1:0";

impl Rt for framealloc::runtime::Runtime {
    type Stream = framealloc::runtime::net::TcpStream;

    fn echo_clients(&self, n: usize) -> Vec<Self::Stream> {
        use framealloc::runtime::net::{TcpListener, TcpStream};
        self.block_on(async {
            let listener = TcpListener::bind(LOOPBACK).await.expect("bound");
            let addr = listener.local_addr().expect("an address");
            drop(framealloc::runtime::spawn(async move {
                loop {
                    let (s, _) = listener.accept().await.expect("accepted");
                    s.set_nodelay(true).expect("nodelay set");
                    drop(framealloc::runtime::spawn(async move { echo!(s) }));
                }
            }));
            let mut clients = Vec::with_capacity(n);
            for _ in 0..n {
                let s = TcpStream::connect(addr).await.expect("connected");
                s.set_nodelay(true).expect("nodelay set");
                clients.push(s);
            }
            clients
        })
    }

    async fn round_trips(s: Self::Stream, id: usize, m: usize) -> io::Result<Self::Stream> {
        round_trips!(s, id, m)
    }

    async fn sleep(d: Duration) {
        framealloc::runtime::time::sleep(d).await
    }
}

impl Rt for tokio::runtime::Runtime {
    type Stream = tokio::net::TcpStream;

    fn echo_clients(&self, n: usize) -> Vec<Self::Stream> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::{TcpListener, TcpStream};
        self.block_on(async {
            let listener = TcpListener::bind(LOOPBACK).await.expect("bound");
            let addr = listener.local_addr().expect("an address");
            tokio::spawn(async move {
                loop {
                    let (s, _) = listener.accept().await.expect("accepted");
                    s.set_nodelay(true).expect("nodelay set");
                    tokio::spawn(async move { echo!(s) });
                }
            });
            let mut clients = Vec::with_capacity(n);
            for _ in 0..n {
                let s = TcpStream::connect(addr).await.expect("connected");
                s.set_nodelay(true).expect("nodelay set");
                clients.push(s);
            }
            clients
        })
    }

    async fn round_trips(s: Self::Stream, id: usize, m: usize) -> io::Result<Self::Stream> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        round_trips!(s, id, m)
    }

    async fn sleep(d: Duration) {
        tokio::time::sleep(d).await
    }
}

impl Rt for AsyncEx {
    type Stream = async_io::Async<std::net::TcpStream>;

    fn echo_clients(&self, n: usize) -> Vec<Self::Stream> {
        use async_io::Async;
        use futures_lite::{AsyncReadExt, AsyncWriteExt};
        use std::net::{TcpListener, TcpStream};
        self.block_on(async {
            let addr: SocketAddr = LOOPBACK.parse().expect("an address");
            let listener = Async::<TcpListener>::bind(addr).expect("bound");
            let addr = listener.get_ref().local_addr().expect("an address");
            EX.spawn(async move {
                loop {
                    let (s, _) = listener.accept().await.expect("accepted");
                    s.get_ref().set_nodelay(true).expect("nodelay set");
                    EX.spawn(async move { echo!(s) }).detach();
                }
            })
            .detach();
            let mut clients = Vec::with_capacity(n);
            for _ in 0..n {
                let s = Async::<TcpStream>::connect(addr).await.expect("connected");
                s.get_ref().set_nodelay(true).expect("nodelay set");
                clients.push(s);
            }
            clients
        })
    }

    async fn round_trips(s: Self::Stream, id: usize, m: usize) -> io::Result<Self::Stream> {
        use futures_lite::{AsyncReadExt, AsyncWriteExt};
        round_trips!(s, id, m)
    }

    async fn sleep(d: Duration) {
        async_io::Timer::after(d).await;
    }
}

/// Spawns `run` from the bench thread and waits for the result it sends.
fn run_in<E: Rt, T: Send + 'static>(what: &str, run: impl FnOnce(mpsc::SyncSender<T>) -> E::Handle<()>) -> T {
    let (tx, rx) = mpsc::sync_channel(1);
    E::detach(run(tx));
    rx.recv_timeout(HANG).unwrap_or_else(|e| panic!("{what}: no result within {HANG:?} ({e})"))
}

/// One `tcp_echo` run: a client task per connection of `conns`, `m` round trips each; the
/// connections back in `conns`.
fn tcp_echo<E: Rt>(rt: &E, conns: &Mutex<Vec<E::Stream>>, m: usize) {
    let streams = std::mem::take(&mut *conns.lock().expect("not poisoned"));
    let n = streams.len();
    let back = run_in::<E, _>("tcp_echo", |tx| {
        rt.spawn(async move {
            let clients: Vec<_> =
                streams.into_iter().enumerate().map(|(id, s)| E::spawn_in(E::round_trips(s, id, m))).collect();
            let mut back = Vec::with_capacity(clients.len());
            for c in clients {
                back.push(E::join(c).await);
            }
            let _ = tx.send(back);
        })
    });
    let back: Vec<_> = back.into_iter().collect::<io::Result<_>>().expect("every message echoed");
    assert_eq!(back.len(), n);
    *conns.lock().expect("not poisoned") = back;
}

/// One `timers` run: `n` tasks, task `i` sleeping `1 + i % 10` ms.
fn timers<E: Rt>(rt: &E, n: usize) {
    let left = Arc::new(AtomicUsize::new(n));
    let early = Arc::new(AtomicUsize::new(0));
    let (l, e) = (left.clone(), early.clone());
    run_in::<E, _>("timers", |tx| {
        rt.spawn(async move {
            for i in 0..n {
                let (left, early, tx) = (left.clone(), early.clone(), tx.clone());
                E::detach(E::spawn_in(async move {
                    let d = Duration::from_millis(1 + (i % 10) as u64);
                    let start = Instant::now();
                    E::sleep(d).await;
                    if start.elapsed() < d {
                        early.fetch_add(1, Relaxed);
                    }
                    if left.fetch_sub(1, Relaxed) == 1 {
                        let _ = tx.send(());
                    }
                }));
            }
        })
    });
    assert_eq!((l.load(Relaxed), e.load(Relaxed)), (0, 0), "timers left, timers early");
}

/// A runtime and its echo connections' client ends (kept until the process ends).
struct Side<E: Rt> {
    conns: Mutex<Vec<E::Stream>>,
    rt: E,
}

impl<E: Rt> Side<E> {
    fn new(rt: E, c: &Counts) -> Self {
        let conns = Mutex::new(rt.echo_clients(c.conns));
        Self { conns, rt }
    }

    fn run(&self, w: Workload, c: &Counts) {
        match w {
            Workload::TcpEcho => tcp_echo(&self.rt, &self.conns, c.round_trips),
            Workload::Timers => timers(&self.rt, c.timers),
        }
    }
}

/// The three runtimes.
struct Runtimes {
    framealloc: Side<framealloc::runtime::Runtime>,
    tokio: Side<tokio::runtime::Runtime>,
    async_ex: Side<AsyncEx>,
}

impl Runtimes {
    fn new(c: &Counts) -> Self {
        let framealloc =
            framealloc::runtime::Runtime::builder().worker_threads(WORKERS).build().expect("runtime built");
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .enable_all()
            .build()
            .expect("runtime built");
        Self {
            framealloc: Side::new(framealloc, c),
            tokio: Side::new(tokio, c),
            async_ex: Side::new(AsyncEx::new(Blocking::Reactor), c),
        }
    }
}

/// A workload of the bench.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    TcpEcho,
    Timers,
}

impl Workload {
    const ALL: [Workload; 2] = [Workload::TcpEcho, Workload::Timers];

    fn name(self) -> &'static str {
        match self {
            Workload::TcpEcho => "tcp_echo",
            Workload::Timers => "timers",
        }
    }

    /// Round trips or timers per run: the throughput's elements.
    fn elements(self, c: &Counts) -> u64 {
        (match self {
            Workload::TcpEcho => c.conns * c.round_trips,
            Workload::Timers => c.timers,
        }) as u64
    }

    /// What a run is, for the paired comparison's heading.
    fn describe(self, c: &Counts) -> String {
        match self {
            Workload::TcpEcho => format!("{} connections x {} round trips of {MSG} B", c.conns, c.round_trips),
            Workload::Timers => format!("{} timers of 1-10 ms", c.timers),
        }
    }
}

/// The cases of workload `w`, framealloc first.
fn cases(rts: &Runtimes, w: Workload, c: Counts) -> Vec<Case<'_>> {
    vec![
        (OURS, Box::new(move || rts.framealloc.run(w, &c))),
        ("tokio", Box::new(move || rts.tokio.run(w, &c))),
        ("async-executor", Box::new(move || rts.async_ex.run(w, &c))),
    ]
}

/// One criterion group per workload, the cases side by side.
fn groups(c: &mut Criterion) {
    let counts = counts();
    let rts = runtimes();
    for w in Workload::ALL {
        let cases = cases(rts, w, counts);
        let mut g = c.benchmark_group(w.name());
        g.throughput(Throughput::Elements(w.elements(&counts)));
        g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
        for (name, run) in &cases {
            g.bench_function(*name, |b| b.iter(run));
        }
        g.finish();
    }
}

/// The runtimes of the whole run, built at the first use (with their echo connections).
fn runtimes() -> &'static Runtimes {
    static RTS: OnceLock<Runtimes> = OnceLock::new();
    RTS.get_or_init(|| Runtimes::new(&counts()))
}

/// The paired comparison (see the module docs).
fn paired() {
    let counts = counts();
    let rts = runtimes();
    println!("{}", peers::heading());
    for w in Workload::ALL {
        let cases = cases(rts, w, counts);
        println!("{}", peers::compare(w.name(), 9, &w.describe(&counts), &cases, || ()));
    }
}

criterion_group!(benches, groups);

fn main() {
    peers::main(benches, paired);
}
