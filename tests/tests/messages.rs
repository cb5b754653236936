//! Claude clients through the gateway (`llm_format: anthropic`): the
//! official `anthropic` Python SDK, unchanged, with `base_url` at the
//! gateway (envoy/envoy.yaml), against the fake provider playing an
//! OpenAI-compatible server, Anthropic and Bedrock.

use ai_gateway_tests::fake::Recorded;
use ai_gateway_tests::fake_native::{AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY};
use ai_gateway_tests::http::{send, Request};
use ai_gateway_tests::{test_id, Gateway};
use serde_json::{json, Value};
use std::sync::OnceLock;

fn gateway() -> &'static (Gateway, u64) {
    static GATEWAY: OnceLock<(Gateway, u64)> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        let env = [("VERTEX_ACCESS_TOKEN", "ya29.messages"), ("ANTHROPIC_API_KEY", "sk-ant-messages"), ("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY_ID), ("AWS_SECRET_ACCESS_KEY", AWS_SECRET_ACCESS_KEY)];
        let g = Gateway::start("envoy.yaml", &env, &|yaml| yaml);
        let vms = g.envoy.vm_baseline();
        (g, vms)
    })
}

/// Where a Claude client points `base_url`, and the model it names.
#[derive(Clone, Copy)]
enum Target {
    /// The local OpenAI-compatible server: translated through OpenAI's shape.
    Local,
    /// Anthropic itself: passed through.
    Anthropic,
    /// Bedrock's Converse API.
    Bedrock,
    /// Claude on Vertex AI (rawPredict): passed through, reshaped for Vertex.
    Vertex,
}

impl Target {
    fn prefix(self) -> &'static str {
        match self {
            Target::Local => "",
            Target::Anthropic => "/anthropic",
            Target::Bedrock => "/bedrock",
            Target::Vertex => "/vertex",
        }
    }

    fn model(self) -> &'static str {
        match self {
            Target::Local => "claude-haiku-local",
            Target::Anthropic => "claude-sonnet-4-20250514",
            Target::Bedrock => "anthropic.claude-3-5-haiku-20241022-v1:0",
            Target::Vertex => "claude-sonnet-4-5@20250929",
        }
    }

    /// The request the provider got has that provider's wire format.
    fn assert_native(self, r: &Recorded) {
        match self {
            Target::Local => {
                assert_eq!(r.path, "/v1/chat/completions");
                assert!(r.header("anthropic-version").is_none(), "Anthropic headers do not leak to other providers");
            }
            Target::Anthropic => {
                assert_eq!(r.path, "/v1/messages");
                assert_eq!(r.header("x-api-key"), Some("sk-ant-messages"), "the gateway's key, not the client's");
                assert!(r.header("anthropic-version").is_some());
            }
            Target::Bedrock => {
                assert!(r.path.starts_with("/model/anthropic.claude-3-5-haiku") && r.path.contains("/converse"), "{}", r.path);
                assert!(r.header("authorization").is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256")));
                assert!(r.header("x-api-key").is_none());
            }
            Target::Vertex => {
                assert!(r.path.starts_with("/v1/projects/my-project/locations/us-central1/publishers/anthropic/models/claude-sonnet-4-5@20250929:"), "{}", r.path);
                assert_eq!(r.header("authorization"), Some("Bearer ya29.messages"));
                assert_eq!(r.json()["anthropic_version"], "vertex-2023-10-16");
                assert!(r.json().get("model").is_none());
            }
        }
    }
}

const ALL: [Target; 4] = [Target::Local, Target::Anthropic, Target::Bedrock, Target::Vertex];

/// Runs one SDK scenario; returns its JSON result and what the fake got.
fn sdk(target: Target, scenario: &str) -> (Value, Vec<Recorded>) {
    let (g, vms) = gateway();
    let id = test_id(scenario);
    let base_url = format!("http://127.0.0.1:{}{}", g.envoy.ports.listener, target.prefix());
    let result = ai_gateway_tests::run_sdk("claude_client.py", &base_url, target.model(), scenario, &id);
    g.envoy.assert_no_vm_crash(*vms);
    (result, g.fake.requests(&id))
}

fn text(message: &Value) -> String {
    message["content"].as_array().into_iter().flatten().filter_map(|b| b["text"].as_str()).collect()
}

#[test]
fn plain_chat_on_every_target() {
    for target in ALL {
        let (m, got) = sdk(target, "chat");
        assert_eq!(m["type"], "message");
        assert_eq!(m["role"], "assistant");
        assert!(text(&m).contains("hello there"), "{m}");
        assert_eq!(m["stop_reason"], "end_turn");
        assert!(m["usage"]["input_tokens"].as_u64().unwrap_or(0) > 0, "{m}");
        assert!(m["usage"]["output_tokens"].as_u64().unwrap_or(0) > 0, "{m}");
        assert_eq!(got.len(), 1);
        target.assert_native(&got[0]);
        // Usage is published as for OpenAI clients: budgets and dashboards see it.
        let id = got[0].header("x-request-id").unwrap_or_default().to_string();
        let log = gateway().0.envoy.access_log(&id);
        let total = m["usage"]["input_tokens"].as_u64().unwrap_or(0) + m["usage"]["output_tokens"].as_u64().unwrap_or(0);
        assert_eq!(log["ai_total_tokens"].as_str().and_then(|t| t.parse::<u64>().ok()), Some(total), "{log}");
    }
}

