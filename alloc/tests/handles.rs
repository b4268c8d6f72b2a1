//! Handles like std's: the box traits checked against `Box`, clones counted in their memory,
//! and allocator-api2 collections in task and frame-scope memory. Small, for Miri.

use allocator_api2::alloc::{Allocator, Layout};
use allocator_api2::vec::Vec as AVec;
use framealloc_alloc::hook::TaskContext;
use framealloc_alloc::{AllocConfig, SmartAlloc, TaskAlloc};
use std::borrow::Borrow;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

fn hash_of<T: Hash + ?Sized>(v: &T) -> u64 {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// `a` and `b` are handles of the values in `boxed` (`a < b`): every delegating trait agrees
/// with `Box`'s.
fn same_as_box<H, T>(a: &H, b: &H, boxed: [Box<T>; 2])
where
    H: Deref<Target = T> + Ord + Hash + Debug + std::fmt::Display + std::fmt::Pointer + AsRef<T> + Borrow<T>,
    T: Ord + Hash + Debug + std::fmt::Display + ?Sized,
{
    let [ba, bb] = boxed;
    assert_eq!(a != b, ba != bb);
    assert_eq!(a == b, ba == bb);
    assert_eq!(a.cmp(b), ba.cmp(&bb));
    assert_eq!(b.partial_cmp(a), bb.partial_cmp(&ba));
    assert_eq!(hash_of(a), hash_of(&ba));
    assert_eq!(hash_of(a), hash_of::<T>(a.borrow()));
    assert_eq!(a.to_string(), ba.to_string());
    assert_eq!(format!("{a:?}"), format!("{ba:?}"));
    assert_eq!(format!("{:p}", *a), format!("{:p}", a.as_ref() as *const T));
}

#[test]
fn box_traits_agree_with_box() {
    let alloc = SmartAlloc::new(AllocConfig::default());
    let s = |v: &str| v.to_string();
    let boxes = || [Box::new(s("ant")), Box::new(s("bee"))];

    let (a, b) = (alloc.pool_box(s("ant")), alloc.pool_box(s("bee")));
    same_as_box(&a, &b, boxes());
    let set: HashSet<_> = [a, b].into_iter().collect();
    assert!(set.contains(&s("bee")), "Borrow<T> + Hash + Eq: look up by the value");

    let task = TaskAlloc::new(&alloc);
    same_as_box(&task.alloc_box(s("ant")), &task.alloc_box(s("bee")), boxes());

    alloc.begin_frame();
    same_as_box(&alloc.frame_box(s("ant")), &alloc.frame_box(s("bee")), boxes());
    alloc.frame_scope(|f| same_as_box(&f.alloc(s("ant")), &f.alloc(s("bee")), boxes()));

    // Slices compare, order and hash as `Box<[T]>` does (length first).
    let (x, y) = (alloc.frame_slice(&[1u8, 2]), alloc.frame_slice(&[1u8, 2, 0]));
    let (bx, by): (Box<[u8]>, Box<[u8]>) = (Box::new([1, 2]), Box::new([1, 2, 0]));
    assert_eq!((x == y, x.cmp(&y), hash_of(&x)), (bx == by, bx.cmp(&by), hash_of(&bx)));
    assert_eq!(<_ as AsRef<[u8]>>::as_ref(&x), &*bx);
    alloc.end_frame();

    let mut m = task.alloc_box(1u32);
    *<_ as AsMut<u32>>::as_mut(&mut m) += 1;
    *<_ as std::borrow::BorrowMut<u32>>::borrow_mut(&mut m) += 1;
    assert_eq!(*m, 3);
}

#[test]
fn task_and_pool_clones_are_independent_and_counted() {
    let alloc = SmartAlloc::new(AllocConfig::default());
    let task = TaskAlloc::new(&alloc);
    let a = task.alloc_box([7u64; 4]);
    let mut b = a.clone();
    b[0] = 8;
    assert_eq!((a[0], b[0]), (7, 8));
    assert_eq!(task.live_bytes(), 2 * 32);
    // From another thread: the same heap, on its slow path.
    let c = std::thread::scope(|s| s.spawn(|| b.clone()).join().unwrap());
    assert_eq!((task.live_bytes(), c[0]), (3 * 32, 8));
    drop((a, b, c));
    assert_eq!(task.live_bytes(), 0);

    let p = alloc.pool_box(vec![1u8]);
    let mut q = p.clone();
    q.push(2);
    assert_eq!((p.len(), q.len()), (1, 2));
    assert_eq!(alloc.stats().pool.live_bytes, 2 * size_of::<Vec<u8>>() as u64);
    let r = std::thread::scope(|s| s.spawn(|| q.clone()).join().unwrap());
    assert_eq!(alloc.stats().pool.live_bytes, 3 * size_of::<Vec<u8>>() as u64);
    drop((p, q, r));
    assert_eq!(alloc.stats().pool.live_bytes, 0);

    // A pool box made in a task clones into the task's heap, also after the task ended.
    let mut cx = TaskContext::new();
    let t = cx.enter(|| alloc.pool_box(5u32));
    let t2 = cx.enter(|| t.clone());
    assert_eq!(alloc.stats().task.live_bytes, 8);
    cx.release();
    let t3 = t2.clone();
    assert_eq!((alloc.stats().task.live_bytes, *t3), (12, 5));
    drop((t, t2, t3));
    drop(task);
    assert_eq!((alloc.stats().task.live_bytes, alloc.stats().heaps_alive), (0, 0));
}

#[test]
fn frame_clones_go_to_the_current_frame() {
    let alloc = SmartAlloc::new(AllocConfig::default());
    alloc.begin_frame();
    let a = alloc.frame_box(String::from("kept"));
    let s = alloc.frame_slice(&[1u16, 2, 3]);
    alloc.end_frame();
    alloc.begin_frame(); // a later frame: the first one's chunk is quarantined
    let b = a.clone();
    let t = s.clone();
    assert_eq!((b.as_str(), &*t), ("kept", &[1u16, 2, 3][..]));
    let live = 2 * size_of::<String>() as u64 + 2 * 6;
    assert_eq!(alloc.stats().frame.live_bytes, live);
    assert_eq!(alloc.stats().quarantined_chunks, 1);
    drop((a, s));
    assert_eq!(alloc.stats().quarantined_chunks, 0);
    alloc.end_frame();
    alloc.begin_frame(); // now the clones' chunk is the one kept
    let c = b.clone();
    drop((b, t));
    assert_eq!(*c, "kept");
    drop(c);
    alloc.end_frame();
    let stats = alloc.stats();
    assert_eq!((stats.frame.live_bytes, stats.quarantined_chunks), (0, 0));
}

#[test]
fn a_panicking_clone_gives_its_block_back() {
    #[derive(Debug)]
    struct Bomb;
    impl Clone for Bomb {
        fn clone(&self) -> Self {
            panic!("no clone")
        }
    }
    let alloc = SmartAlloc::new(AllocConfig::default());
    let task = TaskAlloc::new(&alloc);
    let b = task.alloc_box((Bomb, 0u64));
    let p = alloc.pool_box((Bomb, 0u64));
    alloc.begin_frame();
    let f = alloc.frame_box((Bomb, 0u64));
    let before = alloc.stats();
    let caught = |r: std::thread::Result<()>| assert!(r.is_err());
    caught(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(b.clone()))));
    caught(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(p.clone()))));
    caught(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(f.clone()))));
    let after = alloc.stats();
    assert_eq!(
        (after.task.live_bytes, after.pool.live_bytes, after.frame.live_bytes),
        (before.task.live_bytes, before.pool.live_bytes, before.frame.live_bytes)
    );
    drop(f);
    alloc.end_frame();
}

