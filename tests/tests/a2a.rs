//! ai-a2a-proxy in a real Envoy running envoy/a2a.yaml, between the
//! official A2A Python SDK's client and a real agent built with the same
//! SDK: the card found through the gateway and every call sent through it,
//! both bindings, A2A 1.0 and 0.3, streams unbuffered, ACLs, malformed
//! input, metrics and logs, concurrent tasks on both workers.

use ai_gateway_tests::a2a::{client, Agent};
use ai_gateway_tests::envoy::Envoy;
use ai_gateway_tests::http::{send, Request};
use ai_gateway_tests::{eventually, test_id};
use serde_json::{json, Value};
use std::sync::OnceLock;

struct Setup {
    agent: Agent,
    envoy: Envoy,
    vms: u64,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let agent = Agent::start(&["--v03", "--slow-seconds", "8"]);
        // The shipped port: the agent on 8003.
        let envoy = Envoy::start_mapped("a2a.yaml", agent.port, 2, &[], &|yaml| yaml, &[(8003, agent.port)]);
        let vms = envoy.vm_baseline();
        Setup { agent, envoy, vms }
    })
}

fn base() -> String {
    format!("http://127.0.0.1:{}/echo", setup().envoy.ports.listener)
}

const OPS: &str = "x-consumer-id=olga";
const OPS_GROUP: &str = "x-consumer-groups=ops";
const INTERN: &str = "x-consumer-groups=interns";

fn run(args: &[&str]) -> Value {
    client(&base(), args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Tests that cancel tasks take turns: one counts the cancelled tasks.
static CANCELS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Count and sum of this agent's task-duration histogram for `state`
/// (Envoy publishes histograms at its stats flush, every 5 s).
fn durations(state: &str) -> (u64, f64) {
    let metrics = setup().envoy.admin("/stats/prometheus");
    let value = |suffix: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("ai_a2a_task_duration_ms_{suffix}{{")) && l.contains("agent=\"a2a-echo\"") && l.contains(&format!("state=\"{state}\"")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (value("count") as u64, value("sum"))
}

/// A stat of this agent's filter (`a2a-echo`), 0 while Envoy has none.
fn stat(name: &str) -> u64 {
    let name = format!("wasmcustom.{name}");
    let text = setup().envoy.admin(&format!("/stats?filter=^{}$", name.replace('.', "\\.")));
    text.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
}

#[test]
fn the_sdk_finds_the_agent_through_the_gateway_and_sends_every_call_through_it() {
    for binding in ["jsonrpc", "rest"] {
        let card = run(&["--op", "card", "--binding", binding]);
        let interfaces = card["card"]["supportedInterfaces"].as_array().unwrap_or_else(|| panic!("{card}"));
        assert_eq!(interfaces.len(), 4, "1.0 and 0.3, both bindings: {card}");
        for i in interfaces {
            assert_eq!(i["url"], base(), "every interface URL is the gateway's: {card}");
        }
        assert_eq!(card["url"], base(), "the client calls the gateway");
        assert_eq!(card["card"]["provider"]["url"], "http://127.0.0.1/", "other URLs stay");

        let text = test_id("hello");
        let sent = run(&["--op", "send", "--binding", binding, "--text", &text]);
        assert_eq!((sent["state"].as_str(), sent["text"].as_str()), (Some("TASK_STATE_COMPLETED"), Some(format!("echo: {text}").as_str())), "{sent}");
        let seen = setup().agent.seen();
        let calls: Vec<&Value> = seen.iter().filter(|r| r["body"].as_str().is_some_and(|b| b.contains(&text))).collect();
        let want = if binding == "jsonrpc" { "/" } else { "/message:send" };
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0]["path"], want);
        assert!(calls[0]["headers"]["x-request-id"].is_string(), "it came through Envoy: {:?}", calls[0]);
        assert!(calls[0]["headers"].get("accept-encoding").is_none(), "answers are asked for uncompressed");
    }
    // The raw card: JSON, no stale length or validator.
    let resp = send(setup().envoy.ports.listener, &Request { method: "GET", path: "/echo/.well-known/agent-card.json", headers: vec![("x-forwarded-host", "gw.example.com, proxy.internal".into())], body: vec![] });
    assert_eq!(resp.status, 200);
    assert!(resp.header("etag").is_none());
    assert_eq!(resp.header("cache-control"), Some("private"), "a card made for this consumer is kept by no shared cache");
    let card = resp.json();
    assert_eq!(card["url"], "http://gw.example.com/echo", "0.3's url too, from the host the client asked for: {card}");
    assert_eq!(card["additionalInterfaces"][0]["url"], "http://gw.example.com/echo");
    setup().envoy.assert_no_vm_crash(setup().vms);
}

