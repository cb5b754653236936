//! Metrics and access logs end to end: a known set of requests through
//! envoy/chain.yaml (template, decorator, guard, rate limit, ai-proxy), then
//! Envoy's /stats/prometheus must show exactly the expected series with
//! real labels, and the access log the expected AI facts.

use ai_gateway_tests::envoy::repo_root;
use ai_gateway_tests::http::{send, Request, Response};
use ai_gateway_tests::{eventually, test_id, Gateway};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn gateway() -> &'static Gateway {
    static GATEWAY: OnceLock<Gateway> = OnceLock::new();
    GATEWAY.get_or_init(|| Gateway::start("chain.yaml", &[], &|y| y))
}

fn chat(consumer: &str, text: &str, extra: &[(&'static str, &'static str)], stream: bool) -> (Response, String) {
    let rid = test_id("obs");
    let mut body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]});
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    let mut req = Request::post_json("/v1/chat/completions", &body)
        .header("x-consumer-id", consumer)
        .header("authorization", format!("Bearer key-{consumer}"))
        .header("x-request-id", rid.clone());
    for (k, v) in extra {
        req = req.header(k, *v);
    }
    (send(gateway().envoy.ports.listener, &req), rid)
}

fn usage_of(resp: &Response) -> (u64, u64) {
    resp.tokens()
}

/// Prometheus text lines `name{labels} value` for the ai_* families.
fn scrape() -> BTreeMap<String, u64> {
    gateway()
        .envoy
        .admin("/stats/prometheus")
        .lines()
        .filter(|l| l.starts_with("ai_"))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(k, v)| v.parse::<f64>().ok().map(|v| (canonical(k), v as u64))))
        .collect()
}

/// A series name with its labels in name order, whatever order Envoy
/// writes them in.
fn canonical(series: &str) -> String {
    let Some((metric, labels)) = series.split_once('{') else { return series.to_string() };
    let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').filter(|l| !l.is_empty()).collect();
    labels.sort_unstable();
    format!("{metric}{{{}}}", labels.join(","))
}

