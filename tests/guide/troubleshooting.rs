//! The guide's "Troubleshooting" section: FA701 and FA603.

use super::*;

// ## Troubleshooting / "Frame allocation in async function"
mod troubleshooting_fa701 {
    use super::*;
    use framealloc::tokio::TaskAlloc;

    // Error - cargo-fa FA701
    async fn bad_function() {
        let alloc = SmartAlloc::new(Default::default());
        alloc.begin_frame();
        let data = alloc.frame_alloc::<u8>(); // Error!
        some_async_op().await;
        alloc.end_frame();
    }

    // Solution - use TaskAlloc
    async fn good_function() {
        let alloc = SmartAlloc::new(Default::default());
        let mut task = TaskAlloc::new(&alloc);
        // GUIDE FIX: `alloc_box` takes the value: `task.alloc_box::<u8>()` becomes `task.alloc_box(0u8)`.
        let data = task.alloc_box(0u8);
        some_async_op().await;
    }

    // Helpers (not in the guide).

    async fn some_async_op() {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }

    #[test]
    fn the_error_panics_with_fa701_in_a_tokio_task() {
        for (name, rt) in flavours() {
            // `bad_function` holds a frame handle across `.await`, so its future is not `Send`
            // (FA603): it can only run as a local task.
            let local = tokio::task::LocalSet::new();
            let errors = local.block_on(&rt, async {
                let plain = tokio::task::spawn_local(bad_function()).await.unwrap_err();
                let with_heap = framealloc::tokio::spawn_local(bad_function()).await.unwrap_err();
                [plain, with_heap]
            });
            for err in errors {
                assert!(err.is_panic(), "{name}");
                let msg = panic_message(err);
                assert!(msg.starts_with("FA701:"), "{name}: {msg}");
                assert!(msg.contains("`begin_frame`") && msg.contains("TaskAlloc"), "{name}: {msg}");
            }
        }
    }

    // `good_function` makes its own `SmartAlloc`, out of the test's reach: what is checked is
    // that task memory works in both kinds of tokio task where frame memory panics (a wrongly
    // fired FA701 fails the `unwrap`s).
    #[test]
    fn the_solution_runs_in_a_tokio_task() {
        for (name, rt) in flavours() {
            rt.block_on(async {
                tokio::spawn(good_function()).await.unwrap();
                framealloc::tokio::spawn(good_function()).await.unwrap();
            });
        }
    }
}

// ## Troubleshooting / "Frame data crossing await point"
//
// The "Error" snippet is the `compile_fail` doctest of `framealloc-tokio` (spawning it does
// not compile: the future holds a `!Send` `FrameVec` across `.await`). Here: the "Solution",
// and the "Error" function run the only way it can, as a local task, where it hits FA701.
mod troubleshooting_fa603 {
    use super::*;

    // Error - cargo-fa FA603
    async fn crossing_await() {
        let alloc = SmartAlloc::new(Default::default());
        alloc.begin_frame();
        let data = alloc.frame_vec::<u8>();
        async_op().await; // Frame data crosses await!
        use_data(&data);
        alloc.end_frame();
    }

    // Solution - use pool allocation
    async fn not_crossing() {
        let alloc = SmartAlloc::new(Default::default());
        let data = alloc.pool_vec::<u8>();
        async_op().await;
        use_data(&data);
    }

    // Helpers (not in the guide).

    async fn async_op() {
        tokio::task::yield_now().await;
    }

    fn use_data(data: &[u8]) {
        assert!(data.is_empty());
    }

    // `not_crossing` makes its own `SmartAlloc`: what is checked is that its future is `Send`
    // (it compiles as a spawned task, where `crossing_await` does not) and runs in both kinds of
    // tokio task; `use_data` checks the vector.
    #[test]
    fn the_solution_is_send_and_runs_in_a_spawned_task() {
        for (name, rt) in flavours() {
            rt.block_on(async {
                tokio::spawn(not_crossing()).await.unwrap();
                framealloc::tokio::spawn(not_crossing()).await.unwrap();
            });
        }
    }

    #[test]
    fn the_error_as_a_local_task_panics_with_fa701() {
        let rt = Builder::new_current_thread().enable_all().build().unwrap();
        let local = tokio::task::LocalSet::new();
        let err = local.block_on(&rt, async { tokio::task::spawn_local(crossing_await()).await }).unwrap_err();
        assert!(panic_message(err).starts_with("FA701:"));
    }
}
