//! Cohere's Chat API v2 (`POST /v2/chat`) and Embed API v2 (`/v2/embed`).
// `serde_json::Value` lookups (`v["key"]`, `v[0]`) return Null when absent and
// never panic; writes only go into objects built in this module.
#![allow(clippy::indexing_slicing)]

use super::options::{ModelOptions, RouteType};
use super::provider::{Convention, to_vec, Endpoint, Meta, Provider, RequestContext, CHAT_AND_EMBEDDINGS};
use super::response::{translated, Answer};
use crate::config::ConfigError;
use super::common::{field_policy, DROPPED_BY_NATIVE, REFUSED_BY_NATIVE, single_choice, embeddings, tool_call, ChunkWriter, SseInput};
use super::stream::{StreamTranslator, UNREADABLE_EVENT};
use crate::error::GatewayError;
use crate::openai::{
    ChatRequest, ChatResponse, Content, EmbeddingRequest, EmbeddingResponse, Usage,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The usual credential (see `registry::convention`).
pub const CREDENTIAL: Convention = Convention::Header { secret: "cohere", env: "COHERE_API_KEY", header: "Authorization", bearer: true };

#[derive(Debug, Serialize)]
pub struct CohereChatRequest {
    pub model: String,
    pub messages: Vec<Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<&'static str>,
}

fn content(c: &Option<Content>, images: bool) -> Value {
    match c {
        Some(Content::Text(t)) => Value::String(t.clone()),
        Some(Content::Parts(parts)) => Value::Array(
            parts
                .iter()
                .filter_map(|p| match (p.text.as_deref(), &p.image_url) {
                    (Some(text), _) => Some(json!({"type": "text", "text": text})),
                    (None, Some(img)) if images => Some(json!({"type": "image_url", "image_url": {"url": img.url}})),
                    _ => None,
                })
                .collect(),
        ),
        None => Value::String(String::new()),
    }
}

/// OpenAI's `response_format` in Cohere v2's shape.
fn response_format(rest: &crate::openai::Rest) -> Option<Value> {
    let rf = rest.get("response_format")?;
    match rf.get("type")?.as_str()? {
        "json_object" => Some(json!({"type": "json_object"})),
        "json_schema" => Some(json!({"type": "json_object", "json_schema": rf.get("json_schema")?.get("schema")?})),
        _ => None,
    }
}

pub fn chat_request(req: ChatRequest, stream: bool) -> Result<CohereChatRequest, GatewayError> {
    field_policy("cohere", &req.rest, &REFUSED_BY_NATIVE, &DROPPED_BY_NATIVE)?;
    let mut messages = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        messages.push(match m.role.as_str() {
            // Cohere v2 takes several system messages in place.
            "system" | "developer" => json!({"role": "system", "content": content(&m.content, false)}),
            "user" => json!({"role": "user", "content": content(&m.content, true)}),
            "assistant" => {
                let mut msg = json!({"role": "assistant"});
                if let Some(calls) = m.tool_calls.as_ref().filter(|c| !c.is_empty()) {
                    msg["tool_calls"] = json!(calls
                        .iter()
                        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments.clone().unwrap_or_else(|| "{}".into())}}))
                        .collect::<Vec<_>>());
                }
                let text = m.content.as_ref().map(|c| c.joined_text("\n")).unwrap_or_default();
                if !text.is_empty() || msg.get("tool_calls").is_none() {
                    msg["content"] = Value::String(text);
                }
                msg
            }
            "tool" => json!({
                "role": "tool",
                "tool_call_id": m.tool_call_id.clone().unwrap_or_default(),
                "content": m.content.as_ref().map(|c| c.joined_text("\n")).unwrap_or_default(),
            }),
            other => return Err(GatewayError::bad_request(format!("unknown message role `{other}`"))),
        });
    }
    let mut tools: Vec<Value> = req
        .tools
        .iter()
        .flatten()
        .map(|t| json!({"type": "function", "function": {"name": t.function.name, "description": t.function.description.clone().unwrap_or_default(), "parameters": t.function.parameters.clone().unwrap_or_else(|| json!({"type": "object", "properties": {}}))}}))
        .collect();
    let tool_choice = match &req.tool_choice {
        None => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => None,
            "required" => Some("REQUIRED"),
            "none" => Some("NONE"),
            other => return Err(GatewayError::bad_request(format!("unknown tool_choice `{other}`"))),
        },
        // Cohere cannot name one function: offer only that one, and require it.
        Some(v) => match v.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
            Some(name) => {
                tools.retain(|t| t["function"]["name"] == name);
                Some("REQUIRED")
            }
            None => return Err(GatewayError::bad_request("tool_choice must be none, auto, required or a named function")),
        },
    };
    Ok(CohereChatRequest {
        model: req.model.unwrap_or_default(),
        messages,
        stream,
        max_tokens: req.max_completion_tokens.or(req.max_tokens),
        temperature: req.temperature,
        p: req.top_p,
        k: req.top_k,
        stop_sequences: req.stop.as_ref().map(|s| s.to_vec()),
        seed: req.rest.get("seed").cloned(),
        response_format: response_format(&req.rest),
        tool_choice: tool_choice.filter(|_| !tools.is_empty()),
        tools,
    })
}

