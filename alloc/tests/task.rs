//! Task heaps through `TaskAlloc`: values, vectors, reuse, threads, budgets, release.

mod common;

use common::*;
use framealloc_alloc::{AllocConfig, SmartAlloc, TaskAlloc, TaskBox};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[test]
fn boxes_and_vecs_count_and_free() {
    let alloc = SmartAlloc::default();
    let task = TaskAlloc::new(&alloc);
    assert_eq!(alloc.stats().heaps_alive, 1);
    let a = task.alloc_box(1u64);
    let mut v = task.alloc_vec::<u32>();
    v.extend_from_slice(&[1, 2, 3]);
    v.push(4);
    assert_eq!(&*v, &[1, 2, 3, 4]);
    let s = alloc.stats();
    assert_eq!(s.task.live_bytes, 8 + (v.capacity() * 4) as u64);
    assert_eq!(task.live_bytes(), s.task.live_bytes);
    v.clear();
    assert!(v.is_empty());
    assert_eq!(TaskBox::into_inner(a), 1);
    drop(v);
    assert_eq!(task.live_bytes(), 0);
    drop(task);
    let s = alloc.stats();
    assert_eq!((s.task.live_bytes, s.heaps_alive), (0, 0));
    assert!(s.task.allocations >= 2);
    assert!(s.task.high_water_bytes >= 8 + 16);
}

#[test]
fn freed_blocks_are_reused() {
    let alloc = SmartAlloc::default();
    let task = TaskAlloc::new(&alloc);
    let first = {
        let b = task.alloc_box([7u8; 48]);
        &*b as *const [u8; 48] as usize
    };
    for _ in 0..scale(10_000) {
        let b = task.alloc_box([9u8; 48]);
        assert_eq!(&*b as *const [u8; 48] as usize, first, "same size class, same block");
    }
}

#[test]
fn guide_after_async_snippet() {
    // "Migration from Sync Code / After (Async)", verbatim.
    #[allow(unused_variables, unused_mut)] // verbatim: `data` is left to a comment, `task` is `mut`
    async fn process_data_async(alloc: &SmartAlloc, data: &[u8]) -> Vec<u8> {
        let mut task = TaskAlloc::new(alloc);

        let result = task.alloc_vec::<u8>();
        // Process data asynchronously...

        result.into_inner()
    }
    let alloc = SmartAlloc::default();
    assert!(block_on(process_data_async(&alloc, b"abc")).is_empty());
    assert_eq!(alloc.stats().heaps_alive, 0);
}

#[test]
fn many_sizes_many_values() {
    let alloc = SmartAlloc::default();
    let task = TaskAlloc::new(&alloc);
    let mut vecs = Vec::new();
    for i in 0..scale(2000) {
        let mut v = task.alloc_vec::<u64>();
        for j in 0..(i % 97) as u64 {
            v.push(j * i as u64);
        }
        vecs.push(v);
    }
    for (i, v) in vecs.iter().enumerate() {
        assert_eq!(v.len(), i % 97);
        assert!(v.iter().enumerate().all(|(j, x)| *x == j as u64 * i as u64));
    }
    drop(vecs);
    assert_eq!(task.live_bytes(), 0);
}

#[test]
fn large_zero_sized_and_over_aligned() {
    let alloc = SmartAlloc::default();
    let task = TaskAlloc::new(&alloc);
    let big = task.alloc_box([3u8; 100_000]);
    assert!(big.iter().all(|b| *b == 3));
    let page = task.alloc_box(Page([5; 16]));
    assert_eq!(&*page as *const Page as usize % 4096, 0);
    let z = task.alloc_box(());
    let mut pages = task.alloc_vec::<Page>();
    pages.push(Page::default());
    pages.push(Page([1; 16]));
    assert_eq!(pages.as_ptr() as usize % 4096, 0);
    assert_eq!(task.live_bytes(), 100_000 + 4096 + pages.capacity() as u64 * 4096);
    drop((big, page, z, pages));
    assert_eq!(task.live_bytes(), 0);
}

