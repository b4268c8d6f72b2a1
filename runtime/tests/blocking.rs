//! The blocking pool: jobs run apart from the workers, the pool grows to its bound and no
//! further, idle threads leave, panics come back as `JoinError`s.

mod common;

use common::{payload_message, wait_until};
use framealloc_runtime::Runtime;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

#[test]
fn blocking_jobs_do_not_hold_up_the_workers() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let r = release.clone();
    let job = rt.spawn_blocking(move || {
        while !r.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        "done"
    });
    // The only worker still runs tasks while the job blocks its own thread.
    assert_eq!(rt.block_on(rt.spawn(async { 1 + 1 })).unwrap(), 2);
    release.store(true, Ordering::SeqCst);
    assert_eq!(rt.block_on(job).unwrap(), "done");
}

#[test]
fn the_pool_grows_to_its_bound_and_no_further() {
    let rt = Runtime::builder().worker_threads(1).max_blocking_threads(3).build().unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(AtomicBool::new(false));
    let jobs: Vec<_> = (0..8)
        .map(|i| {
            let (running, peak, release) = (running.clone(), peak.clone(), release.clone());
            rt.spawn_blocking(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                while !release.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                running.fetch_sub(1, Ordering::SeqCst);
                i
            })
        })
        .collect();
    wait_until("three jobs run", 10, || running.load(Ordering::SeqCst) == 3);
    let m = rt.metrics();
    assert_eq!(m.blocking_threads, 3);
    assert_eq!(m.blocking_queue_depth, 5);
    release.store(true, Ordering::SeqCst);
    let sum: usize = jobs.into_iter().map(|j| rt.block_on(j).unwrap()).sum();
    assert_eq!(sum, 28);
    assert_eq!(peak.load(Ordering::SeqCst), 3);
}

#[test]
fn jobs_queued_together_start_threads_together() {
    // Two jobs that must run at the same time (each waits for the other at a barrier): the
    // second may not be handed to the thread already busy with the first.
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let (b1, b2) = (barrier.clone(), barrier.clone());
    let j1 = rt.spawn_blocking(move || b1.wait().is_leader());
    let j2 = rt.spawn_blocking(move || b2.wait().is_leader());
    let leaders = [rt.block_on(j1).unwrap(), rt.block_on(j2).unwrap()];
    assert_eq!(leaders.iter().filter(|l| **l).count(), 1);
}

#[test]
fn idle_threads_exit_after_keep_alive() {
    let rt = Runtime::builder().worker_threads(1).thread_keep_alive(Duration::from_millis(20)).build().unwrap();
    rt.block_on(rt.spawn_blocking(|| ())).unwrap();
    wait_until("the idle blocking thread left", 10, || rt.metrics().blocking_threads == 0);
    // And a new job starts a new one.
    assert_eq!(rt.block_on(rt.spawn_blocking(|| 3)).unwrap(), 3);
}

#[test]
fn a_panicking_job_gives_a_join_error_and_the_pool_goes_on() {
    let rt = Runtime::builder().worker_threads(1).max_blocking_threads(1).build().unwrap();
    let err = rt.block_on(rt.spawn_blocking(|| -> u8 { panic!("blocking boom") })).unwrap_err();
    assert!(err.is_panic());
    assert_eq!(payload_message(&*err.into_panic()), "blocking boom");
    assert_eq!(rt.block_on(rt.spawn_blocking(|| 4)).unwrap(), 4);
}

#[test]
fn a_job_can_block_on_the_runtime_and_spawn_on_it() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let v = rt.block_on(async {
        framealloc_runtime::spawn_blocking(|| {
            let h = framealloc_runtime::Handle::current();
            let t = framealloc_runtime::spawn(async { 20 });
            h.block_on(async move { t.await.unwrap() + 1 })
        })
        .await
        .unwrap()
    });
    assert_eq!(v, 21);
}

#[test]
fn aborting_a_queued_job_cancels_it() {
    let rt = Runtime::builder().worker_threads(1).max_blocking_threads(1).build().unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let r = release.clone();
    let first = rt.spawn_blocking(move || {
        while !r.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let ran = Arc::new(AtomicBool::new(false));
    let r2 = ran.clone();
    let second = rt.spawn_blocking(move || r2.store(true, Ordering::SeqCst));
    second.abort();
    release.store(true, Ordering::SeqCst);
    rt.block_on(first).unwrap();
    assert!(rt.block_on(second).unwrap_err().is_cancelled());
    assert!(!ran.load(Ordering::SeqCst));
}
