//! Streamed answers, translated event by event as chunks arrive. Each
//! translator keeps partial events between chunks and reports usage.

use super::ollama::{self, ChatAnswer};
use crate::error::error_body;
use crate::openai::{ChatChunk, ChunkChoice, CompletionChoice, CompletionResponse, Delta, Usage, UsageProbe};
use crate::sse::{encode_event, LineDecoder, SseDecoder, SseEvent};

/// Bound on one unfinished event held between chunks.
const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

pub trait StreamTranslator {
    /// Translates a chunk; whatever it completes is appended to `out`.
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>);
    /// The upstream ended: flush, and close the stream properly for the client.
    fn finish(&mut self, out: &mut Vec<u8>);
    fn usage(&self) -> Option<Usage>;
    fn model(&self) -> Option<&str>;
}

fn error_event(message: &str, out: &mut Vec<u8>) {
    let body = error_body(message, "upstream_error", None);
    encode_event(None, &String::from_utf8_lossy(&body), out);
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
    /// Mistral: usage comes on the last content chunk, asked or not; it is
    /// taken out when the client did not ask (OpenAI's semantics).
    strip_usage: bool,
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
            fill_tool_call_type: false,
            usage: None,
            model: None,
            done: false,
        }
    }

    /// Mistral's streams, given OpenAI's semantics.
    pub fn mistral(client_wants_usage: bool) -> Self {
        OpenAiStream { strip_usage: !client_wants_usage, fill_tool_call_type: true, ..Self::new(client_wants_usage) }
    }

    fn forward(&mut self, out: &mut Vec<u8>) {
        for event in self.events.drain(..) {
            let mut rewrite = false;
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
                        rewrite |= self.strip_usage;
                    }
                }
            }
            rewrite |= self.fill_tool_call_type && event.data.contains("\"tool_calls\"");
            match rewrite.then(|| rewritten(&event.data, self.strip_usage, self.fill_tool_call_type)).flatten() {
                Some(data) => encode_event(event.event.as_deref(), &data, out),
                None => out.extend_from_slice(&event.raw),
            }
        }
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OllamaRoute {
    Chat,
    Generate,
}

/// Ollama's NDJSON stream to OpenAI SSE chunks.
pub struct OllamaStream {
    route: OllamaRoute,
    lines: LineDecoder,
    scratch: Vec<Vec<u8>>,
    id: String,
    created: u64,
    model: String,
    client_wants_usage: bool,
    usage: Option<Usage>,
    sent_role: bool,
    done: bool,
    tool_calls: u32,
}

impl OllamaStream {
    pub fn new(route: OllamaRoute, id: &str, created: u64, model: &str, client_wants_usage: bool) -> Self {
        OllamaStream {
            route,
            lines: LineDecoder::default(),
            scratch: Vec::new(),
            id: id.to_string(),
            created,
            model: model.to_string(),
            client_wants_usage,
            usage: None,
            sent_role: false,
            done: false,
            tool_calls: 0,
        }
    }

