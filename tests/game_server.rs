//! The game server of `examples/game_server.rs` against untrusted clients: its pure line
//! parser, and a whole run (runtime tasks on loopback sockets, frame loop, allocator checks)
//! with well-behaved clients and one client per kind of mistake.

#[path = "../examples/game_server.rs"]
#[allow(dead_code)] // the example's `main` and what only it uses
mod server;

use server::{parse_line, run, BadClient, Command, Config, Reject, Then, MAX_LINE, PLAYERS};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[test]
fn parse_line_accepts_good_lines_and_names_each_mistake() {
    let longest_move = format!("MOVE 1 1{}", " ".repeat(MAX_LINE - 8));
    assert_eq!(longest_move.len(), MAX_LINE);
    let good: &[(&[u8], Command)] = &[
        (b"HELLO 0", Command::Hello(0)),
        (b"HELLO 7", Command::Hello(PLAYERS - 1)),
        (b"HELLO 3\r", Command::Hello(3)),
        (b"  MOVE\t-100   100 ", Command::Move { dx: -100, dy: 100 }),
        (b"MOVE +5 -0", Command::Move { dx: 5, dy: 0 }),
        (longest_move.as_bytes(), Command::Move { dx: 1, dy: 1 }),
    ];
    for (line, command) in good {
        assert_eq!(parse_line(line), Ok(*command), "{:?}", String::from_utf8_lossy(line));
    }
    let oversized = format!("{longest_move} ");
    let bad: &[(&[u8], Reject)] = &[
        (oversized.as_bytes(), Reject::Oversized),
        (&[b'A'; 10 * 1024], Reject::Oversized),
        (b"MOVE \xff 1", Reject::NotUtf8),
        (b"\xc3\x28", Reject::NotUtf8),
        (b"", Reject::UnknownCommand),
        (b"   ", Reject::UnknownCommand),
        (b"move 1 1", Reject::UnknownCommand),
        (b"JUMP 1 1", Reject::UnknownCommand),
        (b"HELLO", Reject::HelloFields),
        (b"HELLO 1 2", Reject::HelloFields),
        (b"MOVE", Reject::MoveFields),
        (b"MOVE 1", Reject::MoveFields),
        (b"MOVE 1 2 3", Reject::MoveFields),
        (b"MOVE x y", Reject::NotANumber),
        (b"MOVE 1 2.5", Reject::NotANumber),
        (b"HELLO one", Reject::NotANumber),
        (b"HELLO 8", Reject::PlayerOutOfRange),
        (b"HELLO 9", Reject::PlayerOutOfRange),
        (b"HELLO -1", Reject::PlayerOutOfRange),
        (b"HELLO 99999999999999999999999", Reject::PlayerOutOfRange),
        (b"MOVE 1000 0", Reject::MoveOutOfRange),
        (b"MOVE 0 -101", Reject::MoveOutOfRange),
        (b"MOVE 99999999999999999999999 0", Reject::MoveOutOfRange),
    ];
    for (line, reject) in bad {
        assert_eq!(parse_line(line), Err(*reject), "{:?}", String::from_utf8_lossy(line));
    }
    assert_eq!(Reject::PlayerOutOfRange.to_string(), "player id out of range 0..8");
    assert_eq!(Reject::Oversized.to_string(), format!("line longer than {MAX_LINE} bytes"));
}

