//! Google Gemini: `generateContent` / `streamGenerateContent?alt=sse` (AI
//! Studio and Vertex AI), `batchEmbedContents` and Vertex `predict`.
// `serde_json::Value` lookups (`v["key"]`, `v[0]`) return Null when absent and
// never panic; writes only go into objects built in this module.
#![allow(clippy::indexing_slicing)]

use super::options::{is_header_value, is_path_segment, ModelOptions, RouteType};
use super::provider::{Convention, to_vec, Endpoint, Meta, Provider, RequestContext, CHAT_AND_EMBEDDINGS};
use super::response::{self, translated};
use crate::config::ConfigError;
use super::common::{field_policy, DROPPED_BY_NATIVE, REFUSED_BY_NATIVE, arguments_object, embeddings, parse_data_url, result_object, system_text, tool_call, tool_name_for, ChunkWriter, SseInput};
use super::stream::{StreamTranslator, UNREADABLE_EVENT};
use crate::error::GatewayError;
use crate::openai::{
    ChatChoice, ChatMessage, ChatRequest, ChatResponse, CompletionTokensDetails, Content, EmbeddingRequest, EmbeddingResponse,
    PromptTokensDetails, ToolCall, Usage,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The usual credential (see `registry::convention`).
pub const CREDENTIAL: Convention = Convention::Header { secret: "gemini", env: "GEMINI_API_KEY", header: "x-goog-api-key", bearer: false };
/// Vertex AI: an OAuth access token (Gemini, and Claude on Vertex).
pub const VERTEX_CREDENTIAL: Convention = Convention::Header { secret: "vertex", env: "VERTEX_ACCESS_TOKEN", header: "Authorization", bearer: true };

fn mime_from_url(url: &str) -> &'static str {
    let lower = url.to_ascii_lowercase();
    let path = lower.split(['?', '#']).next().unwrap_or_default();
    if path.ends_with(".png") {
        "image/png"
    } else if path.ends_with(".webp") {
        "image/webp"
    } else if path.ends_with(".gif") {
        "image/gif"
    } else {
        "image/jpeg"
    }
}

