//! Who is running: the *identity* that owns a heap's fast path.
//!
//! A heap's plain (non-atomic) state may be touched only by its owner. The owner is an
//! identity, a `u64` that is current on at most one thread at any moment:
//!
//! * a task of an executor, while that executor polls it inside [`TaskContext::enter`](crate::hook::TaskContext::enter)
//!   (`&mut TaskContext` makes two concurrent entries impossible, and entry is closure-scoped
//!   so it cannot be leaked past its borrow);
//! * else the task an external source reports (tokio's `task::try_id()`, registered by
//!   `framealloc-tokio` through [`set_external_identity_source`], whose contract is the same);
//! * else the thread itself.
//!
//! The three kinds live in disjoint ranges (top two bits), and every id is used once, so an
//! identity equal to a heap's owner means "the owner is running here, and nowhere else". A
//! task that migrates between threads keeps its identity; the executor's hand-off between
//! threads is the happens-before edge that makes the plain state safe to touch again.
//!
//! A heap owned by a *thread* (a thread's pool, a `TaskAlloc` made on a plain thread) is never
//! touched from another thread under that identity, so everything that runs on that thread
//! may take its fast path, a task polled there included: [`is_owner`] and [`is_owner_cached`]
//! accept the calling thread's own identity as well as the current one. Without this a plain
//! tokio task, whose identity is tokio's task id, would lock the pool of the very thread it
//! runs on; and once tokio's source is registered (where no identity can be cached for a
//! plain thread) every `pool_*` call of a plain thread would ask tokio first. This extends
//! DESIGN.md's rule ("an allocation or free whose caller's current identity equals the owner
//! takes the plain path"): what makes the plain path safe is that the owner runs in one place
//! at a time, and a thread's own identity only ever runs on that thread.
//!
//! The same context answers "is a task being polled?" for FA701, and keeps a pointer to the
//! polled task's heap slot for the placement layer (`place::task`), opaque here: this module
//! is a leaf that names nothing of the crate.

use core::cell::Cell;
use core::num::NonZeroU64;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

const KIND_SHIFT: u32 = 62;
const ID_MASK: u64 = (1 << KIND_SHIFT) - 1;
const KIND_TASK: u64 = 1 << KIND_SHIFT;
const KIND_EXTERNAL: u64 = 2 << KIND_SHIFT;
const KIND_THREAD: u64 = 3 << KIND_SHIFT;

/// Identity of nobody: a released heap has this owner, so every caller takes the slow path.
pub(crate) const NOBODY: u64 = 0;

static NEXT_TASK: AtomicU64 = AtomicU64::new(1);
static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

struct Context {
    /// The answer of [`current`] when it needs no other source: the task being polled by
    /// [`enter_task`]; else this thread's identity, cached once no external source is
    /// registered; else 0.
    fast: Cell<u64>,
    /// The heap slot of that task, as [`enter_task`] was given it (null outside a task).
    slot: Cell<*const ()>,
    /// This thread's identity, assigned on first use.
    thread: Cell<u64>,
}

impl Context {
    /// A thread's context before anything ran on it.
    const fn new() -> Self {
        Self { fast: Cell::new(0), slot: Cell::new(core::ptr::null()), thread: Cell::new(0) }
    }
}

#[cfg(not(loom))]
thread_local! {
    static CONTEXT: Context = const { Context::new() };
}

// Under loom the model's threads are not OS threads: a std thread-local would be shared by
// them all (and outlive a model iteration), so who is current would not be per model thread.
// loom's are, and start afresh in every iteration. (The id counters below stay process-wide
// statics: an identity is still used once, which is all the models rely on.)
#[cfg(loom)]
loom::thread_local! {
    static CONTEXT: Context = Context::new();
}

