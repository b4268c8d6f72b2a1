//! Pools, task heaps behind the executor hook, escapes and guards.

mod common;

use common::*;
use framealloc_alloc::hook::TaskContext;
use framealloc_alloc::{AllocConfig, AsyncPoolGuard, PoolBox, PoolVec, SmartAlloc, TaskAlloc};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[test]
fn thread_pool_boxes_and_vecs() {
    let alloc = SmartAlloc::default();
    let a = alloc.pool_box(5u32);
    let d = alloc.pool_alloc::<u64>();
    let mut v = alloc.pool_vec::<u16>();
    v.extend([1u16, 2, 3]);
    v.extend_from_slice(&[4]);
    assert_eq!((*a, *d, &*v), (5, 0, &[1u16, 2, 3, 4][..]));
    let s = alloc.stats();
    assert_eq!(s.pool.live_bytes, 4 + 8 + 2 * v.capacity() as u64);
    assert_eq!(s.task.live_bytes, 0);
    assert_eq!(v.into_inner(), vec![1, 2, 3, 4]);
    assert_eq!(PoolBox::into_inner(a), 5);
    drop(d);
    assert_eq!(alloc.stats().pool.live_bytes, 0);
}

#[test]
fn pool_boxes_free_from_any_thread() {
    let alloc = SmartAlloc::default();
    let boxes: Vec<PoolBox<[u64; 4]>> = (0..scale(1000) as u64).map(|i| alloc.pool_box([i; 4])).collect();
    let vec: PoolVec<u8> = {
        let mut v = alloc.pool_vec();
        v.extend(0..200u8);
        v
    };
    let sum = std::thread::spawn(move || {
        let s: u64 = boxes.iter().map(|b| b[0]).sum();
        let mut vec = vec;
        vec.push(200); // grows from a non-owner thread
        assert_eq!(vec.len(), 201);
        drop(vec);
        s
    })
    .join()
    .unwrap();
    assert_eq!(sum as usize, (0..scale(1000)).sum::<usize>());
    assert_eq!(alloc.stats().pool.live_bytes, 0);
    // The owner reuses what the other thread freed.
    let again: Vec<_> = (0..scale(1000) as u64).map(|i| alloc.pool_box([i; 4])).collect();
    assert_eq!(again[3][2], 3);
}

#[test]
fn the_high_water_mark_counts_blocks_freed_on_other_threads() {
    // The peak was recorded only at the owner's frees: blocks that all went to other
    // threads to be freed left the high-water mark at zero.
    let alloc = SmartAlloc::default();
    let b = alloc.pool_box([0u8; 100]);
    std::thread::spawn(move || drop(b)).join().unwrap();
    let s = alloc.stats().pool;
    assert_eq!((s.live_bytes, s.high_water_bytes, s.allocations), (0, 100, 1));
}

#[test]
fn escaped_pool_box_outlives_its_thread() {
    let alloc = SmartAlloc::default();
    let a2 = alloc.clone();
    let escaped = std::thread::spawn(move || {
        let keep = a2.pool_box(String::from("from a dead thread"));
        let _gone = a2.pool_box(1u8);
        keep
    })
    .join()
    .unwrap();
    // The thread's pool heap is released but kept for the escaped box.
    let s = alloc.stats();
    assert!(s.quarantined_chunks >= 1);
    assert_eq!(*escaped, "from a dead thread");
    drop(escaped);
    let s = alloc.stats();
    assert_eq!((s.quarantined_chunks, s.pool.live_bytes), (0, 0));
}

#[test]
fn pool_inside_a_task_uses_the_task_heap() {
    let alloc = SmartAlloc::default();
    let mut cx = TaskContext::new();
    let (escaped, addr_reused) = cx.enter(|| {
        let a = alloc.pool_box(1u64);
        let addr = &*a as *const u64 as usize;
        drop(a);
        let b = alloc.pool_box(2u64);
        let reused = &*b as *const u64 as usize == addr;
        let mut v = alloc.pool_vec::<u32>();
        v.push(7);
        assert_eq!(alloc.stats().task.live_bytes, 8 + 4 * v.capacity() as u64);
        assert_eq!(alloc.stats().pool.live_bytes, 0);
        (b, reused)
    });
    assert!(addr_reused);
    assert!(cx.live_bytes() > 0);
    assert_eq!(alloc.stats().heaps_alive, 1);
    cx.release();
    // The escaped box keeps the heap alive and valid.
    let s = alloc.stats();
    assert_eq!((s.heaps_alive, *escaped), (1, 2));
    assert!(s.quarantined_chunks >= 1);
    drop(escaped);
    let s = alloc.stats();
    assert_eq!((s.heaps_alive, s.quarantined_chunks, s.task.live_bytes), (0, 0, 0));
}

#[test]
fn task_moving_between_threads_keeps_its_heap() {
    let alloc = SmartAlloc::default();
    let mut cx = TaskContext::new();
    let mut held = Vec::new();
    for round in 0..4u64 {
        // Each round the "executor" polls the task on a different thread.
        let (cx2, held2) = std::thread::scope(|s| {
            s.spawn(|| {
                let mut cx = cx;
                let mut held = held;
                cx.enter(|| {
                    held.push(alloc.pool_box(round));
                    if round > 0 {
                        held.remove(0); // freed by the owner on another thread than it was made
                    }
                });
                (cx, held)
            })
            .join()
            .unwrap()
        });
        cx = cx2;
        held = held2;
    }
    assert_eq!(held.iter().map(|b| **b).collect::<Vec<_>>(), [3]);
    drop(held);
    assert_eq!(cx.live_bytes(), 0);
    drop(cx);
    assert_eq!(alloc.stats().heaps_alive, 0);
}

