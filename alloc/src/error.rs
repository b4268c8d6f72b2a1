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
    /// What the allocator needed for the request: a new chunk, a block with its alignment
    /// padding or prefix; `requested` when nothing more.
    needed: usize,
    /// Whose memory it was: the heap's owner (or the caller, for a heap with none).
    owner: u64,
    /// Who asked: the identity running when the error was made.
    caller: u64,
    /// The tokio task id under which `caller`, a task of ours, was polled when the error was
    /// made (see [`identity::external_alias`](crate::identity::external_alias)).
    polled_as: Option<u64>,
}

impl AllocError {
    /// `budget` (capped at `cap`, `used` in use) could not give `needed` bytes for a request
    /// of `requested` bytes made by (or for) `owner`.
    pub(crate) fn budget(budget: Budget, cap: usize, used: usize, requested: usize, needed: usize, owner: u64) -> Self {
        Self::new(Kind::Budget { budget, cap, used }, requested, needed, owner)
    }

    fn new(kind: Kind, requested: usize, needed: usize, owner: u64) -> Self {
        let caller = crate::identity::current();
        Self { kind, requested, needed, owner, caller, polled_as: crate::identity::external_alias(caller) }
    }

    /// The system allocator refused `needed` bytes, asked for a request of `requested`.
    pub(crate) fn out_of_memory(requested: usize, needed: usize) -> Self {
        Self::new(Kind::OutOfMemory, requested, needed, crate::identity::current())
    }

    pub(crate) fn capacity_overflow() -> Self {
        Self::new(Kind::CapacityOverflow, usize::MAX, usize::MAX, crate::identity::current())
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

    /// Bytes the allocator needed to serve the request, which is what the budget or the
    /// system allocator could not give: a new chunk, or the block with its alignment padding
    /// or prefix; [`requested`](Self::requested) when it needed nothing more.
    pub fn needed(&self) -> usize {
        self.needed
    }

    /// The cap that was hit, if a budget was.
    pub fn cap(&self) -> Option<usize> {
        match self.kind {
            Kind::Budget { cap, .. } => Some(cap),
            _ => None,
        }
    }

    /// The bytes of the budget that were in use when it was hit, if a budget was: with
    /// [`cap`](Self::cap), how much room was left.
    pub fn used(&self) -> Option<usize> {
        match self.kind {
            Kind::Budget { used, .. } => Some(used),
            _ => None,
        }
    }
}

/// `n` with its unit: "1 byte", "16384 bytes".
struct Bytes(usize);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("1 byte"),
            n => write!(f, "{n} bytes"),
        }
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut caller = crate::identity::describe(self.caller);
        if let Some(id) = self.polled_as {
            caller = format!("{caller} (tokio task {id})");
        }
        // "in task 7", or, when someone else's heap ran out, "in the heap of task 7, used by
        // thread #2 (no task)".
        let owner = if self.owner == self.caller {
            caller
        } else {
            format!("the heap of {}, used by {caller}", crate::identity::describe(self.owner))
        };
        match &self.kind {
            Kind::Budget { budget, cap, used } => {
                write!(f, "framealloc: {} exceeded: requested {}", budget.name(), Bytes(self.requested))?;
                if self.needed != self.requested {
                    write!(f, " (needing {} for it)", Bytes(self.needed))?;
                }
                write!(f, " with {used} of {} in use, in {owner}", Bytes(*cap))?;
                if self.needed > *cap {
                    // Never satisfiable, however much is freed (a cap below one chunk, say).
                    f.write_str("; that is more than the whole cap: raise it")?;
                }
                Ok(())
            }
            Kind::OutOfMemory if self.needed != self.requested => write!(
                f,
                "framealloc: the system allocator refused {}, needed for a request of {}, in {owner}",
                Bytes(self.needed),
                Bytes(self.requested)
            ),
            Kind::OutOfMemory => {
                write!(f, "framealloc: the system allocator refused {}, in {owner}", Bytes(self.requested))
            }
            Kind::CapacityOverflow => write!(f, "framealloc: capacity overflow, in {owner}"),
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
        let e = AllocError::budget(Budget::Total, 100, 90, 20, 20, crate::identity::current());
        assert!(e.is_budget() && e.is_total_budget() && !e.is_frame_budget() && !e.is_out_of_memory());
        assert_eq!((e.cap(), e.used(), e.requested(), e.needed()), (Some(100), Some(90), 20, 20));
        let msg = e.to_string();
        assert!(msg.contains("total budget") && msg.contains("requested 20 bytes with 90 of 100"), "{msg}");
        assert!(msg.contains("thread"), "outside a task the thread is named: {msg}");
        let chunk = AllocError::budget(Budget::Total, 10_000, 4096, 8, 8192, crate::identity::current()).to_string();
        assert!(chunk.contains("requested 8 bytes (needing 8192 bytes for it) with 4096 of 10000"), "{chunk}");
        assert!(!chunk.contains("more than the whole cap"), "{chunk}");
        // A cap below what one request needs can never serve it: the message says so, in the
        // singular where it is one byte.
        let never = AllocError::budget(Budget::TaskHeap, 100, 0, 1, 16384, crate::identity::current()).to_string();
        assert!(never.contains("requested 1 byte (needing 16384 bytes for it) with 0 of 100 bytes"), "{never}");
        assert!(never.ends_with("; that is more than the whole cap: raise it"), "{never}");
        let o = AllocError::out_of_memory(64, 64);
        assert!(o.is_out_of_memory() && o.cap().is_none() && o.used().is_none());
        assert!(o.to_string().contains("refused 64 bytes, in"));
        let chunk = AllocError::out_of_memory(64, 16384).to_string();
        assert!(chunk.contains("refused 16384 bytes, needed for a request of 64 bytes"), "{chunk}");
        assert!(AllocError::capacity_overflow().is_capacity_overflow());
        assert_eq!(format!("{o:?}"), o.to_string());
    }
}
