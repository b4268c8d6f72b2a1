//! Side-by-side allocation benchmarks: framealloc against bumpalo, the system allocator and
//! mimalloc, each peer in the same criterion group as the framealloc form it compares with.
//!
//! Run with `cargo bench --bench alloc` (about 1.5 minutes of measurement on a 2-core machine,
//! after the build). Groups:
//!
//! 1. `frame_alloc` — 1000 frame allocations of 16/32/64 bytes then a reset, per element.
//!    * `bumpalo`: `Bump::alloc` ×1000, then `Bump::reset()` (a default `Bump::new()`; after the
//!      first reset it keeps its largest chunk, so the steady state is one chunk).
//!    * `bumpalo+vec`: the same, also storing each returned pointer in a pre-allocated `Vec`:
//!      the control for `frame_box/alloc`, which must store its handles.
//!    * `frame_scope`: `alloc.frame_scope(|f| ×1000 f.alloc(v))`; the scope exit is the reset.
//!    * `frame_box/alloc`: `begin_frame`, ×1000 `frame_box(v)` pushed into a pre-allocated
//!      `Vec` (a `FrameBox` must be kept alive, not forgotten: a forgotten counted handle keeps
//!      its chunk quarantined forever), `end_frame`; timed. The handles are then dropped
//!      *untimed* (bumpalo has no per-allocation drop), before the next `begin_frame`.
//!    * `frame_box/alloc+drop`: the same with the 1000 handle drops timed too: the full cost
//!      of the counted API.
//!
//!    All framealloc forms use `AllocConfig::default()` (16 KiB first frame chunk, doubling).
//! 2. `begin_frame` — one `begin_frame()` after a frame of 1,000 / 10,000 / 1,000,000
//!    allocations. Untimed setup per iteration: `begin_frame`, N × `frame_box([u8; 16])` kept in
//!    a pre-allocated `Vec`, drop the handles, `end_frame`. Then only `begin_frame()` is timed
//!    (one `Instant` pair, ~20-40 ns of timer overhead included), followed by an untimed
//!    `end_frame()`. `frame_scope` allocations cannot be used (the scope rewinds them) and
//!    `mem::forget(frame_box(..))` would leak a counted handle and quarantine its chunk; dropped
//!    `frame_box` handles leave the arena full of recycled-but-unrewound memory across as many
//!    chunks as N needs, which is exactly what `begin_frame` must recycle. At N = 1,000,000
//!    the setup streams ~32 MB (arena + handle `Vec`), so the timed call starts with cold
//!    caches: compare instruction counts (callgrind) for the O(1) claim, not only wall time.
//! 3. `task_alloc_free` / `task_alloc_free_batch64` — alloc+free of 16/64/256-byte values:
//!    `TaskAlloc::alloc_box(v)` (and `alloc_with(|| v)`, which allocates before building the
//!    value, in the same order as the raw peers) then drop (the `TaskAlloc` made once, outside the loop, on the
//!    bench thread, which is its owner), against `System` and `mimalloc::MiMalloc` used directly
//!    through `GlobalAlloc::alloc`/`dealloc` (the bench binary's global allocator stays the system
//!    one). Single pairs, and batches of 64 allocations followed by 64 frees in allocation
//!    order (pointers/handles kept in a pre-allocated `Vec` for every contender).
//! 4. `heap_drop_10k` — releasing 10,000 live 64-byte allocations: `drop(TaskAlloc)` after
//!    10,000 `mem::forget(task.alloc_box(..))` (the heap reclaims them), against freeing
//!    10,000 `System` / `MiMalloc` blocks one by one. Setup untimed (`iter_batched`,
//!    one input per iteration).

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use framealloc::{AllocConfig, FrameBox, SmartAlloc, TaskAlloc};
use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Allocations per frame in `frame_alloc`.
const FRAME_BATCH: usize = 1000;
/// Allocations per batch in `task_alloc_free_batch64`.
const TASK_BATCH: usize = 64;
/// Allocations released in `heap_drop_10k`.
const HEAP_ALLOCS: usize = 10_000;

/// The value every contender writes: `N` copies of an opaque byte. The seed goes through
/// `black_box`, not the array: an array forced through memory is re-read in pieces by some
/// inlined paths (bumpalo's `alloc` copies it as two `u64`s and re-reads it as one 16-byte
/// load), and the resulting store-forwarding stall, not the allocator, then dominates.
#[inline(always)]
fn value<const N: usize>(seed: u8) -> [u8; N] {
    [black_box(seed); N]
}

// ---------------------------------------------------------------------------------------------
// 1. frame allocation vs bumpalo