#[test]
fn dropping_the_task_context_frees_the_heap_even_after_a_panic() {
    let alloc = SmartAlloc::default();
    let mut cx = TaskContext::new();
    let r = catch_unwind(AssertUnwindSafe(|| {
        cx.enter(|| {
            let _a = alloc.pool_box([1u8; 64]);
            let _b = alloc.pool_vec::<u8>();
            panic!("task failed");
        })
    }));
    assert!(r.is_err());
    assert_eq!(alloc.stats().task.live_bytes, 0, "unwinding dropped the task's values");
    drop(cx);
    assert_eq!(alloc.stats().heaps_alive, 0);
}

#[test]
fn guard_tracks_scope_and_escapes() {
    let alloc = SmartAlloc::default();
    let guard = AsyncPoolGuard::new(&alloc);
    let a = alloc.pool_box(1u32);
    let inner = AsyncPoolGuard::new(&alloc);
    let b = alloc.pool_box(2u32);
    let c = alloc.pool_vec::<u8>();
    assert_eq!((guard.escaped(), inner.escaped()), (1, 2));
    drop(b);
    assert_eq!(inner.escaped(), 1);
    drop(inner); // `c` escaped the inner scope
    assert_eq!(alloc.stats().guard_escapes, 1);
    let d = alloc.pool_box(4u32); // back in the outer scope
    assert_eq!(guard.escaped(), 2);
    drop((a, c, d));
    assert_eq!(guard.escaped(), 0);
    drop(guard);
    assert_eq!(alloc.stats().guard_escapes, 1);
    let s = alloc.stats();
    assert_eq!((s.pool.live_bytes, s.task.live_bytes), (0, 0));
}

#[test]
fn guard_inside_a_task_and_moved_out() {
    let alloc = SmartAlloc::default();
    let mut cx = TaskContext::new();
    let (guard, kept) = cx.enter(|| {
        let guard = AsyncPoolGuard::new(&alloc);
        let _tmp = alloc.pool_box(1u8);
        let kept = alloc.pool_box(2u8);
        (guard, kept)
    });
    assert_eq!(guard.escaped(), 1);
    // Dropped outside the task, on another thread.
    std::thread::spawn(move || drop(guard)).join().unwrap();
    assert_eq!(alloc.stats().guard_escapes, 1);
    assert_eq!(alloc.stats().heaps_alive, 1, "the guard's heap, kept by `kept`");
    cx.enter(|| {
        // The ended scope no longer collects allocations: the task gets its own heap.
        let x = alloc.pool_box(3u8);
        assert_eq!(*x, 3);
        assert_eq!(alloc.stats().heaps_alive, 2);
    });
    drop(kept);
    drop(cx);
    assert_eq!(alloc.stats().heaps_alive, 0);
}

#[test]
fn guard_heap_follows_the_identity_not_the_thread() {
    // Outside any task the guard heap is keyed by the thread: another thread does not use it.
    let alloc = SmartAlloc::default();
    let guard = AsyncPoolGuard::new(&alloc);
    let other = std::thread::scope(|s| s.spawn(|| alloc.pool_box(1u8)).join().unwrap());
    assert_eq!(guard.escaped(), 0);
    let mine = alloc.pool_box(2u8);
    assert_eq!(guard.escaped(), 1);
    drop((other, mine));
    drop(guard);
}

/// Outside task heaps a guard's heap is allocated in under its registry lock: every kind of
/// block (a class block, a framed over-aligned one, a large one, a vector's buffer) lands in
/// the scope, counted once, and a failed allocation counts nothing.
#[test]
fn a_registered_guard_collects_every_kind_of_block() {
    let alloc = SmartAlloc::new(AllocConfig::default().with_total_budget(128 << 10));
    let guard = AsyncPoolGuard::new(&alloc);
    let small = alloc.pool_box(1u64);
    let page = alloc.pool_box(Page([5; 16]));
    let large = alloc.pool_box([3u8; 8192]);
    let buffer = alloc.pool_vec_with_capacity::<u32>(16);
    assert_eq!(guard.escaped(), 4);
    assert_eq!(&*page as *const Page as usize % 4096, 0);
    assert_eq!((*small, page.0[15], large[8191], buffer.capacity()), (1, 5, 3, 16));
    let e = alloc.try_pool_box([0u8; 200_000]).map(drop).unwrap_err();
    assert!(e.is_total_budget(), "{e}");
    let e = alloc.try_pool_vec_with_capacity::<u8>(200_000).map(drop).unwrap_err();
    assert!(e.is_total_budget(), "{e}");
    assert_eq!(guard.escaped(), 4, "a failed allocation counts no handle");
    let live = 8 + 4096 + 8192 + 64;
    assert_eq!(alloc.stats().pool.live_bytes, live);
    drop((small, page, large, buffer));
    assert_eq!(guard.escaped(), 0);
    drop(guard);
    let s = alloc.stats();
    assert_eq!((s.pool.live_bytes, s.guard_escapes, s.heaps_alive), (0, 0, 0));
    assert_eq!((s.pool.high_water_bytes, s.pool.allocations), (live, 4), "counted like any pool allocation");
}

