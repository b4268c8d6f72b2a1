//! The three vectors (`FrameVec`, `TaskVec`, `PoolVec`) against `std::vec::Vec`: random
//! operation sequences compared after every step, with elements that count their drops and
//! with a zero-sized type; then the traits they share.

mod common;

use framealloc_alloc::{AllocConfig, FrameVec, PoolVec, SmartAlloc, TaskAlloc, TaskVec};
use proptest::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::hash::{BuildHasher, Hash, RandomState};
use std::io::Write;

thread_local! {
    static LIVE: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
    static NEXT: Cell<u64> = const { Cell::new(0) };
    static UNITS: Cell<isize> = const { Cell::new(0) };
}

/// An element with a unique id per instance: made and dropped exactly once, checked.
#[derive(Debug)]
struct Tracked {
    id: u64,
    val: u32,
}

impl Tracked {
    fn new(val: u32) -> Self {
        let id = NEXT.with(|n| {
            n.set(n.get() + 1);
            n.get()
        });
        LIVE.with(|l| assert!(l.borrow_mut().insert(id)));
        Self { id, val }
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        Self::new(self.val)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        LIVE.with(|l| assert!(l.borrow_mut().remove(&self.id), "element {} dropped twice", self.id));
    }
}

impl PartialEq for Tracked {
    fn eq(&self, other: &Self) -> bool {
        self.val == other.val
    }
}

/// A zero-sized element that counts the instances alive.
#[derive(Debug, PartialEq)]
struct Unit;

impl Unit {
    fn new(_: u32) -> Self {
        UNITS.with(|u| u.set(u.get() + 1));
        Unit
    }
}

impl Clone for Unit {
    fn clone(&self) -> Self {
        Unit::new(0)
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        UNITS.with(|u| u.set(u.get() - 1));
    }
}

fn live_elements() -> (usize, isize) {
    (LIVE.with(|l| l.borrow().len()), UNITS.with(Cell::get))
}

/// The operations under test, the same on each vector kind.
trait Ops<T: Clone>:
    Sized + std::ops::DerefMut<Target = [T]> + IntoIterator<Item = T, IntoIter: DoubleEndedIterator> + Clone
{
    fn push(&mut self, v: T);
    fn pop(&mut self) -> Option<T>;
    fn insert(&mut self, i: usize, v: T);
    fn remove(&mut self, i: usize) -> T;
    fn swap_remove(&mut self, i: usize) -> T;
    fn retain(&mut self, f: impl FnMut(&T) -> bool);
    /// Drains `a..b`, takes `k` items (some from the back), drops the rest.
    fn drain_some(&mut self, a: usize, b: usize, k: usize) -> Vec<T>;
    fn truncate(&mut self, n: usize);
    fn resize(&mut self, n: usize, v: T);
    fn extend_vec(&mut self, v: Vec<T>);
    fn extend_from_slice(&mut self, v: &[T]);
    fn clear(&mut self);
    fn dedup(&mut self)
    where
        T: PartialEq;
    fn capacity(&self) -> usize;
}

macro_rules! impl_ops {
    ([$($g:tt)*] $v:ty) => {
        impl<$($g)*> Ops<T> for $v {
            fn push(&mut self, v: T) { <$v>::push(self, v) }
            fn pop(&mut self) -> Option<T> { <$v>::pop(self) }
            fn insert(&mut self, i: usize, v: T) { <$v>::insert(self, i, v) }
            fn remove(&mut self, i: usize) -> T { <$v>::remove(self, i) }
            fn swap_remove(&mut self, i: usize) -> T { <$v>::swap_remove(self, i) }
            fn retain(&mut self, f: impl FnMut(&T) -> bool) { <$v>::retain(self, f) }
            fn drain_some(&mut self, a: usize, b: usize, k: usize) -> Vec<T> {
                let mut d = <$v>::drain(self, a..b);
                let mut out: Vec<T> = d.by_ref().take(k / 2).collect();
                out.extend(d.by_ref().rev().take(k - k / 2));
                out
            }
            fn truncate(&mut self, n: usize) { <$v>::truncate(self, n) }
            fn resize(&mut self, n: usize, v: T) { <$v>::resize(self, n, v) }
            fn extend_vec(&mut self, v: Vec<T>) { Extend::extend(self, v) }
            fn extend_from_slice(&mut self, v: &[T]) { <$v>::extend_from_slice(self, v) }
            fn clear(&mut self) { <$v>::clear(self) }
            fn dedup(&mut self) where T: PartialEq { <$v>::dedup(self) }
            fn capacity(&self) -> usize { <$v>::capacity(self) }
        }
    };
}

