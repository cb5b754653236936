//! ai-proxy-advanced end to end: envoy/advanced.yaml in a real Envoy (two
//! workers), every cluster sent to the fake provider, which plays OpenAI,
//! Anthropic or Bedrock by what each try sends it, and fails per provider
//! when a test asks (`x-fake-status-<provider>`, `x-fake-delay-ms-<provider>`).

use ai_gateway_tests::envoy::{free_port, Envoy};
use ai_gateway_tests::fake::{FakeProvider, Recorded};
use ai_gateway_tests::http::{send, Request, Response};
use ai_gateway_tests::{eventually, test_id};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::OnceLock;

const KEYS: [(&str, &str); 4] = [
    ("OPENAI_API_KEY", "sk-openai-adv"),
    ("ANTHROPIC_API_KEY", "sk-ant-adv"),
    ("AWS_ACCESS_KEY_ID", ai_gateway_tests::fake_native::AWS_ACCESS_KEY_ID),
    ("AWS_SECRET_ACCESS_KEY", ai_gateway_tests::fake_native::AWS_SECRET_ACCESS_KEY),
];

struct Gw {
    fake: FakeProvider,
    envoy: Envoy,
    vms: u64,
}

/// Replaces the balancer's JSON configuration.
fn configure(yaml: String, config: &Value) -> String {
    let start = yaml.find("name: ai-proxy-advanced-chat").expect("balancer filter");
    let at = start + yaml[start..].find("value: '").expect("its configuration");
    let end = at + yaml[at..].find('\n').unwrap_or(0);
    format!("{}value: '{}'{}", &yaml[..at], config, &yaml[end..])
}

fn start(rewrite: &dyn Fn(String) -> String, mapped: &[(u16, u16)]) -> Gw {
    let fake = FakeProvider::start();
    let envoy = Envoy::start_mapped("advanced.yaml", fake.port, 2, &KEYS, rewrite, mapped);
    let vms = envoy.vm_baseline();
    Gw { fake, envoy, vms }
}

/// A token budget in front of the balancer: it charges what the serving
/// try published.
const BUDGET: &str = r#"          - name: ai-token-ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: ai-token-ratelimit
                root_id: ai-token-ratelimit
                allow_on_headers_stop_iteration: true
                vm_config: { vm_id: ai-token-ratelimit, runtime: envoy.wasm.runtime.v8, code: { local: { filename: /etc/envoy/wasm/ai_token_ratelimit.wasm } } }
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{"policies": [{"name": "advanced", "partition_by": "header", "partition_header": "x-budget", "limits": [{"limit": 1000000, "window_size": 3600}]}]}'
"#;

/// The shipped configuration, with a 2.5 s per-try timeout (room for a
/// 1.5 MiB body's try on a loaded machine) and a token
/// budget in front.
fn shipped() -> &'static Gw {
    static GW: OnceLock<Gw> = OnceLock::new();
    GW.get_or_init(|| {
        let rewrite = |yaml: String| {
            yaml.replace(r#""read_timeout": 60000"#, r#""read_timeout": 2500"#)
                .replacen("          - name: ai-proxy-advanced\n", &format!("{BUDGET}          - name: ai-proxy-advanced\n"), 1)
        };
        start(&rewrite, &[])
    })
}

/// The shipped configuration with OpenAI's cluster on a port where nothing listens.
fn dead_openai() -> &'static Gw {
    static GW: OnceLock<Gw> = OnceLock::new();
    GW.get_or_init(|| {
        let dead = free_port();
        let rewrite = |yaml: String| {
            yaml.replace(r#""read_timeout": 60000"#, r#""read_timeout": 2500"#)
                .replace("address: api.openai.com, port_value: 443", "address: api.openai.com, port_value: 1")
        };
        start(&rewrite, &[(1, dead)])
    })
}

