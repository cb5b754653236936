//! The files users deploy: the compose file is valid and mounts the same
//! envoy.yaml the end-to-end tests run.

use ai_gateway_tests::envoy::repo_root;
use std::process::Command;

#[test]
fn compose_file_is_valid_and_mounts_the_tested_config() {
    let compose = repo_root().join("envoy/docker-compose.yaml");
    let out = Command::new("docker-compose")
        .args(["-f", &compose.to_string_lossy(), "config"])
        .output()
        .unwrap_or_else(|e| panic!("docker-compose not runnable ({e}): run scripts/setup-test-deps.sh"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let envoy_yaml = repo_root().join("envoy/envoy.yaml");
    assert!(text.contains(&format!("{}:/etc/envoy/envoy.yaml:ro", envoy_yaml.display())), "{text}");
    assert!(text.contains(&format!("{}:/etc/envoy/wasm:ro", repo_root().join("dist").display())), "{text}");
    let setup = std::fs::read_to_string(repo_root().join("scripts/setup-envoy.sh")).unwrap_or_default();
    let version = setup.lines().find_map(|l| l.strip_prefix("ENVOY_VERSION=")).unwrap_or("?");
    assert!(text.contains(&format!("envoyproxy/envoy:v{version}")), "the image must be the Envoy version the tests run");
    // Shared budgets: envoyproxy/ratelimit reads the file the tests run
    // ai-ratelimit-service with (tests/tests/global_ratelimit.rs).
    let rls_config = repo_root().join("envoy/ratelimit-config.yaml");
    assert!(text.contains(&format!("{}:/data/ratelimit/config/ratelimit-config.yaml:ro", rls_config.display())), "{text}");
    assert!(text.contains("envoyproxy/ratelimit:") && text.contains("REDIS_URL: 127.0.0.1:6379"), "{text}");
}
