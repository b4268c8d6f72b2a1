//! A randomized stress test: trees of tasks that spawn, yield, wait for wake-ups from plain
//! threads, allocate in their heaps, panic, and abort their children, on 2 and 3 workers,
//! ending with every task accounted for and every heap released.

mod common;

use common::{scaled, Gate};
use framealloc_alloc::SmartAlloc;
use framealloc_runtime::{JoinHandle, Runtime};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A small deterministic generator (xorshift64*), one per task, seeded from its parent.
#[derive(Clone, Copy)]
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Default)]
struct Tally {
    spawned: AtomicU64,
    completed: AtomicU64,
    panicked: AtomicU64,
    cancelled: AtomicU64,
    /// Children whose parent ended (panicked, or was cancelled) before joining them: they run
    /// on, detached.
    detached: AtomicU64,
}

/// A child's handle that counts itself as detached if it is dropped unjoined.
struct Child {
    handle: Option<JoinHandle<u64>>,
    abort: bool,
    env: Arc<Env>,
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.handle.is_some() {
            self.env.tally.detached.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Env {
    alloc: SmartAlloc,
    tally: Tally,
    /// Gates a plain thread opens (cross-thread wake-ups).
    gates: Mutex<Vec<Gate>>,
}

fn node(env: Arc<Env>, mut rng: Rng, depth: u32) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        let mut held = env.alloc.pool_vec::<u64>();
        held.extend((0..rng.below(40)).map(|x| x * 3));
        let mut children: Vec<Child> = Vec::new();
        let kids = if depth == 0 { 0 } else { rng.below(4) };
        for _ in 0..kids {
            env.tally.spawned.fetch_add(1, Ordering::Relaxed);
            let child = framealloc_runtime::spawn(node(env.clone(), Rng(rng.next() | 1), depth - 1));
            let abort = rng.below(6) == 0;
            children.push(Child { handle: Some(child), abort, env: env.clone() });
        }
        match rng.below(4) {
            0 => framealloc_runtime::yield_now().await,
            1 => {
                let g = Gate::new();
                env.gates.lock().unwrap().push(g.clone());
                g.wait().await;
            }
            _ => {}
        }
        if rng.below(25) == 0 {
            panic!("stress panic");
        }
        let mut sum = held.iter().sum::<u64>();
        for mut child in children {
            let handle = child.handle.as_mut().expect("joined once");
            if child.abort {
                handle.abort();
            }
            // Awaited in place: if this task is cancelled here, `Child` counts it detached.
            let joined = handle.await;
            child.handle = None;
            match joined {
                Ok(v) => {
                    env.tally.completed.fetch_add(1, Ordering::Relaxed);
                    sum = sum.wrapping_add(v);
                }
                Err(e) if e.is_panic() => {
                    env.tally.panicked.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    env.tally.cancelled.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        sum
    })
}

/// Keeps the test's own panics ("stress panic") out of the output; others print as usual.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if common::payload_message(info.payload()) != "stress panic" {
                prev(info);
            }
        }));
    });
}

fn run(seed: u64, workers: usize, roots: usize, depth: u32) {
    quiet_panics();
    let alloc = SmartAlloc::new(Default::default());
    let rt = Runtime::builder().worker_threads(workers).alloc(&alloc).build().unwrap();
    let env = Arc::new(Env { alloc: alloc.clone(), tally: Tally::default(), gates: Mutex::new(Vec::new()) });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The plain thread that opens gates as they appear.
    let opener = {
        let (env, stop) = (env.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let gates: Vec<Gate> = std::mem::take(&mut *env.gates.lock().unwrap());
                for g in gates {
                    g.open();
                }
                std::thread::yield_now();
            }
        })
    };
    let mut rng = Rng(seed);
    let handles: Vec<_> = (0..roots)
        .map(|_| {
            env.tally.spawned.fetch_add(1, Ordering::Relaxed);
            rt.spawn(node(env.clone(), Rng(rng.next() | 1), depth))
        })
        .collect();
    for h in handles {
        match rt.block_on(h) {
            Ok(_) => env.tally.completed.fetch_add(1, Ordering::Relaxed),
            Err(e) if e.is_panic() => env.tally.panicked.fetch_add(1, Ordering::Relaxed),
            Err(_) => env.tally.cancelled.fetch_add(1, Ordering::Relaxed),
        };
    }
    // Detached children run on by themselves.
    common::wait_until("detached tasks finish", 30, || rt.metrics().tasks_alive == 0);
    stop.store(true, Ordering::SeqCst);
    opener.join().unwrap();
    let t = &env.tally;
    let (s, c, p, x, d) = (
        t.spawned.load(Ordering::SeqCst),
        t.completed.load(Ordering::SeqCst),
        t.panicked.load(Ordering::SeqCst),
        t.cancelled.load(Ordering::SeqCst),
        t.detached.load(Ordering::SeqCst),
    );
    assert_eq!(s, c + p + x + d, "seed {seed}: every task joined once or detached");
    // The full-size runs must exercise both outcomes (the Miri runs are too small to).
    assert!(cfg!(miri) || (c > 0 && p + x > 0), "seed {seed}: the mix has completions and failures ({c}, {p}, {x})");
    let m = rt.metrics();
    assert_eq!(m.tasks_alive, 0, "seed {seed}");
    assert_eq!(m.tasks_spawned, s, "seed {seed}");
    drop(rt);
    let st = alloc.stats();
    assert_eq!((st.heaps_alive, st.task.live_bytes), (0, 0), "seed {seed}: {st:?}");
}

#[test]
fn random_task_trees_on_two_workers() {
    for seed in 1..=scaled(6, 1) as u64 {
        run(seed * 0x9E37_79B9, 2, scaled(40, 3), if cfg!(miri) { 2 } else { 4 });
    }
}

#[test]
fn random_task_trees_on_three_workers() {
    for seed in 1..=scaled(4, 1) as u64 {
        run(seed * 0x85EB_CA6B + 7, 3, scaled(40, 3), if cfg!(miri) { 2 } else { 4 });
    }
}

#[test]
#[ignore = "soak: minutes; run with --ignored"]
fn random_task_trees_soak() {
    for seed in 1..=200u64 {
        run(seed.wrapping_mul(0xC2B2_AE35), 1 + (seed % 4) as usize, 60, 5);
    }
}
