//! The request handlers of the `tokio_compat` bench, shared with
//! `examples/tokio_handler_probe.rs` (which counts their instructions under callgrind), so that
//! both measure exactly the same code.
//!
//! Each handler is one task's work: 64 allocations made, held across one
//! `tokio::task::yield_now().await`, read back and freed. `bytes_*`: 64 byte buffers of 16 to
//! 256 bytes (`SIZES`), one byte pushed into each. `objects_*`: 16 each of 16, 64, 128 and
//! 256-byte request-state objects. `no_alloc` is the same shape on inline arrays: tokio's own
//! cost. Every handler returns the sum of the first bytes, `ALLOCS * 7`.
//!
//! `small_*` are small tasks instead: one 64-byte request-state object, held across the yield
//! (`small_no_alloc` keeps it inline). They return its first byte times `ALLOCS`, the same
//! `ALLOCS * 7`, so that every workload has one expected sum.

#![allow(dead_code)] // each includer uses its own subset

use allocator_api2::alloc::{AllocError, Allocator};
use framealloc::{SmartAlloc, TaskAlloc};
use std::alloc::{GlobalAlloc, Layout};
use std::cell::RefCell;
use std::hint::black_box;
use std::ptr::NonNull;

/// Tasks per batch.
pub const TASKS: usize = 256;
/// Allocations per task.
pub const ALLOCS: usize = 64;

/// 64 sizes from 16 to 256 bytes.
pub const SIZES: [usize; ALLOCS] = {
    let mut s = [0; ALLOCS];
    let mut i = 0;
    while i < ALLOCS {
        s[i] = 16 + (i * 61) % 241;
        i += 1;
    }
    s
};

/// Puts glibc's `malloc` (the system allocator, and tokio's for its own task cells in every
/// case) in the state of a process that has run for a while, whatever launched it: one large
/// block, `mmap`ed, freed. glibc then raises its dynamic mmap threshold to the block's size and
/// its trim threshold to twice that (`mallopt(3)`), so it stops handing the top of its heap
/// back to the kernel after every batch of tasks and faulting it in again.
///
/// Without it the results depend on the launcher. `cargo bench` runs in this state already
/// (criterion runs `cargo metadata` at start-up and frees its large output); the same binary
/// started by hand keeps the 128 KiB default. There, trimming adds about 170–230 µs per batch
/// to every case (tokio's own task cells come from the system allocator too), which makes
/// tokio's floor about 2.3x slower and pulls every ratio towards 1 (the system allocator's
/// from about 2.2x to 1.5x). Any process that has freed a block above 128 KiB, as
/// long-running servers do, is in the settled state. Elsewhere than glibc this is one
/// harmless allocation.
pub fn settle_system_allocator() {
    drop(black_box(Vec::<u8>::with_capacity(4 << 20)));
}

/// mimalloc as an `allocator-api2` allocator.
#[derive(Clone, Copy)]
pub struct Mi;

// SAFETY: blocks come from mimalloc with their layout and stay valid until `deallocate`;
// zero-sized requests get a dangling, aligned pointer and are never passed to mimalloc.
unsafe impl Allocator for Mi {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            // Alignment is a non-zero power of two: a valid dangling address.
            let p = NonNull::new(layout.align() as *mut u8).ok_or(AllocError)?;
            return Ok(NonNull::slice_from_raw_parts(p, 0));
        }
        // SAFETY: `layout` has a non-zero size.
        let p = unsafe { GlobalAlloc::alloc(&mimalloc::MiMalloc, layout) };
        NonNull::new(p).map(|p| NonNull::slice_from_raw_parts(p, layout.size())).ok_or(AllocError)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: `ptr` came from `allocate` with this non-zero `layout` (caller).
            unsafe { GlobalAlloc::dealloc(&mimalloc::MiMalloc, ptr.as_ptr(), layout) };
        }
    }
}

thread_local! {
    /// Reset bump arenas of tasks that ended on this thread, for the next tasks.
    static BUMPS: RefCell<Vec<bumpalo::Bump>> = const { RefCell::new(Vec::new()) };
}