#[test]
fn the_system_prompt_arrives_in_each_providers_place() {
    for target in ALL {
        let (m, got) = sdk(target, "system");
        assert!(!text(&m).is_empty());
        let body = got[0].json();
        match target {
            Target::Local => assert_eq!(body["messages"][0], json!({"role": "system", "content": "Answer in one line."})),
            Target::Anthropic | Target::Vertex => assert_eq!(body["system"], "Answer in one line."),
            Target::Bedrock => assert_eq!(body["system"][0]["text"], "Answer in one line."),
        }
    }
}

#[test]
fn an_image_reaches_every_target() {
    for target in ALL {
        let (m, got) = sdk(target, "image");
        assert!(!text(&m).is_empty());
        let body = got[0].json();
        match target {
            Target::Local => assert!(body["messages"][0]["content"][0]["image_url"]["url"].as_str().is_some_and(|u| u.starts_with("data:image/png;base64,iVBOR")), "{body}"),
            Target::Anthropic | Target::Vertex => assert_eq!(body["messages"][0]["content"][0]["source"]["media_type"], "image/png"),
            Target::Bedrock => assert_eq!(body["messages"][0]["content"][0]["image"]["format"], "png", "{body}"),
        }
    }
}

#[test]
fn a_tool_round_trip_streamed_and_not() {
    for target in ALL {
        for scenario in ["tools", "tools_stream"] {
            let (r, got) = sdk(target, scenario);
            let first = &r["first"];
            assert_eq!(first["stop_reason"], "tool_use", "{target:?} {scenario}: {first}", target = target.prefix());
            let tool_use = first["content"].as_array().and_then(|c| c.iter().find(|b| b["type"] == "tool_use")).cloned().unwrap_or(Value::Null);
            assert_eq!(tool_use["name"], "get_weather");
            assert!(tool_use["input"].is_object());
            let second = &r["second"];
            assert_eq!(second["stop_reason"], "end_turn");
            assert!(text(second).contains("18 degrees"), "{second}");
            assert_eq!(got.len(), 2);
            for r in &got {
                target.assert_native(r);
            }
            if let Target::Local = target {
                // The tool result went back as OpenAI's tool message.
                let messages = got[1].json()["messages"].clone();
                let tool = messages.as_array().and_then(|m| m.iter().find(|m| m["role"] == "tool")).cloned().unwrap_or(Value::Null);
                assert_eq!(tool["content"], "18 degrees");
                assert_eq!(tool["tool_call_id"], tool_use["id"]);
            }
        }
    }
}

#[test]
fn max_tokens_stops_the_answer() {
    let (m, got) = sdk(Target::Local, "max_tokens");
    assert_eq!(m["stop_reason"], "max_tokens");
    assert_eq!(m["usage"]["output_tokens"], 2);
    assert_eq!(got[0].json()["max_tokens"], 2);
}

#[test]
fn the_sdks_stream_accumulator_gets_the_whole_message() {
    for target in ALL {
        let (r, got) = sdk(target, "stream");
        let final_message = &r["final"];
        assert!(!r["text"].as_str().unwrap_or_default().is_empty());
        assert_eq!(r["text"].as_str(), Some(text(final_message).as_str()));
        assert_eq!(final_message["stop_reason"], "end_turn");
        assert!(final_message["usage"]["output_tokens"].as_u64().unwrap_or(0) > 0, "{final_message}");
        match target {
            Target::Bedrock => assert!(got[0].path.ends_with("/converse-stream"), "{}", got[0].path),
            Target::Vertex => assert!(got[0].path.ends_with(":streamRawPredict"), "{}", got[0].path),
            _ => assert_eq!(got[0].json()["stream"], true),
        }
        target.assert_native(&got[0]);
    }
}

#[test]
fn bad_input_gets_an_anthropic_shaped_4xx() {
    for target in [Target::Local, Target::Bedrock] {
        let (r, got) = sdk(target, "bad");
        assert_eq!(r["status"], 400, "{r}");
        assert_eq!(r["body"]["type"], "error");
        assert_eq!(r["body"]["error"]["type"], "invalid_request_error");
        assert!(got.is_empty(), "nothing went upstream");
    }
    let (g, _) = gateway();
    for target in ALL {
        let path = format!("{}/v1/messages", target.prefix());
        for body in [json!({"model": target.model(), "messages": [{"role": "user", "content": "hi"}]}).to_string(), "{not json".to_string()] {
            let req = Request { method: "POST", path: &path, headers: vec![("content-type", "application/json".into())], body: body.into_bytes() };
            let resp = send(g.envoy.ports.listener, &req);
            assert_eq!(resp.status, 400, "{path}: {}", resp.text());
            assert_eq!(resp.json()["type"], "error", "{}", resp.text());
            assert_eq!(resp.json()["error"]["type"], "invalid_request_error");
        }
    }
}

#[test]
fn count_tokens_passes_through_to_anthropic_only() {
    let (g, _) = gateway();
    let body = json!({"model": "claude-sonnet-4-20250514", "messages": [{"role": "user", "content": "hi"}]}).to_string().into_bytes();
    let req = |path| Request { method: "POST", path, headers: vec![("content-type", "application/json".into())], body: body.clone() };
    let other = send(g.envoy.ports.listener, &req("/v1/messages/count_tokens"));
    assert_eq!(other.status, 404);
    assert_eq!(other.json()["type"], "error");
    let id = test_id("count");
    let resp = send(g.envoy.ports.listener, &req("/anthropic/v1/messages/count_tokens").header("x-test-id", id.clone()));
    let got = g.fake.requests(&id);
    assert_eq!(got.len(), 1, "{}", resp.text());
    assert_eq!(got[0].path, "/v1/messages/count_tokens");
    assert_eq!(got[0].header("x-api-key"), Some("sk-ant-messages"));
}