/// A guard sent to another thread and dropped there while its identity keeps allocating in
/// its scope: each allocation lands in the scope or after it, never in a released heap (Miri
/// checks the scope's heap for races between the two).
#[test]
fn a_registered_guard_dropped_elsewhere_while_its_identity_allocates() {
    let alloc = SmartAlloc::default();
    let mut guard = Some(AsyncPoolGuard::new(&alloc));
    let (tx, rx) = std::sync::mpsc::channel();
    let dropper = std::thread::spawn(move || drop(rx.recv().unwrap()));
    let mut kept = Vec::new();
    for i in 0..scale(2_000) {
        if i == scale(2_000) / 2 {
            tx.send(guard.take()).unwrap(); // the scope ends at some point from now on
        }
        kept.push(alloc.pool_box(i as u64));
        if i % 3 == 0 {
            kept.pop();
        }
    }
    dropper.join().unwrap();
    assert_eq!(kept.len(), scale(2_000) - scale(2_000).div_ceil(3));
    assert!(kept.iter().all(|b| **b % 3 != 0), "every kept value is intact");
    let escaped = alloc.stats().guard_escapes;
    assert!(escaped >= 1, "the scope had live blocks when it ended: {escaped}");
    drop(kept);
    let s = alloc.stats();
    assert_eq!((s.pool.live_bytes, s.task.live_bytes), (0, 0));
}

#[test]
fn drops_and_zero_sized_in_pools() {
    let hits = Arc::new(AtomicUsize::new(0));
    let alloc = SmartAlloc::default();
    let z = alloc.pool_box(());
    let mut v = alloc.pool_vec();
    for i in 0..10 {
        v.push(DropCounter::new(&hits, i));
    }
    let b = alloc.pool_box(DropCounter::new(&hits, 99));
    let page = alloc.pool_box(Page([4; 16]));
    assert_eq!(&*page as *const Page as usize % 4096, 0);
    drop((z, v, b, page));
    assert_eq!(hits.load(Ordering::SeqCst), 11);
    let p = alloc.pool_box(PanicOnDrop);
    assert!(catch_unwind(AssertUnwindSafe(move || drop(p))).is_err());
    assert_eq!(alloc.stats().pool.live_bytes, 0);
}

#[test]
fn task_heap_budget_applies_to_pool_in_tasks() {
    let alloc = SmartAlloc::new(AllocConfig::default().with_task_heap_budget(32 * 1024));
    let mut cx = TaskContext::new();
    let id = cx.id();
    let msg = cx.enter(|| {
        let mut kept = Vec::new();
        let msg = loop {
            match alloc.try_pool_box([0u8; 2048]) {
                Ok(b) => kept.push(b),
                Err(e) => break e.to_string(),
            }
        };
        let e = alloc.try_pool_alloc::<[[u64; 32]; 8]>().map(drop).unwrap_err();
        assert!(e.is_task_budget() && e.requested() == 2048, "the value, not its block: {e}");
        assert_eq!(*alloc.try_pool_alloc::<u8>().expect("one byte still fits"), 0);
        msg
    });
    assert!(msg.contains("task heap budget") && msg.contains(&format!("task {id}")), "{msg}");
    // Outside tasks the thread's pool is not a task heap: the task-heap budget, below one
    // chunk here, used to refuse even its first allocation.
    let alloc = SmartAlloc::new(AllocConfig::default().with_task_heap_budget(100));
    assert_eq!(*alloc.try_pool_box(7u64).expect("the thread's pool has no task budget"), 7);
    let guard = framealloc_alloc::AsyncPoolGuard::new(&alloc);
    assert_eq!(*alloc.try_pool_box(8u64).expect("nor a guard's scope on a plain thread"), 8);
    drop(guard);
}

#[test]
fn task_alloc_inside_a_task_uses_the_task_heap() {
    let alloc = SmartAlloc::default();
    let mut cx = TaskContext::new();
    cx.enter(|| {
        let t = TaskAlloc::new(&alloc);
        let p = alloc.pool_box(1u64);
        let b = t.alloc_box(2u64);
        assert_eq!(alloc.stats().heaps_alive, 1, "one heap: the task's");
        assert_eq!(t.live_bytes(), 16, "the task's `pool_box` and the `TaskBox`");
        drop((p, b));
    });
    assert_eq!(alloc.stats().heaps_alive, 1);
    cx.release();
    assert_eq!(alloc.stats().heaps_alive, 0);
}

#[test]
fn a_task_alloc_that_leaves_its_task_keeps_the_heap_until_it_drops() {
    let alloc = SmartAlloc::default();
    let mut cx = TaskContext::new();
    let t = cx.enter(|| TaskAlloc::new(&alloc));
    cx.release();
    assert_eq!(alloc.stats().heaps_alive, 1, "the TaskAlloc keeps the task's heap");
    // On another thread, after the task ended: the slow paths, still sound.
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut v = t.alloc_vec::<u32>();
            v.extend(0..100);
            let b = t.alloc_box(7u64);
            assert_eq!((v.iter().sum::<u32>(), *b), (4950, 7));
        });
    });
    assert_eq!(t.live_bytes(), 0);
    drop(t);
    let s = alloc.stats();
    assert_eq!((s.heaps_alive, s.task.live_bytes, s.quarantined_chunks), (0, 0, 0), "{s:?}");
}

