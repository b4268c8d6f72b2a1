//! framealloc on tokio: per-task heaps of `framealloc_tokio::spawn`, `TaskAlloc` and
//! `AsyncPoolGuard` in plain `tokio::spawn` tasks, on both runtime flavours.
//!
//! Every test uses its own `SmartAlloc`, so its statistics see only its own tasks.

use framealloc_alloc::{AllocConfig, AllocStats, SmartAlloc};
use framealloc_tokio::{AsyncPoolGuard, TaskAlloc};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::{Builder, Runtime};
use tokio::sync::{oneshot, Barrier};
use tokio::task::JoinError;

fn current_thread() -> Runtime {
    Builder::new_current_thread().enable_all().build().unwrap()
}

fn multi_thread() -> Runtime {
    Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Both runtime flavours, named for assertion messages.
fn flavours() -> [(&'static str, Runtime); 2] {
    [("current_thread", current_thread()), ("multi_thread", multi_thread())]
}

/// Runs `test` with a fresh `SmartAlloc` on a current-thread and on a multi-thread runtime.
fn on_both_flavours<F, Fut>(test: F)
where
    F: Fn(SmartAlloc) -> Fut,
    Fut: Future<Output = ()>,
{
    on_both_flavours_with(AllocConfig::default(), test);
}

/// [`on_both_flavours`] with a `SmartAlloc` of `config`.
fn on_both_flavours_with<F, Fut>(config: AllocConfig, test: F)
where
    F: Fn(SmartAlloc) -> Fut,
    Fut: Future<Output = ()>,
{
    for (name, rt) in flavours() {
        let alloc = SmartAlloc::new(config.clone());
        rt.block_on(test(alloc.clone()));
        drop(rt);
        let s = alloc.stats();
        assert_eq!((s.task.live_bytes, s.pool.live_bytes, s.heaps_alive), (0, 0, 0), "{name}: {s:?}");
    }
}

fn panic_message(e: JoinError) -> String {
    payload_text(&*e.into_panic())
}

/// The text of a panic's payload (a `String` or a `&str`), else "".
fn payload_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

fn assert_empty(s: &AllocStats) {
    assert_eq!(s.task.live_bytes, 0, "{s:?}");
    assert_eq!(s.pool.live_bytes, 0, "{s:?}");
    assert_eq!(s.heaps_alive, 0, "{s:?}");
}

#[test]
fn spawn_gives_each_task_a_heap_released_before_the_output() {
    on_both_flavours(|alloc| async move {
        let a = alloc.clone();
        let (len, during) = framealloc_tokio::spawn(async move {
            let mut v = a.pool_vec::<u64>();
            v.extend(0..100);
            let b = a.pool_box([1u8; 48]);
            tokio::task::yield_now().await;
            let during = a.stats();
            (v.len() + b.len(), during)
        })
        .await
        .unwrap();
        assert_eq!(len, 148);
        assert_eq!(during.heaps_alive, 1, "{during:?}");
        assert!(during.task.live_bytes >= 48 + 800, "{during:?}");
        let s = alloc.stats();
        // Exact right after the JoinHandle: the heap went back before the output was published.
        assert_empty(&s);
        assert_eq!(s.pool.allocations, 0, "pool_* inside the task used its heap: {s:?}");
        assert!(s.task.allocations >= 2, "{s:?}");
    });
}

#[test]
fn pool_calls_in_a_plain_task_without_a_guard_use_the_thread_pool() {
    on_both_flavours(|alloc| async move {
        let a = alloc.clone();
        let v = tokio::spawn(async move { *a.pool_box(3u32) }).await.unwrap();
        assert_eq!(v, 3);
        let s = alloc.stats();
        assert_eq!((s.pool.allocations, s.task.allocations), (1, 0), "{s:?}");
    });
}

/// The thread's pool is the calling thread's own, whoever runs there: a plain thread (asked
/// about tokio's task on every call once the layer is in) and a plain tokio task take its
/// fast path, so a block freed there is the next one handed out. Freed as a stranger, it would
/// wait on the pool's list of remote frees, and the next one would come from elsewhere.
#[test]
fn the_thread_pool_serves_plain_threads_and_plain_tasks_as_its_owner() {
    let alloc = SmartAlloc::default();
    let reuse = |alloc: &SmartAlloc| {
        let first = alloc.pool_box(1u64);
        let addr = &*first as *const u64 as usize;
        drop(first);
        let again = alloc.pool_box(2u64);
        (&*again as *const u64 as usize == addr, alloc.stats().pool.live_bytes)
    };
    assert_eq!(reuse(&alloc), (true, 8), "on a plain thread");
    for (name, rt) in flavours() {
        let a = alloc.clone();
        let in_task = rt.block_on(async move { tokio::spawn(async move { reuse(&a) }).await.unwrap() });
        assert_eq!(in_task, (true, 8), "{name}: in a plain tokio task");
    }
    assert_eq!(alloc.stats().pool.live_bytes, 0);
}

/// tokio runs each worker of a multi-thread runtime as a blocking task, so its thread hooks
/// run under that task's id: `current_task_id` is `Some` there and frame memory is refused
/// with FA701 (as `current_task_id`'s docs say). A current-thread runtime's hooks run on the
/// `block_on` thread, outside any task, where frame memory works. Each park counts only if
/// both agree.
#[test]
fn worker_thread_hooks_count_as_a_task() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let alloc = SmartAlloc::default();
    for multi in [true, false] {
        let (in_task, outside) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (i, o, a) = (in_task.clone(), outside.clone(), alloc.clone());
        let mut builder = if multi { Builder::new_multi_thread() } else { Builder::new_current_thread() };
        if multi {
            builder.worker_threads(1);
        }
        let rt = builder
            .on_thread_park(move || {
                let task = framealloc_tokio::current_task_id().is_some();
                let frame = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(a.frame_box(1u8))));
                let fa701 = frame.is_err_and(|p| payload_text(&*p).starts_with("FA701:"));
                if task == fa701 {
                    (if task { &i } else { &o }).fetch_add(1, SeqCst);
                }
            })
            .build()
            .unwrap();
        rt.block_on(async {
            for _ in 0..3 {
                tokio::spawn(tokio::task::yield_now()).await.unwrap();
                tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(2))).await.unwrap();
            }
        });
        drop(rt);
        let (i, o) = (in_task.load(SeqCst), outside.load(SeqCst));
        if multi {
            assert!(i > 0 && o == 0, "multi-thread worker parks: {i} in a task, {o} outside");
        } else {
            assert!(i == 0 && o > 0, "current-thread parks: {i} in a task, {o} outside");
        }
    }
    assert_eq!(alloc.stats().frame.live_bytes, 0);
}

