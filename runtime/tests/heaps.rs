//! Every task's heap: used by `pool_*` and `TaskAlloc` inside it, released before the output
//! is published, FA701 inside tasks and the `block_on` root, escapes, migration.

mod common;

use common::{payload_message, runtime, scaled, wait_until, Gate};
use framealloc_alloc::{PoolBox, SmartAlloc, TaskAlloc};

#[test]
fn pool_calls_in_a_task_use_its_heap_released_before_the_join_sees_the_output() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    let a = alloc.clone();
    let (live_inside, out) = rt
        .block_on(rt.spawn(async move {
            let v = a.pool_vec_with_capacity::<u64>(32);
            let b = a.pool_box([3u8; 100]);
            let live = a.stats().task.live_bytes;
            (live, v.capacity() + b.len())
        }))
        .unwrap();
    assert_eq!(live_inside, 32 * 8 + 100, "both in the task's heap");
    assert_eq!(out, 132);
    // Read right after the join: the heap is already gone.
    let s = alloc.stats();
    assert_eq!((s.heaps_alive, s.task.live_bytes, s.pool.live_bytes), (0, 0, 0), "{s:?}");
    assert_eq!(s.task.allocations, 2);
}

#[test]
fn a_task_alloc_made_in_a_task_belongs_to_it() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    let a = alloc.clone();
    let sum = rt
        .block_on(rt.spawn(async move {
            let task = TaskAlloc::new(&a);
            let mut v = task.alloc_vec::<u32>();
            for i in 0..100 {
                v.push(i);
                if i % 25 == 0 {
                    framealloc_runtime::yield_now().await; // may resume on the other worker
                }
            }
            v.iter().sum::<u32>()
        }))
        .unwrap();
    assert_eq!(sum, 4950);
    assert_eq!(alloc.stats().heaps_alive, 0);
}

#[test]
fn fa701_inside_a_task_and_inside_the_block_on_root() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(1, &alloc);
    let a = alloc.clone();
    let err = rt.block_on(rt.spawn(async move { *a.frame_box(1u8) })).unwrap_err();
    let msg = payload_message(&*err.into_panic());
    assert!(msg.starts_with("FA701:"), "{msg}");
    let msg = common::panic_message(|| {
        rt.block_on(async {
            alloc.begin_frame();
        })
    });
    assert!(msg.starts_with("FA701:"), "{msg}");
    // Between ticks, on the main thread, frame memory is fine.
    alloc.begin_frame();
    assert_eq!(*alloc.frame_box(7u8), 7);
    alloc.end_frame();
}

#[test]
fn the_block_on_root_has_a_heap_of_its_own() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(1, &alloc);
    let live = rt.block_on(async {
        let b = alloc.pool_box([0u8; 48]);
        let live = alloc.stats().task.live_bytes;
        drop(b);
        live
    });
    assert_eq!(live, 48, "counted as task memory: the root is a task");
    assert_eq!(alloc.stats().heaps_alive, 0);
}

#[test]
fn many_tasks_spawned_and_joined_leave_nothing_behind() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    let n = scaled(100_000, 200);
    let a = alloc.clone();
    let total = rt.block_on(async move {
        let mut hs = Vec::with_capacity(n);
        for i in 0..n {
            let a = a.clone();
            hs.push(framealloc_runtime::spawn(async move {
                let b = a.pool_box(i as u64);
                let mut v = a.pool_vec::<u8>();
                v.extend((0..(i % 64) as u8).map(|x| x ^ 1));
                if i % 7 == 0 {
                    framealloc_runtime::yield_now().await;
                }
                *b + v.len() as u64
            }));
        }
        let mut t = 0u64;
        for h in hs {
            t += h.await.unwrap();
        }
        t
    });
    let expected: u64 = (0..n as u64).map(|i| i + i % 64).sum();
    assert_eq!(total, expected);
    let s = alloc.stats();
    assert_eq!((s.heaps_alive, s.task.live_bytes), (0, 0), "{s:?}");
    assert!(s.task.allocations >= n as u64);
    let m = rt.metrics();
    assert_eq!((m.tasks_alive, m.tasks_spawned), (0, n as u64));
}

#[test]
fn a_task_migrates_between_workers_and_escapes_a_pool_box() {
    // Which worker takes a task woken from outside is up to the scheduler: run the scenario
    // until the task has run on both workers (nearly always the first time).
    let attempts = scaled(20, 1);
    let migrated = (0..attempts).any(|_| migrate_and_escape() > 1);
    assert!(migrated || cfg!(miri), "the task never ran on a second worker in {attempts} attempts");
}

/// Returns how many worker threads the task ran on.
fn migrate_and_escape() -> usize {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    let rounds = scaled(20, 3);
    let gates: Vec<Gate> = (0..rounds).map(|_| Gate::new()).collect();
    let (a, gs) = (alloc.clone(), gates.clone());
    let h = rt.spawn(async move {
        let mut kept: Vec<PoolBox<[u64; 4]>> = Vec::new();
        let mut threads = std::collections::HashSet::new();
        for (i, g) in gs.iter().enumerate() {
            kept.push(a.pool_box([i as u64; 4]));
            threads.insert(std::thread::current().id());
            g.wait().await; // woken from a foreign thread: resumes on whichever worker
                            // Frees from the task after migrating take its own heap's path.
            if i % 2 == 1 {
                kept.remove(0);
            }
        }
        (a.pool_box(kept.iter().map(|b| b[0]).sum::<u64>()), threads.len())
    });
    // Open the gates one by one from a plain thread, while other tasks keep both workers busy.
    let busy: Vec<_> = (0..4)
        .map(|_| {
            rt.spawn(async {
                for _ in 0..scaled(200, 5) {
                    framealloc_runtime::yield_now().await;
                }
            })
        })
        .collect();
    for g in &gates {
        wait_until("the task waits at its gate", 10, || g.has_waiter());
        g.open();
    }
    let (escaped, threads) = rt.block_on(h).unwrap();
    for b in busy {
        rt.block_on(b).unwrap();
    }
    // The escaped box is valid after its task ended, and keeps its heap until it drops.
    let expected: u64 = (0..rounds as u64).filter(|i| *i >= (rounds as u64) / 2).sum();
    assert_eq!(*escaped, expected);
    assert_eq!(alloc.stats().heaps_alive, 1);
    assert_eq!(alloc.stats().task.live_bytes, 8);
    drop(escaped); // a remote free, from the main thread
    let s = alloc.stats();
    assert_eq!((s.heaps_alive, s.task.live_bytes), (0, 0), "{s:?}");
    threads
}

#[test]
fn spawn_blocking_jobs_have_heaps_too() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(1, &alloc);
    let a = alloc.clone();
    let live = rt.block_on(rt.spawn_blocking(move || {
        let _b = a.pool_box([1u32; 10]);
        a.stats().task.live_bytes
    }));
    assert_eq!(live.unwrap(), 40);
    assert_eq!(alloc.stats().heaps_alive, 0);
}
