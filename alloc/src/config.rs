//! [`AllocConfig`]: chunk sizes and budgets, and the [`ConfigError`] of a bad one.

use core::fmt;

/// How a [`SmartAlloc`](crate::SmartAlloc) sizes its chunks and what it may use.
///
/// Budgets count memory *held*: for a frame, the bytes its arena handed out since
/// `begin_frame` (alignment padding included); for a task heap, the chunks and large blocks it
/// holds from the system; in total, everything all arenas and heaps of this `SmartAlloc` hold.
/// Going over a budget is an [`AllocError`](crate::AllocError) from the `try_*` methods and a
/// panic naming the budget, the request and the task from the plain ones, never an abort.
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; }
/// use framealloc::{AllocConfig, SmartAlloc};
/// let alloc = SmartAlloc::new(AllocConfig::default().with_frame_budget(1 << 20));
/// assert_eq!(alloc.config().max_frame_bytes, Some(1 << 20));
/// ```
///
/// `#[non_exhaustive]`, so that fields can be added: outside this crate, start from
/// [`AllocConfig::default()`] and change it with the `with_*` methods (the fields stay public
/// to read and assign).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AllocConfig {
    /// Size of a thread's first frame chunk; later chunks double up to
    /// [`frame_chunk_max_bytes`](Self::frame_chunk_max_bytes). From 1 KiB to 1 GiB.
    pub frame_chunk_bytes: usize,
    /// Largest size a frame chunk grows to: at least `frame_chunk_bytes`, at most 1 GiB. A
    /// single bigger request gets a chunk of its own, its size rounded up to whole pages, which
    /// the arena keeps for later frames.
    pub frame_chunk_max_bytes: usize,
    /// Size of a task heap chunk. Requests above a quarter of it go to the system allocator.
    /// A power of two from 4 KiB to 1 MiB.
    pub task_chunk_bytes: usize,
    /// Cap on the bytes one task heap holds: the heap of a task, of a `TaskAlloc`, or of an
    /// `AsyncPoolGuard` opened in a task (not a thread's pool, nor a guard's on a plain
    /// thread). Its chunks count whole, so a cap below `task_chunk_bytes` refuses every
    /// allocation that needs a chunk.
    pub max_task_heap_bytes: Option<usize>,
    /// Cap on the bytes one thread's frame hands out between two `begin_frame` calls.
    pub max_frame_bytes: Option<usize>,
    /// Cap on the bytes all arenas and heaps of this `SmartAlloc` hold together.
    pub max_total_bytes: Option<usize>,
}

/// Default task heap chunk: 16 KiB holds a typical request handler's allocations, and chunks
/// of this size are cached per thread across all `SmartAlloc`s.
pub(crate) const DEFAULT_TASK_CHUNK: usize = 16 * 1024;

impl Default for AllocConfig {
    fn default() -> Self {
        Self {
            frame_chunk_bytes: 16 * 1024,
            frame_chunk_max_bytes: 4 * 1024 * 1024,
            task_chunk_bytes: DEFAULT_TASK_CHUNK,
            max_task_heap_bytes: None,
            max_frame_bytes: None,
            max_total_bytes: None,
        }
    }
}

impl AllocConfig {
    /// Sets the size of a thread's first frame chunk (see
    /// [`frame_chunk_bytes`](Self::frame_chunk_bytes)).
    #[must_use]
    pub fn with_frame_chunk_bytes(mut self, bytes: usize) -> Self {
        self.frame_chunk_bytes = bytes;
        self
    }

    /// Sets the largest size a frame chunk grows to (see
    /// [`frame_chunk_max_bytes`](Self::frame_chunk_max_bytes)).
    #[must_use]
    pub fn with_frame_chunk_max_bytes(mut self, bytes: usize) -> Self {
        self.frame_chunk_max_bytes = bytes;
        self
    }

    /// Sets the size of a task heap chunk (see [`task_chunk_bytes`](Self::task_chunk_bytes)).
    #[must_use]
    pub fn with_task_chunk_bytes(mut self, bytes: usize) -> Self {
        self.task_chunk_bytes = bytes;
        self
    }

    /// Caps each thread's frame at `bytes` per frame.
    pub fn with_frame_budget(mut self, bytes: usize) -> Self {
        self.max_frame_bytes = Some(bytes);
        self
    }

    /// Caps each task heap at `bytes` (see [`max_task_heap_bytes`](Self::max_task_heap_bytes)).
    pub fn with_task_heap_budget(mut self, bytes: usize) -> Self {
        self.max_task_heap_bytes = Some(bytes);
        self
    }