#[derive(Debug, Default, Deserialize)]
struct Tokens {
    #[serde(default)]
    input_tokens: Option<f64>,
    #[serde(default)]
    output_tokens: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct CohereUsage {
    #[serde(default)]
    billed_units: Option<Tokens>,
    #[serde(default)]
    tokens: Option<Tokens>,
}

/// Cohere reports counted `tokens` and `billed_units`; the counted ones are
/// what the model used, billed ones are the fallback.
fn usage_of(u: &CohereUsage) -> Usage {
    let pick = |f: fn(&Tokens) -> Option<f64>| {
        u.tokens.as_ref().and_then(f).or_else(|| u.billed_units.as_ref().and_then(f)).unwrap_or(0.0).max(0.0) as u64
    };
    Usage::new(pick(|t| t.input_tokens), pick(|t| t.output_tokens))
}

pub fn finish_reason(reason: Option<&str>) -> &'static str {
    match reason {
        Some("MAX_TOKENS") => "length",
        Some("TOOL_CALL") => "tool_calls",
        Some("ERROR_TOXIC") => "content_filter",
        _ => "stop", // COMPLETE, STOP_SEQUENCE, ERROR, TIMEOUT
    }
}

#[derive(Debug, Deserialize)]
struct ChatAnswer {
    #[serde(default)]
    id: String,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    message: Value,
    #[serde(default)]
    usage: CohereUsage,
}

