//! ai-request-transformer and ai-response-transformer end to end in Envoy
//! (envoy/transformers.yaml): an ordinary JSON API behind the gateway, the
//! fake provider as the LLM (OpenAI, and Anthropic through the codec's
//! translation), every failure with its documented status.

use ai_gateway_tests::fake::{answer_text, Recorded};
use ai_gateway_tests::http::{send, Request, Response};
use ai_gateway_tests::{test_id, Gateway};
use serde_json::json;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const OPENAI_KEY: &str = "sk-transformer-openai";
const ANTHROPIC_KEY: &str = "sk-ant-transformer";

fn gateway() -> &'static Gateway {
    static GATEWAY: OnceLock<Gateway> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        let gw = Gateway::start("transformers.yaml", &[("OPENAI_API_KEY", OPENAI_KEY), ("ANTHROPIC_API_KEY", ANTHROPIC_KEY)], &|y| y);
        let vms = gw.envoy.vm_baseline();
        VMS.set(vms).ok();
        gw
    })
}

static VMS: OnceLock<u64> = OnceLock::new();

/// A client request with a unique payload; returns the answer, the test id
/// (on the upstream's records) and the payload (in the LLM call's body).
fn call(path: &'static str, extra: &[(&'static str, &str)]) -> (Response, String, String) {
    let id = test_id("xf");
    let payload = json!({"order": "one book", "ref": id});
    let mut req = Request::post_json(path, &payload).header("x-test-id", id.clone()).header("x-request-id", id.clone());
    for (k, v) in extra {
        req = req.header(k, v.to_string());
    }
    (send(gateway().envoy.ports.listener, &req), id, payload.to_string())
}

/// Every test ends with this: no wasm VM crashed or reloaded so far.
fn no_vm_crash() {
    gateway().envoy.assert_no_vm_crash(*VMS.get().unwrap_or(&0));
}

fn llm_calls(payload_marker: &str) -> Vec<Recorded> {
    gateway().fake.requests_containing(payload_marker).into_iter().filter(|r| !r.path.starts_with("/legacy/")).collect()
}

fn upstream(id: &str) -> Vec<Recorded> {
    gateway().fake.requests(id).into_iter().filter(|r| r.path.starts_with("/legacy/")).collect()
}

fn assert_openai_error(r: &Response, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains("LLM")), "{v}");
}

#[test]
fn request_is_rewritten_by_an_openai_model_and_only_its_answer_goes_upstream() {
    let (r, id, payload) = call("/orders/rewrite", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["orders"][0]["item"], "book", "the legacy API answered");

    let llm = llm_calls(&id);
    assert_eq!(llm.len(), 1);
    let sent = llm[0].json();
    assert_eq!(llm[0].path, "/v1/chat/completions");
    assert_eq!(llm[0].header("host"), Some("api.openai.com"));
    assert_eq!(llm[0].header("authorization"), Some(format!("Bearer {OPENAI_KEY}").as_str()));
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["temperature"], 0.2);
    assert_eq!(sent["messages"][0]["role"], "system");
    assert!(sent["messages"][0]["content"].as_str().is_some_and(|p| p.contains("legacy orders API")));
    assert_eq!(sent["messages"][1], json!({"role": "user", "content": payload}));

    let up = upstream(&id);
    assert_eq!(up.len(), 1);
    assert_eq!(String::from_utf8_lossy(&up[0].body), answer_text(&payload), "the upstream gets exactly the LLM's answer");
    assert_eq!(up[0].header("content-type"), Some("application/json"));
    assert_eq!(up[0].header("authorization"), None, "the LLM's key never reaches the upstream");
    assert_eq!(up[0].path, "/legacy/orders");
    no_vm_crash();
}

