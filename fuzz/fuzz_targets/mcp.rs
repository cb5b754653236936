//! ai-mcp-proxy: any request body and any answer, cut anywhere, never
//! panic; a tools/call that goes upstream names, as a JSON parser reads it
//! (the last of repeated keys), a tool the consumer may call; and no tools
//! list the client gets back holds a tool it may not call.
#![no_main]
use codec::acl::Subject;
use codec::mcp::config::McpConfig;
use codec::mcp::{McpExchange, ResponseMode, Verdict};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::rc::Rc;

const CONFIG: &str = r#"{"mode":"passthrough-listener","tools":[{"name":"secret","description":"d","acl":{"allow":["admin"]}}],"logging":{"log_statistics":true,"log_audits":true}}"#;
/// conversion-listener: the filter builds the REST request itself.
const REST: &str = r#"{"mode":"conversion-listener","tools":[{"name":"open","description":"d","method":"GET","path":"/o/{id}","parameters":[{"name":"id","in":"path"},{"name":"q","in":"query"},{"name":"h","in":"header"}]},
    {"name":"secret","description":"d","method":"POST","path":"/s","request_body":{"content":{"application/json":{}}},"acl":{"allow":["admin"]}}]}"#;

fn messages(text: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items,
        Ok(v) => vec![v],
        Err(_) => vec![],
    }
}

/// No message in `text` lists the denied tool as a tools/list result.
fn lists_no_secret(text: &str) -> bool {
    messages(text).iter().all(|m| !m["result"]["tools"].as_array().is_some_and(|tools| tools.iter().any(|t| t["name"] == "secret")))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let (body, answer) = rest.split_at(split);
    let answer = answer.get(1..).unwrap_or_default();
    let rest = selector & 4 == 4;
    let config = Rc::new(McpConfig::from_json(if rest { REST } else { CONFIG }.as_bytes()).expect("valid"));
    let mut x = McpExchange::new(config, Subject::new(Some("dev".into()), None), None);
    let get = selector & 1 == 1;
    let _ = x.request_headers(if get { "GET" } else { "POST" }, Some("application/json"), None, !get);
    if !get {
        match x.request_body(body, &|_| None, Some(1)) {
            Verdict::Reply { .. } => return,
            Verdict::Rest(call) => {
                // Only the allowed tool, and each value kept in its place.
                assert!(call.path.starts_with("/o/") && !call.path[3..].split('?').next().unwrap_or("").contains('/'), "{call:?}");
                assert!(call.headers.iter().all(|(_, v)| !v.contains('\n') && !v.contains('\r')), "{call:?}");
            }
            Verdict::Forward => {
                if let Ok(text) = std::str::from_utf8(body) {
                    for m in messages(text) {
                        if m["method"] == "tools/call" {
                            assert_ne!(m["params"]["name"], "secret", "a denied call went upstream: {text}");
                        }
                    }
                }
            }
        }
    }
    let sse = selector & 2 == 2;
    let mode = x.response_headers(200, Some(if sse { "text/event-stream" } else { "application/json" }), (selector & 64 == 64).then_some("gzip"));
    let cut = usize::from(selector >> 3) % (answer.len() + 1);
    let (a, b) = answer.split_at(cut);
    let out: Vec<u8> = match mode {
        ResponseMode::Buffer => x.response_body(answer, None).unwrap_or_else(|| answer.to_vec()),
        ResponseMode::Pass => answer.to_vec(),
        _ => {
            let mut out = x.response_chunk(a, false, &|| Some(2)).unwrap_or_else(|| a.to_vec());
            out.extend(x.response_chunk(b, true, &|| Some(3)).unwrap_or_else(|| b.to_vec()));
            out
        }
    };
    let _ = x.report("fuzz", &mut Default::default());
    // Where answers are read for lists (a body with tools/list, a GET
    // stream), every tools list is cut down, whatever its id.
    if mode == ResponseMode::Buffer || mode == ResponseMode::Filter {
        if let Ok(text) = std::str::from_utf8(&out) {
            if mode == ResponseMode::Buffer {
                assert!(lists_no_secret(text), "{text}");
            } else {
                let mut d = codec::sse::SseDecoder::new(1 << 24);
                let mut events = Vec::new();
                d.push(text.as_bytes(), &mut events);
                d.finish(&mut events);
                assert!(events.iter().all(|e| lists_no_secret(&e.data)), "{text}");
            }
        }
    }
});