/// The three shipped targets with `extra` merged into each, under `balancer`.
fn balanced(balancer: Value, extra: [Value; 3]) -> Value {
    let mut targets = vec![
        json!({"model": {"provider": "openai", "name": "gpt-4o"}, "auth": {"header_name": "Authorization", "header_value": "Bearer {vault://env/OPENAI_API_KEY}"}}),
        json!({"model": {"provider": "anthropic", "name": "claude-sonnet-4-5", "options": {"max_tokens": 1024}}, "auth": {"header_name": "x-api-key", "header_value": "{vault://env/ANTHROPIC_API_KEY}"}}),
        json!({"model": {"provider": "bedrock", "name": "anthropic.claude-3-5-haiku-20241022-v1:0", "options": {"bedrock": {"aws_region": "us-east-1"}}}, "auth": {"aws_access_key_id": "{vault://env/AWS_ACCESS_KEY_ID}", "aws_secret_access_key": "{vault://env/AWS_SECRET_ACCESS_KEY}"}}),
    ];
    for (t, e) in targets.iter_mut().zip(extra) {
        if let (Some(t), Some(e)) = (t.as_object_mut(), e.as_object()) {
            t.extend(e.clone());
        }
    }
    json!({"balancer": balancer, "targets": targets})
}

fn with_balancer(config: Value) -> Gw {
    start(&move |yaml| configure(yaml, &config), &[])
}

fn chat(stream: bool) -> Value {
    json!({"model": "ignored-by-targets", "messages": [{"role": "user", "content": "say hello"}], "stream": stream})
}

/// Sends one chat request; returns the answer, what the fake got, and the id.
fn post(gw: &Gw, body: &Value, headers: &[(&'static str, String)]) -> (Response, Vec<Recorded>, String) {
    let id = test_id("adv");
    let mut req = Request::post_json("/v1/chat/completions", body).header("x-test-id", id.clone()).header("x-request-id", id.clone());
    for (n, v) in headers {
        req = req.header(n, v.clone());
    }
    let resp = send(gw.envoy.ports.listener, &req);
    let got = gw.fake.requests(&id);
    (resp, got, id)
}

/// Which provider a recorded request was meant for.
fn provider_of(r: &Recorded) -> &'static str {
    if r.path == "/v1/messages" {
        "anthropic"
    } else if r.path.starts_with("/model/") {
        "bedrock"
    } else if r.path == "/v1/chat/completions" || r.path == "/v1/responses" {
        "openai"
    } else {
        "other"
    }
}

fn providers(got: &[Recorded]) -> Vec<&'static str> {
    got.iter().map(provider_of).collect()
}

