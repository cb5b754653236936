#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;
use super::*;

fn config(json: &str) -> Rc<A2aConfig> {
    Rc::new(A2aConfig::from_json(json.as_bytes()).unwrap())
}

fn exchange(json: &str, consumer: Option<&str>) -> A2aExchange {
    A2aExchange::new(config(json), Subject::new(consumer.map(str::to_string), None))
}

fn head<'a>(method: &'a str, path: &'a str, has_body: bool) -> Head<'a> {
    Head { method, path, content_length: None, has_body, origin: "http://gw:10000".into() }
}

#[test]
fn rest_paths_of_both_versions_are_told_apart() {
    let r = |m: &str, p: &str| rest_route(m, p).map(|(m, id, _)| (m, id));
    let task = |s: &str| Some(s.to_string());
    assert_eq!(r("POST", "/agents/x/message:send"), Some((Method::Send, None)));
    assert_eq!(r("POST", "/v1/message:stream"), Some((Method::Stream, None)));
    assert_eq!(r("GET", "/message:send"), None, "the wrong HTTP method is not A2A");
    assert_eq!(r("GET", "/a/tasks/t-1"), Some((Method::GetTask, task("t-1"))));
    assert_eq!(r("GET", "/a/v1/tasks/t-1?historyLength=2"), Some((Method::GetTask, task("t-1"))));
    assert_eq!(r("POST", "/tasks/t-1:cancel"), Some((Method::CancelTask, task("t-1"))));
    assert_eq!(r("GET", "/tenant/tasks/t-1:subscribe"), Some((Method::Subscribe, task("t-1"))));
    assert_eq!(r("POST", "/tasks/t-1:subscribe"), Some((Method::Subscribe, task("t-1"))));
    assert_eq!(r("GET", "/tasks"), Some((Method::ListTasks, None)));
    assert_eq!(r("POST", "/tasks/t/pushNotificationConfigs"), Some((Method::PushSet, task("t"))));
    assert_eq!(r("GET", "/tasks/t/pushNotificationConfigs"), Some((Method::PushList, task("t"))));
    assert_eq!(r("GET", "/tasks/t/pushNotificationConfigs/c"), Some((Method::PushGet, task("t"))));
    assert_eq!(r("DELETE", "/tasks/t/pushNotificationConfigs/c"), Some((Method::PushDelete, task("t"))));
    assert_eq!(r("GET", "/x/.well-known/agent-card.json"), Some((Method::GetCard, None)));
    assert_eq!(r("GET", "/.well-known/agent.json"), Some((Method::GetCard, None)));
    assert_eq!(r("GET", "/extendedAgentCard"), Some((Method::GetExtendedCard, None)));
    assert_eq!(r("GET", "/v1/card"), Some((Method::GetExtendedCard, None)));
    // Ids that start with `tasks`, and a prefix holding a `tasks` segment.
    assert_eq!(r("DELETE", "/tasks/t1/pushNotificationConfigs/tasksX"), Some((Method::PushDelete, task("t1"))));
    assert_eq!(r("GET", "/tasks/t1/pushNotificationConfigs/tasks"), Some((Method::PushGet, task("t1"))));
    assert_eq!(r("GET", "/team/tasks/tasks/t9"), Some((Method::GetTask, task("t9"))));
    assert_eq!(decoded_path("/echo/tasks/t1%3Acancel?x=%2F").as_deref(), Some("/echo/tasks/t1:cancel"));
    assert_eq!((decoded_path("/a%2Fb"), decoded_path("/a%zz"), decoded_path("/a%ff")), (None, None, None));
    for (m, p) in [("GET", "/"), ("POST", "/"), ("GET", "/tasks/"), ("POST", "/tasks/:cancel"), ("GET", "/tasks/a/b"), ("PUT", "/tasks/t"), ("GET", "/health"), ("POST", "/tasks")] {
        assert_eq!(r(m, p), None, "{m} {p}");
    }
    assert_eq!(Method::from_rpc("SendStreamingMessage"), Method::Stream);
    assert_eq!(Method::from_rpc("agent/getAuthenticatedExtendedCard"), Method::GetExtendedCard);
    assert_eq!(Method::from_rpc("tools/call"), Method::Unknown);
}

