//! The declarative gateway file end to end: `aigw`'s rendering of Kong's
//! AIGateway sample (unchanged) and of a file over several providers, run
//! in a real Envoy against the fake provider.

use ai_gateway_cli::{gateway, render};
use ai_gateway_tests::envoy::{repo_root, Envoy};
use ai_gateway_tests::fake::{FakeProvider, Recorded};
use ai_gateway_tests::fake_native::{AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY};
use ai_gateway_tests::http::{send, Request, Response};
use ai_gateway_tests::test_id;
use serde_json::{json, Value};
use std::process::Command;
use std::sync::OnceLock;

struct Gw {
    fake: FakeProvider,
    envoy: Envoy,
    vms: u64,
}

/// Renders a gateway file as `aigw render` does (default address, ports
/// and module path, which the test runner rewrites as for shipped files).
fn start(name: &str, text: &str, env: &[(&str, &str)]) -> Gw {
    let g = gateway::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let options = render::Options { address: "0.0.0.0".into(), port: 10000, admin_port: 9901, wasm_dir: "/etc/envoy/wasm".into(), source: name.into(), notes: String::new() };
    let dir = repo_root().join("target/e2e");
    std::fs::create_dir_all(&dir).ok();
    let path = dir.join(format!("rendered-{name}.yaml"));
    std::fs::write(&path, render::render(&g, &options)).unwrap_or_else(|e| panic!("{e}"));
    let fake = FakeProvider::start();
    // An absolute path: the runner reads it instead of envoy/<file>.
    let envoy = Envoy::start(&path.to_string_lossy(), fake.port, 2, env);
    let vms = envoy.vm_baseline();
    Gw { fake, envoy, vms }
}

fn kong() -> &'static Gw {
    static GW: OnceLock<Gw> = OnceLock::new();
    GW.get_or_init(|| start("kong-aigateway", include_str!("../../envoy/kong-aigateway.yaml"), &[("OPENAI_API_KEY", "sk-kong-env")]))
}

fn post(gw: &Gw, path: &str, body: Value) -> (Response, Vec<Recorded>) {
    let id = test_id("gwfile");
    let req = Request::post_json(path, &body).header("x-test-id", id.clone());
    let resp = send(gw.envoy.ports.listener, &req);
    (resp, gw.fake.requests(&id))
}

fn get(gw: &Gw, path: &str) -> Response {
    send(gw.envoy.ports.listener, &Request { method: "GET", path, headers: vec![], body: vec![] })
}

