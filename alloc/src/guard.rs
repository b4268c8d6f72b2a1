//! [`AsyncPoolGuard`]: a scope of the current task's heap.
//!
//! Inside a task with a heap slot (framealloc's runtime, `framealloc::tokio::spawn`) the guard
//! marks a scope on that heap. Elsewhere (a plain `tokio::spawn` task, a plain thread) the
//! first guard of an identity creates a heap for it, found by `pool_*` through a registry keyed
//! by (`SmartAlloc`, identity): a tokio task keeps its guard heap when it moves between worker
//! threads. That heap is used under its lock (its owner is [`NOBODY`]), since a guard may be
//! dropped on another thread than the one allocating.
//!
//! Every `pool_*` allocation made while a guard is the innermost one counts in its [`Scope`];
//! freeing it uncounts it. What the scope allocated and freed is back on the heap's free lists
//! already; what is still alive when the guard drops has escaped: it stays valid, keeps its
//! heap alive, and is counted in `AllocStats::guard_escapes`.

use crate::heap::HeapCore;
use crate::identity::{self, NOBODY};
use crate::shared::Shared;
use crate::stats::Kind;
use crate::SmartAlloc;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Live allocations of one guard's scope.
#[derive(Debug, Default)]
pub(crate) struct Scope {
    live: AtomicUsize,
    ended: AtomicBool,
}

impl Scope {
    pub(crate) fn enter(&self) {
        self.live.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn leave(&self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
}

struct GuardHeap {
    heap: NonNull<HeapCore>,
    scopes: Vec<Arc<Scope>>,
}

// SAFETY: the heap is used only under its own lock (owner NOBODY) and the registry's.
unsafe impl Send for GuardHeap {}

static REGISTRY: Mutex<BTreeMap<(u64, u64), GuardHeap>> = Mutex::new(BTreeMap::new());
static REGISTERED: AtomicUsize = AtomicUsize::new(0);

/// Where a `pool_*` call allocates: a heap with one escapable handle already counted for the
/// caller, and the innermost guard scope, if any.
pub(crate) struct Target {
    pub(crate) heap: NonNull<HeapCore>,
    pub(crate) scope: Option<Arc<Scope>>,
}

/// The guard heap of the current identity for `shared`, if a guard is open there.
#[inline]
pub(crate) fn registry_target(shared: &Shared) -> Option<Target> {
    if REGISTERED.load(Ordering::Acquire) == 0 {
        return None;
    }
    registry_lookup(shared)
}

#[cold]
fn registry_lookup(shared: &Shared) -> Option<Target> {
    let key = (shared.id, identity::current());
    let reg = REGISTRY.lock();
    let g = reg.get(&key)?;
    // SAFETY: the heap stays registered (and alive) while we hold the registry lock; counting
    // a handle now keeps it alive after we let go.
    unsafe { g.heap.as_ref() }.retain_handle();
    Some(Target { heap: g.heap, scope: g.scopes.last().cloned() })
}

/// The innermost open scope of a heap the caller owns, dropping ended ones.
///
/// # Safety
/// The caller is the owner of `heap`.
#[inline]
pub(crate) unsafe fn owned_scope(heap: &HeapCore) -> Option<Arc<Scope>> {
    // SAFETY: owner, per the caller.
    let scopes = unsafe { &mut heap.local().scopes };
    while scopes.last().is_some_and(|s| s.ended()) {
        scopes.pop();
    }
    scopes.last().cloned()
}

enum Binding {
    /// Scope on the heap of the task whose slot was current at creation.
    Slot,
    /// Scope on a registry guard heap.
    Registry { key: (u64, u64) },
}

/// RAII scope for `pool_*` allocations of the current task. See the module docs.
///
/// `Send + Sync`: a guard held across `.await` keeps working when the task moves to another
/// worker thread, and may be dropped anywhere.
///
/// ```
/// use framealloc_alloc::{AsyncPoolGuard, SmartAlloc};
/// let alloc = SmartAlloc::new(Default::default());
/// let guard = AsyncPoolGuard::new(&alloc);
/// let kept = {
///     let a = alloc.pool_box(1u64);
///     let b = alloc.pool_box(2u64);
///     assert_eq!(guard.escaped(), 2);
///     drop(a);
///     b
/// };
/// assert_eq!(guard.escaped(), 1); // `kept` outlives the scope
/// drop(guard);
/// assert_eq!(*kept, 2);           // escaped allocations stay valid
/// assert_eq!(alloc.stats().guard_escapes, 1);
/// ```
pub struct AsyncPoolGuard {
    scope: Arc<Scope>,
    shared: Arc<Shared>,
    binding: Binding,
}

impl AsyncPoolGuard {
    /// Opens a scope on the current task's heap for `alloc`.
    pub fn new(alloc: &SmartAlloc) -> Self {
        let shared = alloc.shared().clone();
        let scope = Arc::new(Scope::default());
        let in_slot = identity::with_slot(|slot| {
            let slot = slot?;
            let heap = slot.heap_for(&shared);
            // SAFETY: the slot is current, so we run as its task, the heap's owner.
            unsafe { heap.as_ref().local().scopes.push(scope.clone()) };
            Some(())
        });
        let binding = if in_slot.is_some() {
            Binding::Slot
        } else {
            let id = identity::current();
            let key = (shared.id, id);
            let mut reg = REGISTRY.lock();
            let g = reg.entry(key).or_insert_with(|| {
                REGISTERED.fetch_add(1, Ordering::AcqRel);
                let kind = if identity::is_task(id) { Kind::Task } else { Kind::Pool };
                GuardHeap { heap: HeapCore::create(&shared, kind, NOBODY), scopes: Vec::new() }
            });
            g.scopes.push(scope.clone());
            Binding::Registry { key }
        };
        Self { scope, shared, binding }
    }

    /// Allocations made in this scope that are still alive now.
    pub fn escaped(&self) -> usize {
        self.scope.live.load(Ordering::Acquire)
    }
}

impl Drop for AsyncPoolGuard {
    fn drop(&mut self) {
        self.scope.ended.store(true, Ordering::Release);
        let escaped = self.scope.live.load(Ordering::Acquire) as u64;
        self.shared.guard_escapes.fetch_add(escaped, Ordering::Relaxed);
        if let Binding::Registry { key } = self.binding {
            let mut reg = REGISTRY.lock();
            let Some(g) = reg.get_mut(&key) else { return };
            g.scopes.retain(|s| !Arc::ptr_eq(s, &self.scope));
            if !g.scopes.is_empty() {
                return;
            }
            let g = reg.remove(&key).expect("entry present");
            REGISTERED.fetch_sub(1, Ordering::AcqRel);
            drop(reg);
            // SAFETY: the heap's owner is NOBODY, so no owner identity can touch it, and it
            // left the registry, so it is released exactly once.
            unsafe { HeapCore::release_owner(g.heap) };
        }
    }
}

impl core::fmt::Debug for AsyncPoolGuard {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AsyncPoolGuard").field("escaped", &self.escaped()).finish()
    }
}
