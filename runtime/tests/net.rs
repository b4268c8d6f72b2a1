//! Sockets on a real runtime over loopback (127.0.0.1 only; every loop bounded): echo with a
//! thousand connections, UDP, half-close, errors, two tasks on one stream, a task that
//! migrates between waits, sockets dropped under a waiter, and shutdown with I/O pending.
//!
//! Not under Miri: it has no sockets.
#![cfg(not(miri))]

mod common;

use common::{runtime, wait_until, Gate};
use framealloc_alloc::SmartAlloc;
use framealloc_runtime::net::{TcpListener, TcpStream, UdpSocket};
use framealloc_runtime::time::{self, timeout};
use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(20);

/// Lets this process open `n` more descriptors than the usual soft limit of 1024.
fn raise_fd_limit(n: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 && lim.rlim_cur < n {
        lim.rlim_cur = n.min(lim.rlim_max);
        // SAFETY: `lim` is a valid rlimit; raising the soft limit up to the hard one is allowed.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
}

#[test]
fn tcp_echo_with_a_thousand_concurrent_connections() {
    const CONNS: usize = 1_000;
    raise_fd_limit(4 * CONNS as u64 + 256);
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let a = alloc.clone();
    let server = rt.spawn(async move {
        let mut echoers = Vec::with_capacity(CONNS);
        for _ in 0..CONNS {
            let (stream, _) = listener.accept().await?;
            let a = a.clone();
            echoers.push(framealloc_runtime::spawn(async move {
                // The echo buffer lives in this connection's task heap.
                let mut buf = a.pool_vec::<u8>();
                buf.extend_from_slice(&[0; 256]);
                let mut total = 0;
                loop {
                    let n = stream.read(&mut buf).await?;
                    if n == 0 {
                        return std::io::Result::Ok(total);
                    }
                    stream.write_all(&buf[..n]).await?;
                    total += n;
                }
            }));
        }
        let mut total = 0;
        for e in echoers {
            total += e.await.unwrap()?;
        }
        std::io::Result::Ok(total)
    });
    let clients: Vec<_> = (0..CONNS)
        .map(|i| {
            rt.spawn(async move {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let mut sent = 0;
                for round in 0..3u8 {
                    let msg = format!("client {i} round {round}");
                    stream.write_all(msg.as_bytes()).await?;
                    let mut back = vec![0; msg.len()];
                    stream.read_exact(&mut back).await?;
                    assert_eq!(back, msg.as_bytes());
                    sent += msg.len();
                }
                stream.shutdown(Shutdown::Write)?;
                let mut rest = [0; 1];
                assert_eq!(stream.read(&mut rest).await?, 0, "EOF after the echo");
                std::io::Result::Ok(sent)
            })
        })
        .collect();
    let (sent, echoed) = rt.block_on(async {
        timeout(LONG, async {
            let mut sent = 0;
            for c in clients {
                sent += c.await.unwrap().unwrap();
            }
            (sent, server.await.unwrap().unwrap())
        })
        .await
        .expect("echo did not finish")
    });
    assert_eq!(sent, echoed);
    let m = rt.metrics();
    assert_eq!(m.io_registrations, 0, "every socket deregistered");
    assert_eq!(m.tasks_alive, 0);
    drop(rt);
    assert_eq!(alloc.stats().heaps_alive, 0);
}

#[test]
fn udp_request_response() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    rt.block_on(async {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server.local_addr().unwrap();
        let server = framealloc_runtime::spawn(async move {
            let mut buf = [0; 64];
            for _ in 0..20 {
                let (n, from) = server.recv_from(&mut buf).await.unwrap();
                buf[..n].make_ascii_uppercase();
                server.send_to(&buf[..n], from).await.unwrap();
            }
        });
        // One client connected, one not.
        let connected = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        connected.connect(server_addr).await.unwrap();
        assert_eq!(connected.peer_addr().unwrap(), server_addr);
        let free = UdpSocket::bind(("127.0.0.1", 0)).await.unwrap();
        let mut buf = [0; 64];
        for i in 0..10 {
            let msg = format!("ping {i}");
            connected.send(msg.as_bytes()).await.unwrap();
            let n = timeout(LONG, connected.recv(&mut buf)).await.unwrap().unwrap();
            assert_eq!(&buf[..n], msg.to_uppercase().as_bytes());

            free.send_to(msg.as_bytes(), server_addr).await.unwrap();
            let (n, from) = timeout(LONG, free.recv_from(&mut buf)).await.unwrap().unwrap();
            assert_eq!(from, server_addr);
            assert_eq!(&buf[..n], msg.to_uppercase().as_bytes());
        }
        // Nothing waiting: the `try_` twins say WouldBlock.
        assert_eq!(free.try_recv_from(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
        server.await.unwrap();
    });
}

#[test]
fn half_close_reads_to_eof_and_the_other_direction_still_works() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = framealloc_runtime::spawn(async move {
            let (stream, peer) = listener.accept().await.unwrap();
            assert_eq!(stream.peer_addr().unwrap(), peer);
            // Read the whole request: it ends where the client shut down its writing side.
            let mut request = Vec::new();
            let mut buf = [0; 7];
            loop {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            let reply = format!("got {} bytes", request.len());
            stream.write_all(reply.as_bytes()).await.unwrap();
            // Closing ends the client's reading.
        });
        let client = TcpStream::connect(addr).await.unwrap();
        assert_eq!(client.peer_addr().unwrap(), addr);
        client.write_all(&[b'x'; 1000]).await.unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        let mut buf = [0; 5];
        loop {
            let n = timeout(LONG, client.read(&mut buf)).await.unwrap().unwrap();
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
        }
        assert_eq!(reply, b"got 1000 bytes");
        // Reading after EOF keeps returning 0; writing after our shutdown fails.
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
        assert!(client.write_all(b"late").await.is_err());
        server.await.unwrap();
    });
}

