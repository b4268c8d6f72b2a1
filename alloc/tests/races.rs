//! Real-thread races of the heap protocols (public API only). Each round checks that every
//! heap and byte came back: a double free / use-after-free shows up under Miri, a leak as a
//! non-zero `heaps_alive`/`live_bytes` (and in Miri's leak check).
mod common;
use common::scale;
use framealloc_alloc::hook::TaskContext;
use framealloc_alloc::{AsyncPoolGuard, PoolBox, PoolVec, SmartAlloc};
use std::sync::{mpsc, Arc, Barrier};

fn assert_all_back(alloc: &SmartAlloc) {
    let s = alloc.stats();
    assert_eq!(s.heaps_alive, 0, "{s:?}");
    assert_eq!((s.pool.live_bytes, s.task.live_bytes), (0, 0), "{s:?}");
}

/// The task ends (release_owner, folding `owner_handles`) while another thread drops the
/// escaped handles (remote frees + last `release_remote`).
#[test]
fn task_release_races_last_remote_drop() {
    let alloc = SmartAlloc::default();
    for round in 0..scale(1000) {
        let mut cx = TaskContext::new();
        let (boxes, v): (Vec<PoolBox<[u64; 4]>>, PoolVec<u32>) = cx.enter(|| {
            let b = (0..4).map(|i| alloc.pool_box([i; 4])).collect();
            let mut v = alloc.pool_vec();
            for i in 0..40 {
                v.push(i);
            }
            (b, v)
        });
        let go = Arc::new(Barrier::new(2));
        let g = go.clone();
        let t = std::thread::spawn(move || {
            g.wait();
            assert_eq!(v.iter().sum::<u32>(), 780);
            drop(v);
            drop(boxes);
        });
        go.wait();
        if round % 2 == 0 {
            cx.enter(|| drop(alloc.pool_box(7u8))); // owner keeps working meanwhile
        }
        drop(cx);
        t.join().unwrap();
        assert_all_back(&alloc);
    }
}

/// Remote frees onto the owner's heap while the owner keeps allocating (its refills drain
/// the remote list), then the owner ends.
#[test]
fn remote_frees_race_owner_drain() {
    let alloc = SmartAlloc::default();
    for _ in 0..scale(200) {
        let mut cx = TaskContext::new();
        let boxes: Vec<PoolBox<[u8; 48]>> = cx.enter(|| (0..64).map(|i| alloc.pool_box([i as u8; 48])).collect());
        let go = Arc::new(Barrier::new(2));
        let g = go.clone();
        let t = std::thread::spawn(move || {
            g.wait();
            for b in boxes {
                assert!(b.iter().all(|&x| x == b[0]));
                drop(b);
            }
        });
        go.wait();
        let mine: Vec<PoolBox<[u8; 48]>> = cx.enter(|| (0..400).map(|i| alloc.pool_box([i as u8; 48])).collect());
        for b in &mine {
            assert!(b.iter().all(|&x| x == b[0]));
        }
        cx.enter(|| drop(mine));
        t.join().unwrap();
        drop(cx);
        assert_all_back(&alloc);
    }
}

/// A task's guard dropped on another thread (end_guard + remote release of an owner-counted
/// handle) while the task keeps allocating and then ends.
#[test]
fn guard_ended_outside_task_races_task() {
    let alloc = SmartAlloc::default();
    for round in 0..scale(1000) {
        let mut cx = TaskContext::new();
        let (guard, kept) = cx.enter(|| {
            let g = AsyncPoolGuard::new(&alloc);
            (g, alloc.pool_box(1u64))
        });
        let go = Arc::new(Barrier::new(2));
        let g = go.clone();
        let t = std::thread::spawn(move || {
            g.wait();
            drop(guard);
            if round % 2 == 0 {
                drop(kept);
                None
            } else {
                Some(kept)
            }
        });
        go.wait();
        cx.enter(|| {
            for i in 0..8u64 {
                let b = alloc.pool_box(i);
                assert_eq!(*b, i);
            }
        });
        if round % 3 == 0 {
            drop(cx);
            drop(t.join().unwrap());
        } else {
            let kept = t.join().unwrap();
            cx.enter(|| drop(kept)); // dropped by the (former) owner task
            drop(cx);
        }
        assert_all_back(&alloc);
    }
    assert_eq!(alloc.stats().heaps_alive, 0);
}

