//! Every Rust snippet of the guide (`shared/spec/async.md`, "Async/Await with framealloc"),
//! run on tokio with feature `tokio`.
//!
//! Each snippet lives in its own module, verbatim apart from the fixes listed in DESIGN.md
//! ("Known errors in the guide"); every such edit carries a `// GUIDE FIX:` comment. The
//! helpers a snippet calls but does not define come after it, marked "Helpers (not in the
//! guide)", and do real work: files through `tokio::fs`, sockets on 127.0.0.1, channels.
//! Snippets whose loop never ends are stopped by their helpers or by `tokio::time::timeout`,
//! as each module says.
//!
//! Not here: the `Cargo.toml` snippet (not Rust; with the version fix it is the facade's
//! feature `tokio` this file is built with), and the FA603 "Error" snippet, which must not
//! compile: it is a `compile_fail` doctest of `framealloc-tokio` (crate docs), next to twins
//! that compile.

// The snippets are kept as written: their unused `mut`s and variables, the associated
// functions they call like enum variants (`Asset::Texture(..)`), the lower-case `queries`,
// `&alloc` where `alloc` is already a reference.
#![allow(unused_mut, unused_variables, non_snake_case, non_upper_case_globals, clippy::needless_borrow)]

use framealloc::{AllocStats, SmartAlloc};
use tokio::runtime::{Builder, Runtime};

// `framealloc::tokio::{TaskAlloc, AsyncPoolGuard}` are the core's types, not look-alikes: this
// does not compile otherwise.
const _: fn(framealloc::TaskAlloc, framealloc::AsyncPoolGuard) -> (framealloc::tokio::TaskAlloc, framealloc::tokio::AsyncPoolGuard) =
    |t, g| (t, g);

