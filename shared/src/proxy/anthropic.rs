//! Anthropic's Messages API (`POST /v1/messages`) to and from OpenAI's
//! chat format.
// `serde_json::Value` lookups (`v["key"]`, `v[0]`) return Null when absent and
// never panic; writes only go into objects built in this module.
#![allow(clippy::indexing_slicing)]

use super::options::{is_path_segment, ModelOptions, RouteType};
use super::provider::{Convention, to_vec, Endpoint, Meta, Provider, RequestContext};
use super::response::{translated, Answer};
use crate::config::ConfigError;
use super::common::{field_policy, single_choice, arguments_object, parse_data_url, system_text, tool_call, ChunkWriter, SseInput};
use super::stream::{StreamTranslator, UNREADABLE_EVENT};
use crate::error::GatewayError;
use crate::openai::{
    ChatRequest, ChatResponse, Content, PromptTokensDetails, Usage,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The usual credential (see `registry::convention`).
pub const CREDENTIAL: Convention = Convention::Header { secret: "anthropic", env: "ANTHROPIC_API_KEY", header: "x-api-key", bearer: false };

/// Anthropic requires `max_tokens`; used when neither the request nor the
/// route's `model.options.max_tokens` sets one.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
/// OpenAI fields Anthropic cannot honour (no JSON mode, one answer, no logprobs).
const REFUSED: [&str; 5] = ["logprobs", "top_logprobs", "logit_bias", "n", "response_format"];
/// `user` becomes `metadata.user_id`; `parallel_tool_calls: false` becomes
/// `disable_parallel_tool_use`.
const DROPPED: [&str; 5] = ["seed", "store", "metadata", "service_tier", "reasoning_effort"];

#[derive(Debug, Serialize)]
pub struct MessagesRequest {
    pub model: String,
    pub max_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub messages: Vec<Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

#[derive(Debug, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: Vec<Value>,
}

fn image_block(url: &str) -> Value {
    match parse_data_url(url) {
        Some((mime, data)) => json!({"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}),
        None => json!({"type": "image", "source": {"type": "url", "url": url}}),
    }
}

fn content_blocks(content: &Option<Content>) -> Vec<Value> {
    match content {
        Some(Content::Text(t)) if !t.is_empty() => vec![json!({"type": "text", "text": t})],
        Some(Content::Parts(parts)) => parts
            .iter()
            .filter_map(|p| match (p.text.as_deref(), &p.image_url) {
                (Some(text), _) => Some(json!({"type": "text", "text": text})),
                (None, Some(img)) => Some(image_block(&img.url)),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

pub fn chat_request(req: ChatRequest, stream: bool, default_max_tokens: Option<u64>) -> Result<MessagesRequest, GatewayError> {
    field_policy("anthropic", &req.rest, &REFUSED, &DROPPED)?;
    let system = system_text(&req.messages);
    let mut messages: Vec<Message> = Vec::new();
    for m in &req.messages {
        let (role, blocks) = match m.role.as_str() {
            "system" | "developer" => continue,
            "user" => ("user", content_blocks(&m.content)),
            "assistant" => {
                let mut blocks = content_blocks(&m.content);
                for call in m.tool_calls.iter().flatten() {
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": call.id.clone().unwrap_or_default(),
                        "name": call.function.name.clone().unwrap_or_default(),
                        "input": arguments_object(call)?,
                    }));
                }
                ("assistant", blocks)
            }
            "tool" => {
                let text = m.content.as_ref().map(|c| c.joined_text("\n")).unwrap_or_default();
                let id = m.tool_call_id.clone().unwrap_or_default();
                ("user", vec![json!({"type": "tool_result", "tool_use_id": id, "content": text})])
            }
            other => return Err(GatewayError::bad_request(format!("unknown message role `{other}`"))),
        };
        // Consecutive turns of one role become one message (tool results
        // for parallel calls must share a user turn).
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => messages.push(Message { role, content: blocks }),
        }
    }
    if messages.is_empty() {
        return Err(GatewayError::bad_request("`messages` needs at least one user or assistant message"));
    }
    let tools: Vec<Value> = req
        .tools
        .iter()
        .flatten()
        .map(|t| {
            json!({
                "name": t.function.name,
                "description": t.function.description.clone().unwrap_or_default(),
                "input_schema": t.function.parameters.clone().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            })
        })
        .collect();
    let tool_choice = match &req.tool_choice {
        None => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "required" => Some(json!({"type": "any"})),
            "none" => Some(json!({"type": "none"})),
            other => return Err(GatewayError::bad_request(format!("unknown tool_choice `{other}`"))),
        },
        Some(v) => match v.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
            Some(name) => Some(json!({"type": "tool", "name": name})),
            None => return Err(GatewayError::bad_request("tool_choice must be none, auto, required or a named function")),
        },
    };
    let mut tool_choice = tool_choice.filter(|_| !tools.is_empty());
    if req.rest.get("parallel_tool_calls") == Some(&Value::Bool(false)) && !tools.is_empty() {
        let choice = tool_choice.get_or_insert_with(|| json!({"type": "auto"}));
        if choice["type"] != "none" {
            choice["disable_parallel_tool_use"] = Value::Bool(true);
        }
    }
    let user = req.rest.get("user").and_then(Value::as_str).map(|u| json!({"user_id": u}));
    Ok(MessagesRequest {
        model: req.model.unwrap_or_default(),
        max_tokens: req.max_completion_tokens.or(req.max_tokens).or(default_max_tokens).unwrap_or(DEFAULT_MAX_TOKENS),
        system,
        messages,
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        stop_sequences: req.stop.as_ref().map(|s| s.to_vec()),
        stream,
        tool_choice,
        tools,
        metadata: user,
    })
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct AnthropicUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// OpenAI's prompt tokens count everything read: fresh input plus cache
    /// reads and cache writes.
    pub fn to_openai(self) -> Usage {
        let cache_read = self.cache_read_input_tokens.unwrap_or(0);
        let prompt = self
            .input_tokens
            .saturating_add(cache_read)
            .saturating_add(self.cache_creation_input_tokens.unwrap_or(0));
        let mut usage = Usage::new(prompt, self.output_tokens);
        if self.cache_read_input_tokens.is_some() || self.cache_creation_input_tokens.is_some() {
            usage.prompt_tokens_details = Some(PromptTokensDetails { cached_tokens: cache_read });
        }
        usage
    }
}

pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop", // end_turn, stop_sequence, pause_turn
    }
}

