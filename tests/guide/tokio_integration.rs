//! The guide's "Integration with Tokio" section: runtime integration, async channels, async timers.

use super::*;

// ## Integration with Tokio / Tokio Runtime Integration
mod runtime_integration {
    use super::*;
    use framealloc::tokio::{AsyncPoolGuard, TaskAlloc};
    use framealloc::SmartAlloc;
    use tokio::runtime::Runtime;

    struct AsyncApplication {
        alloc: SmartAlloc,
        runtime: Runtime,
    }

    impl AsyncApplication {
        fn new() -> Self {
            Self { alloc: SmartAlloc::new(Default::default()), runtime: Runtime::new().unwrap() }
        }

        fn run(&mut self) {
            self.runtime.block_on(async {
                self.main_loop().await;
            });
        }

        async fn main_loop(&self) {
            loop {
                // Async operations
                self.process_network().await;
                self.update_database().await;

                // Yield to other tasks
                tokio::task::yield_now().await;
            }
        }
    }

    // Helpers (not in the guide). `process_network` makes one loopback request per iteration
    // (server in a `framealloc::tokio::spawn` task, client in the main loop with a
    // `TaskAlloc`); `update_database` appends a record under an `AsyncPoolGuard`. The endless
    // `main_loop` is ended by `update_database` after `ITERATIONS` rounds: it unwinds with a
    // `StopApp` payload (`resume_unwind`) out of `block_on`, which the test catches.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const ITERATIONS: usize = 5;
    struct StopApp;
    static REPLIES: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static RECORDS: Mutex<Vec<u64>> = Mutex::new(Vec::new());
    static ROUNDS: AtomicUsize = AtomicUsize::new(0);

    impl AsyncApplication {
        async fn process_network(&self) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let alloc = self.alloc.clone();
            let server = framealloc::tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut request = alloc.pool_vec::<u8>(); // in this task's heap
                let mut buf = [0u8; 8];
                loop {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    request.extend(buf[..n].iter().copied());
                }
                let reply = format!("{} bytes: {}", request.len(), String::from_utf8_lossy(&request));
                s.write_all(reply.as_bytes()).await.unwrap();
            });
            let task = TaskAlloc::new(&self.alloc);
            let mut reply = task.alloc_vec::<u8>();
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(format!("tick {}", ROUNDS.load(Ordering::SeqCst)).as_bytes()).await.unwrap();
            c.shutdown().await.unwrap();
            let mut buf = [0u8; 8];
            loop {
                let n = c.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                reply.extend_from_slice(&buf[..n]);
            }
            server.await.unwrap();
            REPLIES.lock().unwrap().push(String::from_utf8(reply.to_vec()).unwrap());
        }

        async fn update_database(&self) {
            {
                let guard = AsyncPoolGuard::new(&self.alloc);
                let mut record = self.alloc.pool_vec::<u64>();
                record.extend([ROUNDS.load(Ordering::SeqCst) as u64, self.alloc.stats().task.allocations]);
                tokio::task::yield_now().await;
                RECORDS.lock().unwrap().push(record[0]);
                assert_eq!(guard.escaped(), 1);
            }
            if ROUNDS.fetch_add(1, Ordering::SeqCst) + 1 == ITERATIONS {
                std::panic::resume_unwind(Box::new(StopApp));
            }
        }
    }

    #[test]
    // Under Miri (nightly 2026-05-19) this one stalls in its first loopback round, on the
    // guide's default `Runtime::new()`. Not framealloc's doing: a plain tokio round trip (no
    // framealloc) stalls the same way under Miri on `Runtime::new()` and passes with
    // `worker_threads(2)`, which the other socket tests use. It runs natively.
    #[cfg_attr(miri, ignore = "tokio's default runtime stalls on loopback I/O under Miri (runs natively)")]
    fn the_application_loop_runs_network_and_database_rounds() {
        let mut app = AsyncApplication::new();
        let stop = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| app.run())).unwrap_err();
        assert!(stop.is::<StopApp>(), "the loop ended through update_database, not a failure");
        assert_eq!(ROUNDS.load(Ordering::SeqCst), ITERATIONS);
        let replies = std::mem::take(&mut *REPLIES.lock().unwrap());
        let want: Vec<String> = (0..ITERATIONS).map(|i| format!("6 bytes: tick {i}")).collect();
        assert_eq!(replies, want);
        assert_eq!(*RECORDS.lock().unwrap(), (0..ITERATIONS as u64).collect::<Vec<_>>());
        let s = assert_released(&app.alloc);
        assert_eq!(s.guard_escapes, 0, "{s:?}");
        assert!(s.task.allocations >= 2 * ITERATIONS as u64, "{s:?}");
    }
}

