//! The `tokio_compat` bench's request handlers as a plain program, for instruction counts:
//! machines here are shared and noisy, callgrind's counts are not.
//!
//! ```text
//! cargo build --release --features tokio --example tokio_handler_probe
//! P=target/release/examples/tokio_handler_probe
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null $P objects framealloc 5
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null $P objects framealloc 25
//! ```
//!
//! The difference of the two totals over 20 × 256 tasks is the cost per task. Workloads:
//! `bytes`, `objects`; cases: `no_alloc`, `system`, `mimalloc`, `framealloc` (per-task heap,
//! `pool_*`), `task_alloc` (`TaskAlloc` in a plain tokio task). Run without arguments, it runs
//! every case once and prints the wall time of each (a smoke test, not a benchmark).

use allocator_api2::alloc::{AllocError, Allocator};
use framealloc::{SmartAlloc, TaskAlloc};
use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::ptr::NonNull;

const TASKS: usize = 256;
const ALLOCS: usize = 64;

/// 64 sizes from 16 to 256 bytes (as in the bench).
const SIZES: [usize; ALLOCS] = {
    let mut s = [0; ALLOCS];
    let mut i = 0;
    while i < ALLOCS {
        s[i] = 16 + (i * 61) % 241;
        i += 1;
    }
    s
};

/// mimalloc as an `allocator-api2` allocator.
#[derive(Clone, Copy)]
struct Mi;

// SAFETY: blocks come from mimalloc with their layout and stay valid until `deallocate`;
// zero-sized requests get a dangling, aligned pointer and are never passed to mimalloc.
unsafe impl Allocator for Mi {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            let p = NonNull::new(layout.align() as *mut u8).ok_or(AllocError)?;
            return Ok(NonNull::slice_from_raw_parts(p, 0));
        }
        // SAFETY: `layout` has a non-zero size.
        let p = unsafe { GlobalAlloc::alloc(&mimalloc::MiMalloc, layout) };
        NonNull::new(p).map(|p| NonNull::slice_from_raw_parts(p, layout.size())).ok_or(AllocError)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: `ptr` came from `allocate` with this non-zero `layout` (caller).
            unsafe { GlobalAlloc::dealloc(&mimalloc::MiMalloc, ptr.as_ptr(), layout) };
        }
    }
}

async fn no_alloc() -> u64 {
    let held: [[u8; 16]; ALLOCS] = [[7; 16]; ALLOCS];
    tokio::task::yield_now().await;
    black_box(&held).iter().map(|v| u64::from(v[0])).sum()
}

/// 64 byte buffers made with `$make(size)`, one byte pushed into each, held across a yield.
macro_rules! bytes_handler {
    ($make:expr) => {{
        let held: [_; ALLOCS] = std::array::from_fn(|i| {
            let mut v = $make(SIZES[i]);
            v.push(7u8);
            v
        });
        tokio::task::yield_now().await;
        black_box(&held).iter().map(|v| u64::from(v[0])).sum::<u64>()
    }};
}

/// 16 each of 16, 64, 128 and 256-byte objects made with `$make`, held across a yield.
macro_rules! objects_handler {
    ($make:expr) => {{
        let a: [_; 16] = std::array::from_fn(|_| $make([7u8; 16]));
        let b: [_; 16] = std::array::from_fn(|_| $make([7u8; 64]));
        let c: [_; 16] = std::array::from_fn(|_| $make([7u8; 128]));
        let d: [_; 16] = std::array::from_fn(|_| $make([7u8; 256]));
        tokio::task::yield_now().await;
        let first = |x: &[u8]| u64::from(x[0]);
        black_box(&a).iter().map(|x| first(&x[..])).sum::<u64>()
            + black_box(&b).iter().map(|x| first(&x[..])).sum::<u64>()
            + black_box(&c).iter().map(|x| first(&x[..])).sum::<u64>()
            + black_box(&d).iter().map(|x| first(&x[..])).sum::<u64>()
    }};
}

fn spawn_one(rt: &tokio::runtime::Runtime, alloc: &SmartAlloc, workload: &str, case: &str) -> tokio::task::JoinHandle<u64> {
    let _guard = rt.enter();
    let a = alloc.clone();
    match (workload, case) {
        (_, "no_alloc") => tokio::spawn(no_alloc()),
        ("bytes", "system") => tokio::spawn(async { bytes_handler!(Vec::with_capacity) }),
        ("bytes", "mimalloc") => {
            tokio::spawn(async { bytes_handler!(|n| allocator_api2::vec::Vec::with_capacity_in(n, Mi)) })
        }
        ("bytes", "framealloc") => framealloc::tokio::spawn(async move {
            bytes_handler!(|n| {
                let mut v = a.pool_vec();
                v.reserve(n);
                v
            })
        }),
        ("bytes", "task_alloc") => tokio::spawn(async move {
            let task = TaskAlloc::new(&a);
            bytes_handler!(|n| {
                let mut v = task.alloc_vec();
                v.reserve(n);
                v
            })
        }),
        ("objects", "system") => tokio::spawn(async { objects_handler!(Box::new) }),
        ("objects", "mimalloc") => tokio::spawn(async { objects_handler!(|v| allocator_api2::boxed::Box::new_in(v, Mi)) }),
        ("objects", "framealloc") => framealloc::tokio::spawn(async move { objects_handler!(|v| a.pool_box(v)) }),
        ("objects", "task_alloc") => tokio::spawn(async move {
            let task = TaskAlloc::new(&a);
            objects_handler!(|v| task.alloc_box(v))
        }),
        _ => panic!("unknown workload {workload:?} or case {case:?} (see the module docs)"),
    }
}

/// Runs `TASKS` tasks of the case `rounds` times and checks their results.
fn run(rt: &tokio::runtime::Runtime, alloc: &SmartAlloc, workload: &str, case: &str, rounds: usize) {
    for _ in 0..rounds {
        let handles: Vec<_> = (0..TASKS).map(|_| spawn_one(rt, alloc, workload, case)).collect();
        let sum: u64 = rt.block_on(async {
            let mut sum = 0;
            for h in handles {
                sum += h.await.expect("handler task");
            }
            sum
        });
        assert_eq!(sum, (TASKS * ALLOCS * 7) as u64);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("tokio runtime");
    let alloc = SmartAlloc::new(Default::default());
    match args.as_slice() {
        [workload, case, rounds] => {
            let rounds = rounds.parse().expect("rounds: a number");
            run(&rt, &alloc, workload, case, rounds);
        }
        [] => {
            for workload in ["bytes", "objects"] {
                for case in ["no_alloc", "system", "mimalloc", "framealloc", "task_alloc"] {
                    let start = std::time::Instant::now();
                    run(&rt, &alloc, workload, case, 1);
                    println!("{workload:8} {case:12} {:>8.1?}", start.elapsed());
                }
            }
        }
        _ => panic!("usage: tokio_handler_probe [WORKLOAD CASE ROUNDS] (see the module docs)"),
    }
    let s = alloc.stats();
    assert_eq!((s.task.live_bytes, s.heaps_alive), (0, 0), "{s:?}");
}