type Source = fn() -> Option<NonZeroU64>;
static EXTERNAL: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Registers the external identity source (tokio's task id). Only the first registration
/// takes effect; later ones return `false` and change nothing, so identities from two
/// sources can never be mixed.
///
/// # Safety
/// While `source` returns `Some(id)` on a thread, no other thread may be returning the same
/// `id` at the same time; and whenever the same `id` is current first on one thread and later
/// on another (a task moving between threads, or a later task reusing the id of one that
/// ended), everything done under it on the first happens-before what is done under it on the
/// second. Tokio's `task::try_id()` has these properties: a task is polled (and its future and
/// output dropped) by one thread at a time under its scheduler's synchronisation, and ids come
/// from a process-wide counter, so they are not reused in practice.
pub unsafe fn set_external_identity_source(source: Source) -> bool {
    let set = EXTERNAL
        .compare_exchange(core::ptr::null_mut(), source as *mut (), Ordering::AcqRel, Ordering::Acquire)
        .is_ok();
    // This thread's cached identity gives way to the source (other threads that cached theirs
    // keep it: see `current`).
    let _ = CONTEXT.try_with(|c| {
        if c.fast.get() & !ID_MASK == KIND_THREAD {
            c.fast.set(0);
        }
    });
    set
}

#[inline]
fn external() -> Option<u64> {
    let f = EXTERNAL.load(Ordering::Acquire);
    if f.is_null() {
        return None;
    }
    // SAFETY: the only non-null value ever stored is a `Source` fn pointer (see above).
    let f: Source = unsafe { core::mem::transmute::<*mut (), Source>(f) };
    f().map(|id| KIND_EXTERNAL | (id.get() & ID_MASK))
}

/// Task numbers handed out per thread in blocks of this many, so that spawning takes no
/// atomic read-modify-write but one per block.
const TASK_BLOCK: u64 = 1024;

#[cfg(not(loom))]
thread_local! {
    /// The rest of this thread's current block of task numbers: `(next, end)`.
    static TASK_NUMBERS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

// Per model thread under loom, as `CONTEXT`.
#[cfg(loom)]
loom::thread_local! {
    static TASK_NUMBERS: Cell<(u64, u64)> = Cell::new((0, 0));
}

/// A task number never handed out before (in `1..2^62`).
#[inline]
fn fresh_task_number() -> u64 {
    let taken = TASK_NUMBERS.try_with(|n| {
        let (next, end) = n.get();
        if next < end {
            n.set((next + 1, end));
            return Some(next);
        }
        let start = NEXT_TASK.fetch_add(TASK_BLOCK, Ordering::Relaxed);
        n.set((start + 1, start + TASK_BLOCK));
        Some(start)
    });
    match taken {
        Ok(Some(id)) => id & ID_MASK,
        // During thread teardown: one number from the shared counter.
        _ => NEXT_TASK.fetch_add(1, Ordering::Relaxed) & ID_MASK,
    }
}

fn fresh_thread_identity() -> u64 {
    KIND_THREAD | (NEXT_THREAD.fetch_add(1, Ordering::Relaxed) & ID_MASK)
}

#[cold]
fn assign_thread_identity(c: &Context) -> u64 {
    let id = fresh_thread_identity();
    c.thread.set(id);
    id
}

/// When the thread-local is gone (thread teardown): an identity used once and never again, so
/// it matches no heap's owner and no heap made with it can ever take the fast path.
#[cold]
fn teardown_identity() -> u64 {
    fresh_thread_identity()
}

/// The identity of whoever is running on this thread now. Never [`NOBODY`].
///
/// One thread-local load in the common cases (a task of ours, or a plain thread while no
/// external source is registered). A thread that cached its own identity before an external
/// source was registered keeps it; that is sound (a thread's identity is current on that
/// thread only) and only changes which heap a plain tokio task's `pool_*` calls find. The
/// tokio layer registers at program start, before any thread can have cached anything.
#[inline]
pub(crate) fn current() -> u64 {
    CONTEXT
        .try_with(|c| {
            let f = c.fast.get();
            if f != 0 {
                return f;
            }
            current_uncached(c)
        })
        .unwrap_or_else(|_| teardown_identity())
}

/// A plain tokio task (asked on every call: nothing tells us when tokio switches tasks on
/// this thread), else this thread. Out of line to keep `current` small where it is inlined,
/// and lean: the thread case is out of line again.
#[inline(never)]
fn current_uncached(c: &Context) -> u64 {
    match external() {
        Some(e) => e,
        None => thread_uncached(c),
    }
}

/// This thread's identity when no task is running, cached in `fast` if no external source
/// is registered.
#[cold]
#[inline(never)]
fn thread_uncached(c: &Context) -> u64 {
    let t = thread_of(c);
    if EXTERNAL.load(Ordering::Acquire).is_null() {
        c.fast.set(t);
    }
    t
}

#[inline]
fn thread_of(c: &Context) -> u64 {
    let id = c.thread.get();
    if id != 0 {
        id
    } else {
        assign_thread_identity(c)
    }
}

/// The identity [`current`] would return if it is cached for this thread (a task of ours
/// being polled, or a plain thread once no external source can apply), else [`NOBODY`]: one
/// thread-local load, never a call.
#[inline(always)]
pub(crate) fn current_cached() -> u64 {
    CONTEXT.try_with(|c| c.fast.get()).unwrap_or(NOBODY)
}

/// `true` if the caller may act as `owner` (a heap's owner, not [`NOBODY`]): `owner` is the
/// identity [`current`] returns, or this thread's own identity (see the module docs).
#[inline]
pub(crate) fn is_owner(owner: u64) -> bool {
    // No identity is NOBODY: a heap without an owner (a registered guard's, a released one)
    // need not ask the external source.
    if owner == NOBODY {
        return false;
    }
    CONTEXT
        .try_with(|c| {
            let fast = c.fast.get();
            if owner == fast || owner == c.thread.get() {
                return true;
            }
            // `fast`, when set, is all `current` would say; else ask the external source.
            fast == 0 && owner == current_uncached(c)
        })
        // Thread teardown: `current` is then an identity no heap has.
        .unwrap_or(false)
}

/// [`is_owner`] from this thread's cached identities alone (the current one if cached, and
/// the thread's own): two thread-local loads, never a call, so that fast paths stay leaf
/// code. `false` may still be the owner (a plain tokio task's own heap).
#[inline(always)]
pub(crate) fn is_owner_cached(owner: u64) -> bool {
    owner != NOBODY && CONTEXT.try_with(|c| owner == c.fast.get() || owner == c.thread.get()).unwrap_or(false)
}

/// This thread's own identity (even while a task is polled on it).
#[inline]
pub(crate) fn current_thread() -> u64 {
    CONTEXT.try_with(thread_of).unwrap_or_else(|_| teardown_identity())
}

/// `true` while a task of any executor is being polled on this thread (FA701).
#[inline]
pub(crate) fn in_task() -> bool {
    CONTEXT.try_with(|c| c.fast.get() & !ID_MASK == KIND_TASK).unwrap_or(false) || external().is_some()
}

/// The slot pointer the task being polled on this thread was entered with ([`enter_task`]),
/// or null outside a task of ours.
#[inline(always)]
pub(crate) fn current_slot() -> *const () {
    CONTEXT.try_with(|c| c.slot.get()).unwrap_or(core::ptr::null())
}

/// Runs `f` as the task `identity` (from [`new_task_identity`]), with `slot` as its
/// [`current_slot`]; restores the previous task and slot on return, also on panic.
///
/// The caller guarantees the identity rule (see the module docs): `identity` is current on no
/// other thread during the call, and what ran under it before happens-before this call.
/// `place::task::TaskContext::enter` does it with `&mut`.
#[inline]
pub(crate) fn enter_task<R>(identity: u64, slot: *const (), f: impl FnOnce() -> R) -> R {
    struct Restore(u64, *const ());
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = CONTEXT.try_with(|c| {
                c.fast.set(self.0);
                c.slot.set(self.1);
            });
        }
    }
    let prev = CONTEXT.try_with(|c| (c.fast.replace(identity), c.slot.replace(slot))).unwrap_or((0, core::ptr::null()));
    let _restore = Restore(prev.0, prev.1);
    f()
}

