//! Anthropic's Messages API as the *client's* format (`llm_format:
//! anthropic`): Claude clients through the gateway to any provider.
//!
//! To an Anthropic target the client's body and stream pass through
//! (credentials swapped, usage read on the way). To every other provider
//! the request goes through OpenAI's shape (so each provider's existing
//! translation serves it) and the answer comes back as an Anthropic
//! message or Anthropic's named stream events.
// `serde_json::Value` lookups (`v["key"]`) return Null when absent and never
// panic; writes only go into objects built in this module.
#![allow(clippy::indexing_slicing)]

use super::anthropic::{AnthropicStream, AnthropicUsage};
use super::common::SseInput;
use super::stream::StreamTranslator;
use crate::error::{ErrorKind, GatewayError};
use crate::openai::Usage;
use serde_json::{json, Map, Value};

fn bad(message: impl Into<String>) -> GatewayError {
    GatewayError::bad_request(message)
}

/// Anthropic's error `type` for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// `{"type":"error","error":{"type":...,"message":...}}`
pub fn error_body(status: u16, message: &str) -> Vec<u8> {
    json!({"type": "error", "error": {"type": error_type(status), "message": message}}).to_string().into_bytes()
}

/// Whether a body is already an Anthropic error.
pub fn is_error_body(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| v["type"] == "error" && v["error"]["message"].is_string())
}

/// An OpenAI-shaped error body (the gateway's own, or a provider's after
/// normalizing) in Anthropic's shape.
pub fn error_from_openai(status: u16, body: &[u8]) -> Vec<u8> {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let message = parsed["error"]["message"].as_str().map(str::to_string).unwrap_or_else(|| format!("upstream returned HTTP {status}"));
    error_body(status, &message)
}

fn text_of_blocks(content: &Value, what: &str) -> Result<String, GatewayError> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut out = String::new();
            for b in blocks {
                match b["type"].as_str() {
                    Some("text") => {
                        if !out.is_empty() {
                            out.push('\n');
                        }
                        out.push_str(b["text"].as_str().unwrap_or_default());
                    }
                    other => return Err(bad(format!("{what}: unsupported content block type `{}`", other.unwrap_or("(none)")))),
                }
            }
            Ok(out)
        }
        Value::Null => Ok(String::new()),
        _ => Err(bad(format!("{what}: must be a string or a list of content blocks"))),
    }
}

