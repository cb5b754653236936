//! ai-proxy options that no shipped route sets, proven in the real Envoy:
//! envoy/envoy.yaml with some instances' configurations replaced, the fake
//! provider checking what each one sent.

use ai_gateway_tests::fake::Recorded;
use ai_gateway_tests::http::{send, Request, Response};
use ai_gateway_tests::{test_id, Gateway};
use serde_json::{json, Value};
use std::sync::OnceLock;

/// Replaces the JSON configuration of the named ai-proxy instance.
fn configure(yaml: String, instance: &str, config: Value) -> String {
    let start = yaml.find(&format!("          - name: {instance}\n")).unwrap_or_else(|| panic!("no filter {instance} in envoy.yaml"));
    let at = start + yaml[start..].find("value: '").unwrap_or_else(|| panic!("no configuration for {instance}"));
    let end = at + yaml[at..].find('\n').unwrap_or(0);
    format!("{}value: '{}'{}", &yaml[..at], config, &yaml[end..])
}

fn gateway() -> &'static (Gateway, u64) {
    static GATEWAY: OnceLock<(Gateway, u64)> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        let local = |path: &str| format!("http://127.0.0.1:8000{path}");
        let rewrite = |yaml: String| {
            let yaml = configure(yaml, "ai-proxy-local-chat", json!({
                "auth": {"param_name": "key", "param_value": "gw-query-secret", "param_location": "query"},
                "model": {"provider": "openai", "options": {"upstream_url": local("/v1/chat/completions")}},
                "logging": {"log_payloads": true, "log_statistics": true}
            }));
            let yaml = configure(yaml, "ai-proxy-local-completions", json!({
                "route_type": "llm/v1/completions",
                "auth": {"param_name": "api_key", "param_value": "gw-body-secret", "param_location": "body"},
                "model": {"provider": "openai", "options": {"upstream_url": local("/v1/completions")}}
            }));
            let yaml = configure(yaml, "ai-proxy-local-embeddings", json!({
                "route_type": "preserve",
                "auth": {"header_name": "Authorization", "header_value": "Bearer gw-preserve", "allow_override": true},
                "model": {"provider": "openai", "options": {"upstream_url": local("/")}}
            }));
            let yaml = configure(yaml, "ai-proxy-mistral-chat", json!({
                "auth": {"header_name": "Authorization", "header_value": "Bearer {vault://env/MISTRAL_API_KEY}"},
                "model": {"provider": "mistral", "name": "mistral-nemo", "options": {"mistral_format": "ollama", "upstream_url": "http://127.0.0.1:11434"}}
            }));
            let yaml = configure(yaml, "ai-proxy-gemini-chat", json!({
                "auth": {"header_name": "x-goog-api-key", "header_value": "{vault://env/GEMINI_API_KEY}"},
                "model": {"provider": "gemini", "name": "gemini-2.5-flash", "options": {"gemini": {"api_endpoint": "gemini.internal.example"}}}
            }));
            configure(yaml, "ai-proxy-gemini-embeddings", json!({
                "route_type": "llm/v1/embeddings",
                "auth": {"header_name": "Authorization", "header_value": "Bearer {vault://env/VERTEX_ACCESS_TOKEN}"},
                "model": {"provider": "gemini", "name": "text-embedding-004", "options": {"gemini": {"project_id": "my-project", "location_id": "us-central1"}}}
            }))
        };
        let env = [("ANTHROPIC_API_KEY", "sk-ant-opt"), ("MISTRAL_API_KEY", "mi-opt"), ("GEMINI_API_KEY", "gm-opt"), ("VERTEX_ACCESS_TOKEN", "ya29.opt")];
        let g = Gateway::start("envoy.yaml", &env, &rewrite);
        let vms = g.envoy.vm_baseline();
        (g, vms)
    })
}