    /// Caps everything this `SmartAlloc` holds at `bytes`.
    pub fn with_total_budget(mut self, bytes: usize) -> Self {
        self.max_total_bytes = Some(bytes);
        self
    }

    /// Checks the sizes.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first field that breaks its rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, rule: String| Err(ConfigError { field, rule });
        if self.frame_chunk_bytes < 1024 || self.frame_chunk_bytes > (1 << 30) {
            return bad(
                "frame_chunk_bytes",
                format!("must be between 1 KiB and 1 GiB, got {}", self.frame_chunk_bytes),
            );
        }
        if self.frame_chunk_max_bytes < self.frame_chunk_bytes || self.frame_chunk_max_bytes > (1 << 30) {
            return bad(
                "frame_chunk_max_bytes",
                format!(
                    "must be at least frame_chunk_bytes ({}) and at most 1 GiB, got {}",
                    self.frame_chunk_bytes, self.frame_chunk_max_bytes
                ),
            );
        }
        let t = self.task_chunk_bytes;
        if !t.is_power_of_two() || !(4096..=(1 << 20)).contains(&t) {
            return bad("task_chunk_bytes", format!("must be a power of two from 4 KiB to 1 MiB, got {t}"));
        }
        Ok(())
    }
}

/// An [`AllocConfig`] that [`SmartAlloc::try_new`](crate::SmartAlloc::try_new) (or
/// [`AllocConfig::validate`]) refused. Its message names the field and the rule it breaks;
/// [`SmartAlloc::new`](crate::SmartAlloc::new) panics with the same message.
///
/// ```
/// # mod framealloc { pub use framealloc_alloc::*; }
/// use framealloc::{AllocConfig, SmartAlloc};
/// let config = AllocConfig::default().with_task_chunk_bytes(5000);
/// let err = SmartAlloc::try_new(config).unwrap_err();
/// assert_eq!(err.field(), "task_chunk_bytes");
/// assert!(err.to_string().contains("power of two"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    rule: String,
}

impl ConfigError {
    /// The name of the [`AllocConfig`] field that breaks its rule, e.g. `"task_chunk_bytes"`.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "framealloc: invalid configuration: AllocConfig::{} {}", self.field, self.rule)
    }
}

impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_sizes_are_named() {
        assert_eq!(AllocConfig::default().validate(), Ok(()));
        let bad = |c: AllocConfig| c.validate().unwrap_err();
        let e = bad(AllocConfig { frame_chunk_bytes: 10, ..Default::default() });
        assert_eq!(e.field(), "frame_chunk_bytes");
        assert_eq!(
            e.to_string(),
            "framealloc: invalid configuration: AllocConfig::frame_chunk_bytes must be between 1 KiB and 1 GiB, got 10"
        );
        assert_eq!(format!("{e:?}"), e.to_string());
        let e = bad(AllocConfig { frame_chunk_max_bytes: 1024, ..Default::default() });
        assert_eq!(e.field(), "frame_chunk_max_bytes");
        assert!(e.to_string().contains("at least frame_chunk_bytes (16384)"), "{e}");
        let e = bad(AllocConfig { task_chunk_bytes: 3 << 12, ..Default::default() });
        assert_eq!((e.field(), e.to_string().contains("power of two")), ("task_chunk_bytes", true));
        assert_eq!(bad(AllocConfig { task_chunk_bytes: 1 << 21, ..Default::default() }).field(), "task_chunk_bytes");
        let c = AllocConfig::default().with_frame_budget(1).with_task_heap_budget(2).with_total_budget(3);
        assert_eq!(c.validate(), Ok(()), "budgets have no rule: a small one makes allocations fail");
        assert_eq!((c.max_frame_bytes, c.max_task_heap_bytes, c.max_total_bytes), (Some(1), Some(2), Some(3)));
    }

    #[test]
    fn smart_alloc_refuses_a_bad_config_as_an_error_or_a_panic() {
        let config = AllocConfig { frame_chunk_max_bytes: 2 << 30, ..Default::default() };
        let err = crate::SmartAlloc::try_new(config.clone()).expect_err("an error, not an allocator");
        assert_eq!(err, config.validate().unwrap_err());
        assert_eq!(err.field(), "frame_chunk_max_bytes");
        let panic = std::panic::catch_unwind(|| crate::SmartAlloc::new(config)).expect_err("a panic");
        assert_eq!(panic.downcast_ref::<String>(), Some(&err.to_string()));
        assert!(crate::SmartAlloc::try_new(AllocConfig::default()).is_ok());
    }
}
