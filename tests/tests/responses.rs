//! OpenAI's Responses API through the real Envoy with envoy/envoy.yaml,
//! driven by OpenAI's own SDKs (the `openai` client and the Agents SDK,
//! tests/sdk/responses_client.py): passed natively to an OpenAI-compatible
//! server, translated through each provider's chat API for Anthropic,
//! Bedrock and Gemini, the fake checking every request in the provider's
//! own format.

use ai_gateway_tests::fake::Recorded;
use ai_gateway_tests::fake_native::{AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY};
use ai_gateway_tests::http::{send, Request};
use ai_gateway_tests::{test_id, Gateway};
use serde_json::{json, Value};
use std::sync::OnceLock;

fn gateway() -> &'static (Gateway, u64) {
    static GATEWAY: OnceLock<(Gateway, u64)> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        let env = [
            ("ANTHROPIC_API_KEY", "sk-ant-responses"),
            ("GEMINI_API_KEY", "gm-responses"),
            ("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET_ACCESS_KEY),
        ];
        let g = Gateway::start("envoy.yaml", &env, &|y| y);
        let vms = g.envoy.vm_baseline();
        (g, vms)
    })
}

#[derive(Clone, Copy, Debug)]
enum Target {
    /// The OpenAI-compatible server on /v1: the body passes as sent.
    Local,
    Anthropic,
    Bedrock,
    Gemini,
}

const TRANSLATED: [Target; 3] = [Target::Anthropic, Target::Bedrock, Target::Gemini];

impl Target {
    fn prefix(self) -> &'static str {
        match self {
            Target::Local => "/v1",
            Target::Anthropic => "/anthropic/v1",
            Target::Bedrock => "/bedrock/v1",
            Target::Gemini => "/gemini/v1",
        }
    }

    fn model(self) -> &'static str {
        match self {
            Target::Local => "local-model",
            Target::Anthropic => "claude-sonnet-4-20250514",
            Target::Bedrock => "anthropic.claude-3-5-haiku-20241022-v1:0",
            Target::Gemini => "gemini-2.5-flash",
        }
    }

    /// The request the provider got is in that provider's own format, with
    /// the gateway's credentials, and the instructions where it keeps them.
    fn assert_native(self, r: &Recorded, instructions: Option<&str>) {
        let sent = r.json();
        match self {
            Target::Local => {
                assert_eq!(r.path, "/v1/responses");
                assert_eq!(sent["instructions"].as_str(), instructions, "the body goes as the client sent it");
            }
            Target::Anthropic => {
                assert_eq!(r.path, "/v1/messages");
                assert_eq!(r.header("x-api-key"), Some("sk-ant-responses"), "the gateway's key, not the client's");
                assert!(r.header("authorization").is_none(), "the client's key does not leak");
                assert_eq!(sent["system"].as_str(), instructions);
                assert!(sent.get("input").is_none() && sent["messages"].is_array(), "{sent}");
            }
            Target::Bedrock => {
                assert!(r.path.starts_with("/model/anthropic.claude-3-5-haiku") && r.path.contains("/converse"), "{}", r.path);
                assert!(r.header("authorization").is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256")));
                assert_eq!(sent["system"][0]["text"].as_str(), instructions);
            }
            Target::Gemini => {
                assert!(r.path.starts_with("/v1beta/models/gemini-2.5-flash:"), "{}", r.path);
                assert_eq!(r.header("x-goog-api-key"), Some("gm-responses"));
                assert_eq!(sent["systemInstruction"]["parts"][0]["text"].as_str(), instructions);
            }
        }
    }
}

/// Runs one SDK scenario; returns its JSON result and what the fake got.
fn sdk(target: Target, scenario: &str) -> (Value, Vec<Recorded>) {
    let (g, vms) = gateway();
    let id = test_id(scenario);
    let base_url = format!("http://127.0.0.1:{}{}", g.envoy.ports.listener, target.prefix());
    let result = ai_gateway_tests::run_sdk("responses_client.py", &base_url, target.model(), scenario, &id);
    g.envoy.assert_no_vm_crash(*vms);
    (result, g.fake.requests(&id))
}

fn output_text(response: &Value) -> String {
    let items = response["output"].as_array().into_iter().flatten();
    let parts = items.filter(|i| i["type"] == "message").flat_map(|i| i["content"].as_array().into_iter().flatten());
    parts.filter(|p| p["type"] == "output_text").filter_map(|p| p["text"].as_str()).collect()
}

fn function_call(response: &Value) -> Value {
    let items = response["output"].as_array().into_iter().flatten();
    items.clone().find(|i| i["type"] == "function_call").cloned().unwrap_or_else(|| panic!("no function_call in {response}"))
}

