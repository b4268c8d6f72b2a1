//! Every Rust snippet of the guide (`shared/spec/async.md`, "Async/Await with framealloc"),
//! run on tokio with feature `tokio`.
//!
//! Each snippet lives in its own module (one file per section of the guide, under
//! `tests/guide/`), verbatim apart from the fixes listed in DESIGN.md ("Known errors in the
//! guide"); every such edit carries a `// GUIDE FIX:` comment. The helpers a snippet calls
//! but does not define come after it, marked "Helpers (not in the guide)", and do real work:
//! files through `tokio::fs`, sockets on 127.0.0.1, channels.
//! Snippets whose loop never ends are stopped by their helpers or by `tokio::time::timeout`,
//! as each module says.
//!
//! Not here: the `Cargo.toml` snippet (not Rust; with the version fix it is the facade's
//! feature `tokio` this file is built with). The FA603 "Error" snippet must not compile when
//! spawned: that is a `compile_fail` doctest of `framealloc-tokio` (crate docs), next to twins
//! that compile. Here it runs the only way it compiles, as a local task, where it hits FA701.

// The snippets are kept as written: their unused `mut`s and variables, the associated
// functions they call like enum variants (`Asset::Texture(..)`), the lower-case `queries`,
// `&alloc` where `alloc` is already a reference.
#![allow(unused_mut, unused_variables, non_snake_case, non_upper_case_globals, clippy::needless_borrow)]

use framealloc::{AllocStats, SmartAlloc};
use tokio::runtime::{Builder, Runtime};

// `framealloc::tokio::{TaskAlloc, AsyncPoolGuard}` are the core's types, not look-alikes: this
// does not compile otherwise.
const _: fn(
    framealloc::TaskAlloc,
    framealloc::AsyncPoolGuard,
) -> (framealloc::tokio::TaskAlloc, framealloc::tokio::AsyncPoolGuard) = |t, g| (t, g);

/// The two tokio runtime flavours every async snippet runs on.
fn flavours() -> [(&'static str, Runtime); 2] {
    [
        ("current_thread", Builder::new_current_thread().enable_all().build().unwrap()),
        ("multi_thread", Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()),
    ]
}

/// Nothing of frame, task or pool memory is alive, and no task heap (nor a chunk kept for an
/// escaped handle) is left.
#[track_caller]
fn assert_released(alloc: &SmartAlloc) -> AllocStats {
    let s = alloc.stats();
    assert_eq!(s.frame.live_bytes, 0, "frame memory left: {s:?}");
    assert_eq!(s.task.live_bytes, 0, "task memory left: {s:?}");
    assert_eq!(s.pool.live_bytes, 0, "pool memory left: {s:?}");
    assert_eq!(s.heaps_alive, 0, "task heaps left: {s:?}");
    assert_eq!(s.quarantined_chunks, 0, "chunks kept for escaped handles: {s:?}");
    s
}

fn panic_message(e: tokio::task::JoinError) -> String {
    let p = e.into_panic();
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

/// A fresh, empty directory under the system temp dir for one test.
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("framealloc-guide-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// The guide's sections, in its order.
#[path = "guide/async_pool_guard.rs"]
mod async_pool_guard;
#[path = "guide/best_practices.rs"]
mod best_practices;
#[path = "guide/common_patterns.rs"]
mod common_patterns;
#[path = "guide/migration.rs"]
mod migration;
#[path = "guide/task_alloc.rs"]
mod task_alloc;
#[path = "guide/tokio_integration.rs"]
mod tokio_integration;
#[path = "guide/troubleshooting.rs"]
mod troubleshooting;
