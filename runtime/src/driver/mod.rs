//! The I/O and timer driver: one `mio::Poll` and one timer wheel per runtime, with no thread
//! of its own.
//!
//! A worker with nothing to run parks *on the driver* if no other worker holds it (see
//! `park.rs`): it blocks in `epoll_wait` until an event, the next timer or a wake-up, then
//! dispatches. The wakers it calls are tasks' wakers, so woken tasks land on that worker's
//! own queue and it goes on to run them (`Idle::park`). A busy worker turns the driver
//! without blocking every few dozen tasks, so I/O and timers are served while every worker
//! is busy. Any thread interrupts a blocked driver with the `mio::Waker` (an eventfd, so a
//! wake-up before the block is kept).
//!
//! [`Handle`] is what sockets and timers keep: the registrations, the timers and the waker.
//! [`Driver`] adds what only the thread holding the driver touches: the `Poll` and its event
//! buffer.

pub(crate) mod io;
pub(crate) mod time;
mod wheel;

pub(crate) use wheel::TimerKey;

use core::task::Waker;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The token of the driver's own waker.
const WAKE_TOKEN: mio::Token = mio::Token(usize::MAX);

/// Events taken from the kernel per turn.
const EVENTS: usize = 1024;

/// A busy worker's non-blocking turn is skipped if the driver turned less than this long
/// ago: it bounds the `epoll_wait` calls of busy workers running many short polls, at the
/// cost of at most this much added latency while no worker is idle.
const BUSY_TURN_INTERVAL: Duration = Duration::from_micros(100);

/// What sockets and timers of a runtime share.
pub(crate) struct Handle {
    pub(crate) io: io::IoHandle,
    pub(crate) time: time::TimeHandle,
    waker: mio::Waker,
}

impl core::fmt::Debug for Handle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("driver::Handle").field("io", &self.io).field("time", &self.time).finish()
    }
}

impl Handle {
    /// Interrupts the blocked driver (or makes its next block return at once).
    pub(crate) fn wake(&self) {
        // Failing to write the eventfd means it is already full: a wake-up is pending.
        let _ = self.waker.wake();
    }

    /// Shutdown: sockets fail from now on, timers never fire, waiters are woken.
    pub(crate) fn shutdown(&self) {
        self.io.shutdown();
        self.time.shutdown();
    }
}

/// The driver proper: held by one worker at a time.
pub(crate) struct Driver {
    core: Mutex<Core>,
    handle: Arc<Handle>,
}

struct Core {
    poll: mio::Poll,
    events: mio::Events,
    woken: Vec<Waker>,
    /// When the last turn ended (any kind).
    last_turn: Instant,
}

impl core::fmt::Debug for Driver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Driver").field("handle", &self.handle).finish_non_exhaustive()
    }
}

impl Driver {
    /// A new driver and the handle its sockets and timers use.
    ///
    /// # Errors
    /// If the kernel refuses an epoll instance or an eventfd.
    pub(crate) fn new() -> std::io::Result<(Arc<Driver>, Arc<Handle>)> {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKE_TOKEN)?;
        let registry = poll.registry().try_clone()?;
        let handle = Arc::new(Handle { io: io::IoHandle::new(registry), time: time::TimeHandle::new(), waker });
        let core =
            Core { poll, events: mio::Events::with_capacity(EVENTS), woken: Vec::new(), last_turn: Instant::now() };
        Ok((Arc::new(Driver { core: Mutex::new(core), handle: handle.clone() }), handle))
    }

    /// One turn: block for at most `max` (or until the next timer, or a wake-up), then
    /// dispatch I/O events and fire due timers.
    fn turn(&self, core: &mut Core, max: Option<Duration>) {
        let handle = &*self.handle;
        let timeout = handle.time.park_timeout(max);
        let Core { poll, events, woken, .. } = core;
        if let Err(e) = poll.poll(events, timeout) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                // epoll_wait fails only for programming errors (a bad fd or buffer).
                panic!("framealloc runtime: the I/O driver failed: {e}");
            }
        }
        for event in events.iter() {
            if event.token() != WAKE_TOKEN {
                handle.io.dispatch(event.token(), io::ready_of(event));
            }
        }
        handle.time.process(woken);
    }
}

impl crate::park::Driver for Driver {
    fn try_park(&self, timeout: Option<Duration>, commit: &mut dyn FnMut() -> bool) -> bool {
        let Some(mut core) = self.core.try_lock() else {
            return false;
        };
        if timeout == Some(Duration::ZERO) && core.last_turn.elapsed() < BUSY_TURN_INTERVAL {
            return true;
        }
        if commit() {
            self.turn(&mut core, timeout);
            core.last_turn = Instant::now();
        }
        true
    }

    fn wake(&self) {
        self.handle.wake();
    }
}