impl_ops!(['a, T: Clone] FrameVec<'a, T>);
impl_ops!(['a, T: Clone] TaskVec<'a, T>);
impl_ops!([T: Clone] PoolVec<T>);

#[derive(Clone, Debug)]
enum Op {
    Push(u32),
    Pop,
    Insert(usize, u32),
    Remove(usize),
    SwapRemove(usize),
    Retain(u32),
    Drain(usize, usize, usize),
    Truncate(usize),
    Resize(usize, u32),
    Extend(Vec<u32>),
    ExtendFromSlice(Vec<u32>),
    Clear,
    Dedup,
    /// Takes this many items by value (some from the back), drops the rest, starts empty.
    IntoIter(usize),
    /// Replaces the vector with its clone.
    Clone,
}

fn op() -> impl Strategy<Value = Op> {
    let v = 0..4u32;
    prop_oneof![
        6 => v.clone().prop_map(Op::Push),
        2 => Just(Op::Pop),
        2 => (any::<usize>(), v.clone()).prop_map(|(i, x)| Op::Insert(i, x)),
        2 => any::<usize>().prop_map(Op::Remove),
        2 => any::<usize>().prop_map(Op::SwapRemove),
        1 => (1..4u32).prop_map(Op::Retain),
        2 => (any::<usize>(), any::<usize>(), 0..6usize).prop_map(|(a, b, k)| Op::Drain(a, b, k)),
        1 => (0..12usize).prop_map(Op::Truncate),
        1 => (0..20usize, v.clone()).prop_map(|(n, x)| Op::Resize(n, x)),
        2 => proptest::collection::vec(v.clone(), 0..10).prop_map(Op::Extend),
        1 => proptest::collection::vec(v, 0..10).prop_map(Op::ExtendFromSlice),
        1 => Just(Op::Clear),
        1 => Just(Op::Dedup),
        1 => (0..6usize).prop_map(Op::IntoIter),
        1 => Just(Op::Clone),
    ]
}

/// Applies `ops` to a vector from `new` and to a `Vec`, comparing after every step.
fn run<T: Clone + PartialEq + std::fmt::Debug, V: Ops<T>>(ops: &[Op], new: impl Fn() -> V, mk: impl Fn(u32) -> T) {
    let mut v = new();
    let mut m: Vec<T> = Vec::new();
    for op in ops {
        match op {
            Op::Push(x) => {
                v.push(mk(*x));
                m.push(mk(*x));
            }
            Op::Pop => assert_eq!(v.pop(), m.pop()),
            Op::Insert(i, x) => {
                let i = i % (m.len() + 1);
                v.insert(i, mk(*x));
                m.insert(i, mk(*x));
            }
            Op::Remove(i) if !m.is_empty() => {
                let i = i % m.len();
                assert_eq!(v.remove(i), m.remove(i));
            }
            Op::SwapRemove(i) if !m.is_empty() => {
                let i = i % m.len();
                assert_eq!(v.swap_remove(i), m.swap_remove(i));
            }
            Op::Remove(_) | Op::SwapRemove(_) => {}
            Op::Retain(k) => {
                // Keeps every k-th element seen, so the predicate depends on more than the value.
                let (mut a, mut b) = (0, 0);
                v.retain(|_| {
                    a += 1;
                    a % k != 0
                });
                m.retain(|_| {
                    b += 1;
                    b % k != 0
                });
            }
            Op::Drain(a, b, k) => {
                let (mut a, mut b) = (a % (m.len() + 1), b % (m.len() + 1));
                if a > b {
                    std::mem::swap(&mut a, &mut b);
                }
                let got = v.drain_some(a, b, *k);
                let mut d = m.drain(a..b);
                let mut want: Vec<T> = d.by_ref().take(k / 2).collect();
                want.extend(d.by_ref().rev().take(k - k / 2));
                drop(d);
                assert_eq!(got, want);
            }
            Op::Truncate(n) => {
                v.truncate(*n);
                m.truncate(*n);
            }
            Op::Resize(n, x) => {
                v.resize(*n, mk(*x));
                m.resize(*n, mk(*x));
            }
            Op::Extend(xs) => {
                v.extend_vec(xs.iter().map(|x| mk(*x)).collect());
                m.extend(xs.iter().map(|x| mk(*x)));
            }
            Op::ExtendFromSlice(xs) => {
                let src: Vec<T> = xs.iter().map(|x| mk(*x)).collect();
                v.extend_from_slice(&src);
                m.extend_from_slice(&src);
            }
            Op::Clear => {
                v.clear();
                m.clear();
            }
            Op::Dedup => {
                v.dedup();
                m.dedup();
            }
            Op::IntoIter(k) => {
                let mut it = std::mem::replace(&mut v, new()).into_iter();
                let mut mi = std::mem::take(&mut m).into_iter();
                for i in 0..*k {
                    if i % 2 == 0 {
                        assert_eq!(it.next(), mi.next());
                    } else {
                        assert_eq!(it.next_back(), mi.next_back());
                    }
                }
            }
            Op::Clone => {
                let c = v.clone();
                assert_eq!(&c[..], &v[..]);
                v = c;
            }
        }
        assert_eq!(&v[..], &m[..]);
        assert!(v.capacity() >= v.len());
    }
}

fn check_empty(alloc: &SmartAlloc) {
    let s = alloc.stats();
    assert_eq!((s.frame.live_bytes, s.task.live_bytes, s.pool.live_bytes), (0, 0, 0), "live bytes after the run");
    assert_eq!(live_elements(), (0, 0), "elements leaked");
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 0..if cfg!(miri) { 10 } else { 120 })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 2 } else { 128 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn frame_vec_matches_vec(ops in ops()) {
        let alloc = SmartAlloc::default();
        run(&ops, || alloc.frame_vec(), Tracked::new);
        run(&ops, || alloc.frame_vec(), Unit::new);
        check_empty(&alloc);
    }

    #[test]
    fn task_vec_matches_vec(ops in ops()) {
        let alloc = SmartAlloc::default();
        let task = TaskAlloc::new(&alloc);
        run(&ops, || task.alloc_vec(), Tracked::new);
        run(&ops, || task.alloc_vec(), Unit::new);
        assert_eq!(task.live_bytes(), 0);
        drop(task);
        check_empty(&alloc);
    }

    #[test]
    fn pool_vec_matches_vec(ops in ops()) {
        let alloc = SmartAlloc::default();
        run(&ops, || alloc.pool_vec(), Tracked::new);
        run(&ops, || alloc.pool_vec(), Unit::new);
        check_empty(&alloc);
    }
}

/// `io::Write` appends; a failed allocation is an `OutOfMemory` error, not a panic.
#[test]
fn io_write_appends_and_reports_out_of_memory() {
    let alloc = SmartAlloc::new(AllocConfig::default().with_frame_budget(4096).with_task_heap_budget(64 * 1024));
    let task = TaskAlloc::new(&alloc);
    let mut f = alloc.frame_vec::<u8>();
    let mut t = task.alloc_vec::<u8>();
    let mut p = alloc.pool_vec::<u8>();
    write!(f, "frame {}", 1).unwrap();
    write!(t, "task {}", 2).unwrap();
    write!(p, "pool {}", 3).unwrap();
    assert_eq!((&f[..], &t[..], &p[..]), (&b"frame 1"[..], &b"task 2"[..], &b"pool 3"[..]));
    assert_eq!(f.write(b"!").unwrap(), 1);
    f.flush().unwrap();
    assert_eq!(f, *b"frame 1!");
    let big = vec![0u8; 128 * 1024];
    for e in [f.write_all(&big).unwrap_err(), t.write_all(&big).unwrap_err()] {
        assert_eq!(e.kind(), std::io::ErrorKind::OutOfMemory);
        let inner = e.into_inner().expect("wraps the AllocError");
        assert!(inner.downcast_ref::<framealloc_alloc::AllocError>().expect("an AllocError").is_budget());
    }
    assert_eq!(f, *b"frame 1!", "unchanged after the failure");
    assert_eq!(t, *b"task 2");
    drop((f, t, p));
    drop(task);
    check_empty(&alloc);
}

fn hash_of<H: Hash + ?Sized>(h: &RandomState, x: &H) -> u64 {
    h.hash_one(x)
}

/// Hash, Eq, Ord, Borrow agree with the slice's and with `Vec`'s.
#[test]
fn comparison_traits_agree_with_slices() {
    let alloc = SmartAlloc::default();
    let task = TaskAlloc::new(&alloc);
    let f = alloc.frame_vec_from_iter([1u32, 2, 3]);
    let t = task.alloc_vec_from_iter([1u32, 2, 3]);
    let p = alloc.pool_vec_from_iter([1u32, 2, 3]);
    let std_v = vec![1u32, 2, 3];
    let h = RandomState::new();
    for x in [hash_of(&h, &f), hash_of(&h, &t), hash_of(&h, &p), hash_of(&h, &std_v)] {
        assert_eq!(x, hash_of(&h, &[1u32, 2, 3][..]));
    }
    assert_eq!(f, std_v);
    assert_eq!(t, std_v);
    assert_eq!(p, std_v);
    assert_eq!(std_v, f);
    assert_eq!(std_v, t);
    assert_eq!(std_v, p);
    assert_eq!(f, [1, 2, 3]);
    assert_eq!(t, [1, 2, 3][..]);
    assert_eq!(p, &[1, 2, 3][..]);
    assert_eq!(p, &[1, 2, 3]);
    assert_eq!([1, 2, 3][..], p);
    assert_eq!(f, t);
    assert_eq!(t, p);
    assert_eq!(p, f);
    assert_ne!(p, [1, 2]);
    let mut q = alloc.pool_vec_from_iter([1u32, 2, 4]);
    assert!(p < q);
    assert!(q > p);
    assert_eq!(p.cmp(&q), std::cmp::Ordering::Less);
    assert_eq!(p.partial_cmp(&p.clone()), Some(std::cmp::Ordering::Equal));
    q.pop();
    assert!(q < p, "a prefix sorts first");
    let set: HashSet<PoolVec<u32>> = [p.clone(), q].into_iter().collect();
    assert!(set.contains(&[1u32, 2, 3][..]), "Borrow<[T]> looks up by slice");
    let r: &[u32] = p.as_ref();
    assert_eq!(r, [1, 2, 3]);
    assert_eq!(format!("{f:?} {t:?} {p:?}"), "[1, 2, 3] [1, 2, 3] [1, 2, 3]");
    drop((f, t, p, set));
    drop(task);
    check_empty(&alloc);
}

/// Clones go into the same kind of memory; `Extend<&T>`, borrowing iterators and the
/// `with_capacity` constructors.
#[test]
fn clones_stay_in_their_memory_and_extend_by_reference() {
    let alloc = SmartAlloc::default();
    let task = TaskAlloc::new(&alloc);
    let mut f = alloc.frame_vec_with_capacity::<u64>(4);
    assert_eq!(f.capacity(), 4);
    f.extend(&[1, 2]);
    let f2 = f.clone();
    assert_eq!(alloc.stats().frame.live_bytes, 8 * (4 + 2));
    let mut t = task.alloc_vec_with_capacity::<u64>(3);
    t.extend([5, 6].iter());
    let t2 = t.clone();
    assert_eq!(task.live_bytes(), 8 * (3 + 2), "the clone is in the same TaskAlloc");
    let mut p = alloc.pool_vec_with_capacity::<u64>(2);
    p.extend(&[7, 8]);
    let p2 = p.clone();
    assert_eq!(alloc.stats().pool.live_bytes, 8 * 4);
    for x in &mut p {
        *x += 1;
    }
    assert_eq!((&p).into_iter().sum::<u64>(), 17);
    assert_eq!(p2, [7, 8]);
    assert_eq!(f2.into_iter().chain(t2).collect::<Vec<_>>(), [1, 2, 5, 6]);
    assert!(alloc.try_frame_vec_with_capacity::<u64>(usize::MAX / 4).unwrap_err().is_capacity_overflow());
    drop((f, t, p, p2));
    drop(task);
    check_empty(&alloc);
}

/// A panicking drop during `into_iter`'s, `drain`'s or `retain`'s cleanup drops everything
/// else once and frees the buffer.
#[test]
fn cleanup_survives_a_panicking_drop() {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    struct Bomb(#[allow(dead_code)] Tracked, bool);
    impl Drop for Bomb {
        fn drop(&mut self) {
            if self.1 {
                panic!("boom");
            }
        }
    }
    let alloc = SmartAlloc::default();
    let bombs = || (0..5).map(|i| Bomb(Tracked::new(i), i == 2));
    let r = catch_unwind(AssertUnwindSafe(|| {
        let mut it = alloc.pool_vec_from_iter(bombs()).into_iter();
        drop(it.next());
    }));
    assert!(r.is_err());
    check_empty(&alloc);
    let r = catch_unwind(AssertUnwindSafe(|| {
        let mut v = alloc.frame_vec_from_iter(bombs());
        drop(v.drain(1..4));
    }));
    assert!(r.is_err());
    check_empty(&alloc);
    let task = TaskAlloc::new(&alloc);
    let r = catch_unwind(AssertUnwindSafe(|| {
        let mut v = task.alloc_vec_from_iter(bombs());
        v.retain(|b| !b.1);
    }));
    assert!(r.is_err());
    drop(task);
    check_empty(&alloc);
}

/// Index checks panic with `Vec`'s messages.
#[test]
fn out_of_range_indices_panic() {
    let alloc = SmartAlloc::default();
    let msg =
        |f: &dyn Fn()| common::panic_message(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_err());
    let v = std::cell::RefCell::new(alloc.pool_vec_from_iter([1u8, 2]));
    assert_eq!(msg(&|| v.borrow_mut().insert(3, 0)), "insertion index (is 3) should be <= len (is 2)");
    assert_eq!(
        msg(&|| {
            v.borrow_mut().remove(2);
        }),
        "removal index (is 2) should be < len (is 2)"
    );
    assert_eq!(msg(&|| drop(v.borrow_mut().drain(1..3))), "range end index 3 out of range for slice of length 2");
    assert_eq!(
        msg(&|| {
            let (a, b) = (2, 1);
            drop(v.borrow_mut().drain(a..b))
        }),
        "slice index starts at 2 but ends at 1"
    );
    assert_eq!(*v.borrow(), [1, 2]);
}
