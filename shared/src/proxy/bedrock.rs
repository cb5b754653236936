//! AWS Bedrock: Converse / ConverseStream for chat, InvokeModel for Titan
//! and Cohere embeddings.
// `serde_json::Value` lookups (`v["key"]`, `v[0]`) return Null when absent and
// never panic; writes only go into objects built in this module.
#![allow(clippy::indexing_slicing)]

use super::options::{encode_query, is_path_segment, AuthConfig, ModelOptions, RouteType};
use super::sigv4::AwsAuth;
use super::provider::{Convention, to_vec, Endpoint, Meta, Provider, RequestContext, Secret, SignedRequest, StreamFraming, CHAT_AND_EMBEDDINGS};
use super::response::{translated, Answer};
use crate::config::ConfigError;
use super::common::{field_policy, single_choice, arguments_object, embeddings, parse_data_url, system_text, tool_call, unprocessable, ChunkWriter};
use super::eventstream::{Decoder, Frame};
use super::stream::{StreamTranslator, UNREADABLE_EVENT};
use crate::error::GatewayError;
use crate::openai::{
    ChatRequest, ChatResponse, Content, EmbeddingRequest, EmbeddingResponse, PromptTokensDetails,
    Usage,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The usual credential (see `registry::convention`).
pub const CREDENTIAL: Convention = Convention::Aws;

fn image_block(url: &str) -> Result<Value, GatewayError> {
    let (mime, data) =
        parse_data_url(url).ok_or_else(|| unprocessable("bedrock accepts images as base64 data: URLs only"))?;
    let format = match mime {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => return Err(unprocessable(format!("bedrock does not take {other} images"))),
    };
    Ok(json!({"image": {"format": format, "source": {"bytes": data}}}))
}

fn blocks(content: &Option<Content>) -> Result<Vec<Value>, GatewayError> {
    match content {
        Some(Content::Text(t)) if !t.is_empty() => Ok(vec![json!({"text": t})]),
        Some(Content::Parts(parts)) => parts
            .iter()
            .filter_map(|p| match (p.text.as_deref(), &p.image_url) {
                (Some(text), _) => Some(Ok(json!({"text": text}))),
                (None, Some(img)) => Some(image_block(&img.url)),
                _ => None,
            })
            .collect(),
        _ => Ok(vec![]),
    }
}

/// Converse has no JSON mode, one answer, no logprobs, no seed.
const REFUSED: [&str; 5] = ["logprobs", "top_logprobs", "logit_bias", "n", "response_format"];
const DROPPED: [&str; 7] = ["user", "store", "metadata", "service_tier", "reasoning_effort", "parallel_tool_calls", "seed"];

/// The Converse request body (the model id goes in the path).
pub fn chat_request(req: &ChatRequest) -> Result<Value, GatewayError> {
    field_policy("bedrock", &req.rest, &REFUSED, &DROPPED)?;
    let mut messages: Vec<Value> = Vec::new();
    let mut has_tool_blocks = false;
    for m in &req.messages {
        let (role, content) = match m.role.as_str() {
            "system" | "developer" => continue,
            "user" => ("user", blocks(&m.content)?),
            "assistant" => {
                let mut content = blocks(&m.content)?;
                for call in m.tool_calls.iter().flatten() {
                    has_tool_blocks = true;
                    content.push(json!({"toolUse": {
                        "toolUseId": call.id.clone().unwrap_or_default(),
                        "name": call.function.name.clone().unwrap_or_default(),
                        "input": arguments_object(call)?,
                    }}));
                }
                ("assistant", content)
            }
            "tool" => {
                has_tool_blocks = true;
                let text = m.content.as_ref().map(|c| c.joined_text("\n")).unwrap_or_default();
                ("user", vec![json!({"toolResult": {"toolUseId": m.tool_call_id.clone().unwrap_or_default(), "content": [{"text": text}]}})])
            }
            other => return Err(GatewayError::bad_request(format!("unknown message role `{other}`"))),
        };
        match messages.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(existing) = last["content"].as_array_mut() {
                    existing.extend(content);
                }
            }
            _ => messages.push(json!({"role": role, "content": content})),
        }
    }
    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(messages));
    if let Some(system) = system_text(&req.messages) {
        body.insert("system".into(), json!([{"text": system}]));
    }
    let mut inference = Map::new();
    if let Some(n) = req.max_completion_tokens.or(req.max_tokens) {
        inference.insert("maxTokens".into(), json!(n));
    }
    if let Some(t) = req.temperature {
        inference.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        inference.insert("topP".into(), json!(p));
    }
    if let Some(stop) = &req.stop {
        inference.insert("stopSequences".into(), json!(stop.to_vec()));
    }
    if !inference.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if let Some(k) = req.top_k {
        body.insert("additionalModelRequestFields".into(), json!({"top_k": k}));
    }
    let tools: Vec<Value> = req
        .tools
        .iter()
        .flatten()
        .map(|t| json!({"toolSpec": {
            "name": t.function.name,
            "description": t.function.description.clone().unwrap_or_default(),
            "inputSchema": {"json": t.function.parameters.clone().unwrap_or_else(|| json!({"type": "object", "properties": {}}))},
        }}))
        .collect();
    let choice = match &req.tool_choice {
        None => Some(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(Some(json!({"auto": {}}))),
            "required" => Some(Some(json!({"any": {}}))),
            // Bedrock has no "none": offer no tools, unless the history
            // holds tool blocks (which need a toolConfig).
            "none" => if has_tool_blocks { Some(Some(json!({"auto": {}}))) } else { None },
            other => return Err(GatewayError::bad_request(format!("unknown tool_choice `{other}`"))),
        },
        Some(v) => match v.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
            Some(name) => Some(Some(json!({"tool": {"name": name}}))),
            None => return Err(GatewayError::bad_request("tool_choice must be none, auto, required or a named function")),
        },
    };
    if let (false, Some(choice)) = (tools.is_empty(), choice) {
        let mut config = json!({"tools": tools});
        if let Some(c) = choice {
            config["toolChoice"] = c;
        }
        body.insert("toolConfig".into(), config);
    }
    Ok(Value::Object(body))
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BedrockUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_write_input_tokens: Option<u64>,
}