#[test]
fn create_answers_a_response_object_on_every_target() {
    for target in [Target::Local].into_iter().chain(TRANSLATED) {
        let (r, got) = sdk(target, "create");
        assert_eq!(r["object"], "response", "{target:?}: {r}");
        assert_eq!(r["status"], "completed", "{target:?}");
        assert_eq!(output_text(&r), "You said: hello there", "{target:?}: {r}");
        assert_eq!(r["instructions"], "Be brief.", "{target:?}: the response repeats the request");
        let usage = &r["usage"];
        let total = usage["total_tokens"].as_u64().unwrap_or(0);
        assert!(total > 0 && total == usage["input_tokens"].as_u64().unwrap_or(0) + usage["output_tokens"].as_u64().unwrap_or(0), "{target:?}: {usage}");
        assert_eq!(got.len(), 1, "{target:?}");
        target.assert_native(&got[0], Some("Be brief."));
        // Usage is published as for chat clients (the Anthropic route logs
        // statistics): budgets and dashboards see it.
        if matches!(target, Target::Anthropic) {
            let id = got[0].header("x-request-id").unwrap_or_default().to_string();
            let log = gateway().0.envoy.access_log(&id);
            assert_eq!(log["ai_total_tokens"].as_str().and_then(|t| t.parse::<u64>().ok()), Some(total), "{target:?}: {log}");
        }
    }
}