#[test]
fn drop_runs_once_even_when_it_panics() {
    let hits = Arc::new(AtomicUsize::new(0));
    let alloc = SmartAlloc::default();
    let task = TaskAlloc::new(&alloc);
    let a = task.alloc_box(DropCounter::new(&hits, 1));
    let mut v = task.alloc_vec();
    v.push(DropCounter::new(&hits, 2));
    v.push(DropCounter::new(&hits, 3));
    drop(a);
    drop(v);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let p = task.alloc_box(PanicOnDrop);
    assert!(catch_unwind(AssertUnwindSafe(move || drop(p))).is_err());
    assert_eq!(task.live_bytes(), 0, "the block was freed although the drop panicked");
}

#[test]
fn shared_across_scoped_threads() {
    let alloc = SmartAlloc::default();
    let task = TaskAlloc::new(&alloc);
    let n = scale(2000);
    let mine: Vec<_> = (0..n as u64).map(|i| task.alloc_box(i)).collect();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let task = &task;
            s.spawn(move || {
                // Allocations from a non-owner thread take the locked path.
                let theirs: Vec<_> = (0..n as u64).map(|i| task.alloc_box(i * 1000 + t)).collect();
                for (i, b) in theirs.iter().enumerate() {
                    assert_eq!(**b, i as u64 * 1000 + t);
                }
            });
        }
        // Boxes made by the owner, dropped on another thread: remote frees.
        s.spawn(move || drop(mine));
    });
    assert_eq!(task.live_bytes(), 0);
    // The owner reuses remotely freed blocks.
    let again: Vec<_> = (0..n as u64).map(|i| task.alloc_box(i)).collect();
    assert!(again.iter().enumerate().all(|(i, b)| **b == i as u64));
}

#[test]
fn moved_to_another_thread_it_still_works() {
    let alloc = SmartAlloc::default();
    let task = TaskAlloc::new(&alloc);
    let sum = std::thread::spawn(move || {
        let v: Vec<_> = (0..100u64).map(|i| task.alloc_box(i)).collect();
        let s = v.iter().map(|b| **b).sum::<u64>();
        drop(v);
        assert_eq!(task.live_bytes(), 0);
        s
    })
    .join()
    .unwrap();
    assert_eq!(sum, 4950);
    assert_eq!(alloc.stats().heaps_alive, 0);
}

#[test]
fn task_heap_budget() {
    let alloc = SmartAlloc::new(AllocConfig::default().with_task_heap_budget(64 * 1024));
    let task = TaskAlloc::new(&alloc);
    let mut kept = Vec::new();
    let err = loop {
        match task.try_alloc_box([0u8; 1024]) {
            Ok(b) => kept.push(b),
            Err(e) => break e,
        }
        assert!(kept.len() < 1000, "the budget must stop this");
    };
    assert!(err.is_task_budget(), "{err}");
    assert!(kept.len() >= 50, "most of 64 KiB was usable, got {}", kept.len());
    let msg = panic_message(catch_unwind(AssertUnwindSafe(|| task.alloc_box([0u8; 1024]))).map(drop).unwrap_err());
    assert!(msg.contains("task heap budget") && msg.contains("65536"), "{msg}");
    let mut v = task.alloc_vec::<u8>();
    assert!(v.try_reserve(1 << 20).unwrap_err().is_task_budget());
    let e = task.try_alloc_vec_with_capacity::<u8>(1 << 20).map(drop).unwrap_err();
    assert!(e.is_task_budget() && e.requested() == 1 << 20, "{e}");
    let e = task.try_alloc_vec_with_capacity::<u64>(usize::MAX / 4).map(drop).unwrap_err();
    assert!(e.is_capacity_overflow(), "{e}");
    let mut called = false;
    let e = task.try_alloc_with(|| {
        called = true;
        [0u8; 1024]
    });
    assert!(e.map(drop).unwrap_err().is_task_budget());
    assert!(!called, "f is not called when the allocation fails");
    assert_eq!(*task.try_alloc_with(|| 7u8).expect("one byte still fits"), 7);
    assert_eq!(task.try_alloc_vec_with_capacity::<u8>(8).expect("8 bytes still fit").capacity(), 8);
    drop(kept);
    // After freeing, the same heap serves again.
    assert_eq!(*task.alloc_box(1u8), 1);
}

