//! One task cannot starve the others: the cooperative budget and the LIFO slot's bound.

mod common;

use common::scaled;
use framealloc_runtime::Runtime;
use futures::channel::mpsc;
use futures::StreamExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

fn one_worker() -> Runtime {
    Runtime::builder().worker_threads(1).build().unwrap()
}

#[test]
fn ready_join_handles_spend_the_budget_and_yield() {
    let rt = one_worker();
    let seen_at = rt
        .block_on(rt.spawn(async {
            let n = 300;
            let hs: Vec<_> = (0..n).map(|i| framealloc_runtime::spawn(async move { i })).collect();
            // Let them all finish, so every join below is ready at once.
            while !hs.iter().all(|h| h.is_finished()) {
                framealloc_runtime::yield_now().await;
            }
            let flag = Arc::new(AtomicBool::new(false));
            let f = flag.clone();
            let other = framealloc_runtime::spawn(async move { f.store(true, Ordering::SeqCst) });
            let mut seen_at = None;
            for (i, h) in hs.into_iter().enumerate() {
                assert_eq!(h.await.unwrap(), i);
                if seen_at.is_none() && flag.load(Ordering::SeqCst) {
                    seen_at = Some(i);
                }
            }
            other.await.unwrap();
            seen_at
        }))
        .unwrap();
    // The budget (128 per poll) ran out part-way: the task yielded and the other one ran.
    let at = seen_at.expect("the other task ran before the joins were done");
    assert!(at <= 129, "seen at {at}");
}

#[test]
fn consume_budget_yields_in_a_busy_loop() {
    let rt = one_worker();
    let seen = rt
        .block_on(rt.spawn(async {
            let flag = Arc::new(AtomicBool::new(false));
            let f = flag.clone();
            let other = framealloc_runtime::spawn(async move { f.store(true, Ordering::SeqCst) });
            let mut seen = None;
            for i in 0..1_000 {
                framealloc_runtime::task::consume_budget().await;
                if seen.is_none() && flag.load(Ordering::SeqCst) {
                    seen = Some(i);
                }
            }
            other.await.unwrap();
            seen
        }))
        .unwrap();
    assert!(seen.is_some_and(|i| i <= 129), "{seen:?}");
}

#[test]
fn two_tasks_waking_each_other_do_not_starve_a_third() {
    let rt = one_worker();
    let limit = scaled(100_000, 2_000);
    let rounds = Arc::new(AtomicUsize::new(0));
    let third_ran = Arc::new(AtomicBool::new(false));
    let (r, t) = (rounds.clone(), third_ran.clone());
    rt.block_on(rt.spawn(async move {
        let (ping_tx, mut ping_rx) = mpsc::unbounded::<()>();
        let (pong_tx, mut pong_rx) = mpsc::unbounded::<()>();
        let t1 = t.clone();
        // Each message wakes the other task, which goes into the worker's LIFO slot.
        let ping = framealloc_runtime::spawn(async move {
            for _ in 0..limit {
                if t1.load(Ordering::SeqCst) {
                    break;
                }
                ping_tx.unbounded_send(()).unwrap();
                if pong_rx.next().await.is_none() {
                    break;
                }
            }
        });
        let r1 = r.clone();
        let pong = framealloc_runtime::spawn(async move {
            while ping_rx.next().await.is_some() {
                r1.fetch_add(1, Ordering::SeqCst);
                if pong_tx.unbounded_send(()).is_err() {
                    break;
                }
            }
        });
        // Behind them in the queue once they are going.
        framealloc_runtime::yield_now().await;
        let third = framealloc_runtime::spawn(async move { t.store(true, Ordering::SeqCst) });
        third.await.unwrap();
        ping.await.unwrap();
        pong.await.unwrap();
    }))
    .unwrap();
    assert!(third_ran.load(Ordering::SeqCst));
    assert!(rounds.load(Ordering::SeqCst) < limit, "the ping-pong stopped because the third task ran");
}
