//! Shutdown: pending, queued, sleeping and running tasks, blocking jobs; every future dropped
//! on a runtime thread, every heap released, every thread joined.

mod common;

use common::{runtime, scaled, thread_name, wait_until, Gate};
use framealloc_alloc::SmartAlloc;
use framealloc_runtime::Runtime;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records, when dropped, the name of the thread that dropped it.
struct Witness(Arc<Mutex<Vec<String>>>);
impl Drop for Witness {
    fn drop(&mut self) {
        self.0.lock().unwrap().push(thread_name());
    }
}

/// A "sleep" without timers: a plain thread wakes the task after `d`.
async fn sleep_on_a_thread(d: Duration) {
    let gate = Gate::new();
    let g = gate.clone();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        g.open();
    });
    gate.wait().await;
}

#[test]
fn drop_cancels_pending_and_sleeping_tasks_frees_heaps_and_joins_threads() {
    let alloc = SmartAlloc::new(Default::default());
    let stopped = Arc::new(AtomicUsize::new(0));
    let s = stopped.clone();
    let rt = Runtime::builder()
        .worker_threads(2)
        .thread_name("rt-under-test")
        .alloc(&alloc)
        .on_thread_stop(move || {
            s.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let witnesses = Arc::new(Mutex::new(Vec::new()));
    let n = scaled(50, 4);
    let gates: Vec<Gate> = (0..n).map(|_| Gate::new()).collect();
    let mut joins = Vec::new();
    for (i, g) in gates.iter().enumerate() {
        let (g, a, w) = (g.clone(), alloc.clone(), Witness(witnesses.clone()));
        joins.push(rt.spawn(async move {
            let _w = w;
            let _kept = a.pool_vec_with_capacity::<u8>(64 + i);
            if i % 2 == 0 {
                g.wait().await; // pending on a wake that never comes
            } else {
                sleep_on_a_thread(Duration::from_secs(30)).await;
            }
        }));
    }
    // Each task's first poll makes its heap (a poll is counted as it starts, so the poll
    // count alone does not say the heaps exist yet).
    wait_until("every task made its heap", 10, || alloc.stats().heaps_alive == n as u64);
    let started = Instant::now();
    drop(rt);
    assert!(started.elapsed() < Duration::from_secs(10), "shutdown does not wait for sleepers");
    // Every thread joined (each ran its stop hook), every heap released.
    assert_eq!(stopped.load(Ordering::SeqCst), 2);
    let s = alloc.stats();
    assert_eq!((s.heaps_alive, s.task.live_bytes), (0, 0), "{s:?}");
    // Every future dropped, on a runtime thread.
    let names = witnesses.lock().unwrap().clone();
    assert_eq!(names.len(), n);
    assert!(names.iter().all(|t| t == "rt-under-test"), "{names:?}");
    // Their handles report cancellation.
    for j in joins {
        assert!(futures::executor::block_on(j).unwrap_err().is_cancelled());
    }
    // A wake after shutdown does nothing.
    for g in &gates {
        g.open();
    }
}

#[test]
fn queued_tasks_never_polled_are_dropped_at_shutdown() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(1, &alloc);
    let handle = rt.handle().clone();
    let owner = Arc::new(Mutex::new(Some(rt)));
    let gate = Gate::new();
    let polled = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicBool::new(false));
    // The one worker spins in a task (never yielding) until the gate's flag is set, then drops
    // the runtime from there: the tasks queued meanwhile are never polled.
    let (g, st, o) = (gate.clone(), started.clone(), owner.clone());
    let busy = handle.spawn(async move {
        st.store(true, Ordering::SeqCst);
        while !g.flag_is_set() {
            std::thread::yield_now();
        }
        let rt = o.lock().unwrap().take();
        drop(rt);
    });
    wait_until("the worker is busy", 10, || started.load(Ordering::SeqCst));
    let n = scaled(100, 5);
    let queued: Vec<_> = (0..n)
        .map(|_| {
            let (p, a) = (polled.clone(), alloc.clone());
            handle.spawn(async move {
                let _b = a.pool_box(0u8);
                p.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    gate.set_flag();
    futures::executor::block_on(busy).unwrap();
    assert!(owner.lock().unwrap().is_none());
    assert_eq!(polled.load(Ordering::SeqCst), 0);
    for j in queued {
        assert!(futures::executor::block_on(j).unwrap_err().is_cancelled());
    }
    assert_eq!(alloc.stats().heaps_alive, 0);
}

#[test]
fn spawn_after_shutdown_is_cancelled_at_once() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(1, &alloc);
    let handle = rt.handle().clone();
    drop(rt);
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let j = handle.spawn(async move { r.store(true, Ordering::SeqCst) });
    assert!(futures::executor::block_on(j).unwrap_err().is_cancelled());
    assert!(!ran.load(Ordering::SeqCst));
    let j = handle.spawn_blocking(|| 1);
    assert!(futures::executor::block_on(j).unwrap_err().is_cancelled());
    assert_eq!(handle.metrics().tasks_alive, 0);
}

#[test]
fn shutdown_timeout_bounds_the_wait_for_blocking_jobs() {
    let rt = runtime(1, &SmartAlloc::new(Default::default()));
    let release = Arc::new(AtomicBool::new(false));
    let r = release.clone();
    let started = Arc::new(AtomicBool::new(false));
    let s = started.clone();
    let _job = rt.spawn_blocking(move || {
        s.store(true, Ordering::SeqCst);
        while !r.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    wait_until("the blocking job runs", 10, || started.load(Ordering::SeqCst));
    let t = Instant::now();
    rt.shutdown_timeout(Duration::from_millis(50));
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(50) && took < Duration::from_secs(5), "{took:?}");
    release.store(true, Ordering::SeqCst);
}

#[test]
fn drop_waits_for_running_blocking_jobs() {
    let rt = runtime(1, &SmartAlloc::new(Default::default()));
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let started = Arc::new(AtomicBool::new(false));
    let s = started.clone();
    let _job = rt.spawn_blocking(move || {
        s.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30));
        d.store(true, Ordering::SeqCst);
    });
    wait_until("the blocking job runs", 10, || started.load(Ordering::SeqCst));
    drop(rt);
    assert!(done.load(Ordering::SeqCst));
}

#[test]
fn a_task_running_during_shutdown_is_dropped_after_its_poll() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    let witnesses = Arc::new(Mutex::new(Vec::new()));
    let w = Witness(witnesses.clone());
    let a = alloc.clone();
    let running = Arc::new(AtomicBool::new(false));
    let r = running.clone();
    let _j = rt.spawn(async move {
        let _w = w;
        let _b = a.pool_box(1u64);
        loop {
            r.store(true, Ordering::SeqCst);
            framealloc_runtime::yield_now().await;
        }
    });
    wait_until("the task runs", 10, || running.load(Ordering::SeqCst));
    drop(rt);
    assert_eq!(witnesses.lock().unwrap().len(), 1);
    assert_eq!(alloc.stats().heaps_alive, 0);
}

#[test]
fn dropping_the_runtime_inside_its_own_task_shuts_it_down() {
    let alloc = SmartAlloc::new(Default::default());
    let stopped = Arc::new(AtomicUsize::new(0));
    let s = stopped.clone();
    let rt = Runtime::builder()
        .worker_threads(2)
        .alloc(&alloc)
        .on_thread_stop(move || {
            s.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let gate = Gate::new();
    let handle = rt.handle().clone();
    let g = gate.clone();
    let a = alloc.clone();
    let mut rt = Some(rt);
    let j = handle.spawn(async move {
        let b = a.pool_box(5u32);
        g.wait().await;
        drop(rt.take()); // the last owner: the runtime shuts down from its own worker
        *b
    });
    gate.open();
    assert_eq!(futures::executor::block_on(j).unwrap(), 5, "the task that dropped it completes");
    wait_until("both workers stopped", 10, || stopped.load(Ordering::SeqCst) == 2);
    assert_eq!(alloc.stats().heaps_alive, 0);
    assert!(handle.spawn(async {}).is_finished(), "a spawn now is cancelled at once");
}
