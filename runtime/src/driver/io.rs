//! I/O registrations: which task waits to read or write which socket, and what the last
//! `epoll` events said about it.
//!
//! Each registered socket has a [`ScheduledIo`] in the driver's slab. Its mio token is the
//! slab key with a *generation* in the high bits; the generation changes with every
//! registration, so an event for a socket that was deregistered (and whose slot was reused)
//! finds a different generation and is dropped: a stale event can never wake the new
//! socket's tasks.
//!
//! Readiness is edge-triggered (mio's only mode): the driver ORs what an event reports into
//! the socket's readiness word, and the operation that then fails with `WouldBlock` clears
//! it. The word carries a *tick* that every event bumps, and clearing only happens if the
//! tick is still the one the operation saw: an event that arrived between the operation's
//! look and its `WouldBlock` is not erased (it would otherwise be lost for good, since the
//! edge will not come again).
//!
//! Each direction has one waker slot (a reader and a writer may wait on one socket from two
//! tasks). A task stores its waker under the slot lock and then looks at the readiness word
//! again; the driver sets readiness before it takes the lock to collect the wakers. So either
//! the task sees the new readiness, or the driver sees the waker.

use crate::coop;
use core::task::{Context, Poll, Waker};
use parking_lot::Mutex;
use slab::Slab;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::*};
use std::sync::Arc;

/// Readiness bits.
pub(crate) const READABLE: usize = 1;
pub(crate) const WRITABLE: usize = 1 << 1;
pub(crate) const READ_CLOSED: usize = 1 << 2;
pub(crate) const WRITE_CLOSED: usize = 1 << 3;
pub(crate) const ERROR: usize = 1 << 4;
/// The runtime shut down: every operation fails from now on.
const SHUTDOWN: usize = 1 << 5;
const READY_MASK: usize = (1 << 16) - 1;
const TICK_SHIFT: u32 = 16;

/// Low bits of a token: the slab key.
const KEY_BITS: u32 = 32;

/// A direction a task waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    /// The readiness bits that let a waiter in this direction proceed.
    #[inline]
    fn mask(self) -> usize {
        match self {
            Direction::Read => READABLE | READ_CLOSED | ERROR,
            Direction::Write => WRITABLE | WRITE_CLOSED | ERROR,
        }
    }
}

/// Readiness seen by an operation, to clear if the operation would block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadyEvent {
    tick: usize,
    pub(crate) ready: usize,
}

/// One registered socket's readiness and waiters.
#[derive(Debug)]
pub(crate) struct ScheduledIo {
    /// `tick << TICK_SHIFT | ready bits`.
    readiness: AtomicUsize,
    generation: u32,
    waiters: Mutex<Waiters>,
}

#[derive(Debug, Default)]
struct Waiters {
    reader: Option<Waker>,
    writer: Option<Waker>,
}

/// The driver's registrations, shared by every thread of the runtime.
pub(crate) struct IoHandle {
    registry: mio::Registry,
    ios: Mutex<Slab<Arc<ScheduledIo>>>,
    generation: AtomicU32,
    shutdown: AtomicBool,
}

impl core::fmt::Debug for IoHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IoHandle").field("registrations", &self.ios.lock().len()).finish_non_exhaustive()
    }
}

/// The error of every I/O operation after the runtime shut down.
pub(crate) fn shutdown_error() -> io::Error {
    io::Error::other("the framealloc runtime this socket belongs to has shut down")
}

impl IoHandle {
    pub(crate) fn new(registry: mio::Registry) -> Self {
        Self { registry, ios: Mutex::new(Slab::new()), generation: AtomicU32::new(0), shutdown: AtomicBool::new(false) }
    }

    /// Registers `source` for reading and writing. Fails after shutdown.
    pub(crate) fn register(&self, source: &mut impl mio::event::Source) -> io::Result<(usize, Arc<ScheduledIo>)> {
        let generation = self.generation.fetch_add(1, Relaxed);
        let io = Arc::new(ScheduledIo { readiness: AtomicUsize::new(0), generation, waiters: Mutex::default() });
        let key = {
            let mut ios = self.ios.lock();
            // Checked under the lock that `shutdown` takes to mark every registration.
            if self.shutdown.load(Acquire) {
                return Err(shutdown_error());
            }
            ios.insert(io.clone())
        };
        let token = mio::Token(((generation as usize) << KEY_BITS) | key);
        if let Err(e) = self.registry.register(source, token, mio::Interest::READABLE | mio::Interest::WRITABLE) {
            self.ios.lock().remove(key);
            return Err(e);
        }
        Ok((key, io))
    }

