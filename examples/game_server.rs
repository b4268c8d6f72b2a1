//! A small game server on loopback that exercises all three kinds of framealloc memory, with
//! its connection handlers as tasks of framealloc's own runtime, facing untrusted clients.
//!
//! `cargo run --release --example game_server`
//!
//! # What it shows
//!
//! * **Task memory.** A [`Runtime`] with 2 worker threads (built with `.alloc(&alloc)`) runs
//!   an acceptor task on a [`TcpListener`], which spawns one task per connection. Each
//!   connection task reads its [`TcpStream`] into buffers made with `alloc.pool_vec*`: inside a
//!   task these come from the task's own heap, which goes back in one piece when the task ends.
//! * **Pool memory.** Each accepted `MOVE` becomes a [`PoolBox<Event>`], allocated in the
//!   connection task and sent through a std channel (sending never blocks) to the main thread,
//!   which frees it: a remote free.
//! * **Frame memory.** The main thread runs a fixed 240 Hz frame loop: `begin_frame`, the
//!   frame's events in a `frame_vec`, per-player sums in a `frame_scope`, update the
//!   persistent world, `end_frame`, sleep to the next tick.
//!
//! # The protocol, and untrusted clients
//!
//! A client sends lines of at most [`MAX_LINE`] bytes (without the `\n`; a `\r` before it is
//! ignored): first `HELLO <id>` with `id` in `0..PLAYERS` and not taken by another connection
//! (a player id is claimed for the whole run), answered with `WELCOME <id>`; then any number of
//! `MOVE <dx> <dy>`, both integers in `-MAX_STEP..=MAX_STEP`. Closing the connection at a line
//! boundary ends the session normally.
//!
//! Clients are not trusted: every line goes through [`parse_line`], a pure function, and then
//! through the session's rules. Anything else (an oversized line, invalid UTF-8, an unknown
//! command, a wrong number of fields, a field that is not an integer, an id or a move out of
//! range, a duplicate id, a `MOVE` before `HELLO`, a second `HELLO`, a connection closed in the
//! middle of a line, or no complete line for [`Config::line_timeout`]) is a [`Reject`]: the
//! server logs `game_server: closing <peer>: <reason>`, answers `ERROR <reason>` if it can, and
//! closes that one connection. The server and the other clients go on. Moves a connection made
//! before its bad line were accepted and count normally (they are already in the world).
//!
//! # What it checks
//!
//! Beside its 8 well-behaved clients (500 moves each), the example runs a handful of bad
//! clients (std threads on std sockets: the outside world), each expecting one [`Reject`]. It
//! stops by itself when every client is done (or after a 30 s safety limit), prints what it did
//! and the allocator's statistics, and exits non-zero if any event was lost, if the rejections
//! differ from those expected, if a bad client's connection was not closed, if a task is left
//! alive before shutdown (beyond the acceptor), or if any task or pool memory is left after the
//! runtime is dropped. `tests/game_server.rs` runs the same [`run`] with its own clients.

use framealloc::runtime::net::{TcpListener, TcpStream};
use framealloc::runtime::{time, Runtime, RuntimeMetrics};
use framealloc::{AllocConfig, AllocStats, PoolBox, SmartAlloc};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// Player slots: `HELLO <id>` takes an id in `0..PLAYERS`.
pub const PLAYERS: u32 = 8;
/// The longest line accepted, in bytes, not counting its `\n`.
pub const MAX_LINE: usize = 64;
/// The largest step of a move on each axis: `dx` and `dy` are in `-MAX_STEP..=MAX_STEP`.
pub const MAX_STEP: i64 = 100;
/// The frame loop's period (240 Hz).
pub const TICK: Duration = Duration::from_micros(4_167);
/// Bytes a connection task asks the socket for at once.
const READ_CHUNK: usize = 1024;
/// How long a client waits for the server (a reply, or the close of its connection).
const CLIENT_WAIT: Duration = Duration::from_secs(5);

/// One accepted move, sent by a connection task to the frame loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The player who moved.
    pub player: u32,
    /// Step on the x axis.
    pub dx: i64,
    /// Step on the y axis.
    pub dy: i64,
}

/// A well-formed line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `HELLO <id>`: the connection plays as player `id`.
    Hello(u32),
    /// `MOVE <dx> <dy>`.
    Move {
        /// Step on the x axis.
        dx: i64,
        /// Step on the y axis.
        dy: i64,
    },
}

