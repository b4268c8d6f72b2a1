//! The `tokio_compat` bench's request handlers (`benches/handlers/mod.rs`, the same code) as a
//! plain program, for instruction counts: machines here are shared and noisy, callgrind's
//! counts are not.
//!
//! ```text
//! cargo build --release --features tokio --example tokio_handler_probe
//! P=target/release/examples/tokio_handler_probe
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null $P objects framealloc 5
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null $P objects framealloc 25
//! ```
//!
//! The difference of the two totals over 20 × 256 tasks is the cost per task. Workloads:
//! `bytes`, `objects`, `small` (one 64-byte object per task), `growth` (the guide's request: a
//! vector grown by pushes and 16 boxed parts); cases: `no_alloc`, `system`, `mimalloc`,
//! `framealloc` (per-task heap, `pool_*`), `task_alloc` (`TaskAlloc` in a plain tokio task),
//! `guide` (`TaskAlloc` in a `framealloc::tokio::spawn` task, the guide's form), `thread_pool` (`pool_*` in a plain tokio task: the worker thread's pool, the
//! bench's `tokio_spawn_thread_pool`), `bumpalo` (a bumpalo arena per task, the bench's
//! `bumpalo_task_arena`),
//! `wrapper_only` (`framealloc::tokio::spawn` of the `no_alloc` handler: what the
//! wrapper costs a task that allocates nothing). A fourth argument picks tokio's runtime:
//! `multi_thread` (2 workers, the default, as in the bench) or `current_thread` (the bench's
//! second paired pass). Run without arguments, it runs every case once and prints the wall
//! time of each (a smoke test, not a benchmark).
//!
//! Its runtimes have no I/O or time driver: the handlers use neither. The bench enables them
//! (`enable_all`), which adds about 60 instructions per task on the current-thread runtime to
//! the floor and to mimalloc's case and about 120 to framealloc's (`objects`), within the
//! run-to-run spread of the multi-thread counts.

#[path = "../benches/handlers/mod.rs"]
mod handlers;

use framealloc::SmartAlloc;
use handlers::*;

fn spawn_one(
    rt: &tokio::runtime::Runtime,
    alloc: &SmartAlloc,
    workload: &str,
    case: &str,
) -> tokio::task::JoinHandle<u64> {
    let _guard = rt.enter();
    let a = alloc.clone();
    match (workload, case) {
        ("small", "no_alloc") => tokio::spawn(small_no_alloc()),
        ("small", "system") => tokio::spawn(small_system()),
        ("small", "mimalloc") => tokio::spawn(small_mimalloc()),
        ("small", "framealloc") => framealloc::tokio::spawn(small_pool(a)),
        ("small", "task_alloc") => tokio::spawn(small_task_alloc(a)),
        ("small", "thread_pool") => tokio::spawn(small_thread_pool(a)),
        ("small", "bumpalo") => tokio::spawn(small_bumpalo()),
        ("small", "wrapper_only") => framealloc::tokio::spawn(small_no_alloc()),
        (_, "no_alloc") => tokio::spawn(no_alloc()),
        (_, "wrapper_only") => framealloc::tokio::spawn(no_alloc()),
        ("bytes", "system") => tokio::spawn(bytes_system()),
        ("bytes", "mimalloc") => tokio::spawn(bytes_mimalloc()),
        ("bytes", "framealloc") => framealloc::tokio::spawn(bytes_pool(a)),
        ("bytes", "task_alloc") => tokio::spawn(bytes_task_alloc(a)),
        ("bytes", "thread_pool") => tokio::spawn(bytes_thread_pool(a)),
        ("bytes", "bumpalo") => tokio::spawn(bytes_bumpalo()),
        ("objects", "system") => tokio::spawn(objects_system()),
        ("objects", "mimalloc") => tokio::spawn(objects_mimalloc()),
        ("objects", "framealloc") => framealloc::tokio::spawn(objects_pool(a)),
        ("objects", "task_alloc") => tokio::spawn(objects_task_alloc(a)),
        ("objects", "thread_pool") => tokio::spawn(objects_thread_pool(a)),
        ("objects", "bumpalo") => tokio::spawn(objects_bumpalo()),
        ("growth", "system") => tokio::spawn(growth_system()),
        ("growth", "mimalloc") => tokio::spawn(growth_mimalloc()),
        ("growth", "framealloc") => framealloc::tokio::spawn(growth_pool(a)),
        ("growth", "task_alloc") => tokio::spawn(growth_task_alloc(a)),
        ("growth", "thread_pool") => tokio::spawn(growth_thread_pool(a)),
        ("growth", "bumpalo") => tokio::spawn(growth_bumpalo()),
        (w, "guide") => match w {
            // The guide's form: `TaskAlloc::new` in a `framealloc::tokio::spawn` task.
            "bytes" => framealloc::tokio::spawn(bytes_task_alloc(a)),
            "objects" => framealloc::tokio::spawn(objects_task_alloc(a)),
            "small" => framealloc::tokio::spawn(small_task_alloc(a)),
            "growth" => framealloc::tokio::spawn(growth_task_alloc(a)),
            _ => panic!("unknown workload {workload:?}"),
        },
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
    settle_system_allocator();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flavour = if args.len() == 4 { args[3].as_str() } else { "multi_thread" };
    let rt = match flavour {
        "multi_thread" => tokio::runtime::Builder::new_multi_thread().worker_threads(2).build(),
        "current_thread" => tokio::runtime::Builder::new_current_thread().build(),
        _ => panic!("runtime flavour {flavour:?}: multi_thread or current_thread"),
    }
    .expect("tokio runtime");
    let alloc = SmartAlloc::new(Default::default());
    match args.as_slice() {
        [workload, case, rounds] | [workload, case, rounds, _] => {
            let rounds = rounds.parse().expect("rounds: a number");
            run(&rt, &alloc, workload, case, rounds);
        }
        [] => {
            for workload in ["bytes", "objects", "small", "growth"] {
                for case in [
                    "no_alloc",
                    "system",
                    "mimalloc",
                    "framealloc",
                    "task_alloc",
                    "guide",
                    "thread_pool",
                    "bumpalo",
                    "wrapper_only",
                ] {
                    let start = std::time::Instant::now();
                    run(&rt, &alloc, workload, case, 1);
                    println!("{workload:8} {case:12} {:>8.1?}", start.elapsed());
                }
            }
        }
        _ => panic!("usage: tokio_handler_probe [WORKLOAD CASE ROUNDS [FLAVOUR]] (see the module docs)"),
    }
    let s = alloc.stats();
    assert_eq!((s.task.live_bytes, s.pool.live_bytes, s.heaps_alive), (0, 0, 0), "{s:?}");
}