fn answer_text(resp: &Response) -> String {
    if resp.header("content-type").is_some_and(|ct| ct.starts_with("text/event-stream")) {
        resp.sse_data()
            .iter()
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
            .collect()
    } else {
        resp.json()["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_string()
    }
}

/// Each try carried only its own provider's credentials and headers.
fn assert_native_credentials(got: &[Recorded]) {
    for r in got {
        let has = |h: &str| r.header(h).is_some();
        match provider_of(r) {
            "openai" => {
                assert_eq!(r.header("authorization"), Some("Bearer sk-openai-adv"));
                assert_eq!(r.header("host"), Some("api.openai.com"));
                assert!(!has("x-api-key") && !has("anthropic-version") && !has("x-amz-date"), "{:?}", r.headers);
            }
            "anthropic" => {
                assert_eq!(r.header("x-api-key"), Some("sk-ant-adv"));
                assert_eq!(r.header("host"), Some("api.anthropic.com"));
                assert!(has("anthropic-version"));
                assert!(!has("authorization") && !has("x-amz-date"), "an earlier try's header leaked: {:?}", r.headers);
                assert_eq!(r.json()["model"], "claude-sonnet-4-5");
            }
            "bedrock" => {
                assert!(r.header("authorization").is_some_and(|a| a.starts_with(&format!("AWS4-HMAC-SHA256 Credential={}/", ai_gateway_tests::fake_native::AWS_ACCESS_KEY_ID))), "{:?}", r.headers);
                assert!(!has("x-api-key") && !has("anthropic-version"), "an earlier try's header leaked: {:?}", r.headers);
                assert!(r.path.starts_with("/model/anthropic.claude-3-5-haiku"), "{}", r.path);
            }
            other => panic!("unexpected request for {other}: {}", r.path),
        }
    }
}

fn no_crash(gw: &Gw) {
    gw.envoy.assert_no_vm_crash(gw.vms);
}

#[test]
fn a_healthy_primary_serves_alone() {
    let gw = shipped();
    let (resp, got, id) = post(gw, &chat(false), &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(providers(&got), ["openai"]);
    assert_native_credentials(&got);
    assert_eq!(resp.json()["object"], "chat.completion");
    let log = gw.envoy.access_log(&id);
    assert_eq!(log["ai_target"], "openai");
    assert_eq!(log["ai_tries"], "1");
    no_crash(gw);
}

#[test]
fn a_429_then_a_503_fall_over_to_the_third_provider_translated_each_time() {
    let gw = shipped();
    let fails = [("x-fake-status-openai", "429".to_string()), ("x-fake-status-anthropic", "503".to_string())];
    let (resp, got, id) = post(gw, &chat(false), &fails);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(providers(&got), ["openai", "anthropic", "bedrock"]);
    assert_native_credentials(&got);
    // Each got its own wire format: OpenAI messages, Anthropic's Messages
    // API, Bedrock's Converse.
    assert!(got[0].json()["messages"].is_array());
    assert_eq!(got[1].json()["max_tokens"], 1024);
    assert!(got[2].json()["messages"][0]["content"][0]["text"].is_string(), "{}", got[2].json());
    // The answer is OpenAI's shape, with the serving target's usage.
    let body = resp.json();
    assert_eq!(body["object"], "chat.completion");
    assert!(!answer_text(&resp).is_empty());
    assert!(body["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0);
    let log = gw.envoy.access_log(&id);
    assert_eq!(log["ai_target"], "bedrock");
    assert_eq!(log["ai_tries"], "3");
    assert_eq!(log["ai_failed_targets"], "openai:429,anthropic:503");
    assert_eq!(log["ai_provider"], "bedrock");
    assert_eq!(log["ai_total_tokens"].as_str().and_then(|t| t.parse::<u64>().ok()), body["usage"]["total_tokens"].as_u64());
    eventually("fallback metrics", || {
        gw.envoy.stat("wasmcustom.ai_balancer_fallbacks_total.from.openai.to.anthropic") >= 1
            && gw.envoy.stat("wasmcustom.ai_balancer_fallbacks_total.from.anthropic.to.bedrock") >= 1
            && gw.envoy.stat("wasmcustom.ai_balancer_tries_total.target.bedrock.outcome.success") >= 1
    });
    no_crash(gw);
}

#[test]
fn the_token_budget_is_charged_what_the_serving_target_used() {
    let gw = shipped();
    let budget = ("x-budget", test_id("budget"));
    let (resp, got, _) = post(gw, &chat(false), &[budget.clone(), ("x-fake-status-openai", "429".into())]);
    assert_eq!(resp.status, 200);
    assert_eq!(providers(&got), ["openai", "anthropic"]);
    let total = resp.json()["usage"]["total_tokens"].as_u64().unwrap_or(0);
    assert!(total > 0);
    // A request every target fails uses nothing and shows what is left
    // (charges land when a request ends, just after its client has the answer).
    let all_fail: Vec<(&'static str, String)> =
        vec![budget, ("x-fake-status-openai", "500".into()), ("x-fake-status-anthropic", "500".into()), ("x-fake-status-bedrock", "500".into())];
    let remaining = || post(gw, &chat(false), &all_fail).0.header("x-ai-ratelimit-remaining-3600").and_then(|v| v.parse::<u64>().ok());
    eventually("the served try's usage is charged", || remaining() == Some(1_000_000 - total));
    no_crash(gw);
}

#[test]
fn a_stream_falls_over_and_keeps_streaming() {
    let gw = shipped();
    let mut body = chat(true);
    body["stream_options"] = json!({"include_usage": true});
    let (resp, got, id) = post(gw, &body, &[("x-fake-status-openai", "429".into())]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(providers(&got), ["openai", "anthropic"]);
    assert_native_credentials(&got);
    assert_eq!(got[1].json()["stream"], true);
    assert!(resp.header("content-type").is_some_and(|ct| ct.starts_with("text/event-stream")));
    let data = resp.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert!(!answer_text(&resp).is_empty());
    let usage = data.iter().filter_map(|d| serde_json::from_str::<Value>(d).ok()).find(|v| v["usage"].is_object()).expect("a usage chunk");
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap_or(0) > 0);
    assert_eq!(gw.envoy.access_log(&id)["ai_target"], "anthropic");
    no_crash(gw);
}

#[test]
fn a_per_try_timeout_falls_over() {
    let gw = shipped();
    for stream in [false, true] {
        let (resp, got, id) = post(gw, &chat(stream), &[("x-fake-delay-ms-openai", "6000".into())]);
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert!(resp.first_byte < std::time::Duration::from_millis(5900), "waited for the slow target: {:?}", resp.first_byte);
        assert_eq!(providers(&got), ["openai", "anthropic"]);
        assert!(!answer_text(&resp).is_empty());
        let log = gw.envoy.access_log(&id);
        assert_eq!(log["ai_failed_targets"], "openai:error");
        assert_eq!(log["ai_target"], "anthropic");
    }
    no_crash(gw);
}

#[test]
fn a_connect_failure_then_a_timeout_fall_over_to_bedrock() {
    let gw = dead_openai();
    for stream in [false, true] {
        let (resp, got, id) = post(gw, &chat(stream), &[("x-fake-delay-ms-anthropic", "6000".into())]);
        assert_eq!(resp.status, 200, "{}", resp.text());
        // OpenAI was never reached; Anthropic was, too slowly.
        assert_eq!(providers(&got), ["anthropic", "bedrock"]);
        assert_native_credentials(&got);
        assert!(!answer_text(&resp).is_empty());
        let log = gw.envoy.access_log(&id);
        assert_eq!(log["ai_failed_targets"], "openai:error,anthropic:error");
        assert_eq!(log["ai_target"], "bedrock");
        assert_eq!(log["ai_tries"], "3");
    }
    no_crash(gw);
}

#[test]
fn when_every_target_fails_the_last_status_comes_back_in_openai_shape() {
    let gw = shipped();
    let fails = [
        ("x-fake-status-openai", "429".to_string()),
        ("x-fake-status-anthropic", "503".to_string()),
        ("x-fake-status-bedrock", "429".to_string()),
    ];
    let (resp, got, id) = post(gw, &chat(false), &fails);
    assert_eq!(providers(&got), ["openai", "anthropic", "bedrock"]);
    assert_eq!(resp.status, 429, "{}", resp.text());
    let err = &resp.json()["error"];
    assert!(err["message"].is_string() && err["type"].is_string(), "{}", resp.text());
    assert_eq!(gw.envoy.access_log(&id)["ai_failed_targets"], "openai:429,anthropic:503,bedrock:429");
    // And with nothing listening at the last one: Envoy's own answer, in the same shape.
    let dead = dead_openai();
    let fails = [("x-fake-status-anthropic", "503".to_string()), ("x-fake-status-bedrock", "500".to_string())];
    let (resp, _, _) = post(dead, &chat(false), &fails);
    assert_eq!(resp.status, 500, "{}", resp.text());
    assert!(resp.json()["error"]["message"].is_string());
    no_crash(gw);
}

#[test]
fn a_client_error_is_not_retried() {
    let gw = shipped();
    let (resp, got, _) = post(gw, &chat(false), &[("x-fake-status-openai", "400".into())]);
    assert_eq!(resp.status, 400);
    assert_eq!(providers(&got), ["openai"], "400 is not in failover_criteria");
    // A request the gateway refuses never reaches any target.
    let (resp, got, _) = post(gw, &json!({"messages": "not a list"}), &[]);
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(got.is_empty());
    no_crash(gw);
}

#[test]
fn forged_routing_headers_change_nothing() {
    let gw = shipped();
    let forged = [
        ("x-ai-try-0", "2".to_string()),
        ("x-ai-try-1", "2".to_string()),
        ("x-ai-try-7", "1".to_string()),
        ("x-envoy-attempt-count", "2".to_string()),
        ("x-envoy-max-retries", "0".to_string()),
        ("x-envoy-retriable-status-codes", "400".to_string()),
    ];
    let (resp, got, _) = post(gw, &chat(false), &forged);
    assert_eq!(resp.status, 200);
    assert_eq!(providers(&got), ["openai"], "the plan, not the client, picks the target");
    assert!(got[0].header("x-ai-try-7").is_none());
    let mut fails = forged.to_vec();
    fails.push(("x-fake-status-openai", "429".into()));
    let (resp, got, _) = post(gw, &chat(false), &fails);
    assert_eq!(resp.status, 200);
    assert_eq!(providers(&got), ["openai", "anthropic"], "retries still follow the configuration");
    no_crash(gw);
}

#[test]
fn a_body_over_one_mib_falls_over_intact() {
    let gw = shipped();
    let big = "lorem ipsum ".repeat(130_000); // ~1.5 MiB
    let body = json!({"messages": [{"role": "user", "content": big}]});
    let (resp, got, _) = post(gw, &body, &[("x-fake-status-openai", "503".into())]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(providers(&got), ["openai", "anthropic"]);
    assert_eq!(got[0].json()["messages"][0]["content"].as_str().map(str::len), Some(big.len()));
    let sent = &got[1].json()["messages"][0]["content"];
    let text = sent.as_str().map(str::to_string).or_else(|| sent[0]["text"].as_str().map(str::to_string)).unwrap_or_default();
    assert_eq!(text.len(), big.len(), "Anthropic got the whole prompt");
    no_crash(gw);
}

#[test]
fn priority_uses_the_backup_only_while_the_primary_fails() {
    let gw = shipped();
    let served = |fail: bool| {
        let headers: Vec<(&'static str, String)> = if fail { vec![("x-fake-status-openai", "500".into())] } else { vec![] };
        let (resp, got, _) = post(gw, &chat(false), &headers);
        assert_eq!(resp.status, 200);
        got.last().map(provider_of).unwrap_or("none")
    };
    assert_eq!(served(false), "openai");
    assert_eq!(served(true), "anthropic");
    assert_eq!(served(true), "anthropic");
    assert_eq!(served(false), "openai", "back to the primary once it answers");
}

#[test]
fn weighted_round_robin_follows_the_weights() {
    let gw = with_balancer(balanced(json!({"algorithm": "round-robin"}), [json!({"weight": 70}), json!({"weight": 20}), json!({"weight": 10})]));
    let mut counts: HashMap<&str, u32> = HashMap::new();
    // Four clients at once: the count is shared by both workers.
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut mine: Vec<&'static str> = Vec::new();
                    for _ in 0..250 {
                        let (resp, got, _) = post(&gw, &chat(false), &[]);
                        assert_eq!(resp.status, 200);
                        mine.extend(providers(&got));
                    }
                    mine
                })
            })
            .collect();
        for h in handles {
            for p in h.join().expect("client thread") {
                *counts.entry(p).or_default() += 1;
            }
        }
    });
    for (provider, weight) in [("openai", 700.0), ("anthropic", 200.0), ("bedrock", 100.0)] {
        let got = f64::from(counts.get(provider).copied().unwrap_or(0));
        assert!((got - weight).abs() <= weight * 0.05, "{provider}: {got} of 1000, expected {weight} ±5%: {counts:?}");
    }
    no_crash(&gw);
}

#[test]
fn lowest_latency_shifts_traffic_to_the_faster_target() {
    let config = balanced(json!({"algorithm": "lowest-latency", "latency_strategy": "e2e"}), [json!({}), json!({}), json!({})]);
    let gw = with_balancer(config);
    // OpenAI answers in 150 ms, the others at once.
    let slow = [("x-fake-delay-ms-openai", "150".to_string())];
    let mut last = Vec::new();
    for i in 0..30 {
        let (resp, got, _) = post(&gw, &chat(false), &slow);
        assert_eq!(resp.status, 200);
        if i >= 15 {
            last.extend(providers(&got));
        }
    }
    let to_slow = last.iter().filter(|p| **p == "openai").count();
    assert!(to_slow <= 1, "the slow target still got {to_slow} of the last 15: {last:?}");
    eventually("latency gauge", || gw.envoy.stat("wasmcustom.ai_balancer_latency_ms.target.openai") >= 100);
    no_crash(&gw);
}

#[test]
fn consistent_hashing_is_sticky_per_header_value() {
    let config = balanced(json!({"algorithm": "consistent-hashing", "hash_on_header": "x-user", "failover_criteria": ["error", "http_429"]}), [json!({}), json!({}), json!({})]);
    let gw = with_balancer(config);
    let mut seen = std::collections::BTreeSet::new();
    for user in 0..12 {
        let who = [("x-user", format!("user-{user}"))];
        let first = providers(&post(&gw, &chat(false), &who).1);
        for _ in 0..3 {
            assert_eq!(providers(&post(&gw, &chat(false), &who).1), first, "user-{user} moved");
        }
        seen.insert(first[0]);
    }
    assert!(seen.len() >= 2, "every user landed on one target: {seen:?}");
    // While a user's target fails, it falls over; then it comes back.
    let who = ("x-user", "user-0".to_string());
    let home = providers(&post(&gw, &chat(false), &[who.clone()]).1)[0];
    let (resp, got, _) = post(&gw, &chat(false), &[who.clone(), (fail_header(home), "429".into())]);
    assert_eq!(resp.status, 200);
    assert_eq!(got.len(), 2);
    assert_ne!(provider_of(&got[1]), home);
    assert_eq!(providers(&post(&gw, &chat(false), &[who]).1), [home]);
    no_crash(&gw);
}

fn fail_header(provider: &str) -> &'static str {
    match provider {
        "openai" => "x-fake-status-openai",
        "anthropic" => "x-fake-status-anthropic",
        _ => "x-fake-status-bedrock",
    }
}