#[test]
fn clones_over_a_budget_are_errors() {
    let alloc = SmartAlloc::new(AllocConfig::default().with_frame_budget(64));
    alloc.begin_frame();
    let a = alloc.frame_box([0u8; 40]);
    assert!(a.try_clone().is_err(), "40 + 40 bytes over a 64-byte frame");
    drop(a);
    alloc.end_frame();

    let alloc = SmartAlloc::new(AllocConfig::default().with_task_heap_budget(16 * 1024));
    let task = TaskAlloc::new(&alloc);
    let big = task.alloc_box([0u8; 3000]);
    let mut clones = Vec::new();
    let err = loop {
        match big.try_clone() {
            Ok(c) => clones.push(c),
            Err(e) => break e,
        }
    };
    assert!(err.to_string().contains("task heap budget"), "{err}");
}

#[test]
fn task_collections_count_in_the_task_heap_and_return_their_bytes() {
    let alloc = SmartAlloc::new(AllocConfig::default());
    let task = TaskAlloc::new(&alloc);
    let mut v: AVec<u8, &TaskAlloc> = AVec::new_in(&task);
    v.extend_from_slice(b"hello, task");
    assert_eq!(task.live_bytes(), v.capacity() as u64);
    assert_eq!(alloc.stats().task.live_bytes, v.capacity() as u64);
    let mut words: AVec<AVec<u8, &TaskAlloc>, &TaskAlloc> = AVec::with_capacity_in(2, &task);
    words.push(v);
    // Another thread (scoped) allocates and frees through the same `&TaskAlloc`.
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut w = AVec::new_in(&task);
            w.extend_from_slice(&[1u8; 100]);
            words.push(w);
            let b = allocator_api2::boxed::Box::new_in(7u64, &task);
            assert_eq!(*b, 7);
        });
    });
    assert!(task.live_bytes() >= 100 + 11);
    // Boxes narrow their pointer to the value: a one-byte box in a 16-byte block, freed by the
    // owner and by another thread.
    let small = allocator_api2::boxed::Box::new_in(1u8, &task);
    let other = allocator_api2::boxed::Box::new_in(2u8, &task);
    drop(small);
    std::thread::scope(|s| s.spawn(move || drop(other)).join().unwrap());
    drop(words);
    assert_eq!(task.live_bytes(), 0);
    assert_eq!(alloc.stats().task.live_bytes, 0);

    // A vector may own its `TaskAlloc`.
    let mut owned: AVec<u32, TaskAlloc> = AVec::new_in(TaskAlloc::new(&alloc));
    owned.extend([1, 2, 3]);
    assert_eq!(owned.allocator().live_bytes(), owned.capacity() as u64 * 4);
    assert_eq!(alloc.stats().heaps_alive, 2);
    drop((owned, task));
    assert_eq!((alloc.stats().task.live_bytes, alloc.stats().heaps_alive), (0, 0));
}

