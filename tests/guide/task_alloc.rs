//! The guide's "TaskAlloc" section: basic usage, task-scoped allocations, nested tasks.

use super::*;

// ## TaskAlloc / Basic Usage
mod basic_usage {
    use super::*;

    use framealloc::tokio::TaskAlloc;
    use framealloc::SmartAlloc;

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
        })
        .await
        .unwrap()
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
                    let conn = Arc::new(Connection {
                        stream: tokio::sync::Mutex::new(stream),
                        closed: AtomicBool::new(false),
                    });
                    let task = TaskAlloc::new(&a);
                    CONNECTION.scope(conn, handle_connection(task)).await;
                });
                let mut client = TcpStream::connect(addr).await.unwrap();
                for msg in [
                    "hello",
                    "framealloc on tokio",
                    "a longer message that spans more than one read of 64 bytes, surely",
                ] {
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