#[test]
fn a_bad_configuration_is_refused_naming_the_field() {
    let yaml = std::fs::read_to_string(ai_gateway_tests::envoy::repo_root().join("envoy/advanced.yaml")).expect("advanced.yaml");
    let bad = configure(yaml, &json!({"balancer": {"algorithm": "random"}, "targets": [{"model": {"provider": "openai"}}]}));
    let (ok, out) = ai_gateway_tests::envoy::validate(&bad, "advanced-bad");
    assert!(!ok, "Envoy accepted a bad balancer configuration");
    assert!(out.contains("balancer.algorithm"), "{out}");
}

/// Envoy charges every retry to the first try's cluster and allows 3 in
/// flight unless the cluster raises `max_retries`: with the shipped config,
/// 8 clients at once against a 429ing primary must all be served by the
/// next target, none handed the primary's 429.
#[test]
fn under_concurrent_load_every_request_falls_over() {
    let gw = shipped();
    let overflow_before = gw.envoy.stat("cluster.openai.upstream_rq_retry_overflow");
    // The fallback answers slowly, so the retries of all 8 clients overlap.
    let fails: Vec<(&'static str, String)> = vec![("x-fake-status-openai", "429".into()), ("x-fake-delay-ms-anthropic", "300".into())];
    let statuses: Vec<(u16, Vec<&'static str>)> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..8)
            .map(|_| {
                let fails = fails.clone();
                s.spawn(move || (0..3).map(|_| post(gw, &chat(false), &fails)).map(|(r, got, _)| (r.status, providers(&got))).collect::<Vec<_>>())
            })
            .collect();
        clients.into_iter().flat_map(|c| c.join().unwrap_or_default()).collect()
    });
    assert_eq!(statuses.len(), 24);
    for (status, got) in &statuses {
        assert_eq!((*status, got.as_slice()), (200, &["openai", "anthropic"][..]), "a request was not served by the fallback");
    }
    assert_eq!(gw.envoy.stat("cluster.openai.upstream_rq_retry_overflow"), overflow_before, "Envoy refused retries");
    no_crash(gw);
}