#[derive(Debug, Deserialize)]
struct MessagesResponse {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

pub fn chat_response(body: &[u8], created: u64) -> Result<(ChatResponse, Usage), serde_json::Error> {
    let r: MessagesResponse = serde_json::from_slice(body)?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in &r.content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") => calls.push(tool_call(
                block.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
                block.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
                block.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into()),
                None,
            )),
            _ => {} // thinking blocks are not part of OpenAI's answer
        }
    }
    let usage = r.usage.to_openai();
    let reason = finish_reason(r.stop_reason.as_deref());
    Ok((single_choice(r.id, created, r.model, text, calls, reason, Some(usage)), usage))
}

/// Anthropic's named SSE events to OpenAI chunks.
pub struct AnthropicStream {
    sse: SseInput,
    writer: ChunkWriter,
    input: AnthropicUsage,
    /// Anthropic block index → OpenAI tool-call index.
    tool_blocks: Vec<(u64, u32)>,
    model: Option<String>,
}

impl AnthropicStream {
    pub fn new(id: &str, created: u64, model: &str, client_wants_usage: bool) -> Self {
        AnthropicStream {
            sse: SseInput::default(),
            writer: ChunkWriter::new(id, created, model, client_wants_usage),
            input: AnthropicUsage::default(),
            tool_blocks: Vec::new(),
            model: None,
        }
    }

    fn event(&mut self, name: &str, data: &Value, out: &mut Vec<u8>) {
        match name {
            "message_start" => {
                let message = &data["message"];
                if let Ok(u) = serde_json::from_value::<AnthropicUsage>(message["usage"].clone()) {
                    self.input = u;
                }
                if let Some(m) = message["model"].as_str() {
                    self.model = Some(m.to_string());
                }
                self.writer.start(out);
            }
            "content_block_start" => {
                let block = &data["content_block"];
                if block["type"] == "tool_use" {
                    let index = self.tool_blocks.len() as u32;
                    self.tool_blocks.push((data["index"].as_u64().unwrap_or(0), index));
                    let id = block["id"].as_str().unwrap_or_default().to_string();
                    let name = block["name"].as_str().unwrap_or_default().to_string();
                    self.writer.tool_call_start(index, id, name, out);
                } else if let Some(text) = block["text"].as_str() {
                    self.writer.content(text, out);
                }
            }
            "content_block_delta" => {
                let delta = &data["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => self.writer.content(delta["text"].as_str().unwrap_or_default(), out),
                    Some("input_json_delta") => {
                        let block = data["index"].as_u64().unwrap_or(0);
                        if let Some(&(_, index)) = self.tool_blocks.iter().find(|(b, _)| *b == block) {
                            self.writer.tool_call_arguments(index, delta["partial_json"].as_str().unwrap_or_default(), out);
                        }
                    }
                    _ => {} // thinking and signature deltas
                }
            }
            "message_delta" => {
                if let Ok(u) = serde_json::from_value::<AnthropicUsage>(data["usage"].clone()) {
                    // output_tokens here is cumulative; input counts come from message_start.
                    let mut total = self.input;
                    total.output_tokens = u.output_tokens;
                    if u.input_tokens > 0 {
                        total.input_tokens = u.input_tokens;
                    }
                    self.writer.usage = Some(total.to_openai());
                }
                let reason = finish_reason(data["delta"]["stop_reason"].as_str());
                self.writer.finish(reason, out);
            }
            "message_stop" => {
                self.writer.finish("stop", out);
                self.writer.done(out);
            }
            "error" => {
                let message = data["error"]["message"].as_str().unwrap_or("upstream stream error");
                self.writer.error(message, out);
            }
            _ => {} // ping, content_block_stop
        }
    }
}