/// Why the server closed a connection. `Display` gives the reason, as logged and sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reject {
    /// A line (or the start of one) longer than [`MAX_LINE`] bytes.
    Oversized,
    /// A line that is not UTF-8.
    NotUtf8,
    /// A line whose first word is not `HELLO` or `MOVE` (an empty line too).
    UnknownCommand,
    /// `HELLO` without exactly one field.
    HelloFields,
    /// `MOVE` without exactly two fields.
    MoveFields,
    /// A field that is not an integer.
    NotANumber,
    /// A `HELLO` id outside `0..PLAYERS`.
    PlayerOutOfRange,
    /// A `MOVE` step outside `-MAX_STEP..=MAX_STEP`.
    MoveOutOfRange,
    /// A `HELLO` id already taken by another connection.
    DuplicatePlayer,
    /// A `MOVE` before the connection's `HELLO`.
    MoveBeforeHello,
    /// A second `HELLO` on one connection.
    SecondHello,
    /// The connection ended in the middle of a line.
    TruncatedLine,
    /// No complete line within [`Config::line_timeout`].
    LineTimeout,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::Oversized => write!(f, "line longer than {MAX_LINE} bytes"),
            Reject::NotUtf8 => f.write_str("line is not valid UTF-8"),
            Reject::UnknownCommand => f.write_str("unknown command (expected HELLO or MOVE)"),
            Reject::HelloFields => f.write_str("HELLO takes exactly one field: HELLO <id>"),
            Reject::MoveFields => f.write_str("MOVE takes exactly two fields: MOVE <dx> <dy>"),
            Reject::NotANumber => f.write_str("field is not an integer"),
            Reject::PlayerOutOfRange => write!(f, "player id out of range 0..{PLAYERS}"),
            Reject::MoveOutOfRange => write!(f, "move out of range -{MAX_STEP}..={MAX_STEP}"),
            Reject::DuplicatePlayer => f.write_str("player id already taken"),
            Reject::MoveBeforeHello => f.write_str("MOVE before HELLO"),
            Reject::SecondHello => f.write_str("second HELLO on one connection"),
            Reject::TruncatedLine => f.write_str("connection closed in the middle of a line"),
            Reject::LineTimeout => f.write_str("no complete line within the time limit"),
        }
    }
}

/// Parses one line, without its `\n` (a trailing `\r` is ignored). Pure: the session's rules
/// (one `HELLO` first, ids not taken twice) are checked by the connection task.
///
/// # Errors
/// The [`Reject`] of a line that is oversized, not UTF-8, not a known command, with the wrong
/// number of fields, with a field that is not an integer, or out of range.
pub fn parse_line(line: &[u8]) -> Result<Command, Reject> {
    if line.len() > MAX_LINE {
        return Err(Reject::Oversized);
    }
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|_| Reject::NotUtf8)?;
    let mut words = text.split_ascii_whitespace();
    let command = words.next();
    // At most three fields are looked at: a fourth only says "too many".
    let (a, b, extra) = (words.next(), words.next(), words.next());
    match command {
        Some("HELLO") => {
            let (Some(id), None) = (a, b) else { return Err(Reject::HelloFields) };
            let id = parse_int(id, Reject::PlayerOutOfRange)?;
            match u32::try_from(id) {
                Ok(id) if id < PLAYERS => Ok(Command::Hello(id)),
                _ => Err(Reject::PlayerOutOfRange),
            }
        }
        Some("MOVE") => {
            let (Some(dx), Some(dy), None) = (a, b, extra) else { return Err(Reject::MoveFields) };
            let (dx, dy) = (parse_int(dx, Reject::MoveOutOfRange)?, parse_int(dy, Reject::MoveOutOfRange)?);
            let step = -MAX_STEP..=MAX_STEP;
            if step.contains(&dx) && step.contains(&dy) {
                Ok(Command::Move { dx, dy })
            } else {
                Err(Reject::MoveOutOfRange)
            }
        }
        _ => Err(Reject::UnknownCommand),
    }
}

/// An integer field: `too_big` if it is one but does not fit an `i64`.
fn parse_int(field: &str, too_big: Reject) -> Result<i64, Reject> {
    field.parse::<i64>().map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => too_big,
        _ => Reject::NotANumber,
    })
}

