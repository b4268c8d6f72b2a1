//! Model-based property tests: random sequences of frame, task and pool operations run
//! against the allocator and a plain model; contents and stats are checked after every step.

mod common;

use framealloc_alloc::{AsyncPoolGuard, FrameBox, FrameVec, PoolBox, PoolVec, SmartAlloc, TaskAlloc, TaskBox, TaskVec};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    FrameSmall(u64),
    FrameBig(u64),
    FrameVecPush(usize, u64),
    DropFrame(usize),
    BeginFrame,
    EndFrame,
    TaskSmall(u64),
    TaskBig(u64),
    TaskVecPush(usize, u16),
    DropTask(usize),
    PoolSmall(u64),
    PoolVecPush(usize, u32),
    DropPool(usize),
    OpenGuard,
    CloseGuard,
    /// Drops the task heap (and everything borrowed from it) and starts a new one.
    NewHeap,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u64>().prop_map(Op::FrameSmall),
        1 => any::<u64>().prop_map(Op::FrameBig),
        2 => (0..8usize, any::<u64>()).prop_map(|(i, v)| Op::FrameVecPush(i, v)),
        3 => (0..64usize).prop_map(Op::DropFrame),
        1 => Just(Op::BeginFrame),
        1 => Just(Op::EndFrame),
        4 => any::<u64>().prop_map(Op::TaskSmall),
        1 => any::<u64>().prop_map(Op::TaskBig),
        2 => (0..8usize, any::<u16>()).prop_map(|(i, v)| Op::TaskVecPush(i, v)),
        3 => (0..64usize).prop_map(Op::DropTask),
        3 => any::<u64>().prop_map(Op::PoolSmall),
        2 => (0..8usize, any::<u32>()).prop_map(|(i, v)| Op::PoolVecPush(i, v)),
        3 => (0..64usize).prop_map(Op::DropPool),
        1 => Just(Op::OpenGuard),
        1 => Just(Op::CloseGuard),
        1 => Just(Op::NewHeap),
    ]
}

