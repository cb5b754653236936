//! ai-mcp-proxy in a real Envoy running envoy/mcp.yaml, between the
//! official MCP Python SDK's client and a real server built with the same
//! SDK: ACLs for three consumers, in both protocol eras (2025-11-25 with
//! sessions, stateless 2026-07-28), streams, bad input, metrics, logs.

use ai_gateway_tests::envoy::Envoy;
use ai_gateway_tests::http::{send, Request};
use ai_gateway_tests::mcp::{client, McpServer, RestApi};
use ai_gateway_tests::test_id;
use serde_json::{json, Value};
use std::sync::OnceLock;

/// The server has 6 tools of its own and 100 more (`tool_0`...).
const EXTRA_TOOLS: usize = 100;

struct Setup {
    server: McpServer,
    rest: RestApi,
    envoy: Envoy,
    vms: u64,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let server = McpServer::start(&[], EXTRA_TOOLS);
        let rest = RestApi::start();
        // The shipped ports: the MCP server on 8001, the orders API on 8002.
        let envoy = Envoy::start_mapped("mcp.yaml", server.port, 2, &[], &|yaml| yaml, &[(8001, server.port), (8002, rest.port)]);
        let vms = envoy.vm_baseline();
        Setup { server, rest, envoy, vms }
    })
}

fn orders_url() -> String {
    format!("http://127.0.0.1:{}/orders/mcp", setup().envoy.ports.listener)
}

fn url() -> String {
    format!("http://127.0.0.1:{}/tools/mcp", setup().envoy.ports.listener)
}

const ADMIN: &[(&str, &str)] = &[("x-consumer-id", "ada"), ("x-consumer-groups", "admins")];
const DEV: &[(&str, &str)] = &[("x-consumer-id", "dev")];
const SUSPENDED: &[(&str, &str)] = &[("x-consumer-id", "carol"), ("x-consumer-groups", "staff, suspended")];

fn own_tools() -> Vec<&'static str> {
    vec!["add", "big", "delete_everything", "echo", "slow_count", "whoami"]
}

fn listed(result: &Value) -> Vec<String> {
    let tools = result["tools"].as_array().unwrap_or_else(|| panic!("no tools: {result}"));
    tools.iter().filter_map(|t| t.as_str()).filter(|t| !t.starts_with("tool_")).map(str::to_string).collect()
}

#[test]
fn each_consumer_lists_exactly_the_tools_it_may_call_in_both_protocol_eras() {
    for mode in ["legacy", "modern"] {
        let admin = client(&url(), "list", ADMIN, mode);
        assert_eq!(admin["protocol"], if mode == "legacy" { "2025-11-25" } else { "2026-07-28" }, "{admin}");
        assert_eq!(listed(&admin), own_tools(), "{mode}");
        assert_eq!(admin["tools"].as_array().map(Vec::len), Some(6 + EXTRA_TOOLS), "the 100 extra tools pass too");
        let dev = client(&url(), "list", DEV, mode);
        assert_eq!(listed(&dev), own_tools().into_iter().filter(|t| *t != "delete_everything").collect::<Vec<_>>(), "{mode}");
        let suspended = client(&url(), "list", SUSPENDED, mode);
        assert_eq!(suspended["tools"], json!([]), "{mode}: a suspended consumer sees no tools");
        let anonymous = client(&url(), "list", &[], mode);
        assert_eq!(anonymous["tools"].as_array().map(Vec::len), Some(5 + EXTRA_TOOLS), "{mode}: anonymous requests match no allow list");
    }
    setup().envoy.assert_no_vm_crash(setup().vms);
}

