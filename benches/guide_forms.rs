//! The guide's forms beside their peers (issue 26, "the guide's forms are the fast forms").
//!
//! `cargo bench --bench guide_forms` runs the criterion groups below and then a paired
//! comparison: each form and its peer timed alternately, round after round, in the same
//! process, printing the per-round ratio peer time / framealloc time (median and quartiles;
//! above 1 means framealloc is faster). `cargo bench --bench guide_forms -- paired` runs only
//! the paired comparison. Under `cargo test --benches` every case runs once, on small sizes.
//!
//! Forms:
//!
//! 1. `frame_box_200k` — a frame of 200,000 32-byte objects, each made and dropped at once:
//!    `begin_frame`, 200,000 × (`frame_box(v)` / `frame_alloc()`, read, drop), `end_frame`;
//!    against `Bump::alloc(v)` × 200,000 then `Bump::reset()`.
//! 2. `frame_scope` — the same 32-byte allocations in one `frame_scope`: 256 of them (one
//!    chunk, the scope's exit rewinds), and 200,000 (a frame of 6.4 MB across the arena's
//!    doubling chunks, 16 KiB up to 4 MiB); against `Bump::alloc` × n then `Bump::reset()`.
//! 3. `alloc_box_mixed` — 16/64/256-byte values made and dropped in turn, 3,000 pairs:
//!    `task.alloc_box(v)` (and `alloc_with(|| v)`) against `Box::new(v)` (the system allocator,
//!    this binary's global one) and `MiMalloc`'s `GlobalAlloc::alloc`, write, `dealloc`.
//! 4. `begin_frame_after_1m` — one `begin_frame()` after a frame of 1,000,000 `frame_box`
//!    allocations (made and dropped untimed). Absolute time: the goal is under 1 µs.
//!
//! For instruction counts (`valgrind --tool=callgrind`), `GUIDE_FORMS_PROBE=<form>:<n>` runs
//! one form `n` times and exits; the difference between two `n` gives the cost of one. Forms:
//! `frame_box`, `frame_alloc`, `bump`, `scope`, `scope_bump`, `task_box`, `task_with`,
//! `system_box`, `mimalloc` (the last four: one 16/64/256 triple per unit), `begin_frame`.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use framealloc::{AllocConfig, SmartAlloc, TaskAlloc};
use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Objects per frame in forms 1 and 2.
const FRAME_OBJECTS: usize = 200_000;
/// Objects per scope in the one-chunk scope case.
const SMALL_SCOPE: usize = 256;
/// 16/64/256 triples per run of form 3.
const TRIPLES: usize = 1_000;
/// Allocations before the timed `begin_frame`.
const BEGIN_FRAME_ALLOCS: usize = 1_000_000;

/// `N` copies of an opaque byte: the seed goes through `black_box`, not the array (see
/// `benches/alloc.rs`).
#[inline(always)]
fn value<const N: usize>(seed: u8) -> [u8; N] {
    [black_box(seed); N]
}

/// `true` under `cargo bench` (criterion's `--bench` flag), `false` under `cargo test`.
fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Object counts: full size under `cargo bench`, small under `cargo test`.
fn scaled(n: usize) -> usize {
    if bench_mode() {
        n
    } else {
        n.min(2_000)
    }
}

// ---------------------------------------------------------------------------------------------
// The forms, one function each, shared by criterion, the paired comparison and the probes.

#[inline(never)]
fn frame_box_frame(alloc: &SmartAlloc, n: usize) {
    alloc.begin_frame();
    for i in 0..n {
        let b = alloc.frame_box(value::<32>(i as u8));
        black_box(&*b);
    }
    alloc.end_frame();
}

#[inline(never)]
fn frame_alloc_frame(alloc: &SmartAlloc, n: usize) {
    alloc.begin_frame();
    for _ in 0..n {
        let b = alloc.frame_alloc::<[u8; 32]>();
        black_box(&*b);
    }
    alloc.end_frame();
}

#[inline(never)]
fn bump_frame(bump: &mut bumpalo::Bump, n: usize) {
    for i in 0..n {
        let r = bump.alloc(value::<32>(i as u8));
        black_box(&*r);
    }
    bump.reset();
}