#[test]
fn a_task_using_several_allocators_gets_a_heap_for_each() {
    let (a, b, c) = (SmartAlloc::default(), SmartAlloc::default(), SmartAlloc::default());
    let mut cx = TaskContext::new();
    let kept = cx.enter(|| {
        let x = a.pool_box(1u32);
        let y = b.pool_box(2u32);
        let z = c.pool_box(3u32);
        let y2 = b.pool_box(4u32);
        assert_eq!([a.stats().task.live_bytes, b.stats().task.live_bytes, c.stats().task.live_bytes], [4, 8, 4]);
        drop((x, y2));
        (y, z)
    });
    assert_eq!(cx.live_bytes(), 8);
    drop(cx);
    assert_eq!((*kept.0, *kept.1), (2, 3));
    assert_eq!([a.stats().heaps_alive, b.stats().heaps_alive, c.stats().heaps_alive], [0, 1, 1]);
    drop(kept);
    assert_eq!(b.stats().heaps_alive + c.stats().heaps_alive, 0);
}

#[test]
fn a_pool_box_is_one_pointer() {
    assert_eq!(std::mem::size_of::<PoolBox<u64>>(), std::mem::size_of::<usize>());
    assert_eq!(std::mem::size_of::<PoolBox<[u8; 4000]>>(), std::mem::size_of::<usize>());
    assert_eq!(std::mem::size_of::<Option<PoolBox<u8>>>(), std::mem::size_of::<usize>());
}

/// Every way a box finds its heap from its address: class blocks in the first and in later
/// granules of a chunk (large chunks), values without a class (large, over-aligned) behind
/// their prefix; freed by the owner and by other threads, inside a task and outside.
#[test]
fn boxes_find_their_heap_from_any_thread() {
    let n = if cfg!(miri) { 40 } else { 400 };
    let alloc = SmartAlloc::new(AllocConfig::default().with_task_chunk_bytes(64 * 1024));
    let mut cx = TaskContext::new();
    let made = |alloc: &SmartAlloc| {
        let small: Vec<PoolBox<[u64; 32]>> = (0..n).map(|i| alloc.pool_box([i as u64; 32])).collect();
        let large: Vec<PoolBox<[u8; 3000]>> = (0..4).map(|i| alloc.pool_box([i as u8; 3000])).collect();
        let aligned: Vec<PoolBox<Page>> = (0..4).map(|i| alloc.pool_box(Page([i as u8; 16]))).collect();
        (small, large, aligned)
    };
    for in_task in [false, true] {
        let (mut small, mut large, mut aligned) = if in_task { cx.enter(|| made(&alloc)) } else { made(&alloc) };
        for (i, b) in small.iter().enumerate() {
            assert_eq!(b[31], i as u64);
        }
        assert!(aligned.iter().all(|p| &**p as *const Page as usize % 4096 == 0));
        // Half freed here (by the owner or, for the task's boxes, by a non-owner: we are not
        // in the task now), half on another thread.
        let theirs = (small.split_off(n / 2), large.split_off(2), aligned.split_off(2));
        std::thread::spawn(move || drop(theirs)).join().unwrap();
        if in_task {
            cx.enter(|| drop((small, large, aligned)));
        } else {
            drop((small, large, aligned));
        }
        let s = alloc.stats();
        assert_eq!((s.pool.live_bytes, s.task.live_bytes), (0, 0), "in_task: {in_task}");
    }
    drop(cx);
    assert_eq!(alloc.stats().heaps_alive, 0);
}

#[test]
fn a_pool_vec_is_three_words() {
    assert_eq!(std::mem::size_of::<PoolVec<u8>>(), 3 * std::mem::size_of::<usize>());
}

