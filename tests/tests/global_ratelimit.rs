//! Token budgets shared by two Envoy replicas (envoy/global-ratelimit.yaml,
//! each with two workers) through ai-ratelimit-service and one real Redis:
//! exact charging across replicas (streams included), refusals before the
//! provider on both replicas once a budget is spent, windows rolling over,
//! and the documented fail-open behaviour while Redis is down.

use ai_gateway_tests::envoy::{free_port, repo_root, Envoy};
use ai_gateway_tests::fake::FakeProvider;
use ai_gateway_tests::http::{send, Request, Response};
use ai_gateway_tests::process::{spawn, Supervised};
use ai_gateway_tests::redis_server::RedisServer;
use ai_gateway_tests::test_id;
use codec::ratelimit::cluster_partition;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The service binary, built once per test process.
fn service_binary() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let status = Command::new(env!("CARGO")).args(["build", "-q", "-p", "ai-ratelimit-service"]).current_dir(repo_root()).status();
        assert!(status.is_ok_and(|s| s.success()), "cargo build -p ai-ratelimit-service failed");
    });
    repo_root().join("target/debug/ai-ratelimit-service")
}

fn render(envoy_yaml: &Path, service_config: &Path) {
    let out = Command::new(service_binary())
        .arg("render")
        .arg(envoy_yaml)
        .arg("--service-config")
        .arg(service_config)
        .arg("--update-envoy")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "render: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn shipped_rendered_files_are_not_stale() {
    let dir = repo_root().join("target/e2e/render-check");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let yaml = dir.join("global-ratelimit.yaml");
    std::fs::copy(repo_root().join("envoy/global-ratelimit.yaml"), &yaml).unwrap_or_else(|e| panic!("{e}"));
    let service = dir.join("ratelimit-config.yaml");
    render(&yaml, &service);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let shipped_service = read(&repo_root().join("envoy/ratelimit-config.yaml"));
    // The source line names the file rendered from; the rest must match.
    let body = |s: &str| s.lines().filter(|l| !l.contains("Rendered by")).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&read(&service)), body(&shipped_service), "envoy/ratelimit-config.yaml is stale: run ai-ratelimit-service render envoy/global-ratelimit.yaml --service-config envoy/ratelimit-config.yaml --update-envoy");
    assert_eq!(body(&read(&yaml)), body(&read(&repo_root().join("envoy/global-ratelimit.yaml"))), "the rate_limits block of envoy/global-ratelimit.yaml is stale (same command)");
}

struct Replicas {
    fake: FakeProvider,
    redis: RedisServer,
    _service: Supervised,
    a: Envoy,
    b: Envoy,
    vms: (u64, u64),
}