fn parts_of(content: &Option<Content>) -> Vec<Value> {
    match content {
        Some(Content::Text(t)) if !t.is_empty() => vec![json!({"text": t})],
        Some(Content::Parts(parts)) => parts
            .iter()
            .filter_map(|p| match (p.text.as_deref(), &p.image_url) {
                (Some(text), _) => Some(json!({"text": text})),
                (None, Some(img)) => Some(match parse_data_url(&img.url) {
                    Some((mime, data)) => json!({"inlineData": {"mimeType": mime, "data": data}}),
                    None => json!({"fileData": {"mimeType": mime_from_url(&img.url), "fileUri": img.url}}),
                }),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

/// OpenAI's reasoning effort as a Gemini thinking budget, as Google's own
/// OpenAI-compatible endpoint maps it (`none` turns thinking off where the
/// model allows it); an unknown effort is left to the model's default.
fn thinking_budget(effort: &str) -> Option<u32> {
    match effort {
        "none" | "minimal" => Some(0),
        "low" => Some(1024),
        "medium" => Some(8192),
        "high" => Some(24576),
        _ => {
            log::debug!("gemini: reasoning_effort `{effort}` has no thinking budget; the model's default applies");
            None
        }
    }
}

pub fn chat_request(req: &ChatRequest, stream: bool) -> Result<Value, GatewayError> {
    // Several candidates come back whole, but streams carry only the first.
    let refused: &[&str] = if stream { &REFUSED_BY_NATIVE } else { &REFUSED_BY_NATIVE[..3] };
    // reasoning_effort has an equivalent here: the thinking budget.
    let dropped: Vec<&str> = DROPPED_BY_NATIVE.into_iter().filter(|f| *f != "reasoning_effort").collect();
    field_policy("gemini", &req.rest, refused, &dropped)?;
    let mut contents: Vec<Value> = Vec::new();
    for m in &req.messages {
        let (role, parts) = match m.role.as_str() {
            "system" | "developer" => continue,
            "user" => ("user", parts_of(&m.content)),
            "assistant" => {
                let mut parts = parts_of(&m.content);
                for call in m.tool_calls.iter().flatten() {
                    parts.push(json!({"functionCall": {"name": call.function.name, "args": arguments_object(call)?}}));
                }
                ("model", parts)
            }
            "tool" => {
                // Gemini keys results by function name, not call id.
                let id = m.tool_call_id.as_deref().unwrap_or_default();
                let name = tool_name_for(&req.messages, id).or(m.name.as_deref()).ok_or_else(|| {
                    GatewayError::bad_request(format!("tool message `{id}` answers no earlier tool call"))
                })?;
                let text = m.content.as_ref().map(|c| c.joined_text("\n")).unwrap_or_default();
                ("user", vec![json!({"functionResponse": {"name": name, "response": result_object(&text)}})])
            }
            other => return Err(GatewayError::bad_request(format!("unknown message role `{other}`"))),
        };
        match contents.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(existing) = last["parts"].as_array_mut() {
                    existing.extend(parts);
                }
            }
            _ => contents.push(json!({"role": role, "parts": parts})),
        }
    }
    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents));
    if let Some(system) = system_text(&req.messages) {
        body.insert("systemInstruction".into(), json!({"parts": [{"text": system}]}));
    }
    let mut generation = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            generation.insert(k.into(), v);
        }
    };
    put("maxOutputTokens", req.max_completion_tokens.or(req.max_tokens).map(Value::from));
    put("temperature", req.temperature.map(Value::from));
    put("topP", req.top_p.map(Value::from));
    put("topK", req.top_k.map(Value::from));
    put("stopSequences", req.stop.as_ref().map(|s| json!(s.to_vec())));
    put("candidateCount", req.rest.get("n").cloned());
    put("seed", req.rest.get("seed").cloned());
    put("thinkingConfig", req.rest.get("reasoning_effort").and_then(Value::as_str).and_then(thinking_budget).map(|b| json!({"thinkingBudget": b})));
    let format = req.rest.get("response_format");
    match format.and_then(|f| f.get("type")).and_then(Value::as_str) {
        Some("json_object") => put("responseMimeType", Some(json!("application/json"))),
        Some("json_schema") => {
            put("responseMimeType", Some(json!("application/json")));
            put("responseJsonSchema", format.and_then(|f| f.get("json_schema")?.get("schema").cloned()));
        }
        _ => {}
    }
    if !generation.is_empty() {
        body.insert("generationConfig".into(), Value::Object(generation));
    }
    let declarations: Vec<Value> = req
        .tools
        .iter()
        .flatten()
        .map(|t| {
            let mut d = json!({"name": t.function.name, "description": t.function.description.clone().unwrap_or_default()});
            if let Some(p) = &t.function.parameters {
                d["parameters"] = p.clone();
            }
            d
        })
        .collect();
    if !declarations.is_empty() {
        body.insert("tools".into(), json!([{"functionDeclarations": declarations}]));
        let config = match &req.tool_choice {
            None => None,
            Some(Value::String(s)) => match s.as_str() {
                "auto" => Some(json!({"mode": "AUTO"})),
                "required" => Some(json!({"mode": "ANY"})),
                "none" => Some(json!({"mode": "NONE"})),
                other => return Err(GatewayError::bad_request(format!("unknown tool_choice `{other}`"))),
            },
            Some(v) => match v.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
                Some(name) => Some(json!({"mode": "ANY", "allowedFunctionNames": [name]})),
                None => return Err(GatewayError::bad_request("tool_choice must be none, auto, required or a named function")),
            },
        };
        if let Some(config) = config {
            body.insert("toolConfig".into(), json!({"functionCallingConfig": config}));
        }
    }
    Ok(Value::Object(body))
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
}

impl UsageMetadata {
    /// Completion tokens include thinking tokens: both are billed as output.
    pub fn to_openai(self) -> Usage {
        let thoughts = self.thoughts_token_count.unwrap_or(0);
        let mut u = Usage::new(self.prompt_token_count, self.candidates_token_count.saturating_add(thoughts));
        if let Some(cached) = self.cached_content_token_count {
            u.prompt_tokens_details = Some(PromptTokensDetails { cached_tokens: cached });
        }
        if self.thoughts_token_count.is_some() {
            u.completion_tokens_details = Some(CompletionTokensDetails { reasoning_tokens: thoughts });
        }
        u
    }
}