#[test]
fn streams_pass_event_by_event_and_tasks_are_polled_cancelled_and_continued() {
    for binding in ["jsonrpc", "rest"] {
        let s = run(&["--op", "stream", "--binding", binding, "--text", "abc"]);
        assert_eq!(s["final_state"], "TASK_STATE_COMPLETED", "{s}");
        let (first, last) = (s["first_event_ms"].as_f64().unwrap_or(f64::MAX), s["last_event_ms"].as_f64().unwrap_or(0.0));
        assert!(first + 500.0 < last, "the first event arrives before the agent has finished: {s}");
        assert!(s["events"].as_array().is_some_and(|e| e.len() >= 5), "{s}");

        let got = run(&["--op", "get", "--binding", binding, "--text", "x"]);
        assert_eq!(got["state"], "TASK_STATE_COMPLETED", "{got}");
        let asked = run(&["--op", "ask", "--binding", binding, "--text", "what?"]);
        assert_eq!((asked["first_state"].as_str(), asked["state"].as_str()), (Some("TASK_STATE_INPUT_REQUIRED"), Some("TASK_STATE_COMPLETED")), "{asked}");
        let cancelled = {
            let _turn = CANCELS.lock().unwrap_or_else(|e| e.into_inner());
            run(&["--op", "cancel", "--binding", binding, "--text", "x", "--header", OPS, "--header", OPS_GROUP])
        };
        assert_eq!(cancelled["state"], "TASK_STATE_CANCELED", "ops may cancel: {cancelled}");
    }
    setup().envoy.assert_no_vm_crash(setup().vms);
}

#[test]
fn a2a_0_3_clients_work_through_the_gateway_on_both_bindings() {
    for binding in ["jsonrpc", "rest"] {
        let card = run(&["--op", "card", "--binding", binding, "--protocol-version", "0.3"]);
        assert_eq!(card["url"], base(), "{card}");
        let sent = run(&["--op", "send", "--binding", binding, "--protocol-version", "0.3", "--text", "old"]);
        assert_eq!(sent["text"], "echo: old", "{sent}");
        let s = run(&["--op", "stream", "--binding", binding, "--protocol-version", "0.3", "--text", "abc"]);
        assert_eq!(s["final_state"], "TASK_STATE_COMPLETED", "{s}");
    }
    let seen = setup().agent.seen();
    assert!(seen.iter().any(|r| r["path"] == "/v1/message:send"), "0.3's REST paths reached the agent");
    assert!(seen.iter().any(|r| r["body"].as_str().is_some_and(|b| b.contains("\"message/stream\""))), "0.3's JSON-RPC methods too");
}

