//! Ollama's native API (`/api/chat`, `/api/generate`, `/api/embed`):
//! wire types and translation to and from OpenAI's format.

use super::common::{field_policy, ChunkWriter, DROPPED_BY_NATIVE, REFUSED_BY_NATIVE};
use super::options::RouteType;
use super::provider::{to_vec, Meta, Provider, RequestContext, StreamFraming};
use super::response::{translated, Answer};
use super::stream::{StreamTranslator, UNREADABLE_EVENT};
use crate::error::GatewayError;
use crate::sse::LineDecoder;
use crate::openai::{
    ChatMessage, ChatRequest, ChatResponse, CompletionChoice, CompletionRequest, CompletionResponse,
    Content, EmbeddingRequest, EmbeddingResponse, FunctionCall, Rest, Tool, ToolCall, Usage,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Serialize)]
pub struct ChatRequestOut {
    pub model: String,
    pub messages: Vec<MessageOut>,
    /// Always explicit: Ollama streams unless told otherwise.
    pub stream: bool,
    #[serde(skip_serializing_if = "Options::is_empty")]
    pub options: Options,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<Value>,
}

#[derive(Debug, Serialize)]
pub struct MessageOut {
    pub role: String,
    pub content: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<OllamaToolCall>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OllamaToolCall {
    pub function: OllamaFunction,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OllamaFunction {
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

#[derive(Debug, Default, Serialize)]
pub struct Options {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_predict: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<Value>,
}

impl Options {
    fn is_empty(&self) -> bool {
        self.temperature.is_none()
            && self.top_p.is_none()
            && self.top_k.is_none()
            && self.num_predict.is_none()
            && self.stop.is_none()
            && self.seed.is_none()
    }
}

#[derive(Debug, Serialize)]
pub struct GenerateRequestOut {
    pub model: String,
    pub prompt: String,
    pub stream: bool,
    #[serde(skip_serializing_if = "Options::is_empty")]
    pub options: Options,
}

#[derive(Debug, Serialize)]
pub struct EmbedRequestOut {
    pub model: String,
    pub input: Value,
}

/// Ollama accepts base64 images only: a `data:` URL is unwrapped, a remote
/// URL is refused rather than silently dropped.
fn image_data(url: &str) -> Result<String, GatewayError> {
    match url.strip_prefix("data:").and_then(|rest| rest.split_once(";base64,")) {
        Some((_, data)) => Ok(data.to_string()),
        None => Err(GatewayError::new(
            crate::error::ErrorKind::Unprocessable,
            "ollama accepts images as base64 data: URLs only",
        )),
    }
}

fn message_out(m: ChatMessage) -> Result<MessageOut, GatewayError> {
    let mut images = Vec::new();
    let content = match &m.content {
        Some(Content::Parts(parts)) => {
            for part in parts {
                if let Some(img) = &part.image_url {
                    images.push(image_data(&img.url)?);
                }
            }
            m.content.as_ref().map(|c| c.joined_text("\n")).unwrap_or_default()
        }
        Some(Content::Text(t)) => t.clone(),
        None => String::new(),
    };
    let mut tool_calls = Vec::new();
    for call in m.tool_calls.unwrap_or_default() {
        let args = call.function.arguments.as_deref().unwrap_or("{}");
        let arguments: Value = serde_json::from_str(args)
            .map_err(|_| GatewayError::bad_request("tool call `arguments` must be a JSON object"))?;
        tool_calls.push(OllamaToolCall {
            function: OllamaFunction { name: call.function.name.unwrap_or_default(), arguments },
        });
    }
    // OpenAI's `developer` role is a system message to every other server.
    let role = if m.role == "developer" { "system".to_string() } else { m.role };
    Ok(MessageOut { role, content, images, tool_calls })
}

fn format_of(rest: &Rest) -> Option<Value> {
    let rf = rest.get("response_format")?;
    match rf.get("type")?.as_str()? {
        "json_object" => Some(Value::String("json".into())),
        "json_schema" => rf.get("json_schema")?.get("schema").cloned(),
        _ => None,
    }
}

pub fn chat_request(req: ChatRequest, stream: bool) -> Result<ChatRequestOut, GatewayError> {
    field_policy("ollama", &req.rest, &REFUSED_BY_NATIVE, &DROPPED_BY_NATIVE)?;
    let options = Options {
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        num_predict: req.max_completion_tokens.or(req.max_tokens),
        stop: req.stop.as_ref().map(|s| s.to_vec()),
        seed: req.rest.get("seed").cloned(),
    };
    let format = format_of(&req.rest);
    let messages = req.messages.into_iter().map(message_out).collect::<Result<Vec<_>, _>>()?;
    Ok(ChatRequestOut {
        model: req.model.unwrap_or_default(),
        messages,
        stream,
        options,
        tools: req.tools,
        format,
    })
}

pub fn generate_request(req: CompletionRequest, stream: bool) -> Result<GenerateRequestOut, GatewayError> {
    let prompt = match &req.prompt {
        crate::openai::Prompt::Text(t) => t.clone(),
        crate::openai::Prompt::Texts(ts) if ts.len() == 1 => ts.first().cloned().unwrap_or_default(),
        _ => {
            return Err(GatewayError::new(
                crate::error::ErrorKind::Unprocessable,
                "ollama completions take a single string `prompt`",
            ))
        }
    };
    Ok(GenerateRequestOut {
        model: req.model.unwrap_or_default(),
        prompt,
        stream,
        options: Options {
            temperature: req.temperature,
            top_p: req.top_p,
            top_k: req.top_k,
            num_predict: req.max_tokens,
            stop: req.stop.as_ref().map(|s| s.to_vec()),
            seed: req.rest.get("seed").cloned(),
        },
    })
}

pub fn embed_request(req: EmbeddingRequest) -> EmbedRequestOut {
    EmbedRequestOut { model: req.model.unwrap_or_default(), input: req.input }
}

/// One `/api/chat` or `/api/generate` answer, whole or one NDJSON line.
#[derive(Debug, Default, Deserialize)]
pub struct ChatAnswer {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub message: Option<AnswerMessage>,
    /// `/api/generate` puts the text here.
    #[serde(default)]
    pub response: Option<String>,
    #[serde(default)]
    pub done: bool,
    #[serde(default)]
    pub done_reason: Option<String>,
    #[serde(default)]
    pub prompt_eval_count: Option<u64>,
    #[serde(default)]
    pub eval_count: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AnswerMessage {
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub tool_calls: Vec<OllamaToolCall>,
}

impl ChatAnswer {
    pub fn usage(&self) -> Option<Usage> {
        if self.prompt_eval_count.is_none() && self.eval_count.is_none() {
            return None;
        }
        Some(Usage::new(self.prompt_eval_count.unwrap_or(0), self.eval_count.unwrap_or(0)))
    }

    pub fn finish_reason(&self) -> String {
        let has_tools = self.message.as_ref().is_some_and(|m| !m.tool_calls.is_empty());
        finish_reason(self.done_reason.as_deref(), has_tools).to_string()
    }
}

/// Ollama's `done_reason` in OpenAI's vocabulary.
pub fn finish_reason(done_reason: Option<&str>, has_tool_calls: bool) -> &'static str {
    if has_tool_calls {
        return "tool_calls";
    }
    match done_reason {
        Some("length") => "length",
        _ => "stop",
    }
}

/// Ollama tool calls in OpenAI's shape; Ollama gives no ids, so stable ones
/// are made from the response id and position.
pub fn tool_calls_out(calls: &[OllamaToolCall], id_prefix: &str, with_index: bool) -> Vec<ToolCall> {
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| ToolCall {
            index: with_index.then_some(i as u32),
            id: Some(format!("call_{id_prefix}_{i}")),
            kind: Some("function".into()),
            function: FunctionCall {
                name: Some(c.function.name.clone()),
                arguments: Some(match &c.function.arguments {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
            },
        })
        .collect()
}

pub fn chat_response(body: &[u8], meta: &Meta) -> Result<(ChatResponse, Option<Usage>), serde_json::Error> {
    let a: ChatAnswer = serde_json::from_slice(body)?;
    let usage = a.usage();
    let finish_reason = a.finish_reason();
    let message = a.message.unwrap_or_default();
    let tool_calls = tool_calls_out(&message.tool_calls, meta.id, false);
    let model = a.model.unwrap_or_else(|| meta.model.to_string());
    let response = super::common::single_choice(
        format!("chatcmpl-{}", meta.id),
        meta.created,
        model,
        message.content,
        tool_calls,
        &finish_reason,
        usage,
    );
    Ok((response, usage))
}

pub fn generate_response(body: &[u8], meta: &Meta) -> Result<(CompletionResponse, Option<Usage>), serde_json::Error> {
    let a: ChatAnswer = serde_json::from_slice(body)?;
    let usage = a.usage();
    let response = CompletionResponse {
        id: format!("cmpl-{}", meta.id),
        object: "text_completion".into(),
        created: meta.created,
        model: a.model.clone().unwrap_or_else(|| meta.model.to_string()),
        choices: vec![CompletionChoice {
            index: 0,
            text: a.response.clone().unwrap_or_default(),
            finish_reason: Some(a.finish_reason()),
            logprobs: None,
        }],
        usage,
    };
    Ok((response, usage))
}

#[derive(Debug, Deserialize)]
struct EmbedAnswer {
    #[serde(default)]
    model: Option<String>,
    embeddings: Vec<Value>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
}

pub fn embed_response(body: &[u8], meta: &Meta) -> Result<(EmbeddingResponse, Option<Usage>), serde_json::Error> {
    let a: EmbedAnswer = serde_json::from_slice(body)?;
    let model = a.model.unwrap_or_else(|| meta.model.to_string());
    let (response, usage) = super::common::embeddings(a.embeddings, &model, a.prompt_eval_count.unwrap_or(0));
    Ok((response, Some(usage)))
}

/// Ollama's native API (and `mistral`/`llama2` hosts with `*_format: ollama`).
pub struct Ollama;

impl Provider for Ollama {
    fn name(&self) -> &'static str {
        "ollama"
    }
    fn path(&self, route: RouteType) -> Option<&'static str> {
        match route {
            RouteType::Chat => Some("/api/chat"),
            RouteType::Completions => Some("/api/generate"),
            RouteType::Embeddings => Some("/api/embed"),
            RouteType::Responses | RouteType::Preserve => None,
        }
    }
    fn chat_request(&self, req: ChatRequest, cx: &RequestContext) -> Result<Option<Vec<u8>>, GatewayError> {
        to_vec(&chat_request(req, cx.stream)?).map(Some)
    }
    fn completions_request(&self, req: CompletionRequest, cx: &RequestContext) -> Result<Option<Vec<u8>>, GatewayError> {
        to_vec(&generate_request(req, cx.stream)?).map(Some)
    }
    fn embeddings_request(&self, req: EmbeddingRequest, _: &RequestContext) -> Result<Option<Vec<u8>>, GatewayError> {
        to_vec(&embed_request(req)).map(Some)
    }
    fn stream_framing(&self) -> StreamFraming {
        StreamFraming::Ndjson
    }
    fn answer(&self, route: RouteType, body: &[u8], meta: &Meta) -> Answer {
        match route {
            RouteType::Completions => translated(generate_response(body, meta), "ollama generate"),
            RouteType::Embeddings => translated(embed_response(body, meta), "ollama embed"),
            _ => translated(chat_response(body, meta), "ollama chat"),
        }
    }
    fn stream(&self, route: RouteType, meta: &Meta, client_wants_usage: bool) -> Box<dyn StreamTranslator> {
        Box::new(OllamaStream::new(route, meta, client_wants_usage))
    }
}

/// Ollama's NDJSON stream, as OpenAI SSE chunks.
pub struct OllamaStream {
    lines: LineDecoder,
    scratch: Vec<Vec<u8>>,
    /// The request id, for tool-call ids.
    id: String,
    writer: ChunkWriter,
    chat: bool,
    tool_calls: u32,
}

impl OllamaStream {
    pub fn new(route: RouteType, meta: &Meta, client_wants_usage: bool) -> Self {
        let chat = route != RouteType::Completions;
        let writer = if chat {
            ChunkWriter::new(meta.id, meta.created, meta.model, client_wants_usage)
        } else {
            ChunkWriter::text_completion(meta.id, meta.created, meta.model, client_wants_usage)
        };
        OllamaStream { lines: LineDecoder::default(), scratch: Vec::new(), id: meta.id.to_string(), writer, chat, tool_calls: 0 }
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        if self.writer.done {
            return;
        }
        let answer: ChatAnswer = match serde_json::from_slice(line) {
            Ok(a) => a,
            Err(_) => return self.writer.error(UNREADABLE_EVENT, out),
        };
        if let Some(message) = &answer.error {
            return self.writer.error(message, out);
        }
        if let Some(model) = answer.model.as_ref().filter(|m| **m != self.writer.model) {
            self.writer.model = model.clone();
        }
        if self.chat {
            let message = answer.message.as_ref();
            let content = message.map(|m| m.content.clone()).unwrap_or_default();
            let calls = message.map(|m| m.tool_calls.as_slice()).unwrap_or_default();
            let mut tool_calls = tool_calls_out(calls, &self.id, true);
            for call in &mut tool_calls {
                // Indexes count across the whole stream, not per line.
                call.index = Some(self.tool_calls);
                call.id = Some(format!("call_{}_{}", self.id, self.tool_calls));
                self.tool_calls = self.tool_calls.saturating_add(1);
            }
            if !content.is_empty() || !tool_calls.is_empty() || !self.writer.started() {
                self.writer.delta(content, tool_calls, out);
            }
            if answer.done {
                self.writer.finish(finish_reason(answer.done_reason.as_deref(), self.tool_calls > 0), out);
            }
        } else {
            let text = answer.response.clone().unwrap_or_default();
            let reason = answer.done.then(|| finish_reason(answer.done_reason.as_deref(), false).to_string());
            if !text.is_empty() || reason.is_some() {
                self.writer.text(text, reason, out);
            }
        }
        if answer.done {
            self.writer.usage = answer.usage();
            self.writer.done(out);
        }
    }
}

impl StreamTranslator for OllamaStream {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut lines = std::mem::take(&mut self.scratch);
        self.lines.push(chunk, &mut lines);
        for line in lines.drain(..) {
            self.line(&line, out);
        }
        self.scratch = lines;
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        let mut lines = Vec::new();
        self.lines.finish(&mut lines);
        for line in lines {
            self.line(&line, out);
        }
        self.writer.end_unfinished(out);
    }

    fn usage(&self) -> Option<Usage> {
        self.writer.usage
    }

    fn model(&self) -> Option<&str> {
        Some(&self.writer.model)
    }
}

#[cfg(test)]
mod tests {
    // The same tests run natively and, through wasm-bindgen-test, as wasm32.
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;
    use crate::proxy::stream::testing::{events, run};