/// Yields through `spawn_blocking` (its completion wakes the task from a thread outside the
/// workers, so any idle worker may pick it up) until the task runs on another thread.
async fn migrate() -> (std::thread::ThreadId, std::thread::ThreadId) {
    let first = std::thread::current().id();
    for _ in 0..500 {
        tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_micros(50))).await.unwrap();
        tokio::task::yield_now().await;
        let now = std::thread::current().id();
        if now != first {
            return (first, now);
        }
    }
    panic!("the task never moved to another worker in 500 attempts");
}

#[test]
fn allocations_survive_a_move_to_another_worker() {
    let rt = multi_thread();
    let alloc = SmartAlloc::new(Default::default());

    // framealloc_tokio::spawn: the task heap follows the task.
    let a = alloc.clone();
    let (from, to) = rt
        .block_on(rt.spawn(async move {
            framealloc_tokio::spawn(async move {
                let before = a.pool_box(String::from("made before the move"));
                let mut v = a.pool_vec::<u32>();
                v.extend(0..64);
                let moved = migrate().await;
                let after = a.pool_box(7u64);
                v.extend(64..128);
                assert_eq!(*before, "made before the move");
                assert_eq!(v.iter().sum::<u32>(), (0..128).sum());
                assert_eq!(*after, 7);
                assert_eq!(a.stats().heaps_alive, 1);
                moved
            })
            .await
            .unwrap()
        }))
        .unwrap();
    assert_ne!(from, to);
    let s = alloc.stats();
    assert_empty(&s);
    assert_eq!(s.pool.allocations, 0, "{s:?}");

    // Plain tokio::spawn: TaskAlloc and AsyncPoolGuard keyed by tokio's task id.
    let a = alloc.clone();
    let (from, to) = rt
        .block_on(rt.spawn(async move {
            let task = TaskAlloc::new(&a);
            let guard = AsyncPoolGuard::new(&a);
            let mut names = task.alloc_vec::<&str>();
            names.push("before");
            let p1 = a.pool_box(1u64);
            let moved = migrate().await;
            names.push("after");
            let p2 = a.pool_box(2u64);
            // Both pool boxes are in the guard's scope, before and after the move.
            assert_eq!(guard.escaped(), 2);
            assert_eq!(*names, ["before", "after"]);
            assert_eq!(*p1 + *p2, 3);
            let s = a.stats();
            assert_eq!(s.pool.allocations, 0, "the guard heap is the task's on every worker: {s:?}");
            moved
        }))
        .unwrap();
    assert_ne!(from, to);
    let s = alloc.stats();
    assert_empty(&s);
    assert_eq!(s.guard_escapes, 0, "{s:?}");
}

/// Allocates through `alloc` when dropped and records which kind the allocation counted as:
/// `task` if the drop ran as the task (inside its context), `pool` otherwise.
struct DropProbe {
    alloc: SmartAlloc,
    ran_as_task: Option<oneshot::Sender<bool>>,
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        let before = self.alloc.stats().task.allocations;
        let b = self.alloc.pool_box(0u32);
        let as_task = self.alloc.stats().task.allocations == before + 1;
        drop(b);
        let _ = self.ran_as_task.take().unwrap().send(as_task);
    }
}

#[test]
fn abort_drops_the_future_as_the_task_and_frees_its_heap() {
    on_both_flavours(|alloc| async move {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (probe_tx, probe_rx) = oneshot::channel();
        let a = alloc.clone();
        let handle = framealloc_tokio::spawn(async move {
            let _probe = DropProbe { alloc: a.clone(), ran_as_task: Some(probe_tx) };
            let _held = (a.pool_box([0u64; 16]), a.pool_vec::<u8>());
            ready_tx.send(()).unwrap();
            std::future::pending::<()>().await;
        });
        ready_rx.await.unwrap();
        let s = alloc.stats();
        assert_eq!((s.heaps_alive, s.task.live_bytes), (1, 128), "{s:?}");
        handle.abort();
        let err = handle.await.unwrap_err();
        assert!(err.is_cancelled());
        assert!(probe_rx.await.unwrap(), "the future was dropped inside the task's context");
        assert_empty(&alloc.stats());
    });
}