/// How a connection ended, as its task reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The client closed it at a line boundary.
    Closed,
    /// The server closed it for this reason.
    Rejected(Reject),
    /// A socket error (a reset, …).
    Error(io::ErrorKind),
    /// The task panicked.
    Panicked,
    /// The task was dropped before it finished (runtime shut down, or the frame loop gone).
    Cancelled,
}

/// What a connection task sends the frame loop when it ends.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionReport {
    /// The client's address.
    pub peer: SocketAddr,
    /// The player it said `HELLO` as, if it did.
    pub player: Option<u32>,
    /// Moves accepted from it (sent to the frame loop before this report).
    pub events: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// What goes through the channel to the frame loop. One connection's messages arrive in
/// order: its events, then its report.
#[derive(Debug)]
pub enum ToMain {
    /// An accepted move, allocated in the sending task's heap and freed by the frame loop.
    Event(PoolBox<Event>),
    /// A connection ended.
    Closed(ConnectionReport),
}

/// What the connection tasks share.
struct Server {
    alloc: SmartAlloc,
    tx: mpsc::Sender<ToMain>,
    /// Player ids claimed by a `HELLO` (for the whole run).
    taken: [AtomicBool; PLAYERS as usize],
    accept_errors: AtomicU64,
    line_timeout: Duration,
}

/// Sends the connection's report when dropped: when its task ends normally, and also when it
/// panics or is cancelled, so that the frame loop always hears of every connection.
struct ReportOnDrop {
    tx: mpsc::Sender<ToMain>,
    report: ConnectionReport,
}

impl Drop for ReportOnDrop {
    fn drop(&mut self) {
        if thread::panicking() {
            self.report.outcome = Outcome::Panicked;
        }
        // The frame loop may be gone already (shutdown): nobody to tell, then.
        let _ = self.tx.send(ToMain::Closed(self.report));
    }
}

/// The acceptor task: one connection task per accepted connection, until the runtime drops.
async fn accept_loop(server: Arc<Server>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Detached: the task reports its end through the channel.
                drop(framealloc::runtime::spawn(handle_connection(server.clone(), stream, peer)));
            }
            Err(e) => {
                // For example too many open files: log, count, and do not spin.
                eprintln!("game_server: accept failed: {e}");
                server.accept_errors.fetch_add(1, Ordering::Relaxed);
                time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// A connection task: serves the connection, logs and answers a rejection, reports.
async fn handle_connection(server: Arc<Server>, stream: TcpStream, peer: SocketAddr) {
    let mut guard = ReportOnDrop {
        tx: server.tx.clone(),
        report: ConnectionReport { peer, player: None, events: 0, outcome: Outcome::Cancelled },
    };
    let outcome = serve(&server, &stream, &mut guard.report).await;
    match outcome {
        Outcome::Rejected(reason) => {
            eprintln!("game_server: closing {peer}: {reason}");
            // Tell the client why, if it is listening; it may not be, so not for long.
            let mut reply = [0u8; 128];
            let len = format_line(&mut reply, format_args!("ERROR {reason}"));
            if let Some(len) = len {
                let _ = time::timeout(Duration::from_millis(100), stream.write_all(&reply[..len])).await;
            }
        }
        Outcome::Error(kind) => eprintln!("game_server: closing {peer}: socket error: {kind}"),
        _ => {}
    }
    guard.report.outcome = outcome;
    drop(stream); // closed before the report goes out
}

/// Formats `args` and a `\n` into `buf` (no allocation): the line's length, or `None` if it
/// does not fit.
fn format_line(buf: &mut [u8], args: fmt::Arguments<'_>) -> Option<usize> {
    let capacity = buf.len();
    let mut w = buf;
    writeln!(w, "{args}").ok()?;
    Some(capacity - w.len())
}

/// Reads lines until the client closes the connection or breaks a rule.
async fn serve(server: &Server, stream: &TcpStream, report: &mut ConnectionReport) -> Outcome {
    let alloc = &server.alloc;
    // Both buffers come from this task's heap, released when the task ends.
    let mut chunk = alloc.pool_vec_with_capacity::<u8>(READ_CHUNK);
    chunk.extend(std::iter::repeat_n(0u8, READ_CHUNK));
    let mut line = alloc.pool_vec_with_capacity::<u8>(MAX_LINE);
    let mut deadline = Instant::now() + server.line_timeout;
    loop {
        let n = match time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return Outcome::Rejected(Reject::LineTimeout),
            Ok(Err(e)) => return Outcome::Error(e.kind()),
            Ok(Ok(0)) if line.is_empty() => return Outcome::Closed,
            Ok(Ok(0)) => return Outcome::Rejected(Reject::TruncatedLine),
            Ok(Ok(n)) => n,
        };
        let mut rest = &chunk[..n];
        while !rest.is_empty() {
            let end = rest.iter().position(|&b| b == b'\n');
            let part = &rest[..end.unwrap_or(rest.len())];
            if line.len() + part.len() > MAX_LINE {
                return Outcome::Rejected(Reject::Oversized);
            }
            line.extend_from_slice(part);
            let Some(end) = end else { break };
            rest = &rest[end + 1..];
            let command = parse_line(&line);
            line.clear();
            deadline = Instant::now() + server.line_timeout;
            let result = match command {
                Ok(command) => apply(server, stream, report, command).await,
                Err(reason) => Err(Outcome::Rejected(reason)),
            };
            if let Err(outcome) = result {
                return outcome;
            }
        }
    }
}

