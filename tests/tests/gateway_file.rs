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
    start_mapped(name, text, env, &[])
}

/// As `start`, with some upstream ports mapped elsewhere than the fake.
fn start_mapped(name: &str, text: &str, env: &[(&str, &str)], mapped: ai_gateway_tests::envoy::PortMap) -> Gw {
    let g = gateway::parse_with_env(text, &|var| env.iter().find(|(k, _)| *k == var).map(|(_, v)| v.to_string())).unwrap_or_else(|e| panic!("{name}: {e}"));
    let options = render::Options { address: "0.0.0.0".into(), port: 10000, admin_port: 9901, wasm_dir: "/etc/envoy/wasm".into(), source: name.into(), notes: String::new() };
    let dir = repo_root().join("target/e2e");
    std::fs::create_dir_all(&dir).ok();
    let path = dir.join(format!("rendered-{name}.yaml"));
    std::fs::write(&path, render::render(&g, &options)).unwrap_or_else(|e| panic!("{e}"));
    let fake = FakeProvider::start();
    // An absolute path: the runner reads it instead of envoy/<file>.
    let envoy = Envoy::start_mapped(&path.to_string_lossy(), fake.port, 2, env, &|y| y, mapped);
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
fn the_model_list_names_what_clients_may_send() {
    let gw = kong();
    let all = get(gw, "/v1/models");
    assert_eq!(all.status, 200);
    let ids: Vec<String> = all.json()["data"].as_array().into_iter().flatten().filter_map(|m| m["id"].as_str().map(str::to_string)).collect();
    assert_eq!(ids, ["devteam-chatgpt", "marketing-team-classic-chatgpt"], "the names the root API paths take");
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
    // As the README writes it, from the checkout and from anywhere else:
    // the modules are found without --wasm-dir.
    for dir in [repo_root(), std::env::temp_dir()] {
        let ok = Command::new(&aigw).args(["validate"]).arg(repo_root().join("envoy/kong-aigateway.yaml")).current_dir(&dir).env_remove("AIGW_WASM_DIR").output().unwrap_or_else(|e| panic!("{e}"));
        assert!(ok.status.success(), "{}: {}", dir.display(), String::from_utf8_lossy(&ok.stderr));
        assert!(String::from_utf8_lossy(&ok.stdout).contains("2 model(s), valid"));
    }
    let doctor = Command::new(&aigw).arg("doctor").current_dir(std::env::temp_dir()).output().unwrap_or_else(|e| panic!("{e}"));
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(doctor.status.success() && said.contains("ready") && said.contains("1.40.0"), "{said}");
    let lost = Command::new(&aigw).arg("doctor").env("AIGW_WASM_DIR", "/nonexistent").args(["--wasm-dir", "/nonexistent"]).output().unwrap_or_else(|e| panic!("{e}"));
    assert!(!lost.status.success() && String::from_utf8_lossy(&lost.stdout).contains("./build.sh"), "{}", String::from_utf8_lossy(&lost.stdout));
    // `render` is for this machine unless told it is for the container.
    let render = |extra: &[&str]| String::from_utf8_lossy(&Command::new(&aigw).arg("render").arg(repo_root().join("envoy/kong-aigateway.yaml")).args(extra).output().map(|o| o.stdout).unwrap_or_default()).into_owned();
    let host = render(&[]);
    assert!(host.contains("address: 127.0.0.1, port_value: 10000") && host.contains(&format!("{}/ai_proxy.wasm", repo_root().join("dist").canonicalize().unwrap_or_default().display())), "{host}");
    let docker = render(&["--for", "docker"]);
    assert!(docker.contains("address: 0.0.0.0, port_value: 10000") && docker.contains("/etc/envoy/wasm/ai_proxy.wasm"));
    let bad = repo_root().join("target/e2e/bad-gateway.yaml");
    std::fs::write(&bad, FOUR_PROVIDERS.replace("identifier: llama", "identifier: gpt")).unwrap_or_else(|e| panic!("{e}"));
    let refused = Command::new(&aigw).args(["validate"]).arg(&bad).output().unwrap_or_else(|e| panic!("{e}"));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("identifier is used twice"), "{}", String::from_utf8_lossy(&refused.stderr));
}

