//! A small tokio service using framealloc's tokio layer.
//!
//! A line protocol server on 127.0.0.1 (an OS-chosen port): `SUM 1 2 3` answers the sum,
//! `SORT 3 1 2` the sorted numbers, `UPPER text` the text in upper case. Every connection
//! runs in a task started with `framealloc::tokio::spawn`, so it gets its own heap; it parses
//! with a `TaskAlloc` and handles each request under an `AsyncPoolGuard`. A fixed number of
//! clients send a fixed number of requests each, check every answer, and disconnect; the
//! server stops after serving them all and prints the allocation statistics.
//!
//! Run: `cargo run --example tokio_app --features tokio`

use framealloc::tokio::{AsyncPoolGuard, TaskAlloc};
use framealloc::SmartAlloc;
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const CLIENTS: usize = 8;
const REQUESTS_PER_CLIENT: usize = 50;

/// Serves one connection until the peer closes it. Returns the number of requests served.
async fn serve(alloc: SmartAlloc, stream: TcpStream) -> std::io::Result<usize> {
    // Owned by this task: allocation and free without atomics, also after a move to
    // another worker thread; everything left goes back at once when it drops.
    let task = TaskAlloc::new(&alloc);
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut served = 0;
    while let Some(line) = lines.next_line().await? {
        // Every pool allocation of this request is in the guard's scope (and in this task's heap).
        let guard = AsyncPoolGuard::new(&alloc);
        let (cmd, args) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let mut answer = alloc.pool_vec::<u8>();
        match cmd {
            "SUM" | "SORT" => {
                let mut numbers = task.alloc_vec::<i64>();
                for word in args.split_whitespace() {
                    numbers.push(word.parse().unwrap_or(0));
                }
                if cmd == "SUM" {
                    answer.extend(numbers.iter().sum::<i64>().to_string().into_bytes());
                } else {
                    numbers.sort_unstable();
                    let text: Vec<String> = numbers.iter().map(|n| n.to_string()).collect();
                    answer.extend(text.join(" ").into_bytes());
                }
            }
            "UPPER" => answer.extend(args.bytes().map(|b| b.to_ascii_uppercase())),
            _ => answer.extend(*b"ERR unknown command"),
        }
        answer.push(b'\n');
        write.write_all(&answer).await?;
        drop(answer);
        assert_eq!(guard.escaped(), 0, "the answer buffer was dropped: nothing left in the scope");
        served += 1;
    }
    Ok(served)
}

/// One client: `REQUESTS_PER_CLIENT` requests, each answer checked.
async fn client(addr: SocketAddr, id: usize) -> std::io::Result<usize> {
    let stream = TcpStream::connect(addr).await?;
    let (read, mut write) = stream.into_split();
    let mut answers = BufReader::new(read).lines();
    for i in 0..REQUESTS_PER_CLIENT {
        let (request, expected) = match i % 3 {
            0 => {
                let n: Vec<i64> = (0..(i % 7 + 1) as i64).map(|k| k * id as i64 - 3).collect();
                let words: Vec<String> = n.iter().map(|v| v.to_string()).collect();
                (format!("SUM {}", words.join(" ")), n.iter().sum::<i64>().to_string())
            }
            1 => {
                let n: Vec<i64> = (0..5).map(|k| ((k * 7 + i as i64 + id as i64) % 11) - 5).collect();
                let mut sorted = n.clone();
                sorted.sort_unstable();
                let words = |v: &[i64]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ");
                (format!("SORT {}", words(&n)), words(&sorted))
            }
            _ => (format!("UPPER client {id} request {i}"), format!("CLIENT {id} REQUEST {i}")),
        };
        write.write_all(format!("{request}\n").as_bytes()).await?;
        let answer = answers.next_line().await?.expect("an answer per request");
        assert_eq!(answer, expected, "client {id}, request {i}: {request}");
    }
    write.shutdown().await?;
    Ok(REQUESTS_PER_CLIENT)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::io::Result<()> {
    // Already done before `main` on Linux, macOS and Windows; harmless to repeat.
    assert!(framealloc::tokio::init(), "tokio task ids identify framealloc tasks");

    let alloc = SmartAlloc::new(Default::default());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("serving on {addr}: {CLIENTS} clients x {REQUESTS_PER_CLIENT} requests");

    let server_alloc = alloc.clone();
    let server = tokio::spawn(async move {
        let mut connections = Vec::new();
        for _ in 0..CLIENTS {
            let (stream, _) = listener.accept().await?;
            connections.push(framealloc::tokio::spawn(serve(server_alloc.clone(), stream)));
        }
        let mut served = 0;
        for c in connections {
            served += c.await.expect("connection task")?;
        }
        Ok::<_, std::io::Error>(served)
    });

    let clients: Vec<_> = (0..CLIENTS).map(|id| tokio::spawn(client(addr, id))).collect();
    let mut sent = 0;
    for c in clients {
        sent += c.await.expect("client task")?;
    }
    let served = server.await.expect("server task")?;
    assert_eq!(served, sent);

    let stats = alloc.stats();
    println!("served {served} requests");
    println!("task memory: {:?}", stats.task);
    println!("pool memory: {:?}", stats.pool);
    println!(
        "task heaps alive: {}, guard escapes: {}, quarantined chunks: {}",
        stats.heaps_alive, stats.guard_escapes, stats.quarantined_chunks
    );
    assert_eq!((stats.task.live_bytes, stats.heaps_alive, stats.guard_escapes), (0, 0, 0));
    assert_eq!(stats.pool.allocations, 0, "every pool_* call ran in a task heap");
    Ok(())
}
