//! A small game server on loopback that exercises all three kinds of framealloc memory.
//!
//! Until framealloc's own executor lands, connection handlers are plain threads:
//!
//! * 8 clients connect to 127.0.0.1 and each sends 500 `MOVE <dx> <dy>` lines, then closes.
//! * One handler per connection owns a `TaskAlloc` for its line buffer and parsing scratch,
//!   and sends each parsed event to the main thread as a `PoolBox` (a pool allocation that is
//!   freed on the main thread: a remote free).
//! * The main thread runs a fixed 240 Hz frame loop: `begin_frame`, fold the frame's events
//!   into frame memory, update the persistent world, `end_frame`, sleep to the next tick.
//!
//! It stops by itself when every client is done, prints what it did and the allocator's
//! statistics, and exits non-zero if any event was lost or any task or pool memory is left.
//!
//! `cargo run --release --example game_server`

use framealloc::{AllocConfig, PoolBox, SmartAlloc, TaskAlloc};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CLIENTS: u32 = 8;
const MOVES_PER_CLIENT: i64 = 500;
const TICK: Duration = Duration::from_micros(4_167); // 240 Hz

/// A parsed client command.
#[derive(Debug, Clone, Copy)]
struct Event {
    player: u32,
    dx: i64,
    dy: i64,
}

/// Reads one connection until EOF; every line becomes a pooled event for the main thread.
fn handle_connection(alloc: SmartAlloc, stream: TcpStream, tx: mpsc::Sender<PoolBox<Event>>) -> u64 {
    let task = TaskAlloc::new(&alloc);
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("hello line");
    let player: u32 = line.trim().strip_prefix("HELLO ").and_then(|p| p.parse().ok()).expect("HELLO <id>");
    // Scratch space for the fields of one line, reused for every line (task heap).
    let mut fields = task.alloc_vec::<i64>();
    let mut count = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line).expect("read") == 0 {
            break;
        }
        fields.clear();
        fields.extend(line.split_whitespace().skip(1).map(|f| f.parse::<i64>().expect("number")));
        let event = alloc.pool_box(Event { player, dx: fields[0], dy: fields[1] });
        tx.send(event).expect("main loop alive");
        count += 1;
    }
    count
}

/// A client: says hello, sends its moves at a steady pace, closes.
fn run_client(addr: std::net::SocketAddr, id: u32) -> (i64, i64) {
    let mut s = TcpStream::connect(addr).expect("connect to 127.0.0.1");
    writeln!(s, "HELLO {id}").unwrap();
    let (mut x, mut y) = (0, 0);
    for i in 0..MOVES_PER_CLIENT {
        let (dx, dy) = ((i % 7) - 3, (id as i64 % 5) - 2);
        x += dx;
        y += dy;
        writeln!(s, "MOVE {dx} {dy}").unwrap();
        if i % 10 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    (x, y)
}

fn main() {
    let alloc = SmartAlloc::new(AllocConfig::default().with_frame_budget(8 << 20));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel::<PoolBox<Event>>();

    let acceptor = {
        let alloc = alloc.clone();
        std::thread::spawn(move || {
            let mut handlers = Vec::new();
            for _ in 0..CLIENTS {
                let (stream, _) = listener.accept().expect("accept");
                let (alloc, tx) = (alloc.clone(), tx.clone());
                handlers.push(std::thread::spawn(move || handle_connection(alloc, stream, tx)));
            }
            handlers.into_iter().map(|h| h.join().expect("handler")).sum::<u64>()
        })
    };
    let clients: Vec<_> = (0..CLIENTS).map(|id| std::thread::spawn(move || run_client(addr, id))).collect();

    let mut world: BTreeMap<u32, (i64, i64)> = BTreeMap::new();
    let (mut frames, mut events, mut busiest) = (0u64, 0u64, 0usize);
    let started = Instant::now();
    let mut next_tick = Instant::now();
    loop {
        alloc.begin_frame();
        // This frame's events, in frame memory; the pooled boxes are freed here (remote frees).
        let mut batch = alloc.frame_vec::<Event>();
        batch.extend(rx.try_iter().map(PoolBox::into_inner));
        busiest = busiest.max(batch.len());
        events += batch.len() as u64;
        // Per-player sums for this frame, in a scope whose memory is reused at once.
        alloc.frame_scope(|f| {
            let sums = f.alloc_slice_copy(&[(0i64, 0i64); CLIENTS as usize]);
            for e in batch.iter() {
                sums[e.player as usize].0 += e.dx;
                sums[e.player as usize].1 += e.dy;
            }
            for (player, (dx, dy)) in sums.iter().enumerate() {
                let p = world.entry(player as u32).or_default();
                p.0 += dx;
                p.1 += dy;
            }
        });
        drop(batch);
        alloc.end_frame();
        frames += 1;

        let done = acceptor.is_finished() && events == CLIENTS as u64 * MOVES_PER_CLIENT as u64;
        if done || started.elapsed() > Duration::from_secs(30) {
            break;
        }
        next_tick += TICK;
        if let Some(wait) = next_tick.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }

    let handled = acceptor.join().expect("acceptor");
    let expected: BTreeMap<u32, (i64, i64)> =
        clients.into_iter().enumerate().map(|(id, c)| (id as u32, c.join().expect("client"))).collect();
    let elapsed = started.elapsed();
    let stats = alloc.stats();
    println!("game_server: {CLIENTS} clients, {events} events in {frames} frames over {elapsed:.2?} (busiest frame: {busiest} events)");
    println!("  handlers parsed {handled} lines; world matches clients: {}", world == expected);
    println!(
        "  frame: {} allocations, high water {} B | task: {} allocations, {} heaps alive | pool: {} allocations, {} B live",
        stats.frame.allocations,
        stats.frame.high_water_bytes,
        stats.task.allocations,
        stats.heaps_alive,
        stats.pool.allocations,
        stats.pool.live_bytes
    );
    println!("  quarantined chunks: {}, frames begun: {}", stats.quarantined_chunks, stats.frames);
    if world != expected || handled != events {
        eprintln!("game_server: events were lost: {world:?} != {expected:?}");
        std::process::exit(1);
    }
    // Every handler's `TaskAlloc` and every pooled event is gone: nothing may be left.
    if stats.heaps_alive != 0 || stats.task.live_bytes != 0 || stats.pool.live_bytes != 0 {
        eprintln!("game_server: memory was left behind: {stats:?}");
        std::process::exit(1);
    }
}