/// When Envoy does refuse a retry (here: a cluster with `max_retries: 1`),
/// the skipped fallback is counted per target and written to the access log.
#[test]
fn a_fallback_envoy_refused_is_counted_and_logged() {
    let gw = start(
        &|yaml: String| {
            yaml.replace("max_retries: 1024", "max_retries: 1")
        },
        &[],
    );
    let fails: Vec<(&'static str, String)> = vec![("x-fake-status-openai", "429".into()), ("x-fake-delay-ms-anthropic", "400".into())];
    let results: Vec<(u16, String)> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..6)
            .map(|_| {
                let fails = fails.clone();
                let gw = &gw;
                s.spawn(move || {
                    let (r, _, id) = post(gw, &chat(false), &fails);
                    (r.status, id)
                })
            })
            .collect();
        clients.into_iter().filter_map(|c| c.join().ok()).collect()
    });
    let refused: Vec<&String> = results.iter().filter(|(s, _)| *s == 429).map(|(_, id)| id).collect();
    assert!(!refused.is_empty(), "max_retries 1 refused no retry: {results:?}");
    for id in &refused {
        let log = gw.envoy.access_log(id);
        assert_eq!(log["ai_fallback_skipped"], "openai:429", "{log}");
    }
    eventually("the skipped-fallback counter", || {
        gw.envoy.stat("wasmcustom.ai_balancer_fallback_skipped_total.target.openai") == refused.len() as u64
    });
    no_crash(&gw);
}

