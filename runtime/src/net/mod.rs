//! TCP and UDP sockets on the runtime's reactor: [`TcpListener`], [`TcpStream`],
//! [`UdpSocket`].
//!
//! Sockets are non-blocking and registered with the runtime's driver (edge-triggered
//! `epoll`); an operation that would block waits for readiness instead. Every type is
//! `Send + Sync` and every future `Send`, so a socket can be shared between tasks (one
//! reading, one writing) or moved between workers freely. Streams implement `futures-io`'s
//! `AsyncRead`/`AsyncWrite`, and tokio's with the feature `tokio`, so codecs of either
//! ecosystem work on them.
//!
//! Sockets must be created inside a runtime (a task, `Runtime::block_on`, or after
//! `Runtime::enter`); they stay tied to that runtime, and fail with an error once it has
//! shut down.
//!
//! ```
//! # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } }
//! # // No sockets under Miri.
//! # #[cfg(not(miri))] fn main() {
//! use framealloc::runtime::{net::{TcpListener, TcpStream}, Runtime};
//!
//! let rt = Runtime::new().unwrap();
//! rt.block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     let server = framealloc::runtime::spawn(async move {
//!         let (stream, _) = listener.accept().await?;
//!         let mut buf = [0; 5];
//!         stream.read_exact(&mut buf).await?;
//!         stream.write_all(&buf).await?;
//!         std::io::Result::Ok(())
//!     });
//!     let client = TcpStream::connect(addr).await?;
//!     client.write_all(b"hello").await?;
//!     let mut echo = [0; 5];
//!     client.read_exact(&mut echo).await?;
//!     assert_eq!(&echo, b"hello");
//!     server.await??;
//!     std::io::Result::Ok(())
//! }).unwrap();
//! # }
//! # #[cfg(miri)] fn main() {}
//! ```

mod addr;
mod tcp;
mod udp;

pub use addr::ToSocketAddrs;
pub use tcp::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, TcpListener, TcpStream, WriteHalf};
pub use udp::UdpSocket;
