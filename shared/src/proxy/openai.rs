//! OpenAI's own API, and the servers that speak it (`llama2`, `ollama`
//! with `*_format: openai`, vLLM, LM Studio...): bodies go through as
//! they are, usage is read from answers and streams.

use super::options::{ModelOptions, RouteType};
use super::provider::{Convention, openai_body, Endpoint, Meta, Provider, RequestContext};
use super::response::{usage_only, Answer};
use super::stream::{error_event, StreamTranslator, MAX_EVENT_BYTES};
use crate::config::ConfigError;
use crate::error::GatewayError;
use crate::openai::{ChatRequest, Usage, UsageProbe};
use crate::sse::{encode_event, SseDecoder, SseEvent};

/// The usual credential (see `registry::convention`).
pub const CREDENTIAL: Convention = Convention::Header { secret: "openai", env: "OPENAI_API_KEY", header: "Authorization", bearer: true };

/// Paths of OpenAI's API, which every OpenAI-compatible server copies.
pub fn openai_path(route: RouteType) -> Option<&'static str> {
    match route {
        RouteType::Chat => Some("/v1/chat/completions"),
        RouteType::Completions => Some("/v1/completions"),
        RouteType::Embeddings => Some("/v1/embeddings"),
        RouteType::Responses => Some("/v1/responses"),
        RouteType::Preserve => None,
    }
}

/// OpenAI's wire format: OpenAI itself, and any OpenAI-compatible server at
/// `upstream_url` (`llama2`, `ollama` with the `openai` format).
pub struct OpenAiFormat {
    name: &'static str,
    /// The public host; None: `upstream_url` is required.
    host: Option<&'static str>,
    /// OpenAI rejects `top_k`; llama-style servers take it.
    takes_top_k: bool,
}

pub const OPENAI: OpenAiFormat = OpenAiFormat { name: "openai", host: Some("api.openai.com"), takes_top_k: false };
pub const COMPATIBLE: OpenAiFormat = OpenAiFormat { name: "openai-compatible", host: None, takes_top_k: true };

impl Provider for OpenAiFormat {
    fn name(&self) -> &'static str {
        self.name
    }
    fn routes(&self) -> &'static [RouteType] {
        // The Responses API is OpenAI's own; compatible servers vary.
        if self.host.is_some() {
            super::provider::WITH_RESPONSES
        } else {
            super::provider::ALL_ROUTES
        }
    }
    fn path(&self, route: RouteType) -> Option<&'static str> {
        openai_path(route)
    }
    fn endpoint(&self, _: &ModelOptions, route: RouteType) -> Result<Option<Endpoint>, ConfigError> {
        Ok(self.host.map(|host| Endpoint { host: host.into(), path: openai_path(route).map(str::to_string) }))
    }
    fn speaks_openai(&self) -> bool {
        true
    }
    fn needs_stream_options(&self) -> bool {
        true
    }
    fn takes_top_k(&self) -> bool {
        self.takes_top_k
    }
    fn chat_request(&self, req: ChatRequest, cx: &RequestContext) -> Result<Option<Vec<u8>>, GatewayError> {
        openai_body(&req, cx.changed)
    }
    fn answer(&self, route: RouteType, body: &[u8], _: &Meta) -> Answer {
        usage_only(route, body)
    }
    fn stream(&self, _: RouteType, _: &Meta, client_wants_usage: bool) -> Box<dyn StreamTranslator> {
        Box::new(OpenAiStream::new(client_wants_usage))
    }
}

/// True if the JSON text carries `"usage": {` (not `"usage": null`), so the
/// chunks without usage are not parsed at all.
fn has_usage_object(data: &str) -> bool {
    let mut rest = data;
    while let Some(i) = rest.find("\"usage\"") {
        rest = rest.get(i + 7..).unwrap_or_default();
        let after = rest.trim_start();
        if let Some(value) = after.strip_prefix(':') {
            if value.trim_start().starts_with('{') {
                return true;
            }
        }
    }
    false
}