#[test]
fn frame_scope_collections_count_as_scope_allocations() {
    let alloc = SmartAlloc::new(AllocConfig::default());
    let before = alloc.stats().frame;
    let total = alloc.frame_scope(|f| {
        let mut v: AVec<u32, &_> = AVec::with_capacity_in(4, f);
        v.extend([1, 2, 3, 4]);
        v.push(5); // grows by copying into a new block
        v.shrink_to_fit();
        let mut b = allocator_api2::boxed::Box::new_in([0u8; 3], f);
        b[1] = 1;
        v.iter().sum::<u32>() + u32::from(b[1])
    });
    assert_eq!(total, 16);
    let after = alloc.stats().frame;
    assert_eq!(after.allocations - before.allocations, 3, "two buffers and a box");
    assert!(after.high_water_bytes >= 16 + 32 + 3);
    assert_eq!(after.live_bytes, 0);
}

#[test]
fn allocators_return_errors_under_a_budget() {
    let alloc = SmartAlloc::new(AllocConfig::default().with_task_heap_budget(32 * 1024).with_frame_budget(1024));
    let task = TaskAlloc::new(&alloc);
    let mut v: AVec<u8, &TaskAlloc> = AVec::new_in(&task);
    assert!(v.try_reserve(64 * 1024).is_err());
    assert!(v.try_reserve(1024).is_ok());
    assert!(task.allocate(Layout::from_size_align(1 << 20, 8).unwrap()).is_err());
    drop(v);
    assert_eq!(task.live_bytes(), 0);

    alloc.frame_scope(|f| {
        let mut w: AVec<u8, &_> = AVec::new_in(f);
        assert!(w.try_reserve(4096).is_err());
        assert!(w.try_reserve(512).is_ok());
        assert!(f.allocate(Layout::from_size_align(2048, 8).unwrap()).is_err());
    });
}