#[test]
fn streams_are_the_responses_events_the_sdk_assembles() {
    for target in [Target::Local].into_iter().chain(TRANSLATED) {
        let (r, got) = sdk(target, "stream");
        let events = r["events"].as_array().cloned().unwrap_or_default();
        let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
        assert_eq!(types.first(), Some(&"response.created"), "{target:?}: {types:?}");
        assert_eq!(types.last(), Some(&"response.completed"), "{target:?}: {types:?}");
        for needed in ["response.output_item.added", "response.content_part.added", "response.output_text.done", "response.output_item.done"] {
            assert!(types.contains(&needed), "{target:?}: no {needed} in {types:?}");
        }
        let seq: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
        assert_eq!(seq, (0..events.len() as u64).collect::<Vec<_>>(), "{target:?}: sequence numbers count up from 0");
        let deltas: String = events.iter().filter(|e| e["type"] == "response.output_text.delta").filter_map(|e| e["delta"].as_str()).collect();
        assert!(events.iter().filter(|e| e["type"] == "response.output_text.delta").count() >= 3, "{target:?}: streamed in pieces");
        assert_eq!(deltas, "You said: stream this", "{target:?}");
        assert_eq!(output_text(&r["final"]), "You said: stream this", "{target:?}");
        assert!(r["final"]["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0, "{target:?}: usage reaches response.completed: {}", r["final"]);
        assert_eq!(got.len(), 1);
        target.assert_native(&got[0], Some("Be brief."));
    }
}

#[test]
fn a_function_tool_round_trip_works_whole_and_streamed() {
    for target in TRANSLATED {
        for scenario in ["tools", "tools_stream"] {
            let (r, got) = sdk(target, scenario);
            let call = function_call(&r["first"]);
            assert_eq!(call["name"], "get_weather", "{target:?} {scenario}: {call}");
            let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap_or_default()).unwrap_or_else(|e| panic!("{target:?} {scenario}: {e}: {call}"));
            assert!(args["q"].is_string(), "{target:?} {scenario}: {args}");
            assert!(call["call_id"].as_str().is_some_and(|c| !c.is_empty()));
            // Gemini's functionResponse takes an object: the output goes as {"result": ...}.
            assert!(output_text(&r["second"]).starts_with("Tool said: ") && output_text(&r["second"]).contains("sunny, 21C"), "{target:?} {scenario}: {}", r["second"]);
            assert_eq!(got.len(), 2, "{target:?} {scenario}");
            // The tool's answer reaches the provider in its own shape, tied to its call.
            let sent = got[1].json();
            let id = call["call_id"].as_str().unwrap_or_default();
            match target {
                Target::Anthropic => {
                    let blocks = sent["messages"].as_array().and_then(|m| m.last()).map(|m| m["content"].clone()).unwrap_or_default();
                    assert!(blocks.as_array().into_iter().flatten().any(|b| b["type"] == "tool_result" && b["tool_use_id"] == id), "{sent}");
                    assert_eq!(got[0].json()["tools"][0]["name"], "get_weather");
                }
                Target::Bedrock => {
                    assert!(sent.to_string().contains(&format!(r#""toolUseId":"{id}""#)), "{sent}");
                    assert_eq!(got[0].json()["toolConfig"]["tools"][0]["toolSpec"]["name"], "get_weather");
                }
                Target::Gemini => {
                    assert!(sent.to_string().contains("functionResponse"), "{sent}");
                    assert_eq!(got[0].json()["tools"][0]["functionDeclarations"][0]["name"], "get_weather");
                }
                Target::Local => unreachable!(),
            }
        }
    }
}

#[test]
fn the_agents_sdk_runs_a_tool_using_agent_on_every_translated_provider() {
    for target in TRANSLATED {
        for scenario in ["agent", "agent_stream"] {
            let (r, got) = sdk(target, scenario);
            assert_eq!(r["tool_asked"].as_array().map(Vec::len), Some(1), "{target:?} {scenario}: the agent called its tool once: {r}");
            let answer = r["final_output"].as_str().unwrap_or_default();
            assert!(answer.starts_with("Tool said: ") && answer.contains("sunny, 21C"), "{target:?} {scenario}: {r}");
            assert_eq!(got.len(), 2, "{target:?} {scenario}: one model call per turn");
            target.assert_native(&got[0], Some("Answer with the tool."));
        }
    }
}

#[test]
fn an_image_reaches_the_provider_in_its_format() {
    let (r, got) = sdk(Target::Anthropic, "image");
    assert!(output_text(&r).ends_with("I see 1 image(s)."), "{r}");
    let blocks = got[0].json()["messages"][0]["content"].clone();
    assert!(blocks.as_array().into_iter().flatten().any(|b| b["type"] == "image" && b["source"]["type"] == "base64"), "{blocks}");
}

#[test]
fn an_answer_cut_at_max_output_tokens_is_incomplete() {
    for scenario in ["max_tokens", "max_tokens_stream"] {
        let (r, got) = sdk(Target::Anthropic, scenario);
        let response = if scenario == "max_tokens" { r.clone() } else { r["final"].clone() };
        assert_eq!(response["status"], "incomplete", "{scenario}: {response}");
        assert_eq!(response["incomplete_details"]["reason"], "max_output_tokens", "{scenario}");
        assert_eq!(got[0].json()["max_tokens"], 2, "{scenario}: max_output_tokens is Claude's max_tokens");
        if scenario == "max_tokens_stream" {
            let last = r["events"].as_array().and_then(|e| e.last()).map(|e| e["type"].clone());
            assert_eq!(last, Some(json!("response.incomplete")), "{scenario}");
        }
    }
}

#[test]
fn structured_output_goes_as_the_providers_schema_or_is_refused_naming_the_field() {
    let (r, got) = sdk(Target::Gemini, "json_schema");
    assert_eq!(r["status"], "completed");
    let config = &got[0].json()["generationConfig"];
    assert_eq!(config["responseMimeType"], "application/json", "{config}");
    assert_eq!(config["responseJsonSchema"]["required"][0], "city", "{config}");
    // Claude's Messages API has no response_format: refused before sending.
    let (r, got) = sdk(Target::Anthropic, "json_schema");
    assert_eq!(r["status"], 400, "{r}");
    assert!(r["body"]["message"].as_str().unwrap_or_default().contains("text.format"), "{r}");
    assert!(got.is_empty(), "nothing reaches the provider");
}

#[test]
fn provider_errors_and_refusals_come_back_as_openai_errors_the_sdk_raises() {
    for target in TRANSLATED {
        let (r, _) = sdk(target, "rate_limited");
        assert_eq!(r["status"], 429, "{target:?}: {r}");
        assert_eq!(r["class"], "RateLimitError", "{target:?}: the SDK's own exception");
        assert!(r["body"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{target:?}: {r}");

        for (scenario, field) in [("stored_state", "previous_response_id"), ("builtin_tool", "tools.0.type")] {
            let (r, got) = sdk(target, scenario);
            assert_eq!(r["status"], 400, "{target:?} {scenario}: {r}");
            assert_eq!(r["class"], "BadRequestError");
            assert!(r["body"]["message"].as_str().unwrap_or_default().starts_with(field), "{target:?} {scenario}: {r}");
            assert_eq!(r["body"]["type"], "invalid_request_error", "{r}");
            assert!(got.is_empty(), "{target:?} {scenario}: refused before sending");
        }

        // Nothing is stored, so there is nothing to retrieve.
        let (r, got) = sdk(target, "retrieve");
        assert_eq!(r["status"], 404, "{target:?}: {r}");
        assert_eq!(r["class"], "NotFoundError");
        assert!(got.is_empty());
    }
}

#[test]
fn a_malformed_body_is_a_400_naming_the_field() {
    let (g, _) = gateway();
    for (body, field) in [(json!({"model": "m"}), "input"), (json!({"input": [{"role": "tool", "content": "x"}]}), "input.0.role"), (json!({"input": 7}), "input")] {
        let id = test_id("responses-bad");
        let resp = send(g.envoy.ports.listener, &Request::post_json("/anthropic/v1/responses", &body).header("x-test-id", id.clone()));
        assert_eq!(resp.status, 400, "{body}: {}", resp.text());
        let v = resp.json();
        assert!(v["error"]["message"].as_str().unwrap_or_default().starts_with(field), "{body}: {v}");
        assert!(g.fake.requests(&id).is_empty());
    }
}
