//! A fake LLM provider on 127.0.0.1 that speaks each provider's wire format
//! (OpenAI, Azure OpenAI, Mistral, Ollama), records every request it gets,
//! and writes streams in small pieces that cut events apart.
//!
//! Which provider it plays is read from the request, as a real one would
//! see it: the path (`/api/chat` is Ollama, `/openai/deployments/` Azure)
//! and the Host header (`api.openai.com`, `api.mistral.ai`). Tests steer
//! failures with `x-fake-*` request headers, which Envoy forwards.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Clone)]
pub struct FakeProvider {
    pub port: u16,
    records: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeProvider {
    pub fn start() -> Self {
        Self::start_on(0)
    }

    pub fn start_on(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| panic!("fake provider bind {port}: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
        let records = Arc::new(Mutex::new(Vec::new()));
        let fake = FakeProvider { port, records: records.clone() };
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let records = records.clone();
                thread::spawn(move || serve_connection(stream, records));
            }
        });
        fake
    }

    /// Requests that carried `x-test-id: id`.
    pub fn requests(&self, test_id: &str) -> Vec<Recorded> {
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        records.iter().filter(|r| r.header("x-test-id") == Some(test_id)).cloned().collect()
    }

    /// Requests whose body contains `needle` (calls the gateway makes
    /// itself carry no test header, but they carry the client's payload).
    pub fn requests_containing(&self, needle: &str) -> Vec<Recorded> {
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        records.iter().filter(|r| String::from_utf8_lossy(&r.body).contains(needle)).cloned().collect()
    }

    pub fn total_requests(&self) -> usize {
        self.records.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

fn serve_connection(stream: TcpStream, records: Arc<Mutex<Vec<Recorded>>>) {
    let Ok(write_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    let mut out = write_half;
    loop {
        let Some(req) = read_request(&mut reader) else { return };
        records.lock().unwrap_or_else(|p| p.into_inner()).push(req.clone());
        if respond(&req, &mut out).is_err() {
            return;
        }
    }
}

/// Reads one HTTP/1.1 request (content-length or chunked body).
pub fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Recorded> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':')?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let get = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            line.clear();
            reader.read_line(&mut line).ok()?;
            let size = usize::from_str_radix(line.trim(), 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = get("content-length").and_then(|v| v.parse().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some(Recorded { method, path, headers, body })
}

pub struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

pub fn json_reply(status: u16, v: Value) -> Reply {
    Reply { status, content_type: "application/json", body: v.to_string().into_bytes() }
}

fn openai_error(status: u16, message: &str, kind: &str) -> Reply {
    json_reply(status, json!({"error": {"message": message, "type": kind, "param": null, "code": null}}))
}

#[derive(PartialEq, Clone, Copy)]
enum Flavor {
    OpenAi,
    Azure,
    Mistral,
    /// vLLM / llama.cpp style local server: accepts anything, no auth.
    Local,
    Ollama,
    Anthropic,
    Cohere,
    Gemini,
    Bedrock,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Flavor::OpenAi => "openai",
            Flavor::Azure => "azure",
            Flavor::Mistral => "mistral",
            Flavor::Local => "local",
            Flavor::Ollama => "ollama",
            Flavor::Anthropic => "anthropic",
            Flavor::Cohere => "cohere",
            Flavor::Gemini => "gemini",
            Flavor::Bedrock => "bedrock",
        }
    }
}

