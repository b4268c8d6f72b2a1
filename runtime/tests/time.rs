//! Timers on a real runtime: never early, fired in deadline order, many at once, `timeout`,
//! `interval` policies under a slow consumer, and nothing left behind by dropped timers.

mod common;

use common::{runtime, scaled};
use framealloc_alloc::SmartAlloc;
use framealloc_runtime::time::{self, Instant, MissedTickBehavior};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);

/// Records, in the order wakers are called, the index of the timer and the instant.
struct Recorder {
    index: usize,
    log: Arc<Mutex<Vec<(usize, Instant)>>>,
}

impl Wake for Recorder {
    fn wake(self: Arc<Self>) {
        self.log.lock().unwrap().push((self.index, Instant::now()));
    }
}

#[test]
#[cfg_attr(miri, ignore)] // real time: the interpreter makes every deadline late
fn timers_fire_in_deadline_order_and_never_early() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    let _entered = rt.enter();
    let n = 200;
    let base = Instant::now() + 20 * MS;
    let log = Arc::new(Mutex::new(Vec::new()));
    // Deadlines 1 ms apart, armed in a scrambled order.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (i * 7919) % n);
    let mut sleeps: Vec<Option<Pin<Box<time::Sleep>>>> = (0..n).map(|_| None).collect();
    for i in order {
        let mut sleep = Box::pin(time::sleep_until(base + MS * i as u32));
        let waker = Waker::from(Arc::new(Recorder { index: i, log: log.clone() }));
        assert!(sleep.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        sleeps[i] = Some(sleep);
    }
    assert_eq!(rt.metrics().timers, n);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while log.lock().unwrap().len() < n {
        assert!(std::time::Instant::now() < deadline, "timers did not fire");
        std::thread::sleep(5 * MS);
    }
    let log = log.lock().unwrap();
    for (k, &(i, at)) in log.iter().enumerate() {
        assert!(at >= base + MS * i as u32, "timer {i} fired early");
        if k > 0 {
            assert!(log[k - 1].0 < i, "timer {i} fired after timer {} (a later deadline)", log[k - 1].0);
        }
    }
    drop(log);
    for s in sleeps.iter_mut().flatten() {
        assert!(s.is_elapsed());
        let waker = Waker::noop();
        assert!(s.as_mut().poll(&mut Context::from_waker(waker)).is_ready());
    }
    assert_eq!(rt.metrics().timers, 0);
}

#[test]
fn ten_thousand_concurrent_sleeps_all_wake_on_time() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    let n = scaled(10_000, 20);
    let early = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let early = early.clone();
            let alloc = alloc.clone();
            rt.spawn(async move {
                // Something in the task's heap across the sleep.
                let mut v = alloc.pool_vec::<usize>();
                v.push(i);
                let d = MS * (1 + (i % 20) as u32);
                let start = Instant::now();
                time::sleep(d).await;
                if start.elapsed() < d {
                    early.fetch_add(1, Ordering::Relaxed);
                }
                v[0]
            })
        })
        .collect();
    let sum: usize = rt.block_on(async {
        let mut sum = 0;
        for h in handles {
            sum += h.await.unwrap();
        }
        sum
    });
    assert_eq!(sum, n * (n - 1) / 2);
    assert_eq!(early.load(Ordering::Relaxed), 0, "a sleep returned before its duration");
    let m = rt.metrics();
    assert_eq!(m.timers, 0);
    assert_eq!(m.tasks_alive, 0);
    drop(rt);
    assert_eq!(alloc.stats().heaps_alive, 0);
}

#[test]
fn timeout_expires_on_a_pending_future_and_not_on_a_quick_one() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    rt.block_on(async {
        let start = Instant::now();
        let err = time::timeout(20 * MS, std::future::pending::<()>()).await.unwrap_err();
        assert!(start.elapsed() >= 20 * MS);
        assert_eq!(err.to_string(), "deadline has elapsed");
        let io: std::io::Error = err.into();
        assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);

        assert_eq!(time::timeout(Duration::from_secs(5), async { 7 }).await, Ok(7));
        let start = Instant::now();
        assert_eq!(time::timeout(Duration::from_secs(5), time::sleep(5 * MS)).await, Ok(()));
        assert!(start.elapsed() < Duration::from_secs(5));

        // Already past: the inner future still gets one poll first (tokio does the same).
        let past = Instant::now() - MS;
        assert_eq!(time::timeout_at(past, async { 1 }).await, Ok(1));
        assert!(time::timeout_at(past, std::future::pending::<()>()).await.is_err());
    });
    assert_eq!(rt.metrics().timers, 0);
}

