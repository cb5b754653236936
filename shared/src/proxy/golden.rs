//! Golden tests: one OpenAI request through each native provider, and each
//! provider's documented answer and stream back to OpenAI's format. Streams
//! are replayed split at every byte offset and must give the same events.
//!
//! Expected files live in `shared/fixtures/<provider>/`; after a deliberate
//! change, `UPDATE_GOLDEN=1 cargo test -p ai-gateway-codec golden` rewrites
//! them (natively), and the diff is reviewed like code.

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::config::ProxyConfig;
use super::eventstream;
use super::Exchange;
use serde_json::Value;
use std::rc::Rc;

const REQUEST: &str = include_str!("../../fixtures/chat_request.json");

struct Case {
    name: &'static str,
    config: &'static str,
    expected_request: &'static str,
    response: &'static str,
    expected_response: &'static str,
    stream_content_type: &'static str,
    stream: fn() -> Vec<u8>,
    expected_stream: &'static str,
}

fn sse(text: &'static str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

fn bedrock_frames() -> Vec<u8> {
    include_str!("../../fixtures/bedrock/stream.jsonl")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|v| {
            let event = v["event"].as_str().unwrap_or_default().to_string();
            let payload = v["payload"].to_string();
            eventstream::encode(&[(":event-type", &event), (":content-type", "application/json"), (":message-type", "event")], payload.as_bytes())
        })
        .collect()
}

macro_rules! fixture {
    ($p:literal, $f:literal) => {
        include_str!(concat!("../../fixtures/", $p, "/", $f))
    };
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "anthropic",
            config: r#"{"auth":{"header_name":"x-api-key","header_value":"k"},"model":{"provider":"anthropic","name":"test-model"}}"#,
            expected_request: fixture!("anthropic", "request.expected.json"),
            response: fixture!("anthropic", "response.json"),
            expected_response: fixture!("anthropic", "response.expected.json"),
            stream_content_type: "text/event-stream; charset=utf-8",
            stream: || sse(fixture!("anthropic", "stream.sse")),
            expected_stream: fixture!("anthropic", "stream.expected.jsonl"),
        },
        Case {
            name: "cohere",
            config: r#"{"auth":{"header_name":"Authorization","header_value":"Bearer k"},"model":{"provider":"cohere","name":"test-model"}}"#,
            expected_request: fixture!("cohere", "request.expected.json"),
            response: fixture!("cohere", "response.json"),
            expected_response: fixture!("cohere", "response.expected.json"),
            stream_content_type: "text/event-stream",
            stream: || sse(fixture!("cohere", "stream.sse")),
            expected_stream: fixture!("cohere", "stream.expected.jsonl"),
        },
        Case {
            name: "gemini",
            config: r#"{"auth":{"header_name":"x-goog-api-key","header_value":"k"},"model":{"provider":"gemini","name":"test-model"}}"#,
            expected_request: fixture!("gemini", "request.expected.json"),
            response: fixture!("gemini", "response.json"),
            expected_response: fixture!("gemini", "response.expected.json"),
            stream_content_type: "text/event-stream",
            stream: || sse(fixture!("gemini", "stream.sse")),
            expected_stream: fixture!("gemini", "stream.expected.jsonl"),
        },
        Case {
            name: "bedrock",
            config: r#"{"auth":{"aws_access_key_id":"AKID","aws_secret_access_key":"secret"},"model":{"provider":"bedrock","name":"test-model","options":{"bedrock":{"aws_region":"us-east-1"}}}}"#,
            expected_request: fixture!("bedrock", "request.expected.json"),
            response: fixture!("bedrock", "response.json"),
            expected_response: fixture!("bedrock", "response.expected.json"),
            stream_content_type: "application/vnd.amazon.eventstream",
            stream: bedrock_frames,
            expected_stream: fixture!("bedrock", "stream.expected.jsonl"),
        },
        Case {
            name: "ollama",
            config: r#"{"model":{"provider":"ollama","name":"test-model","options":{"upstream_url":"http://ollama:11434"}}}"#,
            expected_request: fixture!("ollama", "request.expected.json"),
            response: fixture!("ollama", "response.json"),
            expected_response: fixture!("ollama", "response.expected.json"),
            stream_content_type: "application/x-ndjson",
            stream: || sse(fixture!("ollama", "stream.ndjson")),
            expected_stream: fixture!("ollama", "stream.expected.jsonl"),
        },
        Case {
            name: "mistral",
            config: r#"{"auth":{"header_name":"Authorization","header_value":"Bearer k"},"model":{"provider":"mistral","name":"test-model"}}"#,
            expected_request: fixture!("mistral", "request.expected.json"),
            response: fixture!("mistral", "response.json"),
            expected_response: fixture!("mistral", "response.expected.json"),
            stream_content_type: "text/event-stream",
            stream: || sse(fixture!("mistral", "stream.sse")),
            expected_stream: fixture!("mistral", "stream.expected.jsonl"),
        },
    ]
}

