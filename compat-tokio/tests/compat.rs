//! `compat`: tokio sockets and timers inside tasks of framealloc's runtime, driven by the
//! background tokio runtime; inside a tokio runtime, that runtime; the task heap kept.
//!
//! Real sockets (127.0.0.1 only), timers and threads. Under Miri only the test inside a tokio
//! runtime runs: every other one starts the background runtime, whose thread outlives `main`,
//! which Miri's leak check refuses ("the main thread terminated without waiting for all
//! remaining threads"; they pass with `-Zmiri-ignore-leaks`, sockets aside).

use framealloc_alloc::SmartAlloc;
use framealloc_runtime::Runtime;
use framealloc_tokio::{compat, Compat};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Upper bound for anything that should take milliseconds, so that a hang fails the test.
const BOUND: Duration = Duration::from_secs(30);

fn runtime(workers: usize, alloc: &SmartAlloc) -> Runtime {
    Runtime::builder().worker_threads(workers).alloc(alloc).build().expect("framealloc runtime")
}

/// Runs `fut` on a fresh thread and waits at most [`BOUND`] for it, so a hang fails instead of
/// blocking the test binary.
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(BOUND) {
        Ok(v) => {
            worker.join().expect("test thread");
            v
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("not done within {BOUND:?}"),
        // The closure panicked: surface its panic.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(payload) => std::panic::resume_unwind(payload),
            Ok(()) => unreachable!("the closure returned without sending"),
        },
    }
}

fn assert_send<T: Send>(_: &T) {}

#[test]
#[cfg_attr(miri, ignore)]
fn tcp_echo_round_trip_inside_one_framealloc_task() {
    let echoed = bounded(|| {
        let alloc = SmartAlloc::new(Default::default());
        let rt = runtime(2, &alloc);
        let task = compat(async {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let mut client = TcpStream::connect(addr).await?;
            let (mut server, peer) = listener.accept().await?;
            assert_eq!(peer, client.local_addr()?);
            // Server side echoes until the client closes.
            let echo = async move {
                let mut buf = [0u8; 64];
                loop {
                    let n = server.read(&mut buf).await?;
                    if n == 0 {
                        return Ok::<_, std::io::Error>(());
                    }
                    server.write_all(&buf[..n]).await?;
                }
            };
            let talk = async move {
                let msg = b"hello through the background reactor";
                client.write_all(msg).await?;
                let mut back = vec![0u8; msg.len()];
                client.read_exact(&mut back).await?;
                client.shutdown().await?;
                Ok::<_, std::io::Error>(back)
            };
            let (echoed, back) = tokio::join!(echo, talk);
            echoed?;
            back
        });
        assert_send(&task);
        let out = rt.block_on(rt.spawn(task)).expect("task");
        drop(rt);
        assert_eq!(alloc.stats().heaps_alive, 0);
        out
    });
    assert_eq!(echoed.expect("echo"), b"hello through the background reactor");
}

#[test]
#[cfg_attr(miri, ignore)]
fn tokio_sleep_inside_a_framealloc_task() {
    let (elapsed, thread) = bounded(|| {
        let alloc = SmartAlloc::new(Default::default());
        let rt = runtime(2, &alloc);
        rt.block_on(rt.spawn(compat(async {
            let start = Instant::now();
            tokio::time::sleep(Duration::from_millis(20)).await;
            let elapsed = start.elapsed();
            // Resumed by the framealloc runtime, on one of its workers.
            (elapsed, std::thread::current().name().map(str::to_owned))
        })))
        .expect("task")
    });
    assert!(elapsed >= Duration::from_millis(20), "{elapsed:?}");
    assert_eq!(thread.as_deref(), Some("framealloc-worker"));
}

#[test]
#[cfg_attr(miri, ignore)]
fn without_compat_a_tokio_timer_in_a_framealloc_task_panics() {
    // The control: what `compat` is for.
    let err = bounded(|| {
        let rt = Runtime::new().expect("framealloc runtime");
        rt.block_on(rt.spawn(async { tokio::time::sleep(Duration::from_millis(1)).await }))
            .expect_err("no tokio runtime")
    });
    assert!(err.is_panic(), "{err:?}");
}

#[test]
#[cfg_attr(miri, ignore)]
fn the_background_runtime_runs_on_its_own_named_thread() {
    let thread = bounded(|| {
        let rt = Runtime::new().expect("framealloc runtime");
        rt.block_on(rt.spawn(compat(async {
            // Spawned onto the background runtime: runs on its thread.
            tokio::spawn(async { std::thread::current().name().map(str::to_owned) }).await
        })))
        .expect("task")
        .expect("tokio task")
    });
    assert_eq!(thread.as_deref(), Some("framealloc-tokio-compat"));
}

