//! Pieces every native-provider translator uses: image data URLs, tool
//! arguments, and an OpenAI stream writer that keeps one id and model.

use crate::error::{error_body, ErrorKind, GatewayError};
use crate::openai::{
    ChatChoice, ChatChunk, ChatMessage, ChatResponse, ChunkChoice, CompletionChoice, CompletionResponse, Content, Delta,
    Embedding, EmbeddingResponse, FunctionCall, ToolCall, Usage,
};
use crate::sse::{encode_event, SseDecoder, SseEvent};
use serde_json::{Map, Value};

/// OpenAI fields that ask for something most native APIs cannot give.
pub const REFUSED_BY_NATIVE: [&str; 4] = ["logprobs", "top_logprobs", "logit_bias", "n"];
/// OpenAI fields with no native equivalent that change nothing the client
/// relies on: dropped.
pub const DROPPED_BY_NATIVE: [&str; 6] = ["user", "store", "metadata", "service_tier", "reasoning_effort", "parallel_tool_calls"];

/// True when a field's value asks for nothing beyond the default.
fn asks_nothing(field: &str, value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::Object(o) if o.is_empty() => true,
        Value::Number(n) if field == "n" => n.as_u64() == Some(1),
        v if field == "response_format" => v.get("type").and_then(Value::as_str) == Some("text"),
        _ => false,
    }
}

/// Applies a provider's field policy to the OpenAI fields it does not map:
/// a refused field that asks for something is a 400 naming it (never a
/// silent answer without it); a dropped one is logged at debug.
pub fn field_policy(provider: &str, rest: &Map<String, Value>, refused: &[&str], dropped: &[&str]) -> Result<(), GatewayError> {
    for field in refused {
        if rest.get(*field).is_some_and(|v| !asks_nothing(field, v)) {
            return Err(GatewayError::bad_request(format!("`{field}` is not supported by {provider}")).with_code("unsupported_parameter"));
        }
    }
    for field in dropped {
        if rest.contains_key(*field) {
            log::debug!("{provider}: dropped `{field}` (no equivalent)");
        }
    }
    Ok(())
}

/// `data:image/png;base64,AAAA` → (`image/png`, `AAAA`).
pub fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (mime, data) = rest.split_once(";base64,")?;
    Some((mime, data))
}

pub fn unprocessable(message: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorKind::Unprocessable, message)
}

/// Tool-call arguments (a JSON string in OpenAI's format) as a JSON object.
pub fn arguments_object(call: &ToolCall) -> Result<Value, GatewayError> {
    let text = call.function.arguments.as_deref().unwrap_or("{}");
    let text = if text.trim().is_empty() { "{}" } else { text };
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(GatewayError::bad_request("tool call `arguments` must be a JSON object")),
    }
}

/// The function name of the assistant tool call with this id, searched in
/// the conversation so far (providers that key results by name need it).
pub fn tool_name_for<'a>(messages: &'a [ChatMessage], id: &str) -> Option<&'a str> {
    messages.iter().rev().flat_map(|m| m.tool_calls.iter().flatten()).find(|c| c.id.as_deref() == Some(id))?.function.name.as_deref()
}

/// A tool result's text as a JSON object (parsed if it is one, else wrapped).
pub fn result_object(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            let mut m = Map::new();
            m.insert("result".into(), Value::String(text.to_string()));
            Value::Object(m)
        }
    }
}