#[test]
fn panic_in_a_task_frees_its_heap() {
    on_both_flavours(|alloc| async move {
        // framealloc_tokio::spawn
        let (probe_tx, probe_rx) = oneshot::channel();
        let a = alloc.clone();
        let err = framealloc_tokio::spawn(async move {
            let _probe = DropProbe { alloc: a.clone(), ran_as_task: Some(probe_tx) };
            let held = a.pool_box(vec![1u8, 2, 3]);
            tokio::task::yield_now().await;
            if held.len() == 3 {
                panic!("boom in a framealloc task");
            }
        })
        .await
        .unwrap_err();
        assert!(err.is_panic());
        assert_eq!(panic_message(err), "boom in a framealloc task");
        assert!(probe_rx.await.unwrap(), "unwinding ran as the task");
        assert_empty(&alloc.stats());

        // Plain tokio::spawn with a TaskAlloc and a guard: unwinding drops both.
        let a = alloc.clone();
        let err = tokio::spawn(async move {
            let task = TaskAlloc::new(&a);
            let _guard = AsyncPoolGuard::new(&a);
            let x = task.alloc_box([5u32; 8]);
            let y = a.pool_box(9u16);
            tokio::task::yield_now().await;
            if x[0] + u32::from(*y) == 14 {
                panic!("boom in a plain task");
            }
        })
        .await
        .unwrap_err();
        assert_eq!(panic_message(err), "boom in a plain task");
        let s = alloc.stats();
        assert_empty(&s);
        assert_eq!(s.guard_escapes, 0, "{s:?}");
    });
}

/// Allocates in the task's heap from its `drop`, then panics.
struct PanicsOnDrop {
    alloc: SmartAlloc,
}

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        let _b = self.alloc.pool_box([1u8; 32]);
        panic!("boom in drop");
    }
}

#[test]
fn a_future_whose_drop_panics_still_frees_its_heap() {
    on_both_flavours(|alloc| async move {
        // Dropped when the task completes: the output is lost, the panic reported.
        let a = alloc.clone();
        let err = framealloc_tokio::spawn(async move {
            let held = (PanicsOnDrop { alloc: a.clone() }, a.pool_box(5u64));
            tokio::task::yield_now().await;
            *held.1
        })
        .await
        .unwrap_err();
        assert_eq!(panic_message(err), "boom in drop");
        assert_empty(&alloc.stats());

        // Dropped by `abort`: the panic replaces the cancellation.
        let (ready_tx, ready_rx) = oneshot::channel();
        let a = alloc.clone();
        let handle = framealloc_tokio::spawn(async move {
            let _held = (PanicsOnDrop { alloc: a.clone() }, a.pool_vec_with_capacity::<u8>(100));
            ready_tx.send(()).unwrap();
            std::future::pending::<()>().await;
        });
        ready_rx.await.unwrap();
        assert_eq!(alloc.stats().heaps_alive, 1);
        handle.abort();
        assert_eq!(panic_message(handle.await.unwrap_err()), "boom in drop");
        assert_empty(&alloc.stats());

        // A `with_task_heap` future polled once and dropped by hand.
        let a = alloc.clone();
        let mut wrapped = Box::pin(framealloc_tokio::with_task_heap(async move {
            let _held = (PanicsOnDrop { alloc: a.clone() }, a.pool_box(7u32));
            std::future::pending::<()>().await;
        }));
        let waker = std::task::Waker::noop();
        assert!(wrapped.as_mut().poll(&mut std::task::Context::from_waker(waker)).is_pending());
        assert_eq!(alloc.stats().heaps_alive, 1);
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(wrapped)));
        assert_eq!(payload_text(&*dropped.unwrap_err()), "boom in drop");
        assert_empty(&alloc.stats());
    });
}

