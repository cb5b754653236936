//! ai-token-ratelimit end to end: envoy/ratelimit.yaml in the real Envoy
//! with two workers, budgets shared through proxy-wasm shared data.

use ai_gateway_tests::fake::Recorded;
use ai_gateway_tests::http::{send, Request, Response};
use ai_gateway_tests::{eventually, test_id, Gateway};
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::Duration;

/// The shipped per-key minute budget (10k tokens / 60 s) scaled down to
/// 300 tokens / 2 s, so the test can exhaust it and see the window roll.
const MINUTE: &str = r#"{"limit":10000,"window_size":60}"#;
const SHORT: &str = r#"{"limit":300,"window_size":2}"#;

fn gateway() -> &'static Gateway {
    static GATEWAY: OnceLock<Gateway> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        Gateway::start("ratelimit.yaml", &[("ANTHROPIC_API_KEY", "sk-ant-rl")], &|yaml| {
            assert!(yaml.contains(MINUTE), "the shipped per-key minute budget changed");
            yaml.replace(MINUTE, SHORT)
        })
    })
}

fn chat(path: &str, key: &str, body: Value) -> (Response, Vec<Recorded>) {
    let g = gateway();
    let id = test_id("rl");
    let req = Request::post_json(path, &body).header("authorization", format!("Bearer {key}")).header("x-test-id", id.clone());
    let resp = send(g.envoy.ports.listener, &req);
    (resp, g.fake.requests(&id))
}

fn hello(key: &str, words: usize) -> (Response, Vec<Recorded>) {
    let text = vec!["word"; words].join(" ");
    chat("/v1/chat/completions", key, json!({"model": "m", "messages": [{"role": "user", "content": text}]}))
}

fn header_u64(r: &Response, name: &str) -> u64 {
    r.header(name).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no {name} in {:?}", r.headers))
}

/// Admission as the key's next request sees it, spending nothing: the fake
/// provider fails this one (no usage, so no charge).
fn peek(key: &str) -> Response {
    let req = Request::post_json("/v1/chat/completions", &json!({"model": "m", "messages": [{"role": "user", "content": "peek"}]}))
        .header("authorization", format!("Bearer {key}"))
        .header("x-fake-status", "500");
    send(gateway().envoy.ports.listener, &req)
}

fn remaining_today(key: &str) -> u64 {
    header_u64(&peek(key), "x-ai-ratelimit-remaining-86400")
}

/// Waits until the key's spent requests are charged (charges land when a
/// request ends, just after its client has the answer) and it is refused.
fn wait_until_refused(key: &str) {
    eventually("the key's budget is spent", || peek(key).status == 429);
}

#[test]
fn parallel_clients_are_charged_exactly_what_the_provider_reported() {
    let keys: Vec<String> = (0..4).map(|i| test_id(&format!("parallel{i}"))).collect();
    let threads: Vec<_> = keys
        .iter()
        .cloned()
        .map(|key| {
            std::thread::spawn(move || {
                let mut reported = 0u64;
                for n in 0..12 {
                    let (resp, _) = hello(&key, 1 + n % 3);
                    assert_eq!(resp.status, 200, "{}", resp.text());
                    reported += resp.json()["usage"]["total_tokens"].as_u64().unwrap_or(0);
                }
                (key, reported)
            })
        })
        .collect();
    let results: Vec<(String, u64)> = threads.into_iter().map(|t| t.join().unwrap_or_default()).collect();
    for (key, reported) in results {
        // The daily counter holds every charge of the 12, from either
        // worker, once the last has landed; a lost update never does.
        eventually(&format!("{key}: charged {reported}"), || remaining_today(&key) == 1_000_000 - reported);
        let (resp, _) = hello(&key, 1);
        assert_eq!(resp.status, 200);
        assert_eq!(header_u64(&resp, "x-ai-ratelimit-remaining-86400"), 1_000_000 - reported, "{key}: no lost update");
        assert_eq!(header_u64(&resp, "x-ai-ratelimit-limit-86400"), 1_000_000);
    }
}

#[test]
fn an_exhausted_key_is_refused_before_the_provider_and_others_are_not() {
    let heavy = test_id("heavy");
    let light = test_id("light");
    // The answer repeats the prompt: about 2 x 300 tokens, twice the 300
    // budget, so even a charge made late in a 2 s sliding window still
    // counts fully a second into the next one.
    let (resp, _) = hello(&heavy, 300);
    assert_eq!(resp.status, 200);
    assert_eq!(header_u64(&resp, "x-ai-ratelimit-limit-2"), 300);
    wait_until_refused(&heavy);
    let (resp, got) = hello(&heavy, 1);
    assert_eq!(resp.status, 429, "{}", resp.text());
    let v = resp.json();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert!(got.is_empty(), "a refused request never reaches the provider");
    let retry = header_u64(&resp, "retry-after");
    assert!((1..=4).contains(&retry), "retry-after {retry}");
    assert_eq!(header_u64(&resp, "x-ai-ratelimit-remaining-2"), 0);
    assert_eq!(header_u64(&resp, "ratelimit-remaining"), 0);

    let (resp, got) = hello(&light, 1);
    assert_eq!(resp.status, 200, "another key keeps its own budget");
    assert_eq!(got.len(), 1);
}

#[test]
fn the_window_rolls_over_and_traffic_flows_again() {
    let key = test_id("roll");
    let (resp, _) = hello(&key, 300);
    assert_eq!(resp.status, 200);
    wait_until_refused(&key);
    let (resp, _) = hello(&key, 1);
    assert_eq!(resp.status, 429);
    let retry = header_u64(&resp, "retry-after");
    std::thread::sleep(Duration::from_secs(retry) + Duration::from_millis(200));
    let (resp, got) = hello(&key, 1);
    assert_eq!(resp.status, 200, "after Retry-After the budget is back: {}", resp.text());
    assert_eq!(got.len(), 1);
}