#[test]
#[cfg_attr(miri, ignore)] // real time
fn interval_burst_catches_up_delay_restarts_and_skip_keeps_the_grid() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    let period = 20 * MS;
    rt.block_on(async {
        // Burst (the default): the ticks missed while the consumer slept come at once, each
        // reporting its own scheduled instant.
        let start = Instant::now();
        let mut iv = time::interval_at(start, period);
        assert_eq!(iv.missed_tick_behavior(), MissedTickBehavior::Burst);
        assert_eq!(iv.tick().await, start);
        std::thread::sleep(period * 3 + 10 * MS); // a slow consumer, blocking its worker
        let before = Instant::now();
        for k in 1..=3u32 {
            assert_eq!(iv.tick().await, start + period * k);
        }
        assert!(before.elapsed() < period, "the missed ticks should come at once");
        assert_eq!(iv.tick().await, start + period * 4);
        assert!(Instant::now() >= start + period * 4);

        // Delay: after a late tick, the next one is a full period after it was taken.
        let start = Instant::now();
        let mut iv = time::interval_at(start, period);
        iv.set_missed_tick_behavior(MissedTickBehavior::Delay);
        iv.tick().await;
        std::thread::sleep(period * 2 + 10 * MS);
        assert_eq!(iv.tick().await, start + period); // late, but it is the one scheduled
        let taken = Instant::now();
        let next = iv.tick().await;
        assert!(next >= taken + period - 2 * MS && next <= taken + period + 10 * MS, "{:?}", next - taken);

        // Skip: the next tick is the next point of the original schedule.
        let start = Instant::now();
        let mut iv = time::interval_at(start, period);
        iv.set_missed_tick_behavior(MissedTickBehavior::Skip);
        iv.tick().await;
        std::thread::sleep(period * 2 + 10 * MS);
        assert_eq!(iv.tick().await, start + period);
        let next = iv.tick().await;
        let k = next.duration_since(start).as_nanos() / period.as_nanos();
        assert_eq!(next, start + period * k as u32, "off the original grid");
        assert!(k >= 3, "a missed tick was not skipped (k = {k})");
    });
}

#[test]
fn dropped_and_reset_sleeps_leave_nothing_behind() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    let _entered = rt.enter();
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    let mut sleeps: Vec<_> = (0..100).map(|i| Box::pin(time::sleep(Duration::from_secs(60 + i)))).collect();
    for s in &mut sleeps {
        assert!(s.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(rt.metrics().timers, 100);
    // A reset moves the timer, it does not add one.
    sleeps[0].as_mut().reset(Instant::now() + Duration::from_secs(1));
    assert!(sleeps[0].as_mut().poll(&mut cx).is_pending());
    assert_eq!(rt.metrics().timers, 100);
    // Reset into the past: ready at once.
    sleeps[1].as_mut().reset(Instant::now() - MS);
    assert!(sleeps[1].as_mut().poll(&mut cx).is_ready());
    assert_eq!(rt.metrics().timers, 99);
    drop(sleeps);
    assert_eq!(rt.metrics().timers, 0);
    // A sleep never polled arms nothing.
    let unpolled = time::sleep(Duration::from_secs(1));
    assert_eq!(rt.metrics().timers, 0);
    drop(unpolled);
}

#[test]
fn a_nearer_timer_armed_from_outside_wakes_the_driver_parked_for_a_far_one() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    // Every worker idle, the driver asleep until a far timer: a new, nearer timer armed
    // from outside must wake it.
    let far = rt.spawn(async { time::sleep(Duration::from_secs(60)).await });
    std::thread::sleep(20 * MS);
    let start = Instant::now();
    rt.block_on(async { time::sleep(10 * MS).await });
    assert!(start.elapsed() >= 10 * MS);
    assert!(start.elapsed() < Duration::from_secs(30), "the nearer timer waited for the far one");
    far.abort();
    rt.block_on(async { assert!(far.await.unwrap_err().is_cancelled()) });
    assert_eq!(rt.metrics().timers, 0);
}

#[test]
fn timers_need_a_runtime_and_fail_loudly_after_its_shutdown() {
    let outside = std::panic::catch_unwind(|| time::sleep(MS)).unwrap_err();
    let msg = outside.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("needs a framealloc runtime"), "{msg}");

    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(1, &alloc);
    let mut sleep = {
        let _entered = rt.enter();
        Box::pin(time::sleep(Duration::from_secs(60)))
    };
    drop(rt);
    let waker = Waker::noop();
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = sleep.as_mut().poll(&mut Context::from_waker(waker));
    }))
    .unwrap_err();
    let msg = polled.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("after its runtime shut down"), "{msg}");
}

#[test]
fn a_sleep_in_a_busy_runtime_still_fires() {
    // Both workers busy with tasks that never park: the timer must be served by the busy
    // workers' periodic driver turns.
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spinners: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            rt.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    framealloc_runtime::yield_now().await;
                }
            })
        })
        .collect();
    let fired = rt.spawn(async {
        let start = Instant::now();
        time::sleep(10 * MS).await;
        start.elapsed()
    });
    let took = rt.block_on(async {
        let took = time::timeout(Duration::from_secs(20), fired).await;
        stop.store(true, Ordering::Relaxed);
        took
    });
    let took = took.expect("the timer never fired while workers were busy").unwrap();
    assert!(took >= 10 * MS);
    rt.block_on(async {
        for s in spinners {
            s.await.unwrap();
        }
    });
}