// ## Integration with Tokio / Async Channels
mod async_channels {
    use super::*;
    use framealloc::tokio::TaskAlloc;
    use std::sync::Arc;

    use tokio::sync::mpsc;

    async fn worker_task(
        // GUIDE FIX: an mpsc receiver cannot be cloned: the workers share it.
        mut receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<WorkItem>>>,
        alloc: SmartAlloc,
    ) {
        let mut task = TaskAlloc::new(&alloc);

        // GUIDE FIX: receive through the shared receiver (the lock is held only while waiting).
        while let Some(work) = {
            let mut receiver = receiver.lock().await;
            receiver.recv().await
        } {
            // Process work item with task allocations
            let result = process_work_item(&mut task, work).await;

            // Send result back
            if let Some(sender) = result.sender {
                let _ = sender.send(result.data).await;
            }
        }
    }

    async fn dispatch_work(work_items: Vec<WorkItem>) -> Vec<WorkResult> {
        let alloc = SmartAlloc::new(Default::default());
        let (tx, rx) = mpsc::channel(100);
        // GUIDE FIX: the receiver is shared (`Arc<tokio::sync::Mutex<_>>`), not cloned.
        let rx = Arc::new(tokio::sync::Mutex::new(rx));

        // Spawn worker tasks
        for _ in 0..4 {
            let alloc_clone = alloc.clone();
            // GUIDE FIX: clone the shared receiver.
            let rx_clone = Arc::clone(&rx);
            tokio::spawn(async move {
                worker_task(rx_clone, alloc_clone).await;
            });
        }

        // Send work
        for item in work_items {
            let _ = tx.send(item).await;
        }

        // Collect results
        let mut results = Vec::new();
        // ... collect logic ...

        results
    }

    // Helpers (not in the guide). Each work item carries the sender its result goes back on
    // (`result.sender` in the snippet).

    #[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct WorkResult {
        id: u32,
        checksum: u64,
    }

    struct WorkItem {
        id: u32,
        input: Vec<u32>,
        reply: Option<mpsc::Sender<WorkResult>>,
    }

    struct Processed {
        sender: Option<mpsc::Sender<WorkResult>>,
        data: WorkResult,
    }

    /// Triples the input in a task vector, yields, and sums it.
    async fn process_work_item(task: &mut TaskAlloc, work: WorkItem) -> Processed {
        let mut scratch = task.alloc_vec::<u64>();
        scratch.extend(work.input.iter().map(|&v| u64::from(v) * 3));
        tokio::task::yield_now().await;
        Processed { sender: work.reply, data: WorkResult { id: work.id, checksum: scratch.iter().sum() } }
    }

    fn items(n: u32, reply: &mpsc::Sender<WorkResult>) -> Vec<WorkItem> {
        (0..n)
            .map(|id| WorkItem { id, input: (0..id).collect(), reply: (id % 5 != 0).then(|| reply.clone()) })
            .collect()
    }

    fn expected(n: u32) -> Vec<WorkResult> {
        (0..n)
            .filter(|id| id % 5 != 0)
            .map(|id| WorkResult { id, checksum: (0..u64::from(id)).sum::<u64>() * 3 })
            .collect()
    }

    /// Collects results until every reply sender is gone.
    async fn collect(mut rx: mpsc::Receiver<WorkResult>) -> Vec<WorkResult> {
        let mut got = Vec::new();
        while let Some(r) = rx.recv().await {
            got.push(r);
        }
        got.sort();
        got
    }

    #[test]
    fn dispatch_work_as_written() {
        for (name, rt) in flavours() {
            rt.block_on(async {
                let (reply_tx, reply_rx) = mpsc::channel(8);
                let collector = tokio::spawn(collect(reply_rx));
                let work = items(300, &reply_tx);
                drop(reply_tx);
                let results = dispatch_work(work).await;
                // The guide leaves "collect logic" out, so the function returns no results;
                // they arrive on the items' own reply senders.
                assert!(results.is_empty(), "{name}");
                assert_eq!(collector.await.unwrap(), expected(300), "{name}");
            });
        }
    }

    #[test]
    fn worker_tasks_free_their_task_allocs() {
        for (name, rt) in flavours() {
            let alloc = SmartAlloc::new(Default::default());
            let a = alloc.clone();
            rt.block_on(async move {
                let (tx, rx) = mpsc::channel(100);
                let rx = Arc::new(tokio::sync::Mutex::new(rx));
                let workers: Vec<_> = (0..4).map(|_| tokio::spawn(worker_task(Arc::clone(&rx), a.clone()))).collect();
                let (reply_tx, reply_rx) = mpsc::channel(8);
                let collector = tokio::spawn(collect(reply_rx));
                for item in items(200, &reply_tx) {
                    tx.send(item).await.unwrap();
                }
                drop((tx, reply_tx));
                for w in workers {
                    w.await.unwrap();
                }
                assert_eq!(collector.await.unwrap(), expected(200), "{name}");
            });
            let s = assert_released(&alloc);
            assert!(s.task.allocations >= 199, "{name}: scratch vectors in the workers' heaps: {s:?}");
        }
    }
}

