//! OpenAI's Responses API (`POST /v1/responses`) as the *client's* format,
//! for providers that do not speak it (every one but OpenAI and Azure, to
//! which `route_type: llm/v1/responses` passes natively).
//!
//! The request becomes an OpenAI chat request, so each provider's own chat
//! translation serves it; the answer comes back as a `response` object and
//! a stream as the Responses API's named events. The gateway keeps no state:
//! what needs a stored response (`previous_response_id`, `conversation`,
//! `background`, `prompt`, item references, `store: true`) and OpenAI's
//! built-in tools are refused before anything is sent.
// `serde_json::Value` lookups (`v["key"]`) return Null when absent and never
// panic; writes only go into objects built in this module.
#![allow(clippy::indexing_slicing)]

use super::common::SseInput;
use super::provider::Meta;
use super::stream::{StreamTranslator, UNREADABLE_EVENT};
use crate::error::GatewayError;
use crate::openai::Usage;
use serde_json::{json, Map, Value};

fn bad(message: impl Into<String>) -> GatewayError {
    GatewayError::bad_request(message)
}

/// Request fields a `response` object repeats back.
const ECHOED: [&str; 10] =
    ["instructions", "max_output_tokens", "metadata", "parallel_tool_calls", "reasoning", "temperature", "text", "tool_choice", "tools", "top_p"];

/// OpenAI's value for an echoed field the request left out.
fn echo_default(field: &str) -> Value {
    match field {
        "metadata" => json!({}),
        "parallel_tool_calls" => json!(true),
        "reasoning" => json!({"effort": null, "summary": null}),
        "temperature" | "top_p" => json!(1.0),
        "text" => json!({"format": {"type": "text"}}),
        "tool_choice" => json!("auto"),
        "tools" => json!([]),
        _ => Value::Null,
    }
}

/// Fields that only mean something to a server that stores responses.
const STATEFUL: [&str; 4] = ["previous_response_id", "conversation", "prompt", "background"];

/// A Responses request body as an OpenAI chat body, and the fields its
/// answer repeats.
pub fn request_to_chat(body: &[u8]) -> Result<(Value, Map<String, Value>), GatewayError> {
    let req: Value = serde_json::from_slice(body).map_err(|e| bad(format!("the body is not valid JSON: {e}")))?;
    to_chat(req)
}

/// A refusal in OpenAI's shape, naming the Responses fields the client
/// sent where the provider translations named chat fields.
pub fn error_json(err: &GatewayError) -> Vec<u8> {
    let mut err = err.clone();
    for (chat, responses) in [("`response_format`", "`text.format`"), ("`max_tokens`", "`max_output_tokens`"), ("`messages`", "`input`")] {
        err.message = err.message.replace(chat, responses);
    }
    err.to_json()
}

/// An OpenAI chat answer as a `response` object.
pub fn answer_from_chat(openai_answer: &[u8], echo: &Map<String, Value>) -> Result<Vec<u8>, String> {
    let chat: Value = serde_json::from_slice(openai_answer).map_err(|e| e.to_string())?;
    Ok(from_chat_response(&chat, echo).to_string().into_bytes())
}

/// The text of a message's content: a string, or a list of text parts of
/// the kinds given. Strings are moved out of the request, not copied.
fn text_parts(content: &mut Value, kinds: &[&str], at: &str) -> Result<String, GatewayError> {
    match content {
        Value::String(s) => Ok(std::mem::take(s)),
        Value::Array(parts) => {
            let mut out = String::new();
            for (j, p) in parts.iter().enumerate() {
                let kind = p["type"].as_str().unwrap_or("(none)");
                if !kinds.contains(&kind) {
                    return Err(bad(format!("{at}.content.{j}.type: `{kind}` is not supported here (expected {})", kinds.join(" or "))));
                }
                let text = p["text"].as_str().or_else(|| p["refusal"].as_str()).unwrap_or_default();
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(text);
            }
            Ok(out)
        }
        _ => Err(bad(format!("{at}.content: must be a string or a list of content parts"))),
    }
}

