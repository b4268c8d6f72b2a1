//! The tokio identity source is registered before `main`, by the constructor of
//! `framealloc-tokio`, even when the program names nothing of that crate but the re-exported
//! core types (the guide's snippets only call `TaskAlloc::new` / `AsyncPoolGuard::new` in plain
//! `tokio::spawn` tasks).
//!
//! One test in its own binary: nothing here calls `framealloc::tokio::{init, spawn, ..}`, so
//! only the constructor can have registered the source. Without it, `begin_frame` in a plain
//! tokio task would not panic, and a guard's pool allocations would be counted as the worker
//! thread's (kind `pool`), not the task's.

use framealloc::tokio::AsyncPoolGuard;
use framealloc::SmartAlloc;

#[test]
fn plain_tokio_tasks_are_recognised_without_calling_the_layer() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let alloc = SmartAlloc::new(Default::default());

    let a = alloc.clone();
    let err = rt.block_on(rt.spawn(async move { a.begin_frame() })).expect_err("FA701 expected");
    assert!(err.is_panic());
    let msg = err.into_panic().downcast::<String>().map(|s| *s).unwrap_or_default();
    assert!(msg.starts_with("FA701:"), "{msg}");

    let a = alloc.clone();
    rt.block_on(rt.spawn(async move {
        let guard = AsyncPoolGuard::new(&a);
        let b = a.pool_box(5u64);
        tokio::task::yield_now().await;
        assert_eq!(guard.escaped(), 1);
        assert_eq!(*b, 5);
    }))
    .unwrap();
    let s = alloc.stats();
    assert_eq!((s.task.allocations, s.pool.allocations), (1, 0), "the guard heap belongs to the tokio task: {s:?}");
    assert_eq!((s.task.live_bytes, s.heaps_alive, s.guard_escapes), (0, 0, 0), "{s:?}");
}
