//! Anthropic, Cohere, Gemini (AI Studio, Vertex) and Bedrock end to end:
//! the real Envoy with envoy/envoy.yaml, the fake provider checking each
//! translated request as the real API would.

use ai_gateway_tests::fake::Recorded;
use ai_gateway_tests::fake_native::{AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY};
use ai_gateway_tests::http::{send, Request, Response};
use ai_gateway_tests::{test_id, Gateway};
use serde_json::{json, Value};
use std::sync::OnceLock;

fn gateway() -> &'static Gateway {
    static GATEWAY: OnceLock<Gateway> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        let env = [
            ("ANTHROPIC_API_KEY", "sk-ant-test"),
            ("COHERE_API_KEY", "co-test"),
            ("GEMINI_API_KEY", "gm-test"),
            ("VERTEX_ACCESS_TOKEN", "ya29.test"),
            ("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET_ACCESS_KEY),
        ];
        Gateway::start("envoy.yaml", &env, &|y| y)
    })
}

/// Sends a request with a fresh id (test id and x-request-id).
fn call(path: &str, body: Value, extra: &[(&'static str, &'static str)]) -> (Response, Vec<Recorded>, String) {
    let g = gateway();
    let id = test_id("native");
    let mut req = Request::post_json(path, &body).header("x-test-id", id.clone()).header("x-request-id", id.clone());
    for (n, v) in extra {
        req = req.header(n, *v);
    }
    let resp = send(g.envoy.ports.listener, &req);
    (resp, g.fake.requests(&id), id)
}

const PROVIDERS: [&str; 5] = ["anthropic", "cohere", "gemini", "vertex", "bedrock"];

fn chat_path(p: &str) -> String {
    format!("/{p}/v1/chat/completions")
}

fn model_for(p: &str) -> Value {
    // The Bedrock route pins no model: an inference-profile ARN (with `:`
    // and `/`) exercises the SigV4 path encoding.
    if p == "bedrock" {
        json!("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0")
    } else {
        Value::Null
    }
}

fn request(p: &str, messages: Value) -> Value {
    let mut body = json!({"messages": messages});
    if !model_for(p).is_null() {
        body["model"] = model_for(p);
    }
    body
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}])
}

fn only(got: &[Recorded]) -> &Recorded {
    assert_eq!(got.len(), 1, "expected one upstream request, got {}", got.len());
    &got[0]
}

#[test]
fn plain_chat_is_translated_and_usage_published() {
    for p in PROVIDERS {
        let (resp, got, id) = call(&chat_path(p), request(p, json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}])), &[]);
        assert_eq!(resp.status, 200, "{p}: {}", resp.text());
        let v = resp.json();
        assert_eq!(v["object"], "chat.completion", "{p}");
        assert_eq!(v["choices"][0]["message"]["content"], "You said: hello there", "{p}");
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{p}");
        let up = only(&got);
        let sent = up.json();
        match p {
            "anthropic" => {
                assert_eq!(up.path, "/v1/messages");
                assert_eq!(up.header("x-api-key"), Some("sk-ant-test"));
                assert_eq!(up.header("anthropic-version"), Some("2023-06-01"));
                assert_eq!(sent["system"], "Be brief.");
                assert_eq!(sent["max_tokens"], 1024);
            }
            "cohere" => {
                assert_eq!(up.path, "/v2/chat");
                assert_eq!(up.header("authorization"), Some("Bearer co-test"));
            }
            "gemini" => {
                assert_eq!(up.path, "/v1beta/models/gemini-2.5-flash:generateContent");
                assert_eq!(up.header("x-goog-api-key"), Some("gm-test"));
                assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Be brief.");
            }
            "vertex" => {
                assert_eq!(up.path, "/v1/projects/my-project/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent");
                assert_eq!(up.header("authorization"), Some("Bearer ya29.test"));
                assert_eq!(up.header("host"), Some("us-central1-aiplatform.googleapis.com"));
            }
            "bedrock" => {
                assert_eq!(up.path, "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
                assert_eq!(up.header("host"), Some("bedrock-runtime.us-east-1.amazonaws.com"));
                assert!(up.header("authorization").unwrap_or_default().starts_with("AWS4-HMAC-SHA256 Credential=AKIDFAKEEXAMPLE/"));
            }
            _ => unreachable!(),
        }
        // Usage as published for logs equals what the provider reported.
        let log = gateway().envoy.access_log(&id);
        let usage = &v["usage"];
        assert_eq!(log["ai_prompt_tokens"], usage["prompt_tokens"].to_string(), "{p}");
        assert_eq!(log["ai_completion_tokens"], usage["completion_tokens"].to_string(), "{p}");
        assert_eq!(log["ai_total_tokens"], usage["total_tokens"].to_string(), "{p}");
        let expected_completion = match p {
            "gemini" | "vertex" => 4 + 2, // candidates + thoughts
            _ => 4,
        };
        assert_eq!(usage["completion_tokens"], expected_completion, "{p}");
    }
}