// ## Integration with Tokio / Async Timers
mod async_timers {
    use super::*;
    use framealloc::tokio::AsyncPoolGuard;
    use framealloc::PoolVec;
    use tokio::sync::mpsc;

    use tokio::time::{interval, Duration};

    async fn timed_operations(alloc: &SmartAlloc) {
        let mut interval = interval(Duration::from_secs(1));

        loop {
            interval.tick().await;

            // Use AsyncPoolGuard for cleanup
            let _guard = AsyncPoolGuard::new(&alloc);

            // Periodic operations
            let metrics = collect_metrics().await;
            let report = generate_report(&metrics).await;

            send_report(report).await;

            // All allocations cleaned up automatically
        }
    }

    // Helpers (not in the guide). The helpers reach the application's allocator and report
    // sink through a task-local. The endless loop is bounded by `tokio::time::timeout` on
    // tokio's paused test clock (time advances when the runtime is idle), so 3.5 simulated
    // seconds take no real time: ticks at 0, 1, 2 and 3 s.

    struct App {
        alloc: SmartAlloc,
        reports: mpsc::UnboundedSender<String>,
    }

    tokio::task_local! {
        static APP: App;
    }

    struct Metrics {
        samples: PoolVec<u64>,
    }

    /// Samples the runtime (workers, alive tasks) and the clock into pool memory.
    async fn collect_metrics() -> Metrics {
        let alloc = APP.with(|app| app.alloc.clone());
        let m = tokio::runtime::Handle::current().metrics();
        let mut samples = alloc.pool_vec::<u64>();
        samples.extend([
            m.num_workers() as u64,
            m.num_alive_tasks() as u64,
            tokio::time::Instant::now().elapsed().as_secs(),
        ]);
        Metrics { samples }
    }

    async fn generate_report(metrics: &Metrics) -> String {
        format!("workers={} tasks={}", metrics.samples[0], metrics.samples[1])
    }

    async fn send_report(report: String) {
        APP.with(|app| app.reports.send(report)).unwrap();
    }

    #[test]
    fn timed_operations_report_every_second() {
        let rt = Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        let alloc = SmartAlloc::new(Default::default());
        let a = alloc.clone();
        let reports = rt.block_on(async move {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let app = App { alloc: a.clone(), reports: tx };
            let started = tokio::time::Instant::now();
            let timed_out = tokio::spawn(APP.scope(app, async move {
                tokio::time::timeout(Duration::from_millis(3500), timed_operations(&a)).await.is_err()
            }))
            .await
            .unwrap();
            assert!(timed_out, "the loop only ends by the timeout");
            assert_eq!(started.elapsed(), Duration::from_millis(3500));
            let mut reports = Vec::new();
            while let Ok(r) = rx.try_recv() {
                reports.push(r);
            }
            reports
        });
        assert_eq!(reports, vec!["workers=1 tasks=1".to_string(); 4]);
        let s = assert_released(&alloc);
        assert_eq!(s.guard_escapes, 0, "{s:?}");
        assert_eq!((s.task.allocations, s.pool.allocations), (4, 0), "samples went to the task's guard heap: {s:?}");
    }
}