#[inline(never)]
fn bump_default_frame(bump: &mut bumpalo::Bump, n: usize) {
    for _ in 0..n {
        let r = bump.alloc(<[u8; 32]>::default());
        black_box(&*r);
    }
    bump.reset();
}

/// A frame holding one scope of `n` allocations (the frame is opened and closed outside).
#[inline(never)]
fn scope_run(alloc: &SmartAlloc, n: usize) {
    alloc.frame_scope(|f| {
        for i in 0..n {
            let r = f.alloc(value::<32>(i as u8));
            black_box(&*r);
        }
    });
}

#[inline(never)]
fn task_box_mixed(task: &TaskAlloc, n: usize) {
    for i in 0..n {
        let s = i as u8;
        let a = task.alloc_box(value::<16>(s));
        black_box(&*a);
        drop(a);
        let b = task.alloc_box(value::<64>(s));
        black_box(&*b);
        drop(b);
        let c = task.alloc_box(value::<256>(s));
        black_box(&*c);
        drop(c);
    }
}

#[inline(never)]
fn task_with_mixed(task: &TaskAlloc, n: usize) {
    for i in 0..n {
        let s = i as u8;
        let a = task.alloc_with(|| value::<16>(s));
        black_box(&*a);
        drop(a);
        let b = task.alloc_with(|| value::<64>(s));
        black_box(&*b);
        drop(b);
        let c = task.alloc_with(|| value::<256>(s));
        black_box(&*c);
        drop(c);
    }
}

#[inline(never)]
fn system_box_mixed(n: usize) {
    for i in 0..n {
        let s = i as u8;
        let a = Box::new(value::<16>(s));
        black_box(&*a);
        drop(a);
        let b = Box::new(value::<64>(s));
        black_box(&*b);
        drop(b);
        let c = Box::new(value::<256>(s));
        black_box(&*c);
        drop(c);
    }
}

/// One `MiMalloc` pair: `alloc`, write, read, `dealloc`.
#[inline(always)]
fn mimalloc_pair<const N: usize>(s: u8) {
    let layout = Layout::new::<[u8; N]>();
    // SAFETY: non-zero size; the block is written before it is read and freed once with the
    // layout it was allocated with.
    unsafe {
        let p = MiMalloc.alloc(layout).cast::<[u8; N]>();
        assert!(!p.is_null());
        p.write(value::<N>(s));
        black_box(&*p);
        MiMalloc.dealloc(p.cast(), layout);
    }
}

#[inline(never)]
fn mimalloc_mixed(n: usize) {
    for i in 0..n {
        let s = i as u8;
        mimalloc_pair::<16>(s);
        mimalloc_pair::<64>(s);
        mimalloc_pair::<256>(s);
    }
}

/// Fills and empties a frame of `n` allocations (untimed part of form 4); the frame is closed.
fn fill_frame(alloc: &SmartAlloc, n: usize) {
    alloc.begin_frame();
    for i in 0..n {
        let b = alloc.frame_box(value::<16>(i as u8));
        black_box(&*b);
    }
    alloc.end_frame();
}

// ---------------------------------------------------------------------------------------------
// Criterion groups.

fn frame_box_200k(c: &mut Criterion) {
    let n = scaled(FRAME_OBJECTS);
    let mut g = c.benchmark_group("frame_box_200k");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("bumpalo", |b| {
        let mut bump = bumpalo::Bump::new();
        b.iter(|| bump_frame(&mut bump, n));
    });
    g.bench_function("frame_box", |b| {
        let alloc = SmartAlloc::new(AllocConfig::default());
        b.iter(|| frame_box_frame(&alloc, n));
    });
    g.bench_function("bumpalo_default", |b| {
        let mut bump = bumpalo::Bump::new();
        b.iter(|| bump_default_frame(&mut bump, n));
    });
    g.bench_function("frame_alloc", |b| {
        let alloc = SmartAlloc::new(AllocConfig::default());
        b.iter(|| frame_alloc_frame(&alloc, n));
    });
    g.finish();
}

