//! Spawning and joining: from outside, from inside tasks, wake-ups from foreign threads,
//! `block_on`, handles and the misuse panics.

mod common;

use common::{panic_message, scaled, Gate};
use framealloc_alloc::SmartAlloc;
use framealloc_runtime::{Handle, Runtime};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[test]
fn spawn_from_outside_and_join() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let handles: Vec<_> = (0..scaled(100, 8) as u64).map(|i| rt.spawn(async move { i * 2 })).collect();
    let sum: u64 = handles.into_iter().map(|h| rt.block_on(h).unwrap()).sum();
    let n = scaled(100, 8) as u64;
    assert_eq!(sum, n * (n - 1));
}

#[test]
fn spawn_from_inside_tasks_and_join_there() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let n = scaled(50, 5) as u64;
    let total = rt.block_on(rt.spawn(async move {
        let mut hs = Vec::new();
        for i in 0..n {
            // The free function finds the runtime of the worker it runs on.
            hs.push(framealloc_runtime::spawn(async move {
                let inner = framealloc_runtime::spawn(async move { i + 1 });
                inner.await.unwrap()
            }));
        }
        let mut t = 0;
        for h in hs {
            t += h.await.unwrap();
        }
        t
    }));
    assert_eq!(total.unwrap(), n * (n + 1) / 2);
    let m = rt.metrics();
    assert_eq!(m.tasks_spawned, 1 + 2 * n);
    assert_eq!(m.tasks_alive, 0);
    assert!(m.polls > 2 * n, "every task (2n + 1) polled at least once: {m:?}");
}

#[test]
fn block_on_enters_the_runtime() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let v = rt.block_on(async {
        assert!(Handle::try_current().is_ok());
        framealloc_runtime::spawn(async { 5 }).await.unwrap()
    });
    assert_eq!(v, 5);
    assert!(Handle::try_current().is_err(), "block_on leaves the runtime on return");
}

#[test]
fn wakes_from_foreign_threads() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let n = scaled(64, 4);
    let gates: Vec<Gate> = (0..n).map(|_| Gate::new()).collect();
    let handles: Vec<_> = gates
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let g = g.clone();
            rt.spawn(async move {
                g.wait().await;
                i
            })
        })
        .collect();
    // Open every gate from plain threads, some before and some after the task first waits.
    std::thread::scope(|s| {
        for chunk in gates.chunks(n.div_ceil(4)) {
            s.spawn(move || {
                for g in chunk {
                    g.open();
                }
            });
        }
    });
    let mut got: Vec<usize> = handles.into_iter().map(|h| rt.block_on(h).unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, (0..n).collect::<Vec<_>>());
}

#[test]
fn handle_spawns_from_any_thread_and_enter_sets_the_current_runtime() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let handle = rt.handle().clone();
    let h = std::thread::spawn(move || {
        assert!(Handle::try_current().is_err());
        let j = handle.spawn(async { 40 });
        let _g = handle.enter();
        let j2 = framealloc_runtime::spawn(async { 2 });
        assert!(Handle::try_current().is_ok());
        handle.block_on(async move { j.await.unwrap() + j2.await.unwrap() })
    })
    .join()
    .unwrap();
    assert_eq!(h, 42);
    // Inside a task the current handle is the task's runtime.
    let same = rt.block_on(rt.spawn(async { Handle::current().metrics().workers }));
    assert_eq!(same.unwrap(), 2);
}

#[test]
fn spawn_outside_a_runtime_panics_clearly() {
    let msg = panic_message(|| drop(framealloc_runtime::spawn(async {})));
    assert!(msg.contains("must be called from the context of a framealloc runtime"), "{msg}");
    let msg = panic_message(|| drop(framealloc_runtime::spawn_blocking(|| ())));
    assert!(msg.contains("spawn_blocking"), "{msg}");
    let msg = panic_message(|| drop(Handle::current()));
    assert!(msg.contains("no framealloc runtime"), "{msg}");
    assert!(Handle::try_current().unwrap_err().is_missing_context());
}