#[test]
fn a_denied_call_never_reaches_the_server_and_the_session_keeps_working() {
    for mode in ["legacy", "modern"] {
        let before = setup().server.calls().len();
        let out = client(&url(), "sequence", DEV, mode);
        let results = &out["results"];
        assert_eq!(results[0]["structured"], json!({"result": 5}), "{out}");
        assert_eq!(results[1]["error"]["code"], -32602, "{out}");
        assert_eq!(results[1]["error"]["message"], "Tool 'delete_everything' is not available for consumer 'dev'");
        assert_eq!(results[2]["structured"], json!({"result": 9}), "{mode}: the call after a refusal works: {out}");
        let calls: Vec<String> = setup().server.calls()[before..].iter().map(|c| c["tool"].as_str().unwrap_or_default().to_string()).collect();
        assert!(!calls.contains(&"delete_everything".to_string()), "{mode}: the server ran {calls:?}");
        assert_eq!(calls.iter().filter(|c| *c == "add").count(), 2, "{calls:?}");
        // The admin group may.
        let admin = client(&url(), r#"call:delete_everything:{"confirm":true}"#, ADMIN, mode);
        assert_eq!(admin["text"], "deleted", "{admin}");
        // Suspended: nothing, not even a tool no other rule names.
        let carol = client(&url(), r#"call:add:{"a":1,"b":1}"#, SUSPENDED, mode);
        assert_eq!(carol["error"]["code"], -32602, "{carol}");
    }
}

#[test]
fn progress_is_streamed_through_and_large_results_pass_whole() {
    let out = client(&url(), "progress:10", DEV, "legacy");
    assert_eq!(out["progress"].as_array().map(Vec::len), Some(10), "{out}");
    assert_eq!(out["text"], "counted 10");
    // 10 notifications 50 ms apart: the first reached the client well
    // before the answer, so the stream was not held back.
    assert!(out["first_progress_lead_s"].as_f64().is_some_and(|s| s > 0.3), "{out}");
    // Text and structuredContent each hold it: just under the SDK
    // client's own 1 MiB limit on one SSE event.
    let big = client(&url(), r#"call:big:{"size":500000}"#, DEV, "legacy");
    assert_eq!(big["text"].as_str().map(str::len), Some(500_000), "{}", &big.to_string()[..200.min(big.to_string().len())]);
}

#[test]
fn thirty_sessions_at_once_on_both_workers_get_their_own_answers() {
    let out = client(&url(), "concurrent:30", DEV, "legacy");
    assert_eq!((out["ok"].as_u64(), out["errors"].as_array().map(Vec::len)), (Some(30), Some(0)), "{out}");
}

fn post(body: &str, headers: &[(&'static str, &str)]) -> (ai_gateway_tests::http::Response, String) {
    let id = test_id("mcp");
    let mut req = Request { method: "POST", path: "/tools/mcp", headers: vec![("content-type", "application/json".into()), ("accept", "application/json, text/event-stream".into()), ("x-request-id", id.clone())], body: body.as_bytes().to_vec() };
    for (k, v) in headers {
        req.headers.push((k, v.to_string()));
    }
    (send(setup().envoy.ports.listener, &req), id)
}

#[test]
fn what_cannot_be_read_one_way_is_refused_and_logged() {
    let before = setup().server.calls().len();
    // Two names: Python's parser would run the second.
    let (r, _) = post(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","name":"delete_everything","arguments":{}}}"#, DEV);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["error"]["code"], -32602, "{}", r.text());
    let (r, _) = post("{not json", DEV);
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (400, json!(-32700)));
    let (r, _) = post(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add"}}"#, &[("x-consumer-id", "dev"), ("mcp-name", "echo")]);
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (400, json!(-32020)));
    let plain = send(setup().envoy.ports.listener, &Request { method: "POST", path: "/tools/mcp", headers: vec![("content-type", "text/plain".into())], body: b"{}".to_vec() });
    assert_eq!(plain.status, 415);
    // An escaped name is the name it spells.
    let (r, id) = post(r#"{"jsonrpc":"2.0","id":"d1","method":"tools/call","params":{"name":"delete_\u0065verything","arguments":{"confirm":true}}}"#, DEV);
    assert_eq!(r.json()["error"]["message"], "Tool 'delete_everything' is not available for consumer 'dev'");
    assert_eq!(setup().server.calls().len(), before, "nothing refused reached the server");
    let line = setup().envoy.access_log(&id);
    assert_eq!((&line["ai_mcp_method"], &line["ai_mcp_tool"], &line["ai_mcp_outcome"], &line["ai_mcp_consumer"]), (&json!("tools/call"), &json!("delete_everything"), &json!("denied"), &json!("dev")), "{line}");
    assert_eq!(line["ai_mcp_error_code"], "-32602");
    let audit: Value = serde_json::from_str(line["ai_mcp_audit"].as_str().unwrap_or("null")).unwrap_or_default();
    assert_eq!(audit[0]["action"], "deny", "{line}");
    setup().envoy.assert_no_vm_crash(setup().vms);
}

#[test]
fn metrics_count_calls_denials_and_hidden_tools() {
    let before = scrape();
    client(&url(), "sequence", &[("x-consumer-id", "metrics-dev")], "legacy");
    let after = scrape();
    let delta = |k: &str| after.get(&sorted_labels(k)).copied().unwrap_or(0) - before.get(&sorted_labels(k)).copied().unwrap_or(0);
    assert_eq!(delta(r#"ai_mcp_tool_calls_total{server="mcp-tools",tool="add",outcome="success"}"#), 2, "{after:#?}");
    assert_eq!(delta(r#"ai_mcp_acl_denials_total{server="mcp-tools",consumer="metrics-dev"}"#), 1);
    assert_eq!(delta(r#"ai_mcp_tools_hidden_total{server="mcp-tools",consumer="metrics-dev"}"#), 1);
    assert!(delta(r#"ai_mcp_requests_total{server="mcp-tools",method="initialize",outcome="success"}"#) >= 1);
    assert!(after.contains_key(&sorted_labels(r#"ai_mcp_tool_call_latency_ms_count{server="mcp-tools",tool="add"}"#)), "{after:#?}");
}

fn scrape() -> std::collections::BTreeMap<String, u64> {
    setup()
        .envoy
        .admin("/stats/prometheus")
        .lines()
        .filter(|l| l.starts_with("ai_mcp"))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(k, v)| v.parse::<f64>().ok().map(|v| (sorted_labels(k), v as u64))))
        .collect()
}

/// `name{b="1",a="2"}` as `name{a="2",b="1"}`: Envoy orders labels by its
/// tag rules, which differ between configs.
fn sorted_labels(series: &str) -> String {
    let Some((name, labels)) = series.split_once('{') else { return series.to_string() };
    let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
    labels.sort_unstable();
    format!("{name}{{{}}}", labels.join(","))
}

#[test]
fn a_rest_api_served_as_mcp_tools() {
    let dev = client(&orders_url(), "list", DEV, "legacy");
    assert_eq!(dev["tools"], json!(["create_order", "get_order"]), "{dev}");
    assert_eq!(client(&orders_url(), "list", ADMIN, "legacy")["tools"], json!(["cancel_order", "create_order", "get_order"]));

    let before = setup().rest.requests().len();
    let got = client(&orders_url(), r#"call:get_order:{"shop":"a b/c","id":"42","expand":["items","x&y"],"x-trace":"t1","session":"s1"}"#, DEV, "legacy");
    assert_eq!(got["is_error"], false, "{got}");
    assert_eq!(got["structured"], json!({"shop": "a b/c", "id": "42", "expand": ["items", "x&y"], "trace": "t1", "api_version": "2", "cookie": "session=s1"}));
    let sent = &setup().rest.requests()[before];
    // Each value stays inside its own segment or query value.
    assert_eq!((sent["method"].as_str(), sent["path"].as_str()), (Some("GET"), Some("/shops/a%20b%2Fc/orders/42?expand=items&expand=x%26y")), "{sent}");
    assert_eq!(sent["headers"]["accept-encoding"], "identity", "{sent}");
    // A `..` segment, even encoded, never reaches the API.
    let traversal = client(&orders_url(), r#"call:get_order:{"shop":"a/../../admin","id":"1"}"#, DEV, "legacy");
    assert_eq!(traversal["is_error"], true, "{traversal}");
    assert!(sent["headers"].get("mcp-session-id").is_none() && sent["headers"].get("x-ai-mcp-proxy").is_none(), "{sent}");
    assert_eq!(sent["headers"]["x-consumer-id"], "dev", "client headers are forwarded (server.forward_client_headers)");

    let missing = client(&orders_url(), r#"call:get_order:{"shop":"s","id":"404"}"#, DEV, "legacy");
    assert_eq!((missing["is_error"].clone(), missing["text"].clone()), (json!(true), json!("no such order")), "an API 404 is a tool error");
    let created = client(&orders_url(), r#"call:create_order:{"body":{"item":"pen","quantity":2}}"#, DEV, "legacy");
    assert_eq!(created["structured"], json!({"id": 7, "received": {"item": "pen", "quantity": 2}}), "{created}");
    let refused = client(&orders_url(), r#"call:cancel_order:{"id":"7"}"#, DEV, "legacy");
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    let no_id = client(&orders_url(), r#"call:get_order:{"shop":"s"}"#, DEV, "legacy");
    assert_eq!((no_id["is_error"].clone(), no_id["text"].clone()), (json!(true), json!("missing required argument `id`")));
    assert!(!setup().rest.requests()[before..].iter().any(|r| r["method"] == "DELETE" || r["path"] == "/shops/s/orders/"), "refused calls never reach the API");
    // A 204 without a body.
    let cancelled = client(&orders_url(), r#"call:cancel_order:{"id":"7"}"#, ADMIN, "legacy");
    assert_eq!((cancelled["is_error"].clone(), cancelled["text"].clone()), (json!(false), json!("HTTP 204")), "{cancelled}");
    setup().envoy.assert_no_vm_crash(setup().vms);
}

/// The MCP dashboard's panels against a real Prometheus: every query
/// answers after known traffic, and the counts are the traffic's. Its own
/// Envoy, so the other tests' traffic does not count.
#[test]
fn the_mcp_dashboard_shows_the_traffic() {
    use ai_gateway_tests::prometheus::Prometheus;
    use std::time::{Duration, Instant};
    let s = setup();
    let envoy = Envoy::start_mapped("mcp.yaml", s.server.port, 2, &[], &|yaml| yaml, &[(8001, s.server.port), (8002, s.rest.port)]);
    let url = format!("http://127.0.0.1:{}/tools/mcp", envoy.ports.listener);
    let round = || {
        client(&url, "sequence", &[("x-consumer-id", "dash-dev")], "legacy");
        client(&url, r#"call:delete_everything:{"confirm":true}"#, ADMIN, "legacy");
    };
    round(); // every series is born before the first scrape
    let prom = Prometheus::start(envoy.ports.admin, "1s");
    prom.wait_for("count_over_time(ai_mcp_tool_calls_total[1m])", Duration::from_secs(30), |x| !x.is_empty() && x.iter().all(|x| x.value >= 2.0));
    let started = Instant::now();
    round();
    // Two rounds: add twice per round, delete_everything once allowed and once denied.
    prom.wait_for("sum(ai_mcp_tool_calls_total)", Duration::from_secs(10), |x| x.first().is_some_and(|x| x.value == 8.0));
    std::thread::sleep(Duration::from_secs(15).saturating_sub(started.elapsed()));
    let span = started.elapsed().as_secs_f64();

    let answers = prom.dashboard_answers("envoy/grafana/ai-gateway-mcp-dashboard.json");
    assert!(answers.len() >= 6, "{answers:?}");
    let value = |expr: &str, want: &[(&str, &str)]| -> f64 {
        let samples = answers.get(expr).unwrap_or_else(|| panic!("the dashboard no longer has {expr}"));
        samples.iter().filter(|x| want.iter().all(|(k, v)| x.labels[k] == *v)).map(|x| x.value).sum()
    };
    // rate × 300 s is the count in the window, stretched by up to 1.5 scrapes of extrapolation.
    let rate = "sum by (server, tool, outcome) (rate(ai_mcp_tool_calls_total[5m]))";
    let adds = value(rate, &[("tool", "add"), ("outcome", "success")]) * 300.0;
    assert!((2.0..=2.0 * (span + 1.5) / span + 1e-9).contains(&adds), "adds shown as {adds}");
    let denials = "round(sum by (server, consumer) (increase(ai_mcp_acl_denials_total[1h])))";
    assert_eq!(value(denials, &[("server", "mcp-tools"), ("consumer", "dash-dev")]), 1.0);
    let hidden = "round(sum by (server, consumer) (increase(ai_mcp_tools_hidden_total[1h])))";
    assert_eq!(value(hidden, &[("consumer", "dash-dev")]), 1.0);
    let p95 = "histogram_quantile(0.95, sum by (le, server, tool) (rate(ai_mcp_tool_call_latency_ms_bucket[5m])))";
    assert!(answers[p95].iter().all(|x| x.value >= 0.0 && x.value < 60_000.0));
}

/// HTTP/2 can end a request body with trailers, so no body callback says
/// "end of stream": the body must still be read before anything goes on.
#[test]
fn a_call_whose_body_ends_with_trailers_is_still_checked() {
    let before = setup().server.calls().len();
    let run = |body: &str| -> Value {
        let out = std::process::Command::new(ai_gateway_tests::envoy::repo_root().join(".venv/bin/python"))
            .arg(ai_gateway_tests::envoy::repo_root().join("tests/sdk/h2_trailers.py"))
            .args([&setup().envoy.ports.listener.to_string(), "/tools/mcp", body, "x-consumer-id=dev"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    };
    let denied = run(r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"delete_everything","arguments":{"confirm":true}}}"#);
    assert_eq!(denied["status"], 200, "{denied}");
    let answer: Value = serde_json::from_str(denied["body"].as_str().unwrap_or_default()).unwrap_or_default();
    assert_eq!(answer["error"]["code"], -32602, "{denied}");
    assert!(!setup().server.calls()[before..].iter().any(|c| c["tool"] == "delete_everything"), "the denied call reached the server");
    let bad = run("{not json");
    assert_eq!(bad["status"], 400, "{bad}");
}
