//! Test support: a fake multi-provider LLM server, a raw HTTP client, and
//! a runner for the real Envoy with the shipped configs.

pub mod a2a;
pub mod envoy;
pub mod fake;
pub mod fake_native;
pub mod http;
pub mod mcp;
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

/// Runs one scenario of an official-SDK script in `tests/sdk/` (its
/// arguments: base URL, model, scenario, test id) and returns the JSON it
/// printed.
pub fn run_sdk(script: &str, base_url: &str, model: &str, scenario: &str, id: &str) -> serde_json::Value {
    let out = std::process::Command::new(envoy::repo_root().join(".venv/bin/python"))
        .arg(envoy::repo_root().join("tests/sdk").join(script))
        .args([base_url, model, scenario, id])
        .output()
        .unwrap_or_else(|e| panic!("run the SDK: {e} (scripts/setup-test-deps.sh installs it)"));
    assert!(out.status.success(), "{scenario} via {base_url}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
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