#[test]
fn streamed_chat_becomes_openai_chunks() {
    for p in PROVIDERS {
        let mut body = request(p, json!([{"role": "user", "content": "stream these words"}]));
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        let (resp, got, id) = call(&chat_path(p), body, &[]);
        assert_eq!(resp.status, 200, "{p}: {}", resp.text());
        assert!(resp.header("content-type").unwrap_or_default().starts_with("text/event-stream"), "{p}");
        let events = resp.sse_data();
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{p}: {events:?}");
        let chunks: Vec<Value> = events.iter().filter_map(|e| serde_json::from_str(e).ok()).collect();
        let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, "You said: stream these words", "{p}");
        let ids: std::collections::BTreeSet<&str> = chunks.iter().filter_map(|c| c["id"].as_str()).collect();
        assert_eq!(ids.len(), 1, "{p}: one id for the whole stream");
        assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"), "{p}");
        let usage = chunks.iter().find(|c| c["usage"].is_object()).unwrap_or_else(|| panic!("{p}: no usage chunk"));
        let log = gateway().envoy.access_log(&id);
        assert_eq!(log["ai_total_tokens"], usage["usage"]["total_tokens"].to_string(), "{p}");
        let up = only(&got);
        match p {
            "gemini" => assert!(up.path.ends_with(":streamGenerateContent?alt=sse"), "{}", up.path),
            "bedrock" => assert!(up.path.ends_with("/converse-stream"), "{}", up.path),
            "anthropic" | "cohere" => assert_eq!(up.json()["stream"], true),
            _ => {}
        }
    }
}