#[test]
fn config_builders_set_every_field() {
    let c = AllocConfig::default()
        .with_frame_chunk_bytes(4096)
        .with_frame_chunk_max_bytes(8192)
        .with_task_chunk_bytes(64 * 1024)
        .with_frame_budget(1)
        .with_task_heap_budget(2)
        .with_total_budget(3);
    assert_eq!((c.frame_chunk_bytes, c.frame_chunk_max_bytes, c.task_chunk_bytes), (4096, 8192, 64 * 1024));
    assert_eq!((c.max_frame_bytes, c.max_task_heap_bytes, c.max_total_bytes), (Some(1), Some(2), Some(3)));
    assert_eq!(c.validate(), Ok(()));
    let mut d = c.clone();
    d.max_total_bytes = None; // fields stay assignable
    assert_eq!(SmartAlloc::new(d).config().max_total_bytes, None);
}

/// A `hashbrown::HashMap` whose table and string-like values live in task memory, built as a
/// request handler would (keys written with `write!` into a `TaskVec<u8>`).
#[test]
fn a_hash_map_and_strings_in_task_memory() {
    use std::io::Write as _;
    let alloc = SmartAlloc::new(AllocConfig::default());
    let task = TaskAlloc::new(&alloc);
    let n = if cfg!(miri) { 8 } else { 200 };
    let mut names: hashbrown::HashMap<u32, AVec<u8, &TaskAlloc>, hashbrown::DefaultHashBuilder, &TaskAlloc> =
        hashbrown::HashMap::with_hasher_in(Default::default(), &task);
    for id in 0..n {
        let mut line = task.alloc_vec::<u8>();
        write!(line, "player-{id}").unwrap();
        let mut name = AVec::new_in(&task);
        name.extend_from_slice(&line);
        names.insert(id, name);
    }
    assert_eq!(names.len(), n as usize);
    assert_eq!(std::str::from_utf8(&names[&7]).unwrap(), "player-7");
    let live = task.live_bytes();
    assert!(live > u64::from(n) * 8, "the table and every name are in the task heap: {live}");
    assert_eq!(alloc.stats().task.live_bytes, live);
    names.retain(|id, _| id % 2 == 0);
    assert!(task.live_bytes() < live, "removed names gave their bytes back");
    drop(names);
    assert_eq!(task.live_bytes(), 0);
    drop(task);
    assert_eq!((alloc.stats().task.live_bytes, alloc.stats().heaps_alive), (0, 0));
}

/// The same map in a frame scope: its memory comes back when the scope ends.
#[test]
fn a_hash_map_in_a_frame_scope() {
    let alloc = SmartAlloc::new(AllocConfig::default());
    alloc.begin_frame();
    let before = alloc.stats().frame.allocations;
    let n = if cfg!(miri) { 8 } else { 500 };
    let hits = alloc.frame_scope(|f| {
        let mut seen: hashbrown::HashMap<u32, u32, hashbrown::DefaultHashBuilder, &_> =
            hashbrown::HashMap::with_hasher_in(Default::default(), f);
        for i in 0..n {
            *seen.entry(i % 37).or_insert(0) += 1;
        }
        seen.values().sum::<u32>() + seen.len() as u32
    });
    assert_eq!(hits, n + n.min(37));
    let s = alloc.stats().frame;
    assert!(s.allocations > before, "the table's blocks came from the scope: {s:?}");
    assert_eq!(s.live_bytes, 0);
    alloc.end_frame();
}
