//! ai-a2a-proxy: any request and any answer, cut anywhere, never panic; a
//! call that goes on is never one the consumer's ACL denies (method, or a
//! skill its message names, as a JSON parser reads it); a rewritten card
//! keeps no interface URL at the agent's address.
#![no_main]
use codec::a2a::config::A2aConfig;
use codec::a2a::{A2aExchange, Head, ResponseMode, Step};
use codec::acl::Subject;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::rc::Rc;

const CONFIG: &str = r#"{"methods":[{"name":"tasks/cancel","acl":{"allow":["ops"]}}],"skills":[{"id":"secret","acl":{"deny":["dev"]}}],"logging":{"log_statistics":true,"log_payloads":true,"max_payload_size":64}}"#;
const PATHS: [&str; 8] = ["/", "/a/message:send", "/v1/message:stream", "/tasks/t1:cancel", "/tasks/t1", "/.well-known/agent-card.json", "/extendedAgentCard", "/tasks/t/pushNotificationConfigs"];

/// What a JSON parser reads as the call's method and skill.
fn denied(body: &[u8], rest_cancel: bool) -> bool {
    if rest_cancel {
        return true;
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return false };
    let params = if v.get("jsonrpc").is_some() { &v["params"] } else { &v };
    let method = v["method"].as_str().unwrap_or_default();
    let skill = |m: &Value| m["metadata"]["skillId"] == "secret";
    matches!(method, "tasks/cancel" | "CancelTask") || skill(params) || skill(&params["message"]) || skill(&params["request"])
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let (body, answer) = rest.split_at(split);
    let answer = answer.get(1..).unwrap_or_default();
    let config = Rc::new(A2aConfig::from_json(CONFIG.as_bytes()).expect("valid"));
    let mut x = A2aExchange::new(config, Subject::new(Some("dev".into()), None));
    let path = PATHS[usize::from(selector & 7)];
    let method = if path.contains("well-known") || path.ends_with("Card") || path.ends_with("/t1") { "GET" } else { "POST" };
    let head = Head { method, path, content_length: None, has_body: method == "POST", origin: "https://gw".into() };
    match x.request_headers(head, Some(1)) {
        Step::Reply(_) => return,
        Step::Forward => assert!(path != "/tasks/t1:cancel", "a denied REST cancel went on"),
        Step::ReadBody => {
            if x.request_body(body).is_some() {
                return;
            }
            assert!(!denied(body, false), "a denied call went on: {}", String::from_utf8_lossy(body));
        }
    }
    let sse = selector & 8 == 8;
    let mode = x.response_headers(200, Some(if sse { "text/event-stream" } else { "application/json" }), (selector & 64 == 64).then_some("gzip"));
    if mode == ResponseMode::Card {
        if let Ok(Some(card)) = x.card_body(answer) {
            let text = String::from_utf8_lossy(&card);
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                let card = if v.get("jsonrpc").is_some() { &v["result"] } else { &v };
                for list in ["supportedInterfaces", "additionalInterfaces"] {
                    for i in card[list].as_array().into_iter().flatten() {
                        if let Some(url) = i["url"].as_str().filter(|u| u.starts_with("http://") || u.starts_with("https://")) {
                            assert!(url.starts_with("https://gw"), "an interface URL kept its address: {text}");
                        }
                    }
                }
            }
        }
    } else {
        let cut = usize::from(selector >> 4) % (answer.len() + 1);
        let (a, b) = answer.split_at(cut);
        x.response_chunk(a, false, &|| Some(2));
        x.response_chunk(b, true, &|| Some(3));
    }
    let _ = x.report("fuzz", &mut Default::default(), &[]);
});