#[test]
fn total_budget_across_heaps() {
    let alloc = SmartAlloc::new(AllocConfig::default().with_total_budget(48 * 1024));
    let a = TaskAlloc::new(&alloc);
    let b = TaskAlloc::new(&alloc);
    let _x = a.alloc_box([0u8; 100]); // one 16 KiB chunk
    let _y = b.alloc_box([0u8; 100]); // another
    let e = a.try_alloc_box([0u8; 20_000]).map(drop).unwrap_err();
    assert!(e.is_total_budget(), "{e}");
    assert_eq!(e.requested(), 20_000, "{e}");
    // A small value that needs a new chunk: the error names the value, not the chunk.
    let fill: Vec<_> = std::iter::from_fn(|| a.try_alloc_box([0u8; 1000]).ok()).take(100).collect();
    let e = a.try_alloc_box([0u8; 1000]).map(drop).unwrap_err();
    assert!(e.is_total_budget() && e.requested() == 1000, "{e}");
    drop(fill);
    drop((_x, _y));
    drop((a, b));
    // Released heaps give their bytes back.
    let c = TaskAlloc::new(&alloc);
    assert_eq!(c.alloc_box([1u8; 20_000])[0], 1);
}

#[test]
fn many_task_allocs_return_to_baseline() {
    let alloc = SmartAlloc::default();
    let tasks: Vec<TaskAlloc> = (0..scale(1000)).map(|_| TaskAlloc::new(&alloc)).collect();
    for (i, t) in tasks.iter().enumerate() {
        std::mem::forget(t.alloc_box(i)); // forgotten boxes are reclaimed with the heap
        let mut v = t.alloc_vec::<u8>();
        v.extend_from_slice(b"hello");
        std::mem::forget(v);
    }
    assert_eq!(alloc.stats().heaps_alive, scale(1000) as u64);
    drop(tasks);
    let s = alloc.stats();
    assert_eq!((s.heaps_alive, s.quarantined_chunks), (0, 0));
    assert_eq!(s.task.live_bytes, 0, "released heaps leave nothing live");
}

#[test]
fn alloc_with_builds_in_place_and_frees_on_panic() {
    let alloc = SmartAlloc::default();
    let task = TaskAlloc::new(&alloc);
    let big = task.alloc_with(|| [7u8; 256]);
    assert!(big.iter().all(|b| *b == 7));
    let r = catch_unwind(AssertUnwindSafe(|| task.alloc_with::<[u8; 64]>(|| panic!("no value"))));
    assert!(r.is_err());
    assert_eq!(task.live_bytes(), 256, "the block of the failed value was freed");
    drop(big);
    assert_eq!(task.live_bytes(), 0);
}

#[test]
fn released_heaps_are_parked_and_reused_on_the_same_thread() {
    let alloc = SmartAlloc::default();
    let first = {
        let t = TaskAlloc::new(&alloc);
        let b = t.alloc_box([1u64; 4]);
        &*b as *const [u64; 4] as usize
    };
    // Released with nothing escaped: parked, not counted as alive, nothing live.
    let s = alloc.stats();
    assert_eq!((s.heaps_alive, s.task.live_bytes), (0, 0));
    // The next heap on this thread is the parked one: same chunk, first block again.
    let t = TaskAlloc::new(&alloc);
    assert_eq!(alloc.stats().heaps_alive, 1);
    let b = t.alloc_box([2u64; 4]);
    assert_eq!(&*b as *const [u64; 4] as usize, first);
    assert_eq!(t.live_bytes(), 32);
    drop(b);
    drop(t);
    // Forgotten boxes do not leak into the next user's stats.
    let t = TaskAlloc::new(&alloc);
    std::mem::forget(t.alloc_box(5u64));
    drop(t);
    assert_eq!(alloc.stats().task.live_bytes, 0);
    let t = TaskAlloc::new(&alloc);
    assert_eq!(t.live_bytes(), 0);
}

/// Fills most of one 16 KiB chunk with 512-byte boxes (headers and granule ends aside).
fn fill_most_of_a_chunk(t: &TaskAlloc) -> Vec<TaskBox<'_, [u8; 512]>> {
    (0..24).map(|i| t.try_alloc_box([i as u8; 512]).expect("fits in the heap's one chunk")).collect()
}