/// A task heap budget inside tokio tasks. Each task's heap has its own: `try_*` returns the
/// error, the plain call panics with a message naming the budget, the cap and the task, the
/// `JoinHandle` reports the panic, and the heap goes back, so the next task has the whole
/// budget again. The message names the task by its framealloc number and tokio's id. The
/// same holds for a `TaskAlloc` in a plain `tokio::spawn` task, whose message names the tokio
/// task.
#[test]
fn task_heap_budget_inside_tokio_tasks() {
    const BUDGET: usize = 64 * 1024;
    on_both_flavours_with(AllocConfig::default().with_task_heap_budget(BUDGET), |alloc| async move {
        for round in 0..2 {
            let a = alloc.clone();
            let (id_tx, id_rx) = oneshot::channel();
            let err = framealloc_tokio::spawn(async move {
                id_tx.send(tokio::task::id()).unwrap();
                let half = a.pool_vec_with_capacity::<u8>(BUDGET / 2);
                let e = a.try_pool_vec_with_capacity::<u8>(BUDGET).map(drop).unwrap_err();
                assert!(e.is_task_budget() && e.cap() == Some(BUDGET) && e.requested() == BUDGET, "{e}");
                tokio::task::yield_now().await;
                let _over = a.pool_vec_with_capacity::<u8>(BUDGET); // panics
                drop(half);
            })
            .await
            .unwrap_err();
            let msg = panic_message(err);
            assert!(msg.contains("task heap budget") && msg.contains(&BUDGET.to_string()), "round {round}: {msg}");
            let tokio_id = id_rx.await.unwrap();
            assert!(msg.contains(", in task "), "names the framealloc task: {msg}");
            assert!(msg.contains(&format!(" (tokio task {tokio_id})")), "and its tokio id: {msg}");
            assert_empty(&alloc.stats());
        }

        let a = alloc.clone();
        let (id_tx, id_rx) = oneshot::channel();
        let err = tokio::spawn(async move {
            id_tx.send(tokio::task::id()).unwrap();
            let task = TaskAlloc::new(&a);
            let e = task.try_alloc_vec_with_capacity::<u8>(2 * BUDGET).map(drop).unwrap_err();
            assert!(e.is_task_budget(), "{e}");
            tokio::task::yield_now().await;
            let _over = task.alloc_vec_with_capacity::<u8>(2 * BUDGET); // panics
        })
        .await
        .unwrap_err();
        let tokio_id = id_rx.await.unwrap();
        let msg = panic_message(err);
        assert!(msg.contains("task heap budget"), "{msg}");
        assert!(msg.contains(&format!("in tokio task {tokio_id}")), "names the tokio task: {msg}");
        assert_empty(&alloc.stats());
    });
}

/// A runtime dropped while its tasks wait drops their futures (tokio cancels them): every
/// task heap, `TaskAlloc` heap and guard heap goes back, each future dropped as its task.
#[test]
fn dropping_the_runtime_with_tasks_waiting_frees_every_heap() {
    const PAIRS: usize = if cfg!(miri) { 4 } else { 32 };
    for (name, rt) in flavours() {
        let alloc = SmartAlloc::new(Default::default());
        let all_waiting = Arc::new(Barrier::new(2 * PAIRS + 1));
        let mut probes = Vec::new();
        rt.block_on(async {
            for i in 0..PAIRS {
                // A task of ours: its heap holds a box and a buffer when it is cancelled.
                let (a, waiting) = (alloc.clone(), all_waiting.clone());
                let (probe_tx, probe_rx) = oneshot::channel();
                probes.push(probe_rx);
                drop(framealloc_tokio::spawn(async move {
                    // The probe counts on an allocator of its own: workers drop the cancelled
                    // futures concurrently, and their allocations would blur a shared count.
                    let own = SmartAlloc::new(Default::default());
                    let _probe = DropProbe { alloc: own, ran_as_task: Some(probe_tx) };
                    let _held = (a.pool_box([i as u64; 8]), a.pool_vec_with_capacity::<u8>(100));
                    waiting.wait().await;
                    std::future::pending::<()>().await;
                }));
                // A plain task with a `TaskAlloc` and a guard, each with a live allocation.
                let (a, waiting) = (alloc.clone(), all_waiting.clone());
                drop(tokio::spawn(async move {
                    let task = TaskAlloc::new(&a);
                    let _kept = task.alloc_box([i as u8; 48]);
                    let _guard = AsyncPoolGuard::new(&a);
                    let _scoped = a.pool_box(i as u32);
                    waiting.wait().await;
                    std::future::pending::<()>().await;
                }));
            }
            all_waiting.wait().await;
            let s = alloc.stats();
            // Per pair: the task heap, the TaskAlloc heap and the guard heap.
            assert_eq!(s.heaps_alive, 3 * PAIRS as u64, "{name}: {s:?}");
            assert_eq!(s.task.live_bytes, (PAIRS * (64 + 100 + 48 + 4)) as u64, "{name}: {s:?}");
        });
        drop(rt);
        let s = alloc.stats();
        assert_empty(&s);
        assert_eq!((s.guard_escapes, s.pool.allocations), (0, 0), "{name}: {s:?}");
        for probe in probes {
            assert_eq!(probe.blocking_recv(), Ok(true), "{name}: the cancelled future was dropped as its task");
        }
    }
}

/// A handle that outlives its runtime still spawns: tokio cancels the task at once, and the
/// wrapper drops the future, never polled, without taking a heap.
#[test]
fn spawn_on_a_handle_whose_runtime_is_gone_drops_the_future() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = multi_thread();
    let handle = rt.handle().clone();
    drop(rt);
    let (probe_tx, probe_rx) = oneshot::channel();
    // Made outside the async block, so that the unpolled future owns it.
    let probe = DropProbe { alloc: alloc.clone(), ran_as_task: Some(probe_tx) };
    let join = handle.spawn(framealloc_tokio::with_task_heap(async move {
        let probe = probe;
        probe.alloc.pool_box(1u8)
    }));
    assert_eq!(probe_rx.blocking_recv(), Ok(true), "dropped inside the task's context");
    let err = current_thread().block_on(join).unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    let s = alloc.stats();
    assert_empty(&s);
    assert_eq!(s.task.allocations, 1, "only the probe's allocation, as the task: {s:?}");
}