/// A vector grows from class buffers into framed ones (above 1 KiB) and back through
/// `into_inner`; over-aligned and zero-sized elements; frees on any thread, in and out of a
/// task; elements dropped exactly once, also when one's drop panics.
#[test]
fn pool_vecs_grow_move_and_drop() {
    let n = if cfg!(miri) { 300 } else { 3000 };
    let alloc = SmartAlloc::default();
    let mut cx = TaskContext::new();
    for in_task in [false, true] {
        let make = || {
            let mut bytes = alloc.pool_vec::<u8>();
            let mut words = alloc.pool_vec::<u64>();
            for i in 0..n {
                bytes.push(i as u8);
                words.push(i as u64);
            }
            let mut pages = alloc.pool_vec::<Page>();
            pages.extend((0..3).map(|i| Page([i; 16])));
            let mut units = alloc.pool_vec::<()>();
            units.extend(std::iter::repeat_n((), 1000));
            (bytes, words, pages, units)
        };
        let (bytes, words, pages, units) = if in_task { cx.enter(make) } else { make() };
        assert!(bytes.capacity() >= n && words.capacity() >= n);
        assert!(bytes.iter().enumerate().all(|(i, b)| *b == i as u8));
        assert!(pages.iter().all(|p| p as *const Page as usize % 4096 == 0));
        assert_eq!((units.len(), units.capacity()), (1000, usize::MAX));
        let words = std::thread::spawn(move || {
            assert_eq!(words.iter().sum::<u64>(), (n as u64 - 1) * n as u64 / 2);
            drop(pages);
            words
        })
        .join()
        .unwrap();
        assert_eq!(words.into_inner().len(), n);
        drop((bytes, units));
        let s = alloc.stats();
        assert_eq!((s.pool.live_bytes, s.task.live_bytes), (0, 0), "in_task: {in_task}");
    }

    let hits = Arc::new(AtomicUsize::new(0));
    let mut v = alloc.pool_vec();
    v.push(DropCounter::new(&hits, 1));
    v.push(DropCounter::new(&hits, 2));
    v.truncate(1);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(v.pop().map(|d| d.value), Some(1));
    assert_eq!((v.pop().is_none(), hits.load(Ordering::SeqCst)), (true, 2));
    let mut p = alloc.pool_vec::<Result<PanicOnDrop, DropCounter>>();
    p.push(Err(DropCounter::new(&hits, 3)));
    p.push(Ok(PanicOnDrop));
    p.push(Err(DropCounter::new(&hits, 4)));
    assert!(catch_unwind(AssertUnwindSafe(move || drop(p))).is_err());
    assert_eq!(hits.load(Ordering::SeqCst), 4, "the elements after the panicking one dropped too");
    drop((v, cx));
    let s = alloc.stats();
    assert_eq!((s.pool.live_bytes, s.heaps_alive), (0, 0));
}

/// A vector with no buffer (its pointer word holds its heap) still gives empty slices whose
/// pointer is non-null and aligned for its element, whatever the alignment, in and out of a
/// task; `into_inner`, `pop`, `truncate` and dropping it touch no element.
#[test]
fn empty_pool_vecs_give_aligned_empty_slices() {
    fn check<T>(alloc: &SmartAlloc, make: fn() -> T) {
        let mut v = alloc.pool_vec::<T>();
        let align = std::mem::align_of::<T>();
        assert!(v.is_empty() && v.iter().next().is_none());
        assert_eq!(v.as_ptr() as usize % align, 0, "{}", std::any::type_name::<T>());
        assert_eq!(v.as_mut_slice().as_mut_ptr() as usize % align, 0);
        assert!(v.pop().is_none());
        v.truncate(0);
        v.push(make());
        assert_eq!((v.len(), v.as_ptr() as usize % align), (1, 0));
        assert!(alloc.pool_vec::<T>().into_inner().is_empty());
    }
    #[repr(align(8))]
    struct ZeroSizedAligned;
    let alloc = SmartAlloc::default();
    let all = |alloc: &SmartAlloc| {
        check(alloc, || 1u8);
        check(alloc, || 1u64);
        check(alloc, || 1u128);
        check(alloc, || Page([1; 16]));
        check(alloc, || ());
        check(alloc, || ZeroSizedAligned);
        check(alloc, || [0u64; 0]);
    };
    all(&alloc);
    let mut cx = TaskContext::new();
    cx.enter(|| all(&alloc));
    drop(cx);
    let s = alloc.stats();
    assert_eq!((s.pool.live_bytes, s.task.live_bytes, s.heaps_alive), (0, 0, 0));
}

#[test]
fn pool_vec_growth_errors_instead_of_aborting() {
    let alloc = SmartAlloc::new(AllocConfig::default().with_task_heap_budget(64 * 1024));
    let mut cx = TaskContext::new();
    cx.enter(|| {
        let mut v = alloc.pool_vec::<u8>();
        assert!(v.try_reserve(16 * 1024).is_ok());
        let e = v.try_reserve(1 << 20).unwrap_err();
        assert!(e.is_budget(), "{e}");
        let e = v.try_reserve(usize::MAX).unwrap_err();
        assert!(e.is_capacity_overflow(), "{e}");
        v.push(1);
        assert_eq!(v.try_push(2), Ok(()));
        assert_eq!(&v[..], &[1, 2]);
    });
}

/// Values and buffers that carry their heap in front of them count only their own bytes.
#[test]
fn framed_allocations_count_their_own_bytes() {
    let alloc = SmartAlloc::default();
    let big = alloc.pool_box([1u8; 3000]);
    let page = alloc.pool_box(Page([2; 16]));
    let mut buf = alloc.pool_vec::<u8>();
    buf.reserve(2000);
    let page_size = std::mem::size_of::<Page>() as u64; // 4096: the size rounds up to the alignment
    assert_eq!(alloc.stats().pool.live_bytes, 3000 + page_size + 2000);
    let moved = std::thread::spawn(move || {
        drop(big); // freed by another thread
        buf
    })
    .join()
    .unwrap();
    assert_eq!(alloc.stats().pool.live_bytes, page_size + 2000);
    drop((page, moved));
    assert_eq!(alloc.stats().pool.live_bytes, 0);
}