/// A user message's content as chat content: text, and images by URL.
fn user_content(content: &mut Value, at: &str) -> Result<Value, GatewayError> {
    let Value::Array(parts) = content else {
        return text_parts(content, &["input_text"], at).map(Value::String);
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, p) in parts.iter().enumerate() {
        match p["type"].as_str() {
            Some("input_text") => out.push(json!({"type": "text", "text": p["text"].as_str().unwrap_or_default()})),
            Some("input_image") => {
                let Some(url) = p["image_url"].as_str() else {
                    // A file id names an upload stored by OpenAI.
                    return Err(bad(format!("{at}.content.{j}.image_url: required (a URL or a data URL; file_id needs OpenAI's file store)")));
                };
                let mut image = json!({"url": url});
                if let Some(detail) = p["detail"].as_str().filter(|d| *d != "auto") {
                    image["detail"] = detail.into();
                }
                out.push(json!({"type": "image_url", "image_url": image}));
            }
            other => {
                return Err(bad(format!(
                    "{at}.content.{j}.type: `{}` is not supported for this provider (input_text, input_image)",
                    other.unwrap_or("(none)")
                )))
            }
        }
    }
    if let [only] = out.as_slice() {
        if only["type"] == "text" {
            return Ok(only["text"].clone());
        }
    }
    Ok(Value::Array(out))
}

/// Appends a tool call to the assistant message being built at the end of
/// `messages` (a Responses history lists each call as its own item; chat
/// puts a turn's calls on one message).
fn push_tool_call(messages: &mut Vec<Value>, call: Value) {
    let open = messages.last_mut().filter(|m| m["role"] == "assistant" && m["tool_calls"].is_array());
    match open {
        Some(m) => {
            if let Some(calls) = m["tool_calls"].as_array_mut() {
                calls.push(call);
            }
        }
        None => {
            // A call right after the assistant's text belongs to that turn.
            match messages.last_mut().filter(|m| m["role"] == "assistant") {
                Some(m) => m["tool_calls"] = json!([call]),
                None => messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
    }
}

fn input_items(input: &mut Value, messages: &mut Vec<Value>) -> Result<(), GatewayError> {
    let items = match input {
        Value::String(s) => {
            messages.push(json!({"role": "user", "content": std::mem::take(s)}));
            return Ok(());
        }
        Value::Array(items) => items,
        Value::Null => return Err(bad("input: Field required")),
        _ => return Err(bad("input: must be a string or a list of input items")),
    };
    for (i, item) in items.iter_mut().enumerate() {
        let at = format!("input.{i}");
        // The texts are moved out first; the rest is only read.
        let mut content = item.get_mut("content").map(Value::take).unwrap_or_default();
        let mut output = item.get_mut("output").map(Value::take).unwrap_or_default();
        let item = &*item;
        let kind = item["type"].as_str().unwrap_or(if item["role"].is_string() { "message" } else { "(none)" });
        match kind {
            "message" => {
                let content = &mut content;
                match item["role"].as_str() {
                    Some("user") => messages.push(json!({"role": "user", "content": user_content(content, &at)?})),
                    Some("assistant") => {
                        let text = text_parts(content, &["output_text", "refusal", "input_text"], &at)?;
                        messages.push(json!({"role": "assistant", "content": text}));
                    }
                    Some("system") | Some("developer") => {
                        messages.push(json!({"role": "system", "content": text_parts(content, &["input_text"], &at)?}));
                    }
                    _ => return Err(bad(format!("{at}.role: must be user, assistant, system or developer"))),
                }
            }
            "function_call" => {
                let call_id = item["call_id"].as_str().ok_or_else(|| bad(format!("{at}.call_id: Field required")))?;
                let name = item["name"].as_str().ok_or_else(|| bad(format!("{at}.name: Field required")))?;
                let arguments = item["arguments"].as_str().unwrap_or("{}");
                push_tool_call(messages, json!({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}));
            }
            "function_call_output" => {
                let call_id = item["call_id"].as_str().ok_or_else(|| bad(format!("{at}.call_id: Field required")))?;
                let output = match &mut output {
                    Value::String(s) => std::mem::take(s),
                    parts @ Value::Array(_) => text_parts(parts, &["input_text", "output_text"], &at)?,
                    _ => return Err(bad(format!("{at}.output: must be a string or a list of text parts"))),
                };
                messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": output}));
            }
            // Only the provider that wrote them can read them back.
            "reasoning" => {}
            "item_reference" => return Err(bad(format!("{at}: item references need stored responses, which this gateway does not keep for this provider"))),
            other => return Err(bad(format!("{at}.type: `{other}` is not supported for this provider"))),
        }
    }
    Ok(())
}

fn tools(req: &Value, chat: &mut Map<String, Value>) -> Result<(), GatewayError> {
    let tools = req["tools"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut out = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        match t["type"].as_str() {
            Some("function") => {
                let name = t["name"].as_str().ok_or_else(|| bad(format!("tools.{i}.name: Field required")))?;
                let mut function = json!({"name": name, "parameters": t.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}}))});
                for key in ["description", "strict"] {
                    if !t[key].is_null() {
                        function[key] = t[key].clone();
                    }
                }
                out.push(json!({"type": "function", "function": function}));
            }
            other => {
                return Err(bad(format!(
                    "tools.{i}.type: `{}` is one of OpenAI's built-in tools, served by OpenAI only; this route translates to another provider (use function tools)",
                    other.unwrap_or("(none)")
                )))
            }
        }
    }
    if !out.is_empty() {
        chat.insert("tools".into(), Value::Array(out));
    }
    let choice = &req["tool_choice"];
    let mapped = match choice {
        Value::Null => return Ok(()),
        Value::String(s) if ["auto", "none", "required"].contains(&s.as_str()) => choice.clone(),
        _ if choice["type"] == "function" => {
            let name = choice["name"].as_str().ok_or_else(|| bad("tool_choice.name: Field required"))?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => return Err(bad("tool_choice: must be auto, none, required or a function tool for this provider")),
    };
    chat.insert("tool_choice".into(), mapped);
    Ok(())
}

