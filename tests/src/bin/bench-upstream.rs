//! The benchmark's upstream: answers OpenAI chat (whole or as a 50-event
//! stream), Anthropic Messages, MCP (`tools/list` of 100 tools, and
//! `tools/call`, as JSON or, with a progress token, as an SSE stream) and
//! A2A (`SendMessage`, `SendStreamingMessage`, the agent card) from
//! precomputed bytes, so it costs far less per request than the gateway it
//! measures. `bench-upstream PORT`.

use ai_gateway_tests::fake::read_request;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

const CHAT: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"The quick brown fox jumps over the lazy dog."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":250,"completion_tokens":10,"total_tokens":260}}"#;
const ANTHROPIC: &str = r#"{"id":"msg_bench","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[{"type":"text","text":"The quick brown fox jumps over the lazy dog."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":250,"output_tokens":10}}"#;

fn stream_body() -> Vec<u8> {
    stream_of(50)
}

/// An OpenAI stream of `events` content events, then usage and `[DONE]`.
fn stream_of(events: usize) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..events {
        out.push_str(&format!("data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}],\"usage\":null}}\n\n"));
    }
    out.push_str("data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":250,\"completion_tokens\":50,\"total_tokens\":300}}\n\ndata: [DONE]\n\n");
    out.into_bytes()
}

fn anthropic_stream_body() -> Vec<u8> {
    let mut out = String::from("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-20250514\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":250,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
    for i in 0..50 {
        out.push_str(&format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"tok{i} \"}}}}\n\n"));
    }
    out.push_str("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":50}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    out.into_bytes()
}

/// MCP answers: a list of 100 tools, a call's result, and that result as
/// the Python SDK streams it (a progress notification first).
struct Mcp {
    list: Vec<u8>,
    call: Vec<u8>,
    call_events: Vec<u8>,
}

const MCP_RESULT: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"5"}],"structuredContent":{"result":5},"isError":false}}"#;

fn mcp() -> Mcp {
    let tools: Vec<String> = (0..100)
        .map(|i| {
            let name = if i == 0 { "delete_everything".to_string() } else { format!("tool_{i}") };
            format!(r#"{{"name":"{name}","description":"Tool number {i}.","inputSchema":{{"type":"object","properties":{{"a":{{"type":"integer"}},"b":{{"type":"integer"}}}},"required":["a","b"]}}}}"#)
        })
        .collect();
    let list = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{}]}}}}"#, tools.join(","));
    let events = format!("event: message\r\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progressToken\":1,\"progress\":1}}}}\r\n\r\nevent: message\r\ndata: {MCP_RESULT}\r\n\r\n");
    let call_events = format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{events}\r\n0\r\n\r\n", events.len()).into_bytes();
    Mcp { list: whole(&list), call: whole(MCP_RESULT), call_events }
}

fn mcp_answer<'a>(compact: &[u8], mcp: &'a Mcp) -> Option<&'a [u8]> {
    let has = |needle: &[u8]| compact.windows(needle.len()).any(|w| w == needle);
    if has(br#""method":"tools/list""#) {
        Some(&mcp.list)
    } else if has(br#""method":"tools/call""#) {
        Some(if has(b"progressToken") { &mcp.call_events } else { &mcp.call })
    } else {
        None
    }
}

/// A2A 1.0 answers: a completed task, the same as a stream of status
/// updates, and an agent card with both bindings' interfaces.
struct A2a {
    task: Vec<u8>,
    events: Vec<u8>,
    card: Vec<u8>,
}