/// One base URL for every model, consumers with their own keys: the
/// gateway a LiteLLM or Portkey user expects.
const ONE_BASE_URL: &str = r#"
kind: Secret
metadata: {name: consumer-keys}
stringData: {alice: alice-key-0001, bob: bob-key-0002}
---
kind: AIGateway
metadata: {name: one-base-url}
spec:
  consumers:
  - name: alice
    keys: [{secretKeyRef: {name: consumer-keys, key: alice}}]
    tokenBudget: {limits: [{limit: 40, window_size: 3600}]}
  - name: bob
    keys: [{secretKeyRef: {name: consumer-keys, key: bob}}, {env: BOB_SECOND_KEY}]
    models: [local, local-messages, local-responses, guarded, down]
    tokenBudget: {limits: [{limit: 100000, window_size: 3600}]}
  largeLanguageModels:
    selfHosted:
    - {identifier: local, model: fake-model, url: 'http://127.0.0.1:8000', aliases: [fake-small]}
    - {identifier: local-responses, promptType: responses, model: fake-model, url: 'http://127.0.0.1:8000', aliases: [local]}
    - {identifier: local-messages, llmFormat: anthropic, model: fake-model, url: 'http://127.0.0.1:8000', aliases: [local]}
    - {identifier: guarded, model: fake-guarded, url: 'http://127.0.0.1:8000', promptGuard: {deny_patterns: [secret]}}
    - {identifier: alice-only, model: fake-alice, url: 'http://127.0.0.1:8000'}
    - {identifier: down, model: m, url: 'http://127.0.0.1:1'}
"#;

const ALICE: &str = "alice-key-0001";
const BOB: &str = "bob-key-0002";
const BOB_SECOND: &str = "bob-second-key-0003";

fn one_base_url() -> &'static Gw {
    static GW: OnceLock<Gw> = OnceLock::new();
    GW.get_or_init(|| {
        // `down` goes to a port nothing listens on; every other upstream
        // is the fake.
        start_mapped("one-base-url", ONE_BASE_URL, &[("BOB_SECOND_KEY", BOB_SECOND)], &[(1, ai_gateway_tests::envoy::free_port())])
    })
}