    /// Deregisters `source`, registered under `key`.
    pub(crate) fn deregister(&self, key: usize, source: &mut impl mio::event::Source) {
        // An error here means the socket was not registered with this poll any more, which
        // leaves nothing to undo.
        let _ = self.registry.deregister(source);
        self.ios.lock().try_remove(key);
    }

    /// Applies one event (on the driver's thread): records readiness and wakes the waiters
    /// it lets proceed.
    pub(crate) fn dispatch(&self, token: mio::Token, ready: usize) {
        let key = token.0 & ((1 << KEY_BITS) - 1);
        let generation = (token.0 >> KEY_BITS) as u32;
        let io = {
            let ios = self.ios.lock();
            match ios.get(key) {
                Some(io) if io.generation == generation => io.clone(),
                // Deregistered since (the slot may hold another socket now).
                _ => return,
            }
        };
        io.set_readiness(ready);
        io.wake(ready);
    }

    /// Fails every registered socket's operations from now on and wakes their waiters.
    pub(crate) fn shutdown(&self) {
        let ios: Vec<Arc<ScheduledIo>> = {
            let ios = self.ios.lock();
            self.shutdown.store(true, Release);
            ios.iter().map(|(_, io)| io.clone()).collect()
        };
        for io in ios {
            io.set_readiness(SHUTDOWN);
            io.wake(READABLE | WRITABLE);
        }
    }

    /// Sockets registered now.
    pub(crate) fn registrations(&self) -> usize {
        self.ios.lock().len()
    }
}

/// The readiness bits of a mio event.
pub(crate) fn ready_of(event: &mio::event::Event) -> usize {
    let mut ready = 0;
    if event.is_readable() {
        ready |= READABLE;
    }
    if event.is_writable() {
        ready |= WRITABLE;
    }
    if event.is_read_closed() {
        ready |= READ_CLOSED;
    }
    if event.is_write_closed() {
        ready |= WRITE_CLOSED;
    }
    if event.is_error() {
        ready |= ERROR;
    }
    ready
}

impl ScheduledIo {
    fn set_readiness(&self, ready: usize) {
        let _ = self.readiness.fetch_update(AcqRel, Acquire, |cur| {
            let tick = (cur >> TICK_SHIFT).wrapping_add(1) & READY_MASK;
            Some((tick << TICK_SHIFT) | (cur & READY_MASK) | ready)
        });
    }

    fn wake(&self, ready: usize) {
        let (reader, writer) = {
            let mut w = self.waiters.lock();
            let reader = if ready & Direction::Read.mask() != 0 { w.reader.take() } else { None };
            let writer = if ready & Direction::Write.mask() != 0 { w.writer.take() } else { None };
            (reader, writer)
        };
        if let Some(w) = reader {
            w.wake();
        }
        if let Some(w) = writer {
            w.wake();
        }
    }

    /// The readiness in `direction`, if any; else stores `cx`'s waker for it. Counts against
    /// the task's cooperative budget when ready.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>, direction: Direction) -> Poll<io::Result<ReadyEvent>> {
        core::task::ready!(coop::poll_proceed(cx));
        if let Some(ev) = self.ready_now(direction) {
            coop::spend();
            return Poll::Ready(ev);
        }
        {
            let mut w = self.waiters.lock();
            let slot = match direction {
                Direction::Read => &mut w.reader,
                Direction::Write => &mut w.writer,
            };
            match slot {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        }
        // Readiness set before our waker was stored would find no waker to wake.
        match self.ready_now(direction) {
            Some(ev) => {
                coop::spend();
                Poll::Ready(ev)
            }
            None => Poll::Pending,
        }
    }

    #[inline]
    fn ready_now(&self, direction: Direction) -> Option<io::Result<ReadyEvent>> {
        let cur = self.readiness.load(Acquire);
        if cur & SHUTDOWN != 0 {
            return Some(Err(shutdown_error()));
        }
        let ready = cur & direction.mask();
        (ready != 0).then_some(Ok(ReadyEvent { tick: cur >> TICK_SHIFT, ready }))
    }

