//! Helpers shared by the runtime's integration tests.
#![allow(dead_code)]

use framealloc_alloc::SmartAlloc;
use framealloc_runtime::Runtime;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// `big` normally, `small` under Miri (the interpreter is ~1000x slower).
pub const fn scaled(big: usize, small: usize) -> usize {
    if cfg!(miri) {
        small
    } else {
        big
    }
}

/// A runtime of `workers` workers reporting on `alloc`.
pub fn runtime(workers: usize, alloc: &SmartAlloc) -> Runtime {
    Runtime::builder().worker_threads(workers).alloc(alloc).build().expect("runtime")
}

/// A future that stays pending until `Gate::open` is called, from any thread, and records
/// how many times it was polled.
#[derive(Clone, Default)]
pub struct Gate(Arc<GateInner>);

#[derive(Default)]
pub struct GateInner {
    open: std::sync::atomic::AtomicBool,
    flag: std::sync::atomic::AtomicBool,
    waker: Mutex<Option<Waker>>,
    polls: AtomicUsize,
}

impl Gate {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn open(&self) {
        self.0.open.store(true, Ordering::SeqCst);
        if let Some(w) = self.0.waker.lock().unwrap().take() {
            w.wake();
        }
    }

    /// A plain flag beside the gate, for tests that spin on it.
    pub fn set_flag(&self) {
        self.0.flag.store(true, Ordering::SeqCst);
    }

    pub fn flag_is_set(&self) -> bool {
        self.0.flag.load(Ordering::SeqCst)
    }

    pub fn polls(&self) -> usize {
        self.0.polls.load(Ordering::SeqCst)
    }

    /// `true` once a waker is stored (the waiting task has been polled at least once).
    pub fn has_waiter(&self) -> bool {
        self.0.waker.lock().unwrap().is_some()
    }

    pub fn wait(&self) -> GateWait {
        GateWait(self.clone())
    }
}

pub struct GateWait(Gate);

impl Future for GateWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let g = &self.0 .0;
        g.polls.fetch_add(1, Ordering::SeqCst);
        if g.open.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        *g.waker.lock().unwrap() = Some(cx.waker().clone());
        if g.open.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// Waits (polling with short sleeps, bounded) until `cond` holds; panics after `secs`.
pub fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The name of the current thread.
pub fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

/// Runs `f` and returns the message of the panic it must raise.
pub fn panic_message(f: impl FnOnce()) -> String {
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("expected a panic");
    payload_message(&*err)
}

pub fn payload_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
}