#[test]
fn kongs_chat_model_gets_its_model_system_prompt_and_max_tokens() {
    let gw = kong();
    let (resp, got) = post(gw, "/devteam-chatgpt", json!({"messages": [{"role": "user", "content": "Who stole the tarts?"}]}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(got.len(), 1);
    let sent = got[0].json();
    assert_eq!(got[0].path, "/v1/chat/completions");
    assert_eq!(got[0].header("authorization"), Some("Bearer sk-kong-env"), "the placeholder Secret falls back to OPENAI_API_KEY");
    assert_eq!(sent["model"], "gpt-4");
    assert_eq!(sent["max_tokens"], 50);
    assert_eq!(sent["messages"][0], json!({"role": "system", "content": "You are a helpful assistant who responds in the style of Sherlock Holmes."}));
    assert_eq!(sent["messages"][1]["content"], "Who stole the tarts?");
    assert_eq!(resp.json()["object"], "chat.completion");
    gw.envoy.assert_no_vm_crash(gw.vms);
}

#[test]
fn kongs_classic_model_is_a_completions_route() {
    let gw = kong();
    let (resp, got) = post(gw, "/marketing-team-classic-chatgpt", json!({"prompt": "Write a slogan"}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(got[0].path, "/v1/completions");
    assert_eq!(got[0].json()["model"], "gpt-3.5-turbo-instruct");
    assert_eq!(resp.json()["object"], "text_completion");
    // A chat body is not a completions request.
    let (resp, got) = post(gw, "/marketing-team-classic-chatgpt", json!({"messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(resp.status, 400);
    assert!(got.is_empty());
}

#[test]
fn the_model_list_names_the_configured_models() {
    let gw = kong();
    let all = get(gw, "/v1/models");
    assert_eq!(all.status, 200);
    let ids: Vec<String> = all.json()["data"].as_array().into_iter().flatten().filter_map(|m| m["id"].as_str().map(str::to_string)).collect();
    assert_eq!(ids, ["gpt-3.5-turbo-instruct", "gpt-4"]);
    let one = get(gw, "/devteam-chatgpt/v1/models");
    assert_eq!(one.json()["data"][0]["id"], "gpt-4");
    assert_eq!(get(gw, "/nope").status, 404);
}

#[test]
fn the_openai_sdk_works_at_a_models_base_url() {
    let gw = kong();
    let id = test_id("sdk");
    let base = format!("http://127.0.0.1:{}/devteam-chatgpt/v1", gw.envoy.ports.listener);
    let script = r#"
import json, sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="client-key", max_retries=0, default_headers={"x-test-id": sys.argv[2]})
models = [m.id for m in client.models.list()]
r = client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "Elementary?"}])
print(json.dumps({"models": models, "text": r.choices[0].message.content, "usage": r.usage.total_tokens}))
"#;
    let out = Command::new(repo_root().join(".venv/bin/python")).args(["-c", script, &base, &id]).output().unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r["models"], json!(["gpt-4"]));
    assert!(r["text"].as_str().is_some_and(|t| t.contains("Elementary?")), "{r}");
    assert!(r["usage"].as_u64().unwrap_or(0) > 0);
    let got = gw.fake.requests(&id);
    assert_eq!(got[0].header("authorization"), Some("Bearer sk-kong-env"), "the client's key is replaced");
}

const FOUR_PROVIDERS: &str = r#"
kind: Secret
metadata: {name: keys}
stringData:
  openai: "{vault://env/TEAM_OPENAI_KEY}"
  anthropic: "{vault://env/TEAM_ANTHROPIC_KEY}"
---
kind: AIGateway
metadata: {name: four}
spec:
  cloudProviderCredentials: {name: keys}
  largeLanguageModels:
    cloudHosted:
    - identifier: gpt
      model: gpt-4o
      aiCloudProvider: {name: openai}
      promptGuard:
        deny_patterns: ["(?i)\\bpassword\\b"]
      tokenBudgets:
        policies: [{name: gpt-team, limits: [{limit: 100000, window_size: 3600}]}]
    - identifier: claude
      model: claude-sonnet-4-5
      defaultPromptParams: {maxTokens: 300, temperature: "0.5"}
      aiCloudProvider: {name: anthropic}
    - identifier: haiku-on-bedrock
      model: anthropic.claude-3-5-haiku-20241022-v1:0
      aiCloudProvider: {name: bedrock, options: {bedrock: {aws_region: us-east-1}}}
    - identifier: resilient
      balancer: {algorithm: priority, retries: 1, failover_criteria: [error, http_429]}
      targets:
      - {model: gpt-4o-mini, aiCloudProvider: {name: openai}, priority: 1}
      - {model: claude-haiku-4-5, aiCloudProvider: {name: anthropic, options: {max_tokens: 100}}, priority: 2}
    selfHosted:
    - identifier: llama
      model: llama3.2
      url: http://127.0.0.1:11434
      format: ollama
"#;

#[test]
fn five_models_four_providers_a_guard_and_a_fallback_in_one_envoy() {
    let env = [("TEAM_OPENAI_KEY", "sk-team"), ("TEAM_ANTHROPIC_KEY", "sk-ant-team"), ("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY_ID), ("AWS_SECRET_ACCESS_KEY", AWS_SECRET_ACCESS_KEY)];
    let gw = start("four-providers", FOUR_PROVIDERS, &env);
    let chat = json!({"messages": [{"role": "user", "content": "hello"}]});
    let (resp, got) = post(&gw, "/gpt/v1/chat/completions", chat.clone());
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(got[0].header("authorization"), Some("Bearer sk-team"));
    assert!(resp.header("x-ai-ratelimit-remaining-3600").is_some(), "the model's budget applies");
    // The model's guard refuses before anything goes upstream.
    let (resp, got) = post(&gw, "/gpt", json!({"messages": [{"role": "user", "content": "my password is hunter2"}]}));
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(got.is_empty());
    // Other models have no guard.
    let (resp, _) = post(&gw, "/claude", json!({"messages": [{"role": "user", "content": "my password is hunter2"}]}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let (resp, got) = post(&gw, "/claude", chat.clone());
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(got[0].path, "/v1/messages");
    assert_eq!(got[0].header("x-api-key"), Some("sk-ant-team"));
    assert_eq!(got[0].json()["max_tokens"], 300);
    assert_eq!(got[0].json()["temperature"], 0.5);
    let (resp, got) = post(&gw, "/haiku-on-bedrock", chat.clone());
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(got[0].path.starts_with("/model/anthropic.claude-3-5-haiku"), "{}", got[0].path);
    let (resp, got) = post(&gw, "/llama/v1/chat/completions", chat);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(got[0].path, "/api/chat");
    assert_eq!(resp.json()["object"], "chat.completion");
    // A balanced model (ai-proxy-advanced): OpenAI first, Anthropic when it refuses.
    let id = test_id("resilient");
    let req = Request::post_json("/resilient", &json!({"messages": [{"role": "user", "content": "hello"}]}))
        .header("x-test-id", id.clone())
        .header("x-fake-status-openai", "429");
    let resp = send(gw.envoy.ports.listener, &req);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let got = gw.fake.requests(&id);
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/v1/chat/completions", "/v1/messages"]);
    assert_eq!(got[1].json()["model"], "claude-haiku-4-5");
    assert_eq!(got[1].header("x-api-key"), Some("sk-ant-team"));
    // 8 clients at once, the primary refusing, the fallback slow enough for
    // their retries to overlap: the rendered retry budget serves them all.
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..8)
            .map(|_| {
                let gw = &gw;
                s.spawn(move || {
                    let req = Request::post_json("/resilient", &json!({"messages": [{"role": "user", "content": "hello"}]}))
                        .header("x-fake-status-openai", "429")
                        .header("x-fake-delay-ms-anthropic", "300");
                    send(gw.envoy.ports.listener, &req).status
                })
            })
            .collect();
        clients.into_iter().filter_map(|c| c.join().ok()).collect()
    });
    assert_eq!(statuses, vec![200; 8], "a fallback was skipped under load");
    gw.envoy.assert_no_vm_crash(gw.vms);
}

#[test]
fn aigw_validate_runs_envoys_own_check() {
    let aigw = env!("CARGO_MANIFEST_DIR").to_string() + "/../target/debug/aigw";
    let built = Command::new("cargo").args(["build", "-q", "-p", "ai-gateway-cli"]).current_dir(repo_root()).status();
    assert!(built.is_ok_and(|s| s.success()));
    let ok = Command::new(&aigw).args(["validate"]).arg(repo_root().join("envoy/kong-aigateway.yaml")).arg("--wasm-dir").arg(repo_root().join("dist")).output().unwrap_or_else(|e| panic!("{e}"));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("2 model(s), valid"));
    let bad = repo_root().join("target/e2e/bad-gateway.yaml");
    std::fs::write(&bad, FOUR_PROVIDERS.replace("identifier: llama", "identifier: gpt")).unwrap_or_else(|e| panic!("{e}"));
    let refused = Command::new(&aigw).args(["validate"]).arg(&bad).output().unwrap_or_else(|e| panic!("{e}"));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("identifier is used twice"), "{}", String::from_utf8_lossy(&refused.stderr));
}