#[test]
fn inside_a_tokio_runtime_compat_uses_that_runtime() {
    for rt in [
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap(),
    ] {
        let outer = rt.handle().id();
        let outer_flavor = rt.handle().runtime_flavor();
        let (inside, flavor, elapsed) = rt.block_on(async {
            tokio::spawn(compat(async {
                let start = Instant::now();
                tokio::time::sleep(Duration::from_millis(5)).await;
                let h = tokio::runtime::Handle::current();
                (h.id(), h.runtime_flavor(), start.elapsed())
            }))
            .await
            .unwrap()
        });
        assert_eq!(inside, outer, "the outer runtime, not the background one");
        assert_eq!(flavor, outer_flavor);
        assert!(elapsed >= Duration::from_millis(5), "{elapsed:?}");
        // Also from the `block_on` root future, with `tokio::spawn` inside going to the
        // outer runtime (a current-thread one runs it on this very thread).
        let here = std::thread::current().id();
        let (inside, spawned_on) = rt.block_on(compat(async {
            let id = tokio::runtime::Handle::current().id();
            let on = tokio::spawn(async { std::thread::current().id() }).await.unwrap();
            (id, on)
        }));
        assert_eq!(inside, outer);
        if outer_flavor == tokio::runtime::RuntimeFlavor::CurrentThread {
            assert_eq!(spawned_on, here);
        }
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn many_concurrent_compat_tasks_on_two_workers_all_complete() {
    const TASKS: usize = 100;
    let done = bounded(|| {
        let alloc = SmartAlloc::new(Default::default());
        let rt = runtime(2, &alloc);
        let done = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..TASKS)
            .map(|i| {
                let done = done.clone();
                let a = alloc.clone();
                rt.spawn(compat(async move {
                    let b = a.pool_box(i as u64);
                    tokio::time::sleep(Duration::from_millis(1 + (i % 5) as u64)).await;
                    tokio::task::yield_now().await;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    done.fetch_add(1, Ordering::SeqCst);
                    *b
                }))
            })
            .collect();
        let sum: u64 = rt.block_on(async {
            let mut sum = 0;
            for h in handles {
                sum += h.await.expect("task");
            }
            sum
        });
        assert_eq!(sum, (0..TASKS as u64).sum::<u64>());
        drop(rt);
        let s = alloc.stats();
        assert_eq!((s.heaps_alive, s.task.live_bytes, s.task.allocations), (0, 0, TASKS as u64), "{s:?}");
        done.load(Ordering::SeqCst)
    });
    assert_eq!(done, TASKS);
}

#[test]
#[cfg_attr(miri, ignore)]
fn pool_calls_inside_compat_use_the_framealloc_task_heap() {
    bounded(|| {
        let alloc = SmartAlloc::new(Default::default());
        let rt = runtime(2, &alloc);
        let a = alloc.clone();
        let (before, after, total) = rt
            .block_on(rt.spawn(compat(async move {
                let first = a.pool_box([3u8; 100]);
                let before = a.stats().task.live_bytes;
                // Woken by the background thread, resumed by a framealloc worker: still the
                // same task, the same heap.
                tokio::time::sleep(Duration::from_millis(2)).await;
                let mut v = a.pool_vec_with_capacity::<u64>(32);
                v.extend(0..32);
                let after = a.stats().task.live_bytes;
                (before, after, first.iter().map(|&b| u64::from(b)).sum::<u64>() + v.iter().sum::<u64>())
            })))
            .expect("task");
        assert_eq!(before, 100, "the box is task memory");
        assert_eq!(after, 100 + 32 * 8, "both in the task's heap");
        assert_eq!(total, 300 + 496);
        // Read right after the join: the task's heap is already gone.
        let s = alloc.stats();
        assert_eq!((s.heaps_alive, s.task.live_bytes, s.pool.live_bytes), (0, 0, 0), "{s:?}");
        assert_eq!(s.task.allocations, 2);
        assert_eq!(s.pool.allocations, 0, "nothing went to a thread's pool: {s:?}");
    });
}

/// Sets its flag when dropped, recording whether a tokio runtime context was current then.
struct DropProbe {
    dropped: Arc<AtomicBool>,
    in_tokio_context: Arc<AtomicBool>,
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        self.in_tokio_context.store(tokio::runtime::Handle::try_current().is_ok(), Ordering::SeqCst);
        self.dropped.store(true, Ordering::SeqCst);
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn aborting_a_task_waiting_on_a_tokio_sleep_drops_everything() {
    bounded(|| {
        let alloc = SmartAlloc::new(Default::default());
        let rt = runtime(2, &alloc);
        let dropped = Arc::new(AtomicBool::new(false));
        let in_tokio_context = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let probe = DropProbe { dropped: dropped.clone(), in_tokio_context: in_tokio_context.clone() };
        let (a, s) = (alloc.clone(), started.clone());
        let h = rt.spawn(compat(async move {
            let _probe = probe;
            let _held = a.pool_vec_with_capacity::<u64>(64);
            s.store(true, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(3600)).await;
            unreachable!("aborted long before");
        }));
        let deadline = Instant::now() + BOUND;
        while !started.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the task never started");
            std::thread::sleep(Duration::from_millis(1));
        }
        h.abort();
        let err = rt.block_on(h).expect_err("aborted");
        assert!(err.is_cancelled() && !err.is_panic(), "{err:?}");
        assert!(dropped.load(Ordering::SeqCst), "the inner future was dropped");
        assert!(in_tokio_context.load(Ordering::SeqCst), "dropped inside the background runtime's context");
        drop(rt);
        let s = alloc.stats();
        assert_eq!((s.heaps_alive, s.task.live_bytes), (0, 0), "{s:?}");
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn compat_works_under_a_plain_block_on_and_outputs_pass_through() {
    // Not even an executor with task heaps: a bare thread with `Runtime::block_on`'s root,
    // and a `Compat` that is `Unpin` when its future is.
    let v = bounded(|| {
        let rt = Runtime::new().expect("framealloc runtime");
        let mut ready = compat(std::future::ready(41));
        let ready: &mut Compat<_> = &mut ready;
        let first = rt.block_on(ready);
        let slept = rt.block_on(compat(async {
            tokio::time::timeout(Duration::from_millis(5), std::future::pending::<()>()).await.is_err()
        }));
        assert!(slept, "the timeout fired");
        first + 1
    });
    assert_eq!(v, 42);
}