/// A registry guard (plain thread, owner NOBODY) dropped on another thread while its
/// identity's `pool_*` calls allocate in its heap under the registry shard's lock, with the
/// owner's paths; the boxes are then dropped on a third thread.
#[test]
fn registry_guard_dropped_while_looked_up() {
    let alloc = SmartAlloc::default();
    for _ in 0..scale(500) {
        let guard = AsyncPoolGuard::new(&alloc);
        let go = Arc::new(Barrier::new(2));
        let g = go.clone();
        let t = std::thread::spawn(move || {
            g.wait();
            drop(guard);
        });
        go.wait();
        let kept: Vec<PoolBox<u64>> = (0..16).map(|i| alloc.pool_box(i)).collect();
        t.join().unwrap();
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            for b in rx {
                drop::<PoolBox<u64>>(b);
            }
        });
        for (i, b) in kept.into_iter().enumerate() {
            assert_eq!(*b, i as u64);
            tx.send(b).unwrap();
        }
        drop(tx);
        t.join().unwrap();
        assert_all_back(&alloc);
    }
}

/// Heaps released on one thread (more than it can park: the surplus goes to the shared
/// list) and adopted by tasks on another, while escaped handles of other tasks drop there.
#[test]
fn parked_heaps_adopted_across_threads() {
    let alloc = SmartAlloc::default();
    let n = scale(400).max(20);
    for _ in 0..if cfg!(miri) { 1 } else { 5 } {
        let (tx, rx) = mpsc::channel::<PoolBox<[u64; 2]>>();
        let go = Arc::new(Barrier::new(2));
        let (a, g) = (alloc.clone(), go.clone());
        let adopter = std::thread::spawn(move || {
            g.wait();
            for i in 0..n as u64 {
                let mut cx = TaskContext::new();
                cx.enter(|| {
                    let b = a.pool_box([i; 2]);
                    assert_eq!(*b, [i; 2]);
                });
                if let Ok(b) = rx.try_recv() {
                    drop(b);
                }
            }
            for b in rx {
                drop(b);
            }
        });
        let mut tasks: Vec<TaskContext> = (0..n).map(|_| TaskContext::new()).collect();
        for (i, t) in tasks.iter_mut().enumerate() {
            let b = t.enter(|| alloc.pool_box([i as u64; 2]));
            if i % 5 == 0 {
                tx.send(b).unwrap();
            }
        }
        go.wait();
        drop(tasks);
        drop(tx);
        adopter.join().unwrap();
        assert_all_back(&alloc);
    }
}

/// The last `SmartAlloc` clone drops on one thread while another releases task heaps (which
/// park: `park` upgrades the weak handle and may end up dropping the last clone itself) and
/// escaped handles cross between them. Checked by Miri's leak check and, natively, by the
/// threads finishing.
#[test]
fn last_clone_drops_while_heaps_park() {
    for _ in 0..scale(200) {
        let alloc = SmartAlloc::default();
        let (tx, rx) = mpsc::channel::<PoolBox<u64>>();
        let go = Arc::new(Barrier::new(3));
        let workers: Vec<_> = (0..2u64)
            .map(|w| {
                let (a, go, tx) = (alloc.clone(), go.clone(), tx.clone());
                std::thread::spawn(move || {
                    let mut tasks: Vec<TaskContext> = (0..4).map(|_| TaskContext::new()).collect();
                    for (i, t) in tasks.iter_mut().enumerate() {
                        let b = t.enter(|| a.pool_box(w * 10 + i as u64));
                        if i % 2 == 0 {
                            let _ = tx.send(b);
                        }
                    }
                    go.wait();
                    drop(a);
                    drop(tasks); // parks (or destroys) after the clones may be gone
                })
            })
            .collect();
        drop(tx);
        go.wait();
        drop(alloc);
        let mut n = 0;
        for b in rx {
            n += *b;
        }
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(n, 24); // boxes 0, 2 of worker 0 and 10, 12 of worker 1
    }
}