pub fn finish_reason(reason: Option<&str>, has_tool_calls: bool) -> &'static str {
    if has_tool_calls {
        return "tool_calls";
    }
    match reason {
        Some("MAX_TOKENS") => "length",
        Some("SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY") => "content_filter",
        _ => "stop",
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    #[serde(default)]
    candidates: Vec<Value>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    error: Option<Value>,
}

/// Text and function calls of one candidate. Thought parts are skipped.
/// Gemini gives calls no ids: they get stable ones from the request id and
/// their position in the answer.
fn candidate_parts(candidate: &Value, id: &str, first_call: u32) -> (String, Vec<ToolCall>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in candidate["content"]["parts"].as_array().into_iter().flatten() {
        if part["thought"] == true {
            continue;
        }
        if let Some(t) = part["text"].as_str() {
            text.push_str(t);
        }
        if let Some(call) = part.get("functionCall") {
            let n = first_call.saturating_add(calls.len() as u32);
            calls.push(tool_call(
                format!("call_{id}_{n}"),
                call["name"].as_str().unwrap_or_default().to_string(),
                call.get("args").map(Value::to_string).unwrap_or_else(|| "{}".into()),
                None,
            ));
        }
    }
    (text, calls)
}

pub fn chat_response(body: &[u8], id: &str, created: u64, model: &str) -> Result<(ChatResponse, Usage), serde_json::Error> {
    let a: Answer = serde_json::from_slice(body)?;
    let choices = a
        .candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (text, calls) = candidate_parts(c, id, 0);
            let reason = finish_reason(c["finishReason"].as_str(), !calls.is_empty());
            ChatChoice {
                index: c["index"].as_u64().unwrap_or(i as u64) as u32,
                message: ChatMessage {
                    role: "assistant".into(),
                    content: Some(Content::Text(text)),
                    tool_calls: (!calls.is_empty()).then_some(calls),
                    ..Default::default()
                },
                finish_reason: Some(reason.into()),
            }
        })
        .collect();
    let usage = a.usage_metadata.unwrap_or_default().to_openai();
    Ok((
        ChatResponse {
            id: format!("chatcmpl-{id}"),
            object: "chat.completion".into(),
            created,
            model: a.model_version.unwrap_or_else(|| model.to_string()),
            choices,
            usage: Some(usage),
        },
        usage,
    ))
}

pub fn embed_request(req: &EmbeddingRequest, model: &str, vertex: bool) -> Value {
    let texts: Vec<Value> = match &req.input {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    if vertex {
        json!({"instances": texts.iter().map(|t| json!({"content": t})).collect::<Vec<_>>()})
    } else {
        let model = format!("models/{}", model.strip_prefix("models/").unwrap_or(model));
        json!({"requests": texts.iter().map(|t| json!({"model": model, "content": {"parts": [{"text": t}]}})).collect::<Vec<_>>()})
    }
}

pub fn embed_response(body: &[u8], model: &str) -> Result<(EmbeddingResponse, Usage), serde_json::Error> {
    let v: Value = serde_json::from_slice(body)?;
    let mut tokens = 0u64;
    let vectors: Vec<Value> = if let Some(list) = v["embeddings"].as_array() {
        list.iter().map(|e| e["values"].clone()).collect()
    } else {
        v["predictions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                tokens = tokens.saturating_add(p["embeddings"]["statistics"]["token_count"].as_f64().unwrap_or(0.0).max(0.0) as u64);
                p["embeddings"]["values"].clone()
            })
            .collect()
    };
    if vectors.is_empty() && v.get("error").is_some() {
        return Err(serde::de::Error::custom("error answer"));
    }
    Ok(embeddings(vectors, model, tokens))
}

/// Gemini streams whole `GenerateContentResponse`s as SSE data, without a
/// terminator; the upstream's end of stream closes the OpenAI stream.
pub struct GeminiStream {
    sse: SseInput,
    writer: ChunkWriter,
    request_id: String,
    tool_calls: u32,
    finish: Option<&'static str>,
    model: Option<String>,
}

