//! ai-proxy end to end: the real Envoy running envoy/envoy.yaml, every
//! cluster pointed at the fake provider, which records what it received.

use ai_gateway_tests::envoy::validate;
use ai_gateway_tests::fake::Recorded;
use ai_gateway_tests::http::{send, send_raw, Request, Response};
use ai_gateway_tests::{test_id, Gateway};
use serde_json::{json, Value};
use std::sync::OnceLock;

fn gateway() -> &'static Gateway {
    &started().0
}

/// The gateway and its wasm VM count right after start.
fn started() -> &'static (Gateway, u64) {
    static GATEWAY: OnceLock<(Gateway, u64)> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        let g = Gateway::start("envoy.yaml", &[("OPENAI_API_KEY", "sk-test-openai"), ("AZURE_OPENAI_API_KEY", "az-test-key"), ("MISTRAL_API_KEY", "mi-test-key")], &|y| y);
        let vms = g.envoy.vm_baseline();
        (g, vms)
    })
}

/// Sends a request tagged with a fresh test id; returns the response and
/// what the fake provider received for it.
fn call(req: Request) -> (Response, Vec<Recorded>) {
    let g = gateway();
    let id = test_id("t");
    let resp = send(g.envoy.ports.listener, &req.header("x-test-id", id.clone()));
    let got = g.fake.requests(&id);
    if resp.status >= 500 && resp.status != 502 {
        eprintln!("envoy log tail:\n{}", tail(&g.envoy.log(), 40));
    }
    // Every request, whatever it tested, must leave every wasm VM alive
    // (test.sh also checks each Envoy's whole log when the run ends).
    g.envoy.assert_no_vm_crash(started().1);
    (resp, got)
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn chat(path: &str, body: Value) -> (Response, Vec<Recorded>) {
    call(Request::post_json(path, &body))
}

fn only(got: &[Recorded]) -> &Recorded {
    assert_eq!(got.len(), 1, "expected exactly one upstream request, got {}", got.len());
    &got[0]
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// Content streamed in OpenAI chunks, concatenated.
fn streamed_text(events: &[String]) -> String {
    events
        .iter()
        .filter(|d| d.as_str() != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().or(v["choices"][0]["text"].as_str()).map(str::to_string))
        .collect()
}

#[test]
fn local_chat_passes_through_and_keeps_unknown_fields() {
    let body = json!({"model": "qwen2.5", "messages": user("hello there"), "seed": 7, "user": "u-1",
        "response_format": {"type": "json_object"}, "x_vendor_extension": {"a": [1, 2]}});
    let (resp, got) = chat("/v1/chat/completions", body.clone());
    assert_eq!(resp.status, 200, "{}", resp.text());
    let v = resp.json();
    assert_eq!(v["choices"][0]["message"]["content"], "You said: hello there");
    assert_eq!(v["usage"]["total_tokens"], 6);
    assert_eq!(resp.header("x-llm-model"), Some("openai/qwen2.5"));
    let up = only(&got);
    assert_eq!(up.path, "/v1/chat/completions");
    assert_eq!(up.header("host"), Some("127.0.0.1:8000"));
    assert_eq!(up.json(), body, "an untouched request goes upstream exactly as sent");
}

#[test]
fn stream_is_relayed_with_gateway_usage_chunk_removed() {
    let (resp, got) = chat("/v1/chat/completions", json!({"model": "m", "messages": user("one two three four"), "stream": true}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.header("content-type").unwrap_or_default().starts_with("text/event-stream"));
    let events = resp.sse_data();
    assert_eq!(streamed_text(&events), "You said: one two three four");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(!events.iter().any(|e| e.contains("\"choices\":[]")), "usage chunk must not reach a client that did not ask: {events:?}");
    assert_eq!(only(&got).json()["stream_options"]["include_usage"], true, "usage forced upstream");
}

#[test]
fn stream_usage_chunk_kept_when_client_asks() {
    let (resp, _) = chat("/v1/chat/completions", json!({"model": "m", "messages": user("a b"), "stream": true, "stream_options": {"include_usage": true}}));
    let events = resp.sse_data();
    let usage: Vec<Value> = events.iter().filter_map(|e| serde_json::from_str::<Value>(e).ok()).filter(|v| v["usage"].is_object()).collect();
    assert_eq!(usage.len(), 1, "{events:?}");
    assert_eq!(usage[0]["usage"]["prompt_tokens"], 2);
    assert_eq!(usage[0]["usage"]["completion_tokens"], 4);
}

#[test]
fn local_completions_and_embeddings() {
    let (resp, got) = chat("/v1/completions", json!({"model": "m", "prompt": "say this"}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["choices"][0]["text"], "You said: say this");
    assert_eq!(only(&got).path, "/v1/completions");

    let (resp, got) = chat("/v1/completions", json!({"model": "m", "prompt": "stream me", "stream": true}));
    assert_eq!(streamed_text(&resp.sse_data()), "You said: stream me");
    assert_eq!(only(&got).json()["stream_options"]["include_usage"], true);

    let (resp, got) = chat("/v1/embeddings", json!({"model": "e", "input": ["a b", "c"]}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let v = resp.json();
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    assert_eq!(only(&got).path, "/v1/embeddings");
}

#[test]
fn openai_credentials_are_injected_and_client_keys_dropped() {
    let req = Request::post_json("/openai/v1/chat/completions", &json!({"messages": user("hi")}))
        .header("authorization", "Bearer client-own-key")
        .header("x-api-key", "another-client-key");
    let (resp, got) = call(req);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let up = only(&got);
    assert_eq!(up.header("authorization"), Some("Bearer sk-test-openai"));
    assert_eq!(up.header("x-api-key"), None);
    assert_eq!(up.header("host"), Some("api.openai.com"));
    assert_eq!(up.path, "/v1/chat/completions");
    assert!(!resp.text().contains("sk-test-openai"));
}

#[test]
fn openai_model_is_pinned_and_options_filled() {
    let (resp, got) = chat("/openai/v1/chat/completions", json!({"messages": user("hi"), "temperature": 0.5}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let sent = only(&got).json();
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["max_tokens"], 1024);
    assert_eq!(sent["temperature"], 0.5);
    assert!(sent.get("top_k").is_none(), "OpenAI rejects top_k");

    let (resp, got) = chat("/openai/v1/chat/completions", json!({"model": "gpt-4o", "messages": user("hi")}));
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["error"]["message"], "cannot use own model - must be: gpt-4o-mini");
    assert!(got.is_empty(), "a refused request never reaches the provider");
}

#[test]
fn openai_completions_embeddings_and_stream_policy() {
    let (resp, got) = chat("/openai/v1/completions", json!({"prompt": "once upon"}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(only(&got).json()["max_tokens"], 256);

    let (resp, _) = chat("/openai/v1/completions", json!({"prompt": "once upon", "stream": true}));
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["error"]["code"], "stream_not_allowed");

    let (resp, got) = chat("/openai/v1/embeddings", json!({"input": "embed me"}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(only(&got).json()["model"], "text-embedding-3-small");
}

#[test]
fn azure_uses_deployment_urls_and_api_key() {
    for (path, deployment, body) in [
        ("/azure/v1/chat/completions", "gpt-4o/chat/completions", json!({"messages": user("hi")})),
        ("/azure/v1/completions", "instruct/completions", json!({"prompt": "hi"})),
        ("/azure/v1/embeddings", "embeddings/embeddings", json!({"input": "hi"})),
    ] {
        let (resp, got) = call(Request::post_json(path, &body).header("authorization", "Bearer client"));
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
        let up = only(&got);
        assert!(up.path.starts_with(&format!("/openai/deployments/{deployment}?api-version=")), "{}", up.path);
        assert_eq!(up.header("api-key"), Some("az-test-key"));
        assert_eq!(up.header("authorization"), None);
        assert_eq!(up.header("host"), Some("my-instance.openai.azure.com"));
    }
    let (resp, _) = chat("/azure/v1/chat/completions", json!({"messages": user("x y"), "stream": true}));
    assert_eq!(streamed_text(&resp.sse_data()), "You said: x y");
}

/// What the official OpenAI SDK sends, against a fake that validates like
/// Mistral (422 `extra_forbidden` for any field it does not know).
#[test]
fn mistral_gets_only_what_it_accepts_and_answers_with_openai_semantics() {
    // A stream the client did not ask usage for: none reaches it, although
    // Mistral puts usage on its last chunk (the gateway still counts it).
    let (resp, got) = chat("/mistral/v1/chat/completions", json!({"messages": user("bonjour"), "stream": true}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let sent = only(&got).json();
    assert!(sent.get("stream_options").is_none());
    assert_eq!(sent["temperature"], 0.3);
    assert_eq!(sent["model"], "mistral-small-latest");
    let events = resp.sse_data();
    assert_eq!(streamed_text(&events), "You said: bonjour");
    assert!(events.iter().all(|e| !e.contains("\"usage\"")), "no usage unless asked: {events:?}");

    // Asked for: no 422 for stream_options, and the usage arrives.
    let (resp, got) = chat("/mistral/v1/chat/completions", json!({"messages": user("bonjour"), "stream": true, "stream_options": {"include_usage": true}}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(only(&got).json().get("stream_options").is_none(), "Mistral rejects stream_options");
    let chunks: Vec<Value> = resp.sse_data().iter().filter_map(|e| serde_json::from_str::<Value>(e).ok()).collect();
    let usage: Vec<&Value> = chunks.iter().filter(|v| v["usage"].is_object()).collect();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["usage"]["total_tokens"], 4);
    // OpenAI's contract, which the SDKs read: the finish_reason on a content
    // chunk, then one last chunk with `choices: []` and the usage.
    assert_eq!(usage[0]["choices"], json!([]), "usage on a chunk that still has a choice: {}", usage[0]);
    assert_eq!(chunks.last().map(|c| &c["usage"]), Some(&usage[0]["usage"]), "the usage chunk comes last");
    let finish = chunks.iter().find(|c| c["choices"][0]["finish_reason"] == "stop").expect("a finishing chunk");
    assert!(finish.get("usage").is_none(), "{finish}");
    assert_eq!(usage[0]["id"], finish["id"]);

    // Fields OpenAI clients send: mapped or dropped, never a 422.
    let body = json!({"messages": user("hi"), "max_completion_tokens": 64, "seed": 7, "user": "u-1", "store": false,
                      "metadata": {"team": "a"}, "service_tier": "auto", "reasoning_effort": "low", "parallel_tool_calls": false,
                      "response_format": {"type": "json_object"}, "n": 1});
    let (resp, got) = chat("/mistral/v1/chat/completions", body);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let sent = only(&got).json();
    assert_eq!((sent["max_tokens"].clone(), sent["random_seed"].clone()), (json!(64), json!(7)));
    for gone in ["max_completion_tokens", "seed", "user", "store", "metadata", "service_tier", "reasoning_effort"] {
        assert!(sent.get(gone).is_none(), "{gone} reached Mistral: {sent}");
    }
    assert_eq!((sent["parallel_tool_calls"].clone(), sent["response_format"]["type"].clone(), sent["n"].clone()), (json!(false), json!("json_object"), json!(1)));

    // Asking for what Mistral cannot give is a clear 400, before upstream.
    let (resp, got) = chat("/mistral/v1/chat/completions", json!({"messages": user("hi"), "logprobs": true}));
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(resp.json()["error"]["message"].as_str().is_some_and(|m| m.contains("logprobs")), "{}", resp.text());
    assert!(got.is_empty());

    // Streamed tool calls: Mistral leaves `type` out; OpenAI clients need it.
    let tools = json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]);
    let (resp, _) = chat("/mistral/v1/chat/completions", json!({"messages": user("find it"), "tools": tools, "stream": true}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let first_call = resp.sse_data().iter().filter_map(|e| serde_json::from_str::<Value>(e).ok()).find_map(|v| v["choices"][0]["delta"]["tool_calls"][0].as_object().cloned());
    assert_eq!(first_call.map(|c| c["type"].clone()), Some(json!("function")));

    let (resp, got) = chat("/mistral/v1/embeddings", json!({"input": ["a"]}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(only(&got).header("authorization"), Some("Bearer mi-test-key"));
}

#[test]
fn ollama_native_chat_is_translated_both_ways() {
    let (resp, got) = chat("/ollama/v1/chat/completions", json!({"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "why is the sky blue"}]}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let up = only(&got);
    assert_eq!(up.path, "/api/chat");
    let sent = up.json();
    assert_eq!(sent["stream"], false);
    assert_eq!(sent["options"]["top_k"], 40);
    assert_eq!(sent["options"]["num_predict"], 512);
    assert_eq!(sent["messages"][0]["role"], "system");
    let v = resp.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "You said: why is the sky blue");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"], json!({"prompt_tokens": 7, "completion_tokens": 7, "total_tokens": 14}));
}

#[test]
fn ollama_stream_becomes_sse() {
    let (resp, got) = chat("/ollama/v1/chat/completions", json!({"messages": user("tell me more"), "stream": true, "stream_options": {"include_usage": true}}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(only(&got).json()["stream"], true);
    assert!(resp.header("content-type").unwrap_or_default().starts_with("text/event-stream"));
    let events = resp.sse_data();
    assert_eq!(streamed_text(&events), "You said: tell me more");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap_or_default();
    assert_eq!(usage["usage"]["total_tokens"], 8);
}

#[test]
fn ollama_completions_and_embeddings() {
    let (resp, got) = chat("/ollama/v1/completions", json!({"prompt": "roses are red"}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(only(&got).path, "/api/generate");
    assert_eq!(resp.json()["choices"][0]["text"], "You said: roses are red");

    let (resp, _) = chat("/ollama/v1/completions", json!({"prompt": "violets", "stream": true}));
    assert_eq!(streamed_text(&resp.sse_data()), "You said: violets");

    let (resp, got) = chat("/ollama/v1/embeddings", json!({"input": ["x y", "z"]}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(only(&got).path, "/api/embed");
    let v = resp.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["usage"]["prompt_tokens"], 3);
}

fn error_call(path: &str, body: Value, headers: &[(&'static str, &'static str)]) -> Response {
    let mut req = Request::post_json(path, &body);
    for (n, v) in headers {
        req = req.header(n, *v);
    }
    call(req).0
}

/// Path, body, fake-provider headers, expected status, expected message part.
type ErrorCase = (&'static str, Value, &'static [(&'static str, &'static str)], u16, &'static str);

#[test]
fn upstream_errors_come_back_in_openai_shape_with_status_kept() {
    let cases: [ErrorCase; 6] = [
        ("/openai/v1/chat/completions", json!({"messages": user("x")}), &[("x-fake-status", "429")], 429, "Rate limit reached"),
        ("/mistral/v1/chat/completions", json!({"messages": user("x")}), &[("x-fake-status", "429")], 429, "Rate limit exceeded"),
        ("/ollama/v1/chat/completions", json!({"messages": user("x")}), &[("x-fake-status", "404")], 404, "not found, try pulling it first"),
        ("/v1/chat/completions", json!({"model": "m", "messages": user("x")}), &[("x-fake-status", "500")], 500, "Internal server error in the model runner"),
        ("/v1/chat/completions", json!({"model": "m", "messages": user("x")}), &[("x-fake-status", "502"), ("x-fake-error-body", "html")], 502, "non-JSON body"),
        ("/v1/chat/completions", json!({"model": "m", "messages": user("x")}), &[("x-fake-status", "503"), ("x-fake-error-body", "text")], 503, "upstream overloaded"),
    ];
    for (path, body, headers, status, message) in cases {
        let resp = error_call(path, body, headers);
        assert_eq!(resp.status, status, "{path}: {}", resp.text());
        let v = resp.json();
        let got = v["error"]["message"].as_str().unwrap_or_default();
        assert!(got.contains(message), "{path}: {got}");
        assert!(v["error"]["type"].is_string());
    }
}

#[test]
fn success_status_with_unreadable_json_becomes_502() {
    let resp = error_call("/v1/chat/completions", json!({"model": "m", "messages": user("x")}), &[("x-fake-broken-json", "1")]);
    assert_eq!(resp.status, 502, "{}", resp.text());
    assert_eq!(resp.json()["error"]["type"], "upstream_error");
}

#[test]
fn envoy_own_errors_are_reshaped_too() {
    // No upstream listens here: Envoy's own 503 text becomes OpenAI's shape.
    let resp = error_call("/v1/chat/completions", json!({"model": "m", "messages": user("x")}), &[("x-fake-close", "1")]);
    assert!(resp.status >= 500, "{}", resp.text());
    assert!(resp.json()["error"]["message"].is_string(), "{}", resp.text());
}

#[test]
fn success_status_with_html_body_becomes_502() {
    let resp = error_call("/v1/chat/completions", json!({"model": "m", "messages": user("x")}), &[("x-fake-content-type", "text/html")]);
    assert_eq!(resp.status, 502);
    assert!(resp.json()["error"]["message"].as_str().unwrap_or_default().contains("not JSON"));
}

#[test]
fn bad_requests_get_clear_openai_errors_and_never_reach_upstream() {
    let g = gateway();
    let cases: Vec<(Request, u16, &str)> = vec![
        (Request { method: "POST", path: "/v1/chat/completions", headers: vec![("content-type", "application/json".into())], body: b"{not json".to_vec() }, 400, "not valid JSON"),
        (Request { method: "POST", path: "/v1/chat/completions", headers: vec![("content-type", "text/plain".into())], body: b"{}".to_vec() }, 415, "application/json"),
        (Request { method: "POST", path: "/v1/chat/completions", headers: vec![("content-type", "application/json".into())], body: vec![] }, 400, "empty"),
        (Request { method: "GET", path: "/v1/chat/completions", headers: vec![], body: vec![] }, 405, "POST"),
        (Request::post_json("/v1/completions", &json!({"model": "m", "messages": user("x")})), 400, "chat request with `messages`"),
        (Request::post_json("/v1/chat/completions", &json!({"model": "m", "prompt": "x"})), 400, "completions request with `prompt`"),
        (Request::post_json("/v1/chat/completions", &json!({"model": "m", "messages": "hi"})), 400, "invalid chat completion request"),
        (Request { method: "POST", path: "/v1/chat/completions", headers: vec![("content-type", "application/json".into())], body: b"\xff\xfe{\"a\":1}".to_vec() }, 400, "not valid JSON"),
    ];
    for (req, status, message) in cases {
        let id = test_id("bad");
        let resp = send(g.envoy.ports.listener, &req.header("x-test-id", id.clone()));
        assert_eq!(resp.status, status, "{}", resp.text());
        assert!(resp.json()["error"]["message"].as_str().unwrap_or_default().contains(message), "{}", resp.text());
        assert!(g.fake.requests(&id).is_empty(), "a rejected request must not reach the provider");
    }
}

#[test]
fn oversized_bodies_get_413() {
    let g = gateway();
    let big = json!({"model": "m", "messages": user(&"x".repeat(9 * 1024 * 1024))});
    let id = test_id("big");
    let resp = send(g.envoy.ports.listener, &Request::post_json("/v1/chat/completions", &big).header("x-test-id", id.clone()));
    assert_eq!(resp.status, 413, "{}", resp.text());
    assert_eq!(resp.json()["error"]["code"], "request_too_large");
    assert!(g.fake.requests(&id).is_empty(), "rejected from content-length in the headers phase");

    // Without a content-length (chunked upload) the body phase catches it.
    let body = serde_json::to_vec(&big).unwrap_or_default();
    let mut raw = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nx-test-id: {id}\r\n\r\n").into_bytes();
    for piece in body.chunks(1 << 20) {
        raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        raw.extend_from_slice(piece);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let resp = send_raw(g.envoy.ports.listener, &raw);
    assert_eq!(resp.status, 413, "{}", resp.text());
    assert!(g.fake.requests(&id).is_empty());
}

#[test]
fn usage_is_published_to_the_access_log() {
    let g = gateway();
    let rid = test_id("rid");
    let req = Request::post_json("/openai/v1/chat/completions", &json!({"messages": user("count these five words please")})).header("x-request-id", rid.clone());
    let (resp, _) = call(req);
    assert_eq!(resp.status, 200);
    let v = g.envoy.access_log(&rid);
    assert_eq!(v["ai_provider"], "openai");
    assert_eq!(v["ai_request_model"], "gpt-4o-mini");
    assert_eq!(v["ai_response_model"], "gpt-4o-mini");
    assert_eq!(v["ai_prompt_tokens"], "5");
    assert_eq!(v["ai_completion_tokens"], "7");
    assert_eq!(v["ai_total_tokens"], "12");
    // 5 * 0.15 / 1e6 + 7 * 0.6 / 1e6
    assert_eq!(v["ai_cost"], "0.00000495");
}

#[test]
fn logged_paths_never_carry_the_query() {
    let g = gateway();
    let rid = test_id("azq");
    let (resp, got) = call(Request::post_json("/azure/v1/chat/completions", &json!({"messages": user("x")})).header("x-request-id", rid.clone()));
    assert_eq!(resp.status, 200);
    assert!(only(&got).path.contains("?api-version="));
    let line = g.envoy.access_log(&rid);
    assert_eq!(line["upstream_path"], "/openai/deployments/gpt-4o/chat/completions");
    assert_eq!(line["client_path"], "/azure/v1/chat/completions");
}

#[test]
fn configured_secrets_never_reach_logs_or_clients() {
    let g = gateway();
    for path in ["/openai/v1/chat/completions", "/azure/v1/chat/completions", "/mistral/v1/chat/completions"] {
        let rid = ai_gateway_tests::test_id("secrets");
        let (resp, _) = call(Request::post_json(path, &json!({"messages": user("secret check"), "stream": true})).header("x-request-id", rid.clone()));
        assert_eq!(resp.status, 200);
        assert!(!resp.text().contains("test-") && resp.headers.iter().all(|(_, v)| !v.contains("test-key") && !v.contains("sk-test")));
        // Its access-log line is written last: everything it logged is in.
        g.envoy.access_log(&rid);
    }
    let log = g.envoy.log();
    for secret in ["sk-test-openai", "az-test-key", "mi-test-key"] {
        assert!(!log.contains(secret), "{secret} appears in Envoy's log");
    }
}

#[test]
fn bad_plugin_configuration_is_rejected_naming_the_field() {
    let yaml = std::fs::read_to_string(ai_gateway_tests::envoy::repo_root().join("envoy/envoy.yaml")).unwrap_or_default();
    let (ok, out) = validate(&yaml, "good");
    assert!(ok, "the shipped config must validate:\n{out}");

    let bad = yaml.replacen("\"max_tokens\":1024", "\"max_tokenz\":1024", 1);
    assert_ne!(bad, yaml);
    let (ok, out) = validate(&bad, "bad-field");
    assert!(!ok, "a misspelled option must stop Envoy");
    assert!(out.contains("model.options.max_tokenz") && out.contains("unknown field"), "{out}");

    let bad = yaml.replacen("\"temperature\":0.3", "\"temperature\":7", 1);
    let (ok, out) = validate(&bad, "bad-range");
    assert!(!ok);
    assert!(out.contains("model.options.temperature") && out.contains("out of range"), "{out}");
}

#[test]
fn a_missing_key_is_logged_once_not_once_per_worker() {
    // ANTHROPIC_API_KEY is not set for this gateway; Envoy runs two workers
    // (and a main-thread VM), each configuring every ai-proxy instance.
    let g = gateway();
    let log = g.envoy.log();
    let lines = log.lines().filter(|l| l.contains("ai-proxy-anthropic-chat: no credential at")).count();
    assert_eq!(lines, 1, "{}", log.lines().filter(|l| l.contains("no credential")).collect::<Vec<_>>().join("\n"));
    assert!(log.contains("ANTHROPIC_API_KEY"), "the line names the variable");
}

/// OpenAI's Responses API through the gateway with the official SDK
/// unchanged: create, and a stream read by the SDK's own accumulator (a
/// Responses stream ends with `response.completed`, not `[DONE]`).
#[test]
fn the_openai_sdk_speaks_the_responses_api_through_the_gateway() {
    let g = gateway();
    let id = test_id("responses");
    let base = format!("http://127.0.0.1:{}/openai/v1", g.envoy.ports.listener);
    let script = r#"
import json, sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="client-key", max_retries=0, default_headers={"x-test-id": sys.argv[2]})
r = client.responses.create(model="gpt-4o-mini", instructions="Be brief.", input="hello there")
with client.responses.stream(model="gpt-4o-mini", input=[{"role": "user", "content": "stream this"}]) as s:
    deltas = [e.delta for e in s if e.type == "response.output_text.delta"]
    final = s.get_final_response()
print(json.dumps({"text": r.output_text, "usage": r.usage.total_tokens, "status": r.status,
                  "deltas": len(deltas), "streamed": final.output_text, "stream_usage": final.usage.total_tokens}))
"#;
    let out = std::process::Command::new(ai_gateway_tests::envoy::repo_root().join(".venv/bin/python"))
        .args(["-c", script, &base, &id])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(r["text"], "You said: hello there", "{r}");
    assert_eq!(r["status"], "completed");
    assert_eq!(r["streamed"], "You said: stream this", "{r}");
    assert!(r["deltas"].as_u64().unwrap_or(0) >= 3, "{r}");
    let got = g.fake.requests(&id);
    assert_eq!(got.len(), 2);
    for sent in &got {
        assert_eq!(sent.path, "/v1/responses");
        assert_eq!(sent.header("authorization"), Some("Bearer sk-test-openai"), "the client's key is replaced");
    }
    assert_eq!(got[0].json()["instructions"], "Be brief.", "the body goes as the client sent it");
    // Usage is read from the answer and from the stream's response.completed.
    let total = r["usage"].as_u64().unwrap_or(0) + r["stream_usage"].as_u64().unwrap_or(0);
    assert!(total > 0);
    let counted = || g.envoy.stat("wasmcustom.ai_llm_tokens_total.provider.openai.model.gpt-4o-mini.consumer.anonymous.token_type.total.route.openai-responses");
    ai_gateway_tests::eventually("the Responses usage is counted", || counted() >= total);
}
