//! [`TaskSlot`]: the heaps of one executor task, one per `SmartAlloc` it uses, created on the
//! task's first `pool_*` call and released when the task ends.

use super::core::HeapCore;
use crate::shared::Shared;
use core::cell::{Cell, RefCell};
use core::ptr::NonNull;
use std::sync::Arc;

pub(crate) struct TaskSlot {
    identity: u64,
    /// The first heap (one `SmartAlloc` per task is the usual case): `(alloc id, heap)`.
    first: Cell<Option<(u64, NonNull<HeapCore>)>>,
    /// Heaps of further `SmartAlloc`s.
    more: RefCell<Vec<(u64, NonNull<HeapCore>)>>,
}

// SAFETY: the slot moves with its `TaskContext` between threads; it is used only inside
// `TaskContext::enter` (one thread at a time, `&mut` borrow) or through `&mut` for release.
unsafe impl Send for TaskSlot {}

impl TaskSlot {
    pub(crate) fn new(identity: u64) -> Self {
        Self { identity, first: Cell::new(None), more: RefCell::new(Vec::new()) }
    }

    /// The task's heap for `shared`, created on first use. The caller is running as this task
    /// (inside `enter`), so it is the heap's owner.
    #[inline]
    pub(crate) fn heap_for(&self, shared: &Arc<Shared>) -> NonNull<HeapCore> {
        match self.first.get() {
            Some((id, h)) if id == shared.id => h,
            _ => self.heap_for_slow(shared),
        }
    }

    #[cold]
    fn heap_for_slow(&self, shared: &Arc<Shared>) -> NonNull<HeapCore> {
        if self.first.get().is_none() {
            let h = HeapCore::obtain_task_heap(shared, self.identity);
            self.first.set(Some((shared.id, h)));
            return h;
        }
        let mut more = self.more.borrow_mut();
        if let Some(&(_, h)) = more.iter().find(|(id, _)| *id == shared.id) {
            return h;
        }
        let h = HeapCore::obtain_task_heap(shared, self.identity);
        more.push((shared.id, h));
        h
    }

    fn heaps(&self) -> Vec<NonNull<HeapCore>> {
        self.first.get().into_iter().chain(self.more.borrow().iter().copied()).map(|(_, h)| h).collect()
    }

    pub(crate) fn live_bytes(&self) -> u64 {
        self.heaps()
            .into_iter()
            // SAFETY: heaps in the slot are live until `release`.
            .map(|h| unsafe { h.as_ref() }.counters().live())
            .sum()
    }

    pub(crate) fn release(&mut self) {
        let heaps = self.heaps();
        self.first.set(None);
        self.more.get_mut().clear();
        for h in heaps {
            // SAFETY: `&mut self` means no `enter` of this task is running anywhere, and the
            // task's identity is used only inside `enter`; each heap is released once.
            unsafe { HeapCore::release_owner(h) };
        }
    }
}

impl Drop for TaskSlot {
    fn drop(&mut self) {
        self.release();
    }
}