#[test]
fn escaped_pool_box_stays_valid_after_its_task_and_is_freed_on_drop() {
    on_both_flavours(|alloc| async move {
        let a = alloc.clone();
        let kept = framealloc_tokio::spawn(async move {
            let scratch = a.pool_box([0u8; 256]);
            let kept = a.pool_box([42u64; 8]);
            tokio::task::yield_now().await;
            drop(scratch);
            kept
        })
        .await
        .unwrap();
        let s = alloc.stats();
        assert_eq!((s.heaps_alive, s.task.live_bytes), (1, 64), "the escaped box keeps its heap: {s:?}");
        assert!(s.quarantined_chunks >= 1, "{s:?}");
        assert!(kept.iter().all(|&v| v == 42));
        // Dropped on a thread that never ran the task.
        std::thread::spawn(move || drop(kept)).join().unwrap();
        let s = alloc.stats();
        assert_empty(&s);
        assert_eq!(s.quarantined_chunks, 0, "{s:?}");

        // Escaping a guard of a plain task.
        let a = alloc.clone();
        let kept = tokio::spawn(async move {
            let _guard = AsyncPoolGuard::new(&a);
            let _gone = a.pool_box(1u32);
            a.pool_box(String::from("escaped"))
        })
        .await
        .unwrap();
        let s = alloc.stats();
        assert_eq!(s.guard_escapes, 1, "{s:?}");
        assert_eq!(*kept, "escaped");
        drop(kept);
        assert_empty(&alloc.stats());
    });
}

#[test]
fn ten_thousand_concurrent_tasks_with_a_task_alloc_each() {
    // Miri interprets every instruction: there the same protocol runs with fewer tasks.
    const TASKS: usize = if cfg!(miri) { 64 } else { 10_000 };
    on_both_flavours(|alloc| async move {
        let all_allocated = Arc::new(Barrier::new(TASKS + 1));
        let go = Arc::new(Barrier::new(TASKS + 1));
        let handles: Vec<_> = (0..TASKS)
            .map(|i| {
                let (a, all_allocated, go) = (alloc.clone(), all_allocated.clone(), go.clone());
                tokio::spawn(async move {
                    let task = TaskAlloc::new(&a);
                    let head = task.alloc_box([i as u64; 4]);
                    let mut body = task.alloc_vec::<u32>();
                    body.extend_from_slice(&[i as u32; 8]);
                    all_allocated.wait().await;
                    go.wait().await;
                    head.iter().sum::<u64>() + body.iter().map(|&v| u64::from(v)).sum::<u64>()
                })
            })
            .collect();
        all_allocated.wait().await;
        let s = alloc.stats();
        assert_eq!(s.heaps_alive, TASKS as u64, "{s:?}");
        assert_eq!(s.task.live_bytes, (TASKS * (32 + 32)) as u64, "{s:?}");
        go.wait().await;
        let mut total = 0;
        for h in handles {
            total += h.await.unwrap();
        }
        assert_eq!(total, (0..TASKS as u64).map(|i| 12 * i).sum::<u64>());
        let s = alloc.stats();
        assert_empty(&s);
        assert_eq!(s.task.allocations, 2 * TASKS as u64, "{s:?}");
    });
}

/// Nesting in one task: each allocation counts in the innermost open guard; an inner guard
/// dropped while something of its scope is alive reports an escape.
async fn nest(a: SmartAlloc) {
    let escapes_before = a.stats().guard_escapes;
    let outer = AsyncPoolGuard::new(&a);
    let x = a.pool_box(1u64);
    {
        let inner = AsyncPoolGuard::new(&a);
        let y = a.pool_box(2u64);
        let z = a.pool_vec::<u8>();
        tokio::task::yield_now().await;
        assert_eq!((outer.escaped(), inner.escaped()), (1, 2));
        drop(y);
        assert_eq!(inner.escaped(), 1);
        drop(z);
        assert_eq!(inner.escaped(), 0);
    }
    let w = a.pool_box(3u64);
    assert_eq!(outer.escaped(), 2, "back to the outer scope");
    let inner2 = AsyncPoolGuard::new(&a);
    let escapee = a.pool_box(String::from("outlives inner2"));
    drop(inner2);
    assert_eq!(a.stats().guard_escapes, escapes_before + 1);
    tokio::task::yield_now().await;
    assert_eq!(*escapee, "outlives inner2");
    assert_eq!(*x + *w, 4);
    drop((x, w, escapee));
    assert_eq!(outer.escaped(), 0);
}

#[test]
fn guards_nest() {
    on_both_flavours(|alloc| async move {
        tokio::spawn(nest(alloc.clone())).await.unwrap();
        let s = alloc.stats();
        assert_eq!((s.guard_escapes, s.pool.allocations), (1, 0), "{s:?}");
        framealloc_tokio::spawn(nest(alloc.clone())).await.unwrap();
        let s = alloc.stats();
        assert_eq!((s.guard_escapes, s.pool.allocations), (2, 0), "{s:?}");
        assert_eq!(s.task.allocations, 8, "four boxes per run, all in task heaps: {s:?}");
    });
}

fn assert_fa701(err: JoinError, what: &str) {
    assert!(err.is_panic(), "{what}: {err:?}");
    let msg = panic_message(err);
    assert!(msg.starts_with("FA701:"), "{what}: {msg}");
    assert!(msg.contains(&format!("`{what}`")), "{what}: {msg}");
    assert!(msg.contains("TaskAlloc"), "the message points to TaskAlloc: {msg}");
    assert!(msg.contains("spawn_blocking"), "and says spawn_blocking is no place for a frame loop: {msg}");
}