#[test]
fn known_traffic_gives_exact_metrics_and_log_lines() {
    let mut expect_tokens: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut expect_cost: BTreeMap<&str, u64> = BTreeMap::new();
    let mut add = |consumer: &'static str, (p, c): (u64, u64)| {
        *expect_tokens.entry((consumer, "prompt")).or_default() += p;
        *expect_tokens.entry((consumer, "completion")).or_default() += c;
        *expect_tokens.entry((consumer, "total")).or_default() += p + c;
        // 0.15 / 0.6 per million tokens, counted in millionths per request.
        *expect_cost.entry(consumer).or_default() += (p as f64 * 0.15 + c as f64 * 0.6).round() as u64;
    };

    let (r1, alice_rid) = chat("alice", "hello there", &[], false);
    let (r2, _) = chat("alice", "and again", &[], false);
    for r in [&r1, &r2] {
        assert_eq!(r.status, 200, "{}", r.text());
        add("alice", usage_of(r));
    }
    let (r, bob_rid) = chat("bob", "stream please", &[], true);
    assert_eq!(r.status, 200);
    add("bob", usage_of(&r));
    let (r, _) = chat("alice", "fail", &[("x-fake-status", "500")], false);
    assert_eq!(r.status, 500);
    let (r, _) = chat("alice", "my password is x", &[], false);
    assert_eq!(r.status, 400);
    // trial-team: 50 tokens a minute; the first request spends more.
    let long = vec!["word"; 60].join(" ");
    let (r, _) = chat("carol", &long, &[("x-team", "trial")], false);
    assert_eq!(r.status, 200);
    add("carol", usage_of(&r));
    let carol_total = usage_of(&r).0 + usage_of(&r).1;
    let charged = |policy: &str| scrape().get(&format!(r#"ai_ratelimit_units_charged_total{{policy="{policy}"}}"#)).copied();
    eventually("carol's spend is charged", || charged("trial-team") == Some(carol_total));
    let (r, _) = chat("carol", "again", &[("x-team", "trial")], false);
    assert_eq!(r.status, 429);

    // Every request's log phase has run once the budgets hold all usage.
    let total: u64 = expect_tokens.iter().filter(|((_, k), _)| *k == "total").map(|(_, n)| n).sum();
    eventually("every request is charged", || charged("gateway-total") == Some(total));
    let m = scrape();
    let get = |k: &str| m.get(&canonical(k)).copied().unwrap_or_else(|| panic!("no series {k} in\n{m:#?}"));
    let req = |consumer: &str, outcome: &str| get(&format!(r#"ai_llm_requests_total{{provider="openai",model="gpt-4o-mini",consumer="{consumer}",outcome="{outcome}",route="chat"}}"#));
    assert_eq!(req("alice", "success"), 2);
    assert_eq!(req("alice", "upstream_error"), 1);
    assert_eq!(req("bob", "success"), 1);
    assert_eq!(req("carol", "success"), 1);
    let llm_series: Vec<&String> = m.keys().filter(|k| k.starts_with("ai_llm_requests_total{")).collect();
    assert_eq!(llm_series.len(), 4, "refused requests never reached ai-proxy: {llm_series:?}");
    for ((consumer, kind), n) in &expect_tokens {
        assert_eq!(get(&format!(r#"ai_llm_tokens_total{{provider="openai",model="gpt-4o-mini",consumer="{consumer}",token_type="{kind}",route="chat"}}"#)), *n, "{consumer} {kind}");
    }
    for (consumer, n) in &expect_cost {
        assert_eq!(get(&format!(r#"ai_llm_cost_microunits_total{{provider="openai",model="gpt-4o-mini",consumer="{consumer}",route="chat"}}"#)), *n, "{consumer}");
    }
    assert_eq!(get(r#"ai_prompt_guard_requests_total{outcome="allowed"}"#), 6);
    assert_eq!(get(r#"ai_prompt_guard_requests_total{outcome="blocked"}"#), 1);
    assert_eq!(get(r#"ai_prompt_guard_blocked_total{rule="deny_0"}"#), 1);
    assert_eq!(get(r#"ai_prompt_decorator_requests_total{outcome="decorated"}"#), 7);
    assert_eq!(get(r#"ai_prompt_template_requests_total{outcome="untemplated",template="none"}"#), 7);
    assert_eq!(get(r#"ai_ratelimit_requests_total{outcome="rejected",policy="trial-team"}"#), 1);
    assert_eq!(get(r#"ai_ratelimit_requests_total{outcome="allowed",policy="trial-team"}"#), 1);
    assert_eq!(get(r#"ai_ratelimit_requests_total{outcome="allowed",policy="gateway-total"}"#), 5);
    assert_eq!(get(r#"ai_ratelimit_units_charged_total{policy="gateway-total"}"#), total, "budgets charged what ai-proxy counted");

    // Histograms reach Prometheus at Envoy's stats flush (every 5 s).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let m = scrape();
        let count = |k: &str| m.get(&canonical(&format!(r#"{k}_count{{provider="openai",model="gpt-4o-mini",route="chat"}}"#))).copied().unwrap_or(0);
        if count("ai_llm_provider_latency_ms") == 5 {
            assert_eq!(count("ai_llm_time_to_first_token_ms"), 1, "one stream");
            assert_eq!(count("ai_llm_time_per_output_token_ms"), 1);
            break;
        }
        assert!(Instant::now() < deadline, "latency histogram never showed 5 samples: {m:#?}");
        std::thread::sleep(Duration::from_millis(500));
    }

    // Access log lines carry the AI facts.
    let line = gateway().envoy.access_log(&alice_rid);
    let (p, c) = usage_of(&r1);
    assert_eq!(line["ai_prompt_tokens"], p.to_string());
    assert_eq!(line["ai_completion_tokens"], c.to_string());
    assert_eq!(line["ai_total_tokens"], (p + c).to_string());
    assert_eq!(line["ai_consumer"], "alice");
    assert_eq!(line["ai_request_model"], "gpt-4o-mini");
    assert_eq!(line["ai_decorator"], "decorated");
    assert_eq!(line["ai_guard"], "allowed");
    assert_eq!(line["ai_ratelimit"], "gateway-total,per-api-key");
    assert_eq!(line["client_path"], "/v1/chat/completions");
    assert!(line["ai_upstream_latency_ms"].as_str().is_some_and(|v| v.parse::<u64>().is_ok()), "{line}");
    let stream_line = gateway().envoy.access_log(&bob_rid);
    assert!(stream_line["ai_ttft_ms"].as_str().is_some_and(|v| v.parse::<u64>().is_ok()), "{stream_line}");
    assert!(line["ai_request_payload"].is_null(), "payload logging is off by default");

    dashboard_queries_only_metrics_the_filters_emit();
}

/// Every metric and label the Grafana dashboard queries is one the filters
/// emit (checked after traffic that makes every family exist).
fn dashboard_queries_only_metrics_the_filters_emit() {
    let types: Vec<String> = gateway()
        .envoy
        .admin("/stats/prometheus")
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|n| n.starts_with("ai_"))
        .collect();
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(repo_root().join("envoy/grafana/ai-gateway-dashboard.json")).unwrap_or_default()).unwrap_or(Value::Null);
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap_or_default().to_string());
        }
    }
    assert!(exprs.len() >= 6, "the dashboard has its panels");
    let labels = ["provider", "model", "consumer", "outcome", "token_type", "rule", "template", "policy", "le"];
    for expr in &exprs {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("ai_") {
                let family = word.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count");
                assert!(types.iter().any(|t| t == family), "{expr}: {family} is not emitted (emitted: {types:?})");
            }
        }
        if let Some(by) = expr.split("by (").nth(1).and_then(|s| s.split(')').next()) {
            for l in by.split(',').map(str::trim) {
                assert!(labels.contains(&l), "{expr}: unknown label {l}");
            }
        }
    }
}
