//! A soak run of the tokio layer (`#[ignore]`: `.ci/run` runs it in its long-tests step, or
//! `cargo test -p framealloc-tokio --release --test soak -- --ignored`).
//!
//! Waves of tasks on a 2-worker multi-thread runtime, each doing one of a mix of things the
//! layer must survive together: per-task heaps that grow over several chunks while the task
//! moves between workers, pool boxes that escape through the `JoinHandle` or a channel and are
//! freed on another thread, aborts, panics, plain `tokio::spawn` tasks with a `TaskAlloc` and
//! nested guards. After every wave the statistics must account for exactly what is still held,
//! and after the run for nothing. Bounded: a fixed number of waves, which also stops early
//! after 20 seconds (about 13 s in release here).

use framealloc_alloc::{PoolBox, SmartAlloc};
use framealloc_tokio::{AsyncPoolGuard, TaskAlloc};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const WAVES: usize = 20_000;
const TASKS_PER_WAVE: u64 = 64;
const TIME_LIMIT: Duration = Duration::from_secs(20);
/// The payload of the `Panics` tasks' panic.
const PLANNED_PANIC: &str = "soak: planned panic";

/// A deterministic mix from a task's number (splitmix64).
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What one task does, chosen by its number.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Allocates `n` buffers over several yields (a few chunks' worth), frees them all.
    Grow,
    /// Returns a pool box through its `JoinHandle`.
    EscapeByJoin,
    /// Sends a pool box to the collector task, which drops it on whichever worker it runs.
    EscapeByChannel,
    /// Is aborted while holding allocations.
    Aborted,
    /// Panics while holding allocations.
    Panics,
    /// A plain `tokio::spawn` task with a `TaskAlloc` and two nested guards.
    Plain,
}

fn kind(r: u64) -> Kind {
    match r % 6 {
        0 => Kind::Grow,
        1 => Kind::EscapeByJoin,
        2 => Kind::EscapeByChannel,
        3 => Kind::Aborted,
        4 => Kind::Panics,
        _ => Kind::Plain,
    }
}

/// Allocates `count` buffers of sizes from `r`, yielding between them; returns their checksum.
async fn churn(a: &SmartAlloc, r: u64, count: usize) -> u64 {
    let mut held = Vec::with_capacity(count);
    for i in 0..count {
        let len = 8 + (mix(r ^ i as u64) % 600) as usize;
        let mut v = a.pool_vec_with_capacity::<u8>(len);
        v.extend(std::iter::repeat_n(i as u8, len));
        held.push(v);
        if i % 16 == 15 {
            tokio::task::yield_now().await;
        }
    }
    held.iter().map(|v| u64::from(v[v.len() - 1])).sum()
}

/// The checksum [`churn`] must return.
fn churn_sum(count: usize) -> u64 {
    (0..count).map(|i| u64::from(i as u8)).sum()
}

