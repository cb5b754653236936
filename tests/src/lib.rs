//! Test support: a fake multi-provider LLM server, a raw HTTP client, and
//! a runner for the real Envoy with the shipped configs.

pub mod envoy;
pub mod fake;
pub mod fake_native;
pub mod http;
pub mod process;
pub mod prometheus;
pub mod redis_server;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Polls `condition` every 20 ms until it holds, and fails the test after
/// 10 s. For effects that land just after the client has its answer:
/// budget charges and metrics are written in the request's log phase.
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not so after 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A unique id per test request, sent as `x-test-id` so the fake provider's
/// records can be told apart while tests run in parallel.
pub fn test_id(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{name}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The fake provider and a real Envoy running one of the shipped configs,
/// started once per test binary.
pub struct Gateway {
    pub fake: fake::FakeProvider,
    pub envoy: envoy::Envoy,
}

impl Gateway {
    /// `envoy/<file>` with two workers; `rewrite` changes the config text
    /// where a test needs to (shorter windows, say), identity otherwise.
    pub fn start(file: &str, env: &[(&str, &str)], rewrite: &dyn Fn(String) -> String) -> Gateway {
        let fake = fake::FakeProvider::start();
        let envoy = envoy::Envoy::start_with(file, fake.port, 2, env, rewrite);
        Gateway { fake, envoy }
    }
}
