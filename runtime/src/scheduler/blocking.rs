//! The blocking pool behind `spawn_blocking`: threads apart from the workers, started on
//! demand up to a bound, that exit after a while idle.
//!
//! A blocking job is a task like any other (its own heap, its panic caught into the
//! `JoinHandle`), scheduled once, here, instead of on a worker. A job that finds every thread
//! busy starts a new one while fewer than `max_threads` exist, and otherwise waits in the
//! queue. `notified` counts idle threads already woken for a queued job, so that two jobs
//! queued in a row wake two threads (or start one), not the same one twice.

use super::Shared;
use crate::task::{self, JoinHandle, Task};
use async_task::ScheduleInfo;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Pool {
    state: Mutex<State>,
    /// Idle threads wait here for jobs (and for shutdown).
    work: Condvar,
    /// Shutdown waits here for the last thread to leave.
    gone: Condvar,
    max_threads: usize,
    keep_alive: Duration,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Task>,
    threads: usize,
    idle: usize,
    notified: usize,
    shutdown: bool,
    handles: Vec<thread::JoinHandle<()>>,
}

/// Thread counts for the metrics.
pub(crate) struct Counts {
    pub(crate) threads: usize,
    pub(crate) idle: usize,
    pub(crate) queued: usize,
}

thread_local! {
    /// The pool this thread belongs to (its address), if it is a blocking thread.
    static OWN_POOL: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}

impl Pool {
    pub(crate) fn new(max_threads: usize, keep_alive: Duration) -> Self {
        Self { state: Mutex::default(), work: Condvar::new(), gone: Condvar::new(), max_threads, keep_alive }
    }

    pub(crate) fn counts(&self) -> Counts {
        let st = self.state.lock();
        Counts { threads: st.threads, idle: st.idle - st.notified, queued: st.queue.len() }
    }

    /// Queues `task` and finds it a thread: an idle one, or a new one below the bound.
    fn push(&self, shared: &Arc<Shared>, task: Task) {
        let mut st = self.state.lock();
        if st.shutdown {
            drop(st);
            drop(task);
            return;
        }
        st.queue.push_back(task);
        if st.idle > st.notified {
            st.notified += 1;
            self.work.notify_one();
            return;
        }
        if st.threads >= self.max_threads {
            return; // a running thread takes it when it is done
        }
        st.handles.retain(|h| !h.is_finished()); // finished threads' handles detach
        let shared2 = shared.clone();
        match (shared.spawn_thread)(shared, ThreadKind::Blocking, Box::new(move || run(shared2))) {
            Ok(h) => {
                st.threads += 1;
                st.handles.push(h);
            }
            Err(e) => {
                assert!(st.threads > 0, "framealloc runtime: cannot start a blocking thread and none is running: {e}");
                // The running threads will take the job.
            }
        }
    }

    /// Closes the pool: queued jobs are cancelled, idle threads leave, and this waits for
    /// running jobs to finish, until `deadline` if one is given. Returns `true` if every thread
    /// has left (and was joined).
    pub(crate) fn shutdown(&self, deadline: Option<Instant>) -> bool {
        let queued = {
            let mut st = self.state.lock();
            st.shutdown = true;
            self.work.notify_all();
            core::mem::take(&mut st.queue)
        };
        drop(queued);
        // A blocking thread shutting its own runtime down does not wait for itself.
        let me = usize::from(OWN_POOL.with(|p| p.get()) == self as *const Self as usize);
        let mut st = self.state.lock();
        while st.threads > me {
            match deadline {
                None => self.gone.wait(&mut st),
                Some(d) => {
                    if self.gone.wait_until(&mut st, d).timed_out() {
                        break;
                    }
                }
            }
        }
        let all_gone = st.threads <= me;
        let handles = core::mem::take(&mut st.handles);
        drop(st);
        let here = thread::current().id();
        for h in handles {
            if h.thread().id() != here && (all_gone || h.is_finished()) {
                let _ = h.join();
            }
        }
        all_gone
    }
}

/// What a new thread is for (its name and hooks are the runtime's either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadKind {
    Worker,
    Blocking,
}

/// A blocking thread: runs queued jobs, waits `keep_alive` for more, then leaves.
fn run(shared: Arc<Shared>) {
    let pool = &shared.blocking;
    OWN_POOL.with(|p| p.set(pool as *const Pool as usize));
    let mut st = pool.state.lock();
    loop {
        if let Some(task) = st.queue.pop_front() {
            drop(st);
            // An aborted job is cancelled by its own poll, before the closure runs.
            task.run();
            st = pool.state.lock();
            continue;
        }
        if st.shutdown {
            break;
        }
        st.idle += 1;
        let timed_out = pool.work.wait_for(&mut st, pool.keep_alive).timed_out();
        st.idle -= 1;
        if st.notified > 0 {
            st.notified -= 1; // woken for a job (taken at the top of the loop)
            continue;
        }
        if timed_out && st.queue.is_empty() {
            break;
        }
    }
    st.threads -= 1;
    if st.threads == 0 || st.shutdown {
        pool.gone.notify_all();
    }
}

/// The future of a blocking job: calls `f` once, on its first poll.
struct BlockingFn<F>(Option<F>);

impl<F> Unpin for BlockingFn<F> {}

impl<F: FnOnce() -> R, R> Future for BlockingFn<F> {
    type Output = R;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<R> {
        let f = self.0.take().expect("a blocking job polled after it ran");
        Poll::Ready(f())
    }
}

/// Runs `f` on the blocking pool of `shared`.
pub(crate) fn spawn_blocking<F, R>(shared: &Arc<Shared>, f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (task, join) = task::spawn(shared, true, BlockingFn(Some(f)), schedule_blocking);
    shared.blocking.push(shared, task);
    join
}

/// The schedule hook of blocking jobs. A job never waits on anything, so async-task calls it
/// only if someone schedules the job again, which nothing here does; it queues the job anyway.
fn schedule_blocking(task: Task, _info: ScheduleInfo) {
    let shared = task.metadata().shared.clone();
    shared.blocking.push(&shared, task);
}