fn exchange(config: &str) -> Exchange {
    let cfg = ProxyConfig::from_json(config.as_bytes(), &|_| None).unwrap();
    Exchange::new(Rc::new(cfg), "req42".into(), 1_700_000_000)
}

#[cfg(not(target_arch = "wasm32"))]
fn update(name: &str, file: &str, text: &str) -> bool {
    if std::env::var_os("UPDATE_GOLDEN").is_none() {
        return false;
    }
    let path = format!("{}/fixtures/{name}/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::write(path, text).unwrap();
    true
}

#[cfg(target_arch = "wasm32")]
fn update(_: &str, _: &str, _: &str) -> bool {
    false
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap() + "\n"
}

#[test]
fn requests_translate_to_each_providers_format() {
    for case in cases() {
        let mut x = exchange(case.config);
        // None: the client's bytes go upstream as they are.
        let body = x.request_body(REQUEST.as_bytes()).unwrap().unwrap_or_else(|| REQUEST.as_bytes().to_vec());
        let got: Value = serde_json::from_slice(&body).unwrap();
        if update(case.name, "request.expected.json", &pretty(&got)) {
            continue;
        }
        let want: Value = serde_json::from_str(case.expected_request).unwrap_or(Value::Null);
        assert_eq!(got, want, "{}", case.name);
    }
}

#[test]
fn responses_translate_to_openai() {
    for case in cases() {
        let mut x = exchange(case.config);
        x.request_body(REQUEST.as_bytes()).unwrap();
        x.response_headers(200, Some("application/json"));
        let edit = x.response_body(case.response.as_bytes());
        assert_eq!(edit.status, None, "{}", case.name);
        let got: Value = serde_json::from_slice(&edit.body.unwrap_or_else(|| case.response.as_bytes().to_vec())).unwrap();
        if update(case.name, "response.expected.json", &pretty(&got)) {
            continue;
        }
        let want: Value = serde_json::from_str(case.expected_response).unwrap_or(Value::Null);
        assert_eq!(got, want, "{}", case.name);
        assert_eq!(x.usage(), serde_json::from_value(want["usage"].clone()).ok(), "{}", case.name);
    }
}

fn run_stream(case: &Case, input: &[u8], split: usize) -> (Vec<String>, Option<crate::openai::Usage>) {
    let mut x = exchange(case.config);
    let mut req: Value = serde_json::from_str(REQUEST).unwrap();
    req["stream"] = Value::Bool(true);
    req["stream_options"] = serde_json::json!({"include_usage": true});
    x.request_body(req.to_string().as_bytes()).unwrap();
    x.response_headers(200, Some(case.stream_content_type));
    assert!(x.is_stream(), "{}", case.name);
    let (a, b) = input.split_at(split);
    let mut out = x.response_chunk(a, false);
    out.extend(x.response_chunk(b, false));
    out.extend(x.response_chunk(b"", true));
    let mut d = crate::sse::SseDecoder::new(0);
    let mut events = Vec::new();
    d.push(&out, &mut events);
    d.finish(&mut events);
    (events.into_iter().map(|e| e.data).collect(), x.usage())
}

#[test]
fn streams_translate_to_openai_chunks_at_every_split() {
    for case in cases() {
        let input = (case.stream)();
        let (whole, usage) = run_stream(&case, &input, 0);
        let text = whole.join("\n") + "\n";
        if !update(case.name, "stream.expected.jsonl", &text) {
            assert_eq!(text, case.expected_stream, "{}", case.name);
        }
        assert!(usage.is_some(), "{}: usage known after the stream", case.name);
        for at in 1..=input.len() {
            let (split, _) = run_stream(&case, &input, at);
            assert_eq!(split, whole, "{} split at {at}", case.name);
        }
    }
}

#[test]
fn provider_error_mid_stream_becomes_an_openai_error_event() {
    let anthropic = cases().into_iter().next().unwrap();
    let mut x = exchange(anthropic.config);
    x.request_body(br#"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#).unwrap();
    x.response_headers(200, Some("text/event-stream"));
    let out = x.response_chunk(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5}}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n", true);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(r#"{"error":{"message":"Overloaded","type":"upstream_error""#), "{text}");
    assert!(!text.contains("[DONE]"));

    let mut x = exchange(cases()[3].config);
    x.request_body(br#"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#).unwrap();
    x.response_headers(200, Some("application/vnd.amazon.eventstream"));
    let frame = eventstream::encode(&[(":message-type", "exception"), (":exception-type", "throttlingException")], br#"{"message":"Too many requests"}"#);
    let text = String::from_utf8(x.response_chunk(&frame, true)).unwrap();
    assert!(text.contains("throttlingException: Too many requests"), "{text}");
}

#[test]
fn an_unreadable_event_ends_every_translated_stream_with_an_error() {
    for case in cases().into_iter().filter(|c| c.name != "mistral") {
        let garbage = match case.name {
            "bedrock" => eventstream::encode(&[(":event-type", "contentBlockDelta"), (":message-type", "event")], b"{not json"),
            "ollama" => b"{not json\n".to_vec(),
            _ => b"data: {not json\n\n".to_vec(),
        };
        let mut x = exchange(case.config);
        x.request_body(br#"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#).unwrap();
        x.response_headers(200, Some(case.stream_content_type));
        let mut out = x.response_chunk(&garbage, false);
        out.extend(x.response_chunk(&(case.stream)(), true));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("could not read").count(), 1, "{}: {text}", case.name);
        assert!(!text.contains("[DONE]"), "{}: the stream is not presented as complete", case.name);
    }
}

// Claude clients (`llm_format: anthropic`): one Messages request to every
// provider, and every provider's answer and stream back to Anthropic's
// message and named events. Expected files: `messages.*` beside the others.

const MESSAGES_REQUEST: &str = include_str!("../../fixtures/messages_request.json");

fn messages_cases() -> Vec<Case> {
    let mut cases = cases();
    cases.push(Case {
        name: "openai",
        config: r#"{"auth":{"header_name":"Authorization","header_value":"Bearer k"},"model":{"provider":"openai","name":"test-model"}}"#,
        expected_request: fixture!("openai", "messages.request.expected.json"),
        response: fixture!("openai", "response.json"),
        expected_response: fixture!("openai", "messages.response.expected.json"),
        stream_content_type: "text/event-stream",
        stream: || sse(fixture!("openai", "stream.sse")),
        expected_stream: fixture!("openai", "messages.stream.expected.txt"),
    });
    for case in &mut cases {
        let (request, response, stream) = match case.name {
            "anthropic" => (fixture!("anthropic", "messages.request.expected.json"), fixture!("anthropic", "messages.response.expected.json"), fixture!("anthropic", "messages.stream.expected.txt")),
            "cohere" => (fixture!("cohere", "messages.request.expected.json"), fixture!("cohere", "messages.response.expected.json"), fixture!("cohere", "messages.stream.expected.txt")),
            "gemini" => (fixture!("gemini", "messages.request.expected.json"), fixture!("gemini", "messages.response.expected.json"), fixture!("gemini", "messages.stream.expected.txt")),
            "bedrock" => (fixture!("bedrock", "messages.request.expected.json"), fixture!("bedrock", "messages.response.expected.json"), fixture!("bedrock", "messages.stream.expected.txt")),
            "ollama" => (fixture!("ollama", "messages.request.expected.json"), fixture!("ollama", "messages.response.expected.json"), fixture!("ollama", "messages.stream.expected.txt")),
            "mistral" => (fixture!("mistral", "messages.request.expected.json"), fixture!("mistral", "messages.response.expected.json"), fixture!("mistral", "messages.stream.expected.txt")),
            _ => continue,
        };
        case.expected_request = request;
        case.expected_response = response;
        case.expected_stream = stream;
    }
    cases
}

fn messages_exchange(config: &str) -> Exchange {
    exchange(&config.replacen('{', r#"{"llm_format":"anthropic","#, 1))
}

#[test]
fn messages_requests_translate_to_each_providers_format() {
    for case in messages_cases() {
        let mut x = messages_exchange(case.config);
        let body = x.request_body(MESSAGES_REQUEST.as_bytes()).unwrap().unwrap_or_else(|| MESSAGES_REQUEST.as_bytes().to_vec());
        let got: Value = serde_json::from_slice(&body).unwrap();
        if update(case.name, "messages.request.expected.json", &pretty(&got)) {
            continue;
        }
        let want: Value = serde_json::from_str(case.expected_request).unwrap_or(Value::Null);
        assert_eq!(got, want, "{}", case.name);
    }
}

#[test]
fn messages_responses_translate_to_anthropic() {
    for case in messages_cases() {
        let mut x = messages_exchange(case.config);
        x.request_body(MESSAGES_REQUEST.as_bytes()).unwrap();
        x.response_headers(200, Some("application/json"));
        let edit = x.response_body(case.response.as_bytes());
        assert_eq!(edit.status, None, "{}", case.name);
        let got: Value = serde_json::from_slice(&edit.body.unwrap_or_else(|| case.response.as_bytes().to_vec())).unwrap();
        if update(case.name, "messages.response.expected.json", &pretty(&got)) {
            continue;
        }
        let want: Value = serde_json::from_str(case.expected_response).unwrap_or(Value::Null);
        assert_eq!(got, want, "{}", case.name);
        assert_eq!(got["type"], "message", "{}", case.name);
        assert!(x.usage().is_some(), "{}: usage published", case.name);
    }
}

fn run_messages_stream(case: &Case, input: &[u8], split: usize) -> String {
    let mut x = messages_exchange(case.config);
    let mut req: Value = serde_json::from_str(MESSAGES_REQUEST).unwrap();
    req["stream"] = Value::Bool(true);
    x.request_body(req.to_string().as_bytes()).unwrap();
    x.response_headers(200, Some(case.stream_content_type));
    assert!(x.is_stream(), "{}", case.name);
    let (a, b) = input.split_at(split);
    let mut out = x.response_chunk(a, false);
    out.extend(x.response_chunk(b, false));
    out.extend(x.response_chunk(b"", true));
    assert!(x.usage().is_some(), "{}: usage known after the stream", case.name);
    String::from_utf8(out).unwrap()
}

#[test]
fn messages_streams_are_anthropic_events_at_every_split() {
    for case in messages_cases() {
        let input = (case.stream)();
        let whole = run_messages_stream(&case, &input, 0);
        if !update(case.name, "messages.stream.expected.txt", &whole) {
            assert_eq!(whole, case.expected_stream, "{}", case.name);
        }
        if case.name != "anthropic" {
            // Anthropic's order: start, blocks, delta with usage, stop.
            let names: Vec<&str> = whole.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
            assert_eq!(names.first(), Some(&"message_start"), "{}", case.name);
            assert_eq!(&names[names.len() - 2..], ["message_delta", "message_stop"], "{}", case.name);
        }
        for at in 1..=input.len() {
            assert_eq!(run_messages_stream(&case, &input, at), whole, "{} split at {at}", case.name);
        }
    }
}

/// The early-stream estimate (four bytes of text a token) against what each
/// provider's recorded transcript reports, printed for the docs
/// (docs/ai-token-ratelimit.md): `cargo test -p ai-gateway-codec estimate_error -- --nocapture`.
#[test]
fn estimate_error_on_the_fixtures_transcripts() {
    let prompt = crate::usage::tokens_for(crate::usage::text_bytes(REQUEST.as_bytes()));
    for case in cases() {
        let input = (case.stream)();
        let mut x = exchange(case.config);
        let mut req: Value = serde_json::from_str(REQUEST).unwrap();
        req["stream"] = Value::Bool(true);
        x.request_body(req.to_string().as_bytes()).unwrap();
        x.response_headers(200, Some(case.stream_content_type));
        let mut out = x.response_chunk(&input, false);
        out.extend(x.response_chunk(b"", true));
        let reported = x.usage().unwrap();
        let completion = crate::usage::tokens_for(crate::usage::text_bytes(&out));
        println!("{:10} prompt {:>4} estimated {:>4} | completion {:>4} estimated {:>4}", case.name, reported.prompt_tokens, prompt, reported.completion_tokens, completion);
        assert!(completion > 0 || reported.completion_tokens == 0, "{}: text streamed, none estimated", case.name);
    }
}

// Responses API clients on providers that do not speak it: one Responses
// request to every provider, and every provider's answer and stream back
// as a `response` object and the Responses API's named events. Expected
// files: `responses.*` beside the others.

const RESPONSES_REQUEST: &str = include_str!("../../fixtures/responses_request.json");

fn responses_cases() -> Vec<Case> {
    let mut cases = cases();
    cases.push(Case {
        name: "openai",
        // An OpenAI-compatible server (`llama2`, OpenAI format) has no Responses API.
        config: r#"{"model":{"provider":"llama2","name":"test-model","options":{"llama2_format":"openai","upstream_url":"http://vllm:8000"}}}"#,
        expected_request: "",
        response: fixture!("openai", "response.json"),
        expected_response: "",
        stream_content_type: "text/event-stream",
        stream: || sse(fixture!("openai", "stream.sse")),
        expected_stream: "",
    });
    for case in &mut cases {
        let (request, response, stream) = match case.name {
            "anthropic" => (fixture!("anthropic", "responses.request.expected.json"), fixture!("anthropic", "responses.response.expected.json"), fixture!("anthropic", "responses.stream.expected.txt")),
            "cohere" => (fixture!("cohere", "responses.request.expected.json"), fixture!("cohere", "responses.response.expected.json"), fixture!("cohere", "responses.stream.expected.txt")),
            "gemini" => (fixture!("gemini", "responses.request.expected.json"), fixture!("gemini", "responses.response.expected.json"), fixture!("gemini", "responses.stream.expected.txt")),
            "bedrock" => (fixture!("bedrock", "responses.request.expected.json"), fixture!("bedrock", "responses.response.expected.json"), fixture!("bedrock", "responses.stream.expected.txt")),
            "ollama" => (fixture!("ollama", "responses.request.expected.json"), fixture!("ollama", "responses.response.expected.json"), fixture!("ollama", "responses.stream.expected.txt")),
            "mistral" => (fixture!("mistral", "responses.request.expected.json"), fixture!("mistral", "responses.response.expected.json"), fixture!("mistral", "responses.stream.expected.txt")),
            "openai" => (fixture!("openai", "responses.request.expected.json"), fixture!("openai", "responses.response.expected.json"), fixture!("openai", "responses.stream.expected.txt")),
            _ => continue,
        };
        case.expected_request = request;
        case.expected_response = response;
        case.expected_stream = stream;
    }
    cases
}

fn responses_exchange(config: &str) -> Exchange {
    exchange(&config.replacen('{', r#"{"route_type":"llm/v1/responses","#, 1))
}

#[test]
fn responses_requests_translate_to_each_providers_format() {
    for case in responses_cases() {
        let mut x = responses_exchange(case.config);
        let body = x.request_body(RESPONSES_REQUEST.as_bytes()).unwrap().unwrap_or_else(|| RESPONSES_REQUEST.as_bytes().to_vec());
        let got: Value = serde_json::from_slice(&body).unwrap();
        if update(case.name, "responses.request.expected.json", &pretty(&got)) {
            continue;
        }
        let want: Value = serde_json::from_str(case.expected_request).unwrap_or(Value::Null);
        assert_eq!(got, want, "{}", case.name);
    }
}

#[test]
fn responses_answers_translate_to_response_objects() {
    for case in responses_cases() {
        let mut x = responses_exchange(case.config);
        x.request_body(RESPONSES_REQUEST.as_bytes()).unwrap();
        x.response_headers(200, Some("application/json"));
        let edit = x.response_body(case.response.as_bytes());
        assert_eq!(edit.status, None, "{}", case.name);
        let got: Value = serde_json::from_slice(&edit.body.unwrap_or_else(|| case.response.as_bytes().to_vec())).unwrap();
        if update(case.name, "responses.response.expected.json", &pretty(&got)) {
            continue;
        }
        let want: Value = serde_json::from_str(case.expected_response).unwrap_or(Value::Null);
        assert_eq!(got, want, "{}", case.name);
        assert_eq!(got["object"], "response", "{}", case.name);
        let usage = x.usage().unwrap();
        assert_eq!(got["usage"]["input_tokens"], usage.prompt_tokens, "{}", case.name);
        assert_eq!(got["usage"]["total_tokens"], usage.total_tokens, "{}", case.name);
    }
}

fn run_responses_stream(case: &Case, input: &[u8], split: usize) -> String {
    let mut x = responses_exchange(case.config);
    let mut req: Value = serde_json::from_str(RESPONSES_REQUEST).unwrap();
    req["stream"] = Value::Bool(true);
    x.request_body(req.to_string().as_bytes()).unwrap();
    x.response_headers(200, Some(case.stream_content_type));
    assert!(x.is_stream(), "{}", case.name);
    let (a, b) = input.split_at(split);
    let mut out = x.response_chunk(a, false);
    out.extend(x.response_chunk(b, false));
    out.extend(x.response_chunk(b"", true));
    assert!(x.usage().is_some(), "{}: usage known after the stream", case.name);
    String::from_utf8(out).unwrap()
}

#[test]
fn responses_streams_are_named_events_in_order_at_every_split() {
    for case in responses_cases() {
        let input = (case.stream)();
        let whole = run_responses_stream(&case, &input, 0);
        if !update(case.name, "responses.stream.expected.txt", &whole) {
            assert_eq!(whole, case.expected_stream, "{}", case.name);
        }
        let events = super::stream::testing::events(whole.as_bytes());
        let names: Vec<&str> = whole.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
        assert_eq!(&names[..2], ["response.created", "response.in_progress"], "{}", case.name);
        assert!(matches!(names.last(), Some(&"response.completed") | Some(&"response.incomplete")), "{}: {names:?}", case.name);
        for (n, data) in events.iter().enumerate() {
            let v: Value = serde_json::from_str(data).unwrap();
            assert_eq!(v["sequence_number"], n, "{}: sequence numbers count up from 0", case.name);
            assert_eq!(Some(v["type"].as_str().unwrap()), names.get(n).copied(), "{}", case.name);
        }
        let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert!(last["response"]["usage"]["total_tokens"].as_u64().unwrap() > 0, "{}", case.name);
        for at in 1..=input.len() {
            assert_eq!(run_responses_stream(&case, &input, at), whole, "{} split at {at}", case.name);
        }
    }
}

/// What the request translation costs natively, per client format, on the
/// benchmark's 32 KB history (bench/bench.py `workloads`); printed, not
/// asserted: `cargo test --release -p ai-gateway-codec translation_cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn translation_cost() {
    let filler = "The history of this conversation goes on for a while. ".repeat(14);
    let turns: Vec<Value> = (0..40).map(|i| serde_json::json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": format!("Turn {i}: {filler}")})).collect();
    let mut messages = vec![serde_json::json!({"role": "system", "content": "You are a helpful assistant."})];
    messages.extend(turns.iter().cloned());
    let chat = serde_json::json!({"model": "bench-model", "messages": messages}).to_string();
    let responses = serde_json::json!({"model": "bench-model", "instructions": "You are a helpful assistant.", "input": turns, "max_output_tokens": 256}).to_string();
    let anthropic = r#"{"auth":{"header_name":"x-api-key","header_value":"k"},"model":{"provider":"anthropic","name":"bench-model"}}"#;
    let time = |label: &str, f: &dyn Fn()| {
        let start = std::time::Instant::now();
        for _ in 0..2000 {
            f();
        }
        println!("  {label:22} {:.1} µs", start.elapsed().as_secs_f64() * 1e6 / 2000.0);
    };
    for (label, config, body) in [("chat -> anthropic", anthropic.to_string(), &chat), ("responses -> anthropic", anthropic.replacen('{', r#"{"route_type":"llm/v1/responses","#, 1), &responses)] {
        time(label, &|| drop(std::hint::black_box(exchange(&config).request_body(body.as_bytes()).unwrap())));
    }
    time("parse as a Value", &|| drop(std::hint::black_box(serde_json::from_str::<Value>(&responses).unwrap())));
    time("responses to chat", &|| drop(std::hint::black_box(super::responses::request_to_chat(responses.as_bytes()).unwrap())));
    time("typed chat parse", &|| drop(std::hint::black_box(serde_json::from_str::<crate::openai::ChatRequest>(&chat).unwrap())));
}
