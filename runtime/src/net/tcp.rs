//! TCP: [`TcpListener`], [`TcpStream`] and the stream's halves.

use super::addr::{each_addr, ToSocketAddrs};
use crate::driver::io::{Direction, PollEvented};
use core::future::poll_fn;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;

/// A TCP socket listening for connections.
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } }
/// # // No sockets under Miri.
/// # #[cfg(not(miri))]
/// # framealloc::runtime::Runtime::new().unwrap().block_on(async {
/// use framealloc::runtime::net::{TcpListener, TcpStream};
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let client = TcpStream::connect(listener.local_addr()?).await?;
/// let (server_side, peer) = listener.accept().await?;
/// assert_eq!(peer, client.local_addr()?);
/// # drop(server_side);
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct TcpListener {
    io: PollEvented<mio::net::TcpListener>,
}

impl TcpListener {
    /// Binds to the first of `addr`'s addresses that works (port 0 picks a free port), and
    /// listens.
    ///
    /// # Errors
    /// The last address's error (`AddrInUse`, `AddrNotAvailable`, …), `InvalidInput` if
    /// `addr` names no address, or an error outside a runtime.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        each_addr(&addr, |a| async move { TcpListener::from_mio(mio::net::TcpListener::bind(a)?) }).await
    }

    /// Takes over a listening std socket (made non-blocking here).
    ///
    /// # Errors
    /// If it cannot be made non-blocking or registered, or outside a runtime.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        TcpListener::from_mio(mio::net::TcpListener::from_std(listener))
    }

    fn from_mio(listener: mio::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener { io: PollEvented::new(listener)? })
    }

    /// Waits for a connection: the new stream and its peer's address.
    ///
    /// # Errors
    /// The operating system's (for example too many open files), or a runtime shut down.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls for a connection (for hand-written futures).
    ///
    /// # Errors
    /// As [`accept`](Self::accept).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let (stream, addr) = core::task::ready!(self.io.poll_io(cx, Direction::Read, |l| l.accept()))?;
        Poll::Ready(TcpStream::from_mio(stream).map(|s| (s, addr)))
    }

    /// The address it listens on.
    ///
    /// # Errors
    /// The operating system's.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }
}

/// A TCP connection.
///
/// All methods take `&self`: one task may read while another writes, through an
/// `Arc<TcpStream>`, [`split`](Self::split) or [`into_split`](Self::into_split).
#[derive(Debug)]
pub struct TcpStream {
    io: PollEvented<mio::net::TcpStream>,
}