#[test]
fn request_through_anthropic_is_translated_both_ways() {
    let (r, id, payload) = call("/orders/rewrite-anthropic", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let llm = llm_calls(&id);
    assert_eq!(llm.len(), 1);
    assert_eq!(llm[0].path, "/v1/messages");
    assert_eq!(llm[0].header("x-api-key"), Some(ANTHROPIC_KEY));
    assert!(llm[0].header("anthropic-version").is_some());
    let sent = llm[0].json();
    assert!(sent["system"].as_str().is_some_and(|s| s.contains("legacy orders API")), "{sent}");
    assert_eq!(sent["max_tokens"], 1024);
    let up = upstream(&id);
    assert_eq!(String::from_utf8_lossy(&up[0].body), answer_text(&payload), "Anthropic's content blocks became the body");
    assert_eq!(up[0].header("x-api-key"), None);
    no_vm_crash();
}

#[test]
fn extract_pattern_sends_the_whole_match_as_kong_or_the_body_group() {
    // Kong's documented example `\{((.|\n)*)\}`: the match, braces included.
    let (r, id, payload) = call("/orders/kong-extract", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = String::from_utf8_lossy(&upstream(&id)[0].body).into_owned();
    assert_eq!(sent, payload, "the whole match, valid JSON");
    // `You said: (?P<body>.*)`: only the named group.
    let (r, id, payload) = call("/orders/extract", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(String::from_utf8_lossy(&upstream(&id)[0].body), payload, "the `body` group captured the payload back");

    let (r, id, _) = call("/orders/no-match", &[]);
    assert_openai_error(&r, 502, "llm_no_match");
    assert!(upstream(&id).is_empty(), "nothing reaches the upstream when the transformation fails");
    no_vm_crash();
}

#[test]
fn transformed_bodies_carry_an_exact_content_length_both_ways() {
    let (r, id, _) = call("/orders/rewrite", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let up = &upstream(&id)[0];
    assert_eq!(up.header("transfer-encoding"), None, "the upstream got a chunked body: {:?}", up.headers);
    assert_eq!(up.header("content-length"), Some(up.body.len().to_string().as_str()), "{:?}", up.headers);

    let (r, _, _) = call("/orders/french", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("transfer-encoding"), None, "the client got a chunked body");
    assert_eq!(r.header("content-length"), Some(r.body.len().to_string().as_str()));
    no_vm_crash();
}

#[test]
fn an_llm_answering_html_with_200_is_unreadable_and_says_so() {
    let (r, id, _) = call("/orders/llm-html", &[]);
    assert_openai_error(&r, 502, "llm_unreadable");
    let message = r.json()["error"]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("200") && message.contains("text/html"), "{message}");
    assert!(upstream(&id).is_empty());
    no_vm_crash();
}

#[test]
fn llm_failures_answer_clearly_and_the_upstream_never_sees_the_request() {
    let (r, id, _) = call("/orders/llm-down", &[]);
    assert_openai_error(&r, 502, "llm_error");
    assert!(!r.text().contains("Rate limit"), "the LLM's own error text stays in the log: {}", r.text());
    assert!(upstream(&id).is_empty());

    let started = Instant::now();
    let (r, id, _) = call("/orders/llm-slow", &[]);
    let took = started.elapsed();
    assert_openai_error(&r, 504, "llm_timeout");
    assert!(took >= Duration::from_millis(450) && took < Duration::from_millis(2500), "http_timeout 500 ms honoured: {took:?}");
    assert!(upstream(&id).is_empty());
    no_vm_crash();
}

#[test]
fn response_is_rewritten_by_the_llm() {
    let (r, id, _) = call("/orders/french", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let legacy = r#"{"orders":[{"id":7,"item":"book","status":"shipped"}]}"#;
    assert_eq!(r.text(), answer_text(legacy), "the client gets the LLM's answer");
    let llm = gateway().fake.requests_containing(r#"\"item\":\"book\""#);
    assert!(llm.iter().any(|c| c.path == "/v1/chat/completions" && c.json()["messages"][1]["content"] == legacy));
    assert_eq!(upstream(&id).len(), 1);
    assert_eq!(r.header("authorization"), None);
    no_vm_crash();
}

#[test]
fn json_instructions_set_the_clients_status_headers_and_body() {
    // Kong's `status`, and `status_code` as its alias.
    for (key, status) in [("status", 201), ("status_code", 202)] {
        let instructions = format!(r#"{{"{key}": {status}, "headers": {{"x-lang": "fr", "content-type": "text/plain"}}, "body": "une commande"}}"#);
        let (r, _, _) = call("/orders/instructions", &[("x-fake-api-reply", &instructions)]);
        assert_eq!(r.status, status, "{key}: {}", r.text());
        assert_eq!(r.header("x-lang"), Some("fr"));
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.text(), "une commande");
        assert_eq!(r.header("content-length"), Some("12"));
    }

    // Instructions that are not the agreed JSON: an error, not the payload.
    let (r, _, _) = call("/orders/instructions", &[("x-fake-api-reply", r#"{"orders": []}"#)]);
    assert_openai_error(&r, 502, "llm_bad_instructions");
    assert!(!r.text().contains("orders"), "no partial body: {}", r.text());
    no_vm_crash();
}

#[test]
fn response_llm_failure_replaces_the_whole_response() {
    let (r, id, _) = call("/orders/response-llm-down", &[]);
    assert_openai_error(&r, 502, "llm_error");
    assert!(!r.text().contains("shipped"), "the untransformed payload never passes: {}", r.text());
    assert_eq!(upstream(&id).len(), 1, "the upstream did answer");
    no_vm_crash();
}

#[test]
fn streamed_responses_pass_unchanged() {
    let (r, id, _) = call("/orders/french", &[("x-fake-api-content-type", "text/event-stream")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.sse_data(), vec![r#"{"n":1}"#, r#"{"n":2}"#], "the events, unchanged");
    assert!(llm_calls(&id).is_empty());
    let log = gateway().envoy.log();
    assert!(log.contains("streamed response passed through untransformed"));
    no_vm_crash();
}

#[test]
fn both_transformers_on_one_route_and_their_usage_is_published() {
    let (r, id, payload) = call("/orders/both", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(String::from_utf8_lossy(&upstream(&id)[0].body), payload);
    let legacy = r#"{"orders":[{"id":7,"item":"book","status":"shipped"}]}"#;
    assert_eq!(r.text(), answer_text(legacy));

    let line = gateway().envoy.access_log(&id);
    let mut spent = 0;
    for side in ["request", "response"] {
        assert_eq!(line[format!("ai_transformer_{side}_provider")], "openai", "{line}");
        assert_eq!(line[format!("ai_transformer_{side}_outcome")], "success", "{line}");
        let total: u64 = line[format!("ai_transformer_{side}_total_tokens")].as_str().and_then(|v| v.parse().ok()).unwrap_or(0);
        let prompt: u64 = line[format!("ai_transformer_{side}_prompt_tokens")].as_str().and_then(|v| v.parse().ok()).unwrap_or(0);
        assert!(total > prompt && prompt > 0, "{line}");
        spent += total;
    }
    // Labels as Envoy's stats_tags order them; the set is what counts.
    let metrics = gateway().envoy.admin("/stats/prometheus");
    let series = |family: &str, labels: &[(&str, &str)]| -> Option<f64> {
        metrics.lines().filter_map(|l| l.strip_prefix(family)?.strip_prefix('{')).find_map(|rest| {
            let (set, value) = rest.split_once("} ")?;
            labels.iter().all(|(k, v)| set.split(',').any(|kv| kv == format!("{k}=\"{v}\""))).then(|| value.trim().parse().ok())?
        })
    };
    for plugin in ["ai-request-transformer", "ai-response-transformer"] {
        let who = [("provider", "openai"), ("model", "gpt-4o-mini"), ("plugin", plugin)];
        assert!(series("ai_llm_requests_total", &[who[0], who[1], who[2], ("outcome", "success")]).is_some_and(|n| n >= 1.0), "{plugin}");
        assert!(series("ai_llm_tokens_total", &[who[0], who[1], who[2], ("token_type", "total")]).is_some_and(|n| n > 0.0), "{plugin}");
    }
    // The budget on this route charged both LLM calls (the only traffic on it).
    assert_eq!(gateway().envoy.stat("wasmcustom.ai_ratelimit_units_charged_total.policy.transformer-spend"), spent);
    no_vm_crash();
}

#[test]
fn oversized_bodies_are_refused_before_any_call() {
    let big = json!({"blob": "x".repeat(1024 * 1024)}); // over max_request_body_size (1 MiB)
    let id = test_id("xf-big");
    let req = Request::post_json("/orders/rewrite", &big).header("x-test-id", id.clone());
    let r = send(gateway().envoy.ports.listener, &req);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(upstream(&id).is_empty());
    no_vm_crash();
}