fn frame_alloc_sized<const N: usize>(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_alloc");
    g.throughput(Throughput::Elements(FRAME_BATCH as u64));

    g.bench_function(BenchmarkId::new("bumpalo", N), |b| {
        let mut bump = bumpalo::Bump::new();
        b.iter(|| {
            for i in 0..FRAME_BATCH {
                let r = bump.alloc(value::<N>(i as u8));
                black_box(&*r);
            }
            bump.reset();
        });
    });

    g.bench_function(BenchmarkId::new("bumpalo+vec", N), |b| {
        let mut bump = bumpalo::Bump::new();
        let mut kept: Vec<*mut [u8; N]> = Vec::with_capacity(FRAME_BATCH);
        b.iter(|| {
            for i in 0..FRAME_BATCH {
                let r: *mut [u8; N] = bump.alloc(value::<N>(i as u8));
                kept.push(r);
            }
            black_box(&kept);
            kept.clear();
            bump.reset();
        });
    });

    g.bench_function(BenchmarkId::new("frame_scope", N), |b| {
        let alloc = SmartAlloc::new(AllocConfig::default());
        alloc.begin_frame();
        b.iter(|| {
            alloc.frame_scope(|f| {
                for i in 0..FRAME_BATCH {
                    let r = f.alloc(value::<N>(i as u8));
                    black_box(&*r);
                }
            })
        });
        alloc.end_frame();
    });

    g.bench_function(BenchmarkId::new("frame_box/alloc", N), |b| {
        let alloc = SmartAlloc::new(AllocConfig::default());
        let mut kept: Vec<FrameBox<'_, [u8; N]>> = Vec::with_capacity(FRAME_BATCH);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t0 = Instant::now();
                alloc.begin_frame();
                for i in 0..FRAME_BATCH {
                    kept.push(alloc.frame_box(value::<N>(i as u8)));
                }
                black_box(&kept);
                alloc.end_frame();
                total += t0.elapsed();
                kept.clear(); // untimed drops, before the next begin_frame
            }
            total
        });
    });

    g.bench_function(BenchmarkId::new("frame_box/alloc+drop", N), |b| {
        let alloc = SmartAlloc::new(AllocConfig::default());
        let mut kept: Vec<FrameBox<'_, [u8; N]>> = Vec::with_capacity(FRAME_BATCH);
        b.iter(|| {
            alloc.begin_frame();
            for i in 0..FRAME_BATCH {
                kept.push(alloc.frame_box(value::<N>(i as u8)));
            }
            black_box(&kept);
            kept.clear();
            alloc.end_frame();
        });
    });

    g.finish();
}

fn frame_alloc(c: &mut Criterion) {
    frame_alloc_sized::<16>(c);
    frame_alloc_sized::<32>(c);
    frame_alloc_sized::<64>(c);
}

// ---------------------------------------------------------------------------------------------
// 2. begin_frame is O(1) in the number of allocations of the frame it recycles

