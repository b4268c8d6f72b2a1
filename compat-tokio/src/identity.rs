//! tokio's task id as framealloc's external identity source.

use core::fmt::{self, Write as _};
use core::hash::{Hash, Hasher};
use core::num::NonZeroU64;
use std::sync::OnceLock;

/// Whether tokio's task id is the identity source, once registration was attempted. A `Once`
/// (not a bare flag) so that a caller racing with the first registration waits for its result.
static REGISTERED: OnceLock<bool> = OnceLock::new();

/// Makes tokio's task id ([`tokio::task::try_id`]) framealloc's identity for code running in a
/// tokio task, so that [`TaskAlloc`](crate::TaskAlloc) and
/// [`AsyncPoolGuard`](crate::AsyncPoolGuard) follow a plain `tokio::spawn` task across worker
/// threads, and `frame_*` calls in it panic with FA701.
///
/// Idempotent and cheap (one atomic load once done). It already ran at program start on the
/// platforms listed in the [crate docs](crate), and every entry point of this crate calls it;
/// call it yourself at the start of `main` elsewhere.
///
/// Returns `true` if tokio's task id is the identity source, `false` if another source was
/// registered with framealloc before (the first registration wins; tasks of [`spawn`](crate::spawn)
/// still get their own heap).
#[inline]
pub fn init() -> bool {
    *REGISTERED.get_or_init(register)
}

#[cold]
fn register() -> bool {
    // Why `current_task_id` (which reports `tokio::task::try_id()`) meets the hook's contract:
    // * one thread at a time: tokio sets the current task id in a thread-local only while that
    //   thread polls the task, drops its future or output, or runs it as a `spawn_blocking`
    //   closure, and restores the previous value afterwards; a task's state machine (its
    //   RUNNING/COMPLETE bits, changed with atomic read-modify-writes) lets only one thread do
    //   any of that at a time. The documented guarantee is "unique relative to all other
    //   currently running tasks", across all runtimes of the process.
    // * never handed to another task: ids come from one process-wide counter (`Id::next` in
    //   tokio 1.54, the minimum this crate requires: an `AtomicU64::fetch_add` skipping 0),
    //   which does not wrap in practice (2^64 spawns). tokio only documents that an id *may*
    //   be reused once its task exited and no JoinHandle is left; should a later 1.x do so,
    //   this registration must be revisited (see the crate's tests of `current_task_id`).
    // * happens-before across threads: a task moves between workers only through tokio's run
    //   queues and task state transitions, which synchronise (acquire/release) the thread that
    //   polled it last with the thread that polls it next; the same holds for the thread that
    //   drops a finished task's output.
    // The hook keeps the first registration: `false` means another source was there first.
    // SAFETY: `current_task_id` meets the hook's contract, as argued point by point above.
    unsafe { framealloc_alloc::hook::set_external_identity_source(current_task_id) }
}

/// The id of the tokio task running on this thread, as a number (`None` outside a task,
/// including inside tokio's `block_on` root future).
///
/// tokio runs each worker of a multi-thread runtime as a blocking task of its own, so on a
/// worker thread this is `Some` also between polls: in the runtime's thread hooks
/// (`on_thread_park`, ...), which therefore count as a task for framealloc (FA701 included).
///
/// This is the identity source registered by [`init`]. The number is the task's
/// [`tokio::task::Id`] (equal to its `Display` form).
#[inline]
pub fn current_task_id() -> Option<NonZeroU64> {
    tokio::task::try_id().map(|id| id_to_u64(&id))
}

/// `tokio::task::Id` has no public accessor for its number. It is `struct Id(NonZeroU64)`
/// with a derived `Hash`, which feeds the number to the hasher with exactly one `write_u64`
/// (`NonZero<u64>` hashes as its `u64`); [`Capture`] captures that call. The first id this
/// process reads is checked both ways: if the captured number is not the one `Display` prints
/// (a tokio version that hashes differently), every id is parsed from `Display` from then on.
#[inline]
fn id_to_u64(id: &tokio::task::Id) -> NonZeroU64 {
    match HASH_IS_DISPLAY.get() {
        Some(true) => match captured(id) {
            Some(v) => v,
            None => id_from_display(id),
        },
        Some(false) => id_from_display(id),
        None => first_id(id),
    }
}

/// Whether [`captured`] gives the number `Display` prints, decided on the first id read.
static HASH_IS_DISPLAY: OnceLock<bool> = OnceLock::new();

#[cold]
fn first_id(id: &tokio::task::Id) -> NonZeroU64 {
    let displayed = id_from_display(id);
    let _ = HASH_IS_DISPLAY.set(hash_matches_display(captured(id), displayed));
    displayed
}

/// The rule [`first_id`] applies: the capture is trusted only if it saw the number.
fn hash_matches_display(captured: Option<NonZeroU64>, displayed: NonZeroU64) -> bool {
    captured == Some(displayed)
}