#[test]
fn connect_refused_and_address_in_use_are_io_errors() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let again = TcpListener::bind(addr).await.unwrap_err();
        assert_eq!(again.kind(), ErrorKind::AddrInUse);
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let udp_again = UdpSocket::bind(udp.local_addr().unwrap()).await.unwrap_err();
        assert_eq!(udp_again.kind(), ErrorKind::AddrInUse);
        drop(listener);
        let refused = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
        // Bad input to the address parser is an error, not a panic.
        let bad = TcpStream::connect("not an address").await.unwrap_err();
        assert_eq!(bad.kind(), ErrorKind::InvalidInput, "{bad}");
    });
    assert_eq!(rt.metrics().io_registrations, 0);
}

#[test]
fn a_reader_and_a_writer_on_one_stream_from_two_tasks() {
    const MESSAGES: usize = 2_000;
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    // The peer is a plain thread echoing over a std socket.
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = std_listener.accept().unwrap();
        s.set_read_timeout(Some(LONG)).unwrap();
        let mut buf = [0; 4096];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).unwrap();
        }
    });
    let got = rt.block_on(async {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let writing = framealloc_runtime::spawn(async move {
            use futures_io::AsyncWrite;
            for i in 0..MESSAGES {
                let msg = (i as u32).to_le_bytes();
                let mut done = 0;
                while done < msg.len() {
                    done += core::future::poll_fn(|cx| std::pin::Pin::new(&mut writer).poll_write(cx, &msg[done..]))
                        .await
                        .unwrap();
                }
            }
            writer // dropping it would shut the writing side down before the reader is done
        });
        let reading = framealloc_runtime::spawn(async move {
            use futures_io::AsyncRead;
            let mut got = Vec::with_capacity(MESSAGES);
            let mut buf = [0; 4];
            for _ in 0..MESSAGES {
                let mut filled = 0;
                while filled < 4 {
                    let n =
                        core::future::poll_fn(|cx| std::pin::Pin::new(&mut reader).poll_read(cx, &mut buf[filled..]))
                            .await
                            .unwrap();
                    assert_ne!(n, 0, "EOF before every message came back");
                    filled += n;
                }
                got.push(u32::from_le_bytes(buf));
            }
            reader
        });
        let writer = timeout(LONG, writing).await.unwrap().unwrap();
        let reader = timeout(LONG, reading).await.unwrap().unwrap();
        let stream = reader.reunite(writer).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        stream
    });
    drop(got);
    peer.join().unwrap();
    assert_eq!(rt.metrics().io_registrations, 0);
}

