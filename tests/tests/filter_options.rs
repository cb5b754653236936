//! Options of the governance filters that no shipped config sets, proven in
//! the real Envoy: envoy/chain.yaml with the guard's and template's options
//! turned on (each filter alone on its own route), and envoy/ratelimit.yaml
//! with fixed windows, hidden headers and ip / consumer partitions.

use ai_gateway_tests::fake::Recorded;
use ai_gateway_tests::http::{send, Request, Response};
use ai_gateway_tests::{eventually, test_id, Gateway};
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const GUARD: &str = r#""guard_response":true,"max_request_body_size":1048576}"#;
const GUARD_OPTIONS: &str = r#""guard_response":true,"max_request_body_size":1048576,"allow_all_conversation_history":true,"match_all_roles":true,"error_code":403,"error_message":"Not on this gateway."}"#;
const TEMPLATES_END: &str = r#"\"max_tokens\":64}"}]}'"#;
const TEMPLATES_OPTIONS_END: &str = r#"\"max_tokens\":64}"}],"allow_untemplated_requests":false,"log_original_request":true}'"#;

fn chain() -> &'static (Gateway, u64) {
    static GATEWAY: OnceLock<(Gateway, u64)> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        let g = Gateway::start("chain.yaml", &[("ANTHROPIC_API_KEY", "sk-ant-opt")], &|yaml| {
            assert!(yaml.contains(GUARD) && yaml.contains(TEMPLATES_END), "the shipped guard or template config changed shape");
            yaml.replace(GUARD, GUARD_OPTIONS).replace(TEMPLATES_END, TEMPLATES_OPTIONS_END)
        });
        let vms = g.envoy.vm_baseline();
        (g, vms)
    })
}

const POLICIES_START: &str = r#""policies":["#;
/// Scoped by headers, so each test spends only its own budget.
const TEST_POLICIES: &str = r#""hide_client_headers": true, "consumer_header": "x-consumer-id", "policies": [{"name": "per-ip", "match": {"header": {"name": "x-test-policy", "values": ["ip"]}}, "partition_by": "ip", "limits": [{"limit": 30, "window_size": 3}]}, {"name": "per-consumer", "match": {"header": {"name": "x-test-policy", "values": ["consumer"]}}, "partition_by": "consumer", "limits": [{"limit": 30, "window_size": 60}]}, "#;
const SLIDING: &str = r#""window_type":"sliding"}'"#;
const FIXED: &str = r#""window_type":"fixed"}'"#;

fn budgets() -> &'static (Gateway, u64) {
    static GATEWAY: OnceLock<(Gateway, u64)> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        let g = Gateway::start("ratelimit.yaml", &[("ANTHROPIC_API_KEY", "sk-ant-opt")], &|yaml| {
            assert!(yaml.matches(POLICIES_START).count() == 1 && yaml.contains(SLIDING), "the shipped rate-limit config changed shape");
            yaml.replace(POLICIES_START, TEST_POLICIES).replace(SLIDING, FIXED)
        });
        let vms = g.envoy.vm_baseline();
        (g, vms)
    })
}