/// Applies one well-formed command under the session's rules.
async fn apply(
    server: &Server,
    stream: &TcpStream,
    report: &mut ConnectionReport,
    command: Command,
) -> Result<(), Outcome> {
    match (command, report.player) {
        (Command::Hello(_), Some(_)) => Err(Outcome::Rejected(Reject::SecondHello)),
        (Command::Hello(id), None) => {
            let slot = server.taken.get(id as usize).ok_or(Outcome::Rejected(Reject::PlayerOutOfRange))?;
            if slot.swap(true, Ordering::AcqRel) {
                return Err(Outcome::Rejected(Reject::DuplicatePlayer));
            }
            report.player = Some(id);
            let mut welcome = [0u8; 32];
            let len = format_line(&mut welcome, format_args!("WELCOME {id}")).unwrap_or(0);
            match time::timeout(server.line_timeout, stream.write_all(&welcome[..len])).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(Outcome::Error(e.kind())),
                Err(_) => Err(Outcome::Error(io::ErrorKind::TimedOut)),
            }
        }
        (Command::Move { .. }, None) => Err(Outcome::Rejected(Reject::MoveBeforeHello)),
        (Command::Move { dx, dy }, Some(player)) => {
            // Allocated in this task's heap, freed by the frame loop.
            let event = server.alloc.pool_box(Event { player, dx, dy });
            server.tx.send(ToMain::Event(event)).map_err(|_| Outcome::Cancelled)?;
            report.events += 1;
            Ok(())
        }
    }
}

/// What a bad client does after sending its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Waits for the server to close the connection (reads until EOF or a reset).
    WaitForClose,
    /// Shuts its write side down (the server reads EOF), then waits for the server to close.
    HalfCloseAndWait,
    /// Closes the connection at once.
    Close,
}

/// A misbehaving client, and what the server should make of it.
#[derive(Debug, Clone)]
pub struct BadClient {
    /// A name for the summary.
    pub name: &'static str,
    /// The bytes it sends, all at once.
    pub send: Vec<u8>,
    /// What it does next.
    pub then: Then,
    /// The rejection the server should log for it (`None`: it should end normally).
    pub expect: Option<Reject>,
    /// The player and position the server should accept from it before its bad line, if any.
    pub accepted: Option<(u32, (i64, i64))>,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Well-behaved clients, players `0..good_clients` (at most [`PLAYERS`]).
    pub good_clients: u32,
    /// Moves each well-behaved client sends.
    pub moves_per_client: i64,
    /// Misbehaving clients, started once every good client has been welcomed.
    pub bad_clients: Vec<BadClient>,
    /// The longest a connection may take to send a complete line.
    pub line_timeout: Duration,
    /// The frame loop stops after this long even if clients are not done.
    pub safety_limit: Duration,
}

impl Config {
    /// The example's run: 8 good clients of 500 moves and one bad client per kind of mistake.
    pub fn example() -> Self {
        let bad =
            |name, send: &[u8], then, expect| BadClient { name, send: send.to_vec(), then, expect, accepted: None };
        Config {
            good_clients: PLAYERS,
            moves_per_client: 500,
            bad_clients: vec![
                bad("ninth player", b"HELLO 9\n", Then::WaitForClose, Some(Reject::PlayerOutOfRange)),
                bad("short move", b"MOVE 1\n", Then::WaitForClose, Some(Reject::MoveFields)),
                bad("non-numbers", b"MOVE x y\n", Then::WaitForClose, Some(Reject::NotANumber)),
                bad("10 KB line", &[b'A'; 10 * 1024], Then::WaitForClose, Some(Reject::Oversized)),
                bad("huge move", b"MOVE 1000 0\n", Then::WaitForClose, Some(Reject::MoveOutOfRange)),
                bad("gone mid-line", b"MOVE 1", Then::HalfCloseAndWait, Some(Reject::TruncatedLine)),
                bad("impostor", b"HELLO 3\n", Then::WaitForClose, Some(Reject::DuplicatePlayer)),
            ],
            line_timeout: Duration::from_secs(5),
            safety_limit: Duration::from_secs(30),
        }
    }
}