#[test]
fn frame_memory_in_a_tokio_task_panics_with_fa701() {
    on_both_flavours(|alloc| async move {
        type FrameOp = fn(&SmartAlloc);
        let ops: [(&str, FrameOp); 5] = [
            ("begin_frame", |a| a.begin_frame()),
            ("end_frame", |a| a.end_frame()),
            ("frame_box", |a| drop(a.frame_box(1u8))),
            ("frame_vec", |a| drop(a.frame_vec::<u8>())),
            ("frame_scope", |a| a.frame_scope(|_| ())),
        ];
        for (what, op) in ops {
            let a = alloc.clone();
            assert_fa701(tokio::spawn(async move { op(&a) }).await.unwrap_err(), what);
            let a = alloc.clone();
            assert_fa701(framealloc_tokio::spawn(async move { op(&a) }).await.unwrap_err(), what);
            let a = alloc.clone();
            assert_fa701(tokio::task::spawn_blocking(move || op(&a)).await.unwrap_err(), what);
        }
        // The block_on root is not a task: frame memory works there.
        alloc.begin_frame();
        let f = alloc.frame_box(5u32);
        alloc.end_frame();
        assert_eq!(*f, 5);
        drop(f);
        assert_eq!(alloc.stats().frames, 1);
    });
}

#[test]
fn spawn_local_gives_a_not_send_task_its_heap() {
    let rt = current_thread();
    let alloc = SmartAlloc::new(Default::default());
    let local = tokio::task::LocalSet::new();
    let a = alloc.clone();
    let (sum, aborted) = local.block_on(&rt, async move {
        let b = a.clone();
        let sum = framealloc_tokio::spawn_local(async move {
            let shared = std::rc::Rc::new(b.pool_vec::<u32>()); // !Send
            tokio::task::yield_now().await;
            let during = b.stats();
            assert_eq!(during.heaps_alive, 1, "{during:?}");
            shared.len() + *b.pool_box(10usize)
        })
        .await
        .unwrap();
        let b = a.clone();
        let handle = framealloc_tokio::spawn_local(async move {
            let _held = std::rc::Rc::new(b.pool_box(1u64));
            std::future::pending::<()>().await;
        });
        tokio::task::yield_now().await;
        handle.abort();
        (sum, handle.await.unwrap_err().is_cancelled())
    });
    assert_eq!((sum, aborted), (10, true));
    let s = alloc.stats();
    assert_empty(&s);
    assert_eq!((s.task.allocations, s.pool.allocations), (2, 0), "{s:?}");
}

/// A `LocalSet` dropped with tasks of `spawn_local` waiting drops their futures as the tasks
/// and frees their heaps.
#[test]
fn dropping_a_local_set_with_tasks_waiting_frees_their_heaps() {
    let rt = current_thread();
    let alloc = SmartAlloc::new(Default::default());
    let local = tokio::task::LocalSet::new();
    let mut probes = Vec::new();
    for i in 0..8u64 {
        let (probe_tx, probe_rx) = oneshot::channel();
        probes.push(probe_rx);
        let a = alloc.clone();
        drop(local.spawn_local(framealloc_tokio::with_task_heap(async move {
            let _probe = DropProbe { alloc: a.clone(), ran_as_task: Some(probe_tx) };
            let _held = std::rc::Rc::new((a.pool_box(i), a.pool_vec_with_capacity::<u8>(40)));
            std::future::pending::<()>().await;
        })));
    }
    local.block_on(&rt, tokio::task::yield_now());
    let s = alloc.stats();
    assert_eq!((s.heaps_alive, s.task.live_bytes), (8, 8 * 48), "{s:?}");
    drop(local);
    assert_empty(&alloc.stats());
    for probe in probes {
        assert_eq!(probe.blocking_recv(), Ok(true), "dropped as its task");
    }
}

/// A `LocalSet` driven inside a `spawn_local` task's poll (see the crate docs, "Tokio tasks
/// polled inside a task of `spawn`"): an inner task of `spawn_local` gets a heap of its own
/// and gives the outer one back on return; a plain inner task runs under the outer task's
/// identity, so its `pool_*` calls use the outer task's heap. Nothing is lost either way.
#[test]
fn a_local_set_driven_inside_a_task_nests_task_heaps() {
    let rt = current_thread();
    let alloc = SmartAlloc::new(Default::default());
    let a = alloc.clone();
    let outer = tokio::task::LocalSet::new();
    let total = outer.block_on(&rt, async move {
        framealloc_tokio::spawn_local(async move {
            let mine = a.pool_box(7u64);
            let inner = tokio::task::LocalSet::new();
            let b = a.clone();
            let ours = inner.spawn_local(framealloc_tokio::with_task_heap(async move {
                let kept = b.pool_box([2u64; 2]);
                tokio::task::yield_now().await;
                let s = b.stats();
                assert_eq!((s.heaps_alive, s.task.live_bytes), (2, 8 + 16), "a heap of its own: {s:?}");
                kept
            }));
            let b = a.clone();
            let plain = inner.spawn_local(async move {
                let v = b.pool_vec_with_capacity::<u8>(32);
                // No third heap and nothing in the thread's pool: the outer task's heap (with
                // `mine`) holds it, beside the first inner task's (polled first, now waiting).
                let s = b.stats();
                assert_eq!((s.heaps_alive, s.task.live_bytes, s.pool.live_bytes), (2, 8 + 16 + 32, 0), "{s:?}");
                v.capacity() as u64
            });
            let (kept, plain) = inner.run_until(async { (ours.await.unwrap(), plain.await.unwrap()) }).await;
            // The outer task still runs as itself: its next allocation uses its heap.
            let again = a.pool_box(1u64);
            let s = a.stats();
            assert_eq!((s.heaps_alive, s.task.live_bytes), (2, 8 + 16 + 8), "{s:?}");
            *mine + kept.iter().sum::<u64>() + plain + *again
        })
        .await
        .unwrap()
    });
    assert_eq!(total, 7 + 4 + 32 + 1);
    let s = alloc.stats();
    assert_empty(&s);
    assert_eq!((s.task.allocations, s.pool.allocations), (4, 0), "{s:?}");
}