/// The shipped config with per-consumer's minute limit scaled down to 200
/// tokens a second (so a test can spend it and see it roll over),
/// re-rendered for Envoy and the service like a user would.
fn start() -> Replicas {
    let dir = repo_root().join(format!("target/e2e/global-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let shipped = std::fs::read_to_string(repo_root().join("envoy/global-ratelimit.yaml")).unwrap_or_default();
    let scaled = r#"{"limit": 10000, "window_size": 60}"#;
    assert!(shipped.contains(scaled), "the shipped per-consumer limit changed shape");
    let yaml = dir.join("global-ratelimit.yaml");
    std::fs::write(&yaml, shipped.replace(scaled, r#"{"limit": 200, "window_size": 1}"#)).unwrap_or_else(|e| panic!("{e}"));
    let service_config = dir.join("ratelimit-config.yaml");
    render(&yaml, &service_config);
    let rendered = std::fs::read_to_string(&yaml).unwrap_or_default();

    let fake = FakeProvider::start();
    let redis = RedisServer::start();
    let rls_port = free_port();
    let args: Vec<String> = vec![
        "serve".into(),
        "--config".into(),
        service_config.to_string_lossy().into_owned(),
        "--redis".into(),
        redis.url(),
        "--listen".into(),
        format!("127.0.0.1:{rls_port}"),
        "--log-requests".into(),
    ];
    let service = spawn(&service_binary(), &args, &[], &dir.join("service.log"), &dir.join("service.pid"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", rls_port)).is_err() {
        assert!(Instant::now() < deadline, "the rate-limit service did not start: {}", std::fs::read_to_string(dir.join("service.log")).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mapped = [(8081, rls_port)];
    // Replica b fails closed, to prove both documented failure modes.
    assert!(rendered.contains("failure_mode_deny: false"));
    let closed = rendered.replace("failure_mode_deny: false", "failure_mode_deny: true");
    let a = Envoy::start_mapped("global-ratelimit.yaml", fake.port, 2, &[], &|_| rendered.clone(), &mapped);
    let b = Envoy::start_mapped("global-ratelimit.yaml", fake.port, 2, &[], &|_| closed.clone(), &mapped);
    let vms = (a.vm_baseline(), b.vm_baseline());
    Replicas { fake, redis, _service: service, a, b, vms }
}

fn chat(envoy: &Envoy, consumer: &str, text: &str, stream: bool) -> (Response, String) {
    let id = test_id("global");
    let mut body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]});
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    let req = Request::post_json("/v1/chat/completions", &body)
        .header("x-consumer-id", consumer)
        .header("authorization", format!("Bearer key-{consumer}"))
        .header("x-test-id", id.clone());
    (send(envoy.ports.listener, &req), id)
}

fn total_tokens(resp: &Response) -> u64 {
    resp.usage()["total_tokens"].as_u64().unwrap_or_else(|| panic!("no usage in {}", resp.text()))
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Redis key of a (policy, partition, window) counter, as the service names it.
fn key(policy: &str, partition: &str, window: u64) -> String {
    let now = now_s();
    format!("ai-gateway_policy_{policy}_partition_{}_window_{window}_{}", cluster_partition(partition), now - now % window)
}

fn eventually_sum(r: &Replicas, keys: &[&str], want: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: u64 = keys.iter().map(|k| r.redis.get(k)).sum();
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{keys:?} = {got} in all, expected {want}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_count(r: &Replicas, key: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = r.redis.get(key);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{key} = {got}, expected {want}; keys: {:?}", r.redis.keys("ai-gateway_*"));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_replicas_share_one_budget_through_the_service_and_redis() {
    let mut r = start();

    // 1. Exact: requests alternate between the replicas, streams included;
    // the shared counters hold exactly what the provider reported.
    let mut alice = 0;
    let minute_before = key("per-api-key", "Bearer key-alice", 60);
    for i in 0..8 {
        let envoy = if i % 2 == 0 { &r.a } else { &r.b };
        let (resp, _) = chat(envoy, "alice", &format!("question number {i} about budgets"), i % 3 == 0);
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert!(resp.header("x-ratelimit-limit").is_some(), "Envoy reports the budget (DRAFT_VERSION_03 headers)");
        alice += total_tokens(&resp);
    }
    wait_for_count(&r, &key("gateway-total", "", 86_400), alice);
    wait_for_count(&r, &key("per-consumer", "alice", 86_400), alice);
    // The 60 s window may have rolled over while the requests ran: then
    // the charges are split between the two windows' counters.
    let minute_after = key("per-api-key", "Bearer key-alice", 60);
    if minute_after == minute_before {
        wait_for_count(&r, &minute_after, alice);
    } else {
        eventually_sum(&r, &[&minute_before, &minute_after], alice);
    }
    assert!(r.redis.keys("*key-alice*").is_empty(), "API keys are hashed before they leave the gateway");
    // The shared budget's requests and charges show on the dashboard's
    // counters too (Envoy's ratelimit filter decides; the limiter counts).
    let charged = r.a.stat("wasmcustom.ai_ratelimit_units_charged_total.policy.per-consumer") + r.b.stat("wasmcustom.ai_ratelimit_units_charged_total.policy.per-consumer");
    assert_eq!(charged, alice, "units charged per policy");
    let allowed = |e: &Envoy| e.stat("wasmcustom.ai_ratelimit_requests_total.policy.per-consumer.outcome.allowed");
    assert_eq!(allowed(&r.a) + allowed(&r.b), 8);

    // 1b. A client that leaves a stream before its usage is charged the
    // estimate (prompt "a b c d e": 3 tokens; "You said: a b c d e"
    // streamed: 5), not nothing.
    leave_stream_early(&r.a, "dave", "a b c d e");
    wait_for_count(&r, &key("per-consumer", "dave", 86_400), 8);

    // 2. Spent: 200 tokens a second per consumer (scaled down for the
    // test; step 1 stays under it). One long prompt spends it; then both replicas refuse that
    // consumer before the provider sees anything, while another passes.
    // The steps must fall in one second: retried if a second boundary
    // came between them.
    let long = vec!["word"; 250].join(" ");
    let mut proven = false;
    for _attempt in 0..5 {
        while SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_millis()).unwrap_or(0) > 100 {
            std::thread::sleep(Duration::from_millis(10));
        }
        let second = now_s();
        let (first, _) = chat(&r.a, "trial", &long, false);
        assert_eq!(first.status, 200, "{}", first.text());
        // The charge lands when the stream is done; poll for the refusal.
        let mut refused = None;
        while now_s() == second {
            let (resp, id) = chat(&r.b, "trial", "again", false);
            if resp.status == 429 {
                refused = Some((resp, id));
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let Some((resp, id)) = refused else { continue };
        let (on_a, id_a) = chat(&r.a, "trial", "and on the other replica", false);
        let (other, _) = chat(&r.b, "bob", "another consumer", false);
        if now_s() != second {
            continue; // the window rolled over in between: try again
        }
        assert_eq!(resp.header("content-type"), Some("application/json"));
        assert_eq!(resp.json()["error"]["code"], "rate_limit_exceeded", "{}", resp.text());
        // The OpenAI SDK's retry waits for Retry-After: the window's end.
        assert_eq!(resp.header("retry-after"), Some("1"), "{:?}", resp.headers);
        assert!(r.b.stat("wasmcustom.ai_ratelimit_requests_total.policy.per-consumer.outcome.rejected") >= 1);
        assert_eq!(on_a.status, 429, "{}", on_a.text());
        assert!(r.fake.requests(&id).is_empty() && r.fake.requests(&id_a).is_empty(), "refused before the provider");
        assert_eq!(other.status, 200, "another consumer still passes: {}", other.text());
        // 3. The window rolls over: the next second, trial passes again.
        while now_s() == second {
            std::thread::sleep(Duration::from_millis(20));
        }
        let (again, _) = chat(&r.b, "trial", "a new second", false);
        assert_eq!(again.status, 200, "{}", again.text());
        proven = true;
        break;
    }
    assert!(proven, "could not fit the spend-and-refuse steps into one second in 5 tries");

    // 4. Redis down: the service answers UNAVAILABLE. The shipped config
    // fails open (a passes, and Envoy counts it); with failure_mode_deny
    // (b) the client gets a 500 in OpenAI's shape, before the provider.
    r.redis.stop();
    let (resp, _) = chat(&r.a, "alice", "while redis is down", false);
    assert_eq!(resp.status, 200, "fail open: {}", resp.text());
    let allowed = r.a.admin("/stats?filter=failure_mode_allowed").lines().filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).sum::<u64>();
    assert!(allowed >= 1, "{}", r.a.admin("/stats?filter=ratelimit"));
    let (resp, id) = chat(&r.b, "alice", "while redis is down", false);
    assert_eq!(resp.status, 500, "fail closed: {}", resp.text());
    assert_eq!(resp.json()["error"]["code"], "ratelimit_service_error");
    assert!(r.fake.requests(&id).is_empty());

    // 5. Redis back (empty: no persistence): counting resumes.
    r.redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (resp, _) = chat(&r.a, "carol", "after the restart", false);
        assert_eq!(resp.status, 200);
        let spent = total_tokens(&resp);
        let counted = (0..40).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            r.redis.get(&key("per-consumer", "carol", 86_400)) >= spent
        });
        if counted {
            break;
        }
        assert!(Instant::now() < deadline, "counting never resumed after Redis came back");
    }
    r.a.assert_no_vm_crash(r.vms.0);
    r.b.assert_no_vm_crash(r.vms.1);
    for envoy in [&r.a, &r.b] {
        assert!(!envoy.log().contains("Invalid hits_addend"), "a refused request left the charge unset");
    }
}

/// A streamed chat the client closes once the text is in, before the
/// provider's usage (the fake stalls before its last chunks).
fn leave_stream_early(envoy: &Envoy, consumer: &str, text: &str) {
    use std::io::{Read, Write};
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], "stream": true}).to_string();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", envoy.ports.listener)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-consumer-id: {consumer}\r\nauthorization: Bearer key-{consumer}\r\nx-fake-pause-before-end-ms: 3000\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).and_then(|_| s.write_all(body.as_bytes())).expect("send");
    let last_word = text.rsplit(' ').next().unwrap_or_default();
    let seen = format!(r#""content":"{last_word}""#);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(&seen) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => panic!("the stream ended before `{seen}`: {}", String::from_utf8_lossy(&got)),
            Ok(n) => got.extend_from_slice(buf.get(..n).unwrap_or_default()),
        }
    }
}
