//! Abort at every stage of a task's life, panics, and what `JoinError` reports.

mod common;

use common::{payload_message, runtime, wait_until, Gate};
use framealloc_alloc::SmartAlloc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Sets a flag when dropped, and records whether that happened inside a task of ours (a
/// `frame_box` there panics with FA701).
struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn abort_before_first_poll() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(1, &alloc);
    let gate = Gate::new();
    let polled = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicBool::new(false));
    // Keep the only worker busy so the victim stays queued.
    let g = gate.clone();
    let blocker = rt.spawn(async move {
        // A busy-wait in a task, on purpose: the worker cannot take the next task.
        while !g.flag_is_set() {
            std::thread::yield_now();
        }
    });
    let (p, d) = (polled.clone(), DropFlag(dropped.clone()));
    let victim = rt.spawn(async move {
        let _d = d;
        p.store(true, Ordering::SeqCst);
    });
    victim.abort();
    gate.set_flag();
    rt.block_on(blocker).unwrap();
    let err = rt.block_on(victim).unwrap_err();
    assert!(err.is_cancelled() && !err.is_panic(), "{err:?}");
    assert!(!polled.load(Ordering::SeqCst), "an aborted task is never polled");
    assert!(dropped.load(Ordering::SeqCst), "its future was dropped");
    assert!(err.to_string().contains("was cancelled"), "{err}");
    assert_eq!(rt.metrics().tasks_alive, 0);
}

#[test]
fn abort_while_pending_drops_the_future_and_frees_its_heap() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    let gate = Gate::new();
    let dropped = Arc::new(AtomicBool::new(false));
    let (g, a, d) = (gate.clone(), alloc.clone(), DropFlag(dropped.clone()));
    let h = rt.spawn(async move {
        let _d = d;
        let kept = a.pool_box([1u64; 8]);
        g.wait().await;
        kept[0]
    });
    wait_until("the task waits", 10, || gate.has_waiter());
    assert_eq!(alloc.stats().task.live_bytes, 64);
    assert!(!h.is_finished());
    let ah = h.abort_handle();
    assert!(!ah.is_finished());
    ah.abort();
    let err = rt.block_on(h).unwrap_err();
    assert!(err.is_cancelled());
    assert!(dropped.load(Ordering::SeqCst));
    assert!(ah.is_finished());
    let s = alloc.stats();
    assert_eq!((s.task.live_bytes, s.heaps_alive), (0, 0), "{s:?}");
    assert_eq!(rt.metrics().tasks_alive, 0);
}

#[test]
fn abort_after_completion_keeps_the_output() {
    let rt = runtime(1, &SmartAlloc::new(Default::default()));
    let h = rt.spawn(async { 9 });
    wait_until("the task finishes", 10, || h.is_finished());
    h.abort();
    h.abort_handle().abort();
    assert_eq!(rt.block_on(h).unwrap(), 9);
}

#[test]
fn abort_while_running_takes_effect_at_the_next_yield() {
    let rt = runtime(2, &SmartAlloc::new(Default::default()));
    let steps = Arc::new(AtomicUsize::new(0));
    let s = steps.clone();
    let h = rt.spawn(async move {
        loop {
            s.fetch_add(1, Ordering::SeqCst);
            framealloc_runtime::yield_now().await;
        }
    });
    wait_until("the task has run a while", 10, || steps.load(Ordering::SeqCst) > 10);
    h.abort();
    assert!(rt.block_on(h).unwrap_err().is_cancelled());
    let after = steps.load(Ordering::SeqCst);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(steps.load(Ordering::SeqCst), after, "no poll after the cancelled join");
}

