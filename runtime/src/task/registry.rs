//! The tasks that wait for a wake-up, so that shutdown can reach the ones nobody will wake.
//!
//! A task is registered by its own future wrapper the first time a poll returns `Pending`
//! (a task that completes in its first poll never is), and deregistered when its future is
//! gone. The registry holds one waker per task: shutdown closes the registry and wakes them
//! all; the scheduler, seeing the runtime shut down, drops each woken task instead of queueing
//! it, which drops its future and releases its heap. Tasks that are queued rather than waiting
//! are reached through the queues, so between the two every live future is reached.
//!
//! One shard per worker plus one for threads that are not workers, each its own lock, so a
//! worker registering its own tasks takes an uncontended lock. A key belongs to its task until
//! the task removes it; shutdown empties and closes the shards, so no key is reused under a
//! task that still holds it.

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use slab::Slab;
use std::task::Waker;

#[derive(Debug)]
pub(crate) struct Registry {
    shards: Box<[CachePadded<Mutex<Shard>>]>,
}

#[derive(Debug, Default)]
struct Shard {
    tasks: Slab<Waker>,
    closed: bool,
}

impl Registry {
    /// A registry with `shards` shards (workers + 1).
    pub(crate) fn new(shards: usize) -> Self {
        Self { shards: (0..shards.max(1)).map(|_| CachePadded::new(Mutex::new(Shard::default()))).collect() }
    }

    /// The shard for threads that are not this runtime's workers.
    pub(crate) fn external_shard(&self) -> usize {
        self.shards.len() - 1
    }

    /// Registers a waiting task by its waker; its key in the shard, or the waker back once
    /// the registry is closed (shutdown).
    pub(crate) fn insert(&self, shard: usize, waker: Waker) -> Result<usize, Waker> {
        let mut s = self.shards[shard].lock();
        if s.closed {
            return Err(waker);
        }
        Ok(s.tasks.insert(waker))
    }

    /// Removes the task registered as `key` in `shard` (nothing if shutdown took it already).
    pub(crate) fn remove(&self, shard: usize, key: usize) {
        let removed = self.shards[shard].lock().tasks.try_remove(key);
        // The waker (a task reference) drops outside the lock.
        drop(removed);
    }

    /// Closes every shard (later inserts fail) and wakes every registered task, outside the
    /// locks. Returns how many it woke.
    pub(crate) fn close_and_wake_all(&self) -> usize {
        let mut woken = 0;
        for shard in self.shards.iter() {
            let tasks = {
                let mut s = shard.lock();
                s.closed = true;
                core::mem::take(&mut s.tasks)
            };
            for (_, waker) in tasks {
                waker.wake();
                woken += 1;
            }
        }
        woken
    }

    /// Tasks registered (waiting) now.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().tasks.len()).sum()
    }
}
