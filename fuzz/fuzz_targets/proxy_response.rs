//! ai-proxy response translation for every dialect, whole and streamed
//! (cut at a fuzzed point): never panics, whatever the upstream sends.
#![no_main]
use libfuzzer_sys::fuzz_target;
#[path = "common.rs"]
mod common;

const TYPES: [&str; 5] = ["application/json", "text/event-stream", "application/x-ndjson", "application/vnd.amazon.eventstream", "text/html"];

fuzz_target!(|data: &[u8]| {
    let [selector, kind, status, cut, rest @ ..] = data else { return };
    let mut x = common::exchange(*selector);
    let stream = kind % 2 == 1;
    let request = match (common::is_messages(*selector), common::is_responses(*selector), stream) {
        (true, _, true) => &br#"{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"hi"}],"stream":true}"#[..],
        (true, _, false) => br#"{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}"#,
        (_, true, true) => br#"{"model":"m","input":"hi","tools":[{"type":"function","name":"f"}],"stream":true}"#,
        (_, true, false) => br#"{"model":"m","input":"hi","tools":[{"type":"function","name":"f"}]}"#,
        (false, false, true) => br#"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#,
        (false, false, false) => br#"{"messages":[{"role":"user","content":"hi"}]}"#,
    };
    let _ = x.request_body(request);
    let status = [200u16, 400, 429, 500, 529][usize::from(*status) % 5];
    x.response_headers(status, Some(TYPES[usize::from(*kind / 2) % TYPES.len()]));
    if x.is_stream() {
        let at = usize::from(*cut) % (rest.len() + 1);
        let (a, b) = rest.split_at(at);
        let _ = x.response_chunk(a, false);
        let _ = x.response_chunk(b, true);
    } else {
        let _ = x.response_body(rest);
    }
    let _ = (x.usage(), x.cost());
});
