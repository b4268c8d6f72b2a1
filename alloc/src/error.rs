//! [`AllocError`]: what a `try_*` allocation returns when it cannot be served.

use core::fmt;

/// Which cap an allocation ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Budget {
    Frame,
    TaskHeap,
    Total,
}

impl Budget {
    fn name(self) -> &'static str {
        match self {
            Budget::Frame => "frame budget (AllocConfig::max_frame_bytes)",
            Budget::TaskHeap => "task heap budget (AllocConfig::max_task_heap_bytes)",
            Budget::Total => "total budget (AllocConfig::max_total_bytes)",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Budget { budget: Budget, cap: usize, used: usize },
    OutOfMemory,
    CapacityOverflow,
}

/// An allocation that could not be served: a budget of [`AllocConfig`](crate::AllocConfig)
/// would be exceeded, the system allocator failed, or the size overflowed.
///
/// The plain (non-`try_`) methods panic with this error's message, which names the budget,
/// its cap, the bytes in use, the request and the task.
#[derive(Clone, PartialEq, Eq)]
pub struct AllocError {
    kind: Kind,
    requested: usize,
    owner: u64,
}

impl AllocError {
    pub(crate) fn budget(budget: Budget, cap: usize, used: usize, requested: usize, owner: u64) -> Self {
        Self { kind: Kind::Budget { budget, cap, used }, requested, owner }
    }

    pub(crate) fn out_of_memory(requested: usize) -> Self {
        Self { kind: Kind::OutOfMemory, requested, owner: crate::identity::current() }
    }

    pub(crate) fn capacity_overflow() -> Self {
        Self { kind: Kind::CapacityOverflow, requested: usize::MAX, owner: crate::identity::current() }
    }

    /// `true` if a budget of the configuration was hit.
    pub fn is_budget(&self) -> bool {
        matches!(self.kind, Kind::Budget { .. })
    }

    /// `true` if the per-frame budget was hit.
    pub fn is_frame_budget(&self) -> bool {
        matches!(self.kind, Kind::Budget { budget: Budget::Frame, .. })
    }

    /// `true` if the per-task-heap budget was hit.
    pub fn is_task_budget(&self) -> bool {
        matches!(self.kind, Kind::Budget { budget: Budget::TaskHeap, .. })
    }

    /// `true` if the total budget was hit.
    pub fn is_total_budget(&self) -> bool {
        matches!(self.kind, Kind::Budget { budget: Budget::Total, .. })
    }

    /// `true` if the system allocator refused the memory.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self.kind, Kind::OutOfMemory)
    }

    /// `true` if the requested size overflowed `isize::MAX`.
    pub fn is_capacity_overflow(&self) -> bool {
        matches!(self.kind, Kind::CapacityOverflow)
    }

    /// Bytes the failed request asked for: the value or buffer, not the chunk or block (with
    /// its size-class rounding or prefix) that would have held it.
    pub fn requested(&self) -> usize {
        self.requested
    }

    /// The cap that was hit, if a budget was.
    pub fn cap(&self) -> Option<usize> {
        match self.kind {
            Kind::Budget { cap, .. } => Some(cap),
            _ => None,
        }
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Budget { budget, cap, used } => write!(
                f,
                "framealloc: {} exceeded: requested {} bytes with {} of {} bytes in use, in {}",
                budget.name(),
                self.requested,
                used,
                cap,
                crate::identity::describe(self.owner)
            ),
            Kind::OutOfMemory => {
                write!(f, "framealloc: the system allocator refused {} bytes, in {}", self.requested, crate::identity::describe(self.owner))
            }
            Kind::CapacityOverflow => write!(f, "framealloc: capacity overflow, in {}", crate::identity::describe(self.owner)),
        }
    }
}

impl fmt::Debug for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for AllocError {}

/// Panics with `e`'s message (the plain, non-`try_` methods).
#[cold]
#[track_caller]
pub(crate) fn fail(e: AllocError) -> ! {
    panic!("{e}")
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn accessors_and_messages() {
        let e = AllocError::budget(Budget::Total, 100, 90, 20, crate::identity::current());
        assert!(e.is_budget() && e.is_total_budget() && !e.is_frame_budget() && !e.is_out_of_memory());
        assert_eq!((e.cap(), e.requested()), (Some(100), 20));
        let msg = e.to_string();
        assert!(msg.contains("total budget") && msg.contains("requested 20 bytes with 90 of 100"), "{msg}");
        assert!(msg.contains("thread"), "outside a task the thread is named: {msg}");
        let o = AllocError::out_of_memory(64);
        assert!(o.is_out_of_memory() && o.cap().is_none() && o.to_string().contains("refused 64 bytes"));
        assert!(AllocError::capacity_overflow().is_capacity_overflow());
        assert_eq!(format!("{o:?}"), o.to_string());
    }
}