#[test]
fn readiness_is_kept_while_a_task_migrates_between_workers() {
    const ROUNDS: usize = 100;
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    // The peer sends one byte per round, after the task has gone to wait for it.
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = std_listener.accept().unwrap();
        for i in 0..ROUNDS {
            if go_rx.recv_timeout(LONG).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
            s.write_all(&[i as u8]).unwrap();
        }
    });
    let workers = Arc::new(Mutex::new(Vec::new()));
    let w = workers.clone();
    let task = rt.spawn(async move {
        let stream = TcpStream::connect(addr).await.unwrap();
        for i in 0..ROUNDS {
            // Register for readability on this worker, then let the byte arrive.
            go_tx.send(()).unwrap();
            let mut b = [0; 1];
            assert_eq!(stream.read(&mut b).await.unwrap(), 1);
            assert_eq!(b[0], i as u8);
            w.lock().unwrap().push(std::thread::current().id());
            // Occupy this worker with a blocking task (in the LIFO slot, run next here) and
            // yield: the other worker steals this task, which then waits on its socket there.
            framealloc_runtime::spawn(async { std::thread::sleep(Duration::from_millis(2)) });
            framealloc_runtime::yield_now().await;
        }
    });
    rt.block_on(async { timeout(LONG, task).await.expect("a wake-up was lost").unwrap() });
    peer.join().unwrap();
    let workers = workers.lock().unwrap();
    assert_eq!(workers.len(), ROUNDS);
    let moves = workers.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(moves > 0, "the task never changed workers: the test proves nothing");
    assert_eq!(workers.iter().collect::<HashSet<_>>().len(), 2);
}

#[test]
fn dropping_a_socket_under_a_waiting_task_or_its_peer() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A task waits to read; aborting it drops its stream and deregisters it.
        let a = alloc.clone();
        let waiter = framealloc_runtime::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let _held = a.pool_vec::<u64>();
            let mut b = [0; 1];
            let _ = stream.read(&mut b).await;
            unreachable!("nothing is ever sent");
        });
        let (accepted, _) = listener.accept().await.unwrap();
        let rt_metrics = framealloc_runtime::Handle::current();
        wait_until("the waiter to register", 20, || rt_metrics.metrics().io_registrations == 3);
        waiter.abort();
        assert!(waiter.await.unwrap_err().is_cancelled());
        assert_eq!(rt_metrics.metrics().io_registrations, 2);
        // Its peer sees the close.
        let mut b = [0; 1];
        assert_eq!(timeout(LONG, accepted.read(&mut b)).await.unwrap().unwrap(), 0);

        // The peer of a waiting reader goes away: the reader wakes with EOF.
        let reader = framealloc_runtime::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let mut b = [0; 1];
            stream.read(&mut b).await
        });
        let (accepted, _) = listener.accept().await.unwrap();
        time::sleep(Duration::from_millis(10)).await; // let the reader wait
        drop(accepted);
        assert_eq!(timeout(LONG, reader).await.unwrap().unwrap().unwrap(), 0);
    });
    assert_eq!(rt.metrics().io_registrations, 0);
    drop(rt);
    assert_eq!(alloc.stats().heaps_alive, 0);
}