#[test]
fn panic_becomes_a_join_error_with_its_payload_and_spares_the_worker() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(1, &alloc);
    let a = alloc.clone();
    let h = rt.spawn(async move {
        let _held = a.pool_vec_with_capacity::<u32>(100);
        panic!("task exploded: {}", 42);
    });
    let id = h.id();
    let err = rt.block_on(h).unwrap_err();
    assert!(err.is_panic() && !err.is_cancelled());
    assert_eq!(err.id(), id);
    assert_eq!(err.to_string(), format!("task {id} panicked with message \"task exploded: 42\""));
    let payload = err.into_panic();
    assert_eq!(payload_message(&*payload), "task exploded: 42");
    // The heap went with the panic, and the only worker still runs tasks.
    assert_eq!(alloc.stats().heaps_alive, 0);
    assert_eq!(rt.block_on(rt.spawn(async { 3 })).unwrap(), 3);
    // A panic with a non-string payload.
    let err = rt.block_on(rt.spawn(async { std::panic::panic_any(17u32) })).unwrap_err();
    assert_eq!(*err.try_into_panic().unwrap().downcast::<u32>().unwrap(), 17);
}

#[test]
fn a_detached_task_keeps_running_and_a_panicking_detached_task_is_contained() {
    let rt = runtime(2, &SmartAlloc::new(Default::default()));
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    drop(rt.spawn(async move {
        framealloc_runtime::yield_now().await;
        d.store(true, Ordering::SeqCst);
    }));
    drop(rt.spawn(async { panic!("nobody is listening") }));
    wait_until("the detached task ran", 10, || done.load(Ordering::SeqCst));
    assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);
}

#[test]
fn a_panic_while_dropping_an_aborted_future_is_contained() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("drop panicked");
        }
    }
    let rt = runtime(1, &SmartAlloc::new(Default::default()));
    let gate = Gate::new();
    let g = gate.clone();
    let h = rt.spawn(async move {
        let _p = PanicOnDrop;
        g.wait().await;
    });
    wait_until("the task waits", 10, || gate.has_waiter());
    h.abort();
    assert!(rt.block_on(h).unwrap_err().is_cancelled());
    assert_eq!(rt.block_on(rt.spawn(async { 2 })).unwrap(), 2, "the worker survived");
    // A future whose drop panics after it completed: the panic is the task's outcome.
    let err = rt
        .block_on(rt.spawn(async {
            let _p = PanicOnDrop;
            5
        }))
        .unwrap_err();
    assert!(err.is_panic());
}

#[test]
fn into_panic_on_a_cancelled_error_panics_clearly() {
    let rt = runtime(1, &SmartAlloc::new(Default::default()));
    let gate = Gate::new();
    let g = gate.clone();
    let h = rt.spawn(async move { g.wait().await });
    h.abort();
    let err = rt.block_on(h).unwrap_err();
    let err = err.try_into_panic().unwrap_err();
    let msg = common::panic_message(|| drop(err.into_panic()));
    assert!(msg.contains("cancelled"), "{msg}");
}

/// An abort that races the task's first poll (the worker has the task in hand when the abort
/// lands) still cancels it: a lost abort would leave the task waiting forever, and its join
/// would run into the timeout.
#[test]
fn an_abort_racing_the_first_poll_is_never_lost() {
    let rt = runtime(1, &SmartAlloc::new(Default::default()));
    // Keeps the worker awake and taking from the injector, so it often has the victim in hand
    // just as the abort lands.
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let spinner = rt.spawn(async move {
        while !s.load(Ordering::Relaxed) {
            framealloc_runtime::yield_now().await;
        }
    });
    let rounds = if cfg!(miri) { 4 } else { 20_000 };
    for round in 0..rounds {
        let h = rt.spawn(std::future::pending::<()>());
        h.abort();
        let joined =
            rt.block_on(async { framealloc_runtime::time::timeout(std::time::Duration::from_secs(10), h).await });
        let err = joined.unwrap_or_else(|_| panic!("round {round}: the abort was lost")).unwrap_err();
        assert!(err.is_cancelled(), "{err:?}");
    }
    stop.store(true, Ordering::Relaxed);
    rt.block_on(spinner).unwrap();
    assert_eq!(rt.metrics().tasks_alive, 0);
}