fn text_format(req: &Value, chat: &mut Map<String, Value>) -> Result<(), GatewayError> {
    let format = &req["text"]["format"];
    let mapped = match format["type"].as_str() {
        None if format.is_null() => return Ok(()),
        Some("text") => return Ok(()),
        Some("json_object") => json!({"type": "json_object"}),
        Some("json_schema") => {
            let mut schema = json!({"name": format["name"].as_str().unwrap_or("response"), "schema": format["schema"].clone()});
            for key in ["description", "strict"] {
                if !format[key].is_null() {
                    schema[key] = format[key].clone();
                }
            }
            json!({"type": "json_schema", "json_schema": schema})
        }
        _ => return Err(bad("text.format.type: must be text, json_object or json_schema")),
    };
    chat.insert("response_format".into(), mapped);
    Ok(())
}

/// A Responses request as an OpenAI chat request, and the fields its answer
/// repeats.
pub fn to_chat(mut req: Value) -> Result<(Value, Map<String, Value>), GatewayError> {
    if !req.is_object() {
        return Err(bad("the body must be a JSON object"));
    }
    for field in STATEFUL {
        if !req[field].is_null() && req[field] != false {
            return Err(bad(format!("{field}: needs responses stored by the server; this gateway does not keep them for this provider (send the whole conversation in `input`)")));
        }
    }
    if req["store"] == true {
        return Err(bad("store: this gateway does not store responses for this provider; send `store: false` or leave it out"));
    }
    let mut messages = Vec::new();
    match &req["instructions"] {
        Value::Null => {}
        Value::String(s) => messages.push(json!({"role": "system", "content": s})),
        _ => return Err(bad("instructions: must be a string")),
    }
    input_items(&mut req["input"], &mut messages)?;

    let mut chat = Map::new();
    if let Some(model) = req["model"].as_str() {
        chat.insert("model".into(), model.into());
    }
    chat.insert("messages".into(), Value::Array(messages));
    match &req["max_output_tokens"] {
        Value::Null => {}
        n if n.as_u64().is_some_and(|n| n >= 1) => {
            chat.insert("max_tokens".into(), n.clone());
        }
        _ => return Err(bad("max_output_tokens: must be a positive integer")),
    }
    for key in ["temperature", "top_p"] {
        if req[key].is_number() {
            chat.insert(key.into(), req[key].clone());
        }
    }
    for key in ["stop", "user", "parallel_tool_calls"] {
        if !req[key].is_null() {
            chat.insert(key.into(), req[key].clone());
        }
    }
    if let Some(effort) = req["reasoning"]["effort"].as_str() {
        // Providers with a thinking budget read it; the others drop it.
        chat.insert("reasoning_effort".into(), effort.into());
    }
    tools(&req, &mut chat)?;
    text_format(&req, &mut chat)?;
    match &req["stream"] {
        Value::Null | Value::Bool(false) => {}
        Value::Bool(true) => {
            chat.insert("stream".into(), true.into());
            // response.completed carries the usage: ask every provider for it.
            chat.insert("stream_options".into(), json!({"include_usage": true}));
        }
        _ => return Err(bad("stream: must be a boolean")),
    }
    let mut echo = Map::new();
    for key in ECHOED {
        let value = req.get(key).filter(|v| !v.is_null()).cloned().unwrap_or_else(|| echo_default(key));
        echo.insert(key.into(), value);
    }
    if let Some(user) = req.get("user") {
        echo.insert("user".into(), user.clone());
    }
    Ok((Value::Object(chat), echo))
}