#[test]
fn nested_block_on_panics_clearly() {
    let rt = Arc::new(Runtime::builder().worker_threads(1).build().unwrap());
    // Inside block_on.
    let r2 = rt.clone();
    let msg = panic_message(|| rt.block_on(async { r2.block_on(async {}) }));
    assert!(msg.contains("Cannot call `block_on` from within a framealloc runtime"), "{msg}");
    // Inside a task (on a worker): the panic becomes the task's JoinError.
    let r3 = rt.clone();
    let err = rt.block_on(rt.spawn(async move { r3.handle().block_on(async {}) })).unwrap_err();
    assert!(err.is_panic());
    let msg = common::payload_message(&*err.into_panic());
    assert!(msg.contains("spawn_blocking"), "the message says what to do instead: {msg}");
    // The runtime still works, and block_on works again after the failed one.
    assert_eq!(rt.block_on(async { 1 }), 1);
}

#[test]
fn builder_rejects_bad_input() {
    let e = Runtime::builder().worker_threads(0).build().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("worker_threads"), "{e}");
    let e = Runtime::builder().max_blocking_threads(0).build().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn thread_names_and_hooks() {
    let started = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    let (s1, s2) = (started.clone(), stopped.clone());
    let rt = Runtime::builder()
        .worker_threads(3)
        .thread_name_fn(|| "named-worker".into())
        .on_thread_start(move || {
            s1.fetch_add(1, Ordering::SeqCst);
        })
        .on_thread_stop(move || {
            s2.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let name = rt.block_on(rt.spawn(async { common::thread_name() })).unwrap();
    assert_eq!(name, "named-worker");
    let bname = rt.block_on(rt.spawn_blocking(common::thread_name)).unwrap();
    assert_eq!(bname, "named-worker");
    drop(rt);
    // Three workers and one blocking thread, each started and stopped once, all joined by drop.
    assert_eq!(started.load(Ordering::SeqCst), 4);
    assert_eq!(stopped.load(Ordering::SeqCst), 4);
}

#[test]
fn yield_now_lets_others_run() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (o1, o2) = (order.clone(), order.clone());
    // Spawned from a task on the one worker, so both land in that worker's queue, in order.
    let outer = rt.spawn(async move {
        let a = framealloc_runtime::spawn(async move {
            o1.lock().unwrap().push("a1");
            framealloc_runtime::yield_now().await;
            o1.lock().unwrap().push("a2");
        });
        let b = framealloc_runtime::spawn(async move {
            o2.lock().unwrap().push("b1");
        });
        a.await.unwrap();
        b.await.unwrap();
    });
    rt.block_on(outer).unwrap();
    // One worker: a runs, yields to the back of the queue behind b, then finishes.
    assert_eq!(*order.lock().unwrap(), ["a1", "b1", "a2"]);
}

#[test]
fn futures_are_send_and_handles_are_send_sync_unpin() {
    fn send<T: Send>(_: &T) {}
    fn send_sync_unpin<T: Send + Sync + Unpin>() {}
    send(&framealloc_runtime::yield_now());
    send_sync_unpin::<framealloc_runtime::JoinHandle<std::marker::PhantomPinned>>();
    send_sync_unpin::<framealloc_runtime::task::AbortHandle>();
    send_sync_unpin::<framealloc_runtime::task::JoinError>();
    send_sync_unpin::<Handle>();
    send_sync_unpin::<Runtime>();
    let _ = SmartAlloc::new(Default::default());
}

#[test]
fn metrics_count_alive_and_waiting_tasks() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = common::runtime(2, &alloc);
    let n = scaled(20, 3);
    let gates: Vec<Gate> = (0..n).map(|_| Gate::new()).collect();
    let hs: Vec<_> = gates
        .iter()
        .map(|g| {
            let (g, a) = (g.clone(), alloc.clone());
            rt.spawn(async move {
                let _b = a.pool_box(1u16);
                g.wait().await;
            })
        })
        .collect();
    common::wait_until("every task waits", 10, || gates.iter().all(Gate::has_waiter));
    let m = rt.metrics();
    assert_eq!((m.tasks_spawned, m.tasks_alive, m.tasks_waiting), (n as u64, n as u64, n as u64), "{m:?}");
    assert_eq!(m.alloc.heaps_alive, n as u64);
    assert_eq!(m.alloc.task.live_bytes, 2 * n as u64);
    for g in &gates {
        g.open();
    }
    for h in hs {
        rt.block_on(h).unwrap();
    }
    let m = rt.metrics();
    assert_eq!((m.tasks_alive, m.tasks_waiting, m.alloc.heaps_alive), (0, 0, 0), "{m:?}");
    assert_eq!(m.workers, 2);
}