/// `pool_vec_with_capacity` gives exactly the capacity asked for, on every path: the task
/// heap's class fast path, a framed buffer, a thread's pool, zero, a zero-sized `T`, and errors.
#[test]
fn pool_vecs_with_capacity_on_every_path() {
    let alloc = SmartAlloc::new(AllocConfig::default().with_task_heap_budget(64 * 1024));
    let mut cx = TaskContext::new();
    let escaped = cx.enter(|| {
        let mut small = alloc.pool_vec_with_capacity::<u32>(100); // 400 B: a class block
        let mut large = alloc.pool_vec_with_capacity::<u8>(5000); // framed
        assert_eq!((small.capacity(), large.capacity()), (100, 5000));
        small.extend(0..100);
        large.push(9);
        assert_eq!(alloc.stats().task.live_bytes, 400 + 5000);
        small.push(100); // grows past its first buffer
        assert_eq!(small.iter().sum::<u32>(), 5050);
        let none = alloc.pool_vec_with_capacity::<u64>(0);
        let units = alloc.pool_vec_with_capacity::<()>(7);
        assert_eq!((none.capacity(), units.capacity()), (0, usize::MAX));
        let e = alloc.try_pool_vec_with_capacity::<u8>(1 << 20).unwrap_err();
        assert!(e.is_budget(), "{e}");
        let e = alloc.try_pool_vec_with_capacity::<u64>(usize::MAX / 4).unwrap_err();
        assert!(e.is_capacity_overflow(), "{e}");
        drop(large);
        small
    });
    cx.release();
    assert_eq!(alloc.stats().heaps_alive, 1, "the escaped vector keeps its heap");
    assert_eq!(escaped.len(), 101);
    drop(escaped);
    let s = alloc.stats();
    assert_eq!((s.task.live_bytes, s.heaps_alive), (0, 0));

    // Outside any task: this thread's pool.
    let v = alloc.pool_vec_with_capacity::<u16>(3);
    assert_eq!((v.capacity(), alloc.stats().pool.live_bytes), (3, 6));
    drop(v);
    assert_eq!(alloc.stats().pool.live_bytes, 0);
}

/// `pool_vec_with_capacity` inside a task, on the class fast path (up to 1 KiB) and off it:
/// every buffer is live, counted and its own until its vector drops, and `push` past the
/// capacity moves the elements to a bigger buffer.
#[test]
fn pool_vec_with_capacity_in_a_task_keeps_each_buffer() {
    let alloc = SmartAlloc::default();
    let mut cx = TaskContext::new();
    cx.enter(|| {
        let sizes = [16usize, 100, 256, 1024, 3000];
        let mut vs: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let mut v = alloc.pool_vec_with_capacity::<u8>(n);
                assert_eq!(v.capacity(), n);
                v.extend(std::iter::repeat_n(i as u8 + 1, n));
                v
            })
            .collect();
        assert_eq!(alloc.stats().task.live_bytes, sizes.iter().sum::<usize>() as u64);
        for (i, v) in vs.iter().enumerate() {
            assert!(v.iter().all(|&b| b == i as u8 + 1), "buffer {i} was overwritten");
        }
        vs[0].push(9); // past the capacity
        assert!(vs[0].capacity() > 16 && vs[0][..16].iter().all(|&b| b == 1) && vs[0][16] == 9);
        drop(vs);
        assert_eq!(alloc.stats().task.live_bytes, 0);
    });
}

/// Allocates in its `drop`: pool memory (in the current heap: the thread's pool, or the task's)
/// and task memory (a `TaskAlloc` of its own).
struct AllocatesOnDrop {
    alloc: SmartAlloc,
    value: u32,
    dropped: Arc<AtomicUsize>,
}