/// How many reset arenas a thread keeps (as many as framealloc parks task heaps per thread).
const BUMPS_KEPT: usize = 256;

/// A task's own bumpalo arena: the best case of a per-task arena, a lower bound for any
/// per-task heap. An allocation is a bump, a free is nothing; the whole arena is reset at the
/// task's end and kept by the thread for its next task (so, warm, no task allocates a chunk).
/// Unlike a `pool_*` allocation, nothing allocated in it can outlive the task or be freed
/// early.
pub struct TaskBump(Option<bumpalo::Bump>);

impl TaskBump {
    /// A reset arena from this thread's cache, else a new one.
    pub fn take() -> Self {
        Self(Some(BUMPS.with(|b| b.borrow_mut().pop()).unwrap_or_default()))
    }

    /// The arena.
    pub fn bump(&self) -> &bumpalo::Bump {
        self.0.as_ref().expect("present until drop")
    }
}

impl Drop for TaskBump {
    /// Resets the arena (keeping its largest chunk) and gives it to the current thread.
    fn drop(&mut self) {
        let mut bump = self.0.take().expect("present until drop");
        bump.reset();
        BUMPS.with(|b| {
            let mut b = b.borrow_mut();
            if b.len() < BUMPS_KEPT {
                b.push(bump);
            }
        });
    }
}

pub async fn no_alloc() -> u64 {
    let held: [[u8; 16]; ALLOCS] = [[7; 16]; ALLOCS];
    tokio::task::yield_now().await;
    black_box(&held).iter().map(|v| u64::from(v[0])).sum()
}

/// An array of `$n` values, the `i`th made by `$make` (with `$i` bound to `i`).
///
/// A loop, not `std::array::from_fn`: `from_fn` calls a closure for each element, and whether
/// the compiler inlines it depends on the rest of the binary. Adding one case to the bench
/// left it out of line in `bytes_pool`: every vector then came back from the call through
/// memory (see the README on store forwarding), and the case ran 25% slower (1,460 more
/// instructions per task) with the library unchanged. Here the element is built in the loop
/// body itself, whatever else is compiled. `$make` must not panic (nothing here drops the
/// elements made before a panic) and must not `.await`.
macro_rules! fill {
    ($n:expr, |$i:ident| $make:expr) => {{
        let mut out = [const { std::mem::MaybeUninit::uninit() }; $n];
        for ($i, slot) in out.iter_mut().enumerate() {
            slot.write($make);
        }
        // SAFETY: every element was written just above.
        unsafe { assume_init(out) }
    }};
}

