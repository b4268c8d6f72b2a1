//! Timers: [`sleep`], [`sleep_until`], [`interval`], [`interval_at`] and [`timeout`], on the
//! runtime's timer wheel (1 ms resolution).
//!
//! A timer never completes before its deadline; it completes within about a millisecond
//! after it, plus the time its task waits for a worker. Timers are served by whichever
//! worker parks on the driver, and by busy workers now and then, so no thread is dedicated
//! to them. A timer that is dropped (or whose task is cancelled) leaves nothing behind in
//! the wheel.
//!
//! These functions need a runtime: call them inside a task, inside `Runtime::block_on`, or
//! after `Runtime::enter`. Dropping the runtime stops its timers: polling one afterwards
//! panics.
//!
//! ```
//! # mod framealloc { pub use framealloc_alloc::*; pub mod runtime { pub use framealloc_runtime::*; } }
//! use framealloc::runtime::{time, Runtime};
//! use std::time::Duration;
//!
//! let rt = Runtime::new().unwrap();
//! rt.block_on(async {
//!     let start = time::Instant::now();
//!     time::sleep(Duration::from_millis(10)).await;
//!     assert!(start.elapsed() >= Duration::from_millis(10));
//!
//!     let slow = time::sleep(Duration::from_secs(60));
//!     let err = time::timeout(Duration::from_millis(5), slow).await.unwrap_err();
//!     assert_eq!(err.to_string(), "deadline has elapsed");
//! });
//! ```

mod interval;
mod sleep;
mod timeout;

pub use interval::{interval, interval_at, Interval, MissedTickBehavior};
pub use sleep::{sleep, sleep_until, Sleep};
pub use std::time::Instant;
pub use timeout::{timeout, timeout_at, Elapsed, Timeout};
