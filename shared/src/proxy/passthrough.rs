//! Streams the gateway does not translate (`route_type: preserve`): the
//! bytes go to the client exactly as they came, whatever API they belong to
//! (OpenAI chat chunks ending in `[DONE]`, the Responses API's named events
//! ending in `response.completed`, anything else). Usage is read on the way
//! from either API's shape; the end of the stream is never judged, since
//! each API ends its own way.

use super::stream::{StreamTranslator, MAX_EVENT_BYTES};
use crate::openai::Usage;
use crate::sse::{SseDecoder, SseEvent};
use serde::Deserialize;

pub struct PassthroughStream {
    decoder: SseDecoder,
    events: Vec<SseEvent>,
    usage: Option<Usage>,
    model: Option<String>,
}

/// Chat's `prompt_tokens`/`completion_tokens` or the Responses API's
/// `input_tokens`/`output_tokens`.
#[derive(Deserialize)]
struct AnyUsage {
    #[serde(default, alias = "input_tokens")]
    prompt_tokens: u64,
    #[serde(default, alias = "output_tokens")]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<AnyUsage>,
    /// Responses API events carry the response object here.
    #[serde(default)]
    response: Option<Box<Probe>>,
}

/// A complete answer of either API, left as it came: its usage and model.
pub fn answer(body: &[u8]) -> super::response::Answer {
    match serde_json::from_slice::<Probe>(body) {
        Ok(probe) => {
            let probe = match probe.response {
                Some(inner) => *inner,
                None => probe,
            };
            super::response::Answer { body: None, usage: probe.usage.map(AnyUsage::into_usage), model: probe.model, problem: None }
        }
        Err(e) => super::response::Answer { problem: Some(format!("no usage in upstream body: {e}")), ..Default::default() },
    }
}

impl AnyUsage {
    fn into_usage(self) -> Usage {
        let mut usage = Usage::new(self.prompt_tokens, self.completion_tokens);
        usage.total_tokens = self.total_tokens.unwrap_or(usage.total_tokens);
        usage
    }
}

impl PassthroughStream {
    pub fn new() -> Self {
        PassthroughStream { decoder: SseDecoder::new(MAX_EVENT_BYTES), events: Vec::new(), usage: None, model: None }
    }

    fn read(&mut self) {
        for event in self.events.drain(..) {
            if self.model.is_some() && !event.data.contains("\"usage\"") {
                continue; // nothing to learn: not parsed
            }
            let Ok(probe) = serde_json::from_str::<Probe>(&event.data) else { continue };
            let probe = match probe.response {
                Some(inner) => *inner,
                None => probe,
            };
            if self.model.is_none() {
                self.model = probe.model;
            }
            if let Some(u) = probe.usage {
                self.usage = Some(u.into_usage());
            }
        }
    }
}

impl Default for PassthroughStream {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamTranslator for PassthroughStream {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(chunk);
        self.decoder.push(chunk, &mut self.events);
        self.read();
    }

    fn finish(&mut self, _out: &mut Vec<u8>) {
        self.decoder.finish(&mut self.events);
        self.read();
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
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;
    use crate::proxy::stream::testing::run;

    /// A Responses API stream as OpenAI sends it: named events, no `[DONE]`.
    const RESPONSES_STREAM: &str = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"model\":\"gpt-4o-2024-08-06\",\"status\":\"in_progress\",\"usage\":null}}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\"}\n\n\
event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"model\":\"gpt-4o-2024-08-06\",\"status\":\"completed\",\"usage\":{\"input_tokens\":9,\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens\":2,\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":11}}}\n\n";

    #[test]
    fn a_responses_stream_passes_byte_for_byte_at_every_split_and_its_usage_is_read() {
        let input = RESPONSES_STREAM.as_bytes();
        for at in 0..=input.len() {
            let mut t = PassthroughStream::new();
            let out = run(&mut t, input, &[at]);
            assert_eq!(out, input, "split at {at}: no byte changed, no error appended");
            assert_eq!(t.usage(), Some(Usage::new(9, 2)), "split at {at}");
            assert_eq!(t.model(), Some("gpt-4o-2024-08-06"));
        }
    }

    #[test]
    fn a_chat_stream_passes_too_and_garbage_is_forwarded_untouched() {
        let chat = b"data: {\"model\":\"m\",\"choices\":[]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\ndata: [DONE]\n\n";
        let mut t = PassthroughStream::new();
        assert_eq!(run(&mut t, chat, &[17]), chat);
        assert_eq!(t.usage().map(|u| u.total_tokens), Some(7));
        let garbage = b"\xff\x00data: {not json\n\n";
        let mut t = PassthroughStream::new();
        assert_eq!(run(&mut t, garbage, &[3]), garbage);
        assert_eq!(t.usage(), None);
    }
}