impl TcpStream {
    /// Connects to the first of `addr`'s addresses that accepts.
    ///
    /// # Errors
    /// The last address's error (`ConnectionRefused`, …), `InvalidInput` if `addr` names no
    /// address, or an error outside a runtime.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        each_addr(&addr, TcpStream::connect_addr).await
    }

    async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream::from_mio(mio::net::TcpStream::connect(addr)?)?;
        loop {
            // A non-blocking connect completes when the socket becomes writable.
            let event = poll_fn(|cx| stream.io.poll_ready(cx, Direction::Write)).await?;
            if let Some(e) = stream.io.get_ref().take_error()? {
                return Err(e);
            }
            match stream.io.get_ref().peer_addr() {
                Ok(_) => return Ok(stream),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => stream.io.clear_readiness(event),
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes over a connected std stream (made non-blocking here).
    ///
    /// # Errors
    /// If it cannot be made non-blocking or registered, or outside a runtime.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        TcpStream::from_mio(mio::net::TcpStream::from_std(stream))
    }

    fn from_mio(stream: mio::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream { io: PollEvented::new(stream)? })
    }

    /// The remote address.
    ///
    /// # Errors
    /// The operating system's (`NotConnected`, …).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    /// The operating system's.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Sets `TCP_NODELAY` (send small writes at once instead of batching them).
    ///
    /// # Errors
    /// The operating system's.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    ///
    /// # Errors
    /// The operating system's.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
    }

    /// Shuts down the read side, the write side (the peer reads EOF), or both, at once.
    ///
    /// # Errors
    /// The operating system's (`NotConnected`, …).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// Waits until a read may make progress (data, EOF or an error).
    ///
    /// # Errors
    /// If the runtime shut down.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.ready(Direction::Read).await
    }

    /// Waits until a write may make progress.
    ///
    /// # Errors
    /// If the runtime shut down.
    pub async fn writable(&self) -> io::Result<()> {
        self.io.ready(Direction::Write).await
    }

    /// Reads what is there without waiting: `WouldBlock` if nothing is, `Ok(0)` at EOF.
    ///
    /// # Errors
    /// `WouldBlock`, or the operating system's.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.try_io(Direction::Read, |s| (&*s).read(buf))
    }

    /// Writes what fits without waiting: `WouldBlock` if nothing does.
    ///
    /// # Errors
    /// `WouldBlock`, or the operating system's.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.try_io(Direction::Write, |s| (&*s).write(buf))
    }

    /// Reads into `buf`, waiting until at least one byte (or EOF: `Ok(0)`) is there.
    ///
    /// # Errors
    /// The operating system's (`ConnectionReset`, …), or a runtime shut down.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read_priv(cx, buf)).await
    }

    /// Fills `buf` exactly.
    ///
    /// # Errors
    /// `UnexpectedEof` if the stream ends first, else as [`read`](Self::read).
    pub async fn read_exact(&self, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read(buf).await? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => buf = &mut buf[n..],
            }
        }
        Ok(())
    }

    /// Writes some of `buf`, waiting until at least one byte fits.
    ///
    /// # Errors
    /// The operating system's (`BrokenPipe`, …), or a runtime shut down.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_write_priv(cx, buf)).await
    }

    /// Writes all of `buf`.
    ///
    /// # Errors
    /// `WriteZero` if the socket accepts nothing, else as [`write`](Self::write).
    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write(buf).await? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    /// A reading and a writing half that borrow the stream (usable from one task, in two
    /// futures joined together).
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (ReadHalf(self), WriteHalf(self))
    }

    /// An owned reading and writing half, to move into two tasks. Dropping the writing half
    /// shuts the write side down (the peer reads EOF); [`OwnedReadHalf::reunite`] puts the
    /// stream back together.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let stream = Arc::new(self);
        (OwnedReadHalf { stream: stream.clone() }, OwnedWriteHalf { stream, shutdown_on_drop: true })
    }

    fn poll_read_priv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io.poll_transfer(cx, Direction::Read, buf.len(), |s| (&*s).read(buf))
    }

    fn poll_write_priv(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io.poll_transfer(cx, Direction::Write, buf.len(), |s| (&*s).write(buf))
    }

    fn poll_write_vectored_priv(&self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.io.poll_transfer(cx, Direction::Write, len, |s| (&*s).write_vectored(bufs))
    }

    fn shutdown_write(&self) -> Poll<io::Result<()>> {
        Poll::Ready(match self.shutdown(Shutdown::Write) {
            // Already shut down or reset by the peer: the write side is closed either way.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        })
    }
}

/// The reading half of [`TcpStream::split`].
#[derive(Debug)]
pub struct ReadHalf<'a>(&'a TcpStream);

/// The writing half of [`TcpStream::split`].
#[derive(Debug)]
pub struct WriteHalf<'a>(&'a TcpStream);

/// The reading half of [`TcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedReadHalf {
    stream: Arc<TcpStream>,
}

/// The writing half of [`TcpStream::into_split`]; dropping it shuts the write side down.
#[derive(Debug)]
pub struct OwnedWriteHalf {
    stream: Arc<TcpStream>,
    shutdown_on_drop: bool,
}

impl OwnedReadHalf {
    /// Puts the stream back together with its writing half.
    ///
    /// # Errors
    /// If `write` is the half of another stream (both halves are handed back).
    ///
    /// # Panics
    /// Never: the two halves hold the only references to the stream.
    pub fn reunite(self, mut write: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
        if !Arc::ptr_eq(&self.stream, &write.stream) {
            return Err(ReuniteError(self, write));
        }
        write.shutdown_on_drop = false;
        let stream = write.stream.clone();
        drop((self, write));
        Ok(Arc::into_inner(stream).expect("both halves are gone"))
    }
}