#[test]
#[cfg_attr(miri, ignore)] // sockets and threads
fn untrusted_clients_are_closed_and_counted_and_the_rest_goes_on() {
    let bad = |name, send: &[u8], then, expect| BadClient { name, send: send.to_vec(), then, expect, accepted: None };
    let padded_move = format!("MOVE 1 1{}\n", " ".repeat(MAX_LINE - 8));
    let mut clients = vec![
        bad("ninth player", b"HELLO 9\n", Then::WaitForClose, Some(Reject::PlayerOutOfRange)),
        bad("short line", b"MOVE 1\n", Then::WaitForClose, Some(Reject::MoveFields)),
        bad("garbage", b"\xff\xfe\x00\x01garbage\n", Then::WaitForClose, Some(Reject::NotUtf8)),
        bad("oversized", &[b'B'; MAX_LINE + 1], Then::WaitForClose, Some(Reject::Oversized)),
        bad("hit and run", b"", Then::Close, None),
        bad("silent", b"", Then::WaitForClose, Some(Reject::LineTimeout)),
        bad("unknown command", b"JUMP\n", Then::WaitForClose, Some(Reject::UnknownCommand)),
        bad("no hello", b"MOVE 1 1\n", Then::WaitForClose, Some(Reject::MoveBeforeHello)),
        bad("two hellos", b"HELLO 6\nHELLO 7\n", Then::WaitForClose, Some(Reject::SecondHello)),
        bad("impostor", b"HELLO 0\n", Then::WaitForClose, Some(Reject::DuplicatePlayer)),
        bad("gone mid-line", b"MOVE 2", Then::HalfCloseAndWait, Some(Reject::TruncatedLine)),
    ];
    // Two moves (the second exactly `MAX_LINE` bytes long) count before the bad third.
    let mut cheater = bad("cheater", b"HELLO 5\nMOVE 3 4\n", Then::WaitForClose, Some(Reject::MoveOutOfRange));
    cheater.send.extend_from_slice(padded_move.as_bytes());
    cheater.send.extend_from_slice(b"MOVE 1000 0\nMOVE 1 1\n");
    cheater.accepted = Some((5, (4, 5)));
    clients.push(cheater);
    let config = Config {
        good_clients: 4,
        moves_per_client: 200,
        bad_clients: clients,
        line_timeout: Duration::from_secs(1),
        safety_limit: Duration::from_secs(8),
    };

    let started = Instant::now();
    let summary = run(&config).expect("the server starts");
    println!("{summary}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let problems = summary.problems();
    assert!(problems.is_empty(), "{problems:#?}\n{summary:#?}");

    // The good clients' world, exactly; the cheater's two moves; nobody else moved.
    let mut expected = summary.expected_world;
    assert!(expected[..4].iter().all(|&p| p != (0, 0)), "{expected:?}");
    assert_eq!(expected[5], (4, 5));
    assert_eq!(summary.world, expected);
    expected[..4].fill((0, 0));
    expected[5] = (0, 0);
    assert_eq!(expected, [(0, 0); PLAYERS as usize]);
    assert_eq!(summary.events, 4 * 200 + 2);
    assert_eq!(summary.events_reported, summary.events);

    // Each mistake closed its connection once, for its reason; the rest closed normally.
    let mut rejects = BTreeMap::new();
    for reason in [
        Reject::PlayerOutOfRange,
        Reject::MoveFields,
        Reject::NotUtf8,
        Reject::Oversized,
        Reject::LineTimeout,
        Reject::UnknownCommand,
        Reject::MoveBeforeHello,
        Reject::SecondHello,
        Reject::DuplicatePlayer,
        Reject::TruncatedLine,
        Reject::MoveOutOfRange,
    ] {
        rejects.insert(reason, 1);
    }
    assert_eq!(summary.rejects, rejects);
    assert_eq!(summary.connections, 4 + 12);
    assert_eq!(summary.clean_closes, 4 + 1);
    assert_eq!((summary.io_errors, summary.panics, summary.cancelled), (0, 0, 0));

    // Every bad client saw the server close its connection (EOF or a reset).
    assert_eq!(summary.bad_clients.len(), 12);
    for b in &summary.bad_clients {
        assert!(b.closed_by_server && b.error.is_none(), "{b:?}");
    }
    // Clients that left nothing unread get the reason before the EOF.
    let reply = |name| &summary.bad_clients.iter().find(|b| b.name == name).expect("client").reply;
    assert_eq!(reply("ninth player"), "ERROR player id out of range 0..8\n");
    assert_eq!(reply("silent"), "ERROR no complete line within the time limit\n");
    assert_eq!(reply("two hellos"), "WELCOME 6\nERROR second HELLO on one connection\n");
    assert_eq!(reply("gone mid-line"), "ERROR connection closed in the middle of a line\n");

    // Nothing left: only the acceptor before shutdown, no task or pool memory after it.
    assert_eq!((summary.metrics.tasks_alive, summary.metrics.io_registrations, summary.metrics.timers), (1, 1, 0));
    let s = &summary.stats;
    assert_eq!((s.heaps_alive, s.task.live_bytes, s.pool.live_bytes), (0, 0, 0), "{s:?}");
    assert!(s.frames > 0 && s.frame.allocations > 0, "{s:?}");
}