fn send_with(path: &str, body: &[u8], headers: &[(&'static str, &str)]) -> (Response, Vec<Recorded>, String) {
    let (g, vms) = gateway();
    let id = test_id("popt");
    let mut req = Request { method: "POST", path, headers: vec![("content-type", "application/json".into())], body: body.to_vec() };
    req = req.header("x-test-id", id.clone()).header("x-request-id", id.clone());
    for (n, v) in headers {
        req = req.header(n, v.to_string());
    }
    let resp = send(g.envoy.ports.listener, &req);
    let got = g.fake.requests(&id);
    g.envoy.assert_no_vm_crash(*vms);
    (resp, got, id)
}

fn post(path: &str, body: Value, headers: &[(&'static str, &str)]) -> (Response, Vec<Recorded>, String) {
    send_with(path, body.to_string().as_bytes(), headers)
}

#[test]
fn query_credential_replaces_the_clients_and_payloads_are_logged() {
    let marker = test_id("payload");
    let (resp, got, id) = post("/v1/chat/completions?key=client-key&trace=1", json!({"model": "m", "messages": [{"role": "user", "content": marker}]}), &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(got.len(), 1);
    // A translated route sends to its configured path: the client's query
    // (and its key) stays behind; the gateway's key is added.
    assert_eq!(got[0].path, "/v1/chat/completions?key=gw-query-secret");
    // log_payloads: both bodies in the access log and the Envoy log.
    let line = gateway().0.envoy.access_log(&id);
    assert!(line["ai_request_payload"].as_str().is_some_and(|p| p.contains(&marker)), "{line}");
    assert!(line["ai_response_payload"].as_str().is_some_and(|p| p.contains("chat.completion")), "{line}");
    assert!(gateway().0.envoy.log().lines().any(|l| l.contains("ai.request_payload:") && l.contains(&marker)));
    assert_eq!(line["client_path"], "/v1/chat/completions", "the client's query (which may hold a key) is not logged");
}

#[test]
fn body_credential_is_added_and_the_clients_replaced() {
    let (resp, got, id) = post("/v1/completions", json!({"model": "m", "prompt": "two words", "api_key": "client-secret"}), &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    // No log_statistics on this route: the access log's keys stay unset.
    let line = gateway().0.envoy.access_log(&id);
    assert_eq!((line["ai_provider"].as_str(), &line["ai_total_tokens"], &line["client_path"]), (Some("openai"), &Value::Null, &Value::Null), "{line}");
    let sent = got[0].json();
    assert_eq!(sent["api_key"], "gw-body-secret");
    assert_eq!(sent["prompt"], "two words");
    assert_eq!(got[0].path, "/v1/completions");
}

#[test]
fn preserve_sends_the_clients_bytes_and_allow_override_keeps_its_key() {
    // Not a valid embeddings request, odd spacing: it goes as it came.
    let body = br#"{ "input" :"kept as is",   "vendor_extension": {"x": 1} }"#;
    let (resp, got, _) = send_with("/v1/embeddings", body, &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(got[0].body, body.to_vec(), "byte for byte");
    assert_eq!(got[0].path, "/v1/embeddings");
    assert_eq!(got[0].header("authorization"), Some("Bearer gw-preserve"));
    assert_eq!(resp.usage()["total_tokens"], 3, "usage is still read from the answer");

    let (resp, got, _) = send_with("/v1/embeddings", body, &[("authorization", "Bearer client-own")]);
    assert_eq!(resp.status, 200);
    assert_eq!(got[0].header("authorization"), Some("Bearer client-own"), "allow_override: the client's key is used");
}

#[test]
fn mistral_on_ollamas_native_api() {
    let (resp, got, _) = post("/mistral/v1/chat/completions", json!({"messages": [{"role": "user", "content": "hello there"}], "max_completion_tokens": 20}), &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(got[0].path, "/api/chat");
    let sent = got[0].json();
    assert_eq!(sent["model"], "mistral-nemo");
    assert_eq!(sent["stream"], false);
    assert!(sent["messages"].is_array());
    let v = resp.json();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["choices"][0]["message"]["content"].as_str().is_some_and(|t| t.contains("hello there")), "{v}");
    assert_eq!(resp.header("x-llm-model"), Some("mistral/mistral-nemo"));
}

#[test]
fn gemini_api_endpoint_names_the_host() {
    let (resp, got, _) = post("/gemini/v1/chat/completions", json!({"messages": [{"role": "user", "content": "hi"}]}), &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(got[0].header("host"), Some("gemini.internal.example"));
    assert_eq!(got[0].path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(got[0].header("x-goog-api-key"), Some("gm-opt"));
}

#[test]
fn vertex_embeddings_use_predict() {
    let (resp, got, _) = post("/gemini/v1/embeddings", json!({"input": ["first text here", "second"]}), &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(got[0].path, "/v1/projects/my-project/locations/us-central1/publishers/google/models/text-embedding-004:predict");
    assert_eq!(got[0].header("host"), Some("us-central1-aiplatform.googleapis.com"));
    assert_eq!(got[0].header("authorization"), Some("Bearer ya29.opt"));
    assert_eq!(got[0].json(), json!({"instances": [{"content": "first text here"}, {"content": "second"}]}));
    let v = resp.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["usage"]["prompt_tokens"], 4, "token counts from Vertex's statistics");
}

#[test]
fn fields_a_provider_cannot_honour_are_refused_before_it() {
    let (resp, got, _) = post("/anthropic/v1/chat/completions", json!({"messages": [{"role": "user", "content": "hi"}], "n": 3}), &[]);
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(got.is_empty());
    let v = resp.json();
    assert_eq!(v["error"]["message"], "`n` is not supported by anthropic");
    assert_eq!(v["error"]["code"], "unsupported_parameter");
    // The same field asking for nothing passes, and what maps is mapped.
    let (resp, got, _) = post("/anthropic/v1/chat/completions", json!({"messages": [{"role": "user", "content": "hi"}], "n": 1, "user": "u-42", "seed": 5}), &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let sent = got[0].json();
    assert_eq!(sent["metadata"], json!({"user_id": "u-42"}));
    assert!(sent.get("seed").is_none() && sent.get("n").is_none());
}