impl GeminiStream {
    pub fn new(id: &str, created: u64, model: &str, client_wants_usage: bool) -> Self {
        GeminiStream {
            sse: SseInput::default(),
            writer: ChunkWriter::new(id, created, model, client_wants_usage),
            request_id: id.to_string(),
            tool_calls: 0,
            finish: None,
            model: None,
        }
    }

    fn answer(&mut self, a: Answer, out: &mut Vec<u8>) {
        if let Some(err) = a.error {
            let message = err["message"].as_str().unwrap_or("upstream stream error").to_string();
            return self.writer.error(&message, out);
        }
        if self.model.is_none() {
            self.model = a.model_version;
        }
        self.writer.start(out);
        if let Some(c) = a.candidates.first() {
            let (text, calls) = candidate_parts(c, &self.request_id, self.tool_calls);
            self.writer.content(&text, out);
            for call in calls {
                let index = self.tool_calls;
                self.tool_calls = self.tool_calls.saturating_add(1);
                let name = call.function.name.clone().unwrap_or_default();
                self.writer.tool_call_start(index, call.id.clone().unwrap_or_default(), name, out);
                self.writer.tool_call_arguments(index, call.function.arguments.as_deref().unwrap_or("{}"), out);
            }
            if let Some(reason) = c["finishReason"].as_str() {
                self.finish = Some(finish_reason(Some(reason), self.tool_calls > 0));
            }
        }
        if let Some(u) = a.usage_metadata {
            self.writer.usage = Some(u.to_openai());
        }
    }
}

impl StreamTranslator for GeminiStream {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut sse = std::mem::take(&mut self.sse);
        sse.feed(chunk, |e| {
            match serde_json::from_str::<Answer>(&e.data) {
                Ok(a) => self.answer(a, out),
                Err(_) => self.writer.error(UNREADABLE_EVENT, out),
            }
            !self.writer.done
        });
        self.sse = sse;
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.push(b"\n\n", out);
        match self.finish {
            Some(reason) => {
                self.writer.finish(reason, out);
                self.writer.done(out);
            }
            None => self.writer.error("upstream stream ended before it was complete", out),
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.writer.usage
    }

    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
}

/// Vertex AI's project and location, when both are configured.
pub fn vertex(options: &ModelOptions) -> Result<Option<(String, String)>, ConfigError> {
    let gemini = options.gemini.clone().unwrap_or_default();
    match (gemini.project_id, gemini.location_id) {
        (Some(p), Some(l)) if is_path_segment(&p) && is_path_segment(&l) => Ok(Some((p, l))),
        (None, None) => Ok(None),
        (Some(p), _) if !is_path_segment(&p) => Err(ConfigError::new("model.options.gemini.project_id", "is not a valid project id")),
        _ => Err(ConfigError::new("model.options.gemini", "Vertex AI needs both project_id and location_id (letters, digits, -, _)")),
    }
}

/// The API's host: `gemini.api_endpoint`, else Vertex AI's regional host
/// when a project is set, else Google AI Studio's.
pub fn api_host(options: &ModelOptions) -> Result<String, ConfigError> {
    let endpoint = options.gemini.as_ref().and_then(|g| g.api_endpoint.clone());
    let host = match (endpoint, vertex(options)?) {
        (Some(endpoint), _) => endpoint,
        (None, Some((_, l))) if l == "global" => "aiplatform.googleapis.com".to_string(),
        (None, Some((_, l))) => format!("{l}-aiplatform.googleapis.com"),
        (None, None) => "generativelanguage.googleapis.com".to_string(),
    };
    if host.is_empty() || !is_header_value(&host) || host.contains('/') {
        return Err(ConfigError::new("model.options.gemini.api_endpoint", "must be a host name"));
    }
    Ok(host)
}

/// Gemini's generateContent API, on Google AI Studio or Vertex AI.
pub struct Gemini {
    /// Vertex AI's project and location, for model paths.
    vertex: Option<(String, String)>,
}

impl Gemini {
    pub fn configure(options: &ModelOptions) -> Result<Self, ConfigError> {
        Ok(Gemini { vertex: vertex(options)? })
    }
}

