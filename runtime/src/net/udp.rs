//! UDP: [`UdpSocket`].

use super::addr::{each_addr, resolve, ToSocketAddrs};
use crate::driver::io::{Direction, PollEvented};
use std::io;
use std::net::SocketAddr;

/// A UDP socket. All methods take `&self`, so tasks can share one through an `Arc`.
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } }
/// # // No sockets under Miri.
/// # #[cfg(not(miri))]
/// # framealloc::runtime::Runtime::new().unwrap().block_on(async {
/// use framealloc::runtime::net::UdpSocket;
/// let server = UdpSocket::bind("127.0.0.1:0").await?;
/// let client = UdpSocket::bind("127.0.0.1:0").await?;
/// client.send_to(b"ping", server.local_addr()?).await?;
/// let mut buf = [0; 16];
/// let (n, from) = server.recv_from(&mut buf).await?;
/// assert_eq!((&buf[..n], from), (&b"ping"[..], client.local_addr()?));
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct UdpSocket {
    io: PollEvented<mio::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to the first of `addr`'s addresses that works (port 0 picks a free port).
    ///
    /// # Errors
    /// The last address's error (`AddrInUse`, …), `InvalidInput` if `addr` names no address,
    /// or an error outside a runtime.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        each_addr(&addr, |a| async move { UdpSocket::from_mio(mio::net::UdpSocket::bind(a)?) }).await
    }

    /// Takes over a bound std socket (made non-blocking here).
    ///
    /// # Errors
    /// If it cannot be made non-blocking or registered, or outside a runtime.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        UdpSocket::from_mio(mio::net::UdpSocket::from_std(socket))
    }

    fn from_mio(socket: mio::net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket { io: PollEvented::new(socket)? })
    }

    /// The local address.
    ///
    /// # Errors
    /// The operating system's.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The address of [`connect`](Self::connect).
    ///
    /// # Errors
    /// `NotConnected` if not connected.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Sets the default destination of [`send`](Self::send) and keeps only datagrams from it
    /// for [`recv`](Self::recv) (the first of `addr`'s addresses that works).
    ///
    /// # Errors
    /// The last address's error, or `InvalidInput` if `addr` names no address.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        each_addr(&addr, |a| async move { self.io.get_ref().connect(a) }).await
    }

    /// Sends `buf` as one datagram to the connected address.
    ///
    /// # Errors
    /// `NotConnected`, or the operating system's (`ConnectionRefused` after an ICMP error, …).
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.async_io(Direction::Write, |s| s.send(buf)).await
    }

    /// Receives one datagram from the connected address (truncated to `buf`'s length).
    ///
    /// # Errors
    /// The operating system's.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.async_io(Direction::Read, |s| s.recv(buf)).await
    }

    /// Sends `buf` as one datagram to the first of `target`'s addresses.
    ///
    /// # Errors
    /// `InvalidInput` if `target` names no address, or the operating system's.
    pub async fn send_to(&self, buf: &[u8], target: impl ToSocketAddrs) -> io::Result<usize> {
        let addr = resolve(&target)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to"))?;
        self.io.async_io(Direction::Write, |s| s.send_to(buf, addr)).await
    }

    /// Receives one datagram (truncated to `buf`'s length) and its sender's address.
    ///
    /// # Errors
    /// The operating system's.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.async_io(Direction::Read, |s| s.recv_from(buf)).await
    }

    /// [`send`](Self::send) without waiting: `WouldBlock` if the socket is not writable.
    ///
    /// # Errors
    /// `WouldBlock`, or as `send`.
    pub fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.try_io(Direction::Write, |s| s.send(buf))
    }

    /// [`recv`](Self::recv) without waiting: `WouldBlock` if no datagram is there.
    ///
    /// # Errors
    /// `WouldBlock`, or as `recv`.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.try_io(Direction::Read, |s| s.recv(buf))
    }

    /// [`send_to`](Self::send_to) a known address without waiting.
    ///
    /// # Errors
    /// `WouldBlock`, or as `send_to`.
    pub fn try_send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.io.try_io(Direction::Write, |s| s.send_to(buf, target))
    }

    /// [`recv_from`](Self::recv_from) without waiting.
    ///
    /// # Errors
    /// `WouldBlock`, or as `recv_from`.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.try_io(Direction::Read, |s| s.recv_from(buf))
    }

    /// Waits until a datagram may be received.
    ///
    /// # Errors
    /// If the runtime shut down.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.ready(Direction::Read).await
    }

    /// Waits until a datagram may be sent.
    ///
    /// # Errors
    /// If the runtime shut down.
    pub async fn writable(&self) -> io::Result<()> {
        self.io.ready(Direction::Write).await
    }
}