/// Responses API clients behind the balancer: OpenAI takes the body
/// natively, and a fallback to Anthropic or Bedrock is translated on its
/// try; the client gets a Responses answer or stream either way.
#[test]
fn responses_clients_fall_over_from_native_openai_to_translated_providers() {
    let config = balanced(json!({"algorithm": "priority", "retries": 2, "failover_criteria": ["error", "http_429", "http_503"]}), [
        json!({"priority": 1, "route_type": "llm/v1/responses"}),
        json!({"priority": 2, "route_type": "llm/v1/responses"}),
        json!({"priority": 3, "route_type": "llm/v1/responses"}),
    ]);
    let gw = start(&move |yaml| configure(yaml, &config).replace("- match: { path: /v1/chat/completions }", "- match: { path: /v1/responses }"), &[]);
    let send_responses = |body: Value, headers: &[(&'static str, &'static str)]| {
        let id = test_id("adv-responses");
        let mut req = Request::post_json("/v1/responses", &body).header("x-test-id", id.clone()).header("x-request-id", id.clone());
        for (n, v) in headers {
            req = req.header(n, *v);
        }
        (send(gw.envoy.ports.listener, &req), gw.fake.requests(&id))
    };
    // Healthy OpenAI: passed natively.
    let (resp, got) = send_responses(json!({"input": "say hello", "instructions": "Be brief."}), &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(providers(&got), ["openai"]);
    assert_eq!(got[0].json()["input"], "say hello", "OpenAI gets the Responses body");
    assert_eq!(resp.json()["object"], "response");

    // OpenAI 429, Anthropic 503: Bedrock's Converse answer comes back as a response.
    let fails = [("x-fake-status-openai", "429"), ("x-fake-status-anthropic", "503")];
    let (resp, got) = send_responses(json!({"input": "say hello", "instructions": "Be brief."}), &fails);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(providers(&got), ["openai", "anthropic", "bedrock"]);
    assert_native_credentials(&got);
    assert_eq!(got[1].json()["system"], "Be brief.", "Anthropic's try is translated: {}", got[1].json());
    assert_eq!(got[2].json()["system"][0]["text"], "Be brief.", "and Bedrock's: {}", got[2].json());
    let v = resp.json();
    assert_eq!(v["object"], "response", "{v}");
    assert_eq!(v["output"][0]["content"][0]["text"], "You said: say hello", "{v}");
    assert!(v["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0);

    // A stream that falls over from OpenAI is the Responses events, from Anthropic.
    let (resp, got) = send_responses(json!({"input": "say hello", "stream": true}), &[("x-fake-status-openai", "429")]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(providers(&got), ["openai", "anthropic"]);
    let events = resp.sse_data();
    assert!(events.first().is_some_and(|e| e.contains("response.created")), "{events:?}");
    assert!(events.last().is_some_and(|e| e.contains("response.completed")), "{events:?}");
    no_crash(&gw);
}