impl Drop for AllocatesOnDrop {
    fn drop(&mut self) {
        let mut v = self.alloc.pool_vec::<u32>();
        v.extend((0..40).map(|i| i + self.value));
        let b = self.alloc.pool_box([self.value; 40]);
        let task = TaskAlloc::new(&self.alloc);
        let t = task.alloc_box(self.value);
        assert_eq!((v[39], b[39], *t), (39 + self.value, self.value, self.value));
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn drops_that_allocate_reenter_their_heap_safely() {
    // A vector or box being freed runs its elements' drops first; those may allocate and free
    // in the same heap (the thread's pool, or the task's) while the outer free is under way.
    let alloc = SmartAlloc::default();
    let dropped = Arc::new(AtomicUsize::new(0));
    let make = |value| AllocatesOnDrop { alloc: alloc.clone(), value, dropped: dropped.clone() };
    let n = scale(100) as u32;
    let fill = || {
        let mut v = alloc.pool_vec();
        v.extend((0..n).map(make));
        v.truncate(n as usize / 2);
        drop(v);
        drop(alloc.pool_box(make(n)));
        let task = TaskAlloc::new(&alloc);
        let mut tv = task.alloc_vec();
        tv.extend((0..n).map(make));
        drop(tv);
        drop(task.alloc_box(make(n)));
    };
    fill();
    let mut cx = TaskContext::new();
    cx.enter(fill);
    cx.release();
    assert_eq!(dropped.load(Ordering::SeqCst), 2 * (2 * n as usize + 2));
    let s = alloc.stats();
    assert_eq!((s.pool.live_bytes, s.task.live_bytes, s.heaps_alive), (0, 0, 0));
}

thread_local! {
    /// Handles a user keeps in a thread local of their own, dropped when the thread ends.
    static KEPT: std::cell::RefCell<Vec<PoolBox<u64>>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Allocates when the thread's locals are destroyed.
    static LATE: std::cell::RefCell<Option<AllocatesOnDrop>> = const { std::cell::RefCell::new(None) };
}

#[test]
fn handles_and_allocations_in_thread_local_destructors() {
    // Thread locals are destroyed in an order nobody controls: the user's may go after
    // framealloc's per-thread cache. Pool handles kept in them must still free, and pool and
    // task allocations made from their destructors must still work. Each order is tried:
    // the user's locals are first touched before framealloc's, or after.
    let alloc = SmartAlloc::default();
    let dropped = Arc::new(AtomicUsize::new(0));
    for user_first in [true, false] {
        let alloc = alloc.clone();
        let dropped = dropped.clone();
        std::thread::spawn(move || {
            let mut late = Some(AllocatesOnDrop { alloc: alloc.clone(), value: 3, dropped });
            let mut keep_in_user_locals = || {
                KEPT.with(|k| k.borrow_mut().push(alloc.pool_box(1)));
                LATE.with(|l| *l.borrow_mut() = late.take());
            };
            if user_first {
                keep_in_user_locals();
            }
            // Touches framealloc's own thread locals (the pool heap and the heap cache).
            drop(alloc.pool_box(2u64));
            drop(TaskAlloc::new(&alloc).alloc_box(2u64));
            if !user_first {
                keep_in_user_locals();
            }
            assert!(alloc.stats().pool.live_bytes >= 8);
        })
        .join()
        .expect("the thread and its thread-local destructors ran without panicking");
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
    let s = alloc.stats();
    assert_eq!((s.pool.live_bytes, s.task.live_bytes), (0, 0));
}

/// `PoolVec::into_inner` moves the elements out; the vector must forget them before its
/// buffer is freed, or each is dropped twice.
#[test]
fn pool_vec_into_inner_moves_each_element_once() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Counted(u64);
    impl Drop for Counted {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    let alloc = SmartAlloc::default();
    let mut v = alloc.pool_vec();
    for i in 0..5 {
        v.push(Counted(i));
    }
    let out = v.into_inner();
    assert_eq!(DROPS.load(Ordering::SeqCst), 0, "into_inner moves the elements, it drops none");
    assert_eq!(out.iter().map(|d| d.0).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    drop(out);
    assert_eq!(DROPS.load(Ordering::SeqCst), 5, "each element dropped exactly once");
    assert_eq!(alloc.stats().pool.live_bytes, 0);
}

/// A framed pool value too big for a chunk names its own size as `requested()`, and the
/// block with its heap prefix as `needed()`.
#[test]
fn a_large_framed_pool_value_names_its_own_bytes_in_a_budget_error() {
    let alloc = SmartAlloc::new(AllocConfig::default().with_total_budget(4096));
    let e = alloc.try_pool_box([0u8; 5000]).map(drop).unwrap_err();
    assert!(e.is_total_budget(), "{e}");
    assert_eq!((e.requested(), e.needed()), (5000, 5016), "the value, then its block with the prefix: {e}");
}

/// With nested guards in a task, `pool_*` allocates in the innermost guard's heap, also
/// when the slot's cached heap belongs to another `SmartAlloc`.
#[test]
fn nested_guards_in_a_task_collect_in_the_innermost_after_another_allocator() {
    let a = SmartAlloc::default();
    let b = SmartAlloc::default();
    let mut cx = TaskContext::new();
    cx.enter(|| {
        let outer = AsyncPoolGuard::new(&a);
        let inner = AsyncPoolGuard::new(&a);
        let other = b.pool_box(0u8); // the task's cached heap is now `b`'s
        let x = a.pool_box(1u32);
        assert_eq!((outer.escaped(), inner.escaped()), (0, 1), "the innermost scope holds it");
        drop((x, other, inner, outer));
    });
}

/// A heap reuses the blocks other threads freed (its remote list) before taking a chunk.
#[test]
fn blocks_freed_on_other_threads_are_reused_before_a_new_chunk() {
    let alloc = SmartAlloc::new(AllocConfig::default().with_task_heap_budget(16 * 1024));
    let mut cx = TaskContext::new();
    let boxes = cx.enter(|| {
        let mut kept = Vec::new();
        while let Ok(b) = alloc.try_pool_box([0u8; 512]) {
            kept.push(b);
        }
        kept
    });
    let n = boxes.len();
    assert!(n > 0);
    std::thread::spawn(move || drop(boxes)).join().unwrap();
    cx.enter(|| {
        let again: Vec<_> =
            (0..n).map(|_| alloc.try_pool_box([0u8; 512]).expect("the blocks freed elsewhere are reused")).collect();
        assert_eq!(again.len(), n);
    });
}

/// A `pool_box` that fails in a task gives back the handle it counted, so the task's
/// heap is freed (not kept as escaped) when the task ends.
#[test]
fn a_failed_pool_box_in_a_task_does_not_keep_its_heap_alive() {
    let alloc = SmartAlloc::new(AllocConfig::default().with_task_heap_budget(16 * 1024));
    let mut cx = TaskContext::new();
    cx.enter(|| {
        let e = alloc.try_pool_box([0u8; 32 * 1024]).map(drop).unwrap_err();
        assert!(e.is_task_budget(), "{e}");
    });
    drop(cx);
    let s = alloc.stats();
    assert_eq!((s.heaps_alive, s.quarantined_chunks), (0, 0));
}

/// A parked heap starts the next task at zero live bytes, also when the last task's
/// values were freed on another thread (counted as the other threads' frees).
#[test]
fn a_parked_heap_counts_the_next_tasks_bytes_from_zero() {
    let alloc = SmartAlloc::default();
    let mut cx = TaskContext::new();
    let b = cx.enter(|| alloc.pool_box([0u8; 64]));
    std::thread::spawn(move || drop(b)).join().unwrap();
    drop(cx); // the heap is parked on this thread
    let mut cx = TaskContext::new();
    let c = cx.enter(|| alloc.pool_box([0u8; 64]));
    assert_eq!(alloc.stats().task.live_bytes, 64);
    drop(c);
    drop(cx);
    assert_eq!(alloc.stats().task.live_bytes, 0);
}

/// `guard_escapes` adds every handle that outlived the guard, not one per guard.
#[test]
fn guard_escapes_count_every_escaped_handle() {
    let alloc = SmartAlloc::default();
    let guard = AsyncPoolGuard::new(&alloc);
    let kept: Vec<_> = (0..3u32).map(|i| alloc.pool_box(i)).collect();
    assert_eq!(guard.escaped(), 3);
    drop(guard);
    assert_eq!(alloc.stats().guard_escapes, 3);
    drop(kept);
}

/// A `PoolVec` with a buffer grows to at least twice its capacity (amortised `push`).
#[test]
fn pool_vec_growth_at_least_doubles_the_capacity() {
    let alloc = SmartAlloc::default();
    let mut v = alloc.pool_vec::<u64>();
    v.push(0);
    assert_eq!(v.capacity(), 4, "the first buffer: 4 elements, as for std");
    for i in 1..5 {
        v.push(i);
    }
    assert_eq!(v.capacity(), 8, "the second buffer doubles the first");
    v.reserve(5);
    assert_eq!(v.capacity(), 16);
    assert_eq!(v.iter().sum::<u64>(), 10);
}

/// Registered guards (a plain thread's) closed outer first: allocations go on to the inner
/// scope, and vectors made in the inner scope grow on another thread after both closed.
#[test]
fn registered_guards_closed_out_of_order_leave_later_growth_valid() {
    let alloc = SmartAlloc::default();
    for _ in 0..scale(20) {
        let outer = AsyncPoolGuard::new(&alloc);
        let a = alloc.pool_box([1u64; 8]);
        let inner = AsyncPoolGuard::new(&alloc);
        let mut empty: PoolVec<u64> = alloc.pool_vec();
        let mut with_cap = alloc.pool_vec_with_capacity::<u32>(3);
        with_cap.push(1);
        let b = alloc.pool_box(5u16);
        assert_eq!((outer.escaped(), inner.escaped()), (1, 3));
        drop(outer);
        let c = alloc.pool_box(9u8);
        assert_eq!(inner.escaped(), 4, "the inner scope is still open");
        drop(inner);
        let (empty, with_cap) = std::thread::spawn(move || {
            for i in 0..100u32 {
                empty.push(u64::from(i));
                with_cap.push(i);
            }
            (empty, with_cap)
        })
        .join()
        .unwrap();
        assert_eq!((empty.iter().sum::<u64>(), with_cap.iter().sum::<u32>()), (4950, 4951));
        assert_eq!((*a, *b, *c), ([1; 8], 5, 9));
        drop((a, b, c, empty, with_cap));
        let s = alloc.stats();
        assert_eq!((s.heaps_alive, s.pool.live_bytes), (0, 0), "{s:?}");
    }
    assert_eq!(alloc.stats().guard_escapes, scale(20) as u64 * (1 + 4));
}

/// A value dropped under a registered guard may open a guard of its own in its `Drop` (the
/// registry's lock is not held while user code runs), for this allocator and another.
#[test]
fn a_drop_under_a_registered_guard_may_open_its_own() {
    struct OpensAGuard(SmartAlloc, SmartAlloc);
    impl Drop for OpensAGuard {
        fn drop(&mut self) {
            let mine = AsyncPoolGuard::new(&self.0);
            let theirs = AsyncPoolGuard::new(&self.1);
            let (x, y) = (self.0.pool_box([7u8; 40]), self.1.pool_box(3u32));
            assert_eq!((mine.escaped(), theirs.escaped()), (1, 1));
            drop((x, y));
        }
    }
    let (a, b) = (SmartAlloc::default(), SmartAlloc::default());
    let guard = AsyncPoolGuard::new(&a);
    drop(a.pool_box(OpensAGuard(a.clone(), b.clone())));
    let mut v = a.pool_vec();
    v.extend((0..3).map(|_| OpensAGuard(a.clone(), b.clone())));
    drop(v);
    assert_eq!(guard.escaped(), 0);
    drop(guard);
    for alloc in [&a, &b] {
        let s = alloc.stats();
        assert_eq!((s.heaps_alive, s.pool.live_bytes, s.guard_escapes), (0, 0, 0), "{s:?}");
    }
}