fn image_part(block: &Value) -> Result<Value, GatewayError> {
    let source = &block["source"];
    let url = match source["type"].as_str() {
        Some("base64") => {
            let media = source["media_type"].as_str().ok_or_else(|| bad("image.source.media_type: Field required"))?;
            let data = source["data"].as_str().ok_or_else(|| bad("image.source.data: Field required"))?;
            format!("data:{media};base64,{data}")
        }
        Some("url") => source["url"].as_str().ok_or_else(|| bad("image.source.url: Field required"))?.to_string(),
        _ => return Err(bad("image.source.type: must be `base64` or `url`")),
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

fn user_messages(content: &Value, i: usize, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let blocks = match content {
        Value::String(s) => {
            out.push(json!({"role": "user", "content": s}));
            return Ok(());
        }
        Value::Array(blocks) => blocks,
        _ => return Err(bad(format!("messages.{i}.content: must be a string or a list of content blocks"))),
    };
    let mut parts = Vec::new();
    for b in blocks {
        match b["type"].as_str() {
            Some("text") => parts.push(json!({"type": "text", "text": b["text"].as_str().unwrap_or_default()})),
            Some("image") => parts.push(image_part(b)?),
            Some("tool_result") => {
                let id = b["tool_use_id"].as_str().ok_or_else(|| bad(format!("messages.{i}: tool_result.tool_use_id: Field required")))?;
                let text = text_of_blocks(&b["content"], &format!("messages.{i}.tool_result"))?;
                // OpenAI has no error flag on tool messages: say it in the text.
                let text = if b["is_error"] == true { format!("Error: {text}") } else { text };
                out.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
            }
            other => return Err(bad(format!("messages.{i}: unsupported content block type `{}`", other.unwrap_or("(none)")))),
        }
    }
    if parts.is_empty() {
        return Ok(());
    }
    let all_text = parts.iter().all(|p| p["type"] == "text");
    let content = if all_text && parts.len() == 1 { parts[0]["text"].clone() } else { Value::Array(parts) };
    out.push(json!({"role": "user", "content": content}));
    Ok(())
}

fn assistant_message(content: &Value, i: usize) -> Result<Value, GatewayError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    match content {
        Value::String(s) => text.push_str(s),
        Value::Array(blocks) => {
            for b in blocks {
                match b["type"].as_str() {
                    Some("text") => text.push_str(b["text"].as_str().unwrap_or_default()),
                    Some("tool_use") => calls.push(json!({
                        "id": b["id"].as_str().unwrap_or_default(),
                        "type": "function",
                        "function": {"name": b["name"].as_str().unwrap_or_default(), "arguments": b["input"].to_string()},
                    })),
                    // Only the provider that wrote them can read them back.
                    Some("thinking") | Some("redacted_thinking") => {}
                    other => return Err(bad(format!("messages.{i}: unsupported content block type `{}`", other.unwrap_or("(none)")))),
                }
            }
        }
        _ => return Err(bad(format!("messages.{i}.content: must be a string or a list of content blocks"))),
    }
    let mut m = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !calls.is_empty() {
        m["tool_calls"] = Value::Array(calls);
    }
    Ok(m)
}

/// A Messages request as an OpenAI chat request. Returns the body and
/// whether the client asked for a stream.
pub fn to_chat(body: &[u8]) -> Result<(Value, bool), GatewayError> {
    let req: Value = serde_json::from_slice(body).map_err(|e| bad(format!("the body is not valid JSON: {e}")))?;
    if !req.is_object() {
        return Err(bad("the body must be a JSON object"));
    }
    let max_tokens = req["max_tokens"].as_u64().filter(|n| *n >= 1).ok_or_else(|| bad("max_tokens: Field required (a positive integer)"))?;
    let messages = req["messages"].as_array().ok_or_else(|| bad("messages: Field required"))?;
    let stream = req["stream"] == true;

    let mut out_messages = Vec::with_capacity(messages.len() + 1);
    if !req["system"].is_null() {
        out_messages.push(json!({"role": "system", "content": text_of_blocks(&req["system"], "system")?}));
    }
    for (i, m) in messages.iter().enumerate() {
        match m["role"].as_str() {
            Some("user") => user_messages(&m["content"], i, &mut out_messages)?,
            Some("assistant") => out_messages.push(assistant_message(&m["content"], i)?),
            _ => return Err(bad(format!("messages.{i}.role: must be `user` or `assistant`"))),
        }
    }

    let mut chat = Map::new();
    if let Some(model) = req["model"].as_str() {
        chat.insert("model".into(), model.into());
    }
    chat.insert("messages".into(), Value::Array(out_messages));
    chat.insert("max_tokens".into(), max_tokens.into());
    for key in ["temperature", "top_p", "top_k"] {
        if req[key].is_number() {
            chat.insert(key.into(), req[key].clone());
        }
    }
    if let Some(stops) = req["stop_sequences"].as_array().filter(|s| !s.is_empty()) {
        chat.insert("stop".into(), Value::Array(stops.clone()));
    }
    if let Some(user) = req["metadata"]["user_id"].as_str() {
        chat.insert("user".into(), user.into());
    }
    if stream {
        chat.insert("stream".into(), true.into());
        // message_delta carries the usage: ask every provider for it.
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(tools) = req["tools"].as_array() {
        let mut out = Vec::with_capacity(tools.len());
        for (i, t) in tools.iter().enumerate() {
            if t.get("type").is_some_and(|k| k != "custom") {
                return Err(bad(format!("tools.{i}: server tools ({}) are served by Anthropic only", t["type"])));
            }
            let name = t["name"].as_str().ok_or_else(|| bad(format!("tools.{i}.name: Field required")))?;
            let mut function = json!({"name": name, "parameters": t["input_schema"].clone()});
            if let Some(d) = t["description"].as_str() {
                function["description"] = d.into();
            }
            out.push(json!({"type": "function", "function": function}));
        }
        if !out.is_empty() {
            chat.insert("tools".into(), Value::Array(out));
        }
    }
    let choice = &req["tool_choice"];
    if !choice.is_null() {
        let mapped = match choice["type"].as_str() {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => json!({"type": "function", "function": {"name": choice["name"].as_str().ok_or_else(|| bad("tool_choice.name: Field required"))?}}),
            _ => return Err(bad("tool_choice.type: must be auto, any, tool or none")),
        };
        chat.insert("tool_choice".into(), mapped);
        if choice["disable_parallel_tool_use"] == true {
            chat.insert("parallel_tool_calls".into(), false.into());
        }
    }
    // `thinking` is Anthropic's own: dropped for other providers.
    Ok((Value::Object(chat), stream))
}

/// Validates a Messages request that goes to Anthropic unchanged; returns
/// the model it names and whether it streams.
pub fn check_native(body: &[u8]) -> Result<(Value, bool), GatewayError> {
    let req: Value = serde_json::from_slice(body).map_err(|e| bad(format!("the body is not valid JSON: {e}")))?;
    if !req.is_object() {
        return Err(bad("the body must be a JSON object"));
    }
    if req["max_tokens"].as_u64().is_none() {
        return Err(bad("max_tokens: Field required (a positive integer)"));
    }
    if !req["messages"].is_array() {
        return Err(bad("messages: Field required"));
    }
    let stream = req["stream"] == true;
    Ok((req, stream))
}

fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

fn message_id(openai_id: &str) -> String {
    let id: String = openai_id.trim_start_matches("chatcmpl-").chars().filter(char::is_ascii_alphanumeric).collect();
    format!("msg_{id}")
}

fn anthropic_usage(u: Option<&Usage>) -> Value {
    let (prompt, output, cached) = u.map_or((0, 0, 0), |u| (u.prompt_tokens, u.completion_tokens, u.prompt_tokens_details.map_or(0, |d| d.cached_tokens)));
    json!({
        "input_tokens": prompt.saturating_sub(cached),
        "output_tokens": output,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    })
}

/// An OpenAI chat answer as an Anthropic message.
pub fn from_chat_response(body: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let r: Value = serde_json::from_slice(body)?;
    let message = &r["choices"][0]["message"];
    let mut content = Vec::new();
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
        let input: Value = serde_json::from_str(arguments).ok().filter(Value::is_object).unwrap_or_else(|| json!({}));
        content.push(json!({"type": "tool_use", "id": call["id"].as_str().unwrap_or_default(), "name": call["function"]["name"].as_str().unwrap_or_default(), "input": input}));
    }
    let usage: Option<Usage> = serde_json::from_value(r["usage"].clone()).ok();
    let out = json!({
        "id": message_id(r["id"].as_str().unwrap_or_default()),
        "type": "message",
        "role": "assistant",
        "model": r["model"].as_str().unwrap_or_default(),
        "content": content,
        "stop_reason": stop_reason(r["choices"][0]["finish_reason"].as_str()),
        "stop_sequence": null,
        "usage": anthropic_usage(usage.as_ref()),
    });
    Ok(out.to_string().into_bytes())
}

fn event(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Block {
    None,
    Text(u32),
    /// Anthropic block index, OpenAI tool-call index.
    Tool(u32, u64),
}

/// A provider's stream, already translated to OpenAI chunks by its own
/// translator, as Anthropic's named events in their order: message_start,
/// content_block_start / _delta / _stop per block, message_delta (stop
/// reason, usage), message_stop.
pub struct ToMessagesStream {
    inner: Box<dyn StreamTranslator>,
    sse: SseInput,
    id: String,
    model: String,
    started: bool,
    block: Block,
    next_index: u32,
    stop_reason: Option<&'static str>,
    usage: Option<Usage>,
    ended: bool,
}

impl ToMessagesStream {
    pub fn new(inner: Box<dyn StreamTranslator>, id: &str, model: &str) -> Self {
        ToMessagesStream {
            inner,
            sse: SseInput::default(),
            id: format!("msg_{id}"),
            model: model.to_string(),
            started: false,
            block: Block::None,
            next_index: 0,
            stop_reason: None,
            usage: None,
            ended: false,
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            let message = json!({"id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0}});
            event(out, "message_start", &json!({"type": "message_start", "message": message}));
        }
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        let index = match self.block {
            Block::None => return,
            Block::Text(i) | Block::Tool(i, _) => i,
        };
        event(out, "content_block_stop", &json!({"type": "content_block_stop", "index": index}));
        self.block = Block::None;
    }

    fn open_block(&mut self, block: Value, kind: impl Fn(u32) -> Block, out: &mut Vec<u8>) -> u32 {
        self.close_block(out);
        let index = self.next_index;
        self.next_index = self.next_index.saturating_add(1);
        event(out, "content_block_start", &json!({"type": "content_block_start", "index": index, "content_block": block}));
        self.block = kind(index);
        index
    }

    fn chunk(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        if let Some(err) = chunk.get("error") {
            let message = err["message"].as_str().unwrap_or("upstream stream error");
            self.start(out);
            event(out, "error", &json!({"type": "error", "error": {"type": "api_error", "message": message}}));
            self.ended = true;
            return;
        }
        self.start(out);
        if let Some(m) = chunk["model"].as_str().filter(|m| !m.is_empty()) {
            self.model = m.to_string();
        }
        if let Ok(u) = serde_json::from_value::<Usage>(chunk["usage"].clone()) {
            self.usage = Some(u);
        }
        let choice = &chunk["choices"][0];
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            let index = match self.block {
                Block::Text(i) => i,
                _ => self.open_block(json!({"type": "text", "text": ""}), Block::Text, out),
            };
            event(out, "content_block_delta", &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}));
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let tool = call["index"].as_u64().unwrap_or(0);
            let index = match self.block {
                Block::Tool(i, t) if t == tool && call["id"].is_null() => i,
                _ => {
                    let block = json!({"type": "tool_use", "id": call["id"].as_str().unwrap_or_default(), "name": call["function"]["name"].as_str().unwrap_or_default(), "input": {}});
                    self.open_block(block, |i| Block::Tool(i, tool), out)
                }
            };
            if let Some(args) = call["function"]["arguments"].as_str().filter(|a| !a.is_empty()) {
                event(out, "content_block_delta", &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": args}}));
            }
        }
        if let Some(finish) = choice["finish_reason"].as_str() {
            self.stop_reason = Some(stop_reason(Some(finish)));
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.start(out);
        self.close_block(out);
        let mut usage = anthropic_usage(self.usage.as_ref());
        if self.usage.is_none() {
            usage = json!({"output_tokens": 0});
        }
        let delta = json!({"stop_reason": self.stop_reason.unwrap_or("end_turn"), "stop_sequence": null});
        event(out, "message_delta", &json!({"type": "message_delta", "delta": delta, "usage": usage}));
        event(out, "message_stop", &json!({"type": "message_stop"}));
    }

    fn translate(&mut self, openai: &[u8], out: &mut Vec<u8>) {
        let mut sse = std::mem::take(&mut self.sse);
        sse.feed(openai, |e| {
            if e.data == "[DONE]" {
                self.end(out);
            } else {
                match serde_json::from_str::<Value>(&e.data) {
                    Ok(chunk) => self.chunk(&chunk, out),
                    Err(_) => self.chunk(&json!({"error": {"message": super::stream::UNREADABLE_EVENT}}), out),
                }
            }
            !self.ended
        });
        self.sse = sse;
    }
}

impl StreamTranslator for ToMessagesStream {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut openai = Vec::with_capacity(chunk.len() + 64);
        self.inner.push(chunk, &mut openai);
        self.translate(&openai, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        let mut openai = Vec::new();
        self.inner.finish(&mut openai);
        self.translate(&openai, out);
        if !self.ended {
            // The upstream stopped without saying it was done.
            self.start(out);
            event(out, "error", &json!({"type": "error", "error": {"type": "api_error", "message": "the upstream stream ended early"}}));
            self.ended = true;
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.inner.usage().or(self.usage)
    }

    fn model(&self) -> Option<&str> {
        self.inner.model()
    }
}

/// Anthropic's own stream to an Anthropic client: the bytes pass, the
/// usage and model are read on the way.
pub struct NativeStream {
    tap: AnthropicStream,
}

impl NativeStream {
    pub fn new(id: &str, created: u64, model: &str) -> Self {
        NativeStream { tap: AnthropicStream::new(id, created, model, true) }
    }
}

impl StreamTranslator for NativeStream {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut scratch = Vec::new();
        self.tap.push(chunk, &mut scratch);
        out.extend_from_slice(chunk);
    }

    fn finish(&mut self, _out: &mut Vec<u8>) {
        let mut scratch = Vec::new();
        self.tap.finish(&mut scratch);
    }

    fn usage(&self) -> Option<Usage> {
        self.tap.usage()
    }

    fn model(&self) -> Option<&str> {
        self.tap.model()
    }
}

/// Usage of a native Anthropic answer, for publishing.
pub fn native_usage(body: &[u8]) -> Option<(Usage, Option<String>)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let usage: AnthropicUsage = serde_json::from_value(v["usage"].clone()).ok()?;
    Some((usage.to_openai(), v["model"].as_str().map(str::to_string)))
}

/// The gateway's own refusal in Anthropic's shape.
pub fn gateway_error(err: &GatewayError) -> Vec<u8> {
    let status = if err.status == 0 { ErrorKind::Internal.status() } else { err.status };
    error_body(status, &err.message)
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;
    use crate::proxy::config::ProxyConfig;
    use crate::proxy::Exchange;
    use std::rc::Rc;

    fn chat(body: Value) -> Value {
        to_chat(body.to_string().as_bytes()).unwrap().0
    }

    #[test]
    fn a_full_messages_request_becomes_openai_chat() {
        let c = chat(json!({
            "model": "claude-x", "max_tokens": 300, "temperature": 0.2, "top_p": 0.9, "top_k": 40,
            "stop_sequences": ["END"], "metadata": {"user_id": "u-1"}, "stream": true,
            "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind.", "cache_control": {"type": "ephemeral"}}],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tools": [{"name": "weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "tool_choice": {"type": "tool", "name": "weather", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}]},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}, {"type": "text", "text": "Checking."}, {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18C"}]}, {"type": "text", "text": "Thanks"}]}
            ]
        }));
        assert_eq!(c["model"], "claude-x");
        assert_eq!(c["max_tokens"], 300);
        assert_eq!(c["stop"], json!(["END"]));
        assert_eq!(c["user"], "u-1");
        assert_eq!(c["top_k"], 40);
        assert_eq!(c["stream_options"]["include_usage"], true);
        assert!(c.get("thinking").is_none());
        let m = &c["messages"];
        assert_eq!(m[0], json!({"role": "system", "content": "Be brief.\nBe kind."}));
        assert_eq!(m[1]["content"][1]["image_url"]["url"], "data:image/png;base64,iVBOR");
        assert_eq!(m[2]["content"], "Checking.");
        assert_eq!(m[2]["tool_calls"][0]["function"], json!({"name": "weather", "arguments": "{\"city\":\"Paris\"}"}));
        assert_eq!(m[3], json!({"role": "tool", "tool_call_id": "toolu_1", "content": "18C"}));
        assert_eq!(m[4], json!({"role": "user", "content": "Thanks"}));
        assert_eq!(c["tools"][0]["function"]["parameters"]["properties"]["city"]["type"], "string");
        assert_eq!(c["tool_choice"], json!({"type": "function", "function": {"name": "weather"}}));
        assert_eq!(c["parallel_tool_calls"], false);
        for (choice, expected) in [("auto", json!("auto")), ("any", json!("required")), ("none", json!("none"))] {
            let c = chat(json!({"max_tokens": 5, "messages": [], "tool_choice": {"type": choice}}));
            assert_eq!(c["tool_choice"], expected);
        }
    }

    #[test]
    fn bad_requests_are_refused_naming_the_field() {
        for (body, needle) in [
            (json!({"messages": []}), "max_tokens"),
            (json!({"max_tokens": 5}), "messages"),
            (json!({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}), "document"),
            (json!({"max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}), "role"),
            (json!({"max_tokens": 5, "messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}), "server tools"),
            (json!({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]}), "image.source.type"),
        ] {
            let err = to_chat(body.to_string().as_bytes()).unwrap_err();
            assert_eq!(err.status, 400);
            assert!(err.message.contains(needle), "{body}: {}", err.message);
            let shaped: Value = serde_json::from_slice(&gateway_error(&err)).unwrap();
            assert_eq!(shaped["type"], "error");
            assert_eq!(shaped["error"]["type"], "invalid_request_error");
        }
        assert!(to_chat(b"not json").is_err());
    }

    #[test]
    fn an_openai_answer_becomes_a_message() {
        let openai = json!({"id": "chatcmpl-abc", "object": "chat.completion", "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": "Let me check.", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27, "prompt_tokens_details": {"cached_tokens": 5}}});
        let m: Value = serde_json::from_slice(&from_chat_response(openai.to_string().as_bytes()).unwrap()).unwrap();
        assert_eq!(m["type"], "message");
        assert_eq!(m["id"], "msg_abc");
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(m["content"][0], json!({"type": "text", "text": "Let me check."}));
        assert_eq!(m["content"][1], json!({"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}}));
        assert_eq!(m["usage"], json!({"input_tokens": 15, "output_tokens": 7, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 0}));
        for (finish, reason) in [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal")] {
            let body = json!({"choices": [{"finish_reason": finish, "message": {"content": "x"}}]});
            let m: Value = serde_json::from_slice(&from_chat_response(body.to_string().as_bytes()).unwrap()).unwrap();
            assert_eq!(m["stop_reason"], reason);
        }
    }

    const OPENAI_STREAM: &str = concat!(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo é\"}}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"weather\",\"arguments\":\"\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4,\"total_tokens\":13}}\n\n",
        "data: [DONE]\n\n",
    );

    fn events(out: &[u8]) -> Vec<(String, Value)> {
        let text = String::from_utf8(out.to_vec()).unwrap();
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (name, data) = e.split_once('\n').unwrap();
                (name.trim_start_matches("event: ").to_string(), serde_json::from_str(data.trim_start_matches("data: ")).unwrap())
            })
            .collect()
    }

    fn translate(pieces: &[&[u8]]) -> Vec<u8> {
        let mut t = ToMessagesStream::new(Box::new(crate::proxy::openai::OpenAiStream::new(true)), "req1", "gpt-4o");
        let mut out = Vec::new();
        for p in pieces {
            t.push(p, &mut out);
        }
        t.finish(&mut out);
        assert_eq!(t.usage().map(|u| u.total_tokens), Some(13));
        out
    }

    #[test]
    fn an_openai_stream_becomes_messages_events_in_order_wherever_it_is_split() {
        let whole = translate(&[OPENAI_STREAM.as_bytes()]);
        let names: Vec<String> = events(&whole).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop", "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
        );
        let ev = events(&whole);
        assert_eq!(ev[1].1["content_block"]["type"], "text");
        assert_eq!(ev[3].1["delta"], json!({"type": "text_delta", "text": "lo é"}));
        assert_eq!(ev[5].1["content_block"], json!({"type": "tool_use", "id": "call_1", "name": "weather", "input": {}}));
        assert_eq!(ev[5].1["index"], 1);
        assert_eq!(ev[7].1["delta"], json!({"type": "input_json_delta", "partial_json": "\"Paris\"}"}));
        assert_eq!(ev[9].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(ev[9].1["usage"]["output_tokens"], 4);
        assert_eq!(ev[9].1["usage"]["input_tokens"], 9);
        let bytes = OPENAI_STREAM.as_bytes();
        for cut in 1..bytes.len() {
            assert_eq!(translate(&[&bytes[..cut], &bytes[cut..]]), whole, "split at {cut}");
        }
    }

    #[test]
    fn a_stream_that_stops_early_ends_with_an_error_event() {
        let cut = OPENAI_STREAM.find("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish").unwrap();
        let mut t = ToMessagesStream::new(Box::new(crate::proxy::openai::OpenAiStream::new(true)), "req1", "gpt-4o");
        let mut out = Vec::new();
        t.push(&OPENAI_STREAM.as_bytes()[..cut], &mut out);
        t.finish(&mut out);
        let ev = events(&out);
        let last = ev.last().unwrap();
        assert_eq!(last.0, "error");
        assert_eq!(last.1["error"]["type"], "api_error");
    }

    fn exchange(json: &str) -> Exchange {
        Exchange::new(Rc::new(ProxyConfig::from_json(json.as_bytes(), &|_| Some("k".into())).unwrap()), "req1".into(), 1_700_000_000)
    }

    const CLAUDE_BODY: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#;

    #[test]
    fn to_anthropic_the_body_and_answer_pass_as_sent() {
        let mut x = exchange(r#"{"llm_format":"anthropic","auth":{"header_name":"x-api-key","header_value":"k"},"model":{"provider":"anthropic"}}"#);
        assert_eq!(x.request_body(CLAUDE_BODY.as_bytes()).unwrap(), None, "unchanged");
        let headers = |n: &str| (n == "anthropic-version").then(|| "2023-06-01".to_string()).or_else(|| (n == "anthropic-beta").then(|| "b1".to_string()));
        let e = x.header_edits("/v1/messages", &headers);
        assert!(!e.set.iter().any(|(n, _)| n == "anthropic-version"), "the client's version stands");
        assert!(!e.remove.iter().any(|n| n == "anthropic-beta"));
        x.response_headers(200, Some("application/json"));
        let native = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"hello"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}"#;
        assert_eq!(x.response_body(native).body, None);
        assert_eq!(x.usage().map(|u| u.total_tokens), Some(4));
        x.response_headers(429, Some("application/json"));
        let err = br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#;
        assert_eq!(x.response_body(err).body, None);
    }

    #[test]
    fn to_openai_the_request_and_answer_are_translated_both_ways() {
        let mut x = exchange(r#"{"llm_format":"anthropic","auth":{"header_name":"Authorization","header_value":"Bearer k"},"model":{"provider":"openai","name":"gpt-4o"}}"#);
        let sent: Value = serde_json::from_slice(&x.request_body(CLAUDE_BODY.replace("claude-sonnet-4-5", "gpt-4o").as_bytes()).unwrap().unwrap()).unwrap();
        assert_eq!(sent["messages"][0], json!({"role": "user", "content": "hi"}));
        let e = x.header_edits("/v1/messages", &|n| (n == "anthropic-version").then(|| "2023-06-01".into()));
        assert_eq!(e.path.as_deref(), Some("/v1/chat/completions"));
        assert!(e.remove.contains(&"anthropic-version".to_string()));
        x.response_headers(200, Some("application/json"));
        let answer = br#"{"id":"chatcmpl-9","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
        let m: Value = serde_json::from_slice(&x.response_body(answer).body.unwrap()).unwrap();
        assert_eq!(m["content"][0]["text"], "hello");
        assert_eq!(m["stop_reason"], "max_tokens");
        assert_eq!(x.usage().map(|u| u.total_tokens), Some(4));
        x.response_headers(429, Some("application/json"));
        let m: Value = serde_json::from_slice(&x.response_body(br#"{"error":{"message":"Rate limit reached","type":"tokens"}}"#).body.unwrap()).unwrap();
        assert_eq!(m, json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached"}}));
        let refused = x.error_reply(&GatewayError::bad_request("nope"));
        assert_eq!(serde_json::from_slice::<Value>(&refused).unwrap()["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn claude_on_vertex_gets_the_model_in_the_path_and_the_version_in_the_body() {
        let vertex = r#""auth":{"header_name":"Authorization","header_value":"Bearer ya29"},"model":{"provider":"anthropic","name":"claude-sonnet-4-5@20250929","options":{"gemini":{"project_id":"proj","location_id":"us-east5"}}}"#;
        for (format, body, stream) in [
            ("anthropic", CLAUDE_BODY.replace("claude-sonnet-4-5", "claude-sonnet-4-5@20250929"), false),
            ("anthropic", CLAUDE_BODY.replace("claude-sonnet-4-5", "claude-sonnet-4-5@20250929").replace("\"max_tokens\"", "\"stream\":true,\"max_tokens\""), true),
            ("openai", r#"{"messages":[{"role":"user","content":"hi"}]}"#.to_string(), false),
        ] {
            let mut x = exchange(&format!(r#"{{"llm_format":"{format}",{vertex}}}"#));
            let sent: Value = serde_json::from_slice(&x.request_body(body.as_bytes()).unwrap().unwrap()).unwrap();
            assert!(sent.get("model").is_none(), "{sent}");
            assert_eq!(sent["anthropic_version"], "vertex-2023-10-16");
            let e = x.header_edits("/v1/messages", &|_| None);
            assert_eq!(e.authority.as_deref(), Some("us-east5-aiplatform.googleapis.com"));
            let op = if stream { "streamRawPredict" } else { "rawPredict" };
            assert_eq!(e.path.as_deref(), Some(format!("/v1/projects/proj/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:{op}").as_str()));
            assert!(!e.set.iter().any(|(n, _)| n == "anthropic-version"), "Vertex takes the version in the body");
        }
    }

    #[test]
    fn only_chat_routes_take_the_messages_format() {
        let err = ProxyConfig::from_json(br#"{"llm_format":"anthropic","route_type":"llm/v1/embeddings","model":{"provider":"openai"}}"#, &|_| None).unwrap_err();
        assert_eq!(err.path, "llm_format");
    }
}