#[test]
fn shutdown_with_io_pending_releases_every_heap_and_closes_every_socket() {
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(2, &alloc);
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let a = alloc.clone();
    // A server whose connection tasks hold heap memory and wait forever to read, and an
    // acceptor waiting for more.
    rt.spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let a = a.clone();
            framealloc_runtime::spawn(async move {
                let mut buf = a.pool_vec::<u8>();
                buf.extend_from_slice(&[0; 1024]);
                loop {
                    if stream.read(&mut buf).await.unwrap_or(0) == 0 {
                        return;
                    }
                }
            });
        }
    });
    let clients: Vec<std::net::TcpStream> = (0..20).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    wait_until("every connection to wait", 20, || {
        rt.metrics().io_registrations == 21 && alloc.stats().heaps_alive >= 20
    });
    // A socket that outlives its runtime.
    let survivor = rt.block_on(UdpSocket::bind("127.0.0.1:0")).unwrap();
    drop(rt);
    assert_eq!(alloc.stats().heaps_alive, 0, "a task heap outlived shutdown");
    // Every server-side socket was closed: each client reads EOF.
    for mut c in clients {
        c.set_read_timeout(Some(LONG)).unwrap();
        let mut b = [0; 1];
        assert_eq!(c.read(&mut b).unwrap(), 0);
    }
    // The listener is closed too: nobody accepts there any more.
    assert_eq!(std::net::TcpStream::connect(addr).unwrap_err().kind(), ErrorKind::ConnectionRefused);
    // The survivor fails cleanly instead of waiting forever.
    let mut b = [0; 1];
    let err = survivor.try_recv(&mut b).unwrap_err();
    assert_ne!(err.kind(), ErrorKind::WouldBlock, "{err}");
    let err = futures::executor::block_on(survivor.recv(&mut b)).unwrap_err();
    assert!(err.to_string().contains("shut down"), "{err}");
}

#[test]
fn sockets_outside_a_runtime_are_an_error_not_a_panic() {
    let err = futures::executor::block_on(TcpListener::bind("127.0.0.1:0")).unwrap_err();
    assert!(err.to_string().contains("no framealloc runtime"), "{err}");
    let std = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    assert!(UdpSocket::from_std(std).is_err());
}

#[test]
fn net_types_are_send_and_sync_and_their_futures_send() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<TcpListener>();
    send_sync::<TcpStream>();
    send_sync::<UdpSocket>();
    send_sync::<framealloc_runtime::net::OwnedReadHalf>();
    send_sync::<framealloc_runtime::net::OwnedWriteHalf>();
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(1, &alloc);
    let _e = rt.enter();
    let l = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    send(&l.accept());
    send(&TcpStream::connect("127.0.0.1:1"));
    send(&time::sleep(Duration::from_millis(1)));
    send(&timeout(Duration::from_millis(1), l.accept()));
}

#[test]
fn a_socket_that_is_always_ready_does_not_starve_other_tasks() {
    // One worker; one task reads a socket that always has data, never yielding by itself.
    // The cooperative budget must make its reads return Pending now and then, so that the
    // other task gets to run long before the data runs out.
    const DATA: usize = 64 * 1024; // fits in loopback's socket buffers
    const CHUNK: usize = 16;
    let alloc = SmartAlloc::new(Default::default());
    let rt = runtime(1, &alloc);
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    let (written_tx, written) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = std_listener.accept().unwrap();
        s.write_all(&vec![7; DATA]).unwrap();
        let _ = written_tx.send(s); // kept open by the receiver
    });
    let (read_before_other_ran, total) = rt.block_on(async {
        let stream = TcpStream::connect(addr).await.unwrap();
        // Everything is in our receive buffer: no read will find it empty.
        let _peer = written.recv_timeout(LONG).expect("the socket buffers took all the data");
        let other_ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The other task waits on a gate that the reader opens after its first read, from its
        // worker: the other task is then queued behind the reader on that worker.
        let gate = Gate::new();
        let (g, ran) = (gate.clone(), other_ran.clone());
        let other = framealloc_runtime::spawn(async move {
            g.wait().await;
            ran.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        while !gate.has_waiter() {
            framealloc_runtime::time::sleep(Duration::from_millis(1)).await;
        }
        let flag = other_ran;
        let reader = framealloc_runtime::spawn(async move {
            let mut buf = [0; CHUNK];
            let mut total = 0;
            let mut before = None;
            while total < DATA {
                let n = stream.read(&mut buf).await.unwrap();
                assert_ne!(n, 0);
                if total == 0 {
                    gate.open();
                }
                total += n;
                if before.is_none() && flag.load(std::sync::atomic::Ordering::SeqCst) {
                    before = Some(total);
                }
            }
            (before, total)
        });
        let out = timeout(LONG, reader).await.unwrap().unwrap();
        other.await.unwrap();
        out
    });
    assert_eq!(total, DATA);
    let before = read_before_other_ran.expect("the other task only ran after all the data was read");
    assert!(before < DATA / 4, "the other task waited for {before} bytes of reads");
}