/// Frame and pool state that survives a task heap change.
struct Outer<'a> {
    alloc: &'a SmartAlloc,
    frame_open: bool,
    frame_small: Vec<(FrameBox<'a, u64>, u64)>,
    frame_big: Vec<(FrameBox<'a, [u64; 40]>, u64)>,
    frame_vecs: Vec<(FrameVec<'a, u64>, Vec<u64>)>,
    pool: Vec<(PoolBox<u64>, u64, Option<usize>)>,
    pool_vecs: Vec<(PoolVec<u32>, Vec<u32>, Option<usize>)>,
    /// Open guards and how many live allocations each scope holds in the model.
    guards: Vec<(AsyncPoolGuard, usize)>,
}

struct Inner<'t> {
    small: Vec<(TaskBox<'t, u64>, u64)>,
    big: Vec<(TaskBox<'t, [u64; 40]>, u64)>,
    vecs: Vec<(TaskVec<'t, u16>, Vec<u16>)>,
}

impl Outer<'_> {
    fn guard_of_new(&mut self) -> Option<usize> {
        let g = self.guards.len().checked_sub(1)?;
        self.guards[g].1 += 1;
        Some(g)
    }

    fn leave(&mut self, g: Option<usize>) {
        if let Some(g) = g {
            if g < self.guards.len() {
                self.guards[g].1 -= 1;
            }
        }
    }
}

fn check(outer: &Outer<'_>, inner: &Inner<'_>, task: &TaskAlloc) {
    let s = outer.alloc.stats();
    let mut frame = 0u64;
    for (b, v) in &outer.frame_small {
        assert_eq!(**b, *v);
        frame += 8;
    }
    for (b, v) in &outer.frame_big {
        assert!(b.iter().all(|x| x == v));
        frame += 320;
    }
    for (fv, m) in &outer.frame_vecs {
        assert_eq!(&**fv, &m[..]);
        frame += 8 * fv.capacity() as u64;
    }
    assert_eq!(s.frame.live_bytes, frame, "frame live bytes");
    let mut task_bytes = 0u64;
    for (b, v) in &inner.small {
        assert_eq!(**b, *v);
        task_bytes += 8;
    }
    for (b, v) in &inner.big {
        assert!(b.iter().all(|x| x == v));
        task_bytes += 320;
    }
    for (tv, m) in &inner.vecs {
        assert_eq!(&**tv, &m[..]);
        task_bytes += 2 * tv.capacity() as u64;
    }
    assert_eq!(task.live_bytes(), task_bytes, "task heap live bytes");
    let mut pool_bytes = 0u64;
    for (b, v, _) in &outer.pool {
        assert_eq!(**b, *v);
        pool_bytes += 8;
    }
    for (pv, m, _) in &outer.pool_vecs {
        assert_eq!(&**pv, &m[..]);
        pool_bytes += 4 * pv.capacity() as u64;
    }
    assert_eq!(s.task.live_bytes, task_bytes, "only the TaskAlloc is a task heap here");
    assert_eq!(s.pool.live_bytes, pool_bytes, "pool live bytes");
    for (g, n) in &outer.guards {
        assert_eq!(g.escaped(), *n, "guard scope count");
    }
    assert!(s.frame.high_water_bytes >= s.frame.live_bytes);
}

fn pick<T>(v: &mut Vec<T>, i: usize) -> Option<T> {
    if v.is_empty() {
        None
    } else {
        let n = v.len();
        Some(v.swap_remove(i % n))
    }
}

fn run(ops: Vec<Op>) {
    let alloc = SmartAlloc::default();
    let mut outer = Outer {
        alloc: &alloc,
        frame_open: false,
        frame_small: Vec::new(),
        frame_big: Vec::new(),
        frame_vecs: Vec::new(),
        pool: Vec::new(),
        pool_vecs: Vec::new(),
        guards: Vec::new(),
    };
    // One segment per task heap: `NewHeap` ends a segment (dropping the heap with all its
    // handles) and the next one starts with a fresh `TaskAlloc`.
    for segment in ops.split(|o| matches!(o, Op::NewHeap)) {
        let task = TaskAlloc::new(&alloc);
        let mut inner = Inner { small: Vec::new(), big: Vec::new(), vecs: Vec::new() };
        for op in segment {
            apply(op, &mut outer, &mut inner, &task);
            check(&outer, &inner, &task);
        }
        drop(inner);
        drop(task);
        assert_eq!(alloc.stats().task.live_bytes, 0);
        assert_eq!(alloc.stats().heaps_alive, 0);
    }
    outer.guards.clear();
    drop(outer);
    let s = alloc.stats();
    assert_eq!((s.frame.live_bytes, s.task.live_bytes, s.pool.live_bytes, s.quarantined_chunks), (0, 0, 0, 0));
}

fn apply<'a, 't>(op: &Op, o: &mut Outer<'a>, i: &mut Inner<'t>, task: &'t TaskAlloc) {
    match *op {
        Op::FrameSmall(v) => {
            let b = o.alloc.frame_box(v);
            o.frame_small.push((b, v));
        }
        Op::FrameBig(v) => {
            let b = o.alloc.frame_box([v; 40]);
            o.frame_big.push((b, v));
        }
        Op::FrameVecPush(k, v) => {
            if o.frame_vecs.len() <= k {
                o.frame_vecs.push((o.alloc.frame_vec(), Vec::new()));
            }
            let n = o.frame_vecs.len();
            let (fv, m) = &mut o.frame_vecs[k % n];
            fv.push(v);
            m.push(v);
        }
        Op::DropFrame(k) => match k % 3 {
            0 => drop(pick(&mut o.frame_small, k)),
            1 => drop(pick(&mut o.frame_big, k)),
            _ => drop(pick(&mut o.frame_vecs, k)),
        },
        Op::BeginFrame => {
            if !o.frame_open {
                o.alloc.begin_frame();
                o.frame_open = true;
            }
        }
        Op::EndFrame => {
            if o.frame_open {
                o.alloc.end_frame();
                o.frame_open = false;
            }
        }
        Op::TaskSmall(v) => i.small.push((task.alloc_box(v), v)),
        Op::TaskBig(v) => i.big.push((task.alloc_box([v; 40]), v)),
        Op::TaskVecPush(k, v) => {
            if i.vecs.len() <= k {
                i.vecs.push((task.alloc_vec(), Vec::new()));
            }
            let n = i.vecs.len();
            let (tv, m) = &mut i.vecs[k % n];
            tv.push(v);
            m.push(v);
        }
        Op::DropTask(k) => match k % 3 {
            0 => drop(pick(&mut i.small, k)),
            1 => drop(pick(&mut i.big, k)),
            _ => drop(pick(&mut i.vecs, k)),
        },
        Op::PoolSmall(v) => {
            let b = o.alloc.pool_box(v);
            let g = o.guard_of_new();
            o.pool.push((b, v, g));
        }
        Op::PoolVecPush(k, v) => {
            if o.pool_vecs.len() <= k {
                let pv = o.alloc.pool_vec();
                let g = o.guard_of_new();
                o.pool_vecs.push((pv, Vec::new(), g));
            }
            let n = o.pool_vecs.len();
            let (pv, m, _) = &mut o.pool_vecs[k % n];
            pv.push(v);
            m.push(v);
        }
        Op::DropPool(k) => {
            let g = if k % 2 == 0 {
                pick(&mut o.pool, k).map(|(_, _, g)| g)
            } else {
                pick(&mut o.pool_vecs, k).map(|(_, _, g)| g)
            };
            if let Some(g) = g {
                o.leave(g);
            }
        }
        Op::OpenGuard => {
            let g = AsyncPoolGuard::new(o.alloc);
            o.guards.push((g, 0));
        }
        Op::CloseGuard => {
            if let Some((g, n)) = o.guards.pop() {
                assert_eq!(g.escaped(), n);
                let idx = o.guards.len();
                // Allocations of the closed scope no longer count anywhere in the model.
                for (_, _, gi) in o.pool.iter_mut() {
                    if *gi == Some(idx) {
                        *gi = None;
                    }
                }
                for (_, _, gi) in o.pool_vecs.iter_mut() {
                    if *gi == Some(idx) {
                        *gi = None;
                    }
                }
            }
        }
        Op::NewHeap => unreachable!("segments are split on NewHeap"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 256 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_operations_match_the_model(ops in proptest::collection::vec(op(), 0..if cfg!(miri) { 40 } else { 200 })) {
        run(ops);
    }
}