#[test]
fn tool_call_round_trip() {
    for p in PROVIDERS {
        let mut first = request(p, json!([{"role": "user", "content": "weather in Paris"}]));
        first["tools"] = weather_tool();
        first["tool_choice"] = json!("auto");
        let (resp, _, _) = call(&chat_path(p), first, &[]);
        assert_eq!(resp.status, 200, "{p}: {}", resp.text());
        let v = resp.json();
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{p}: {v}");
        let tool_call = v["choices"][0]["message"]["tool_calls"][0].clone();
        assert_eq!(tool_call["function"]["name"], "get_weather", "{p}");
        let id = tool_call["id"].as_str().unwrap_or_default().to_string();
        assert!(!id.is_empty(), "{p}: tool calls carry ids (made up for Gemini)");
        let args: Value = serde_json::from_str(tool_call["function"]["arguments"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
        assert_eq!(args["q"], "You said: weather in Paris", "{p}");

        let mut second = request(p, json!([
            {"role": "user", "content": "weather in Paris"},
            {"role": "assistant", "content": null, "tool_calls": [tool_call]},
            {"role": "tool", "tool_call_id": id, "content": "sunny"},
        ]));
        second["tools"] = weather_tool();
        let (resp, _, _) = call(&chat_path(p), second, &[]);
        assert_eq!(resp.status, 200, "{p}: {}", resp.text());
        let answer = resp.json()["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_string();
        assert!(answer.starts_with("Tool said:") && answer.contains("sunny"), "{p}: {answer}");
    }
}

#[test]
fn streamed_tool_calls_keep_index_and_partial_arguments() {
    for p in PROVIDERS {
        let mut body = request(p, json!([{"role": "user", "content": "weather in Rome"}]));
        body["tools"] = weather_tool();
        body["stream"] = json!(true);
        let (resp, _, _) = call(&chat_path(p), body, &[]);
        let chunks: Vec<Value> = resp.sse_data().iter().filter_map(|e| serde_json::from_str(e).ok()).collect();
        let deltas: Vec<&Value> = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0)).collect();
        assert!(!deltas.is_empty(), "{p}: {chunks:?}");
        assert!(deltas.iter().all(|d| d["index"] == 0), "{p}");
        assert_eq!(deltas[0]["function"]["name"], "get_weather", "{p}");
        let args: String = deltas.iter().filter_map(|d| d["function"]["arguments"].as_str()).collect();
        let parsed: Value = serde_json::from_str(&args).unwrap_or(Value::Null);
        assert_eq!(parsed["q"], "You said: weather in Rome", "{p}: {args}");
        assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"), "{p}");
    }
}

#[test]
fn image_prompts_reach_each_provider_in_its_format() {
    let image = "data:image/png;base64,iVBORw0KGgo=";
    for p in PROVIDERS {
        let (resp, got, _) = call(
            &chat_path(p),
            request(p, json!([{"role": "user", "content": [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": image}}]}])),
            &[],
        );
        assert_eq!(resp.status, 200, "{p}: {}", resp.text());
        let sent = only(&got).json();
        let found = match p {
            "anthropic" => sent["messages"][0]["content"][1]["source"] == json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}),
            "cohere" => sent["messages"][0]["content"][1]["image_url"]["url"] == image,
            "gemini" | "vertex" => sent["contents"][0]["parts"][1]["inlineData"] == json!({"mimeType": "image/png", "data": "iVBORw0KGgo="}),
            "bedrock" => sent["messages"][0]["content"][1]["image"] == json!({"format": "png", "source": {"bytes": "iVBORw0KGgo="}}),
            _ => false,
        };
        assert!(found, "{p}: {sent}");
    }
}

#[test]
fn provider_errors_come_back_in_openai_shape() {
    for (p, message) in [("anthropic", "Overloaded"), ("cohere", "Trial key"), ("gemini", "Resource has been exhausted"), ("vertex", "exhausted"), ("bedrock", "Too many requests")] {
        let (resp, _, _) = call(&chat_path(p), request(p, json!([{"role": "user", "content": "x"}])), &[("x-fake-status", "429")]);
        assert_eq!(resp.status, 429, "{p}");
        let v = resp.json();
        assert!(v["error"]["message"].as_str().unwrap_or_default().contains(message), "{p}: {v}");
        assert_eq!(v["error"]["type"], "rate_limit_error", "{p}");
        assert!(v.get("type").is_none(), "{p}: no provider fields leak: {v}");
    }
}

#[test]
fn truncated_native_stream_ends_with_an_error_event() {
    let (resp, _, _) = call("/anthropic/v1/chat/completions", json!({"messages": [{"role": "user", "content": "x"}], "stream": true}), &[("x-fake-truncate", "1")]);
    let events = resp.sse_data();
    let last = events.last().cloned().unwrap_or_default();
    assert!(last.contains("\"error\"") && last.contains("ended before"), "{events:?}");
}

#[test]
fn embeddings_for_cohere_gemini_and_bedrock() {
    for (p, input, path) in [
        ("cohere", json!(["one two", "three"]), "/v2/embed"),
        ("gemini", json!(["one two", "three"]), "/v1beta/models/text-embedding-004:batchEmbedContents"),
        ("bedrock", json!("one two"), "/model/amazon.titan-embed-text-v2%3A0/invoke"),
    ] {
        let (resp, got, _) = call(&format!("/{p}/v1/embeddings"), json!({"input": input}), &[]);
        assert_eq!(resp.status, 200, "{p}: {}", resp.text());
        assert_eq!(only(&got).path, path, "{p}");
        let v = resp.json();
        assert_eq!(v["object"], "list", "{p}");
        let n = input.as_array().map(Vec::len).unwrap_or(1);
        assert_eq!(v["data"].as_array().map(Vec::len), Some(n), "{p}: {v}");
        assert_eq!(v["data"][0]["embedding"][1], 2.0, "{p}: vectors in order");
        if p != "gemini" {
            assert_eq!(v["usage"]["prompt_tokens"], if p == "cohere" { 3 } else { 2 }, "{p}");
        }
    }
}

#[test]
fn a_model_name_cannot_change_the_bedrock_target() {
    for model in ["../../admin", "a b", "x\r\nhost: evil"] {
        let (resp, got, _) = call("/bedrock/v1/chat/completions", json!({"model": model, "messages": [{"role": "user", "content": "x"}]}), &[]);
        match resp.status {
            400 => assert!(got.is_empty(), "{model:?}"),
            200 => {
                // Accepted only as one encoded path segment.
                let path = &only(&got).path;
                assert!(path.starts_with("/model/..%2F..%2Fadmin/"), "{model:?}: {path}");
            }
            other => panic!("{model:?}: {other} {}", resp.text()),
        }
    }
}

#[test]
fn fake_bedrock_really_checks_signatures() {
    use ai_gateway_tests::fake_native::verify_sigv4;
    use codec::proxy::sigv4::AwsAuth;
    use codec::digest::sha256_hex;
    use codec::proxy::sigv4::sign;
    let path = "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fx%3A0/converse";
    let body = br#"{"messages":[]}"#.to_vec();
    let make = |secret: &str, sent_path: &str, sent_body: &[u8]| {
        let aws = AwsAuth { access_key_id: AWS_ACCESS_KEY_ID.into(), secret_access_key: secret.into(), session_token: None, region: "us-east-1".into() };
        let mut headers: Vec<(String, String)> = sign(&aws, "bedrock", "POST", "bedrock-runtime.us-east-1.amazonaws.com", path, &sha256_hex(&body), 1_700_000_000);
        headers.push(("host".into(), "bedrock-runtime.us-east-1.amazonaws.com".into()));
        Recorded { method: "POST".into(), path: sent_path.into(), headers, body: sent_body.to_vec() }
    };
    assert_eq!(verify_sigv4(&make(AWS_SECRET_ACCESS_KEY, path, &body)), Ok(()));
    assert!(verify_sigv4(&make("wrong", path, &body)).is_err());
    assert!(verify_sigv4(&make(AWS_SECRET_ACCESS_KEY, &path.replace("%3A", ":"), &body)).is_err(), "a decoded path must not verify");
    assert!(verify_sigv4(&make(AWS_SECRET_ACCESS_KEY, path, b"{}")).is_err(), "a changed body must not verify");
}