/// A task identity never handed out before.
#[inline]
pub(crate) fn new_task_identity() -> u64 {
    KIND_TASK | fresh_task_number()
}

/// The number error messages show for `identity` (a task's number, a thread's).
pub(crate) fn number(identity: u64) -> u64 {
    identity & ID_MASK
}

/// Human-readable owner id for error messages: `Some(task number)` for tasks.
pub(crate) fn describe(identity: u64) -> String {
    let id = identity & ID_MASK;
    match identity & !ID_MASK {
        KIND_TASK => format!("task {id}"),
        KIND_EXTERNAL => format!("tokio task {id}"),
        KIND_THREAD => format!("thread #{id} (no task)"),
        _ => "nobody".to_string(),
    }
}

/// The external source's id (tokio's task id) of the task polled on this thread now, if
/// `identity` is a task of ours being polled here: a `framealloc::tokio::spawn` task is then
/// named by tokio's id as well as its task number. For error messages only (cold).
#[cold]
pub(crate) fn external_alias(identity: u64) -> Option<u64> {
    if identity & !ID_MASK != KIND_TASK || current_cached() != identity {
        return None;
    }
    external().map(|e| e & ID_MASK)
}

/// `true` if `identity` names a task (ours or external), not a bare thread.
pub(crate) fn is_task(identity: u64) -> bool {
    matches!(identity & !ID_MASK, KIND_TASK | KIND_EXTERNAL)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn identities_differ_by_kind_and_thread() {
        let here = current();
        assert_eq!(here, current_thread());
        assert!(!is_task(here));
        let other = std::thread::spawn(current).join().unwrap();
        assert_ne!(here, other);
    }

    #[test]
    fn enter_sets_and_restores_task_identity_and_slot() {
        let (a, b) = (new_task_identity(), new_task_identity());
        let (slot_a, slot_b) = (&1u8 as *const u8 as *const (), &2u8 as *const u8 as *const ());
        let outer = current();
        assert!(!in_task() && current_slot().is_null());
        let (ia, ib, sb, ia2, sa) = enter_task(a, slot_a, || {
            let ia = current();
            let (ib, sb) = enter_task(b, slot_b, || (current(), current_slot()));
            (ia, ib, sb, current(), current_slot())
        });
        assert!(is_task(ia) && is_task(ib));
        assert_eq!((ia, ib, sb), (a, b, slot_b));
        assert_ne!(ia, ib);
        assert_eq!((ia2, sa), (a, slot_a), "nested enter restores the outer task");
        assert_eq!(current(), outer);
        assert!(!in_task() && current_slot().is_null());
    }

    #[test]
    fn enter_restores_on_panic() {
        let outer = current();
        let r = std::panic::catch_unwind(|| enter_task(new_task_identity(), core::ptr::null(), || panic!("boom")));
        assert!(r.is_err());
        assert_eq!(current(), outer);
        assert!(!in_task());
    }
}