/// All system and developer messages joined (several are kept, never
/// dropped: a decorator's prepended system prompt must survive).
pub fn system_text(messages: &[ChatMessage]) -> Option<String> {
    let parts: Vec<String> = messages
        .iter()
        .filter(|m| m.role == "system" || m.role == "developer")
        .filter_map(|m| m.content.as_ref().map(|c| c.joined_text("\n")))
        .filter(|t| !t.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

pub fn tool_call(id: String, name: String, arguments: String, index: Option<u32>) -> ToolCall {
    ToolCall {
        index,
        id: Some(id),
        kind: Some("function".into()),
        function: FunctionCall { name: Some(name), arguments: Some(arguments) },
    }
}

/// A one-choice `chat.completion` from a native answer's text, tool calls
/// (if any), OpenAI finish reason and usage.
pub fn single_choice(
    id: String,
    created: u64,
    model: String,
    text: String,
    calls: Vec<ToolCall>,
    finish_reason: &str,
    usage: Option<Usage>,
) -> ChatResponse {
    let message = ChatMessage {
        role: "assistant".into(),
        content: Some(Content::Text(text)),
        tool_calls: (!calls.is_empty()).then_some(calls),
        ..Default::default()
    };
    ChatResponse {
        id,
        object: "chat.completion".into(),
        created,
        model,
        choices: vec![ChatChoice { index: 0, message, finish_reason: Some(finish_reason.to_string()) }],
        usage,
    }
}

/// An OpenAI embeddings answer from vectors in input order.
pub fn embeddings(vectors: Vec<Value>, model: &str, prompt_tokens: u64) -> (EmbeddingResponse, Usage) {
    let data = vectors.into_iter().enumerate().map(|(i, e)| Embedding { object: "embedding".into(), embedding: e, index: i as u32 }).collect();
    let usage = Usage { prompt_tokens, total_tokens: prompt_tokens, ..Default::default() };
    (EmbeddingResponse { object: "list".into(), data, model: model.to_string(), usage }, usage)
}

/// A provider's SSE stream as complete events, for the translators.
pub struct SseInput {
    decoder: SseDecoder,
    events: Vec<SseEvent>,
}

impl Default for SseInput {
    fn default() -> Self {
        SseInput { decoder: SseDecoder::new(4 * 1024 * 1024), events: Vec::new() }
    }
}

impl SseInput {
    /// Decodes a chunk and hands each event it completes to `each`, until
    /// `each` returns false (the translated stream is over).
    pub fn feed(&mut self, chunk: &[u8], mut each: impl FnMut(&SseEvent) -> bool) {
        self.decoder.push(chunk, &mut self.events);
        for e in self.events.drain(..) {
            if !each(&e) {
                break;
            }
        }
    }
}

/// Writes OpenAI `chat.completion.chunk` events (or `text_completion`
/// events, for completions routes) for a translated stream.
pub struct ChunkWriter {
    pub id: String,
    pub created: u64,
    pub model: String,
    object: &'static str,
    client_wants_usage: bool,
    sent_role: bool,
    pub usage: Option<Usage>,
    pub finished: bool,
    pub done: bool,
}

impl ChunkWriter {
    pub fn new(id: &str, created: u64, model: &str, client_wants_usage: bool) -> Self {
        ChunkWriter {
            id: format!("chatcmpl-{id}"),
            created,
            model: model.to_string(),
            object: "chat.completion.chunk",
            client_wants_usage,
            sent_role: false,
            usage: None,
            finished: false,
            done: false,
        }
    }

    /// A writer of legacy completions chunks (`text_completion`).
    pub fn text_completion(id: &str, created: u64, model: &str, client_wants_usage: bool) -> Self {
        ChunkWriter { id: format!("cmpl-{id}"), object: "text_completion", ..Self::new(id, created, model, client_wants_usage) }
    }

    /// A completions chunk: text and, on the last, the finish reason.
    pub fn text(&mut self, text: String, finish_reason: Option<String>, out: &mut Vec<u8>) {
        if finish_reason.is_some() {
            self.finished = true;
        }
        let chunk = CompletionResponse {
            id: self.id.clone(),
            object: self.object.into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![CompletionChoice { index: 0, text, finish_reason, logprobs: None }],
            usage: None,
        };
        if let Ok(json) = serde_json::to_string(&chunk) {
            encode_event(None, &json, out);
        }
    }

    /// A chat delta as the provider gave it (content may be empty).
    pub fn delta(&mut self, content: String, tool_calls: Vec<ToolCall>, out: &mut Vec<u8>) {
        let tool_calls = (!tool_calls.is_empty()).then_some(tool_calls);
        self.emit(Delta { content: Some(content), tool_calls, ..Default::default() }, None, out);
    }

    /// Whether the opening chunk (with the role) went out.
    pub fn started(&self) -> bool {
        self.sent_role
    }

    fn emit(&mut self, mut delta: Delta, finish_reason: Option<String>, out: &mut Vec<u8>) {
        if !self.sent_role {
            delta.role = Some("assistant".into());
            self.sent_role = true;
        }
        let chunk = ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice { index: 0, delta, finish_reason }],
            usage: None,
        };
        if let Ok(json) = serde_json::to_string(&chunk) {
            encode_event(None, &json, out);
        }
    }

    /// The opening chunk (role, empty content), if nothing was sent yet.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        if !self.sent_role {
            self.emit(Delta { content: Some(String::new()), ..Default::default() }, None, out);
        }
    }

    pub fn content(&mut self, text: &str, out: &mut Vec<u8>) {
        if !text.is_empty() {
            self.emit(Delta { content: Some(text.to_string()), ..Default::default() }, None, out);
        }
    }

    pub fn tool_call_start(&mut self, index: u32, id: String, name: String, out: &mut Vec<u8>) {
        let call = tool_call(id, name, String::new(), Some(index));
        self.emit(Delta { tool_calls: Some(vec![call]), ..Default::default() }, None, out);
    }

    pub fn tool_call_arguments(&mut self, index: u32, arguments: &str, out: &mut Vec<u8>) {
        if arguments.is_empty() {
            return;
        }
        let call = ToolCall {
            index: Some(index),
            function: FunctionCall { name: None, arguments: Some(arguments.to_string()) },
            ..Default::default()
        };
        self.emit(Delta { tool_calls: Some(vec![call]), ..Default::default() }, None, out);
    }

    pub fn finish(&mut self, reason: &str, out: &mut Vec<u8>) {
        if !self.finished {
            self.finished = true;
            self.emit(Delta::default(), Some(reason.to_string()), out);
        }
    }

    /// Closes the stream: the usage chunk if the client asked, then `[DONE]`.
    pub fn done(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.done = true;
        if let (Some(usage), true) = (self.usage, self.client_wants_usage) {
            let chunk = ChatChunk {
                id: self.id.clone(),
                object: self.object.into(),
                created: self.created,
                model: self.model.clone(),
                choices: vec![],
                usage: Some(usage),
            };
            if let Ok(json) = serde_json::to_string(&chunk) {
                encode_event(None, &json, out);
            }
        }
        encode_event(None, "[DONE]", out);
    }

    /// The upstream ended: if the stream was not closed properly, the client
    /// gets an error event rather than a stream that just stops.
    pub fn end_unfinished(&mut self, out: &mut Vec<u8>) {
        if !self.done {
            self.error("upstream stream ended before it was complete", out);
        }
    }

    /// A provider error mid-stream: one OpenAI-shaped error event, then the
    /// stream is over.
    pub fn error(&mut self, message: &str, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.done = true;
        let body = error_body(message, "upstream_error", None);
        encode_event(None, &String::from_utf8_lossy(&body), out);
    }
}