/// What a bad client saw.
#[derive(Debug, Clone)]
pub struct BadClientResult {
    /// Its name.
    pub name: &'static str,
    /// Whether the server closed its connection (EOF or a reset) within the client's wait;
    /// `true` for a client that closed first.
    pub closed_by_server: bool,
    /// What the server sent it (lossy UTF-8; may miss the end if the connection was reset).
    pub reply: String,
    /// An unexpected error on its side.
    pub error: Option<String>,
}

/// What a run did and found.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Wall time of the frame loop.
    pub elapsed: Duration,
    /// Frames run.
    pub frames: u64,
    /// Events the frame loop received.
    pub events: u64,
    /// Most events in one frame.
    pub busiest: usize,
    /// Every player's position, as the frame loop computed it.
    pub world: [(i64, i64); PLAYERS as usize],
    /// Every player's position, as the clients computed it.
    pub expected_world: [(i64, i64); PLAYERS as usize],
    /// Connections whose task reported its end.
    pub connections: u64,
    /// Moves the connection tasks report they accepted.
    pub events_reported: u64,
    /// Connections closed by their client at a line boundary.
    pub clean_closes: u64,
    /// The clean closes expected: the good clients, and bad clients expected to end normally.
    pub expected_clean_closes: u64,
    /// Rejected connections, per reason.
    pub rejects: BTreeMap<Reject, u64>,
    /// The rejections the bad clients should cause, per reason.
    pub expected_rejects: BTreeMap<Reject, u64>,
    /// Connections ended by a socket error.
    pub io_errors: u64,
    /// Connection tasks that panicked.
    pub panics: u64,
    /// Connection tasks cancelled (or whose report found no frame loop).
    pub cancelled: u64,
    /// Failed `accept` calls.
    pub accept_errors: u64,
    /// The bad clients' view.
    pub bad_clients: Vec<BadClientResult>,
    /// Errors of the good clients, or clients that did not finish.
    pub client_errors: Vec<String>,
    /// The frame loop stopped at the safety limit.
    pub timed_out: bool,
    /// The runtime's metrics just before it was dropped.
    pub metrics: RuntimeMetrics,
    /// The allocator's statistics after the runtime was dropped and every event freed.
    pub stats: AllocStats,
}