fn begin_frame(c: &mut Criterion) {
    let mut g = c.benchmark_group("begin_frame");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(2));
    for &n in &[1_000usize, 10_000, 1_000_000] {
        g.bench_function(BenchmarkId::new("after_allocs", n), |b| {
            let alloc = SmartAlloc::new(AllocConfig::default());
            let mut kept: Vec<FrameBox<'_, [u8; 16]>> = Vec::with_capacity(n);
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Untimed: fill a frame with `n` allocations, drop the handles (so no chunk
                    // is quarantined), close it.
                    alloc.begin_frame();
                    for i in 0..n {
                        kept.push(alloc.frame_box(value::<16>(i as u8)));
                    }
                    kept.clear();
                    alloc.end_frame();
                    // Timed: recycling that frame.
                    let t0 = Instant::now();
                    alloc.begin_frame();
                    total += t0.elapsed();
                    alloc.end_frame();
                }
                total
            });
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// 3. task heap alloc+free vs system and mimalloc

/// # Safety
/// `A` is a real allocator; `layout` has non-zero size.
#[inline(always)]
unsafe fn raw_alloc<A: GlobalAlloc, const N: usize>(a: &A, v: [u8; N]) -> *mut u8 {
    let layout = Layout::new::<[u8; N]>();
    // SAFETY: non-zero size per the caller.
    let p = unsafe { a.alloc(layout) };
    assert!(!p.is_null());
    // SAFETY: fresh block for a `[u8; N]`.
    unsafe { p.cast::<[u8; N]>().write(v) };
    p
}

fn task_alloc_free_sized<const N: usize>(c: &mut Criterion) {
    let layout = Layout::new::<[u8; N]>();
    {
        let mut g = c.benchmark_group("task_alloc_free");
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("task_alloc_box", N), |b| {
            let alloc = SmartAlloc::new(AllocConfig::default());
            let task = TaskAlloc::new(&alloc);
            b.iter(|| {
                let bx = task.alloc_box(value::<N>(7));
                black_box(&*bx);
                drop(bx);
            });
        });
        // Allocate first, then build the value in the block: the same order as the raw
        // allocator peers below (`alloc` then `write`), with no copy through the stack.
        g.bench_function(BenchmarkId::new("task_alloc_with", N), |b| {
            let alloc = SmartAlloc::new(AllocConfig::default());
            let task = TaskAlloc::new(&alloc);
            b.iter(|| {
                let bx = task.alloc_with(|| value::<N>(7));
                black_box(&*bx);
                drop(bx);
            });
        });
        g.bench_function(BenchmarkId::new("system", N), |b| {
            b.iter(|| {
                // SAFETY: non-zero size; freed with the same layout.
                unsafe {
                    let p = raw_alloc(&System, value::<N>(7));
                    black_box(p);
                    System.dealloc(p, layout);
                }
            });
        });
        g.bench_function(BenchmarkId::new("mimalloc", N), |b| {
            b.iter(|| {
                // SAFETY: non-zero size; freed with the same layout.
                unsafe {
                    let p = raw_alloc(&MiMalloc, value::<N>(7));
                    black_box(p);
                    MiMalloc.dealloc(p, layout);
                }
            });
        });
        g.finish();
    }
    {
        let mut g = c.benchmark_group("task_alloc_free_batch64");
        g.throughput(Throughput::Elements(TASK_BATCH as u64));
        g.bench_function(BenchmarkId::new("task_alloc_box", N), |b| {
            let alloc = SmartAlloc::new(AllocConfig::default());
            let task = TaskAlloc::new(&alloc);
            let mut kept = Vec::with_capacity(TASK_BATCH);
            b.iter(|| {
                for i in 0..TASK_BATCH {
                    kept.push(task.alloc_box(value::<N>(i as u8)));
                }
                black_box(&kept);
                kept.clear();
            });
        });
        g.bench_function(BenchmarkId::new("task_alloc_with", N), |b| {
            let alloc = SmartAlloc::new(AllocConfig::default());
            let task = TaskAlloc::new(&alloc);
            let mut kept = Vec::with_capacity(TASK_BATCH);
            b.iter(|| {
                for i in 0..TASK_BATCH {
                    kept.push(task.alloc_with(|| value::<N>(i as u8)));
                }
                black_box(&kept);
                kept.clear();
            });
        });
        fn raw_batch<A: GlobalAlloc, const N: usize>(a: &A, kept: &mut Vec<*mut u8>) {
            let layout = Layout::new::<[u8; N]>();
            for i in 0..TASK_BATCH {
                // SAFETY: non-zero size.
                kept.push(unsafe { raw_alloc(a, value::<N>(i as u8)) });
            }
            black_box(&*kept);
            for p in kept.drain(..) {
                // SAFETY: allocated above with this layout, freed once.
                unsafe { a.dealloc(p, layout) };
            }
        }
        g.bench_function(BenchmarkId::new("system", N), |b| {
            let mut kept = Vec::with_capacity(TASK_BATCH);
            b.iter(|| raw_batch::<_, N>(&System, &mut kept));
        });
        g.bench_function(BenchmarkId::new("mimalloc", N), |b| {
            let mut kept = Vec::with_capacity(TASK_BATCH);
            b.iter(|| raw_batch::<_, N>(&MiMalloc, &mut kept));
        });
        g.finish();
    }
}

fn task_alloc_free(c: &mut Criterion) {
    task_alloc_free_sized::<16>(c);
    task_alloc_free_sized::<64>(c);
    task_alloc_free_sized::<256>(c);
}

// ---------------------------------------------------------------------------------------------
// 4. releasing a whole task heap vs freeing one by one

fn heap_drop(c: &mut Criterion) {
    let mut g = c.benchmark_group("heap_drop_10k");
    g.throughput(Throughput::Elements(HEAP_ALLOCS as u64));
    g.sample_size(20);
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(2));
    let alloc = SmartAlloc::new(AllocConfig::default());
    g.bench_function("task_heap_drop", |b| {
        b.iter_batched(
            || {
                let task = TaskAlloc::new(&alloc);
                for i in 0..HEAP_ALLOCS {
                    // Forgetting a TaskBox is safe: its block is reclaimed with the heap.
                    std::mem::forget(task.alloc_box(value::<64>(i as u8)));
                }
                task
            },
            drop,
            BatchSize::PerIteration,
        );
    });
    fn raw_setup<A: GlobalAlloc>(a: &A) -> Vec<*mut u8> {
        (0..HEAP_ALLOCS)
            // SAFETY: non-zero size.
            .map(|i| unsafe { raw_alloc(a, value::<64>(i as u8)) })
            .collect()
    }
    fn raw_free_each<A: GlobalAlloc>(a: &A, mut v: Vec<*mut u8>) -> Vec<*mut u8> {
        for p in v.drain(..) {
            // SAFETY: allocated in setup with this layout, freed once.
            unsafe { a.dealloc(p, Layout::new::<[u8; 64]>()) };
        }
        v // the Vec's own buffer is freed untimed
    }
    g.bench_function("system_free_each", |b| {
        b.iter_batched(|| raw_setup(&System), |v| raw_free_each(&System, v), BatchSize::PerIteration);
    });
    g.bench_function("mimalloc_free_each", |b| {
        b.iter_batched(|| raw_setup(&MiMalloc), |v| raw_free_each(&MiMalloc, v), BatchSize::PerIteration);
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(400))
        .measurement_time(Duration::from_millis(1500))
        .nresamples(20_000);
    targets = frame_alloc, begin_frame, task_alloc_free, heap_drop
}
criterion_main!(benches);