#[test]
#[ignore = "soak run (up to 20 s); .ci/run runs it in its long-tests step"]
fn waves_of_mixed_tasks_leave_nothing_behind() {
    // The planned panics are many: keep their messages (and backtraces) out of the log.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&PLANNED_PANIC) {
            default_hook(info);
        }
    }));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let alloc = SmartAlloc::new(Default::default());
    let started = Instant::now();
    let mut waves = 0;
    let mut escaped_total = 0u64;
    while waves < WAVES && started.elapsed() < TIME_LIMIT {
        let base = waves as u64 * TASKS_PER_WAVE;
        let a = alloc.clone();
        let (kept, received) = rt.block_on(async move {
            let (tx, mut rx) = mpsc::unbounded_channel::<PoolBox<[u64; 8]>>();
            let collector = tokio::spawn(async move {
                let mut n = 0u64;
                while let Some(b) = rx.recv().await {
                    assert_eq!(b[7], b[0] + 7);
                    n += 1;
                    tokio::task::yield_now().await;
                }
                n
            });
            let mut kept = Vec::new();
            let mut handles = Vec::new();
            for t in base..base + TASKS_PER_WAVE {
                let r = mix(t);
                let (a, tx) = (a.clone(), tx.clone());
                let k = kind(r);
                let handle = match k {
                    Kind::Plain => tokio::spawn(async move {
                        let task = TaskAlloc::new(&a);
                        let outer = AsyncPoolGuard::new(&a);
                        let x = task.alloc_box(r);
                        let sum = {
                            let inner = AsyncPoolGuard::new(&a);
                            let s = churn(&a, r, 24).await;
                            assert_eq!(inner.escaped(), 0, "the inner scope's buffers are all dropped");
                            s
                        };
                        let y = a.pool_box(1u32);
                        tokio::task::yield_now().await;
                        assert_eq!(outer.escaped(), 1);
                        assert_eq!(*x, r);
                        (sum + u64::from(*y), None)
                    }),
                    _ => framealloc_tokio::spawn(async move {
                        match k {
                            Kind::Grow => (churn(&a, r, 200).await, None),
                            Kind::EscapeByJoin => {
                                let s = churn(&a, r, 8).await;
                                (s, Some(a.pool_box([r; 8])))
                            }
                            Kind::EscapeByChannel => {
                                let s = churn(&a, r, 8).await;
                                let first = r & 0xFFFF;
                                tx.send(a.pool_box(std::array::from_fn(|i| first + i as u64))).unwrap();
                                (s, None)
                            }
                            Kind::Aborted => {
                                let _held = (a.pool_vec_with_capacity::<u8>(300), a.pool_box([0u8; 100]));
                                tokio::task::yield_now().await;
                                std::future::pending().await
                            }
                            Kind::Panics => {
                                let held = a.pool_box([r; 4]);
                                churn(&a, r, 16).await;
                                if held[0] == r {
                                    std::panic::panic_any(PLANNED_PANIC);
                                }
                                unreachable!()
                            }
                            Kind::Plain => unreachable!(),
                        }
                    }),
                };
                handles.push((k, handle));
            }
            drop(tx);
            for (k, handle) in handles {
                if let Kind::Aborted = k {
                    handle.abort();
                }
                match (k, handle.await) {
                    (Kind::Aborted, Err(e)) => assert!(e.is_cancelled()),
                    (Kind::Panics, Err(e)) => assert!(e.is_panic()),
                    (Kind::Grow, Ok((s, None))) => assert_eq!(s, churn_sum(200)),
                    (Kind::EscapeByJoin, Ok((s, Some(b)))) => {
                        assert_eq!(s, churn_sum(8));
                        kept.push(b);
                    }
                    (Kind::EscapeByChannel, Ok((s, None))) => assert_eq!(s, churn_sum(8)),
                    (Kind::Plain, Ok((s, None))) => assert_eq!(s, churn_sum(24) + 1),
                    (k, r) => panic!("task of kind {k:?} ended with {r:?}"),
                }
            }
            let received = collector.await.unwrap();
            (kept, received)
        });
        let expected_by_channel =
            (base..base + TASKS_PER_WAVE).filter(|&t| matches!(kind(mix(t)), Kind::EscapeByChannel));
        assert_eq!(received, expected_by_channel.count() as u64);
        // Only the boxes returned through the `JoinHandle`s are still alive, each keeping its
        // (ended) task's heap.
        let s = alloc.stats();
        let held = kept.len() as u64;
        assert_eq!(s.task.live_bytes, held * 64, "wave {waves}: {s:?}");
        assert_eq!(s.heaps_alive, held, "wave {waves}: {s:?}");
        assert_eq!((s.pool.live_bytes, s.guard_escapes), (0, 0), "wave {waves}: {s:?}");
        // Half of them are dropped here, on the test's thread; the rest inside a task.
        let (here, there): (Vec<_>, Vec<_>) = kept.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
        drop(here);
        rt.block_on(rt.spawn(async move { drop(there) })).unwrap();
        escaped_total += held;
        waves += 1;
    }
    drop(rt);
    let s = alloc.stats();
    assert_eq!((s.task.live_bytes, s.pool.live_bytes, s.heaps_alive), (0, 0, 0), "{s:?}");
    assert!(waves >= 10 && escaped_total > 0, "only {waves} waves ran ({escaped_total} escapes)");
    println!("{waves} waves of {TASKS_PER_WAVE} tasks, {escaped_total} boxes escaped through JoinHandles");
}