impl Summary {
    /// Everything that went wrong: empty for a good run.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.timed_out {
            p.push("stopped at the safety limit before every client was done".to_string());
        }
        if self.world != self.expected_world || self.events != self.events_reported {
            p.push(format!(
                "events were lost: world {:?} != expected {:?} ({} events received, {} accepted)",
                self.world, self.expected_world, self.events, self.events_reported
            ));
        }
        if self.rejects != self.expected_rejects {
            p.push(format!("rejections {:?} != expected {:?}", self.rejects, self.expected_rejects));
        }
        if self.clean_closes != self.expected_clean_closes {
            p.push(format!("{} clean closes, expected {}", self.clean_closes, self.expected_clean_closes));
        }
        if self.io_errors + self.panics + self.cancelled + self.accept_errors != 0 {
            p.push(format!(
                "{} socket errors, {} panicked tasks, {} cancelled tasks, {} failed accepts",
                self.io_errors, self.panics, self.cancelled, self.accept_errors
            ));
        }
        for b in &self.bad_clients {
            if !b.closed_by_server || b.error.is_some() {
                p.push(format!(
                    "bad client {:?}: closed by server: {}, error: {:?}",
                    b.name, b.closed_by_server, b.error
                ));
            }
        }
        p.extend(self.client_errors.iter().cloned());
        // Before shutdown only the acceptor may be alive, holding only the listener.
        let m = &self.metrics;
        if m.tasks_alive != 1 || m.io_registrations != 1 || m.timers != 0 {
            p.push(format!(
                "left in the runtime before shutdown: {} tasks (1 expected: the acceptor), {} sockets (1: the \
                 listener), {} timers",
                m.tasks_alive, m.io_registrations, m.timers
            ));
        }
        let s = &self.stats;
        if s.heaps_alive != 0 || s.task.live_bytes != 0 || s.pool.live_bytes != 0 {
            p.push(format!("memory was left behind: {s:?}"));
        }
        p
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, m) = (&self.stats, &self.metrics);
        writeln!(
            f,
            "game_server: {} connections, {} events in {} frames over {:.2?} (busiest frame: {} events)",
            self.connections, self.events, self.frames, self.elapsed, self.busiest
        )?;
        writeln!(
            f,
            "  tasks accepted {} moves; world matches clients: {}; clean closes: {}",
            self.events_reported,
            self.world == self.expected_world,
            self.clean_closes
        )?;
        let rejects: Vec<String> = self.rejects.iter().map(|(r, n)| format!("{n} x {r}")).collect();
        writeln!(f, "  rejected: {}", if rejects.is_empty() { "none".to_string() } else { rejects.join("; ") })?;
        writeln!(
            f,
            "  bad clients closed by the server: {}/{}",
            self.bad_clients.iter().filter(|b| b.closed_by_server).count(),
            self.bad_clients.len()
        )?;
        writeln!(
            f,
            "  runtime before shutdown: {} tasks spawned, {} alive, {} polls, {} steals, {} sockets, {} timers",
            m.tasks_spawned, m.tasks_alive, m.polls, m.steals, m.io_registrations, m.timers
        )?;
        writeln!(
            f,
            "  frame: {} allocations, high water {} B | task heaps (buffers and events made in tasks): {} \
             allocations, {} B live, {} heaps alive | pool: {} allocations, {} B live",
            s.frame.allocations,
            s.frame.high_water_bytes,
            s.task.allocations,
            s.task.live_bytes,
            s.heaps_alive,
            s.pool.allocations,
            s.pool.live_bytes
        )?;
        write!(f, "  quarantined chunks: {}, frames begun: {}", s.quarantined_chunks, s.frames)
    }
}

/// A good client: says hello, waits for its welcome, sends its moves at a steady pace, closes.
/// Returns its final position.
fn run_good_client(addr: SocketAddr, id: u32, moves: i64, welcomed: mpsc::Sender<u32>) -> io::Result<(i64, i64)> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(CLIENT_WAIT))?;
    s.set_write_timeout(Some(CLIENT_WAIT))?;
    writeln!(s, "HELLO {id}")?;
    let mut reply = String::new();
    BufReader::new(s.try_clone()?).take(64).read_line(&mut reply)?;
    if reply.trim_end() != format!("WELCOME {id}") {
        return Err(io::Error::other(format!("client {id}: unexpected reply {reply:?}")));
    }
    let _ = welcomed.send(id);
    let (mut x, mut y) = (0, 0);
    for i in 0..moves {
        let (dx, dy) = ((i % 7) - 3, (i64::from(id) % 5) - 2);
        x += dx;
        y += dy;
        writeln!(s, "MOVE {dx} {dy}")?;
        if i % 10 == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    Ok((x, y))
}

/// A bad client: sends its bytes, then does what its `then` says.
fn run_bad_client(addr: SocketAddr, client: &BadClient) -> BadClientResult {
    let closed = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe
        )
    };
    // Whether the server closed the connection, and what it sent before.
    let attempt = || -> io::Result<(bool, Vec<u8>)> {
        let mut s = std::net::TcpStream::connect(addr)?;
        s.set_read_timeout(Some(CLIENT_WAIT))?;
        s.set_write_timeout(Some(CLIENT_WAIT))?;
        let mut reply = Vec::new();
        match s.write_all(&client.send) {
            Err(e) if closed(&e) => return Ok((true, reply)), // the server closed it while we wrote
            r => r?,
        }
        match client.then {
            Then::Close => return Ok((true, reply)),
            Then::HalfCloseAndWait => s.shutdown(Shutdown::Write)?,
            Then::WaitForClose => {}
        }
        let mut buf = [0u8; 256];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return Ok((true, reply)),
                Ok(n) => reply.extend_from_slice(&buf[..n.min(4096usize.saturating_sub(reply.len()))]),
                Err(e) if closed(&e) => return Ok((true, reply)),
                // Timed out (`WouldBlock` or `TimedOut`): the server did not close it.
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Ok((false, reply))
                }
                Err(e) => return Err(e),
            }
        }
    };
    let (closed_by_server, reply, error) = match attempt() {
        Ok((closed, reply)) => (closed, String::from_utf8_lossy(&reply).into_owned(), None),
        Err(e) => (false, String::new(), Some(e.to_string())),
    };
    BadClientResult { name: client.name, closed_by_server, reply, error }
}