/// The number `Hash` fed to the hasher, if it fed exactly one `u64` and nothing else.
#[inline]
fn captured(id: &tokio::task::Id) -> Option<NonZeroU64> {
    let mut h = Capture { value: 0, u64_writes: 0, other_writes: false };
    id.hash(&mut h);
    if h.u64_writes == 1 && !h.other_writes {
        NonZeroU64::new(h.value)
    } else {
        None
    }
}

struct Capture {
    value: u64,
    u64_writes: u32,
    other_writes: bool,
}

impl Hasher for Capture {
    fn finish(&self) -> u64 {
        self.value
    }

    fn write(&mut self, _bytes: &[u8]) {
        // Every `write_*` we do not override lands here.
        self.other_writes = true;
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.value = v;
        self.u64_writes += 1;
    }
}

/// Parses the decimal `Display` of an id without allocating.
#[cold]
fn id_from_display(id: &tokio::task::Id) -> NonZeroU64 {
    struct Digits {
        value: u64,
        ok: bool,
    }
    impl fmt::Write for Digits {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for b in s.bytes() {
                let d = b.wrapping_sub(b'0');
                match (d < 10).then(|| self.value.checked_mul(10).and_then(|v| v.checked_add(u64::from(d)))) {
                    Some(Some(v)) => self.value = v,
                    _ => self.ok = false,
                }
            }
            Ok(())
        }
    }
    let mut d = Digits { value: 0, ok: true };
    let _ = write!(d, "{id}");
    match NonZeroU64::new(d.value) {
        Some(v) if d.ok => v,
        _ => panic!("framealloc-tokio: cannot read tokio task id {id} as a number"),
    }
}

/// Registers the identity source when the program starts, before `main`, so that code using
/// only the re-exported [`TaskAlloc`](crate::TaskAlloc) / [`AsyncPoolGuard`](crate::AsyncPoolGuard)
/// in plain `tokio::spawn` tasks is covered without calling [`init`]. It runs [`init`]: a
/// `OnceLock` initialisation around one compare-and-swap (no allocation, no I/O, nothing of std
/// that needs `main` to have started).
///
/// The static is `#[used]`, which makes rustc keep it and hand it to the linker even when the
/// program references nothing else of this crate; the linker keeps init sections. Verified on
/// Linux by the workspace test `tests/identity_at_start.rs` (debug, release, thin and fat LTO)
/// and by a binary that names only `framealloc::tokio::AsyncPoolGuard`. The macOS and Windows
/// sections are the ones the `ctor` crate uses; they are not exercised here.
mod at_start {
    extern "C" fn register_at_start() {
        let _ = super::init();
    }

    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly",
        target_os = "illumos",
        target_os = "solaris"
    ))]
    #[used]
    #[link_section = ".init_array"]
    static REGISTER_AT_START: extern "C" fn() = register_at_start;

    #[cfg(any(target_os = "macos", target_os = "ios"))]
    #[used]
    #[link_section = "__DATA,__mod_init_func"]
    static REGISTER_AT_START: extern "C" fn() = register_at_start;

    #[cfg(windows)]
    #[used]
    #[link_section = ".CRT$XCU"]
    static REGISTER_AT_START: extern "C" fn() = register_at_start;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_id_outside_a_task() {
        assert_eq!(current_task_id(), None);
    }

    #[test]
    fn hash_capture_equals_display() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (a, b) = rt.block_on(async {
            let a = tokio::spawn(async { (current_task_id(), tokio::task::id()) }).await.unwrap();
            let b = tokio::spawn(async { (current_task_id(), tokio::task::id()) }).await.unwrap();
            (a, b)
        });
        for (n, id) in [a, b] {
            let n = n.expect("inside a task");
            assert_eq!(n.to_string(), id.to_string());
            assert_eq!(n, id_from_display(&id));
            let mut h = Capture { value: 0, u64_writes: 0, other_writes: false };
            id.hash(&mut h);
            assert_eq!((h.u64_writes, h.other_writes), (1, false), "Id hashes as one write_u64");
        }
        assert_ne!(a.0, b.0, "two tasks, two ids");
        assert_eq!(HASH_IS_DISPLAY.get(), Some(&true), "the first id read decided for the capture");
    }

    #[test]
    fn a_capture_that_differs_from_display_is_not_trusted() {
        let n = |v| NonZeroU64::new(v);
        assert!(hash_matches_display(n(7), n(7).unwrap()));
        assert!(!hash_matches_display(n(8), n(7).unwrap()), "another number: parse Display");
        assert!(!hash_matches_display(None, n(7).unwrap()), "no single write_u64: parse Display");
    }

    /// The registration's safety argument relies on ids not being reused (see `register`):
    /// tasks that ended, with their JoinHandles gone, must not hand their id on.
    #[test]
    fn ids_of_ended_tasks_are_not_reused() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let ids: Vec<u64> = rt.block_on(async {
            let mut ids = Vec::new();
            for _ in 0..200 {
                ids.push(tokio::spawn(async { current_task_id().unwrap().get() }).await.unwrap());
            }
            ids
        });
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn init_registers_tokio_ids() {
        assert!(init());
        assert!(init(), "idempotent");
    }
}