fn flavor(req: &Recorded) -> Flavor {
    let host = req.header("host").unwrap_or_default();
    let path = req.path.split('?').next().unwrap_or_default();
    if req.path.starts_with("/api/") {
        Flavor::Ollama
    } else if path == "/v1/messages" || path.contains("/publishers/anthropic/models/") {
        Flavor::Anthropic
    } else if path.starts_with("/v2/") {
        Flavor::Cohere
    } else if path.contains(":generateContent") || path.contains(":streamGenerateContent") || path.contains(":batchEmbedContents") || path.contains(":predict") {
        Flavor::Gemini
    } else if path.starts_with("/model/") {
        Flavor::Bedrock
    } else if req.path.starts_with("/openai/deployments/") {
        Flavor::Azure
    } else if host.starts_with("api.openai.com") {
        Flavor::OpenAi
    } else if host.starts_with("api.mistral.ai") {
        Flavor::Mistral
    } else {
        Flavor::Local
    }
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

/// Deterministic "model": echoes the last user message; token counts are
/// word counts, so tests know exactly what usage to expect.
fn answer_chat(body: &Value) -> (String, u64, Option<Value>) {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let prompt_tokens: u64 = messages.iter().map(|m| words(&text_of(&m["content"]))).sum();
    let last = messages.last().cloned().unwrap_or(Value::Null);
    let tools = body["tools"].as_array().cloned().unwrap_or_default();
    if last["role"] == "tool" {
        return (format!("Tool said: {}", text_of(&last["content"])), prompt_tokens, None);
    }
    if let Some(tool) = tools.first() {
        let name = tool["function"]["name"].as_str().unwrap_or("tool").to_string();
        let call = json!({"name": name, "arguments": {"q": text_of(&last["content"])}});
        return (String::new(), prompt_tokens, Some(call));
    }
    (answer_text(&text_of(&last["content"])), prompt_tokens, None)
}

/// The fake model's answer to a user message.
pub fn answer_text(user: &str) -> String {
    format!("You said: {user}")
}

fn respond(req: &Recorded, out: &mut TcpStream) -> std::io::Result<()> {
    if req.header("x-fake-reset-mid-body").is_some() {
        // Promise a body, send half of it, and drop the connection.
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"cut"}}]}"#;
        write!(out, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len())?;
        out.write_all(&body[..body.len() / 2])?;
        out.flush()?;
        let _ = out.shutdown(std::net::Shutdown::Both);
        return Err(std::io::Error::other("reset on request"));
    }
    if req.header("x-fake-reset-mid-stream").is_some() {
        write!(out, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")?;
        let event = b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"par\"},\"finish_reason\":null}]}\n\nda";
        write!(out, "{:x}\r\n", event.len())?;
        out.write_all(event)?;
        out.write_all(b"\r\n")?;
        out.flush()?;
        thread::sleep(Duration::from_millis(20));
        let _ = out.shutdown(std::net::Shutdown::Both);
        return Err(std::io::Error::other("reset on request"));
    }
    if req.header("x-fake-close").is_some() {
        // Drop the connection without answering (Envoy answers 503 itself).
        let _ = out.shutdown(std::net::Shutdown::Both);
        return Err(std::io::Error::other("closed on request"));
    }
    if req.path.starts_with("/legacy/") {
        return legacy_api(req, out);
    }
    let flavor = flavor(req);
    let steer = Steering::of(req, flavor);
    if let Some(ms) = steer.delay_ms {
        thread::sleep(Duration::from_millis(ms));
    }
    if let Some(reply) = forced_reply(req, flavor, steer.status) {
        return write_reply(out, &reply);
    }
    if let Some(reply) = auth_failure(req, flavor) {
        return write_reply(out, &reply);
    }
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            let reply = if flavor == Flavor::Ollama {
                json_reply(400, json!({"error": format!("invalid character in request body: {e}")}))
            } else {
                openai_error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
            };
            return write_reply(out, &reply);
        }
    };
    let path = req.path.split('?').next().unwrap_or_default().to_string();
    match flavor {
        Flavor::Ollama => ollama(req, &path, &body, out),
        Flavor::Anthropic => crate::fake_native::anthropic(req, &body, out),
        Flavor::Cohere => crate::fake_native::cohere(req, &path, &body, out),
        Flavor::Gemini => crate::fake_native::gemini(req, &req.path, &body, out),
        Flavor::Bedrock => crate::fake_native::bedrock(req, &path, &body, out),
        _ => openai_like(req, flavor, &path, &body, out),
    }
}

/// Failures a test asks for: `x-fake-status` and `x-fake-delay-ms` request
/// headers (`x-fake-status-anthropic`: only when playing that provider, for
/// requests that fall over from one provider to another), or, for calls the gateway makes itself (which carry no client
/// header: the transformers' LLM calls), the configured model name
/// `fake-status-503` or `fake-delay-ms-2000`.
struct Steering {
    status: Option<u16>,
    delay_ms: Option<u64>,
}