impl BedrockUsage {
    pub fn to_openai(self) -> Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let prompt = self.input_tokens.saturating_add(read).saturating_add(self.cache_write_input_tokens.unwrap_or(0));
        let mut u = Usage::new(prompt, self.output_tokens);
        if self.cache_read_input_tokens.is_some() || self.cache_write_input_tokens.is_some() {
            u.prompt_tokens_details = Some(PromptTokensDetails { cached_tokens: read });
        }
        u
    }
}

pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("guardrail_intervened") | Some("content_filtered") => "content_filter",
        _ => "stop",
    }
}

pub fn chat_response(body: &[u8], id: &str, created: u64, model: &str) -> Result<(ChatResponse, Usage), serde_json::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Answer {
        output: Value,
        #[serde(default)]
        stop_reason: Option<String>,
        #[serde(default)]
        usage: BedrockUsage,
    }
    let a: Answer = serde_json::from_slice(body)?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in a.output["message"]["content"].as_array().into_iter().flatten() {
        if let Some(t) = block["text"].as_str() {
            text.push_str(t);
        }
        if let Some(tool) = block.get("toolUse") {
            calls.push(tool_call(
                tool["toolUseId"].as_str().unwrap_or_default().to_string(),
                tool["name"].as_str().unwrap_or_default().to_string(),
                tool.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into()),
                None,
            ));
        }
    }
    let usage = a.usage.to_openai();
    let reason = finish_reason(a.stop_reason.as_deref());
    Ok((single_choice(format!("chatcmpl-{id}"), created, model.to_string(), text, calls, reason, Some(usage)), usage))
}

fn is_titan(model: &str) -> bool {
    model.contains("titan-embed")
}