/// The two tokio runtime flavours every async snippet runs on.
fn flavours() -> [(&'static str, Runtime); 2] {
    [
        ("current_thread", Builder::new_current_thread().enable_all().build().unwrap()),
        ("multi_thread", Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()),
    ]
}

/// Nothing of task or pool memory is alive and no task heap is left.
#[track_caller]
fn assert_released(alloc: &SmartAlloc) -> AllocStats {
    let s = alloc.stats();
    assert_eq!(s.task.live_bytes, 0, "task memory left: {s:?}");
    assert_eq!(s.pool.live_bytes, 0, "pool memory left: {s:?}");
    assert_eq!(s.heaps_alive, 0, "task heaps left: {s:?}");
    s
}

fn panic_message(e: tokio::task::JoinError) -> String {
    let p = e.into_panic();
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

/// A fresh, empty directory under the system temp dir for one test.
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("framealloc-guide-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ## TaskAlloc / Basic Usage
mod basic_usage {
    use super::*;

    use framealloc::SmartAlloc;
    use framealloc::tokio::TaskAlloc;

    async fn process_asset(alloc: &SmartAlloc, path: &str) -> Vec<u8> {
        let alloc_clone = alloc.clone();
        // GUIDE FIX: the borrowed `path` is moved into a `'static` spawn: made owned.
        let path = path.to_owned();

        tokio::spawn(async move {
            // Create task-scoped allocator
            let mut task = TaskAlloc::new(&alloc_clone);

            // Load asset (pool allocation)
            let data = task.alloc_box(load_from_disk(path).await);

            // Process data
            let processed = process_data(&data).await;

            // All allocations automatically freed when task ends
            // GUIDE FIX: the block ends with `processed`, the `Vec<u8>` the function promises.
            processed
        }).await.unwrap()
    }

    // Helpers (not in the guide).

    /// Reads the asset file.
    async fn load_from_disk(path: String) -> Vec<u8> {
        tokio::fs::read(&path).await.expect("asset file readable")
    }

    /// Run-length encodes the asset as (count, byte) pairs, yielding between runs of work.
    async fn process_data(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in data.chunks(64) {
            for &b in piece {
                match out.len() {
                    n if n >= 2 && out[n - 1] == b && out[n - 2] < u8::MAX => out[n - 2] += 1,
                    _ => out.extend([1, b]),
                }
            }
            tokio::task::yield_now().await;
        }
        out
    }

    fn rle(data: &[u8]) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::new();
        for &b in data {
            let n = out.len();
            if n >= 2 && out[n - 1] == b && out[n - 2] < u8::MAX {
                out[n - 2] += 1;
            } else {
                out.extend([1, b]);
            }
        }
        out
    }

    #[test]
    fn process_asset_loads_processes_and_frees() {
        let dir = temp_dir("basic-usage");
        let path = dir.join("asset.bin");
        let content: Vec<u8> = (0..1000u32).map(|i| (i / 7 % 5) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        for (name, rt) in flavours() {
            let alloc = SmartAlloc::new(Default::default());
            let out = rt.block_on(process_asset(&alloc, path.to_str().unwrap()));
            assert_eq!(out, rle(&content), "{name}");
            let s = assert_released(&alloc);
            assert_eq!(s.task.allocations, 1, "{name}: the loaded data went to the task heap: {s:?}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}

// ## TaskAlloc / Task-Scoped Allocations
mod task_scoped {
    use super::*;
    use framealloc::tokio::TaskAlloc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn handle_connection(mut task: TaskAlloc) {
        // All allocations in this task are tracked

        // Pool allocation for connection state
        let state = task.alloc_box(ConnectionState::new());

        // Frame allocation not available here (correctly!)
        // let frame_data = task.frame_alloc<u8>(); // Error!

        // Use pool for temporary data
        // GUIDE FIX: `buffer` is mutated below: `mut`.
        let mut buffer = task.alloc_vec::<u8>();

        // Process connection
        while !state.is_closed() {
            let data = receive_data().await;
            buffer.extend_from_slice(&data);
            process_buffer(&buffer).await;
            buffer.clear();
        }

        // All allocations freed when function returns
    }

    // Helpers (not in the guide): the task's connection is a task-local, so that
    // `ConnectionState::new()`, `receive_data()` and `process_buffer()` find it without
    // arguments, as the snippet calls them.

    struct Connection {
        stream: tokio::sync::Mutex<TcpStream>,
        closed: AtomicBool,
    }

    tokio::task_local! {
        static CONNECTION: Arc<Connection>;
    }

    struct ConnectionState {
        conn: Arc<Connection>,
    }

    impl ConnectionState {
        fn new() -> Self {
            Self { conn: CONNECTION.with(Arc::clone) }
        }

        fn is_closed(&self) -> bool {
            self.conn.closed.load(Ordering::Acquire)
        }
    }

    /// The next bytes the peer sent; empty (and the connection marked closed) at EOF.
    async fn receive_data() -> Vec<u8> {
        let conn = CONNECTION.with(Arc::clone);
        let mut buf = vec![0u8; 64];
        let n = conn.stream.lock().await.read(&mut buf).await.expect("read from peer");
        if n == 0 {
            conn.closed.store(true, Ordering::Release);
        }
        buf.truncate(n);
        buf
    }

    /// Answers what was received with its upper-case form.
    async fn process_buffer(buffer: &[u8]) {
        if buffer.is_empty() {
            return;
        }
        let conn = CONNECTION.with(Arc::clone);
        conn.stream.lock().await.write_all(&buffer.to_ascii_uppercase()).await.expect("write to peer");
    }

    #[test]
    fn handle_connection_serves_a_loopback_peer_until_it_closes() {
        for (name, rt) in flavours() {
            let alloc = SmartAlloc::new(Default::default());
            let a = alloc.clone();
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let server = tokio::spawn(async move {
                    let (stream, _) = listener.accept().await.unwrap();
                    let conn = Arc::new(Connection { stream: tokio::sync::Mutex::new(stream), closed: AtomicBool::new(false) });
                    let task = TaskAlloc::new(&a);
                    CONNECTION.scope(conn, handle_connection(task)).await;
                });
                let mut client = TcpStream::connect(addr).await.unwrap();
                for msg in ["hello", "framealloc on tokio", "a longer message that spans more than one read of 64 bytes, surely"] {
                    client.write_all(msg.as_bytes()).await.unwrap();
                    let mut reply = vec![0u8; msg.len()];
                    client.read_exact(&mut reply).await.unwrap();
                    assert_eq!(reply, msg.to_ascii_uppercase().as_bytes());
                }
                client.shutdown().await.unwrap();
                server.await.unwrap();
            });
            let s = assert_released(&alloc);
            assert!(s.task.allocations >= 2, "{name}: state and buffer in the task heap: {s:?}");
        }
    }
}

// ## TaskAlloc / Nested Tasks
mod nested_tasks {
    use super::*;
    use framealloc::tokio::TaskAlloc;
    use std::sync::Mutex;

    async fn process_requests(alloc: &SmartAlloc, requests: Vec<Request>) {
        let mut handles = Vec::new();

        for request in requests {
            let alloc_clone = alloc.clone();
            let handle = tokio::spawn(async move {
                let mut task = TaskAlloc::new(&alloc_clone);
                process_single_request(&mut task, request).await
            });
            handles.push(handle);
        }

        // Wait for all tasks
        for handle in handles {
            handle.await.unwrap();
        }
    }

    async fn process_single_request(task: &mut TaskAlloc, request: Request) {
        // Use task allocations
        let data = task.alloc_box(request.data);
        let result = compute_result(&data).await;

        // Send result back
        send_result(result).await;
    }

    // Helpers (not in the guide).

    struct Request {
        data: Vec<u64>,
    }

    /// Sum of squares, yielding halfway.
    async fn compute_result(data: &[u64]) -> u64 {
        let (a, b) = data.split_at(data.len() / 2);
        let first: u64 = a.iter().map(|v| v * v).sum();
        tokio::task::yield_now().await;
        first + b.iter().map(|v| v * v).sum::<u64>()
    }

    /// Where results are sent (only this module's test uses it).
    static RESULTS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

    async fn send_result(result: u64) {
        RESULTS.lock().unwrap().push(result);
    }

    #[test]
    fn every_request_is_processed_in_its_own_task() {
        for (name, rt) in flavours() {
            RESULTS.lock().unwrap().clear();
            let alloc = SmartAlloc::new(Default::default());
            let requests: Vec<Request> = (0..50u64).map(|i| Request { data: (0..i).collect() }).collect();
            rt.block_on(process_requests(&alloc, requests));
            let mut got = std::mem::take(&mut *RESULTS.lock().unwrap());
            got.sort_unstable();
            let mut want: Vec<u64> = (0..50u64).map(|i| (0..i).map(|v| v * v).sum()).collect();
            want.sort_unstable();
            assert_eq!(got, want, "{name}");
            let s = assert_released(&alloc);
            assert_eq!(s.task.allocations, 50, "{name}: one boxed request per task heap: {s:?}");
        }
    }
}

// ## AsyncPoolGuard / RAII Pattern
mod raii_pattern {
    use super::*;
    use framealloc::tokio::AsyncPoolGuard;
    use framealloc::PoolBox;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    async fn process_with_guard(alloc: &SmartAlloc) {
        // Guard ensures cleanup even on early return
        let _guard = AsyncPoolGuard::new(&alloc);

        // Pool allocations are automatically tracked
        let data1 = alloc.pool_alloc::<Data>();
        let data2 = alloc.pool_alloc::<MoreData>();

        // Complex async logic
        if some_condition().await {
            // Early return - guard still cleans up
            return;
        }

        // More processing
        process_data(data1, data2).await;

        // Guard drops here, cleaning up all pool allocations
    }

    // Helpers (not in the guide).

    #[derive(Default)]
    struct Data {
        values: [u32; 16],
    }

    #[derive(Default)]
    struct MoreData {
        label: String,
        total: u64,
    }

    /// What `some_condition` answers (set by the test).
    static EARLY_RETURN: AtomicBool = AtomicBool::new(false);
    /// Sum of every `MoreData::total` that `process_data` computed.
    static PROCESSED: AtomicU64 = AtomicU64::new(0);

    async fn some_condition() -> bool {
        tokio::task::yield_now().await;
        EARLY_RETURN.load(Ordering::SeqCst)
    }

    async fn process_data(mut data1: PoolBox<Data>, mut data2: PoolBox<MoreData>) {
        for (i, v) in data1.values.iter_mut().enumerate() {
            *v = i as u32 * 2;
        }
        tokio::task::yield_now().await;
        data2.total = data1.values.iter().map(|&v| u64::from(v)).sum();
        data2.label = format!("total {}", data2.total);
        assert_eq!(data2.label, "total 240");
        PROCESSED.fetch_add(data2.total, Ordering::SeqCst);
    }

    #[test]
    fn the_guard_cleans_up_on_both_paths() {
        for (name, rt) in flavours() {
            for early in [true, false] {
                EARLY_RETURN.store(early, Ordering::SeqCst);
                PROCESSED.store(0, Ordering::SeqCst);
                let alloc = SmartAlloc::new(Default::default());
                let a = alloc.clone();
                rt.block_on(async move {
                    // In a plain tokio task (the guard heap is keyed by tokio's task id) ...
                    let b = a.clone();
                    tokio::spawn(async move { process_with_guard(&b).await }).await.unwrap();
                    // ... in a task with its own heap ...
                    let b = a.clone();
                    framealloc::tokio::spawn(async move { process_with_guard(&b).await }).await.unwrap();
                    // ... and in the block_on root (no task: the guard heap is the thread's).
                    process_with_guard(&a).await;
                });
                let s = assert_released(&alloc);
                assert_eq!(s.guard_escapes, 0, "{name}: {s:?}");
                assert_eq!((s.task.allocations, s.pool.allocations), (4, 2), "{name}: 2 per run; tasks count as task: {s:?}");
                assert_eq!(PROCESSED.load(Ordering::SeqCst), if early { 0 } else { 3 * 240 }, "{name}");
            }
        }
    }
}

// ## AsyncPoolGuard / Scoped Resource Management
mod scoped_resources {
    use super::*;
    use framealloc::tokio::AsyncPoolGuard;
    use std::sync::Mutex;

    async fn database_transaction(alloc: &SmartAlloc) -> Result<(), Error> {
        let _guard = AsyncPoolGuard::new(&alloc);

        // Begin transaction
        let tx = begin_transaction().await?;

        // Allocate query results
        // GUIDE FIX: `results` is extended below: `mut`.
        let mut results = alloc.pool_vec::<Row>();

        // Execute queries
        for query in queries {
            let rows = execute_query(&tx, query).await?;
            results.extend(rows);
        }

        // Commit or rollback
        if validate_results(&results).await {
            tx.commit().await?;
            Ok(())
        } else {
            tx.rollback().await?;
            Err(Error::ValidationFailed)
        }
        // Guard ensures all Row allocations are freed
    }

    // Helpers (not in the guide): a small in-memory table. A transaction works on a snapshot;
    // commit and rollback are recorded.

    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Row {
        id: u32,
        score: i64,
    }

    #[derive(Debug, PartialEq)]
    enum Error {
        Closed,
        BadQuery(String),
        ValidationFailed,
    }

    #[derive(Default)]
    struct Database {
        open: bool,
        rows: Vec<Row>,
        commits: u32,
        rollbacks: u32,
    }

    static DB: Mutex<Database> = Mutex::new(Database { open: false, rows: Vec::new(), commits: 0, rollbacks: 0 });

    /// The queries the transaction runs (`queries` in the snippet).
    const queries: [&str; 2] = ["score >= 50", "score < 10"];

    struct Transaction {
        snapshot: Vec<Row>,
    }

    async fn begin_transaction() -> Result<Transaction, Error> {
        tokio::task::yield_now().await;
        let db = DB.lock().unwrap();
        if !db.open {
            return Err(Error::Closed);
        }
        Ok(Transaction { snapshot: db.rows.clone() })
    }

    /// `"score >= N"` or `"score < N"`.
    async fn execute_query(tx: &Transaction, query: &str) -> Result<Vec<Row>, Error> {
        tokio::task::yield_now().await;
        let bad = || Error::BadQuery(query.to_string());
        let mut words = query.split_whitespace();
        let (field, op, value) = (words.next(), words.next(), words.next().and_then(|v| v.parse::<i64>().ok()));
        let (Some("score"), Some(op), Some(value)) = (field, op, value) else { return Err(bad()) };
        let keep: fn(i64, i64) -> bool = match op {
            ">=" => |s, v| s >= v,
            "<" => |s, v| s < v,
            _ => return Err(bad()),
        };
        Ok(tx.snapshot.iter().copied().filter(|r| keep(r.score, value)).collect())
    }

    /// Scores may not be negative.
    async fn validate_results(rows: &[Row]) -> bool {
        tokio::task::yield_now().await;
        rows.iter().all(|r| r.score >= 0)
    }

    impl Transaction {
        async fn commit(self) -> Result<(), Error> {
            DB.lock().unwrap().commits += 1;
            Ok(())
        }

        async fn rollback(self) -> Result<(), Error> {
            DB.lock().unwrap().rollbacks += 1;
            Ok(())
        }
    }

    fn reset(open: bool, scores: &[i64]) {
        let mut db = DB.lock().unwrap();
        *db = Database { open, ..Default::default() };
        db.rows = scores.iter().enumerate().map(|(i, &score)| Row { id: i as u32 + 1, score }).collect();
    }

    #[test]
    fn commit_rollback_and_early_error_all_free_the_rows() {
        for (name, rt) in flavours() {
            let alloc = SmartAlloc::new(Default::default());
            let run = |alloc: &SmartAlloc| {
                let a = alloc.clone();
                rt.block_on(async move { tokio::spawn(async move { database_transaction(&a).await }).await.unwrap() })
            };

            let counts = || {
                let db = DB.lock().unwrap();
                (db.commits, db.rollbacks)
            };
            reset(true, &[5, 60, 70, 3, 20]);
            assert_eq!(run(&alloc), Ok(()), "{name}");
            assert_eq!(counts(), (1, 0), "{name}: committed");
            reset(true, &[5, 60, -7]);
            assert_eq!(run(&alloc), Err(Error::ValidationFailed), "{name}");
            assert_eq!(counts(), (0, 1), "{name}: rolled back");
            reset(false, &[1]);
            assert_eq!(run(&alloc), Err(Error::Closed), "{name}: `?` returns early, the guard still drops");
            assert_eq!(counts(), (0, 0), "{name}");

            let s = assert_released(&alloc);
            assert_eq!((s.guard_escapes, s.pool.allocations), (0, 0), "{name}: {s:?}");
            assert!(s.task.allocations >= 2, "{name}: the rows went to the task's guard heap: {s:?}");
        }
    }
}

// ## Common Patterns / Main Thread Coordination
mod main_thread_coordination {
    use super::*;
    use framealloc::SmartAlloc;
    use framealloc::tokio::TaskAlloc;
    use std::io::Write as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    struct GameServer {
        alloc: SmartAlloc,
        // GUIDE FIX: `tokio::Runtime` is `tokio::runtime::Runtime`.
        runtime: tokio::runtime::Runtime,
    }

    impl GameServer {
        fn new() -> Self {
            Self {
                alloc: SmartAlloc::new(Default::default()),
                // GUIDE FIX: `tokio::Runtime` is `tokio::runtime::Runtime`.
                runtime: tokio::runtime::Runtime::new().unwrap(),
            }
        }

        fn run(&mut self) {
            loop {
                // Main thread frame allocation
                self.alloc.begin_frame();

                // Process network events (async)
                let network_events = self.runtime.block_on(async {
                    self.process_network().await
                });

                // Process events with frame allocation
                for event in network_events {
                    self.handle_event(event);
                }

                // Update game state
                self.update_game();

                self.alloc.end_frame();
            }
        }

        async fn process_network(&self) -> Vec<NetworkEvent> {
            let alloc_clone = self.alloc.clone();

            // Spawn async tasks for network I/O
            let mut handles = Vec::new();

            for connection in self.get_connections() {
                let alloc_clone = alloc_clone.clone();
                let handle = tokio::spawn(async move {
                    let mut task = TaskAlloc::new(&alloc_clone);
                    read_connection_events(&mut task, connection).await
                });
                handles.push(handle);
            }

            // Collect all events
            let mut all_events = Vec::new();
            for handle in handles {
                all_events.extend(handle.await.unwrap());
            }

            all_events
        }
    }

    // Helpers (not in the guide). Each frame, `CLIENTS` loopback clients connect, send this
    // frame's events and close; the server reads them in tasks. The endless `run` loop is
    // ended by `update_game` after `FRAMES` frames: it unwinds with a `StopServer` payload
    // (`resume_unwind`, no panic message), which the test catches.

    const CLIENTS: u32 = 3;
    const FRAMES: u64 = 4;

    #[derive(Debug)]
    struct NetworkEvent {
        frame: u64,
        client: u32,
        action: String,
    }

    struct StopServer;

    /// `(frame, client, action)` of every event handled, and frames updated.
    static HANDLED: Mutex<Vec<(u64, u32, String)>> = Mutex::new(Vec::new());
    static UPDATED: AtomicU64 = AtomicU64::new(0);

    impl GameServer {
        fn get_connections(&self) -> Vec<TcpStream> {
            let frame = self.alloc.frame_number();
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            (0..CLIENTS)
                .map(|client| {
                    let mut peer = std::net::TcpStream::connect(addr).unwrap();
                    write!(peer, "{frame} {client} move\n{frame} {client} fire\n").unwrap();
                    drop(peer); // closes: the server side reads the events, then EOF
                    let (stream, _) = listener.accept().unwrap();
                    stream.set_nonblocking(true).unwrap();
                    TcpStream::from_std(stream).unwrap()
                })
                .collect()
        }

        /// Formats the event in frame memory (main thread, between `begin_frame` and
        /// `end_frame`) and records it.
        fn handle_event(&self, event: NetworkEvent) {
            let mut line = self.alloc.frame_vec::<u8>();
            line.extend(event.action.bytes());
            assert_eq!(event.frame, self.alloc.frame_number(), "events belong to this frame");
            let action = String::from_utf8(line.to_vec()).unwrap();
            HANDLED.lock().unwrap().push((event.frame, event.client, action));
        }

        fn update_game(&self) {
            let handled = self.alloc.frame_box(HANDLED.lock().unwrap().len());
            assert_eq!(*handled as u64, self.alloc.frame_number() * u64::from(CLIENTS) * 2);
            if UPDATED.fetch_add(1, Ordering::SeqCst) + 1 == FRAMES {
                std::panic::resume_unwind(Box::new(StopServer));
            }
        }
    }

    /// Reads the connection to its end into the task heap and parses one event per line.
    async fn read_connection_events(task: &mut TaskAlloc, mut connection: TcpStream) -> Vec<NetworkEvent> {
        let mut bytes = task.alloc_vec::<u8>();
        let mut chunk = [0u8; 16];
        loop {
            let n = connection.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&chunk[..n]);
        }
        std::str::from_utf8(&bytes)
            .unwrap()
            .lines()
            .map(|l| {
                let mut w = l.split(' ');
                let frame = w.next().unwrap().parse().unwrap();
                let client = w.next().unwrap().parse().unwrap();
                NetworkEvent { frame, client, action: w.next().unwrap().to_string() }
            })
            .collect()
    }

    #[test]
    fn the_server_loop_runs_frames_with_network_tasks() {
        let mut server = GameServer::new();
        let stop = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.run())).unwrap_err();
        assert!(stop.is::<StopServer>(), "the loop ended through update_game, not a failure");
        // The stop left the last frame open: close it as the loop would have.
        server.alloc.end_frame();

        assert_eq!(server.alloc.frame_number(), FRAMES);
        let mut handled = std::mem::take(&mut *HANDLED.lock().unwrap());
        handled.sort();
        let mut want = Vec::new();
        for frame in 1..=FRAMES {
            for client in 0..CLIENTS {
                want.push((frame, client, "fire".to_string()));
                want.push((frame, client, "move".to_string()));
            }
        }
        assert_eq!(handled, want);
        let s = assert_released(&server.alloc);
        assert_eq!(s.task.allocations, FRAMES * u64::from(CLIENTS) * 2, "{s:?}");
        assert!(s.frame.allocations >= FRAMES * (u64::from(CLIENTS) * 2 + 1), "{s:?}");
        assert_eq!(s.frame.live_bytes, 0, "{s:?}");
    }
}

// ## Common Patterns / Asset Loading Pipeline
mod asset_loading {
    use super::*;
    use framealloc::tokio::TaskAlloc;
    use std::collections::HashMap;

    struct AssetLoader {
        alloc: SmartAlloc,
        loading_queue: Vec<LoadRequest>,
        loaded_assets: HashMap<String, Asset>,
    }

    impl AssetLoader {
        async fn load_assets(&mut self) {
            let alloc_clone = self.alloc.clone();

            // Process loading queue in parallel
            let futures: Vec<_> = self.loading_queue.drain(..)
                .map(|request| {
                    let alloc_clone = alloc_clone.clone();
                    tokio::spawn(async move {
                        let mut task = TaskAlloc::new(&alloc_clone);
                        load_asset_async(&mut task, request).await
                    })
                })
                .collect();

            // Wait for all loads
            for future in futures {
                match future.await.unwrap() {
                    Ok(asset) => {
                        self.loaded_assets.insert(asset.path.clone(), asset);
                    }
                    // GUIDE FIX: a match arm's expression ends with `,`, not `;`.
                    Err(e) => eprintln!("Failed to load asset: {}", e),
                }
            }
        }
    }

    async fn load_asset_async(task: &mut TaskAlloc, request: LoadRequest) -> Result<Asset, Error> {
        // Load file data
        let file_data = task.alloc_box(read_file(&request.path).await?);

        // Parse based on type
        match request.asset_type {
            AssetType::Texture => {
                let texture = parse_texture(&file_data).await?;
                Ok(Asset::Texture(texture))
            }
            AssetType::Mesh => {
                let mesh = parse_mesh(&file_data).await?;
                Ok(Asset::Mesh(mesh))
            }
            AssetType::Audio => {
                let audio = parse_audio(&file_data).await?;
                Ok(Asset::Audio(audio))
            }
        }
    }

    // Helpers (not in the guide). Asset files start with a header line naming their kind and
    // their asset path: `TEX <path>` + `<w> <h>` + w*h bytes; `MESH <path>` + `x y z` lines;
    // `AUD <path>` + little-endian i16 samples. `Asset::Texture(..)` etc. are constructors of
    // the `Asset` struct, which keeps the path the snippet reads.

    struct LoadRequest {
        path: String,
        asset_type: AssetType,
    }

    enum AssetType {
        Texture,
        Mesh,
        Audio,
    }

    #[derive(Debug, PartialEq)]
    struct Texture {
        path: String,
        width: usize,
        height: usize,
        pixels: Vec<u8>,
    }

    #[derive(Debug, PartialEq)]
    struct Mesh {
        path: String,
        vertices: Vec<[f32; 3]>,
    }

    #[derive(Debug, PartialEq)]
    struct Audio {
        path: String,
        samples: Vec<i16>,
    }

    #[derive(Debug, PartialEq)]
    enum AssetData {
        Texture(Texture),
        Mesh(Mesh),
        Audio(Audio),
    }

    #[derive(Debug, PartialEq)]
    struct Asset {
        path: String,
        data: AssetData,
    }

    impl Asset {
        fn Texture(t: Texture) -> Asset {
            Asset { path: t.path.clone(), data: AssetData::Texture(t) }
        }

        fn Mesh(m: Mesh) -> Asset {
            Asset { path: m.path.clone(), data: AssetData::Mesh(m) }
        }

        fn Audio(a: Audio) -> Asset {
            Asset { path: a.path.clone(), data: AssetData::Audio(a) }
        }
    }

    #[derive(Debug)]
    enum Error {
        Io(std::io::Error),
        Parse(&'static str),
    }

    impl std::fmt::Display for Error {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Error::Io(e) => write!(f, "I/O error: {e}"),
                Error::Parse(what) => write!(f, "bad asset: {what}"),
            }
        }
    }

    impl From<std::io::Error> for Error {
        fn from(e: std::io::Error) -> Self {
            Error::Io(e)
        }
    }

    async fn read_file(path: &str) -> Result<Vec<u8>, Error> {
        Ok(tokio::fs::read(path).await?)
    }

    /// Splits `<tag> <path>\n<rest>`.
    fn header<'a>(data: &'a [u8], tag: &str) -> Result<(String, &'a [u8]), Error> {
        let nl = data.iter().position(|&b| b == b'\n').ok_or(Error::Parse("no header"))?;
        let line = std::str::from_utf8(&data[..nl]).map_err(|_| Error::Parse("header not UTF-8"))?;
        let path = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')).ok_or(Error::Parse("wrong kind"))?;
        Ok((path.to_string(), &data[nl + 1..]))
    }

    async fn parse_texture(data: &[u8]) -> Result<Texture, Error> {
        let (path, rest) = header(data, "TEX")?;
        let nl = rest.iter().position(|&b| b == b'\n').ok_or(Error::Parse("no size"))?;
        let size = std::str::from_utf8(&rest[..nl]).map_err(|_| Error::Parse("size"))?;
        let (w, h) = size.split_once(' ').ok_or(Error::Parse("size"))?;
        let (width, height): (usize, usize) =
            (w.parse().map_err(|_| Error::Parse("width"))?, h.parse().map_err(|_| Error::Parse("height"))?);
        let pixels = rest[nl + 1..].to_vec();
        if pixels.len() != width * height {
            return Err(Error::Parse("pixel count"));
        }
        tokio::task::yield_now().await;
        Ok(Texture { path, width, height, pixels })
    }

    async fn parse_mesh(data: &[u8]) -> Result<Mesh, Error> {
        let (path, rest) = header(data, "MESH")?;
        let text = std::str::from_utf8(rest).map_err(|_| Error::Parse("mesh not UTF-8"))?;
        let mut vertices = Vec::new();
        for line in text.lines() {
            let v: Vec<f32> = line.split(' ').map(|x| x.parse().map_err(|_| Error::Parse("coordinate"))).collect::<Result<_, _>>()?;
            vertices.push(<[f32; 3]>::try_from(v).map_err(|_| Error::Parse("vertex"))?);
            tokio::task::yield_now().await;
        }
        Ok(Mesh { path, vertices })
    }

    async fn parse_audio(data: &[u8]) -> Result<Audio, Error> {
        let (path, rest) = header(data, "AUD")?;
        if rest.len() % 2 != 0 {
            return Err(Error::Parse("odd sample bytes"));
        }
        tokio::task::yield_now().await;
        Ok(Audio { path, samples: rest.chunks(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect() })
    }

    #[test]
    fn the_pipeline_loads_every_valid_asset_in_parallel() {
        let dir = temp_dir("assets");
        let file = |name: &str, content: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, content).unwrap();
            p.to_str().unwrap().to_string()
        };
        let mut tex = b"TEX textures/grass\n3 2\n".to_vec();
        tex.extend([1, 2, 3, 4, 5, 6]);
        let tex = file("grass.tex", &tex);
        let mesh = file("cube.mesh", b"MESH meshes/tri\n0 0 0\n1 0 0\n0 1 0.5");
        let mut aud = b"AUD sounds/beep\n".to_vec();
        aud.extend([-3i16, 7, 1000].iter().flat_map(|s| s.to_le_bytes()));
        let aud = file("beep.aud", &aud);
        let corrupt = file("bad.tex", b"TEX textures/bad\n4 4\n123");
        let missing = dir.join("missing.tex").to_str().unwrap().to_string();

        for (name, rt) in flavours() {
            let alloc = SmartAlloc::new(Default::default());
            let request = |path: &String, asset_type| LoadRequest { path: path.clone(), asset_type };
            let mut loader = AssetLoader {
                alloc: alloc.clone(),
                loading_queue: vec![
                    request(&tex, AssetType::Texture),
                    request(&mesh, AssetType::Mesh),
                    request(&aud, AssetType::Audio),
                    request(&corrupt, AssetType::Texture),
                    request(&missing, AssetType::Texture),
                ],
                loaded_assets: HashMap::new(),
            };
            rt.block_on(loader.load_assets());
            assert!(loader.loading_queue.is_empty());
            let mut keys: Vec<_> = loader.loaded_assets.keys().cloned().collect();
            keys.sort();
            assert_eq!(keys, ["meshes/tri", "sounds/beep", "textures/grass"], "{name}");
            assert_eq!(
                loader.loaded_assets["textures/grass"].data,
                AssetData::Texture(Texture { path: "textures/grass".into(), width: 3, height: 2, pixels: vec![1, 2, 3, 4, 5, 6] })
            );
            assert_eq!(
                loader.loaded_assets["meshes/tri"].data,
                AssetData::Mesh(Mesh { path: "meshes/tri".into(), vertices: vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.5]] })
            );
            assert_eq!(
                loader.loaded_assets["sounds/beep"].data,
                AssetData::Audio(Audio { path: "sounds/beep".into(), samples: vec![-3, 7, 1000] })
            );
            let s = assert_released(&alloc);
            assert_eq!(s.task.allocations, 4, "{name}: one boxed file per readable asset: {s:?}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}

// ## Common Patterns / Stream Processing
mod stream_processing {
    use super::*;
    use framealloc::tokio::AsyncPoolGuard;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    // GUIDE FIX: `?` needs a `Result` return type (and `Ok(())` at the end).
    async fn process_stream(alloc: &SmartAlloc, mut stream: TcpStream) -> Result<(), std::io::Error> {
        let _guard = AsyncPoolGuard::new(&alloc);

        // Buffer for incoming data
        let buffer = alloc.pool_vec::<u8>();

        loop {
            // Read chunk
            let chunk = read_chunk(&mut stream).await?;
            if chunk.is_empty() {
                break;
            }

            // Process chunk
            let processed = process_chunk(&chunk).await;

            // Write back
            write_chunk(&mut stream, &processed).await?;
        }

        // Guard ensures buffer is freed
        // GUIDE FIX: `Ok(())` for the `Result` return type.
        Ok(())
    }

    async fn process_chunk(chunk: &[u8]) -> Vec<u8> {
        // Simple transformation
        chunk.iter()
            .map(|&b| b.wrapping_add(1))
            .collect()
    }

    // Helpers (not in the guide).

    /// Up to 512 bytes from the stream; empty at EOF.
    async fn read_chunk(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 512];
        let n = stream.read(&mut buf).await?;
        buf.truncate(n);
        Ok(buf)
    }

    async fn write_chunk(stream: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
        stream.write_all(data).await
    }

    /// A loopback client: sends `rounds` messages of growing size, checks each echo is the
    /// message plus one, then closes its side.
    async fn client(addr: std::net::SocketAddr, rounds: usize) -> usize {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut total = 0;
        for round in 0..rounds {
            let msg: Vec<u8> = (0..round * 97 + 1).map(|i| (i * 31 + round) as u8).collect();
            s.write_all(&msg).await.unwrap();
            let mut back = vec![0u8; msg.len()];
            s.read_exact(&mut back).await.unwrap();
            assert!(back.iter().zip(&msg).all(|(b, m)| *b == m.wrapping_add(1)));
            total += msg.len();
        }
        s.shutdown().await.unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        total
    }

    #[test]
    fn process_stream_over_loopback_tcp() {
        for (name, rt) in flavours() {
            let alloc = SmartAlloc::new(Default::default());
            let a = alloc.clone();
            let sent = rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let server = tokio::spawn(async move {
                    // Two connections: one in a plain task, one in a task with its own heap.
                    let (s1, _) = listener.accept().await?;
                    let b = a.clone();
                    let first = tokio::spawn(async move { process_stream(&b, s1).await });
                    let (s2, _) = listener.accept().await?;
                    let b = a.clone();
                    let second = framealloc::tokio::spawn(async move { process_stream(&b, s2).await });
                    first.await.unwrap()?;
                    second.await.unwrap()
                });
                let (x, y) = tokio::join!(client(addr, 20), client(addr, 7));
                server.await.unwrap().unwrap();
                x + y
            });
            assert_eq!(sent, (0..20).map(|r| r * 97 + 1).sum::<usize>() + (0..7).map(|r| r * 97 + 1).sum::<usize>());
            let s = assert_released(&alloc);
            assert_eq!(s.guard_escapes, 0, "{name}: {s:?}");
        }
    }
}