/// What the client threads found.
struct Clients {
    good: Vec<(u32, io::Result<(i64, i64)>)>,
    bad: Vec<BadClientResult>,
}

/// Starts the good clients, waits until each is welcomed (so that an impostor's `HELLO` comes
/// after the real player's), then starts the bad clients, and waits for them all.
fn run_clients(addr: SocketAddr, config: &Config) -> Clients {
    let (welcomed_tx, welcomed_rx) = mpsc::channel();
    let moves = config.moves_per_client;
    let good: Vec<_> = (0..config.good_clients)
        .map(|id| {
            let welcomed = welcomed_tx.clone();
            (id, thread::spawn(move || run_good_client(addr, id, moves, welcomed)))
        })
        .collect();
    drop(welcomed_tx);
    let deadline = Instant::now() + CLIENT_WAIT;
    for _ in 0..config.good_clients {
        // A client that failed drops its sender without sending; the run reports its error.
        if welcomed_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_err() {
            break;
        }
    }
    let bad: Vec<_> = config
        .bad_clients
        .iter()
        .map(|c| {
            let c = c.clone();
            thread::spawn(move || run_bad_client(addr, &c))
        })
        .collect();
    let join_error = |e: Box<dyn std::any::Any + Send>| {
        let what = e.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| e.downcast_ref::<String>().cloned());
        what.unwrap_or_else(|| "a client panicked".to_string())
    };
    Clients {
        good: good
            .into_iter()
            .map(|(id, h)| (id, h.join().unwrap_or_else(|e| Err(io::Error::other(join_error(e))))))
            .collect(),
        bad: bad
            .into_iter()
            .zip(&config.bad_clients)
            .map(|(h, c)| {
                h.join().unwrap_or_else(|e| BadClientResult {
                    name: c.name,
                    closed_by_server: false,
                    reply: String::new(),
                    error: Some(join_error(e)),
                })
            })
            .collect(),
    }
}