/// OpenAI-format streams: events go through byte for byte, usage is read
/// from the usage chunk, which is dropped when only the gateway asked for it.
pub struct OpenAiStream {
    decoder: SseDecoder,
    events: Vec<SseEvent>,
    drop_usage_chunk: bool,
    /// Mistral: usage comes on the last content chunk, asked or not. It is
    /// taken off that chunk, and when the client asked, sent after it as
    /// OpenAI's own usage chunk (`choices: []`).
    strip_usage: bool,
    split_usage: bool,
    /// Mistral: streamed tool calls come without `type`.
    fill_tool_call_type: bool,
    usage: Option<Usage>,
    model: Option<String>,
    done: bool,
}

impl OpenAiStream {
    pub fn new(client_wants_usage: bool) -> Self {
        OpenAiStream {
            decoder: SseDecoder::new(MAX_EVENT_BYTES),
            events: Vec::new(),
            drop_usage_chunk: !client_wants_usage,
            strip_usage: false,
            split_usage: false,
            fill_tool_call_type: false,
            usage: None,
            model: None,
            done: false,
        }
    }

    /// Mistral's streams, given OpenAI's semantics.
    pub fn mistral(client_wants_usage: bool) -> Self {
        OpenAiStream { strip_usage: true, split_usage: client_wants_usage, fill_tool_call_type: true, ..Self::new(client_wants_usage) }
    }

    fn forward(&mut self, out: &mut Vec<u8>) {
        for event in self.events.drain(..) {
            let mut rewrite = false;
            let mut usage_chunk = false;
            if event.data == "[DONE]" {
                self.done = true;
            } else if self.model.is_none() || has_usage_object(&event.data) {
                if let Ok(probe) = serde_json::from_str::<UsageProbe>(&event.data) {
                    if self.model.is_none() {
                        self.model = probe.model;
                    }
                    if let Some(usage) = probe.usage {
                        self.usage = Some(usage);
                        let usage_only = probe.choices.as_ref().is_some_and(Vec::is_empty);
                        if usage_only && self.drop_usage_chunk {
                            continue;
                        }
                        rewrite |= self.strip_usage && !usage_only;
                        usage_chunk = self.split_usage && !usage_only;
                    }
                }
            }
            rewrite |= self.fill_tool_call_type && event.data.contains("\"tool_calls\"");
            match rewrite.then(|| rewritten(&event.data, self.strip_usage, self.fill_tool_call_type)).flatten() {
                Some(data) => encode_event(event.event.as_deref(), &data, out),
                None => out.extend_from_slice(&event.raw),
            }
            if let Some(data) = usage_chunk.then(|| usage_chunk_of(&event.data)).flatten() {
                encode_event(event.event.as_deref(), &data, out);
            }
        }
    }
}

/// OpenAI's usage chunk for a chunk that carried usage beside its choices:
/// the same id, object, created, model (and fingerprint), `choices: []`.
fn usage_chunk_of(data: &str) -> Option<String> {
    let chunk: serde_json::Value = serde_json::from_str(data).ok()?;
    let mut usage = serde_json::Map::new();
    for key in ["id", "object", "created", "model", "system_fingerprint"] {
        if let Some(v) = chunk.get(key) {
            usage.insert(key.into(), v.clone());
        }
    }
    usage.insert("choices".into(), serde_json::Value::Array(Vec::new()));
    usage.insert("usage".into(), chunk.get("usage")?.clone());
    serde_json::to_string(&usage).ok()
}

/// A chunk with usage taken out and tool-call types filled in, as asked;
/// None leaves the event as it came.
fn rewritten(data: &str, strip_usage: bool, fill_tool_call_type: bool) -> Option<String> {
    let mut chunk: serde_json::Value = serde_json::from_str(data).ok()?;
    if strip_usage {
        chunk.as_object_mut()?.remove("usage");
    }
    if fill_tool_call_type {
        for choice in chunk.get_mut("choices")?.as_array_mut()?.iter_mut() {
            let Some(calls) = choice.get_mut("delta").and_then(|d| d.get_mut("tool_calls")).and_then(|c| c.as_array_mut()) else { continue };
            for call in calls.iter_mut().filter_map(|c| c.as_object_mut()) {
                // The first delta of a call names it; only that one has `type` in OpenAI's streams.
                if !call.contains_key("type") && (call.contains_key("id") || call.get("function").is_some_and(|f| f.get("name").is_some())) {
                    call.insert("type".into(), serde_json::Value::String("function".into()));
                }
            }
        }
    }
    serde_json::to_string(&chunk).ok()
}

