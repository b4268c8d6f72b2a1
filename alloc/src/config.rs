//! [`AllocConfig`]: chunk sizes and budgets.

/// How a [`SmartAlloc`](crate::SmartAlloc) sizes its chunks and what it may use.
///
/// Budgets count memory *held*: for a frame, the bytes its arena handed out since
/// `begin_frame` (alignment padding included); for a task heap, the chunks and large blocks it
/// holds from the system; in total, everything all arenas and heaps of this `SmartAlloc` hold.
/// Going over a budget is an [`AllocError`](crate::AllocError) from the `try_*` methods and a
/// panic naming the budget, the request and the task from the plain ones, never an abort.
///
/// ```
/// use framealloc_alloc::{AllocConfig, SmartAlloc};
/// let alloc = SmartAlloc::new(AllocConfig::default().with_frame_budget(1 << 20));
/// assert_eq!(alloc.config().max_frame_bytes, Some(1 << 20));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocConfig {
    /// Size of a thread's first frame chunk; later chunks double up to
    /// [`frame_chunk_max_bytes`](Self::frame_chunk_max_bytes). At least 1 KiB.
    pub frame_chunk_bytes: usize,
    /// Largest size a frame chunk grows to (a single bigger request gets a chunk of its own).
    pub frame_chunk_max_bytes: usize,
    /// Size of a task heap chunk. Requests above a quarter of it go to the system allocator.
    /// A power of two from 4 KiB to 1 MiB.
    pub task_chunk_bytes: usize,
    /// Cap on the bytes one task heap holds.
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
    /// Caps each thread's frame at `bytes` per frame.
    pub fn with_frame_budget(mut self, bytes: usize) -> Self {
        self.max_frame_bytes = Some(bytes);
        self
    }

    /// Caps each task heap at `bytes`.
    pub fn with_task_heap_budget(mut self, bytes: usize) -> Self {
        self.max_task_heap_bytes = Some(bytes);
        self
    }

    /// Caps everything this `SmartAlloc` holds at `bytes`.
    pub fn with_total_budget(mut self, bytes: usize) -> Self {
        self.max_total_bytes = Some(bytes);
        self
    }

    /// Checks the sizes; the message names the field and the rule.
    pub fn validate(&self) -> Result<(), String> {
        if self.frame_chunk_bytes < 1024 || self.frame_chunk_bytes > (1 << 30) {
            return Err(format!(
                "AllocConfig::frame_chunk_bytes must be between 1 KiB and 1 GiB, got {}",
                self.frame_chunk_bytes
            ));
        }
        if self.frame_chunk_max_bytes < self.frame_chunk_bytes || self.frame_chunk_max_bytes > (1 << 30) {
            return Err(format!(
                "AllocConfig::frame_chunk_max_bytes must be at least frame_chunk_bytes ({}) and at most 1 GiB, got {}",
                self.frame_chunk_bytes, self.frame_chunk_max_bytes
            ));
        }
        let t = self.task_chunk_bytes;
        if !t.is_power_of_two() || !(4096..=(1 << 20)).contains(&t) {
            return Err(format!(
                "AllocConfig::task_chunk_bytes must be a power of two from 4 KiB to 1 MiB, got {t}"
            ));
        }
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_sizes_are_named() {
        assert_eq!(AllocConfig::default().validate(), Ok(()));
        let bad = |c: AllocConfig| c.validate().unwrap_err();
        assert!(bad(AllocConfig { frame_chunk_bytes: 10, ..Default::default() }).contains("frame_chunk_bytes"));
        assert!(bad(AllocConfig { frame_chunk_max_bytes: 1024, ..Default::default() }).contains("frame_chunk_max_bytes"));
        assert!(bad(AllocConfig { task_chunk_bytes: 3 << 12, ..Default::default() }).contains("power of two"));
        assert!(bad(AllocConfig { task_chunk_bytes: 1 << 21, ..Default::default() }).contains("task_chunk_bytes"));
        let c = AllocConfig::default().with_frame_budget(1).with_task_heap_budget(2).with_total_budget(3);
        assert_eq!((c.max_frame_bytes, c.max_task_heap_bytes, c.max_total_bytes), (Some(1), Some(2), Some(3)));
    }
}