    #[test]
    fn chat_request_maps_options_images_and_tools() {
        let req: ChatRequest = serde_json::from_str(r#"{
            "model":"llama3","max_tokens":50,"temperature":0.1,"stop":"END","seed":3,
            "response_format":{"type":"json_object"},
            "messages":[
              {"role":"developer","content":"be brief"},
              {"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBOR"}}]},
              {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
              {"role":"tool","tool_call_id":"c1","content":"42"}]}"#).unwrap();
        let out = serde_json::to_value(chat_request(req, false).unwrap()).unwrap();
        assert_eq!(out["stream"], false);
        assert_eq!(out["options"], serde_json::json!({"temperature":0.1,"num_predict":50,"stop":["END"],"seed":3}));
        assert_eq!(out["format"], "json");
        assert_eq!(out["messages"][0]["role"], "system");
        assert_eq!(out["messages"][1]["images"][0], "iVBOR");
        assert_eq!(out["messages"][2]["tool_calls"][0]["function"]["arguments"]["a"], 1);
        assert_eq!(out["messages"][3]["content"], "42");
    }

    #[test]
    fn remote_images_are_refused() {
        let req: ChatRequest = serde_json::from_str(r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#).unwrap();
        assert_eq!(chat_request(req, false).err().map(|e| e.status), Some(422));
    }

    #[test]
    fn chat_response_maps_usage_and_reason() {
        let body = br#"{"model":"llama3","created_at":"2024-01-01T00:00:00Z","message":{"role":"assistant","content":"Hi"},"done":true,"done_reason":"length","prompt_eval_count":26,"eval_count":298}"#;
        let (r, usage) = chat_response(body, &Meta { id: "x1", created: 5, model: "m" }).unwrap();
        assert_eq!(usage, Some(Usage::new(26, 298)));
        assert_eq!(r.choices[0].finish_reason.as_deref(), Some("length"));
        assert_eq!(r.id, "chatcmpl-x1");
    }

    #[test]
    fn tool_calls_get_ids_and_string_arguments() {
        let body = br#"{"model":"llama3","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Paris"}}}]},"done":true,"done_reason":"stop"}"#;
        let (r, _) = chat_response(body, &Meta { id: "r9", created: 5, model: "m" }).unwrap();
        let call = &r.choices[0].message.tool_calls.as_ref().unwrap()[0];
        assert_eq!(call.id.as_deref(), Some("call_r9_0"));
        assert_eq!(call.function.arguments.as_deref(), Some(r#"{"city":"Paris"}"#));
        assert_eq!(r.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn embed_response_maps_vectors() {
        let body = br#"{"model":"all-minilm","embeddings":[[0.1,0.2],[0.3,0.4]],"prompt_eval_count":8}"#;
        let (r, usage) = embed_response(body, &Meta { id: "e", created: 0, model: "m" }).unwrap();
        assert_eq!(r.data.len(), 2);
        assert_eq!(r.data[1].index, 1);
        assert_eq!(usage.map(|u| u.prompt_tokens), Some(8));
    }

    const OLLAMA_STREAM: &str = "{\"model\":\"llama3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"The\"},\"done\":false}\n\
{\"model\":\"llama3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\" sky\"},\"done\":false}\n\
{\"model\":\"llama3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"total_duration\":1,\"prompt_eval_count\":26,\"eval_count\":2}\n";

    #[test]
    fn ollama_stream_becomes_openai_chunks_at_any_split() {
        let input = OLLAMA_STREAM.as_bytes();
        let mut reference = None;
        for at in 0..=input.len() {
            let mut t = OllamaStream::new(RouteType::Chat, &Meta { id: "abc", created: 7, model: "llama3" }, true);
            let out = run(&mut t, input, &[at]);
            assert_eq!(t.usage(), Some(Usage::new(26, 2)));
            let data = events(&out);
            if let Some(r) = &reference {
                assert_eq!(&data, r, "split at {at}");
            }
            reference.get_or_insert(data);
        }
        let data = reference.unwrap_or_default();
        assert_eq!(data.len(), 5, "{data:?}");
        let first: serde_json::Value = serde_json::from_str(&data[0]).unwrap();
        assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(first["choices"][0]["delta"]["content"], "The");
        let finish: serde_json::Value = serde_json::from_str(&data[2]).unwrap();
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        let usage: serde_json::Value = serde_json::from_str(&data[3]).unwrap();
        assert_eq!(usage["usage"]["total_tokens"], 28);
        assert_eq!(data[4], "[DONE]");
    }

    #[test]
    fn ollama_error_line_becomes_error_event() {
        let mut t = OllamaStream::new(RouteType::Chat, &Meta { id: "abc", created: 7, model: "llama3" }, false);
        let out = run(&mut t, b"{\"error\":\"model not loaded\"}\n", &[]);
        let data = events(&out);
        assert_eq!(data.len(), 1);
        assert!(data[0].contains("model not loaded"));
    }
}