/// Runs the server and `config`'s clients until every client is done and every connection has
/// reported (or the safety limit), shuts the runtime down, and sums up.
///
/// # Errors
/// If the runtime cannot be built or the listener cannot be bound.
///
/// # Panics
/// If `config.good_clients` exceeds [`PLAYERS`].
pub fn run(config: &Config) -> io::Result<Summary> {
    assert!(config.good_clients <= PLAYERS, "at most {PLAYERS} good clients");
    let alloc = SmartAlloc::new(AllocConfig::default().with_frame_budget(8 << 20));
    let rt = Runtime::builder().worker_threads(2).alloc(&alloc).build()?;
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let (tx, rx) = mpsc::channel::<ToMain>();
    let server = Arc::new(Server {
        alloc: alloc.clone(),
        tx,
        taken: std::array::from_fn(|_| AtomicBool::new(false)),
        accept_errors: AtomicU64::new(0),
        line_timeout: config.line_timeout,
    });
    let acceptor = rt.spawn(accept_loop(server.clone(), listener));
    let clients = {
        let config = config.clone();
        thread::spawn(move || run_clients(addr, &config))
    };

    let mut world = [(0i64, 0i64); PLAYERS as usize];
    let mut reports = Vec::new();
    let mut clients_done = false;
    let (mut frames, mut events, mut busiest) = (0u64, 0u64, 0usize);
    let started = Instant::now();
    let mut next_tick = started;
    let timed_out = loop {
        alloc.begin_frame();
        // This frame's events, in frame memory; the pooled boxes are freed here (remote frees).
        let mut batch = alloc.frame_vec::<Event>();
        for message in rx.try_iter() {
            match message {
                ToMain::Event(e) => batch.push(PoolBox::into_inner(e)),
                ToMain::Closed(report) => reports.push(report),
            }
        }
        busiest = busiest.max(batch.len());
        events += batch.len() as u64;
        // Per-player sums for this frame, in a scope whose memory is reused at once.
        alloc.frame_scope(|f| {
            let sums = f.alloc_slice_copy(&[(0i64, 0i64); PLAYERS as usize]);
            for e in batch.iter() {
                if let Some(s) = sums.get_mut(e.player as usize) {
                    s.0 += e.dx;
                    s.1 += e.dy;
                }
            }
            for (p, (dx, dy)) in world.iter_mut().zip(sums.iter()) {
                p.0 += dx;
                p.1 += dy;
            }
        });
        drop(batch);
        alloc.end_frame();
        frames += 1;

        clients_done = clients_done || clients.is_finished();
        // Every client has connected and is done, and every connection (one per client) has
        // reported: its events came before its report, so they are all counted.
        let expected_connections = config.good_clients as usize + config.bad_clients.len();
        if clients_done && reports.len() >= expected_connections {
            break false;
        }
        if started.elapsed() > config.safety_limit {
            break true;
        }
        next_tick += TICK;
        if let Some(wait) = next_tick.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
    };
    let elapsed = started.elapsed();

    // Connection tasks send their report just before they end: give the last ones a moment.
    let settle = Instant::now() + Duration::from_secs(1);
    let mut metrics = rt.metrics();
    while (metrics.tasks_alive > 1 || metrics.io_registrations > 1 || metrics.timers > 0) && Instant::now() < settle {
        thread::sleep(Duration::from_millis(1));
        metrics = rt.metrics();
    }
    let acceptor_alive = !acceptor.is_finished();
    drop(acceptor);
    drop(rt); // cancels the acceptor (and anything stuck), joins the workers
    let accept_errors = server.accept_errors.load(Ordering::Relaxed);
    drop(server);
    // Reports (and events) that came after the loop stopped, then nothing may be left in flight.
    for message in rx.try_iter() {
        if let ToMain::Closed(report) = message {
            reports.push(report);
        }
    }
    drop(rx);
    let stats = alloc.stats();

    let mut client_errors = Vec::new();
    if !acceptor_alive {
        client_errors.push("the acceptor task ended early".to_string());
    }
    let mut expected_world = [(0i64, 0i64); PLAYERS as usize];
    let mut bad = Vec::new();
    // Only joined when done: after a timeout a stuck client is left behind rather than waited on.
    if clients_done || clients.is_finished() {
        match clients.join() {
            Ok(c) => {
                for (id, result) in c.good {
                    match result {
                        Ok(pos) => expected_world[id as usize] = pos,
                        Err(e) => client_errors.push(format!("good client {id}: {e}")),
                    }
                }
                bad = c.bad;
            }
            Err(_) => client_errors.push("the client launcher panicked".to_string()),
        }
    } else {
        client_errors.push("the clients did not finish".to_string());
    }
    for c in &config.bad_clients {
        if let Some((player, (x, y))) = c.accepted {
            if let Some(p) = expected_world.get_mut(player as usize) {
                p.0 += x;
                p.1 += y;
            }
        }
    }

    let mut rejects = BTreeMap::new();
    let (mut clean_closes, mut io_errors, mut panics, mut cancelled) = (0, 0, 0, 0);
    for r in &reports {
        match r.outcome {
            Outcome::Closed => clean_closes += 1,
            Outcome::Rejected(reason) => *rejects.entry(reason).or_insert(0) += 1,
            Outcome::Error(_) => io_errors += 1,
            Outcome::Panicked => panics += 1,
            Outcome::Cancelled => cancelled += 1,
        }
    }
    let mut expected_rejects = BTreeMap::new();
    for reason in config.bad_clients.iter().filter_map(|c| c.expect) {
        *expected_rejects.entry(reason).or_insert(0) += 1;
    }
    let expected_clean_closes =
        u64::from(config.good_clients) + config.bad_clients.iter().filter(|c| c.expect.is_none()).count() as u64;

    Ok(Summary {
        elapsed,
        frames,
        events,
        busiest,
        world,
        expected_world,
        connections: reports.len() as u64,
        events_reported: reports.iter().map(|r| r.events).sum(),
        clean_closes,
        expected_clean_closes,
        rejects,
        expected_rejects,
        io_errors,
        panics,
        cancelled,
        accept_errors,
        bad_clients: bad,
        client_errors,
        timed_out,
        metrics,
        stats,
    })
}

fn main() {
    let summary = match run(&Config::example()) {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("game_server: could not start: {e}");
            std::process::exit(1);
        }
    };
    println!("{summary}");
    let problems = summary.problems();
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("game_server: {p}");
        }
        std::process::exit(1);
    }
}