impl Steering {
    fn of(req: &Recorded, flavor: Flavor) -> Steering {
        let own = |name: &str| req.header(&format!("{name}-{}", flavor.name())).or_else(|| req.header(name));
        let model = serde_json::from_slice::<Value>(&req.body).ok().and_then(|b| b["model"].as_str().map(str::to_string)).unwrap_or_default();
        Steering {
            status: own("x-fake-status").and_then(|v| v.parse().ok()).or_else(|| model.strip_prefix("fake-status-")?.parse().ok()),
            delay_ms: own("x-fake-delay-ms").and_then(|v| v.parse().ok()).or_else(|| model.strip_prefix("fake-delay-ms-")?.parse().ok()),
        }
    }
}

/// A plain JSON API (not an LLM) behind the gateway, for the transformers:
/// it answers `x-fake-api-reply` (or a fixed order list), or two SSE
/// events with `x-fake-api-content-type: text/event-stream`.
fn legacy_api(req: &Recorded, out: &mut TcpStream) -> std::io::Result<()> {
    if req.header("x-fake-api-content-type").is_some_and(|ct| ct.starts_with("text/event-stream")) {
        return write_streamed(out, "text/event-stream", b"data: {\"n\":1}\n\ndata: {\"n\":2}\n\n");
    }
    let body = match req.header("x-fake-api-reply") {
        Some(reply) => reply.as_bytes().to_vec(),
        None => br#"{"orders":[{"id":7,"item":"book","status":"shipped"}]}"#.to_vec(),
    };
    write_reply(out, &Reply { status: 200, content_type: "application/json", body })
}