/// Chat usage in the Responses API's words, same arithmetic.
fn usage_json(u: Option<&Usage>) -> Value {
    let u = u.copied().unwrap_or_default();
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.prompt_tokens_details.map_or(0, |d| d.cached_tokens)},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": u.completion_tokens_details.map_or(0, |d| d.reasoning_tokens)},
        "total_tokens": u.total_tokens,
    })
}

/// Why an answer stopped short, in the Responses API's words.
fn incomplete_reason(finish: Option<&str>) -> Option<&'static str> {
    match finish {
        Some("length") => Some("max_output_tokens"),
        Some("content_filter") => Some("content_filter"),
        _ => None,
    }
}

fn response_object(id: &str, created: u64, model: &str, status: &str, output: Vec<Value>, usage: Value, echo: &Map<String, Value>) -> Value {
    let mut r = json!({
        "id": id,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": false,
        "error": null,
        "incomplete_details": null,
        "model": model,
        "output": output,
        "previous_response_id": null,
        "store": false,
        "truncation": "disabled",
        "usage": usage,
    });
    if let Some(obj) = r.as_object_mut() {
        for (k, v) in echo {
            obj.insert(k.clone(), v.clone());
        }
    }
    r
}

fn finish(r: &mut Value, finish_reason: Option<&str>) {
    if let Some(reason) = incomplete_reason(finish_reason) {
        r["status"] = "incomplete".into();
        r["incomplete_details"] = json!({"reason": reason});
    }
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": [output_text(text)]})
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

fn call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"id": id, "type": "function_call", "status": status, "call_id": call_id, "name": name, "arguments": arguments})
}

/// The part of a chat id that names the request.
fn base_id(chat_id: &str) -> String {
    chat_id.trim_start_matches("chatcmpl-").chars().filter(char::is_ascii_alphanumeric).collect()
}

/// An OpenAI chat answer as a `response` object.
pub fn from_chat_response(chat: &Value, echo: &Map<String, Value>) -> Value {
    let base = base_id(chat["id"].as_str().unwrap_or_default());
    let choice = &chat["choices"][0];
    let message = &choice["message"];
    let mut output = Vec::new();
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        output.push(message_item(&format!("msg_{base}"), text, "completed"));
    }
    for (n, call) in message["tool_calls"].as_array().into_iter().flatten().enumerate() {
        let f = &call["function"];
        let call_id = call["id"].as_str().unwrap_or_default();
        output.push(call_item(&format!("fc_{base}_{n}"), call_id, f["name"].as_str().unwrap_or_default(), f["arguments"].as_str().unwrap_or("{}"), "completed"));
    }
    let usage: Option<Usage> = serde_json::from_value(chat["usage"].clone()).ok();
    let model = chat["model"].as_str().unwrap_or_default();
    let mut r = response_object(&format!("resp_{base}"), chat["created"].as_u64().unwrap_or(0), model, "completed", output, usage_json(usage.as_ref()), echo);
    finish(&mut r, choice["finish_reason"].as_str());
    r
}

/// One output item of a stream while it is written.
enum Item {
    Message { id: String, text: String },
    /// `index`: the chat stream's tool-call index.
    Call { id: String, call_id: String, name: String, arguments: String, index: u64 },
}