#[test]
fn streamed_responses_are_charged() {
    let key = test_id("stream");
    let (resp, _) = chat("/v1/chat/completions", &key, json!({"model": "m", "messages": [{"role": "user", "content": "a b c d e"}], "stream": true}));
    assert_eq!(resp.status, 200);
    assert!(resp.sse_data().iter().all(|e| !e.contains("\"usage\":{")), "no usage chunk was asked for");
    // 5 prompt words, "You said: a b c d e" is 7: 12 tokens, charged from
    // the usage ai-proxy read in the stream (and dropped for the client).
    eventually("the stream is charged 12", || remaining_today(&key) == 1_000_000 - 12);
}

#[test]
fn model_policy_applies_only_to_its_model() {
    let key = test_id("model");
    let (resp, _) = chat("/v1/chat/completions", &key, json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}));
    assert_eq!(resp.status, 200);
    // Both the per-key minute (300, scaled) and gpt-4o's (2000) show.
    assert_eq!(header_u64(&resp, "x-ai-ratelimit-limit-60"), 2000);
    let (resp, _) = chat("/v1/chat/completions", &key, json!({"model": "small", "messages": [{"role": "user", "content": "x"}]}));
    assert!(resp.header("x-ai-ratelimit-limit-60").is_none(), "{:?}", resp.headers);
}

#[test]
fn provider_policy_charges_cost_from_route_metadata() {
    let g = gateway();
    let key = test_id("cost");
    let (resp, got) = chat("/anthropic/v1/chat/completions", &key, json!({"messages": [{"role": "user", "content": "one two three"}]}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(got.len(), 1);
    let usage = resp.json()["usage"].clone();
    let (p, c) = (usage["prompt_tokens"].as_u64().unwrap_or(0), usage["completion_tokens"].as_u64().unwrap_or(0));
    // input 3 / output 15 per million tokens, counted in millionths (only
    // this test sends to the Anthropic route).
    let expected = p * 3 + c * 15;
    let spent = || g.envoy.stat("wasmcustom.ai_ratelimit_units_charged_total.policy.anthropic-spend");
    eventually("the Anthropic spend is charged", || spent() == expected);
    assert!(g.envoy.stat("wasmcustom.ai_ratelimit_requests_total.policy.anthropic-spend.outcome.allowed") >= 1);
    // Traffic to another provider is not charged to the Anthropic budget.
    let before = remaining_today(&key);
    let (resp, _) = hello(&key, 3);
    assert_eq!(resp.status, 200);
    let tokens = resp.usage()["total_tokens"].as_u64().unwrap_or(0);
    eventually("the OpenAI request is charged to the key", || remaining_today(&key) == before - tokens);
    assert_eq!(spent(), expected);
}

#[test]
fn rejections_are_counted() {
    let g = gateway();
    let key = test_id("count");
    let before = g.envoy.stat("wasmcustom.ai_ratelimit_requests_total.policy.per-api-key.outcome.rejected");
    let (resp, _) = hello(&key, 300);
    assert_eq!(resp.status, 200);
    wait_until_refused(&key);
    assert_eq!(hello(&key, 1).0.status, 429);
    let after = g.envoy.stat("wasmcustom.ai_ratelimit_requests_total.policy.per-api-key.outcome.rejected");
    assert!(after > before, "{before} -> {after}");
}

/// Sends a streamed chat and closes the connection once `seen` shows in the
/// answer: a client that leaves before the stream ends.
fn leave_stream_early(key: &str, words: &str, seen: &str) -> String {
    use std::io::{Read, Write};
    let id = test_id("early");
    let body = json!({"model": "m", "messages": [{"role": "user", "content": words}], "stream": true}).to_string();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gateway().envoy.ports.listener)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: {}\r\nauthorization: Bearer {key}\r\nx-test-id: {id}\r\nx-request-id: {id}\r\nx-fake-pause-before-end-ms: 3000\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).and_then(|_| s.write_all(body.as_bytes())).expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(seen) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => panic!("the stream ended before `{seen}`: {}", String::from_utf8_lossy(&got)),
            Ok(n) => got.extend_from_slice(buf.get(..n).unwrap_or_default()),
        }
    }
    drop(s); // gone, before the provider's usage
    id
}

#[test]
fn a_stream_the_client_leaves_is_charged_an_estimate() {
    let g = gateway();
    let key = test_id("left");
    let before = g.envoy.stat("wasmcustom.ai_ratelimit_estimated_charges_total.policy.per-api-key");
    // The fake streams "You said: a b c d e" and stalls before its finish
    // and usage chunks; the client leaves once it has the text.
    let id = leave_stream_early(&key, "a b c d e", r#""content":"e""#);
    // Prompt text "a b c d e" (9 bytes: 3 tokens) and the 19 bytes streamed
    // (5 tokens), at four bytes a token: 8, where the provider's count is 12.
    eventually("the stream is charged its estimate", || remaining_today(&key) == 1_000_000 - 8);
    let log = g.envoy.access_log(&id);
    assert_eq!(log["ai_usage_estimated"], "true", "{log}");
    assert_eq!(log["ai_total_tokens"], "8", "{log}");
    assert_eq!(g.envoy.stat("wasmcustom.ai_ratelimit_estimated_charges_total.policy.per-api-key"), before + 1);
}