pub fn embed_request(req: &EmbeddingRequest, model: &str) -> Result<Value, GatewayError> {
    let texts: Vec<Value> = match &req.input {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    if is_titan(model) {
        match texts.as_slice() {
            [one] => Ok(json!({"inputText": one})),
            _ => Err(unprocessable("Titan embeddings take one input per request")),
        }
    } else if model.contains("cohere.embed") {
        Ok(json!({"texts": texts, "input_type": req.rest.get("input_type").cloned().unwrap_or_else(|| json!("search_document"))}))
    } else {
        Err(unprocessable(format!("embeddings through bedrock support Titan and Cohere models, not {model}")))
    }
}

pub fn embed_response(body: &[u8], model: &str) -> Result<(EmbeddingResponse, Usage), serde_json::Error> {
    let v: Value = serde_json::from_slice(body)?;
    let (vectors, tokens) = if let Some(e) = v.get("embedding") {
        (vec![e.clone()], v["inputTextTokenCount"].as_u64().unwrap_or(0))
    } else if let Some(list) = v["embeddings"].as_array() {
        (list.clone(), 0) // Cohere on Bedrock reports no token count
    } else {
        return Err(serde::de::Error::custom("no embeddings in answer"));
    };
    Ok(embeddings(vectors, model, tokens))
}

/// ConverseStream's binary frames to OpenAI chunks.
pub struct BedrockStream {
    decoder: Decoder,
    frames: Vec<Frame>,
    writer: ChunkWriter,
    /// Bedrock content block index → OpenAI tool-call index.
    tool_blocks: Vec<(u64, u32)>,
}

impl BedrockStream {
    pub fn new(id: &str, created: u64, model: &str, client_wants_usage: bool) -> Self {
        BedrockStream { decoder: Decoder::default(), frames: Vec::new(), writer: ChunkWriter::new(id, created, model, client_wants_usage), tool_blocks: Vec::new() }
    }

    fn frame(&mut self, frame: &Frame, out: &mut Vec<u8>) {
        let parsed = serde_json::from_slice::<Value>(&frame.payload);
        let is_event = !matches!(frame.header(":message-type"), Some("exception" | "error"));
        let data = match parsed {
            Ok(data) => data,
            Err(_) if is_event => return self.writer.error(UNREADABLE_EVENT, out),
            Err(_) => Value::Null, // the headers still name the error
        };
        if !is_event {
            let kind = frame.header(":exception-type").or(frame.header(":error-code")).unwrap_or("error");
            let message = data["message"].as_str().or(frame.header(":error-message")).unwrap_or("upstream stream error");
            return self.writer.error(&format!("{kind}: {message}"), out);
        }
        match frame.header(":event-type").unwrap_or_default() {
            "messageStart" => self.writer.start(out),
            "contentBlockStart" => {
                if let Some(tool) = data["start"].get("toolUse") {
                    let index = self.tool_blocks.len() as u32;
                    self.tool_blocks.push((data["contentBlockIndex"].as_u64().unwrap_or(0), index));
                    let id = tool["toolUseId"].as_str().unwrap_or_default().to_string();
                    let name = tool["name"].as_str().unwrap_or_default().to_string();
                    self.writer.tool_call_start(index, id, name, out);
                }
            }
            "contentBlockDelta" => {
                let delta = &data["delta"];
                if let Some(text) = delta["text"].as_str() {
                    self.writer.content(text, out);
                } else if let Some(input) = delta["toolUse"]["input"].as_str() {
                    let block = data["contentBlockIndex"].as_u64().unwrap_or(0);
                    if let Some(&(_, index)) = self.tool_blocks.iter().find(|(b, _)| *b == block) {
                        self.writer.tool_call_arguments(index, input, out);
                    }
                }
            }
            "messageStop" => self.writer.finish(finish_reason(data["stopReason"].as_str()), out),
            "metadata" => {
                if let Ok(u) = serde_json::from_value::<BedrockUsage>(data["usage"].clone()) {
                    self.writer.usage = Some(u.to_openai());
                }
                if self.writer.finished {
                    self.writer.done(out);
                }
            }
            _ => {} // contentBlockStop
        }
    }
}

impl StreamTranslator for BedrockStream {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.writer.done {
            return;
        }
        let mut frames = std::mem::take(&mut self.frames);
        if let Err(e) = self.decoder.push(chunk, &mut frames) {
            frames.clear();
            self.writer.error(&format!("upstream event stream unreadable: {e}"), out);
        }
        for f in &frames {
            if self.writer.done {
                break;
            }
            self.frame(f, out);
        }
        frames.clear();
        self.frames = frames;
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.writer.finished {
            self.writer.done(out);
        } else {
            self.writer.error("upstream stream ended before it was complete", out);
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.writer.usage
    }

    fn model(&self) -> Option<&str> {
        None
    }
}

/// The AWS region requests are signed for and sent to.
pub fn region(options: &ModelOptions) -> Result<String, ConfigError> {
    let region = options.bedrock.as_ref().and_then(|b| b.aws_region.clone()).unwrap_or_default();
    if !is_path_segment(&region) {
        return Err(ConfigError::new("model.options.bedrock.aws_region", "is required for bedrock (e.g. us-east-1)"));
    }
    Ok(region)
}

/// Amazon Bedrock: Converse for chat, InvokeModel for embeddings, SigV4.
pub struct Bedrock {
    aws: AwsAuth,
}

impl Bedrock {
    /// The region from `model.options.bedrock`, the keys from `auth`.
    pub fn configure(options: &ModelOptions, auth: &AuthConfig, secret: &mut Secret) -> Result<Self, ConfigError> {
        let region = region(options)?;
        let key = secret("auth.aws_access_key_id", &auth.aws_access_key_id);
        let secret_key = secret("auth.aws_secret_access_key", &auth.aws_secret_access_key);
        let session_token = secret("auth.aws_session_token", &auth.aws_session_token);
        match (key, secret_key) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(Bedrock { aws: AwsAuth { access_key_id, secret_access_key, session_token, region } }),
            _ => Err(ConfigError::new("auth.aws_access_key_id", "bedrock needs auth.aws_access_key_id and auth.aws_secret_access_key")),
        }
    }
}

