//! The fake provider's native APIs: Anthropic Messages, Cohere v2, Gemini
//! (AI Studio and Vertex) and Bedrock Converse, each rejecting what the real
//! API rejects (missing auth, `max_tokens`, a `system` role in messages, a
//! bad SigV4 signature) in that provider's own error shape.

use crate::fake::{answer_text, json_reply, write_reply, write_streamed, Recorded};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::net::TcpStream;

pub const AWS_ACCESS_KEY_ID: &str = "AKIDFAKEEXAMPLE";
pub const AWS_SECRET_ACCESS_KEY: &str = "fake/secret+key/EXAMPLE";

/// What the conversation ends with, in any provider's format.
pub enum Turn {
    User(String),
    ToolResult(String),
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

fn block_text(blocks: &Value) -> String {
    match blocks {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().filter_map(|b| b["text"].as_str()).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

fn reply(turn: &Turn) -> String {
    match turn {
        Turn::User(t) => answer_text(t),
        Turn::ToolResult(t) => format!("Tool said: {t}"),
    }
}

fn named_sse(events: &[(&str, Value)]) -> Vec<u8> {
    let mut out = String::new();
    for (name, data) in events {
        out.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    }
    out.into_bytes()
}

pub fn anthropic(req: &Recorded, body: &Value, out: &mut TcpStream) -> std::io::Result<()> {
    let err = |status: u16, kind: &str, message: &str| json_reply(status, json!({"type": "error", "error": {"type": kind, "message": message}}));
    // Claude on Vertex AI (rawPredict): a Google token, the model in the
    // path, the version in the body.
    let vertex = req.path.contains("/publishers/anthropic/models/");
    if vertex {
        if !req.header("authorization").is_some_and(|a| a.starts_with("Bearer ")) {
            return write_reply(out, &err(401, "authentication_error", "Request had invalid authentication credentials."));
        }
        if body["anthropic_version"] != "vertex-2023-10-16" || body.get("model").is_some() {
            return write_reply(out, &err(400, "invalid_request_error", "anthropic_version: vertex-2023-10-16 required in the body; model is not allowed"));
        }
    } else {
        if req.header("x-api-key").is_none() {
            return write_reply(out, &err(401, "authentication_error", "x-api-key header is required"));
        }
        if req.header("anthropic-version").is_none() {
            return write_reply(out, &err(400, "invalid_request_error", "anthropic-version: header is required"));
        }
    }
    if body.get("max_tokens").is_none() {
        return write_reply(out, &err(400, "invalid_request_error", "max_tokens: Field required"));
    }
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    if let Some(bad) = messages.iter().find(|m| m["role"] != "user" && m["role"] != "assistant") {
        let msg = format!("messages: Unexpected role {}. The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role.", bad["role"]);
        return write_reply(out, &err(400, "invalid_request_error", &msg));
    }
    let last = messages.last().cloned().unwrap_or(Value::Null);
    let prompt: u64 = messages.iter().map(|m| words(&block_text(&m["content"]))).sum::<u64>() + body["system"].as_str().map(words).unwrap_or(0);
    let tool_result = last["content"].as_array().and_then(|b| b.iter().find(|b| b["type"] == "tool_result")).map(|b| block_text(&b["content"]));
    let turn = match tool_result {
        Some(t) => Turn::ToolResult(t),
        None => Turn::User(block_text(&last["content"])),
    };
    let images = last["content"].as_array().map(|b| b.iter().filter(|b| b["type"] == "image").count()).unwrap_or(0);
    let tool = body["tools"][0]["name"].as_str().filter(|_| matches!(turn, Turn::User(_)));
    let text = if images > 0 { format!("{} I see {images} image(s).", reply(&turn)) } else { reply(&turn) };
    // Claude stops at max_tokens (a token here is a word).
    let limit = body["max_tokens"].as_u64().unwrap_or(u64::MAX);
    let cut = words(&text) > limit;
    let text = if cut { text.split_inclusive(' ').take(limit as usize).collect::<String>() } else { text };
    let end = if cut { "max_tokens" } else { "end_turn" };
    let in_path = req.path.split("/models/").nth(1).and_then(|m| m.split(':').next()).unwrap_or_default();
    let model = body["model"].as_str().unwrap_or(in_path);
    let output = words(&text);
    if body["stream"] == true {
        let mut events = vec![
            ("message_start", json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "usage": {"input_tokens": prompt, "output_tokens": 1}}})),
            ("ping", json!({"type": "ping"})),
        ];
        let stop = if let Some(name) = tool {
            events.push(("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_fake1", "name": name, "input": {}}})));
            let args = json!({"q": reply(&turn)}).to_string();
            let (a, b) = args.split_at(args.len() / 2);
            for part in [a, b] {
                events.push(("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": part}})));
            }
            "tool_use"
        } else {
            events.push(("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
            for w in text.split_inclusive(' ') {
                events.push(("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})));
            }
            end
        };
        events.push(("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
        events.push(("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": output}})));
        if req.header("x-fake-truncate").is_none() {
            events.push(("message_stop", json!({"type": "message_stop"})));
        }
        return write_streamed(out, "text/event-stream; charset=utf-8", &named_sse(&events));
    }
    let (content, stop) = match tool {
        Some(name) => (json!([{"type": "tool_use", "id": "toolu_fake1", "name": name, "input": {"q": reply(&turn)}}]), "tool_use"),
        None => (json!([{"type": "text", "text": text}]), end),
    };
    write_reply(out, &json_reply(200, json!({"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": stop, "stop_sequence": null, "usage": {"input_tokens": prompt, "output_tokens": output, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}})))
}

pub fn cohere(req: &Recorded, path: &str, body: &Value, out: &mut TcpStream) -> std::io::Result<()> {
    if !req.header("authorization").is_some_and(|v| v.starts_with("Bearer ")) {
        return write_reply(out, &json_reply(401, json!({"message": "no api key supplied"})));
    }
    if path == "/v2/embed" {
        let texts = body["texts"].as_array().cloned().unwrap_or_default();
        if body["input_type"].is_null() {
            return write_reply(out, &json_reply(400, json!({"message": "invalid request: input_type is required for embed models v3 and higher."})));
        }
        let tokens: u64 = texts.iter().filter_map(Value::as_str).map(words).sum();
        let vectors: Vec<Value> = texts.iter().filter_map(Value::as_str).map(|t| json!([t.len() as f64, words(t) as f64, 0.25])).collect();
        return write_reply(out, &json_reply(200, json!({"id": "emb-fake", "embeddings": {"float": vectors}, "texts": texts, "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}}})));
    }
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.last().cloned().unwrap_or(Value::Null);
    let prompt: u64 = messages.iter().map(|m| words(&block_text(&m["content"]))).sum();
    let turn = if last["role"] == "tool" { Turn::ToolResult(block_text(&last["content"])) } else { Turn::User(block_text(&last["content"])) };
    let text = reply(&turn);
    let usage = json!({"billed_units": {"input_tokens": prompt, "output_tokens": words(&text)}, "tokens": {"input_tokens": prompt + 10, "output_tokens": words(&text)}});
    let tool = body["tools"][0]["function"]["name"].as_str().filter(|_| matches!(turn, Turn::User(_)));
    if body["stream"] == true {
        let mut events = vec![("message-start", json!({"id": "fake-cohere", "type": "message-start", "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}))];
        let finish = if let Some(name) = tool {
            events.push(("tool-plan-delta", json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will call the tool."}}})));
            events.push(("tool-call-start", json!({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {"id": "call_fake_cohere", "type": "function", "function": {"name": name, "arguments": ""}}}}})));
            let args = json!({"q": reply(&turn)}).to_string();
            let (a, b) = args.split_at(args.len() / 2);
            for part in [a, b] {
                events.push(("tool-call-delta", json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": part}}}}})));
            }
            events.push(("tool-call-end", json!({"type": "tool-call-end", "index": 0})));
            "TOOL_CALL"
        } else {
            events.push(("content-start", json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}})));
            for w in text.split_inclusive(' ') {
                events.push(("content-delta", json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": w}}}})));
            }
            events.push(("content-end", json!({"type": "content-end", "index": 0})));
            "COMPLETE"
        };
        events.push(("message-end", json!({"type": "message-end", "delta": {"finish_reason": finish, "usage": usage}})));
        return write_streamed(out, "text/event-stream", &named_sse(&events));
    }
    let (message, finish) = match tool {
        Some(name) => (json!({"role": "assistant", "tool_plan": "I will call the tool.", "tool_calls": [{"id": "call_fake_cohere", "type": "function", "function": {"name": name, "arguments": json!({"q": reply(&turn)}).to_string()}}]}), "TOOL_CALL"),
        None => (json!({"role": "assistant", "content": [{"type": "text", "text": text}]}), "COMPLETE"),
    };
    write_reply(out, &json_reply(200, json!({"id": "fake-cohere", "finish_reason": finish, "message": message, "usage": usage})))
}

pub fn gemini(req: &Recorded, path: &str, body: &Value, out: &mut TcpStream) -> std::io::Result<()> {
    let vertex = path.starts_with("/v1/projects/");
    let err = |status: u16, state: &str, message: &str| json_reply(status, json!({"error": {"code": status, "message": message, "status": state}}));
    let authed = if vertex { req.header("authorization").is_some_and(|v| v.starts_with("Bearer ")) } else { req.header("x-goog-api-key").is_some() };
    if !authed {
        return write_reply(out, &err(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API."));
    }
    let model = path.rsplit('/').next().unwrap_or_default().split(':').next().unwrap_or_default().to_string();
    if path.ends_with(":predict") {
        // Vertex AI's text-embedding predict: one prediction per instance.
        let Some(instances) = body["instances"].as_array().filter(|i| vertex && !i.is_empty()) else {
            return write_reply(out, &err(400, "INVALID_ARGUMENT", "Invalid JSON payload: `instances` is required."));
        };
        let predictions: Vec<Value> = instances
            .iter()
            .map(|i| {
                let t = i["content"].as_str().unwrap_or_default();
                json!({"embeddings": {"values": [t.len() as f64, words(t) as f64, 0.25], "statistics": {"token_count": words(t), "truncated": false}}})
            })
            .collect();
        return write_reply(out, &json_reply(200, json!({"predictions": predictions, "metadata": {"billableCharacterCount": 10}})));
    }
    if path.ends_with(":batchEmbedContents") {
        let requests = body["requests"].as_array().cloned().unwrap_or_default();
        let embeddings: Vec<Value> = requests.iter().map(|r| { let t = block_text(&r["content"]["parts"]); json!({"values": [t.len() as f64, words(&t) as f64, 0.125]}) }).collect();
        return write_reply(out, &json_reply(200, json!({"embeddings": embeddings})));
    }
    let contents = body["contents"].as_array().cloned().unwrap_or_default();
    if let Some(bad) = contents.iter().find(|c| c["role"] != "user" && c["role"] != "model") {
        return write_reply(out, &err(400, "INVALID_ARGUMENT", &format!("Please use a valid role: user, model. Got {}", bad["role"])));
    }
    let last = contents.last().cloned().unwrap_or(Value::Null);
    let prompt: u64 = contents.iter().map(|c| words(&block_text(&c["parts"]))).sum();
    let response_part = last["parts"].as_array().and_then(|p| p.iter().find_map(|p| p.get("functionResponse").cloned()));
    let turn = match response_part {
        Some(r) => Turn::ToolResult(r["response"].to_string()),
        None => Turn::User(block_text(&last["parts"])),
    };
    let text = reply(&turn);
    let tool = body["tools"][0]["functionDeclarations"][0]["name"].as_str().filter(|_| matches!(turn, Turn::User(_)));
    let usage = |c: u64| json!({"promptTokenCount": prompt, "candidatesTokenCount": c, "totalTokenCount": prompt + c + 2, "thoughtsTokenCount": 2});
    let candidate = |parts: Value, finish: Option<&str>| {
        let mut c = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        if let Some(f) = finish {
            c["finishReason"] = json!(f);
        }
        c
    };
    if path.contains(":streamGenerateContent") {
        if !path.contains("alt=sse") {
            return write_reply(out, &err(400, "INVALID_ARGUMENT", "this fake streams SSE only"));
        }
        let mut chunks = Vec::new();
        if let Some(name) = tool {
            chunks.push(json!({"candidates": [candidate(json!([{"functionCall": {"name": name, "args": {"q": reply(&turn)}}}]), Some("STOP"))], "usageMetadata": usage(5), "modelVersion": model}));
        } else {
            let pieces: Vec<&str> = text.split_inclusive(' ').collect();
            for (i, w) in pieces.iter().enumerate() {
                let last = i + 1 == pieces.len();
                let c = if last { words(&text) } else { (i + 1) as u64 };
                chunks.push(json!({"candidates": [candidate(json!([{"text": w}]), last.then_some("STOP"))], "usageMetadata": usage(c), "modelVersion": model}));
            }
        }
        let sse: String = chunks.iter().map(|c| format!("data: {c}\r\n\r\n")).collect();
        return write_streamed(out, "text/event-stream", sse.as_bytes());
    }
    let parts = match tool {
        Some(name) => json!([{"functionCall": {"name": name, "args": {"q": reply(&turn)}}}]),
        None => json!([{"text": text}]),
    };
    let c = if tool.is_some() { 5 } else { words(&text) };
    write_reply(out, &json_reply(200, json!({"candidates": [candidate(parts, Some("STOP"))], "usageMetadata": usage(c), "modelVersion": model, "responseId": "fake-gemini"})))
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a request's SigV4 signature as AWS would, from what arrived.
/// This is a second implementation, written from the specification, so
/// the gateway's signer is not checked against itself.
pub fn verify_sigv4(req: &Recorded) -> Result<(), String> {
    let auth = req.header("authorization").ok_or("missing Authorization")?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or("not AWS4-HMAC-SHA256")?;
    let field = |name: &str| rest.split(", ").find_map(|p| p.strip_prefix(name)).map(str::to_string);
    let credential = field("Credential=").ok_or("no Credential")?;
    let signed = field("SignedHeaders=").ok_or("no SignedHeaders")?;
    let signature = field("Signature=").ok_or("no Signature")?;
    let mut scope = credential.split('/');
    let (key_id, date, region, service) = (scope.next().unwrap_or(""), scope.next().unwrap_or(""), scope.next().unwrap_or(""), scope.next().unwrap_or(""));
    if key_id != AWS_ACCESS_KEY_ID {
        return Err(format!("unknown access key {key_id}"));
    }
    let body_hash = hex(&Sha256::digest(&req.body));
    if req.header("x-amz-content-sha256").is_some_and(|h| h != body_hash) {
        return Err("x-amz-content-sha256 does not match the body".into());
    }
    let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
    let mut canonical_uri = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            canonical_uri.push(b as char);
        } else {
            canonical_uri.push_str(&format!("%{b:02X}"));
        }
    }
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    params.sort();
    let headers: String = signed.split(';').map(|h| format!("{h}:{}\n", req.header(h).unwrap_or("").trim())).collect();
    let canonical = format!("{}\n{canonical_uri}\n{}\n{headers}\n{signed}\n{body_hash}", req.method, params.join("&"));
    let amz_date = req.header("x-amz-date").ok_or("no x-amz-date")?;
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}", hex(&Sha256::digest(canonical.as_bytes())));
    let mut key = hmac(format!("AWS4{AWS_SECRET_ACCESS_KEY}").as_bytes(), date);
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part);
    }
    let expected = hex(&hmac(&key, &to_sign));
    if expected != signature || !signed.contains("host") || service != "bedrock" {
        return Err(format!("signature mismatch for canonical request:\n{canonical}"));
    }
    Ok(())
}

fn eventstream(events: &[(&str, Value)]) -> Vec<u8> {
    events
        .iter()
        .flat_map(|(name, payload)| {
            codec::proxy::eventstream::encode(&[(":event-type", name), (":content-type", "application/json"), (":message-type", "event")], payload.to_string().as_bytes())
        })
        .collect()
}

pub fn bedrock(req: &Recorded, path: &str, body: &Value, out: &mut TcpStream) -> std::io::Result<()> {
    if let Err(why) = verify_sigv4(req) {
        eprintln!("fake bedrock: {why}");
        let reply = json_reply(403, json!({"message": "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."}));
        return write_reply(out, &reply);
    }
    let model = path.strip_prefix("/model/").and_then(|p| p.rsplit_once('/')).map(|(m, _)| m).unwrap_or_default();
    if path.ends_with("/invoke") {
        if model.contains("titan-embed") {
            let t = body["inputText"].as_str().unwrap_or_default();
            return write_reply(out, &json_reply(200, json!({"embedding": [t.len() as f64, words(t) as f64, 0.75], "inputTextTokenCount": words(t)})));
        }
        return write_reply(out, &json_reply(400, json!({"message": "Malformed input request"})));
    }
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.last().cloned().unwrap_or(Value::Null);
    let prompt: u64 = messages.iter().map(|m| words(&block_text(&m["content"]))).sum();
    let tool_result = last["content"].as_array().and_then(|b| b.iter().find_map(|b| b.get("toolResult").cloned()));
    let turn = match tool_result {
        Some(r) => Turn::ToolResult(block_text(&r["content"])),
        None => Turn::User(block_text(&last["content"])),
    };
    let text = reply(&turn);
    let tool = body["toolConfig"]["tools"][0]["toolSpec"]["name"].as_str().filter(|_| matches!(turn, Turn::User(_)));
    let usage = json!({"inputTokens": prompt, "outputTokens": words(&text), "totalTokens": prompt + words(&text)});
    if path.ends_with("/converse-stream") {
        let mut events = vec![("messageStart", json!({"role": "assistant", "p": "abcdef"}))];
        let stop = if let Some(name) = tool {
            events.push(("contentBlockStart", json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "tooluse_fake", "name": name}}})));
            let args = json!({"q": reply(&turn)}).to_string();
            let (a, b) = args.split_at(args.len() / 2);
            for part in [a, b] {
                events.push(("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": part}}})));
            }
            "tool_use"
        } else {
            for w in text.split_inclusive(' ') {
                events.push(("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": w}, "p": "abc"})));
            }
            "end_turn"
        };
        events.push(("contentBlockStop", json!({"contentBlockIndex": 0})));
        events.push(("messageStop", json!({"stopReason": stop})));
        events.push(("metadata", json!({"usage": usage, "metrics": {"latencyMs": 120}})));
        return write_streamed(out, "application/vnd.amazon.eventstream", &eventstream(&events));
    }
    let (content, stop) = match tool {
        Some(name) => (json!([{"toolUse": {"toolUseId": "tooluse_fake", "name": name, "input": {"q": reply(&turn)}}}]), "tool_use"),
        None => (json!([{"text": text}]), "end_turn"),
    };
    write_reply(out, &json_reply(200, json!({"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop, "usage": usage, "metrics": {"latencyMs": 321}})))
}

