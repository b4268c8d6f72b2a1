//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Scales loop counts down under Miri.
pub const fn scale(n: usize) -> usize {
    if cfg!(miri) {
        if n / 100 > 2 {
            n / 100
        } else {
            2
        }
    } else {
        n
    }
}

/// Counts its drops.
#[derive(Debug)]
pub struct DropCounter {
    pub hits: Arc<AtomicUsize>,
    pub value: u64,
}

impl DropCounter {
    pub fn new(hits: &Arc<AtomicUsize>, value: u64) -> Self {
        Self { hits: hits.clone(), value }
    }
}

impl Clone for DropCounter {
    fn clone(&self) -> Self {
        Self { hits: self.hits.clone(), value: self.value }
    }
}

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.hits.fetch_add(1, Ordering::SeqCst);
    }
}

/// A type that must live at a 4096-byte boundary.
#[repr(align(4096))]
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Page(pub [u8; 16]);

/// Panics when dropped.
pub struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("drop panicked on purpose");
    }
}

/// Polls a future to completion on this thread (the futures in these tests never wait on I/O).
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Message of a caught panic.
pub fn panic_message(e: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = e.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = e.downcast_ref::<&str>() {
        s.to_string()
    } else {
        String::from("<non-string panic>")
    }
}