fn a2a() -> A2a {
    let task = r#"{"jsonrpc":"2.0","id":1,"result":{"task":{"id":"t-bench","contextId":"c-bench","status":{"state":"TASK_STATE_COMPLETED"},"artifacts":[{"artifactId":"a","parts":[{"text":"The quick brown fox jumps over the lazy dog."}]}]}}}"#;
    let mut events = String::new();
    for state in ["SUBMITTED", "WORKING", "WORKING", "COMPLETED"] {
        events.push_str(&format!("data: {{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{{\"statusUpdate\":{{\"taskId\":\"t-bench\",\"contextId\":\"c-bench\",\"status\":{{\"state\":\"TASK_STATE_{state}\"}}}}}}}}\n\n"));
    }
    let events = format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{events}\r\n0\r\n\r\n", events.len()).into_bytes();
    let skills: Vec<String> = (0..10).map(|i| format!(r#"{{"id":"skill-{i}","name":"Skill {i}","description":"Does thing {i}.","tags":["bench"]}}"#)).collect();
    let card = format!(r#"{{"name":"bench-agent","description":"An agent.","supportedInterfaces":[{{"url":"http://127.0.0.1:18100","protocolBinding":"JSONRPC","protocolVersion":"1.0"}},{{"url":"http://127.0.0.1:18100","protocolBinding":"HTTP+JSON","protocolVersion":"1.0"}}],"version":"1.0.0","capabilities":{{"streaming":true}},"defaultInputModes":["text/plain"],"defaultOutputModes":["text/plain"],"skills":[{}]}}"#, skills.join(","));
    A2a { task: whole(task), events, card: whole(&card) }
}

fn a2a_answer<'a>(path: &str, compact: &[u8], a2a: &'a A2a) -> Option<&'a [u8]> {
    let has = |needle: &[u8]| compact.windows(needle.len()).any(|w| w == needle);
    if path.ends_with("/.well-known/agent-card.json") {
        Some(&a2a.card)
    } else if has(br#""method":"SendStreamingMessage""#) {
        Some(&a2a.events)
    } else if has(br#""method":"SendMessage""#) {
        Some(&a2a.task)
    } else {
        None
    }
}

fn whole(body: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

fn serve(stream: TcpStream, chat: &[u8], anthropic: &[u8], openai_events: &[u8], anthropic_events: &[u8], mcp: &Mcp, a2a: &A2a) {
    let _ = stream.set_nodelay(true);
    let Ok(mut out) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader) {
        let compact: Vec<u8> = req.body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
        let streamed = compact.windows(13).any(|w| w == br#""stream":true"#);
        // `x-bench-events: N` asks for a stream of N events (the streamed guard's cost per event).
        let custom = req.header("x-bench-events").and_then(|n| n.parse::<usize>().ok()).map(|n| stream_of(n.min(100_000)));
        let events = match &custom {
            Some(body) => body.as_slice(),
            None if req.path.starts_with("/v1/messages") => anthropic_events,
            None => openai_events,
        };
        let result = if let Some(answer) = mcp_answer(&compact, mcp).or_else(|| a2a_answer(&req.path, &compact, a2a)) {
            out.write_all(answer)
        } else if streamed {
            // Headers and the first event at once, the rest right after: a
            // stream's first byte is as fast as a whole answer's.
            let (first, rest) = events.split_at(events.windows(2).position(|w| w == b"\n\n").map_or(0, |i| i + 2));
            (|| -> std::io::Result<()> {
                out.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")?;
                for part in [first, rest] {
                    write!(out, "{:x}\r\n", part.len())?;
                    out.write_all(part)?;
                    out.write_all(b"\r\n")?;
                    out.flush()?;
                }
                out.write_all(b"0\r\n\r\n")
            })()
        } else if req.path.starts_with("/v1/messages") {
            out.write_all(anthropic)
        } else {
            out.write_all(chat)
        };
        if result.is_err() {
            return;
        }
    }
}

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(18100);
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| panic!("bind {port}: {e}"));
    let chat: &'static [u8] = whole(CHAT).leak();
    let anthropic: &'static [u8] = whole(ANTHROPIC).leak();
    let openai_events: &'static [u8] = stream_body().leak();
    let anthropic_events: &'static [u8] = anthropic_stream_body().leak();
    let mcp: &'static Mcp = Box::leak(Box::new(mcp()));
    let a2a: &'static A2a = Box::leak(Box::new(a2a()));
    for stream in listener.incoming().flatten() {
        thread::spawn(move || serve(stream, chat, anthropic, openai_events, anthropic_events, mcp, a2a));
    }
}
