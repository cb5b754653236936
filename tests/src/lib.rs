//! Test support: a fake multi-provider LLM server, a raw HTTP client, and
//! a runner for the real Envoy with the shipped configs.

pub mod envoy;
pub mod fake;
pub mod fake_native;
pub mod http;

use std::sync::atomic::{AtomicU64, Ordering};

/// A unique id per test request, sent as `x-test-id` so the fake provider's
/// records can be told apart while tests run in parallel.
pub fn test_id(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{name}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}