impl Item {
    fn done(&self) -> Value {
        match self {
            Item::Message { id, text } => message_item(id, text, "completed"),
            Item::Call { id, call_id, name, arguments, .. } => call_item(id, call_id, name, arguments, "completed"),
        }
    }
}

/// A provider's stream, already OpenAI chunks by its own translator, as the
/// Responses API's named events: response.created, response.in_progress,
/// then per output item its added / delta / done events, and last
/// response.completed (or response.incomplete) with the whole response.
pub struct ToResponsesStream {
    inner: Box<dyn StreamTranslator>,
    sse: SseInput,
    id: String,
    base: String,
    created: u64,
    model: String,
    echo: Map<String, Value>,
    sequence: u64,
    started: bool,
    /// Items written, the last one open while `open`.
    items: Vec<Item>,
    open: bool,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    ended: bool,
}

impl ToResponsesStream {
    pub fn new(inner: Box<dyn StreamTranslator>, meta: &Meta, echo: Map<String, Value>) -> Self {
        let base = base_id(meta.id);
        ToResponsesStream {
            inner,
            sse: SseInput::default(),
            id: format!("resp_{base}"),
            base,
            created: meta.created,
            model: meta.model.to_string(),
            echo,
            sequence: 0,
            started: false,
            items: Vec::new(),
            open: false,
            finish_reason: None,
            usage: None,
            ended: false,
        }
    }

    fn event(&mut self, out: &mut Vec<u8>, name: &str, mut data: Value) {
        data["type"] = name.into();
        data["sequence_number"] = self.sequence.into();
        self.sequence = self.sequence.saturating_add(1);
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(data.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    }

    fn snapshot(&self, status: &str, output: Vec<Value>, usage: Value) -> Value {
        response_object(&self.id, self.created, &self.model, status, output, usage, &self.echo)
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.snapshot("in_progress", Vec::new(), Value::Null);
        self.event(out, "response.created", json!({"response": response}));
        let response = self.snapshot("in_progress", Vec::new(), Value::Null);
        self.event(out, "response.in_progress", json!({"response": response}));
    }

    fn close_item(&mut self, out: &mut Vec<u8>) {
        if !self.open {
            return;
        }
        self.open = false;
        let output_index = self.items.len().saturating_sub(1);
        let Some(item) = self.items.last() else { return };
        let done = item.done();
        match item {
            Item::Message { id, text } => {
                let (id, text) = (id.clone(), text.clone());
                self.event(out, "response.output_text.done", json!({"item_id": id, "output_index": output_index, "content_index": 0, "text": text, "logprobs": []}));
                self.event(out, "response.content_part.done", json!({"item_id": id, "output_index": output_index, "content_index": 0, "part": output_text(&text)}));
            }
            Item::Call { id, name, arguments, .. } => {
                let data = json!({"item_id": id, "output_index": output_index, "name": name, "arguments": arguments});
                self.event(out, "response.function_call_arguments.done", data);
            }
        }
        self.event(out, "response.output_item.done", json!({"output_index": output_index, "item": done}));
    }

    fn open_item(&mut self, item: Item, out: &mut Vec<u8>) {
        self.close_item(out);
        let output_index = self.items.len();
        let added = match &item {
            Item::Message { id, .. } => json!({"id": id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}),
            Item::Call { id, call_id, name, .. } => call_item(id, call_id, name, "", "in_progress"),
        };
        let message_id = match &item {
            Item::Message { id, .. } => Some(id.clone()),
            Item::Call { .. } => None,
        };
        self.items.push(item);
        self.open = true;
        self.event(out, "response.output_item.added", json!({"output_index": output_index, "item": added}));
        if let Some(id) = message_id {
            self.event(out, "response.content_part.added", json!({"item_id": id, "output_index": output_index, "content_index": 0, "part": output_text("")}));
        }
    }

    fn text(&mut self, delta: &str, out: &mut Vec<u8>) {
        if !(self.open && matches!(self.items.last(), Some(Item::Message { .. }))) {
            let id = format!("msg_{}_{}", self.base, self.items.len());
            self.open_item(Item::Message { id, text: String::new() }, out);
        }
        let output_index = self.items.len().saturating_sub(1);
        let Some(Item::Message { id, text }) = self.items.last_mut() else { return };
        text.push_str(delta);
        let data = json!({"item_id": id.as_str(), "output_index": output_index, "content_index": 0, "delta": delta, "logprobs": []});
        self.event(out, "response.output_text.delta", data);
    }

    fn tool_call(&mut self, call: &Value, out: &mut Vec<u8>) {
        let index = call["index"].as_u64().unwrap_or(0);
        let fresh_id = call["id"].as_str().filter(|id| !id.is_empty());
        let continues = self.open
            && matches!(self.items.last(), Some(Item::Call { index: i, call_id, .. }) if *i == index && fresh_id.is_none_or(|id| id == call_id));
        if !continues {
            let id = format!("fc_{}_{}", self.base, self.items.len());
            let call_id = fresh_id.unwrap_or_default().to_string();
            let name = call["function"]["name"].as_str().unwrap_or_default().to_string();
            self.open_item(Item::Call { id, call_id, name, arguments: String::new(), index }, out);
        }
        let Some(delta) = call["function"]["arguments"].as_str().filter(|a| !a.is_empty()) else { return };
        let output_index = self.items.len().saturating_sub(1);
        let Some(Item::Call { id, arguments, .. }) = self.items.last_mut() else { return };
        arguments.push_str(delta);
        let data = json!({"item_id": id.as_str(), "output_index": output_index, "delta": delta});
        self.event(out, "response.function_call_arguments.delta", data);
    }

    fn chunk(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        self.start(out);
        if let Some(err) = chunk.get("error") {
            let message = err["message"].as_str().unwrap_or("upstream stream error").to_string();
            self.fail(&message, out);
            return;
        }
        if let Some(m) = chunk["model"].as_str().filter(|m| !m.is_empty()) {
            self.model = m.to_string();
        }
        if let Ok(u) = serde_json::from_value::<Usage>(chunk["usage"].clone()) {
            self.usage = Some(u);
        }
        let choice = &chunk["choices"][0];
        if let Some(text) = choice["delta"]["content"].as_str().filter(|t| !t.is_empty()) {
            self.text(text, out);
        }
        for call in choice["delta"]["tool_calls"].as_array().into_iter().flatten() {
            self.tool_call(call, out);
        }
        if let Some(finish) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(finish.to_string());
        }
    }