/// The array of `T`s that `a` holds.
///
/// # Safety
/// Every element of `a` is initialised.
#[inline(always)]
unsafe fn assume_init<T, const N: usize>(a: [std::mem::MaybeUninit<T>; N]) -> [T; N] {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`, every element is initialised (caller),
    // and `a` is not used again (`MaybeUninit` drops nothing).
    unsafe { std::mem::transmute_copy(&a) }
}

/// The byte-buffer workload: 64 buffers (`SIZES`) made with `$make(capacity)`, one byte
/// pushed into each, held across one yield, read back and freed.
macro_rules! bytes_handler {
    ($make:expr) => {{
        let held = fill!(ALLOCS, |i| {
            let mut v = $make(SIZES[i]);
            v.push(7);
            v
        });
        tokio::task::yield_now().await;
        black_box(&held).iter().map(|v| u64::from(v[0])).sum()
    }};
}

pub async fn bytes_system() -> u64 {
    bytes_handler!(Vec::<u8>::with_capacity)
}

pub async fn bytes_mimalloc() -> u64 {
    bytes_handler!(|n| allocator_api2::vec::Vec::<u8, Mi>::with_capacity_in(n, Mi))
}

pub async fn bytes_pool(alloc: SmartAlloc) -> u64 {
    bytes_handler!(|n| alloc.pool_vec_with_capacity::<u8>(n))
}

/// [`bytes_pool`] for a plain `tokio::spawn` task (the thread's pool), as a function of its
/// own, so that each case's handler is compiled for its own spawn path alone.
pub async fn bytes_thread_pool(alloc: SmartAlloc) -> u64 {
    bytes_handler!(|n| alloc.pool_vec_with_capacity::<u8>(n))
}

pub async fn bytes_bumpalo() -> u64 {
    let arena = TaskBump::take();
    // bumpalo's `Vec` borrows the arena (`!Sync`), which a `Send` future cannot hold across
    // the yield: each buffer is kept as the arena slice it becomes, its capacity left in the
    // arena (as it would be anyway).
    let held = fill!(ALLOCS, |i| {
        let mut v = bumpalo::collections::Vec::<u8>::with_capacity_in(SIZES[i], arena.bump());
        v.push(7);
        v.into_bump_slice_mut()
    });
    tokio::task::yield_now().await;
    black_box(&held).iter().map(|v| u64::from(v[0])).sum()
}

pub async fn bytes_task_alloc(alloc: SmartAlloc) -> u64 {
    let task = TaskAlloc::new(&alloc);
    bytes_handler!(|n| task.alloc_vec_with_capacity::<u8>(n))
}

/// The small-task workload: one 64-byte request-state object made with `$make`, held across
/// one yield, read back and freed.
macro_rules! small_handler {
    ($make:expr) => {{
        let state = $make([7u8; 64]);
        tokio::task::yield_now().await;
        u64::from(black_box(&state)[0]) * ALLOCS as u64
    }};
}

pub async fn small_no_alloc() -> u64 {
    small_handler!(|v| v)
}

pub async fn small_system() -> u64 {
    small_handler!(Box::new)
}

pub async fn small_mimalloc() -> u64 {
    small_handler!(|v| allocator_api2::boxed::Box::new_in(v, Mi))
}

pub async fn small_pool(alloc: SmartAlloc) -> u64 {
    small_handler!(|v| alloc.pool_box(v))
}

/// [`small_pool`] for a plain `tokio::spawn` task (see [`bytes_thread_pool`]).
pub async fn small_thread_pool(alloc: SmartAlloc) -> u64 {
    small_handler!(|v| alloc.pool_box(v))
}

pub async fn small_bumpalo() -> u64 {
    let arena = TaskBump::take();
    small_handler!(|v| arena.bump().alloc(v))
}

pub async fn small_task_alloc(alloc: SmartAlloc) -> u64 {
    let task = TaskAlloc::new(&alloc);
    small_handler!(|v| task.alloc_box(v))
}

/// The object workload: 64 request-state objects of four fixed sizes (16 each of 16, 64, 128
/// and 256 bytes), made with `$make`, held across one yield, read back and freed.
macro_rules! objects_handler {
    ($make:expr) => {{
        let a = fill!(16, |_i| $make([7u8; 16]));
        let b = fill!(16, |_i| $make([7u8; 64]));
        let c = fill!(16, |_i| $make([7u8; 128]));
        let d = fill!(16, |_i| $make([7u8; 256]));
        tokio::task::yield_now().await;
        let first = |x: &[u8]| u64::from(x[0]);
        black_box(&a).iter().map(|x| first(&x[..])).sum::<u64>()
            + black_box(&b).iter().map(|x| first(&x[..])).sum::<u64>()
            + black_box(&c).iter().map(|x| first(&x[..])).sum::<u64>()
            + black_box(&d).iter().map(|x| first(&x[..])).sum::<u64>()
    }};
}

pub async fn objects_system() -> u64 {
    objects_handler!(Box::new)
}

pub async fn objects_mimalloc() -> u64 {
    objects_handler!(|v| allocator_api2::boxed::Box::new_in(v, Mi))
}

pub async fn objects_pool(alloc: SmartAlloc) -> u64 {
    objects_handler!(|v| alloc.pool_box(v))
}

/// [`objects_pool`] for a plain `tokio::spawn` task (see [`bytes_thread_pool`]).
pub async fn objects_thread_pool(alloc: SmartAlloc) -> u64 {
    objects_handler!(|v| alloc.pool_box(v))
}

pub async fn objects_bumpalo() -> u64 {
    let arena = TaskBump::take();
    objects_handler!(|v| arena.bump().alloc(v))
}

pub async fn objects_task_alloc(alloc: SmartAlloc) -> u64 {
    let task = TaskAlloc::new(&alloc);
    objects_handler!(|v| task.alloc_box(v))
}

/// Items a growth-workload request reads (`u32`s, pushed one by one into an empty vector).
pub const GROWTH_ITEMS: usize = ALLOCS;
/// 64-byte parts a growth-workload request keeps boxed.
pub const GROWTH_PARTS: usize = 16;

/// The growth workload, the guide's request pattern: a request's items pushed one by one into
/// a vector that starts empty and grows (4, 8, 16, 32, 64: five buffers, four copies), and
/// `GROWTH_PARTS` 64-byte parts boxed; all held across one yield, read back and freed.
/// `$vec` makes the empty vector, `$boxed` a box. Returns the items' sum, `ALLOCS * 7`.
macro_rules! growth_handler {
    ($vec:expr, $boxed:expr) => {{
        let mut items = $vec;
        for _ in 0..GROWTH_ITEMS {
            items.push(7u32);
        }
        let parts = fill!(GROWTH_PARTS, |_i| $boxed([7u8; 64]));
        tokio::task::yield_now().await;
        black_box(&items).iter().map(|&x| u64::from(x)).sum::<u64>()
            + black_box(&parts).iter().map(|p| u64::from(p[0] - 7)).sum::<u64>()
    }};
}

pub async fn growth_no_alloc() -> u64 {
    let items = [7u32; GROWTH_ITEMS];
    let parts = [[7u8; 64]; GROWTH_PARTS];
    tokio::task::yield_now().await;
    black_box(&items).iter().map(|&x| u64::from(x)).sum::<u64>()
        + black_box(&parts).iter().map(|p| u64::from(p[0] - 7)).sum::<u64>()
}

pub async fn growth_system() -> u64 {
    growth_handler!(Vec::<u32>::new(), Box::new)
}

pub async fn growth_mimalloc() -> u64 {
    growth_handler!(allocator_api2::vec::Vec::<u32, Mi>::new_in(Mi), |v| allocator_api2::boxed::Box::new_in(v, Mi))
}

pub async fn growth_pool(alloc: SmartAlloc) -> u64 {
    growth_handler!(alloc.pool_vec::<u32>(), |v| alloc.pool_box(v))
}

/// [`growth_pool`] for a plain `tokio::spawn` task (see [`bytes_thread_pool`]).
pub async fn growth_thread_pool(alloc: SmartAlloc) -> u64 {
    growth_handler!(alloc.pool_vec::<u32>(), |v| alloc.pool_box(v))
}

pub async fn growth_bumpalo() -> u64 {
    let arena = TaskBump::take();
    // bumpalo's `Vec` borrows the arena (`!Sync`), which a `Send` future cannot hold across
    // the yield: the items are kept as the arena slice they become.
    let items = {
        let mut v = bumpalo::collections::Vec::<u32>::new_in(arena.bump());
        for _ in 0..GROWTH_ITEMS {
            v.push(7);
        }
        v.into_bump_slice()
    };
    let parts = fill!(GROWTH_PARTS, |_i| arena.bump().alloc([7u8; 64]));
    tokio::task::yield_now().await;
    black_box(&items).iter().map(|&x| u64::from(x)).sum::<u64>()
        + black_box(&parts).iter().map(|p| u64::from(p[0] - 7)).sum::<u64>()
}

/// The guide's own form: a `TaskAlloc` for the request, `alloc_vec` and `alloc_box` from it.
pub async fn growth_task_alloc(alloc: SmartAlloc) -> u64 {
    let task = TaskAlloc::new(&alloc);
    growth_handler!(task.alloc_vec::<u32>(), |v| task.alloc_box(v))
}