// ## Integration with Tokio / Tokio Runtime Integration
mod runtime_integration {
    use super::*;
    use framealloc::SmartAlloc;
    use framealloc::tokio::{TaskAlloc, AsyncPoolGuard};
    use tokio::runtime::Runtime;

    struct AsyncApplication {
        alloc: SmartAlloc,
        runtime: Runtime,
    }

    impl AsyncApplication {
        fn new() -> Self {
            Self {
                alloc: SmartAlloc::new(Default::default()),
                runtime: Runtime::new().unwrap(),
            }
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
        while let Some(work) = { let mut receiver = receiver.lock().await; receiver.recv().await } {
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
        (0..n).filter(|id| id % 5 != 0).map(|id| WorkResult { id, checksum: (0..u64::from(id)).sum::<u64>() * 3 }).collect()
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
        samples.extend([m.num_workers() as u64, m.num_alive_tasks() as u64, tokio::time::Instant::now().elapsed().as_secs()]);
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

// ## Migration from Sync Code / Before (Sync)
mod before_sync {
    use super::*;

    fn process_data(data: &[u8]) -> Vec<u8> {
        let alloc = SmartAlloc::new(Default::default());
        alloc.begin_frame();

        let result = alloc.frame_vec::<u8>();
        // Process data...

        alloc.end_frame();
        result.into_inner()
    }

    #[test]
    fn the_sync_version_runs_and_reads_its_frame_vec_after_end_frame() {
        // The snippet leaves the processing out, so the frame vector comes back empty.
        assert_eq!(process_data(b"some input"), Vec::<u8>::new());
    }
}

// ## Migration from Sync Code / After (Async)
mod after_async {
    use super::*;
    use framealloc::tokio::TaskAlloc;

    async fn process_data_async(alloc: &SmartAlloc, data: &[u8]) -> Vec<u8> {
        let mut task = TaskAlloc::new(alloc);

        let result = task.alloc_vec::<u8>();
        // Process data asynchronously...

        result.into_inner()
    }

    #[test]
    fn the_async_version_runs_in_tasks() {
        for (name, rt) in flavours() {
            let alloc = SmartAlloc::new(Default::default());
            let a = alloc.clone();
            rt.block_on(async move {
                let b = a.clone();
                let out = tokio::spawn(async move { process_data_async(&b, b"input").await }).await.unwrap();
                assert_eq!(out, Vec::<u8>::new(), "{name}: the snippet leaves the processing out");
                let b = a.clone();
                let out = framealloc::tokio::spawn(async move { process_data_async(&b, b"input").await }).await.unwrap();
                assert_eq!(out, Vec::<u8>::new());
                assert_eq!(process_data_async(&a, b"input").await, Vec::<u8>::new());
            });
            assert_released(&alloc);
        }
    }
}

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