fn forced_reply(req: &Recorded, flavor: Flavor, status: Option<u16>) -> Option<Reply> {
    if req.header("x-fake-broken-json").is_some() {
        return Some(Reply { status: 200, content_type: "application/json", body: br#"{"id":"chatcmpl-1","choices":[{"#.to_vec() });
    }
    // The transformers' LLM calls carry no client header: they are steered
    // by the configured model name.
    let html_model = serde_json::from_slice::<Value>(&req.body).ok().is_some_and(|b| b["model"] == "fake-content-type-html");
    if let Some(ct) = req.header("x-fake-content-type").or(html_model.then_some("text/html")) {
        let ct: &'static str = if ct.contains("html") { "text/html" } else { "text/plain" };
        return Some(Reply { status: 200, content_type: ct, body: b"<html><body>captive portal</body></html>".to_vec() });
    }
    let status = status?;
    Some(match (req.header("x-fake-error-body"), flavor) {
        (Some("html"), _) => Reply { status, content_type: "text/html", body: b"<html><body><h1>502 Bad Gateway</h1></body></html>".to_vec() },
        (Some("text"), _) => Reply { status, content_type: "text/plain", body: b"upstream overloaded".to_vec() },
        (_, Flavor::Ollama) => json_reply(status, json!({"error": "model \"nope\" not found, try pulling it first"})),
        (_, Flavor::Mistral) => json_reply(status, json!({"object": "error", "message": "Rate limit exceeded", "type": "rate_limited", "param": null, "code": null})),
        (_, Flavor::Azure) => json_reply(status, json!({"error": {"code": status.to_string(), "message": "Requests to the ChatCompletions_Create Operation have exceeded call rate limit."}})),
        (_, Flavor::Local) => json_reply(status, json!({"detail": "Internal server error in the model runner"})),
        (_, Flavor::OpenAi) => openai_error(status, "Rate limit reached for gpt-4o-mini in organization org-x on tokens per min (TPM).", "tokens"),
        (_, Flavor::Anthropic) => json_reply(status, json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
        (_, Flavor::Cohere) => json_reply(status, json!({"message": "You are using a Trial key, which is limited to 10 API calls / minute."})),
        (_, Flavor::Gemini) => json_reply(status, json!({"error": {"code": status, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}})),
        (_, Flavor::Bedrock) => json_reply(status, json!({"message": "Too many requests, please wait before trying again."})),
    })
}

fn auth_failure(req: &Recorded, flavor: Flavor) -> Option<Reply> {
    match flavor {
        Flavor::OpenAi | Flavor::Mistral if !req.header("authorization").is_some_and(|v| v.starts_with("Bearer ")) => Some(openai_error(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth.",
            "invalid_request_error",
        )),
        Flavor::Azure if req.header("api-key").is_none() => Some(json_reply(
            401,
            json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint."}}),
        )),
        Flavor::Azure if !req.path.contains("api-version=") => {
            Some(json_reply(404, json!({"error": {"code": "404", "message": "Resource not found"}})))
        }
        _ => None,
    }
}

/// Mistral's chat API validates its body strictly: a field it does not
/// know is a 422 `extra_forbidden` (as for `stream_options` or
/// `max_completion_tokens`, which OpenAI clients send).
fn mistral_extra_forbidden(body: &Value) -> Option<Reply> {
    const KNOWN: [&str; 18] = [
        "model", "messages", "temperature", "top_p", "max_tokens", "stream", "stop", "random_seed", "response_format", "tools",
        "tool_choice", "presence_penalty", "frequency_penalty", "n", "prediction", "parallel_tool_calls", "prompt_mode", "safe_prompt",
    ];
    let (field, value) = body.as_object()?.iter().find(|(k, _)| !KNOWN.contains(&k.as_str()))?;
    Some(json_reply(422, json!({"object": "error", "message": {"detail": [{"type": "extra_forbidden", "loc": ["body", field],
        "msg": "Extra inputs are not permitted", "input": value}]}, "type": "invalid_request_message_error", "param": null, "code": null})))
}

fn openai_like(req: &Recorded, flavor: Flavor, path: &str, body: &Value, out: &mut TcpStream) -> std::io::Result<()> {
    // Checks real OpenAI makes, so the gateway cannot send what it would refuse.
    if flavor == Flavor::OpenAi {
        if body.get("top_k").is_some() {
            return write_reply(out, &openai_error(400, "Unrecognized request argument supplied: top_k", "invalid_request_error"));
        }
        if body.get("stream_options").is_some() && body["stream"] != true {
            return write_reply(out, &openai_error(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "invalid_request_error"));
        }
    }
    if flavor == Flavor::Mistral && path.ends_with("/chat/completions") {
        if let Some(reply) = mistral_extra_forbidden(body) {
            return write_reply(out, &reply);
        }
    }
    let model = body["model"].as_str().unwrap_or("local-model").to_string();
    let stream = body["stream"] == true;
    // vLLM and llama.cpp's server answer the Responses API as OpenAI does.
    if path.ends_with("/v1/responses") && matches!(flavor, Flavor::OpenAi | Flavor::Local) {
        return responses_api(out, &model, body, stream);
    }
    if path.ends_with("/chat/completions") {
        let (text, prompt_tokens, tool_call) = answer_chat(body);
        let text = req.header("x-fake-reply").map(str::to_string).unwrap_or(text);
        // An answer far larger than usual (x-fake-big: kilobytes).
        let text = match req.header("x-fake-big").and_then(|k| k.parse::<usize>().ok()) {
            Some(kb) => "lorem ipsum ".repeat(kb * 1024 / 12),
            None => text,
        };
        // A model stops at max_tokens (a token here is a word).
        let limit = body["max_tokens"].as_u64().or_else(|| body["max_completion_tokens"].as_u64());
        let cut = limit.filter(|n| tool_call.is_none() && words(&text) > *n);
        let text = match cut {
            Some(n) => text.split_inclusive(' ').take(n as usize).collect::<String>().trim_end().to_string(),
            None => text,
        };
        let text_finish = if cut.is_some() { "length" } else { "stop" };
        if stream {
            let include_usage = flavor == Flavor::Mistral || body["stream_options"]["include_usage"] == true;
            return stream_openai_chat(req, out, flavor, &model, &text, prompt_tokens, tool_call, include_usage, text_finish);
        }
        let completion_tokens = words(&text);
        let (message, finish) = match tool_call {
            Some(call) => (
                json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_abc123", "type": "function", "function": {"name": call["name"], "arguments": call["arguments"].to_string()}}]}),
                "tool_calls",
            ),
            None => (json!({"role": "assistant", "content": text, "refusal": null}), text_finish),
        };
        return write_reply(out, &json_reply(200, json!({
            "id": "chatcmpl-fake123", "object": "chat.completion", "created": 1_700_000_000, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens,
                      "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}},
            "system_fingerprint": "fp_fake"
        })));
    }
    if path.ends_with("/completions") {
        let prompt = match &body["prompt"] {
            Value::String(s) => s.clone(),
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "),
            _ => String::new(),
        };
        let text = format!("You said: {prompt}");
        let (p, c) = (words(&prompt), words(&text));
        if stream {
            let include_usage = body["stream_options"]["include_usage"] == true;
            let mut events: Vec<String> = text
                .split_inclusive(' ')
                .map(|w| json!({"id": "cmpl-fake", "object": "text_completion", "created": 1_700_000_000, "model": model, "choices": [{"text": w, "index": 0, "logprobs": null, "finish_reason": null}]}).to_string())
                .collect();
            events.push(json!({"id": "cmpl-fake", "object": "text_completion", "created": 1_700_000_000, "model": model, "choices": [{"text": "", "index": 0, "logprobs": null, "finish_reason": "stop"}]}).to_string());
            if include_usage {
                events.push(json!({"id": "cmpl-fake", "object": "text_completion", "created": 1_700_000_000, "model": model, "choices": [], "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}).to_string());
            }
            return write_sse(req, out, &events);
        }
        return write_reply(out, &json_reply(200, json!({
            "id": "cmpl-fake", "object": "text_completion", "created": 1_700_000_000, "model": model,
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
        })));
    }
    if path.ends_with("/embeddings") {
        let inputs: Vec<String> = match &body["input"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a.iter().map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).collect(),
            _ => vec![],
        };
        let tokens: u64 = inputs.iter().map(|s| words(s)).sum();
        let data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, s)| json!({"object": "embedding", "index": i, "embedding": [s.len() as f64, words(s) as f64, 0.5]}))
            .collect();
        return write_reply(out, &json_reply(200, json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})));
    }
    write_reply(out, &openai_error(404, &format!("Invalid URL ({} {})", req.method, req.path), "invalid_request_error"))
}

#[allow(clippy::too_many_arguments)]
fn stream_openai_chat(
    req: &Recorded,
    out: &mut TcpStream,
    flavor: Flavor,
    model: &str,
    text: &str,
    prompt_tokens: u64,
    tool_call: Option<Value>,
    include_usage: bool,
    text_finish: &str,
) -> std::io::Result<()> {
    let completion_tokens = words(text);
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens});
    // With include_usage OpenAI adds `"usage": null` to every other chunk.
    let null_usage = flavor != Flavor::Mistral && include_usage;
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({"id": "chatcmpl-fake123", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "system_fingerprint": "fp_fake", "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        if null_usage {
            c["usage"] = Value::Null;
        }
        c
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null).to_string()];
    let finish = if let Some(call) = &tool_call {
        let args = call["arguments"].to_string();
        // Mistral leaves `type` out of streamed tool calls.
        let mut first = json!({"index": 0, "id": "call_abc123", "type": "function", "function": {"name": call["name"], "arguments": ""}});
        if flavor == Flavor::Mistral {
            first.as_object_mut().map(|o| o.remove("type"));
        }
        events.push(chunk(json!({"tool_calls": [first]}), Value::Null).to_string());
        let (a, b) = args.split_at(args.len() / 2);
        for part in [a, b] {
            events.push(chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}), Value::Null).to_string());
        }
        "tool_calls"
    } else {
        for word in text.split_inclusive(' ') {
            events.push(chunk(json!({"content": word}), Value::Null).to_string());
        }
        text_finish
    };
    let mut last = chunk(json!({}), json!(finish));
    if flavor == Flavor::Mistral {
        last["usage"] = usage.clone(); // Mistral reports usage on the final chunk
    }
    events.push(last.to_string());
    if include_usage && flavor != Flavor::Mistral {
        let mut u = chunk(json!({}), Value::Null);
        u["choices"] = json!([]);
        u["usage"] = usage;
        events.push(u.to_string());
    }
    write_sse(req, out, &events)
}