fn call(gw: &Gw, path: &str, key: Option<&str>, body: Value, headers: &[(&'static str, &str)]) -> (Response, Vec<Recorded>) {
    let id = test_id("root");
    let mut req = Request::post_json(path, &body).header("x-test-id", id.clone());
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    for (n, v) in headers {
        req = req.header(n, v.to_string());
    }
    let resp = send(gw.envoy.ports.listener, &req);
    (resp, gw.fake.requests(&id))
}

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello"}]})
}

#[test]
fn one_base_url_serves_every_model_by_the_bodys_model() {
    let gw = one_base_url();
    for name in ["local", "fake-small"] {
        let (resp, got) = call(gw, "/v1/chat/completions", Some(BOB), hello(name), &[]);
        assert_eq!(resp.status, 200, "{name}: {}", resp.text());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].json()["model"], "fake-model", "the alias becomes the model");
    }
    // The same name on another API is that API's model.
    let (resp, got) = call(gw, "/v1/responses", Some(BOB), json!({"model": "local", "input": "hello"}), &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!((got[0].path.as_str(), resp.json()["object"].clone()), ("/v1/responses", json!("response")));
    let (resp, got) = call(gw, "/v1/messages", Some(BOB), json!({"model": "local", "max_tokens": 50, "messages": [{"role": "user", "content": "hello"}]}), &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!((got[0].path.as_str(), resp.json()["type"].clone()), ("/v1/chat/completions", json!("message")));
    // JSON with a charset is JSON.
    let id = test_id("charset");
    let req = Request { method: "POST", path: "/v1/chat/completions", headers: vec![("authorization", format!("Bearer {BOB}")), ("content-type", "application/json; charset=utf-8".into()), ("x-test-id", id.clone())], body: hello("local").to_string().into_bytes() };
    assert_eq!(send(gw.envoy.ports.listener, &req).status, 200);
    assert_eq!(gw.fake.requests(&id).len(), 1);
    // The model's own filters run: its guard refuses, nothing goes upstream.
    let (resp, got) = call(gw, "/v1/chat/completions", Some(BOB), json!({"model": "guarded", "messages": [{"role": "user", "content": "a secret"}]}), &[]);
    assert_eq!((resp.status, resp.json()["error"]["code"].clone()), (400, json!("content_blocked")));
    assert!(got.is_empty());
    // Streams pass through the hand-over.
    let mut body = hello("local");
    body["stream"] = json!(true);
    let (resp, _) = call(gw, "/v1/chat/completions", Some(BOB), body, &[]);
    assert_eq!(resp.status, 200);
    assert!(resp.text().trim_end().ends_with("data: [DONE]"), "{}", resp.text());
    gw.envoy.assert_no_vm_crash(gw.vms);
}

#[test]
fn unknown_and_missing_models_are_refused_in_the_clients_shape_listing_the_names() {
    let gw = one_base_url();
    let (resp, got) = call(gw, "/v1/chat/completions", Some(BOB), hello("gpt-9"), &[]);
    assert_eq!(resp.status, 404);
    let e = &resp.json()["error"];
    assert_eq!((e["code"].clone(), e["param"].clone()), (json!("model_not_found"), json!("model")));
    assert!(e["message"].as_str().unwrap_or_default().contains("local, fake-small, guarded, alice-only, down"), "{e}");
    assert!(got.is_empty());
    let (resp, _) = call(gw, "/v1/messages", Some(BOB), json!({"model": "gpt-9", "max_tokens": 5, "messages": []}), &[]);
    assert_eq!((resp.status, resp.json()["error"]["type"].clone()), (404, json!("not_found_error")));
    for (body, status, code) in [(json!({"messages": []}), 400, "model_required"), (json!({"model": "", "messages": []}), 400, "model_required"), (json!({"model": 7, "messages": []}), 404, "model_not_found")] {
        let (resp, got) = call(gw, "/v1/chat/completions", Some(BOB), body.clone(), &[]);
        assert_eq!((resp.status, resp.json()["error"]["code"].clone()), (status, json!(code)), "{body}");
        assert!(got.is_empty());
    }
    let req = Request { method: "POST", path: "/v1/chat/completions", headers: vec![("authorization", format!("Bearer {BOB}")), ("content-type", "application/json".into())], body: b"{not json".to_vec() };
    assert_eq!(send(gw.envoy.ports.listener, &req).status, 400);
    // A name with control characters cannot become a header: a 400, not
    // a header injected into the hand-over.
    for (path, model) in [("/v1/chat/completions", "local\r\nx-consumer-id: alice"), ("/v1/messages", "local\u{0}")] {
        let (resp, got) = call(gw, path, Some(BOB), json!({"model": model, "max_tokens": 5, "messages": []}), &[]);
        assert_eq!(resp.status, 400, "{}", resp.text());
        assert!(resp.text().contains("control characters"), "{}", resp.text());
        assert!(got.is_empty());
    }
    // Duplicate `model` keys: the route picked and the filters run are one
    // model's (json_to_metadata takes the last, as serde_json does), so the
    // guard of the model that answers is the guard that judged it.
    let (resp, got) = call(gw, "/v1/chat/completions", Some(BOB), json!({"model": "local", "messages": [{"role": "user", "content": "a secret"}]}), &[]);
    assert_eq!(resp.status, 200, "local has no guard: {}", resp.text());
    assert_eq!(got.len(), 1);
    let body = br#"{"model":"local","model":"guarded","messages":[{"role":"user","content":"a secret"}]}"#.to_vec();
    let req = Request { method: "POST", path: "/v1/chat/completions", headers: vec![("authorization", format!("Bearer {BOB}")), ("content-type", "application/json".into())], body };
    assert_eq!(send(gw.envoy.ports.listener, &req).json()["error"]["code"], "content_blocked");
    // The names a client may send, once each.
    let req = Request { method: "GET", path: "/v1/models", headers: vec![("authorization", format!("Bearer {BOB}"))], body: vec![] };
    let ids: Vec<String> = send(gw.envoy.ports.listener, &req).json()["data"].as_array().into_iter().flatten().filter_map(|m| m["id"].as_str().map(str::to_string)).collect();
    assert_eq!(ids, ["local", "fake-small", "guarded", "alice-only", "down", "local-messages", "local-responses"]);
}

#[test]
fn consumers_keys_are_checked_forwarded_as_their_name_and_never_reach_a_provider() {
    let gw = one_base_url();
    // A forged consumer header is replaced by the key's consumer on every
    // kind of route: the root API path, the model's own path, and the route
    // ai-proxy's rewritten requests take (a client may forge its header too).
    for path in ["/v1/chat/completions", "/local/v1/chat/completions"] {
        let (resp, got) = call(gw, path, Some(BOB), hello("local"), &[("x-consumer-id", "alice")]);
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
        assert_eq!(got[0].header("x-consumer-id"), Some("bob"), "{path}");
        assert!(got[0].headers.iter().all(|(_, v)| !v.contains(BOB)), "{path}: the key reached the provider: {:?}", got[0].headers);
        assert!(got[0].header("x-ai-model").is_none(), "{path}: the gateway's routing header reached the provider");
    }
    // The headers the gateway routes by are its own: a client's are removed
    // before any route is chosen (the body picks the model, not x-ai-model;
    // x-ai-proxy picks no rewritten request's route).
    let (resp, got) = call(gw, "/v1/chat/completions", Some(BOB), hello("local"), &[("x-ai-model", "guarded")]);
    assert_eq!((resp.status, got.first().map(|r| r.json()["model"].clone())), (200, Some(json!("fake-model"))), "{}", resp.text());
    let (resp, got) = call(gw, "/anything", Some(BOB), hello("local"), &[("x-ai-proxy", "ai-proxy-local")]);
    assert_eq!(resp.status, 404, "{}", resp.text());
    assert!(got.is_empty());
    // Anthropic's SDK sends x-api-key; a consumer's second key works.
    let (resp, got) = call(gw, "/v1/messages", None, json!({"model": "local", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}), &[("x-api-key", BOB_SECOND)]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(got[0].header("x-api-key").is_none());
    // No key, a wrong key: 401 in the client's shape, nothing upstream.
    for key in [None, Some("not-a-key-000")] {
        let (resp, got) = call(gw, "/v1/chat/completions", key, hello("local"), &[]);
        assert_eq!(resp.status, 401);
        assert_eq!((resp.json()["error"]["code"].clone(), resp.json()["error"]["param"].clone()), (json!("invalid_api_key"), Value::Null));
        assert!(got.is_empty());
    }
    let (resp, _) = call(gw, "/v1/messages", None, json!({"model": "local", "max_tokens": 5, "messages": []}), &[]);
    assert_eq!((resp.status, resp.json()["error"]["type"].clone()), (401, json!("authentication_error")));
    // A model the key may not use: 403, on the root path and the model's own.
    for path in ["/v1/chat/completions", "/alice-only/v1/chat/completions"] {
        let (resp, got) = call(gw, path, Some(BOB), hello("alice-only"), &[]);
        assert_eq!((resp.status, resp.json()["error"]["code"].clone()), (403, json!("model_not_allowed")), "{path}");
        assert!(got.is_empty());
    }
    let (resp, _) = call(gw, "/v1/chat/completions", Some(ALICE), hello("alice-only"), &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    // The health endpoint asks for no key.
    let health = send(gw.envoy.ports.listener, &Request { method: "GET", path: "/healthz", headers: vec![], body: vec![] });
    assert_eq!(health.status, 200);
    gw.envoy.assert_no_vm_crash(gw.vms);
}

#[test]
fn each_consumers_budget_is_counted_apart_and_one_line_is_logged_per_request() {
    let gw = one_base_url();
    let remaining = |r: &Response| r.header("x-ai-ratelimit-remaining-3600").and_then(|v| v.parse::<u64>().ok());
    let (first, _) = call(gw, "/v1/chat/completions", Some(BOB), hello("local"), &[]);
    let bob_before = remaining(&first).unwrap_or_else(|| panic!("no budget header: {:?}", first.headers));
    // Alice spends her 40 tokens; Bob's budget does not move with hers.
    let mut refused = None;
    for i in 0..40 {
        let (resp, got) = call(gw, "/v1/chat/completions", Some(ALICE), hello("local"), &[]);
        if resp.status == 429 {
            assert!(got.is_empty());
            // The spent budget's reset is when a request is admitted again.
            assert!(resp.header("retry-after").is_some());
            assert_eq!(resp.header("x-ai-ratelimit-reset"), resp.header("retry-after"), "{:?}", resp.headers);
            assert_eq!(resp.header("ratelimit-reset"), resp.header("retry-after"));
            refused = Some(i);
            break;
        }
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    assert!(refused.is_some_and(|i| i > 0), "alice was never refused");
    let (resp, _) = call(gw, "/v1/chat/completions", Some(BOB), hello("local"), &[]);
    assert_eq!(resp.status, 200, "bob is not refused for alice's spending");
    let bob_after = remaining(&resp).unwrap_or_default();
    assert!(bob_before - bob_after < 40, "bob's budget moved by {} with alice's requests", bob_before - bob_after);
    // The hand-over to the model's route is logged once, by that route.
    let id = "root-log-once-1";
    let req = Request::post_json("/v1/chat/completions", &hello("local")).header("authorization", format!("Bearer {BOB}")).header("x-request-id", id);
    assert_eq!(send(gw.envoy.ports.listener, &req).status, 200);
    let line = gw.envoy.access_log(id);
    assert_eq!((line["ai_consumer"].clone(), line["client_path"].clone(), line["status"].clone()), (json!("bob"), json!("/v1/chat/completions"), json!(200)));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(gw.envoy.log().matches(&format!("\"request_id\":\"{id}\"")).count(), 1, "one line per request");
    // Metrics name the model's route: `local` and `fake-small` are one
    // model, `guarded` another on the same provider.
    let prometheus = gw.envoy.admin("/stats/prometheus");
    assert!(prometheus.lines().any(|l| l.starts_with("ai_llm_requests_total{") && l.contains("route=\"local\"") && l.contains("consumer=\"bob\"")), "{}", prometheus.lines().filter(|l| l.contains("ai_llm_requests_total")).collect::<Vec<_>>().join("\n"));
}

#[test]
fn upstream_failures_name_their_cause_with_param_set() {
    let gw = one_base_url();
    let (resp, _) = call(gw, "/v1/chat/completions", Some(BOB), hello("down"), &[]);
    assert_eq!(resp.status, 503, "{}", resp.text());
    let e = &resp.json()["error"];
    assert_eq!((e["code"].clone(), e["type"].clone(), e["param"].clone()), (json!("upstream_connect_failed"), json!("upstream_error"), Value::Null), "{e}");
    assert!(e["message"].as_str().unwrap_or_default().starts_with("the gateway could not connect to the upstream"), "{e}");
    // Counted as an upstream error, but no provider latency sample (a
    // failed connect took no provider time). Histograms reach the admin at
    // the stats flush.
    std::thread::sleep(std::time::Duration::from_millis(5500));
    let stats = gw.envoy.admin("/stats?filter=model\\.m\\.");
    assert!(stats.contains("ai_llm_requests_total.provider.openai.model.m.") && stats.contains("upstream_error"), "{stats}");
    assert!(!stats.contains("ai_llm_provider_latency_ms"), "{stats}");
}

#[test]
fn the_sdks_work_at_the_gateways_root() {
    let gw = one_base_url();
    let base = format!("http://127.0.0.1:{}", gw.envoy.ports.listener);
    let script = r#"
import json, sys, openai, anthropic
base, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
models = [m.id for m in client.models.list()]
chat = client.chat.completions.create(model="local", messages=[{"role": "user", "content": "one base url"}])
streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(model="fake-small", messages=[{"role": "user", "content": "streamed"}], stream=True) if c.choices)
claude = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
msg = claude.messages.create(model="local", max_tokens=50, messages=[{"role": "user", "content": "from claude"}])
errors = []
try:
    openai.OpenAI(base_url=base + "/v1", api_key="wrong-key-0000", max_retries=0).chat.completions.create(model="local", messages=[{"role": "user", "content": "x"}])
except openai.AuthenticationError as e:
    errors.append("openai-401")
try:
    claude.messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}])
except anthropic.NotFoundError as e:
    errors.append("anthropic-404")
print(json.dumps({"models": models, "chat": chat.choices[0].message.content, "streamed": streamed, "claude": msg.content[0].text, "errors": errors}))
"#;
    let out = Command::new(repo_root().join(".venv/bin/python")).args(["-c", script, &base, BOB]).output().unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r["models"][0], "local");
    assert!(r["chat"].as_str().is_some_and(|t| t.contains("one base url")), "{r}");
    assert!(r["streamed"].as_str().is_some_and(|t| t.contains("streamed")), "{r}");
    assert!(r["claude"].as_str().is_some_and(|t| t.contains("from claude")), "{r}");
    assert_eq!(r["errors"], json!(["openai-401", "anthropic-404"]));
}

#[test]
fn a_revoked_key_is_refused_once_aigw_renders_again() {
    let gw = one_base_url();
    let (resp, _) = call(gw, "/v1/chat/completions", Some(ALICE), hello("local"), &[]);
    assert_ne!(resp.status, 401);
    // Alice's key is rotated in the Secret and the file rendered again.
    let rotated = ONE_BASE_URL.replace("alice: alice-key-0001", "alice: alice-key-0009");
    let again = start("one-base-url-rotated", &rotated, &[("BOB_SECOND_KEY", BOB_SECOND)]);
    let (resp, got) = call(&again, "/v1/chat/completions", Some(ALICE), hello("local"), &[]);
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert!(got.is_empty());
    let (resp, _) = call(&again, "/v1/chat/completions", Some("alice-key-0009"), hello("local"), &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
}