/// `block_in_place` runs blocking code on the task's own thread, still inside its poll: the
/// task's heap (and a plain task's `TaskAlloc`) serve it, and keep serving after the task
/// moves on.
#[test]
fn block_in_place_inside_a_task_uses_the_task_heap() {
    let rt = multi_thread();
    let alloc = SmartAlloc::new(Default::default());
    let a = alloc.clone();
    // One task at a time: the statistics read inside the first must see only it.
    let ours = rt.block_on(async {
        framealloc_tokio::spawn(async move {
            let before = a.pool_box([1u64; 4]);
            let during = tokio::task::block_in_place(|| {
                let v = a.pool_vec_with_capacity::<u64>(16);
                let s = a.stats();
                assert_eq!((s.heaps_alive, s.task.live_bytes, s.pool.allocations), (1, 32 + 128, 0), "{s:?}");
                v
            });
            tokio::task::yield_now().await;
            let after = a.pool_box(3u64);
            before.iter().sum::<u64>() + during.capacity() as u64 + *after
        })
        .await
    });
    let a = alloc.clone();
    let plain = rt.block_on(async {
        tokio::spawn(async move {
            let task = TaskAlloc::new(&a);
            let during = tokio::task::block_in_place(|| task.alloc_box(5u64));
            tokio::task::yield_now().await;
            let after = task.alloc_box(6u64);
            *during + *after
        })
        .await
    });
    assert_eq!((ours.unwrap(), plain.unwrap()), (4 + 16 + 3, 11));
    let s = alloc.stats();
    assert_empty(&s);
    assert_eq!((s.task.allocations, s.pool.allocations), (5, 0), "{s:?}");
}

#[test]
fn join_set_tasks_with_task_heaps() {
    on_both_flavours(|alloc| async move {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..32u64 {
            let a = alloc.clone();
            set.spawn(framealloc_tokio::with_task_heap(async move {
                let mut v = a.pool_vec::<u64>();
                v.extend(0..=i);
                tokio::task::yield_now().await;
                v.iter().sum::<u64>()
            }));
        }
        // Two more that never finish: `abort_all` must free their heaps too.
        for _ in 0..2 {
            let a = alloc.clone();
            set.spawn(framealloc_tokio::with_task_heap(async move {
                let _held = a.pool_box(0u8);
                std::future::pending::<u64>().await
            }));
        }
        let mut total = 0;
        for _ in 0..32 {
            total += set.join_next().await.unwrap().unwrap();
        }
        assert_eq!(total, (0..32u64).map(|i| i * (i + 1) / 2).sum::<u64>());
        set.abort_all();
        while let Some(r) = set.join_next().await {
            assert!(r.unwrap_err().is_cancelled());
        }
        assert_eq!(alloc.stats().pool.allocations, 0);
    });
}

#[test]
fn spawn_outside_a_runtime_panics_like_tokio_and_drops_the_future() {
    let alloc = SmartAlloc::new(Default::default());
    let held = alloc.pool_box([1u8; 48]);
    assert_eq!(alloc.stats().pool.live_bytes, 48);
    let err =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| framealloc_tokio::spawn(async move { held[0] })))
            .expect_err("no runtime here");
    let msg = payload_text(&*err);
    assert!(msg.contains("Tokio 1.x runtime"), "{msg:?}");
    // The future (and the block it captured) was dropped, and no heap was made for it.
    assert_empty(&alloc.stats());
}

/// Polling a `with_task_heap` future again after it completed is the caller's bug (as with any
/// future): it panics with a message saying so, the heap released at completion stays
/// released, and the thread is not left running as the task (its `pool_*` calls go to the
/// thread's pool again).
#[test]
fn polling_a_completed_wrapper_panics_clearly() {
    use std::task::{Context, Poll, Waker};
    let alloc = SmartAlloc::new(Default::default());
    let a = alloc.clone();
    let mut fut = std::pin::pin!(framealloc_tokio::with_task_heap(async move { *a.pool_box(5u8) }));
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(5));
    let s = alloc.stats();
    assert_empty(&s);
    assert_eq!((s.task.allocations, s.pool.allocations), (1, 0), "{s:?}");
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(&mut cx)))
        .expect_err("polled after completion");
    let msg = payload_text(&*err);
    assert!(msg.contains("`WithTaskHeap` polled after it completed"), "{msg:?}");
    assert_empty(&alloc.stats());
    let here = alloc.pool_box(1u8);
    let s = alloc.stats();
    assert_eq!((s.pool.live_bytes, s.task.allocations), (1, 1), "back on the thread's pool: {s:?}");
    drop(here);
}