fn write_sse(req: &Recorded, out: &mut TcpStream, events: &[String]) -> std::io::Result<()> {
    let truncate = req.header("x-fake-truncate").is_some();
    let mut text = String::new();
    for (i, e) in events.iter().enumerate() {
        if truncate && i + 1 == events.len() {
            break; // drop the usage/final chunk and [DONE]
        }
        text.push_str(&format!("data: {e}\n\n"));
    }
    if !truncate {
        text.push_str("data: [DONE]\n\n");
    }
    // `x-fake-pause-before-end-ms`: the content goes out, then the stream
    // stalls before its last chunk (finish, usage) for a client to leave.
    if let Some(ms) = req.header("x-fake-pause-before-end-ms").and_then(|v| v.parse::<u64>().ok()) {
        let held = if include_final(events) { 2 } else { 1 };
        let head: String = events.iter().take(events.len().saturating_sub(held)).map(|e| format!("data: {e}\n\n")).collect();
        let (head, tail) = text.as_bytes().split_at(head.len().min(text.len()));
        return write_streamed_paused(out, "text/event-stream", head, tail, Duration::from_millis(ms));
    }
    write_streamed(out, "text/event-stream", text.as_bytes())
}

/// Whether the last two events are the finish chunk and a usage chunk (both
/// held back by a pause, so no usage reaches the gateway before it).
fn include_final(events: &[String]) -> bool {
    events.last().is_some_and(|e| e.contains("\"choices\":[]"))
}