/// A released heap is whole again for its next user, whatever the last one did with its
/// blocks: freed them, forgot them, or had another thread free them. With a budget of one
/// chunk, any room lost on the way (a second chunk) is an error.
#[test]
fn parked_heap_is_reset_unless_every_block_is_back_on_its_lists() {
    let alloc = SmartAlloc::new(AllocConfig::default().with_total_budget(16 * 1024));
    // Freed by the owner: the blocks are on the lists, and the next user gets them again.
    for _ in 0..scale(100) {
        let t = TaskAlloc::new(&alloc);
        drop(fill_most_of_a_chunk(&t));
    }
    // Forgotten: they are not on any list, and only a reset gives their room back.
    for _ in 0..scale(100) {
        let t = TaskAlloc::new(&alloc);
        fill_most_of_a_chunk(&t).into_iter().for_each(core::mem::forget);
    }
    // Freed by another thread: on the heap's remote list, which a reset drops.
    for _ in 0..scale(100) {
        let t = TaskAlloc::new(&alloc);
        let boxes = fill_most_of_a_chunk(&t);
        std::thread::scope(|s| {
            s.spawn(move || drop(boxes));
        });
    }
    let s = alloc.stats();
    assert_eq!((s.heaps_alive, s.task.live_bytes), (0, 0));
}

/// Short tasks of changing sizes on one thread reuse one parked heap without its memory
/// growing: free blocks of earlier sizes never pile up into more chunks (a budget of two).
#[test]
fn parked_heap_memory_stays_bounded_over_changing_sizes() {
    let alloc = SmartAlloc::new(AllocConfig::default().with_total_budget(2 * 16 * 1024));
    const SIZES: [usize; 6] = [48, 96, 200, 400, 1000, 3000];
    for round in 0..scale(300) {
        let t = TaskAlloc::new(&alloc);
        let size = SIZES[round % SIZES.len()];
        let bufs: Vec<_> = (0..12_000 / size)
            .map(|_| {
                let mut v = t.alloc_vec::<u8>();
                v.try_reserve(size).expect("two chunks are enough for one short task");
                v.push(round as u8);
                v
            })
            .collect();
        assert!(bufs.iter().all(|v| v[0] == round as u8));
    }
    let s = alloc.stats();
    assert_eq!((s.heaps_alive, s.task.live_bytes), (0, 0));
}

/// `push` that needs more than the budget allows panics, and the vector is left as it was: its
/// elements intact (with drop glue, dropped once), still usable within its capacity.
#[test]
fn push_past_the_budget_panics_and_leaves_the_vector_intact() {
    let alloc = SmartAlloc::new(AllocConfig::default().with_task_heap_budget(64 * 1024));
    let task = TaskAlloc::new(&alloc);
    let mut v = task.alloc_vec::<String>();
    let mut pushed = 0;
    let msg = loop {
        match catch_unwind(AssertUnwindSafe(|| v.push(pushed.to_string()))) {
            Ok(()) => pushed += 1,
            Err(p) => break panic_message(p),
        }
        assert!(pushed < 100_000, "the budget must stop this");
    };
    assert!(msg.contains("task heap budget"), "{msg}");
    assert_eq!(v.len(), pushed);
    assert!(v.iter().enumerate().all(|(i, s)| *s == i.to_string()));
    v.truncate(1);
    v.push("again".to_string()); // room within the capacity
    assert_eq!(v[1], "again");
    drop(v);
    assert_eq!(task.live_bytes(), 0);
}

/// A request of exactly a quarter of the task chunk is served from a chunk (and needs
/// one); only requests above it go to the system allocator.
#[test]
fn a_quarter_chunk_request_is_a_class_block_above_it_a_system_block() {
    // Budget below one 16 KiB chunk: anything that needs a chunk is refused.
    let alloc = SmartAlloc::new(AllocConfig::default().with_task_heap_budget(8 * 1024));
    let t = TaskAlloc::new(&alloc);
    let e = t.try_alloc_vec_with_capacity::<u8>(4096).map(drop).unwrap_err();
    assert!(e.is_task_budget(), "{e}");
    assert_eq!((e.requested(), e.needed()), (4096, 16 * 1024), "4096 bytes take a chunk: {e}");
    let mut big = t.try_alloc_vec_with_capacity::<u8>(4097).expect("above a quarter chunk: a block of its own size");
    big.resize(4097, 1);
    assert_eq!(big[4096], 1);
    drop(big);
    // A `TaskBox` of more than 1 KiB is framed (16 bytes in front name its heap, see
    // `TaskBox`), so its threshold is 16 bytes lower; the error still names the value's size.
    let e = t.try_alloc_box([0u8; 4080]).map(drop).unwrap_err();
    assert_eq!((e.requested(), e.needed()), (4080, 16 * 1024), "4080 + 16 bytes take a chunk: {e}");
    let b = t.try_alloc_box([1u8; 4081]).expect("above a quarter chunk: a block of its own size");
    assert_eq!(b[4080], 1);
}

