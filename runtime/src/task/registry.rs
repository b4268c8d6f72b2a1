//! Every live task of a runtime, so that shutdown can reach the ones nobody will wake again.
//!
//! A task is registered at spawn (its slab key goes into its header) and deregistered by its
//! own future wrapper when it completes or its future is dropped. The registry holds one
//! waker per task: shutdown closes the registry and wakes them all; the scheduler, seeing the
//! runtime shut down, drops each woken task instead of queueing it, which drops its future
//! and releases its heap. `abort` finds its task's waker here too.
//!
//! One shard per worker plus one for spawns from outside the runtime, each its own lock, so
//! a worker spawning and completing its own tasks takes an uncontended lock. Entries carry
//! the header's address: a key is checked against it before use, so a stale key (its task
//! gone, the key reused) never reaches another task.

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use slab::Slab;
use std::task::Waker;

/// The key of a task that is not registered (a blocking task, or one spawned after shutdown).
pub(crate) const UNREGISTERED: usize = usize::MAX;

#[derive(Debug)]
pub(crate) struct Registry {
    shards: Box<[CachePadded<Mutex<Shard>>]>,
}

#[derive(Debug, Default)]
struct Shard {
    tasks: Slab<Entry>,
    closed: bool,
}

#[derive(Debug)]
struct Entry {
    waker: Waker,
    /// Address of the task's header: the entry's owner.
    header: usize,
}

impl Registry {
    /// A registry with `shards` shards (workers + 1).
    pub(crate) fn new(shards: usize) -> Self {
        Self { shards: (0..shards.max(1)).map(|_| CachePadded::new(Mutex::new(Shard::default()))).collect() }
    }

    /// The shard for spawns from threads that are not this runtime's workers.
    pub(crate) fn external_shard(&self) -> usize {
        self.shards.len() - 1
    }

    /// Makes a task with `make(key)` under shard `shard`'s lock and registers it with the
    /// waker and header address `make` returns alongside it. After [`close`](Self::close),
    /// nothing is made and `make` comes back as `Err`.
    pub(crate) fn insert<T, F>(&self, shard: usize, make: F) -> Result<T, F>
    where
        F: FnOnce(usize) -> (T, Waker, usize),
    {
        let mut s = self.shards[shard].lock();
        if s.closed {
            return Err(make);
        }
        let entry = s.tasks.vacant_entry();
        let (made, waker, header) = make(entry.key());
        entry.insert(Entry { waker, header });
        Ok(made)
    }

    /// Removes the entry `key` of shard `shard` if it still belongs to `header`.
    #[inline]
    pub(crate) fn remove(&self, shard: usize, key: usize, header: usize) {
        if key == UNREGISTERED {
            return;
        }
        let removed = {
            let mut s = self.shards[shard].lock();
            match s.tasks.get(key) {
                Some(e) if e.header == header => Some(s.tasks.remove(key)),
                _ => None,
            }
        };
        // The waker (a task reference) drops outside the lock.
        drop(removed);
    }

    /// A waker of the registered task `key` owned by `header`, if it is still registered.
    pub(crate) fn waker(&self, shard: usize, key: usize, header: usize) -> Option<Waker> {
        if key == UNREGISTERED {
            return None;
        }
        let s = self.shards[shard].lock();
        s.tasks.get(key).filter(|e| e.header == header).map(|e| e.waker.clone())
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
            for (_, e) in tasks {
                e.waker.wake();
                woken += 1;
            }
        }
        woken
    }

    /// Tasks registered now.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().tasks.len()).sum()
    }
}