/// A guard sent to another task and dropped there ends its scope: the task that opened it goes
/// back to its own heap (a task of `spawn`) or to the thread's pool (a plain task) at its next
/// `pool_*` call, and what the scope made stays valid, counted as escaped.
#[test]
fn a_guard_dropped_in_another_task_ends_its_scope() {
    on_both_flavours(|alloc| async move {
        for ours in [true, false] {
            let before = alloc.stats();
            let (guard_tx, guard_rx) = oneshot::channel::<AsyncPoolGuard>();
            let (dropped_tx, dropped_rx) = oneshot::channel::<()>();
            let dropper = tokio::spawn(async move {
                drop(guard_rx.await.unwrap());
                dropped_tx.send(()).unwrap();
            });
            let a = alloc.clone();
            let opener = async move {
                let guard = AsyncPoolGuard::new(&a);
                let in_scope = a.pool_box(7u64);
                assert_eq!(guard.escaped(), 1);
                guard_tx.send(guard).unwrap();
                dropped_rx.await.unwrap();
                (in_scope, a.pool_box(8u64))
            };
            let (in_scope, after) =
                if ours { framealloc_tokio::spawn(opener).await.unwrap() } else { tokio::spawn(opener).await.unwrap() };
            dropper.await.unwrap();
            assert_eq!((*in_scope, *after), (7, 8));
            let s = alloc.stats();
            let which = if ours { "spawn" } else { "tokio::spawn" };
            assert_eq!(s.guard_escapes - before.guard_escapes, 1, "{which}: {s:?}");
            // The guard's allocation is task memory either way; the one after it is the
            // task's (spawn) or the thread pool's (a plain task has no heap of its own).
            let (task, pool) = if ours { (2, 0) } else { (1, 1) };
            assert_eq!(s.task.allocations - before.task.allocations, task, "{which}: {s:?}");
            assert_eq!(s.pool.allocations - before.pool.allocations, pool, "{which}: {s:?}");
            drop((in_scope, after));
            assert_empty(&alloc.stats());
        }
    });
}

/// A plain task's guard (in the registry) dropped on another thread while the task keeps
/// allocating: every block that landed in the scope is counted in `guard_escapes`, however
/// the drop and the allocations interleave. (The guard read its escapes before leaving the
/// registry; a `pool_box` in between went uncounted.)
#[test]
fn a_guard_dropped_on_another_thread_counts_every_escape() {
    const ROUNDS: u64 = if cfg!(miri) { 2 } else { 100 };
    let rt = multi_thread();
    let alloc = SmartAlloc::default();
    for _ in 0..ROUNDS {
        let before = alloc.stats();
        let a = alloc.clone();
        let kept = rt
            .block_on(rt.spawn(async move {
                let guard = AsyncPoolGuard::new(&a);
                let go = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let g = go.clone();
                let dropper = std::thread::spawn(move || {
                    while !g.load(std::sync::atomic::Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                    drop(guard);
                });
                let kept: Vec<_> = (0..2000u64)
                    .map(|i| {
                        if i == 100 {
                            go.store(true, std::sync::atomic::Ordering::Release);
                        }
                        a.pool_box(i)
                    })
                    .collect();
                dropper.join().unwrap();
                kept
            }))
            .unwrap();
        let s = alloc.stats();
        // In a plain task the guard's heap is task memory and the thread's pool is pool
        // memory: the boxes in the scope are the task bytes, 8 each.
        let in_scope = (s.task.live_bytes - before.task.live_bytes) / 8;
        assert!(in_scope >= 100, "{s:?}");
        assert_eq!(s.guard_escapes - before.guard_escapes, in_scope, "{s:?}");
        drop(kept);
        assert_empty(&alloc.stats());
    }
}

/// A task of `spawn` that opens a guard for each step and hands it to another task to drop:
/// the ended scopes are released when the next guard opens, not kept until the task ends
/// (the newest guard's heap is always the cached one, so no `pool_*` call looked past it).
#[test]
fn guards_dropped_in_another_task_do_not_pile_up_in_a_long_task() {
    on_both_flavours(|alloc| async move {
        // Each guard comes with a reply the dropper sends once it has dropped it, so the
        // count does not depend on when a multi-thread runtime gets round to the dropper.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(AsyncPoolGuard, tokio::sync::oneshot::Sender<()>)>();
        let dropper = tokio::spawn(async move {
            while let Some((guard, dropped)) = rx.recv().await {
                drop(guard);
                dropped.send(()).unwrap();
            }
        });
        let a = alloc.clone();
        let most = framealloc_tokio::spawn(async move {
            let mut most = 0;
            for i in 0..100u64 {
                let guard = AsyncPoolGuard::new(&a);
                drop(a.pool_box(i));
                let (dropped_tx, dropped) = tokio::sync::oneshot::channel();
                tx.send((guard, dropped_tx)).unwrap();
                dropped.await.unwrap();
                most = most.max(a.stats().heaps_alive);
            }
            most
        })
        .await
        .unwrap();
        dropper.await.unwrap();
        // The open guard's heap and at most one ended one not yet released (its drop may come
        // after the next guard opened).
        assert!(most <= 2, "ended guard heaps piled up: {most} alive at once");
        assert_empty(&alloc.stats());
    });
}