impl Provider for Gemini {
    fn name(&self) -> &'static str {
        "gemini"
    }
    fn routes(&self) -> &'static [RouteType] {
        CHAT_AND_EMBEDDINGS
    }
    fn path(&self, _: RouteType) -> Option<&'static str> {
        None // names the model: see request_path
    }
    fn endpoint(&self, options: &ModelOptions, _: RouteType) -> Result<Option<Endpoint>, ConfigError> {
        Ok(Some(Endpoint { host: api_host(options)?, path: None }))
    }
    fn request_path(&self, route: RouteType, model: &str, stream: bool) -> Result<Option<String>, String> {
        let model = model.strip_prefix("models/").unwrap_or(model);
        if !is_path_segment(model) {
            return Err(format!("model name {model:?} is not valid here"));
        }
        let op = match (route, stream, self.vertex.is_some()) {
            (RouteType::Embeddings, _, true) => "predict",
            (RouteType::Embeddings, _, false) => "batchEmbedContents",
            (_, true, _) => "streamGenerateContent?alt=sse",
            (_, false, _) => "generateContent",
        };
        Ok(Some(match &self.vertex {
            Some((project, location)) => format!("/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:{op}"),
            None => format!("/v1beta/models/{model}:{op}"),
        }))
    }
    fn chat_request(&self, req: ChatRequest, cx: &RequestContext) -> Result<Option<Vec<u8>>, GatewayError> {
        to_vec(&chat_request(&req, cx.stream)?).map(Some)
    }
    fn embeddings_request(&self, req: EmbeddingRequest, _: &RequestContext) -> Result<Option<Vec<u8>>, GatewayError> {
        let model = req.model.clone().unwrap_or_default();
        to_vec(&embed_request(&req, &model, self.vertex.is_some())).map(Some)
    }
    fn answer(&self, route: RouteType, body: &[u8], meta: &Meta) -> response::Answer {
        match route {
            RouteType::Embeddings => translated(embed_response(body, meta.model), "gemini embed"),
            _ => translated(chat_response(body, meta.id, meta.created, meta.model), "gemini generateContent"),
        }
    }
    fn stream(&self, _: RouteType, meta: &Meta, client_wants_usage: bool) -> Box<dyn StreamTranslator> {
        Box::new(GeminiStream::new(meta.id, meta.created, meta.model, client_wants_usage))
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    #[test]
    fn vertex_embeddings_use_predict_and_report_tokens() {
        let req: EmbeddingRequest = serde_json::from_str(r#"{"model":"text-embedding-005","input":["a b","c"]}"#).unwrap();
        assert_eq!(embed_request(&req, "text-embedding-005", true), json!({"instances": [{"content": "a b"}, {"content": "c"}]}));
        assert_eq!(embed_request(&req, "text-embedding-005", false)["requests"][1]["model"], "models/text-embedding-005");
        let body = br#"{"predictions":[{"embeddings":{"values":[0.1,0.2],"statistics":{"token_count":2,"truncated":false}}},{"embeddings":{"values":[0.3],"statistics":{"token_count":1,"truncated":false}}}]}"#;
        let (r, usage) = embed_response(body, "text-embedding-005").unwrap();
        assert_eq!(r.data.len(), 2);
        assert_eq!(r.data[1].embedding, json!([0.3]));
        assert_eq!(usage.prompt_tokens, 3);
    }

    #[test]
    fn reasoning_effort_becomes_the_thinking_budget() {
        let budget = |effort: &str| {
            let req: ChatRequest = serde_json::from_str(&format!(r#"{{"messages":[{{"role":"user","content":"x"}}],"reasoning_effort":"{effort}"}}"#)).unwrap();
            chat_request(&req, false).unwrap()["generationConfig"]["thinkingConfig"]["thinkingBudget"].clone()
        };
        assert_eq!((budget("low"), budget("medium"), budget("high"), budget("none")), (json!(1024), json!(8192), json!(24576), json!(0)));
        assert_eq!(budget("extreme"), Value::Null, "an unknown effort leaves the model's default");
    }

    #[test]
    fn safety_and_length_reasons_map() {
        assert_eq!(finish_reason(Some("SAFETY"), false), "content_filter");
        assert_eq!(finish_reason(Some("MAX_TOKENS"), false), "length");
        assert_eq!(finish_reason(Some("STOP"), true), "tool_calls");
    }
}