fn frame_scope(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_scope");
    for n in [SMALL_SCOPE, scaled(FRAME_OBJECTS)] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("bumpalo", n), |b| {
            let mut bump = bumpalo::Bump::new();
            b.iter(|| bump_frame(&mut bump, n));
        });
        g.bench_function(BenchmarkId::new("frame_scope", n), |b| {
            let alloc = SmartAlloc::new(AllocConfig::default());
            alloc.begin_frame();
            b.iter(|| scope_run(&alloc, n));
            alloc.end_frame();
        });
    }
    g.finish();
}

fn alloc_box_mixed(c: &mut Criterion) {
    let n = scaled(TRIPLES);
    let mut g = c.benchmark_group("alloc_box_mixed");
    g.throughput(Throughput::Elements(3 * n as u64));
    g.bench_function("task_alloc_box", |b| {
        let alloc = SmartAlloc::new(AllocConfig::default());
        let task = TaskAlloc::new(&alloc);
        b.iter(|| task_box_mixed(&task, n));
    });
    g.bench_function("task_alloc_with", |b| {
        let alloc = SmartAlloc::new(AllocConfig::default());
        let task = TaskAlloc::new(&alloc);
        b.iter(|| task_with_mixed(&task, n));
    });
    g.bench_function("system_box", |b| b.iter(|| system_box_mixed(n)));
    g.bench_function("mimalloc", |b| b.iter(|| mimalloc_mixed(n)));
    g.finish();
}

fn begin_frame_after_1m(c: &mut Criterion) {
    let n = scaled(BEGIN_FRAME_ALLOCS);
    let mut g = c.benchmark_group("begin_frame_after_1m");
    g.sample_size(10);
    g.bench_function("begin_frame", |b| {
        let alloc = SmartAlloc::new(AllocConfig::default());
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                fill_frame(&alloc, n);
                let t0 = Instant::now();
                alloc.begin_frame();
                total += t0.elapsed();
                alloc.end_frame();
            }
            total
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500));
    targets = frame_box_200k, frame_scope, alloc_box_mixed, begin_frame_after_1m
}

// ---------------------------------------------------------------------------------------------
// Paired comparison: ours and the peer timed alternately, the ratio taken per round.

const ROUNDS: usize = 101;

/// Times `f` run `reps` times, in nanoseconds.
fn time(reps: usize, f: &mut dyn FnMut()) -> f64 {
    let t0 = Instant::now();
    for _ in 0..reps {
        f();
    }
    t0.elapsed().as_nanos() as f64
}

/// Runs `ours` and `peer` alternately for `ROUNDS` rounds of `reps` runs each (the order
/// swapped every round) and prints ns per operation (`ops` per run) and the ratio peer/ours.
fn paired(name: &str, ops: usize, reps: usize, ours: &mut dyn FnMut(), peer: &mut dyn FnMut()) {
    let (mut ratios, mut t_ours, mut t_peer) = (Vec::new(), Vec::new(), Vec::new());
    // One untimed run of each: warm caches and chunk lists.
    ours();
    peer();
    for r in 0..ROUNDS {
        let (a, b) = if r % 2 == 0 {
            let a = time(reps, ours);
            (a, time(reps, peer))
        } else {
            let b = time(reps, peer);
            (time(reps, ours), b)
        };
        let per_op = (reps * ops) as f64;
        t_ours.push(a / per_op);
        t_peer.push(b / per_op);
        ratios.push(b / a);
    }
    let q = |v: &mut Vec<f64>, at: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * at).round() as usize]
    };
    // On a loaded machine the fastest round of each is the least disturbed one: the ratio of
    // the minima is printed beside the median of the per-round ratios.
    let (min_ours, min_peer) = (q(&mut t_ours, 0.0), q(&mut t_peer, 0.0));
    println!(
        "{name:<50} ours {:>7.3} ns  peer {:>7.3} ns  ratio peer/ours {:>5.2}x (quartiles {:.2}–{:.2}); \
         fastest rounds {min_ours:.3} / {min_peer:.3} ns: {:.2}x",
        q(&mut t_ours, 0.5),
        q(&mut t_peer, 0.5),
        q(&mut ratios, 0.5),
        q(&mut ratios, 0.25),
        q(&mut ratios, 0.75),
        min_peer / min_ours,
    );
}