impl StreamTranslator for OpenAiStream {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.decoder.push(chunk, &mut self.events);
        self.forward(out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.decoder.finish(&mut self.events);
        self.forward(out);
        if self.decoder.overflowed() {
            error_event("upstream sent a stream event larger than the gateway accepts", out);
        } else if !self.done {
            error_event("upstream stream ended before it was complete", out);
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
}

#[cfg(test)]
mod tests {
    // The same tests run natively and, through wasm-bindgen-test, as wasm32.
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;
    use crate::proxy::stream::testing::{events, run};

    const OPENAI_STREAM: &str = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n\
data: [DONE]\n\n";

    #[test]
    fn usage_chunk_is_read_and_dropped_when_not_asked() {
        let input = OPENAI_STREAM.as_bytes();
        for at in 0..=input.len() {
            let mut t = OpenAiStream::new(false);
            let out = run(&mut t, input, &[at]);
            assert_eq!(t.usage(), Some(Usage::new(9, 2)), "split at {at}");
            let data = events(&out);
            assert_eq!(data.len(), 4, "split at {at}");
            assert!(!data.iter().any(|d| d.contains("\"choices\":[]")));
            assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
        }
    }

    #[test]
    fn usage_chunk_is_kept_when_asked_and_bytes_are_untouched() {
        let mut t = OpenAiStream::new(true);
        let out = run(&mut t, OPENAI_STREAM.as_bytes(), &[17, 300]);
        assert_eq!(out, OPENAI_STREAM.as_bytes());
        assert_eq!(t.model(), Some("gpt-4o-mini"));
    }

    #[test]
    fn truncated_stream_ends_with_an_error_event() {
        let mut t = OpenAiStream::new(false);
        let cut = OPENAI_STREAM.find("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[]").unwrap_or(0);
        let out = run(&mut t, OPENAI_STREAM.get(..cut).unwrap_or_default().as_bytes(), &[]);
        let data = events(&out);
        assert!(data.last().is_some_and(|d| d.contains("\"error\"") && d.contains("ended before")));
    }

    #[test]
    fn usage_detection_ignores_nulls() {
        assert!(has_usage_object(r#"{"usage" : {"a":1}}"#));
        assert!(!has_usage_object(r#"{"usage":null,"x":"usage"}"#));
    }

    #[test]
    fn mistral_streams_get_openai_semantics() {
        let tool = "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"c1\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"},\"index\":0}]}}]}\n\n";
        let last = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\ndata: [DONE]\n\n";
        for wants in [false, true] {
            let mut t = OpenAiStream::mistral(wants);
            let mut out = Vec::new();
            t.push(tool.as_bytes(), &mut out);
            t.push(last.as_bytes(), &mut out);
            t.finish(&mut out);
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("\"type\":\"function\""), "{text}");
            assert_eq!(text.contains("\"usage\""), wants, "{text}");
            assert_eq!(t.usage().map(|u| u.total_tokens), Some(7), "counted either way");
            assert!(text.ends_with("data: [DONE]\n\n"));
            // OpenAI's contract: the finish_reason on a content chunk without
            // usage, then (when asked) one usage chunk with no choices.
            let chunks: Vec<serde_json::Value> = events(text.as_bytes()).iter().filter_map(|d| serde_json::from_str(d).ok()).collect();
            let finish = chunks.iter().find(|c| c["choices"][0]["finish_reason"] == "tool_calls").expect("the finishing chunk");
            assert!(finish.get("usage").is_none(), "{finish}");
            let usage: Vec<&serde_json::Value> = chunks.iter().filter(|c| c.get("usage").is_some()).collect();
            assert_eq!(usage.len(), usize::from(wants));
            if let Some(u) = usage.first() {
                assert_eq!(u["choices"], serde_json::json!([]));
                assert_eq!(u["usage"]["total_tokens"], 7);
                assert!(std::ptr::eq(*u, chunks.last().unwrap()), "the usage chunk is the last one");
            }
        }
    }
}