/// Over several heaps, the high-water mark is at least what they hold together now.
#[test]
fn high_water_over_several_heaps_is_at_least_their_sum() {
    let alloc = SmartAlloc::default();
    let (t1, t2) = (TaskAlloc::new(&alloc), TaskAlloc::new(&alloc));
    let a = t1.alloc_box([0u8; 100]);
    let b = t2.alloc_box([0u8; 100]);
    let s = alloc.stats().task;
    assert_eq!((s.live_bytes, s.high_water_bytes), (200, 200));
    drop((a, b));
}

/// A task vector of bytes starts with room for 8, like `std` and `allocator-api2`.
#[test]
fn a_task_vec_of_bytes_starts_with_room_for_eight() {
    let alloc = SmartAlloc::default();
    let t = TaskAlloc::new(&alloc);
    let mut v = t.alloc_vec::<u8>();
    v.push(1);
    assert_eq!(v.capacity(), 8);
    let mut w = t.alloc_vec::<u32>();
    w.push(1);
    assert_eq!(w.capacity(), 4);
}

/// A budget error names whose heap ran out and who asked, when they differ: a `TaskAlloc`
/// made on this thread and used from a scoped thread.
#[test]
fn a_budget_error_names_the_heap_and_its_user() {
    let alloc = SmartAlloc::new(AllocConfig::default().with_task_heap_budget(16 * 1024));
    let task = TaskAlloc::new(&alloc);
    let kept = task.alloc_box([0u8; 8 * 1024]);
    let own = task.try_alloc_box([0u8; 16 * 1024]).map(drop).unwrap_err().to_string();
    assert!(own.contains(", in thread #") && !own.contains("heap of"), "the owner asked: {own}");
    let other = std::thread::scope(|s| {
        s.spawn(|| task.try_alloc_box([0u8; 16 * 1024]).map(drop).unwrap_err().to_string()).join().unwrap()
    });
    let (heap, user) = other.split_once(", used by ").expect("names the user");
    assert!(heap.ends_with("(no task)") && heap.contains("in the heap of thread #"), "{other}");
    assert!(user.starts_with("thread #") && !heap.contains(user), "another thread: {other}");
    drop(kept);
}

/// A `TaskBox` is one pointer and finds its heap from its value's address, wherever the value
/// lies: a class block, a framed block (over 1 KiB, or aligned above 16) or a block of its own
/// size. Each is cloned, moved out and dropped on another thread, and every byte comes back.
#[test]
fn a_task_box_finds_its_heap_from_its_address_in_every_placement() {
    #[derive(Clone, PartialEq, Debug)]
    #[repr(align(64))]
    struct Aligned([u8; 64]);

    let alloc = SmartAlloc::default();
    let t = TaskAlloc::new(&alloc);
    assert_eq!(std::mem::size_of::<TaskBox<'_, [u8; 4096]>>(), std::mem::size_of::<usize>());
    let small = t.alloc_box([1u8; 48]);
    let framed = t.alloc_box([2u8; 2000]);
    let own = t.alloc_with(|| [3u8; 40_000]);
    let aligned = t.alloc_with(|| Aligned([4; 64]));
    assert_eq!(core::ptr::from_ref::<Aligned>(&aligned) as usize % 64, 0);
    let clones = (small.clone(), framed.clone(), own.clone(), aligned.clone());
    assert_eq!((clones.0[47], clones.1[1999], clones.2[39_999], clones.3 .0[63]), (1, 2, 3, 4));
    assert_eq!(TaskBox::into_inner(framed.clone())[0], 2);
    assert_eq!(t.live_bytes(), 2 * (48 + 2000 + 40_000 + 64));
    std::thread::scope(|s| {
        s.spawn(move || drop((small, framed, own, aligned)));
    });
    drop(clones);
    assert_eq!(t.live_bytes(), 0);
}