/// `write_streamed`, with a pause between `head` and `tail`.
fn write_streamed_paused(out: &mut TcpStream, content_type: &str, head: &[u8], tail: &[u8], pause: Duration) -> std::io::Result<()> {
    write!(out, "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n")?;
    for (part, wait) in [(head, pause), (tail, Duration::ZERO)] {
        for piece in part.chunks(37) {
            write!(out, "{:x}\r\n", piece.len())?;
            out.write_all(piece)?;
            out.write_all(b"\r\n")?;
            out.flush()?;
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(wait);
    }
    out.write_all(b"0\r\n\r\n")?;
    out.flush()
}

/// Writes a streamed body in 37-byte pieces (events and lines are cut
/// anywhere), flushing each with a short pause so they arrive apart.
pub fn write_streamed(out: &mut TcpStream, content_type: &str, body: &[u8]) -> std::io::Result<()> {
    write_streamed_paused(out, content_type, body, &[], Duration::ZERO)
}

pub fn write_reply(out: &mut TcpStream, reply: &Reply) -> std::io::Result<()> {
    let reason = match reply.status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => "Status",
    };
    write!(out, "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\n\r\n", reply.status, reply.content_type, reply.body.len())?;
    out.write_all(&reply.body)?;
    out.flush()
}

fn ollama(req: &Recorded, path: &str, body: &Value, out: &mut TcpStream) -> std::io::Result<()> {
    let model = body["model"].as_str().unwrap_or_default().to_string();
    if model.is_empty() {
        return write_reply(out, &json_reply(400, json!({"error": "model is required"})));
    }
    // Ollama streams unless `stream` is false.
    let stream = body["stream"] != false;
    let created_at = "2024-07-22T20:33:28.123648Z";
    match path {
        "/api/chat" | "/api/generate" => {
            let (text, prompt_tokens, tool_call) = if path == "/api/chat" {
                answer_chat(body)
            } else {
                let p = body["prompt"].as_str().unwrap_or_default();
                (format!("You said: {p}"), words(p), None)
            };
            let eval_count = words(&text);
            let key = if path == "/api/chat" { "message" } else { "response" };
            let piece = |t: &str| if key == "message" { json!({"role": "assistant", "content": t}) } else { json!(t) };
            let mut last = json!({"model": model, "created_at": created_at, "done": true, "done_reason": "stop",
                "total_duration": 4_883_583_458u64, "load_duration": 1_334_875, "prompt_eval_count": prompt_tokens,
                "prompt_eval_duration": 342_546_000, "eval_count": eval_count, "eval_duration": 4_535_599_000u64});
            last[key] = piece("");
            if let Some(call) = &tool_call {
                last[key]["tool_calls"] = json!([{"function": call}]);
            }
            if !stream {
                last[key] = piece(&text);
                if let Some(call) = &tool_call {
                    last[key]["tool_calls"] = json!([{"function": call}]);
                }
                return write_reply(out, &json_reply(200, last));
            }
            let mut lines = String::new();
            for word in text.split_inclusive(' ') {
                let mut l = json!({"model": model, "created_at": created_at, "done": false});
                l[key] = piece(word);
                lines.push_str(&format!("{l}\n"));
            }
            if req.header("x-fake-truncate").is_none() {
                lines.push_str(&format!("{last}\n"));
            }
            write_streamed(out, "application/x-ndjson", lines.as_bytes())
        }
        "/api/embed" => {
            let inputs: Vec<String> = match &body["input"] {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
                _ => vec![],
            };
            let tokens: u64 = inputs.iter().map(|s| words(s)).sum();
            let vectors: Vec<Value> = inputs.iter().map(|s| json!([s.len() as f64, words(s) as f64, 0.5])).collect();
            write_reply(out, &json_reply(200, json!({"model": model, "embeddings": vectors, "total_duration": 14_143_917, "load_duration": 1_019_500, "prompt_eval_count": tokens})))
        }
        _ => write_reply(out, &Reply { status: 404, content_type: "text/plain", body: b"404 page not found".to_vec() }),
    }
}