impl StreamTranslator for AnthropicStream {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut sse = std::mem::take(&mut self.sse);
        sse.feed(chunk, |e| {
            match serde_json::from_str::<Value>(&e.data) {
                Ok(data) => {
                    let name = e.event.as_deref().or_else(|| data["type"].as_str()).unwrap_or_default().to_string();
                    self.event(&name, &data, out);
                }
                Err(_) => self.writer.error(UNREADABLE_EVENT, out),
            }
            !self.writer.done
        });
        self.sse = sse;
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.push(b"\n\n", out);
        self.writer.end_unfinished(out);
    }

    fn usage(&self) -> Option<Usage> {
        self.writer.usage
    }

    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
}

/// Vertex AI's version of the Messages API body (`rawPredict`).
pub const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// A Messages body as Vertex AI takes it: the model is in the path, the
/// version in the body.
pub fn for_vertex(body: &mut Value) {
    if let Some(obj) = body.as_object_mut() {
        obj.remove("model");
        obj.insert("anthropic_version".into(), VERTEX_ANTHROPIC_VERSION.into());
    }
}

/// Anthropic's Messages API (on api.anthropic.com, or Claude on Vertex AI
/// when `model.options.gemini` names a project and location).
pub struct Anthropic {
    /// The `anthropic-version` header (`model.options.anthropic_version`).
    version: String,
    /// Vertex AI's project and location.
    vertex: Option<(String, String)>,
}

pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

impl Anthropic {
    pub fn configure(options: &ModelOptions) -> Result<Self, ConfigError> {
        let version = options.anthropic_version.clone().unwrap_or_else(|| DEFAULT_ANTHROPIC_VERSION.to_string());
        if !is_path_segment(&version) {
            return Err(ConfigError::new("model.options.anthropic_version", "is not a valid version"));
        }
        Ok(Anthropic { version, vertex: super::gemini::vertex(options)? })
    }
}

impl Provider for Anthropic {
    fn name(&self) -> &'static str {
        "anthropic"
    }
    fn routes(&self) -> &'static [RouteType] {
        &[RouteType::Chat]
    }
    fn path(&self, _: RouteType) -> Option<&'static str> {
        Some("/v1/messages")
    }
    fn endpoint(&self, options: &ModelOptions, route: RouteType) -> Result<Option<Endpoint>, ConfigError> {
        if super::gemini::vertex(options)?.is_some() {
            // Claude on Vertex AI: the path names the model (request_path).
            return Ok(Some(Endpoint { host: super::gemini::api_host(options)?, path: None }));
        }
        Ok(Some(Endpoint { host: "api.anthropic.com".into(), path: self.path(route).map(str::to_string) }))
    }
    fn request_path(&self, _: RouteType, model: &str, stream: bool) -> Result<Option<String>, String> {
        let Some((project, location)) = &self.vertex else { return Ok(None) };
        // Vertex names Claude versions `claude-sonnet-4-5@20250929`.
        if !model.split('@').all(is_path_segment) {
            return Err(format!("model name {model:?} is not valid here"));
        }
        let op = if stream { "streamRawPredict" } else { "rawPredict" };
        Ok(Some(format!("/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{model}:{op}")))
    }
    fn headers(&self, out: &mut Vec<(String, String)>) {
        // Vertex AI takes the version in the body instead.
        if self.vertex.is_none() {
            out.push(("anthropic-version".into(), self.version.clone()));
        }
    }
    fn adapt_native_messages(&self, body: &mut Value) -> bool {
        if self.vertex.is_some() {
            for_vertex(body);
        }
        self.vertex.is_some()
    }
    fn chat_request(&self, req: ChatRequest, cx: &RequestContext) -> Result<Option<Vec<u8>>, GatewayError> {
        let body = chat_request(req, cx.stream, cx.max_tokens)?;
        if self.vertex.is_some() {
            let mut v = serde_json::to_value(&body).map_err(|e| GatewayError::new(crate::ErrorKind::Internal, e.to_string()))?;
            for_vertex(&mut v);
            return to_vec(&v).map(Some);
        }
        to_vec(&body).map(Some)
    }
    fn answer(&self, _: RouteType, body: &[u8], meta: &Meta) -> Answer {
        translated(chat_response(body, meta.created), "anthropic messages")
    }
    fn stream(&self, _: RouteType, meta: &Meta, client_wants_usage: bool) -> Box<dyn StreamTranslator> {
        Box::new(AnthropicStream::new(meta.id, meta.created, meta.model, client_wants_usage))
    }
}