#[test]
fn jsonrpc_calls_are_read_and_other_traffic_passes() {
    let mut x = exchange("", None);
    assert_eq!(x.request_headers(head("POST", "/", true), Some(0)), Step::ReadBody);
    let body = br#"{"jsonrpc":"2.0","id":"r1","method":"SendMessage","params":{"message":{"messageId":"m1","contextId":"c1","role":"ROLE_USER","parts":[{"text":"hi"}]}}}"#;
    assert_eq!(x.request_body(body), None);
    assert_eq!(x.response_headers(200, Some("application/json"), None), ResponseMode::Observe);
    let answer = br#"{"jsonrpc":"2.0","id":"r1","result":{"task":{"id":"t1","contextId":"c1","status":{"state":"TASK_STATE_COMPLETED"}}}}"#;
    x.response_chunk(&answer[..20], false, &|| Some(5));
    x.response_chunk(&answer[20..], true, &|| Some(5));
    assert_eq!(x.task_updates(), vec![TaskUpdate { id: "t1", state: State::Completed, fresh: true, driving: true }]);
    let r = x.report("echo", &mut Labels::default(), &[(State::Completed, 5)]);
    assert!(r.counters.contains(&("ai_a2a_requests_total.agent.echo.method.message/send.binding.jsonrpc.state.completed".replace("message/send", "message_send"), 1)), "{:?}", r.counters);
    assert_eq!(r.histograms, vec![("ai_a2a_task_duration_ms.agent.echo.state.completed".into(), 5)]);
    assert!(r.properties.is_empty(), "access-log keys only with log_statistics");

    // Not JSON-RPC: another route's traffic, passed and not counted.
    let mut x = exchange("", None);
    assert_eq!(x.request_headers(head("POST", "/upload", true), None), Step::ReadBody);
    assert_eq!(x.request_body(b"name=x"), None);
    assert!(!x.is_a2a());
    assert_eq!(x.response_headers(200, Some("text/plain"), None), ResponseMode::Pass);
    assert_eq!(x.report("echo", &mut Labels::default(), &[]), Report::default());
    let mut x = exchange("", None);
    assert_eq!(x.request_headers(head("GET", "/health", false), None), Step::Forward);
    assert!(!x.is_a2a());
}