pub fn chat_response(body: &[u8], created: u64, model: &str) -> Result<(ChatResponse, Usage), serde_json::Error> {
    let a: ChatAnswer = serde_json::from_slice(body)?;
    let text: String = a.message["content"]
        .as_array()
        .map(|parts| parts.iter().filter_map(|p| p["text"].as_str()).collect())
        .unwrap_or_default();
    let calls: Vec<_> = a.message["tool_calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|c| {
                    tool_call(
                        c["id"].as_str().unwrap_or_default().to_string(),
                        c["function"]["name"].as_str().unwrap_or_default().to_string(),
                        c["function"]["arguments"].as_str().unwrap_or("{}").to_string(),
                        None,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let usage = usage_of(&a.usage);
    let reason = finish_reason(a.finish_reason.as_deref());
    Ok((single_choice(a.id, created, model.to_string(), text, calls, reason, Some(usage)), usage))
}

pub fn embed_request(req: &EmbeddingRequest) -> Value {
    let texts: Vec<Value> = match &req.input {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let input_type = req.rest.get("input_type").cloned().unwrap_or_else(|| json!("search_document"));
    json!({"model": req.model, "texts": texts, "input_type": input_type, "embedding_types": ["float"]})
}

pub fn embed_response(body: &[u8], model: &str) -> Result<(EmbeddingResponse, Usage), serde_json::Error> {
    #[derive(Deserialize)]
    struct Answer {
        embeddings: Value,
        #[serde(default)]
        meta: Value,
    }
    let a: Answer = serde_json::from_slice(body)?;
    // v2 answers {"float": [[..]]}; v1 a bare list.
    let vectors = a.embeddings.get("float").cloned().unwrap_or(a.embeddings);
    let tokens = a.meta["billed_units"]["input_tokens"].as_f64().unwrap_or(0.0).max(0.0) as u64;
    Ok(embeddings(vectors.as_array().cloned().unwrap_or_default(), model, tokens))
}

/// Cohere v2 stream events (`message-start`, `content-delta`,
/// `tool-call-start`, `message-end`, ...) to OpenAI chunks.
pub struct CohereStream {
    sse: SseInput,
    writer: ChunkWriter,
    tool_calls: u32,
}

impl CohereStream {
    pub fn new(id: &str, created: u64, model: &str, client_wants_usage: bool) -> Self {
        CohereStream {
            sse: SseInput::default(),
            writer: ChunkWriter::new(id, created, model, client_wants_usage),
            tool_calls: 0,
        }
    }

    fn event(&mut self, data: &Value, out: &mut Vec<u8>) {
        let delta = &data["delta"]["message"];
        match data["type"].as_str().unwrap_or_default() {
            "message-start" => self.writer.start(out),
            "content-delta" => self.writer.content(delta["content"]["text"].as_str().unwrap_or_default(), out),
            "tool-call-start" => {
                let call = &delta["tool_calls"];
                let index = self.tool_calls;
                self.tool_calls = self.tool_calls.saturating_add(1);
                self.writer.tool_call_start(
                    index,
                    call["id"].as_str().unwrap_or_default().to_string(),
                    call["function"]["name"].as_str().unwrap_or_default().to_string(),
                    out,
                );
                self.writer.tool_call_arguments(index, call["function"]["arguments"].as_str().unwrap_or_default(), out);
            }
            "tool-call-delta" => {
                let index = self.tool_calls.saturating_sub(1);
                self.writer.tool_call_arguments(index, delta["tool_calls"]["function"]["arguments"].as_str().unwrap_or_default(), out);
            }
            "message-end" => {
                let end = &data["delta"];
                if let Ok(u) = serde_json::from_value::<CohereUsage>(end["usage"].clone()) {
                    self.writer.usage = Some(usage_of(&u));
                }
                self.writer.finish(finish_reason(end["finish_reason"].as_str()), out);
                self.writer.done(out);
            }
            _ => {} // content-start/end, tool-plan-delta, tool-call-end, citations
        }
    }
}

impl StreamTranslator for CohereStream {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut sse = std::mem::take(&mut self.sse);
        sse.feed(chunk, |e| {
            match serde_json::from_str::<Value>(&e.data) {
                Ok(data) => self.event(&data, out),
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
        None
    }
}

/// Cohere's v2 API.
pub struct Cohere;

impl Provider for Cohere {
    fn name(&self) -> &'static str {
        "cohere"
    }
    fn routes(&self) -> &'static [RouteType] {
        CHAT_AND_EMBEDDINGS
    }
    fn path(&self, route: RouteType) -> Option<&'static str> {
        Some(if route == RouteType::Embeddings { "/v2/embed" } else { "/v2/chat" })
    }
    fn endpoint(&self, _: &ModelOptions, route: RouteType) -> Result<Option<Endpoint>, ConfigError> {
        Ok(Some(Endpoint { host: "api.cohere.com".into(), path: self.path(route).map(str::to_string) }))
    }
    fn chat_request(&self, req: ChatRequest, cx: &RequestContext) -> Result<Option<Vec<u8>>, GatewayError> {
        to_vec(&chat_request(req, cx.stream)?).map(Some)
    }
    fn embeddings_request(&self, req: EmbeddingRequest, _: &RequestContext) -> Result<Option<Vec<u8>>, GatewayError> {
        to_vec(&embed_request(&req)).map(Some)
    }
    fn answer(&self, route: RouteType, body: &[u8], meta: &Meta) -> Answer {
        match route {
            RouteType::Embeddings => translated(embed_response(body, meta.model), "cohere embed"),
            _ => translated(chat_response(body, meta.created, meta.model), "cohere chat"),
        }
    }
    fn stream(&self, _: RouteType, meta: &Meta, client_wants_usage: bool) -> Box<dyn StreamTranslator> {
        Box::new(CohereStream::new(meta.id, meta.created, meta.model, client_wants_usage))
    }
}