    /// The spec's `error` event ends a stream that failed half-way.
    fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        self.start(out);
        self.event(out, "error", json!({"code": "upstream_error", "message": message, "param": null}));
        self.ended = true;
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.start(out);
        self.close_item(out);
        let output = self.items.iter().map(Item::done).collect();
        let mut response = self.snapshot("completed", output, usage_json(self.usage.as_ref()));
        finish(&mut response, self.finish_reason.as_deref());
        let name = if response["status"] == "incomplete" { "response.incomplete" } else { "response.completed" };
        self.event(out, name, json!({"response": response}));
    }

    fn translate(&mut self, openai: &[u8], out: &mut Vec<u8>) {
        let mut sse = std::mem::take(&mut self.sse);
        sse.feed(openai, |e| {
            if e.data == "[DONE]" {
                self.end(out);
            } else {
                match serde_json::from_str::<Value>(&e.data) {
                    Ok(chunk) => self.chunk(&chunk, out),
                    Err(_) => self.fail(UNREADABLE_EVENT, out),
                }
            }
            !self.ended
        });
        self.sse = sse;
    }
}

impl StreamTranslator for ToResponsesStream {
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
            self.fail("the upstream stream ended early", out);
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.inner.usage().or(self.usage)
    }

    fn model(&self) -> Option<&str> {
        self.inner.model()
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;
    use crate::proxy::config::ProxyConfig;
    use crate::proxy::Exchange;
    use std::rc::Rc;

    fn chat(req: Value) -> Value {
        to_chat(req).unwrap().0
    }

    fn refusal(req: Value) -> String {
        to_chat(req).unwrap_err().message
    }

    fn exchange(provider: &str) -> Exchange {
        let cfg = format!(r#"{{"route_type":"llm/v1/responses","auth":{{"header_name":"x-api-key","header_value":"k"}},"model":{{"provider":"{provider}","name":"m"}}}}"#);
        Exchange::new(Rc::new(ProxyConfig::from_json(cfg.as_bytes(), &|_| None).unwrap()), "req1".into(), 1_700_000_000)
    }

    #[test]
    fn a_string_input_and_instructions_become_system_and_user_messages() {
        let c = chat(json!({"model": "m", "instructions": "Be brief.", "input": "Hi", "max_output_tokens": 50, "stream": true}));
        assert_eq!(c["messages"], json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]));
        assert_eq!((c["max_tokens"].clone(), c["stream"].clone()), (json!(50), json!(true)));
        assert_eq!(c["stream_options"], json!({"include_usage": true}), "response.completed needs the usage");
    }

    #[test]
    fn a_turns_function_calls_share_one_assistant_message_after_its_text() {
        let c = chat(json!({"input": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "call_id": "a", "name": "w", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call", "call_id": "b", "name": "w", "arguments": "{\"city\":\"Rome\"}"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call_output", "call_id": "a", "output": "18C"},
            {"type": "function_call_output", "call_id": "b", "output": [{"type": "input_text", "text": "21C"}]},
        ]}));
        let m = c["messages"].as_array().unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[1]["content"], "Checking.");
        assert_eq!(m[1]["tool_calls"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!((m[3]["role"].as_str(), m[3]["tool_call_id"].as_str(), m[3]["content"].as_str()), (Some("tool"), Some("b"), Some("21C")));
    }

    #[test]
    fn images_tools_and_formats_map_to_chat() {
        let c = chat(json!({
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "What is it?"}, {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"}]}],
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": true}],
            "tool_choice": {"type": "function", "name": "f"},
            "text": {"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": true}},
            "reasoning": {"effort": "low"}, "user": "u1",
        }));
        assert_eq!(c["messages"][0]["content"][1], json!({"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}}));
        assert_eq!(c["tools"], json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": true}}]));
        assert_eq!(c["tool_choice"], json!({"type": "function", "function": {"name": "f"}}));
        assert_eq!(c["response_format"], json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}}));
        assert_eq!((c["reasoning_effort"].as_str(), c["user"].as_str()), (Some("low"), Some("u1")));
        assert_eq!(chat(json!({"input": "x", "text": {"format": {"type": "json_object"}}}))["response_format"], json!({"type": "json_object"}));
    }

    #[test]
    fn what_needs_stored_state_or_openais_own_tools_is_refused_naming_the_field() {
        for field in ["previous_response_id", "conversation", "prompt"] {
            assert!(refusal(json!({"input": "x", field: "v"})).starts_with(&format!("{field}:")), "{field}");
        }
        assert!(refusal(json!({"input": "x", "background": true})).starts_with("background:"));
        assert!(refusal(json!({"input": "x", "store": true})).starts_with("store:"));
        assert!(to_chat(json!({"input": "x", "store": false, "background": false})).is_ok());
        for tool in ["web_search", "file_search", "code_interpreter", "computer_use_preview", "mcp", "image_generation"] {
            assert!(refusal(json!({"input": "x", "tools": [{"type": "function", "name": "f"}, {"type": tool}]})).starts_with("tools.1.type:"), "{tool}");
        }
        assert!(refusal(json!({"input": [{"type": "item_reference", "id": "msg_1"}]})).starts_with("input.0:"));
        assert!(refusal(json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]})).starts_with("input.0.content.0.type:"));
        assert!(refusal(json!({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]})).starts_with("input.0.content.0.image_url:"));
        assert!(refusal(json!({"input": [{"role": "tool", "content": "x"}]})).starts_with("input.0.role:"));
        assert!(refusal(json!({"model": "m"})).starts_with("input:"));
        assert!(refusal(json!({"input": "x", "max_output_tokens": 0})).starts_with("max_output_tokens:"));
        assert!(refusal(json!({"input": "x", "tool_choice": {"type": "allowed_tools"}})).starts_with("tool_choice:"));
        assert!(refusal(json!({"input": "x", "text": {"format": {"type": "grammar"}}})).starts_with("text.format.type:"));
        assert!(refusal(json!(["not", "an", "object"])).contains("JSON object"));
    }

    #[test]
    fn a_provider_refusal_names_the_responses_field_the_client_sent() {
        let mut x = exchange("anthropic");
        let err = x.request_body(br#"{"input":"x","text":{"format":{"type":"json_object"}}}"#).unwrap_err();
        assert_eq!(err.status, 400);
        let body: Value = serde_json::from_slice(&x.error_reply(&err)).unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("`text.format`") && !message.contains("response_format"), "{message}");
    }

    #[test]
    fn nothing_is_stored_so_reading_a_response_back_is_a_404_in_openais_shape() {
        let x = exchange("anthropic");
        let err = x.check_request_headers("GET", false, &|_| None).unwrap_err();
        assert_eq!(err.status, 404);
        let body: Value = serde_json::from_slice(&x.error_reply(&err)).unwrap();
        assert_eq!(body["error"]["type"], "not_found_error");
        // Natively (OpenAI), the route still takes POST only.
        let native = ProxyConfig::from_json(br#"{"route_type":"llm/v1/responses","model":{"provider":"openai","name":"m"}}"#, &|_| None).unwrap();
        let x = Exchange::new(Rc::new(native), "r".into(), 0);
        assert_eq!(x.check_request_headers("GET", false, &|_| None).unwrap_err().status, 405);
    }

    #[test]
    fn a_cut_answer_is_incomplete_with_its_reason() {
        let chat = json!({"id": "chatcmpl-1", "created": 5, "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Once upon"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12, "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 1}}});
        let r = from_chat_response(&chat, &Map::new());
        assert_eq!((r["status"].as_str(), r["incomplete_details"]["reason"].as_str()), (Some("incomplete"), Some("max_output_tokens")));
        assert_eq!(r["usage"], json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 12}));
        assert_eq!(r["output"][0]["content"][0]["text"], "Once upon");
        let filtered = json!({"id": "x", "choices": [{"message": {"content": ""}, "finish_reason": "content_filter"}]});
        assert_eq!(from_chat_response(&filtered, &Map::new())["incomplete_details"]["reason"], "content_filter");
    }

    /// An OpenAI-chunk stream as a provider translator would write it.
    struct Chunks(Vec<u8>);

    impl StreamTranslator for Chunks {
        fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
            self.0.extend_from_slice(chunk);
            out.extend_from_slice(chunk);
        }
        fn finish(&mut self, _: &mut Vec<u8>) {}
        fn usage(&self) -> Option<Usage> {
            None
        }
        fn model(&self) -> Option<&str> {
            None
        }
    }

    fn stream(input: &str) -> Vec<Value> {
        let meta = Meta { id: "r1", created: 1, model: "m" };
        let mut t = ToResponsesStream::new(Box::new(Chunks(Vec::new())), &meta, Map::new());
        let out = crate::proxy::stream::testing::run(&mut t, input.as_bytes(), &[]);
        crate::proxy::stream::testing::events(&out).iter().map(|e| serde_json::from_str(e).unwrap()).collect()
    }

    #[test]
    fn parallel_tool_calls_stream_as_one_item_each_and_a_cut_stream_ends_with_an_error_event() {
        let events = stream(concat!(
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"w\",\"arguments\":\"{\\\"c\\\":\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"b\",\"function\":{\"name\":\"w\",\"arguments\":\"{}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]}}]}\n\n",
        ));
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds.last(), Some(&"error"), "no [DONE]: the stream is not presented as complete: {kinds:?}");
        assert!(!kinds.contains(&"response.completed"));
        assert_eq!(kinds.iter().filter(|k| **k == "response.output_item.added").count(), 3, "a call resumed after another is a new item: {kinds:?}");

        let events = stream("data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"length\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\ndata: [DONE]\n\n");
        let last = events.last().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(last["response"]["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(last["response"]["usage"]["total_tokens"], 4);
        assert_eq!(last["response"]["output"][0]["content"][0]["text"], "Hi");

        let events = stream("data: {\"error\":{\"message\":\"Overloaded\",\"type\":\"upstream_error\"}}\n\n");
        assert_eq!((events.last().unwrap()["type"].as_str(), events.last().unwrap()["message"].as_str()), (Some("error"), Some("Overloaded")));
        let events = stream("data: {not json\n\n");
        assert_eq!(events.last().unwrap()["message"], UNREADABLE_EVENT);
    }
}