fn post(g: &(Gateway, u64), path: &str, body: Value, headers: &[(&'static str, String)]) -> (Response, Vec<Recorded>) {
    let id = test_id("opt");
    let mut req = Request::post_json(path, &body).header("x-test-id", id.clone());
    for (n, v) in headers {
        req = req.header(n, v.clone());
    }
    let resp = send(g.0.envoy.ports.listener, &req);
    let got = g.0.fake.requests(&id);
    g.0.envoy.assert_no_vm_crash(g.1);
    (resp, got)
}

#[test]
fn guard_checks_only_the_latest_message_of_any_role_and_answers_as_configured() {
    let g = chain();
    let guard = |messages: Value| post(g, "/guard/v1/chat/completions", json!({"model": "m", "messages": messages}), &[]);
    // allow_all_conversation_history: a password earlier in the history passes.
    let (resp, got) = guard(json!([{"role": "user", "content": "my password is x"}, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "hello"}]));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(got.len(), 1);
    // match_all_roles: the latest message is checked whatever its role.
    let (resp, got) = guard(json!([{"role": "user", "content": "hello"}, {"role": "assistant", "content": "the password is x"}]));
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert!(got.is_empty());
    // error_code and error_message.
    let v = resp.json();
    assert_eq!(v["error"]["message"], "Not on this gateway.");
    assert_eq!(v["error"]["code"], "content_blocked");
    assert_eq!(v["error"]["type"], "permission_error");
}

#[test]
fn template_refuses_untemplated_requests_and_logs_the_original() {
    let g = chain();
    let (resp, got) = post(g, "/template/v1/chat/completions", json!({"model": "m", "messages": [{"role": "user", "content": "plain"}]}), &[]);
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(got.is_empty());
    assert!(resp.json()["error"]["message"].as_str().is_some_and(|m| m.contains("template")), "{}", resp.text());

    let marker = test_id("original");
    let (resp, got) = post(g, "/template/v1/chat/completions", json!({"messages": "{template://haiku}", "properties": {"topic": marker}}), &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(got.len(), 1);
    let log = g.0.envoy.log();
    assert!(log.lines().any(|l| l.contains("ai-prompt-template: original request:") && l.contains(&marker)), "the client's body is logged before rendering");
}

fn chat(consumer: &str, policy: &'static str, words: usize) -> Response {
    let text = vec!["word"; words].join(" ");
    let headers = [("x-consumer-id", consumer.to_string()), ("x-test-policy", policy.to_string()), ("authorization", format!("Bearer {consumer}"))];
    post(budgets(), "/v1/chat/completions", json!({"model": "m", "messages": [{"role": "user", "content": text}]}), &headers).0
}


#[test]
fn consumers_get_their_own_budgets_with_headers_hidden() {
    let alice = test_id("alice");
    let first = chat(&alice, "consumer", 20);
    assert_eq!(first.status, 200);
    assert!(first.headers.iter().all(|(n, _)| !n.starts_with("x-ai-ratelimit") && !n.starts_with("ratelimit-")), "hide_client_headers: {:?}", first.headers);
    // 20 words and their echo spend more than the 30-token budget.
    eventually("alice's budget spent", || chat(&alice, "consumer", 1).status == 429);
    let refused = chat(&alice, "consumer", 1);
    assert_eq!(refused.status, 429);
    assert!(refused.header("retry-after").is_some(), "Retry-After stays with hidden headers");
    assert!(refused.headers.iter().all(|(n, _)| !n.starts_with("x-ai-ratelimit")));
    assert_eq!(chat(&test_id("bob"), "consumer", 1).status, 200, "another consumer has its own budget");
}

#[test]
fn ip_partitions_and_fixed_windows_roll_over_on_the_window_boundary() {
    // Every test client is 127.0.0.1: one partition. Start early in a
    // 3-second window so the spend and the refusal fall in the same one.
    let now = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    while now().as_millis() % 3000 > 500 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let window = now().as_secs() / 3;
    assert_eq!(chat("ip-a", "ip", 20).status, 200);
    eventually("the per-ip budget spent", || chat("ip-b", "ip", 1).status == 429);
    let refused = chat("ip-c", "ip", 1);
    assert_eq!(refused.status, 429, "the same address, whatever the consumer");
    let retry: u64 = refused.header("retry-after").and_then(|v| v.parse().ok()).unwrap_or(0);
    assert_eq!(now().as_secs() / 3, window, "the test took longer than its window");
    assert!((1..=3).contains(&retry), "a fixed window resets at its end: retry-after {retry}");
    // Fixed: the next window starts empty, on the boundary.
    while now().as_secs() / 3 == window {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(chat("ip-d", "ip", 1).status, 200);
}