impl OwnedWriteHalf {
    /// Keeps the write side open when this half drops.
    pub fn forget(mut self) {
        self.shutdown_on_drop = false;
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            let _ = self.stream.shutdown(Shutdown::Write);
        }
    }
}

/// The halves given to [`OwnedReadHalf::reunite`] were of two different streams.
#[derive(Debug)]
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl core::fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("tried to reunite halves that are not from the same socket")
    }
}

impl std::error::Error for ReuniteError {}

/// The reading halves' methods.
macro_rules! read_half_methods {
    ($($half:ty),*) => {$(
        impl $half {
            /// The stream this half belongs to.
            pub fn as_stream(&self) -> &TcpStream {
                self.stream_ref()
            }

            /// See [`TcpStream::read`].
            ///
            /// # Errors
            /// As [`TcpStream::read`].
            pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
                self.stream_ref().read(buf).await
            }

            /// See [`TcpStream::read_exact`].
            ///
            /// # Errors
            /// As [`TcpStream::read_exact`].
            pub async fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
                self.stream_ref().read_exact(buf).await
            }
        }
    )*};
}

/// The writing halves' methods.
macro_rules! write_half_methods {
    ($($half:ty),*) => {$(
        impl $half {
            /// The stream this half belongs to.
            pub fn as_stream(&self) -> &TcpStream {
                self.stream_ref()
            }

            /// See [`TcpStream::write`].
            ///
            /// # Errors
            /// As [`TcpStream::write`].
            pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
                self.stream_ref().write(buf).await
            }

            /// See [`TcpStream::write_all`].
            ///
            /// # Errors
            /// As [`TcpStream::write_all`].
            pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
                self.stream_ref().write_all(buf).await
            }
        }
    )*};
}

impl ReadHalf<'_> {
    fn stream_ref(&self) -> &TcpStream {
        self.0
    }
}
impl WriteHalf<'_> {
    fn stream_ref(&self) -> &TcpStream {
        self.0
    }
}
impl OwnedReadHalf {
    fn stream_ref(&self) -> &TcpStream {
        &self.stream
    }
}
impl OwnedWriteHalf {
    fn stream_ref(&self) -> &TcpStream {
        &self.stream
    }
}

read_half_methods!(ReadHalf<'_>, OwnedReadHalf);
write_half_methods!(WriteHalf<'_>, OwnedWriteHalf);

/// `futures-io` (and, with the feature, tokio) reading for the stream and its reading halves.
macro_rules! async_read {
    ($($t:ty),*) => {$(
        impl futures_io::AsyncRead for $t {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
                self.stream_ref().poll_read_priv(cx, buf)
            }
        }

        #[cfg(feature = "tokio")]
        impl tokio::io::AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let n = core::task::ready!(self.stream_ref().poll_read_priv(cx, buf.initialize_unfilled()))?;
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
        }
    )*};
}

/// `futures-io` (and, with the feature, tokio) writing for the stream and its writing halves;
/// closing shuts the write side down.
macro_rules! async_write {
    ($($t:ty),*) => {$(
        impl futures_io::AsyncWrite for $t {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                self.stream_ref().poll_write_priv(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.stream_ref().poll_write_vectored_priv(cx, bufs)
            }

            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                // Writes go straight to the socket: nothing is buffered here.
                Poll::Ready(Ok(()))
            }

            fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.stream_ref().shutdown_write()
            }
        }

        #[cfg(feature = "tokio")]
        impl tokio::io::AsyncWrite for $t {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                self.stream_ref().poll_write_priv(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.stream_ref().poll_write_vectored_priv(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.stream_ref().shutdown_write()
            }
        }
    )*};
}

impl TcpStream {
    #[inline]
    fn stream_ref(&self) -> &TcpStream {
        self
    }
}

// `&TcpStream` reads and writes too (through auto-deref to `TcpStream::stream_ref`), so two
// tasks can share one stream through an `Arc`.
async_read!(TcpStream, &TcpStream, ReadHalf<'_>, OwnedReadHalf);
async_write!(TcpStream, &TcpStream, WriteHalf<'_>, OwnedWriteHalf);