    fn chunk_event(&self, delta: Delta, finish_reason: Option<String>, out: &mut Vec<u8>) {
        let chunk = ChatChunk {
            id: format!("chatcmpl-{}", self.id),
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

    fn text_event(&self, text: String, finish_reason: Option<String>, out: &mut Vec<u8>) {
        let chunk = CompletionResponse {
            id: format!("cmpl-{}", self.id),
            object: "text_completion".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![CompletionChoice { index: 0, text, finish_reason, logprobs: None }],
            usage: None,
        };
        if let Ok(json) = serde_json::to_string(&chunk) {
            encode_event(None, &json, out);
        }
    }

    fn usage_event(&self, usage: Usage, out: &mut Vec<u8>) {
        let (id, object) = match self.route {
            OllamaRoute::Chat => (format!("chatcmpl-{}", self.id), "chat.completion.chunk"),
            OllamaRoute::Generate => (format!("cmpl-{}", self.id), "text_completion"),
        };
        let chunk = ChatChunk { id, object: object.into(), created: self.created, model: self.model.clone(), choices: vec![], usage: Some(usage) };
        if let Ok(json) = serde_json::to_string(&chunk) {
            encode_event(None, &json, out);
        }
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let answer: ChatAnswer = match serde_json::from_slice(line) {
            Ok(a) => a,
            Err(_) => return error_event("upstream sent a stream line the gateway could not read", out),
        };
        if let Some(message) = &answer.error {
            self.done = true;
            return error_event(message, out);
        }
        if let Some(model) = &answer.model {
            if *model != self.model {
                self.model = model.clone();
            }
        }
        match self.route {
            OllamaRoute::Chat => {
                let message = answer.message.as_ref();
                let content = message.map(|m| m.content.clone()).unwrap_or_default();
                let calls = message.map(|m| m.tool_calls.as_slice()).unwrap_or_default();
                let mut tool_calls = ollama::tool_calls_out(calls, &self.id, true);
                for call in &mut tool_calls {
                    // Indexes count across the whole stream, not per line.
                    call.index = Some(self.tool_calls);
                    call.id = Some(format!("call_{}_{}", self.id, self.tool_calls));
                    self.tool_calls = self.tool_calls.saturating_add(1);
                }
                if !content.is_empty() || !tool_calls.is_empty() || !self.sent_role {
                    let delta = Delta {
                        role: (!self.sent_role).then(|| "assistant".to_string()),
                        content: Some(content),
                        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                    };
                    self.sent_role = true;
                    self.chunk_event(delta, None, out);
                }
                if answer.done {
                    let reason = ollama::finish_reason(answer.done_reason.as_deref(), self.tool_calls > 0);
                    self.chunk_event(Delta::default(), Some(reason.to_string()), out);
                }
            }
            OllamaRoute::Generate => {
                let text = answer.response.clone().unwrap_or_default();
                let reason = answer.done.then(|| ollama::finish_reason(answer.done_reason.as_deref(), false).to_string());
                if !text.is_empty() || reason.is_some() {
                    self.text_event(text, reason, out);
                }
            }
        }
        if answer.done {
            self.done = true;
            self.usage = answer.usage();
            if let (Some(usage), true) = (self.usage, self.client_wants_usage) {
                self.usage_event(usage, out);
            }
            encode_event(None, "[DONE]", out);
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
        if !self.done {
            self.done = true;
            error_event("upstream stream ended before it was complete", out);
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn model(&self) -> Option<&str> {
        Some(&self.model)
    }
}

#[cfg(test)]
mod tests {
    // The same tests run natively and, through wasm-bindgen-test, as wasm32.
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;
    use crate::sse::SseDecoder;

    const OPENAI_STREAM: &str = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n\
data: [DONE]\n\n";

    fn run(t: &mut dyn StreamTranslator, input: &[u8], split: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut start = 0;
        for &at in split {
            t.push(input.get(start..at).unwrap_or_default(), &mut out);
            start = at;
        }
        t.push(input.get(start..).unwrap_or_default(), &mut out);
        t.finish(&mut out);
        out
    }

    fn events(bytes: &[u8]) -> Vec<String> {
        let mut d = SseDecoder::new(0);
        let mut out = Vec::new();
        d.push(bytes, &mut out);
        d.finish(&mut out);
        out.into_iter().map(|e| e.data).collect()
    }

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

    const OLLAMA_STREAM: &str = "{\"model\":\"llama3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"The\"},\"done\":false}\n\
{\"model\":\"llama3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\" sky\"},\"done\":false}\n\
{\"model\":\"llama3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"total_duration\":1,\"prompt_eval_count\":26,\"eval_count\":2}\n";

    #[test]
    fn ollama_stream_becomes_openai_chunks_at_any_split() {
        let input = OLLAMA_STREAM.as_bytes();
        let mut reference = None;
        for at in 0..=input.len() {
            let mut t = OllamaStream::new(OllamaRoute::Chat, "abc", 7, "llama3", true);
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
        let mut t = OllamaStream::new(OllamaRoute::Chat, "abc", 7, "llama3", false);
        let out = run(&mut t, b"{\"error\":\"model not loaded\"}\n", &[]);
        let data = events(&out);
        assert_eq!(data.len(), 1);
        assert!(data[0].contains("model not loaded"));
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
        }
    }
}