impl Provider for Bedrock {
    fn name(&self) -> &'static str {
        "bedrock"
    }
    fn routes(&self) -> &'static [RouteType] {
        CHAT_AND_EMBEDDINGS
    }
    fn path(&self, _: RouteType) -> Option<&'static str> {
        None // names the model: see request_path
    }
    fn endpoint(&self, options: &ModelOptions, _: RouteType) -> Result<Option<Endpoint>, ConfigError> {
        Ok(Some(Endpoint { host: format!("bedrock-runtime.{}.amazonaws.com", region(options)?), path: None }))
    }
    fn request_path(&self, route: RouteType, model: &str, stream: bool) -> Result<Option<String>, String> {
        // Model ids and ARNs hold `:` and `/`: one encoded segment.
        if model.is_empty() || model.len() > 2048 || model.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(format!("model id {model:?} is not valid here"));
        }
        let op = match (route, stream) {
            (RouteType::Embeddings, _) => "invoke",
            (_, true) => "converse-stream",
            (_, false) => "converse",
        };
        Ok(Some(format!("/model/{}/{op}", encode_query(model))))
    }
    fn chat_request(&self, req: ChatRequest, _: &RequestContext) -> Result<Option<Vec<u8>>, GatewayError> {
        to_vec(&chat_request(&req)?).map(Some)
    }
    fn embeddings_request(&self, req: EmbeddingRequest, _: &RequestContext) -> Result<Option<Vec<u8>>, GatewayError> {
        let model = req.model.clone().unwrap_or_default();
        to_vec(&embed_request(&req, &model)?).map(Some)
    }
    fn sign(&self, r: &SignedRequest) -> Vec<(String, String)> {
        super::sigv4::sign(&self.aws, "bedrock", "POST", r.host, r.target, r.body_sha256, r.unix_seconds)
    }
    fn signs_body(&self) -> bool {
        true
    }
    fn stream_framing(&self) -> StreamFraming {
        StreamFraming::AwsEventStream
    }
    fn answer(&self, route: RouteType, body: &[u8], meta: &Meta) -> Answer {
        match route {
            RouteType::Embeddings => translated(embed_response(body, meta.model), "bedrock invoke"),
            _ => translated(chat_response(body, meta.id, meta.created, meta.model), "bedrock converse"),
        }
    }
    fn stream(&self, _: RouteType, meta: &Meta, client_wants_usage: bool) -> Box<dyn StreamTranslator> {
        Box::new(BedrockStream::new(meta.id, meta.created, meta.model, client_wants_usage))
    }
}