fn paired_comparison() {
    println!("\nPaired comparison ({ROUNDS} rounds; ratio = peer time / framealloc time, above 1: framealloc faster)");
    let n = FRAME_OBJECTS;
    let alloc = SmartAlloc::new(AllocConfig::default());
    let mut bump = bumpalo::Bump::new();
    paired("frame_box 32 B (200k frame) vs Bump::alloc", n, 1, &mut || frame_box_frame(&alloc, n), &mut || {
        bump_frame(&mut bump, n)
    });
    paired("frame_alloc 32 B (200k frame) vs Bump::alloc", n, 1, &mut || frame_alloc_frame(&alloc, n), &mut || {
        bump_default_frame(&mut bump, n)
    });
    paired(
        "frame_scope 32 B x256 (1 chunk) vs Bump::alloc",
        SMALL_SCOPE,
        200,
        &mut || {
            alloc.begin_frame();
            scope_run(&alloc, SMALL_SCOPE);
            alloc.end_frame();
        },
        &mut || bump_frame(&mut bump, SMALL_SCOPE),
    );
    paired(
        "frame_scope 32 B x200k (9 chunks) vs Bump::alloc",
        n,
        1,
        &mut || {
            alloc.begin_frame();
            scope_run(&alloc, n);
            alloc.end_frame();
        },
        &mut || bump_frame(&mut bump, n),
    );
    let task = TaskAlloc::new(&alloc);
    let t = TRIPLES;
    paired("alloc_box 16/64/256 pairs vs Box::new (system)", 3 * t, 10, &mut || task_box_mixed(&task, t), &mut || {
        system_box_mixed(t)
    });
    paired("alloc_box 16/64/256 pairs vs MiMalloc", 3 * t, 10, &mut || task_box_mixed(&task, t), &mut || {
        mimalloc_mixed(t)
    });
    paired(
        "alloc_with 16/64/256 pairs vs Box::new (system)",
        3 * t,
        10,
        &mut || task_with_mixed(&task, t),
        &mut || system_box_mixed(t),
    );
    paired("alloc_with 16/64/256 pairs vs MiMalloc", 3 * t, 10, &mut || task_with_mixed(&task, t), &mut || {
        mimalloc_mixed(t)
    });
    drop(task);
    let mut times = Vec::new();
    for _ in 0..15 {
        fill_frame(&alloc, BEGIN_FRAME_ALLOCS);
        let t0 = Instant::now();
        alloc.begin_frame();
        times.push(t0.elapsed().as_nanos());
        alloc.end_frame();
    }
    times.sort_unstable();
    println!(
        "{:<50} {} ns median (min {}, max {}; goal < 1000 ns)",
        "begin_frame after 1,000,000 allocations",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
}

// ---------------------------------------------------------------------------------------------
// Probes for callgrind.

fn probe(spec: &str) {
    let (form, n) = spec.split_once(':').expect("GUIDE_FORMS_PROBE=<form>:<n>");
    let n: usize = n.parse().expect("a count");
    let alloc = SmartAlloc::new(AllocConfig::default());
    let mut bump = bumpalo::Bump::new();
    let task = TaskAlloc::new(&alloc);
    match form {
        "frame_box" => frame_box_frame(&alloc, n),
        "frame_alloc" => frame_alloc_frame(&alloc, n),
        "bump" => bump_frame(&mut bump, n),
        "bump_default" => bump_default_frame(&mut bump, n),
        "scope" => {
            alloc.begin_frame();
            scope_run(&alloc, n);
            alloc.end_frame();
        }
        "scope_bump" => bump_frame(&mut bump, n),
        "task_box" => task_box_mixed(&task, n),
        "task_with" => task_with_mixed(&task, n),
        "system_box" => system_box_mixed(n),
        "mimalloc" => mimalloc_mixed(n),
        "begin_frame" => {
            fill_frame(&alloc, n);
            alloc.begin_frame();
            alloc.end_frame();
        }
        other => panic!("unknown probe form {other}"),
    }
}

fn main() {
    if let Ok(spec) = std::env::var("GUIDE_FORMS_PROBE") {
        return probe(&spec);
    }
    let only_paired = std::env::args().skip(1).any(|a| a == "paired");
    if !only_paired {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
    if bench_mode() && (only_paired || std::env::args().skip(1).all(|a| a.starts_with('-'))) {
        paired_comparison();
    }
}
