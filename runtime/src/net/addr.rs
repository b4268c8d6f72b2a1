//! [`ToSocketAddrs`]: the addresses a socket may bind or connect to. Literal addresses are
//! used as they are; a host name is resolved on the blocking pool, so the lookup never
//! stalls a worker.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Something that names one or more socket addresses: a `SocketAddr`, an `(ip, port)` pair,
/// `"host:port"` or `("host", port)`, or a slice of addresses. Sealed: the runtime's own
/// version of `std::net::ToSocketAddrs`, resolving names without blocking a worker.
pub trait ToSocketAddrs: sealed::Sealed {}

pub(crate) mod sealed {
    use super::*;

    /// The addresses, or a name to look up.
    #[derive(Debug)]
    pub enum Resolve {
        Done(Vec<SocketAddr>),
        Lookup(String),
    }

    /// The addresses of a [`ToSocketAddrs`](super::ToSocketAddrs) value.
    pub trait Sealed {
        /// The addresses, or the `host:port` text to resolve.
        fn resolve(&self) -> Resolve;
    }
}

use sealed::{Resolve, Sealed};

/// Resolves `addrs` (a name on the blocking pool).
pub(crate) async fn resolve(addrs: &(impl ToSocketAddrs + ?Sized)) -> io::Result<Vec<SocketAddr>> {
    match addrs.resolve() {
        Resolve::Done(v) => Ok(v),
        Resolve::Lookup(host) => crate::Handle::try_current()
            .map_err(io::Error::other)?
            .spawn_blocking(move || std::net::ToSocketAddrs::to_socket_addrs(&host).map(Iterator::collect))
            .await
            .map_err(io::Error::from)?,
    }
}

/// Runs `op` on each address in turn until one succeeds; the last error otherwise.
pub(crate) async fn each_addr<T, F, Fut>(addrs: &(impl ToSocketAddrs + ?Sized), mut op: F) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: core::future::Future<Output = io::Result<T>>,
{
    let mut last = None;
    for addr in resolve(addrs).await? {
        match op(addr).await {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "could not resolve to any address")))
}

macro_rules! literal {
    ($($t:ty),*) => {$(
        impl ToSocketAddrs for $t {}
        impl Sealed for $t {
            fn resolve(&self) -> Resolve {
                Resolve::Done(vec![SocketAddr::from(*self)])
            }
        }
    )*};
}

literal!(SocketAddr, SocketAddrV4, SocketAddrV6, (IpAddr, u16), (Ipv4Addr, u16), (Ipv6Addr, u16));

impl ToSocketAddrs for str {}
impl Sealed for str {
    fn resolve(&self) -> Resolve {
        match self.parse::<SocketAddr>() {
            Ok(addr) => Resolve::Done(vec![addr]),
            Err(_) => Resolve::Lookup(self.to_owned()),
        }
    }
}

impl ToSocketAddrs for String {}
impl Sealed for String {
    fn resolve(&self) -> Resolve {
        self.as_str().resolve()
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl Sealed for (&str, u16) {
    fn resolve(&self) -> Resolve {
        match self.0.parse::<IpAddr>() {
            Ok(ip) => Resolve::Done(vec![SocketAddr::new(ip, self.1)]),
            Err(_) => Resolve::Lookup(format!("{}:{}", self.0, self.1)),
        }
    }
}

impl ToSocketAddrs for (String, u16) {}
impl Sealed for (String, u16) {
    fn resolve(&self) -> Resolve {
        (self.0.as_str(), self.1).resolve()
    }
}

impl ToSocketAddrs for [SocketAddr] {}
impl Sealed for [SocketAddr] {
    fn resolve(&self) -> Resolve {
        Resolve::Done(self.to_vec())
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: Sealed + ?Sized> Sealed for &T {
    fn resolve(&self) -> Resolve {
        (**self).resolve()
    }
}