    /// The operation that saw `event` would block: forget that readiness, unless a newer
    /// event came since. Closed and error bits stay (they do not come back as new edges).
    pub(crate) fn clear_readiness(&self, event: ReadyEvent) {
        let clear = event.ready & (READABLE | WRITABLE);
        let _ = self
            .readiness
            .fetch_update(AcqRel, Acquire, |cur| (cur >> TICK_SHIFT == event.tick).then_some(cur & !clear));
    }
}

/// A mio source registered with a runtime's driver, deregistered on drop.
pub(crate) struct PollEvented<E: mio::event::Source> {
    source: E,
    key: usize,
    io: Arc<ScheduledIo>,
    handle: Arc<super::Handle>,
}

impl<E: mio::event::Source + core::fmt::Debug> core::fmt::Debug for PollEvented<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.source.fmt(f)
    }
}

impl<E: mio::event::Source> PollEvented<E> {
    /// Registers `source` with the driver of the runtime entered on this thread.
    ///
    /// # Errors
    /// Outside a runtime, after its shutdown, or if `epoll` refuses the socket.
    pub(crate) fn new(mut source: E) -> io::Result<Self> {
        let handle = crate::context::current_driver_io()?;
        let (key, io) = handle.io.register(&mut source)?;
        Ok(Self { source, key, io, handle })
    }

    #[inline]
    pub(crate) fn get_ref(&self) -> &E {
        &self.source
    }

    /// Waits until the socket is ready in `direction` (or closed, or in error).
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>, direction: Direction) -> Poll<io::Result<ReadyEvent>> {
        self.io.poll_ready(cx, direction)
    }

    /// Forgets readiness an operation found false (it returned `WouldBlock`).
    pub(crate) fn clear_readiness(&self, event: ReadyEvent) {
        self.io.clear_readiness(event);
    }

    /// Runs `op` once the socket is ready in `direction`, again after each `WouldBlock`
    /// (clearing the readiness that proved stale), until it completes.
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        op: impl FnMut(&E) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_op(cx, direction, op, |_| false)
    }

    /// [`poll_io`](Self::poll_io) for a stream's reads and writes of `len` bytes: a transfer
    /// of fewer (but some) bytes also clears the readiness, since it drained the socket's
    /// buffer (or filled it), and the next attempt would only find `WouldBlock`.
    pub(crate) fn poll_transfer(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        len: usize,
        op: impl FnMut(&E) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        self.poll_op(cx, direction, op, |&n| n > 0 && n < len)
    }

    /// The loop of both: `drained` says whether a successful result also used up the readiness.
    #[inline]
    fn poll_op<R>(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        mut op: impl FnMut(&E) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        loop {
            let event = core::task::ready!(self.io.poll_ready(cx, direction))?;
            match op(&self.source) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.io.clear_readiness(event),
                r => {
                    if matches!(&r, Ok(v) if drained(v)) {
                        self.io.clear_readiness(event);
                    }
                    return Poll::Ready(r);
                }
            }
        }
    }

    /// [`poll_io`](Self::poll_io) as a future.
    pub(crate) async fn async_io<R>(
        &self,
        direction: Direction,
        mut op: impl FnMut(&E) -> io::Result<R>,
    ) -> io::Result<R> {
        core::future::poll_fn(|cx| self.poll_io(cx, direction, &mut op)).await
    }

    /// Runs `op` now if the socket was last seen ready in `direction`; `WouldBlock` if not
    /// (or if `op` would block, which clears the readiness).
    pub(crate) fn try_io<R>(&self, direction: Direction, op: impl FnOnce(&E) -> io::Result<R>) -> io::Result<R> {
        let Some(event) = self.io.ready_now(direction) else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let event = event?;
        match op(&self.source) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.io.clear_readiness(event);
                Err(e)
            }
            r => r,
        }
    }

    /// Waits until the socket is ready in `direction`, without doing anything.
    pub(crate) async fn ready(&self, direction: Direction) -> io::Result<()> {
        core::future::poll_fn(|cx| self.io.poll_ready(cx, direction)).await.map(|_| ())
    }
}

impl<E: mio::event::Source> Drop for PollEvented<E> {
    fn drop(&mut self) {
        self.handle.io.deregister(self.key, &mut self.source);
    }
}