#[test]
fn malformed_jsonrpc_gets_the_specs_error_codes() {
    let refuse = |body: &[u8]| {
        let mut x = exchange("", None);
        x.request_headers(head("POST", "/", true), None);
        let reply = x.request_body(body).unwrap();
        let v: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        (reply.status, v["error"]["code"].as_i64().unwrap())
    };
    assert_eq!(refuse(br#"{"jsonrpc":"2.0","id":1,"method":"SendMessage""#), (400, PARSE_ERROR));
    assert_eq!(refuse(br#"{"jsonrpc":"1.0","id":1,"method":"SendMessage"}"#), (400, INVALID_REQUEST));
    assert_eq!(refuse(br#"[{"jsonrpc":"2.0","id":1,"method":"SendMessage"}]"#), (400, INVALID_REQUEST));
    assert_eq!(refuse(br#"{"jsonrpc":"2.0","id":1,"method":"a","method":"SendMessage"}"#), (400, INVALID_REQUEST));
    assert_eq!(refuse(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#), (400, INVALID_REQUEST));
    // With ACLs, what cannot be read goes nowhere.
    let mut x = exchange(r#"{"methods":[{"name":"tasks/cancel","acl":{"allow":["ops"]}}]}"#, None);
    x.request_headers(head("POST", "/", true), None);
    assert_eq!(x.request_body(b"not json").unwrap().status, 400);
    let mut x = exchange(r#"{"methods":[{"name":"tasks/cancel","acl":{"allow":["ops"]}}]}"#, None);
    x.request_headers(head("POST", "/", true), None);
    let reply = x.request_body(br#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":1}}}"#).unwrap();
    assert!(reply.body.contains("-32602"), "{}", reply.body);
}

#[test]
fn acls_refuse_methods_and_skills_in_each_bindings_shape() {
    let acl = r#"{"consumer_header":"x-consumer","methods":[{"name":"tasks/cancel","acl":{"allow":["ops"]}}],"skills":[{"id":"admin","acl":{"deny":["bob"]}}]}"#;
    let mut x = exchange(acl, Some("bob"));
    x.request_headers(head("POST", "/", true), None);
    let reply = x.request_body(br#"{"jsonrpc":"2.0","id":7,"method":"CancelTask","params":{"id":"t1"}}"#).unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32004,"message":"Method 'tasks/cancel' is not available for consumer 'bob'"}}"#);
    let r = x.report("echo", &mut Labels::default(), &[]);
    assert!(r.counters.contains(&("ai_a2a_acl_denials_total.agent.echo.consumer.bob".into(), 1)), "{:?}", r.counters);
    assert!(r.counters[0].0.ends_with(".state.denied"));
    // REST: no body to read, refused at the headers.
    let mut x = exchange(acl, Some("bob"));
    let Step::Reply(reply) = x.request_headers(head("POST", "/tasks/t1:cancel", false), None) else { panic!("not refused") };
    assert_eq!(reply.status, 403);
    let v: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!((v["error"]["status"].as_str(), v["error"]["details"][0]["reason"].as_str()), (Some("PERMISSION_DENIED"), Some("UNSUPPORTED_OPERATION")));
    // A REST message that cannot be read is not judged by its method alone.
    let mut x = exchange(acl, Some("bob"));
    x.request_headers(head("POST", "/message:send", true), None);
    let reply = x.request_body(br#"{"message":{"messageId":"m","metadata":{"skillId":"echo"},"metadata":{"skillId":"admin"}}}"#).unwrap();
    assert_eq!(reply.status, 400);
    // An encoded path is read as the agent's router reads it.
    let mut x = exchange(acl, Some("bob"));
    assert!(matches!(x.request_headers(head("POST", "/echo/tasks/t1%3Acancel", false), None), Step::Reply(r) if r.status == 403));
    let mut x = exchange(acl, Some("bob"));
    assert!(matches!(x.request_headers(head("DELETE", "/tasks/t1%2FpushNotificationConfigs%2Fc", false), None), Step::Reply(r) if r.status == 400));
    // Every place a skill is named is checked; a name that is not a string is refused.
    for body in [
        r#"{"jsonrpc":"2.0","id":"a","method":"SendMessage","params":{"metadata":{"skillId":"echo"},"message":{"messageId":"m","metadata":{"skillId":"admin"}}}}"#,
        r#"{"jsonrpc":"2.0","id":"a","method":"SendMessage","params":{"message":{"messageId":"m","metadata":{"skillId":["admin"]}}}}"#,
    ] {
        let mut x = exchange(acl, Some("bob"));
        x.request_headers(head("POST", "/", true), None);
        assert!(x.request_body(body.as_bytes()).is_some(), "{body}");
    }
    // The operator may cancel.
    let mut x = exchange(acl, Some("ops"));
    assert_eq!(x.request_headers(head("POST", "/tasks/t1:cancel", false), None), Step::Forward);
    // A message naming a denied skill, either place, either binding.
    for (path, body) in [
        ("/", r#"{"jsonrpc":"2.0","id":"a","method":"message/send","params":{"message":{"kind":"message","messageId":"m","role":"user","parts":[],"metadata":{"skillId":"admin"}}}}"#),
        ("/", r#"{"jsonrpc":"2.0","id":"a","method":"SendMessage","params":{"message":{"messageId":"m"},"metadata":{"skillId":"admin"}}}"#),
        ("/message:send", r#"{"message":{"messageId":"m","metadata":{"skillId":"admin"}}}"#),
        ("/v1/message:send", r#"{"request":{"message_id":"m","role":"ROLE_USER","content":[],"metadata":{"skillId":"admin"}}}"#),
    ] {
        let mut x = exchange(acl, Some("bob"));
        assert_eq!(x.request_headers(head("POST", path, true), None), Step::ReadBody);
        let reply = x.request_body(body.as_bytes()).expect(path);
        assert!(reply.body.contains("Skill 'admin' is not available for consumer 'bob'"), "{}", reply.body);
        let mut x = exchange(acl, Some("alice"));
        x.request_headers(head("POST", path, true), None);
        assert_eq!(x.request_body(body.as_bytes()), None);
    }
}

#[test]
fn bodies_over_the_limit_pass_unread_unless_acls_must_read_them() {
    let mut x = exchange(r#"{"max_request_body_size":10}"#, None);
    let h = Head { content_length: Some(11), ..head("POST", "/", true) };
    assert_eq!(x.request_headers(h, None), Step::Forward);
    assert!(x.is_a2a());
    let mut x = exchange(r#"{"max_request_body_size":10,"default_acl":[{"scope":"methods","deny":["x"]}]}"#, None);
    let h = Head { content_length: Some(11), ..head("POST", "/", true) };
    let Step::Reply(reply) = x.request_headers(h, None) else { panic!() };
    assert_eq!(reply.status, 413);
    let mut x = exchange(r#"{"max_request_body_size":10,"default_acl":[{"scope":"methods","deny":["x"]}]}"#, None);
    x.request_headers(head("POST", "/message:send", true), None);
    assert_eq!(x.request_body(&[b' '; 11]).unwrap().status, 413);
}

#[test]
fn streams_are_read_event_by_event_whatever_the_split() {
    let stream = concat!(
        "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"task\":{\"id\":\"t1\",\"contextId\":\"c1\",\"status\":{\"state\":\"TASK_STATE_SUBMITTED\"}}}}\n\n",
        "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"statusUpdate\":{\"taskId\":\"t1\",\"contextId\":\"c1\",\"status\":{\"state\":\"TASK_STATE_WORKING\"}}}}\r\n\r\n",
        ": keep-alive\n\n",
        "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"artifactUpdate\":{\"taskId\":\"t1\",\"contextId\":\"c1\",\"artifact\":{\"parts\":[{\"text\":\"x\"}]}}}}\n\n",
        "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"statusUpdate\":{\"taskId\":\"t1\",\"contextId\":\"c1\",\"status\":{\"state\":\"TASK_STATE_COMPLETED\"}}}}\n\n",
    );
    for split in 1..stream.len() {
        let mut x = exchange(r#"{"logging":{"log_statistics":true}}"#, None);
        x.request_headers(head("POST", "/", true), Some(100));
        x.request_body(br#"{"jsonrpc":"2.0","id":1,"method":"SendStreamingMessage","params":{"message":{"messageId":"m"}}}"#);
        assert_eq!(x.response_headers(200, Some("text/event-stream; charset=utf-8"), None), ResponseMode::Stream);
        let (a, b) = stream.as_bytes().split_at(split);
        x.response_chunk(a, false, &|| Some(130));
        x.response_chunk(b, true, &|| Some(900));
        assert_eq!(x.task_updates().iter().map(|u| (u.id, u.state)).collect::<Vec<_>>(), vec![("t1", State::Completed)], "split at {split}");
        let r = x.report("echo", &mut Labels::default(), &[]);
        let prop = |k: &str| r.properties.iter().find(|(key, _)| *key == k).map(|(_, v)| v.as_str());
        assert_eq!((prop("ai.a2a.task_id"), prop("ai.a2a.context_id"), prop("ai.a2a.task_state"), prop("ai.a2a.sse_events_count")), (Some("t1"), Some("c1"), Some("completed"), Some("4")));
        assert_eq!(prop("ai.a2a.method"), Some("message/stream"));
        assert!(r.histograms[0].0.starts_with("ai_a2a_stream_first_event_ms"));
    }
}

#[test]
fn cards_are_rewritten_for_the_route_they_were_asked_on() {
    let card = br#"{"name":"e","supportedInterfaces":[{"url":"http://127.0.0.1:9001/","protocolBinding":"JSONRPC"}],"skills":[{"id":"echo"},{"id":"admin"}]}"#;
    let acl = r#"{"skills":[{"id":"admin","acl":{"allow":["admins"]}}]}"#;
    let mut x = exchange(acl, Some("bob"));
    assert_eq!(x.request_headers(head("GET", "/agents/echo/.well-known/agent-card.json", false), None), Step::Forward);
    assert_eq!(x.response_headers(200, Some("application/json"), None), ResponseMode::Card);
    let out = x.card_body(card).unwrap().unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), r#"{"name":"e","supportedInterfaces":[{"url":"http://gw:10000/agents/echo/","protocolBinding":"JSONRPC"}],"skills":[{"id":"echo"}]}"#);
    // A compressed card is never passed on unrewritten.
    let mut x = exchange("", None);
    x.request_headers(head("GET", "/.well-known/agent-card.json", false), None);
    x.response_headers(200, Some("application/json"), Some("gzip"));
    assert_eq!(x.card_body(card).unwrap_err().status, 502);
    // The JSON-RPC extended card: the result is rewritten in its envelope.
    let mut x = exchange("", None);
    x.request_headers(head("POST", "/agents/echo/", true), None);
    assert_eq!(x.request_body(br#"{"jsonrpc":"2.0","id":3,"method":"GetExtendedAgentCard"}"#), None);
    assert_eq!(x.response_headers(200, Some("application/json"), None), ResponseMode::Card);
    let answer = br#"{"jsonrpc":"2.0","id":3,"result":{"supportedInterfaces":[{"url":"http://127.0.0.1:9001/","protocolBinding":"JSONRPC"}]}}"#;
    let out = String::from_utf8(x.card_body(answer).unwrap().unwrap()).unwrap();
    assert_eq!(out, r#"{"jsonrpc":"2.0","id":3,"result":{"supportedInterfaces":[{"url":"http://gw:10000/agents/echo/","protocolBinding":"JSONRPC"}]}}"#);
    // Not found: passed as it is.
    let mut x = exchange("", None);
    x.request_headers(head("GET", "/.well-known/agent-card.json", false), None);
    assert_eq!(x.response_headers(404, Some("application/json"), None), ResponseMode::Observe);
}

#[test]
fn a_tasks_clock_runs_from_its_first_request_to_its_end_once() {
    let update = |state, fresh, driving| TaskUpdate { id: "t1", state, fresh, driving };
    // Created and ended by one send: no shared state at all.
    assert_eq!(task_clock(&update(State::Completed, true, true), None, 100, 130), Tick { write: None, ended_ms: Some(30) });
    // Created, still working: its start is kept.
    let t = task_clock(&update(State::Working, true, true), None, 1000, 1010);
    assert_eq!(t, Tick { write: Some("1000 0 t1".into()), ended_ms: None });
    let slot = t.write;
    // Polled later: still working, then completed.
    assert_eq!(task_clock(&update(State::Working, false, false), slot.as_deref(), 2000, 2001), Tick { write: None, ended_ms: None });
    let t = task_clock(&update(State::Completed, false, false), slot.as_deref(), 5000, 5003);
    assert_eq!(t, Tick { write: Some("1000 1 t1".into()), ended_ms: Some(4003) });
    // Polled again after its end: not counted twice.
    assert_eq!(task_clock(&update(State::Completed, false, false), t.write.as_deref(), 6000, 6001), Tick { write: None, ended_ms: None });
    // A poll of a task whose start was never seen counts nothing; a cancel of one counts.
    assert_eq!(task_clock(&update(State::Completed, false, false), Some("7 0 other"), 1, 2).ended_ms, None);
    assert_eq!(task_clock(&update(State::Canceled, false, true), None, 100, 150).ended_ms, Some(50));
    assert_eq!(task_clock(&update(State::Submitted, false, false), Some("garbage"), 1, 1).write, None, "a poll of a task whose start was not seen is not timed");
    assert_eq!(task_clock(&update(State::Working, false, true), None, 1, 1).write.as_deref(), Some("1 0 t1"), "a follow-up starts its clock");
    assert_eq!(task_slot("a", "t1"), task_slot("a", "t1"));
    assert!(task_slot("a", "t1").starts_with("ai-a2a-proxy.a.task."));
}
