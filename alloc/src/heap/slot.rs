//! [`TaskSlot`]: the heaps of one executor task, one per `SmartAlloc` it uses, created on the
//! task's first `pool_*` call and released when the task ends.

use super::core::HeapCore;
use crate::shared::Shared;
use crate::stats::Kind;
use core::cell::RefCell;
use core::ptr::NonNull;
use std::sync::Arc;

pub(crate) struct TaskSlot {
    identity: u64,
    heaps: RefCell<Vec<(u64, NonNull<HeapCore>)>>,
}

// SAFETY: the slot moves with its `TaskContext` between threads; it is used only inside
// `TaskContext::enter` (one thread at a time, `&mut` borrow) or through `&mut` for release.
unsafe impl Send for TaskSlot {}

impl TaskSlot {
    pub(crate) fn new(identity: u64) -> Self {
        Self { identity, heaps: RefCell::new(Vec::new()) }
    }

    /// The task's heap for `shared`, created on first use. The caller is running as this task
    /// (inside `enter`), so it is the heap's owner.
    #[inline]
    pub(crate) fn heap_for(&self, shared: &Arc<Shared>) -> NonNull<HeapCore> {
        let mut heaps = self.heaps.borrow_mut();
        if let Some(&(_, h)) = heaps.iter().find(|(id, _)| *id == shared.id) {
            return h;
        }
        let h = HeapCore::create(shared, Kind::Task, self.identity);
        heaps.push((shared.id, h));
        h
    }

    pub(crate) fn live_bytes(&self) -> u64 {
        self.heaps
            .borrow()
            .iter()
            // SAFETY: heaps in the slot are live until `release`.
            .map(|(_, h)| unsafe { h.as_ref() }.counters().live())
            .sum()
    }

    pub(crate) fn release(&mut self) {
        for (_, h) in self.heaps.get_mut().drain(..) {
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