#[test]
fn denied_methods_and_skills_are_refused_in_each_bindings_shape_and_never_reach_the_agent() {
    for binding in ["jsonrpc", "rest"] {
        let before = setup().agent.seen().iter().filter(|r| r["path"].as_str().is_some_and(|p| p.contains(":cancel")) || r["body"].as_str().is_some_and(|b| b.contains("CancelTask"))).count();
        let err = client(&base(), &["--op", "cancel", "--binding", binding, "--text", "x", "--header", "x-consumer-id=dev"]).expect_err("dev may not cancel");
        assert!(err["error"].as_str().is_some_and(|e| e.contains("Method 'tasks/cancel' is not available for consumer 'dev'")), "{binding}: {err}");
        let after = setup().agent.seen().iter().filter(|r| r["path"].as_str().is_some_and(|p| p.contains(":cancel")) || r["body"].as_str().is_some_and(|b| b.contains("CancelTask"))).count();
        assert_eq!(before, after, "{binding}: the cancel never reached the agent");

        let err = client(&base(), &["--op", "send", "--binding", binding, "--text", "q", "--skill", "ask", "--header", INTERN]).expect_err("interns may not ask");
        assert!(err["error"].as_str().is_some_and(|e| e.contains("Skill 'ask' is not available")), "{binding}: {err}");
        let ok = run(&["--op", "send", "--binding", binding, "--text", "q", "--skill", "echo", "--header", INTERN]);
        assert_eq!(ok["state"], "TASK_STATE_COMPLETED", "other skills are theirs: {ok}");
    }
    // A path the agent's router decodes is read decoded here too: the
    // encoded cancel is refused, the encoded card is rewritten.
    let listener = setup().envoy.ports.listener;
    let refused = send(listener, &Request { method: "POST", path: "/echo/tasks/t1%3Acancel", headers: vec![("a2a-version", "1.0".into())], body: vec![] });
    assert_eq!(refused.status, 403, "{}", refused.text());
    let card = send(listener, &Request { method: "GET", path: "/echo/.well-known/agent-card%2Ejson", headers: vec![("x-consumer-groups", "interns".into())], body: vec![] }).json();
    assert_eq!(card["url"], "http://localhost/echo", "the test client's Host: {card}");
    assert!(!card.to_string().contains(r#""id":"ask""#), "and filtered for the consumer: {card}");
    let slash = send(listener, &Request { method: "DELETE", path: "/echo/tasks/t1%2FpushNotificationConfigs%2Fc", headers: vec![], body: vec![] });
    assert_eq!(slash.status, 400, "an encoded `/` cannot be read one way");
    // Interns do not see the skill in the card; others do.
    let skills = |headers: Vec<(&'static str, String)>| {
        let card = send(setup().envoy.ports.listener, &Request { method: "GET", path: "/echo/.well-known/agent-card.json", headers, body: vec![] }).json();
        card["skills"].as_array().map(|s| s.iter().filter_map(|s| s["id"].as_str().map(str::to_string)).collect::<Vec<_>>()).unwrap_or_default()
    };
    assert!(!skills(vec![("x-consumer-groups", "interns".into())]).contains(&"ask".to_string()));
    assert!(skills(vec![]).contains(&"ask".to_string()));
    assert!(stat("ai_a2a_acl_denials_total.agent.a2a-echo.consumer.dev") >= 2);
}

#[test]
fn malformed_jsonrpc_gets_the_specs_errors_and_other_traffic_passes() {
    let post = |body: &str| {
        let req = Request { method: "POST", path: "/echo", headers: vec![("content-type", "application/json".into()), ("a2a-version", "1.0".into())], body: body.as_bytes().to_vec() };
        let resp = send(setup().envoy.ports.listener, &req);
        (resp.status, resp.json()["error"]["code"].as_i64())
    };
    let before = setup().agent.seen().len();
    assert_eq!(post(r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage""#), (400, Some(-32700)));
    assert_eq!(post(r#"[{"jsonrpc":"2.0","id":1,"method":"SendMessage"}]"#), (400, Some(-32600)));
    assert_eq!(post(r#"{"jsonrpc":"2.0","id":1,"method":"GetTask","method":"CancelTask","params":{"id":"t"}}"#), (400, Some(-32600)));
    assert_eq!(post(r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":7}}}"#), (200, Some(-32602)), "with ACLs, unreadable params are refused");
    assert_eq!(setup().agent.seen().len(), before, "none of them reached the agent");
    // A task the agent does not know: its own error, passed on and counted.
    let (status, code) = post(r#"{"jsonrpc":"2.0","id":2,"method":"GetTask","params":{"id":"no-such-task"}}"#);
    assert_eq!((status, code), (200, Some(-32001)));
    eventually("the error is counted", || stat("ai_a2a_requests_total.agent.a2a-echo.method.tasks_get.binding.jsonrpc.state.error") >= 1);
    setup().envoy.assert_no_vm_crash(setup().vms);
}

#[test]
fn metrics_and_the_access_log_tell_what_each_call_did() {
    let completed = "ai_a2a_requests_total.agent.a2a-echo.method.message_send.binding.rest.state.completed";
    let streamed = "ai_a2a_requests_total.agent.a2a-echo.method.message_stream.binding.jsonrpc.state.completed";
    let (c0, s0, t0) = (stat(completed), stat(streamed), durations("completed").0);
    run(&["--op", "send", "--binding", "rest", "--text", "m"]);
    run(&["--op", "stream", "--binding", "jsonrpc", "--text", "m"]);
    eventually("counted", || stat(completed) > c0 && stat(streamed) > s0 && durations("completed").0 >= t0 + 2);
    let metrics = setup().envoy.admin("/stats/prometheus");
    let line = metrics.lines().find(|l| l.starts_with("ai_a2a_requests_total{") && l.contains("message_send") && l.contains("\"rest\"")).unwrap_or_default();
    for label in ["agent=\"a2a-echo\"", "binding=\"rest\"", "method=\"message_send\"", "state=\"completed\""] {
        assert!(line.contains(label), "labels from stats_tags: {line}");
    }
    let has = |prefix: &str, labels: &[&str]| metrics.lines().any(|l| l.starts_with(prefix) && labels.iter().all(|x| l.contains(x)));
    assert!(has("ai_a2a_task_duration_ms_bucket{", &["agent=\"a2a-echo\"", "state=\"completed\""]), "task durations");
    assert!(has("ai_a2a_stream_first_event_ms_bucket{", &["agent=\"a2a-echo\"", "method=\"message_stream\""]), "time to a stream's first event");

    // A task sent, then cancelled: its duration runs from its first
    // request to its end, and polling it afterwards counts nothing.
    let _turn = CANCELS.lock().unwrap_or_else(|e| e.into_inner());
    let id = test_id("a2a-log");
    let send_body = json!({"jsonrpc":"2.0","id":"s","method":"SendMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"slow: x"}]},"configuration":{"returnImmediately":true}}});
    let req = Request::post_json("/echo", &send_body).header("a2a-version", "1.0").header("x-request-id", id.clone()).header("x-consumer-id", "olga");
    let answer = send(setup().envoy.ports.listener, &req).json();
    let task = answer["result"]["task"]["id"].as_str().unwrap_or_else(|| panic!("{answer}")).to_string();
    let line = setup().envoy.access_log(&id);
    assert_eq!((line["ai_a2a_method"].as_str(), line["ai_a2a_binding"].as_str(), line["ai_a2a_task_id"].as_str()), (Some("message/send"), Some("jsonrpc"), Some(task.as_str())), "{line}");
    assert_eq!((line["ai_a2a_consumer"].as_str(), line["ai_a2a_task_state"].as_str()), (Some("olga"), Some("submitted")), "{line}");
    let cancel = json!({"jsonrpc":"2.0","id":"c","method":"CancelTask","params":{"id": task}});
    let req = Request::post_json("/echo", &cancel).header("a2a-version", "1.0").header("x-consumer-groups", "ops");
    let (k0, sum0) = durations("canceled");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(send(setup().envoy.ports.listener, &req).json()["result"]["status"]["state"], "TASK_STATE_CANCELED");
    eventually("the cancelled task is counted", || durations("canceled").0 == k0 + 1);
    let (_, sum) = durations("canceled");
    assert!(sum - sum0 >= 1500.0, "timed from the send, not the cancel: {sum0} -> {sum}");
    let get = json!({"jsonrpc":"2.0","id":"g","method":"GetTask","params":{"id": task}});
    for _ in 0..2 {
        let polled = send(setup().envoy.ports.listener, &Request::post_json("/echo", &get).header("a2a-version", "1.0")).json();
        assert_eq!(polled["result"]["status"]["state"], "TASK_STATE_CANCELED");
    }
    std::thread::sleep(std::time::Duration::from_millis(5500)); // one stats flush
    assert_eq!(durations("canceled").0, k0 + 1, "polling an ended task does not count it again");
}

#[test]
fn thirty_concurrent_tasks_on_both_workers_are_all_answered_and_counted() {
    let counted = "ai_a2a_requests_total.agent.a2a-echo.method.message_send.binding.jsonrpc.state.completed";
    let before = stat(counted);
    let port = setup().envoy.ports.listener;
    let threads: Vec<_> = (0..30)
        .map(|i| {
            std::thread::spawn(move || {
                let body = json!({"jsonrpc":"2.0","id":i,"method":"SendMessage","params":{"message":{"messageId":format!("c{i}"),"role":"ROLE_USER","parts":[{"text":format!("n{i}")}]}}});
                let answer = send(port, &Request::post_json("/echo", &body).header("a2a-version", "1.0")).json();
                answer["result"]["task"]["artifacts"][0]["parts"][0]["text"].as_str().map(str::to_string)
            })
        })
        .collect();
    let texts: Vec<Option<String>> = threads.into_iter().map(|t| t.join().unwrap_or(None)).collect();
    for (i, t) in texts.iter().enumerate() {
        assert_eq!(t.as_deref(), Some(format!("echo: n{i}").as_str()), "task {i}");
    }
    eventually("all 30 counted", || stat(counted) >= before + 30);
    setup().envoy.assert_no_vm_crash(setup().vms);
}


/// The A2A dashboard's panels against a real Prometheus: every query
/// answers after known traffic, and the counts are the traffic's. Its own
/// Envoy, so the other tests' traffic does not count.
#[test]
fn the_a2a_dashboard_shows_the_traffic() {
    use ai_gateway_tests::prometheus::Prometheus;
    use std::time::{Duration, Instant};
    let s = setup();
    let envoy = Envoy::start_mapped("a2a.yaml", s.agent.port, 2, &[], &|yaml| yaml, &[(8003, s.agent.port)]);
    let base = format!("http://127.0.0.1:{}/echo", envoy.ports.listener);
    let port = envoy.ports.listener;
    let round = || {
        let sent = json!({"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"d1","role":"ROLE_USER","parts":[{"text":"dash"}]}}});
        let answer = send(port, &Request::post_json("/echo", &sent).header("a2a-version", "1.0")).json();
        assert_eq!(answer["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED", "{answer}");
        let streamed = client(&base, &["--op", "stream", "--binding", "rest", "--text", "dash"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(streamed["final_state"], "TASK_STATE_COMPLETED");
        let cancel = json!({"jsonrpc":"2.0","id":2,"method":"CancelTask","params":{"id":"t"}});
        let refused = send(port, &Request::post_json("/echo", &cancel).header("a2a-version", "1.0").header("x-consumer-id", "dash-dev")).json();
        assert_eq!(refused["error"]["code"], -32004, "{refused}");
    };
    round(); // every series is born before the first scrape
    let prom = Prometheus::start(envoy.ports.admin, "1s");
    prom.wait_for("count_over_time(ai_a2a_requests_total[1m])", Duration::from_secs(30), |x| !x.is_empty());
    prom.wait_for("sum(ai_a2a_task_duration_ms_count)", Duration::from_secs(30), |x| x.first().is_some_and(|x| x.value == 2.0));
    let started = Instant::now();
    round();
    prom.wait_for("sum(ai_a2a_task_duration_ms_count)", Duration::from_secs(30), |x| x.first().is_some_and(|x| x.value == 4.0));
    std::thread::sleep(Duration::from_secs(15).saturating_sub(started.elapsed()));
    let span = started.elapsed().as_secs_f64();

    let answers = prom.dashboard_answers("envoy/grafana/ai-gateway-a2a-dashboard.json");
    assert!(answers.len() >= 6, "{answers:?}");
    let value = |expr: &str, want: &[(&str, &str)]| -> f64 {
        let samples = answers.get(expr).unwrap_or_else(|| panic!("the dashboard no longer has {expr}"));
        samples.iter().filter(|x| want.iter().all(|(k, v)| x.labels[k] == *v)).map(|x| x.value).sum()
    };
    // rate × 300 s is the count in the window, stretched by up to 1.5 scrapes of extrapolation.
    let calls = "sum by (agent, method, binding, state) (rate(ai_a2a_requests_total[5m]))";
    let sends = value(calls, &[("method", "message_send"), ("binding", "jsonrpc"), ("state", "completed")]) * 300.0;
    assert!((1.0..=(span + 1.5) / span + 1e-9).contains(&sends), "sends shown as {sends}");
    let ended = "round(sum by (agent, state) (increase(ai_a2a_task_duration_ms_count[1h])))";
    assert_eq!(value(ended, &[("agent", "a2a-echo"), ("state", "completed")]), 2.0);
    let denials = "round(sum by (agent, consumer) (increase(ai_a2a_acl_denials_total[1h])))";
    assert_eq!(value(denials, &[("agent", "a2a-echo"), ("consumer", "dash-dev")]), 1.0);
    let p95 = "histogram_quantile(0.95, sum by (le, agent, method) (rate(ai_a2a_stream_first_event_ms_bucket[5m])))";
    assert!(answers[p95].iter().all(|x| x.value >= 0.0 && x.value < 60_000.0));
}