/// OpenAI's Responses API (`POST /v1/responses`), as documented: `input` is
/// a string or a list of items (`instructions` optional); the answer is a
/// `response` object, or named SSE events with increasing `sequence_number`
/// ending in `response.completed` (no `[DONE]`).
fn responses_api(out: &mut TcpStream, model: &str, body: &Value, stream: bool) -> std::io::Result<()> {
    let text_of = |v: &Value| -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Array(items) => items
                .iter()
                .filter_map(|item| match &item["content"] {
                    Value::String(s) => Some(s.clone()),
                    Value::Array(parts) => Some(parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(" ")),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        }
    };
    let Some(input) = body.get("input") else {
        return write_reply(out, &openai_error(400, "Missing required parameter: 'input'.", "invalid_request_error"));
    };
    let user = text_of(input);
    let text = format!("You said: {user}");
    let (input_tokens, output_tokens) = (words(&user) + words(body["instructions"].as_str().unwrap_or_default()), words(&text));
    let usage = json!({"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": input_tokens + output_tokens});
    let message = json!({"id": "msg_fake1", "type": "message", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}]});
    let response = |status: &str, output: Value, usage: Value| json!({"id": "resp_fake1", "object": "response", "created_at": 1_700_000_000,
        "status": status, "model": model, "output": output, "usage": usage, "error": null, "incomplete_details": null,
        "instructions": body["instructions"], "tools": body.get("tools").cloned().unwrap_or(json!([]))});
    if !stream {
        return write_reply(out, &json_reply(200, response("completed", json!([message]), usage)));
    }
    let mut events: Vec<(&str, Value)> = vec![
        ("response.created", json!({"response": response("in_progress", json!([]), Value::Null)})),
        ("response.in_progress", json!({"response": response("in_progress", json!([]), Value::Null)})),
        ("response.output_item.added", json!({"output_index": 0, "item": {"id": "msg_fake1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}})),
        ("response.content_part.added", json!({"item_id": "msg_fake1", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}})),
    ];
    for word in text.split_inclusive(' ') {
        events.push(("response.output_text.delta", json!({"item_id": "msg_fake1", "output_index": 0, "content_index": 0, "delta": word})));
    }
    events.push(("response.output_text.done", json!({"item_id": "msg_fake1", "output_index": 0, "content_index": 0, "text": text})));
    events.push(("response.content_part.done", json!({"item_id": "msg_fake1", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": text, "annotations": []}})));
    events.push(("response.output_item.done", json!({"output_index": 0, "item": message})));
    events.push(("response.completed", json!({"response": response("completed", json!([message]), usage)})));
    let mut sse = String::new();
    for (n, (name, mut data)) in events.into_iter().enumerate() {
        data["type"] = json!(name);
        data["sequence_number"] = json!(n);
        sse.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    }
    write_streamed(out, "text/event-stream", sse.as_bytes())
}
