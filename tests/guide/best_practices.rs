//! The guide's "Best Practices" section.

use super::*;

// ## Best Practices / Common Patterns
mod best_practice_patterns {
    use super::*;
    use framealloc::tokio::{AsyncPoolGuard, TaskAlloc};
    use tokio::net::TcpStream;

    // Pattern 1: Task with cleanup
    async fn with_cleanup(alloc: &SmartAlloc) {
        let _guard = AsyncPoolGuard::new(&alloc);
        // All pool allocations auto-cleaned
    }

    // Pattern 2: Spawned task
    async fn spawn_task(alloc: &SmartAlloc) {
        let alloc_clone = alloc.clone();
        tokio::spawn(async move {
            let mut task = TaskAlloc::new(&alloc_clone);
            // Task-specific allocations
        });
    }

    // Pattern 3: Stream processing
    async fn process_stream(alloc: &SmartAlloc, stream: TcpStream) {
        let _guard = AsyncPoolGuard::new(&alloc);
        // Stream-specific allocations
    }

    #[test]
    fn the_three_patterns_run_and_leave_nothing() {
        for (name, rt) in flavours() {
            let alloc = SmartAlloc::new(Default::default());
            let a = alloc.clone();
            rt.block_on(async move {
                let b = a.clone();
                tokio::spawn(async move { with_cleanup(&b).await }).await.unwrap();

                // The spawned task is detached: wait (bounded) until the runtime has no task left.
                spawn_task(&a).await;
                let metrics = tokio::runtime::Handle::current().metrics();
                let mut waited = 0;
                while metrics.num_alive_tasks() > 0 {
                    assert!(waited < 1000, "the detached task did not finish");
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    waited += 1;
                }

                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
                let (server_side, _) = listener.accept().await.unwrap();
                let b = a.clone();
                tokio::spawn(async move { process_stream(&b, server_side).await }).await.unwrap();
                drop(client);
            });
            let s = assert_released(&alloc);
            assert_eq!(s.guard_escapes, 0, "{name}: {s:?}");
        }
    }
}
