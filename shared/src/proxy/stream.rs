//! Streamed answers, translated event by event as chunks arrive. Each
//! translator keeps partial events between chunks and reports usage.

use crate::error::error_body;
use crate::openai::Usage;
use crate::sse::encode_event;

/// Bound on one unfinished event held between chunks.
pub(super) const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// What every translator says, then ends the stream, when a provider event
/// cannot be parsed: skipping it could silently lose part of the answer.
pub(super) const UNREADABLE_EVENT: &str = "upstream sent a stream event the gateway could not read";

pub trait StreamTranslator {
    /// Translates a chunk; whatever it completes is appended to `out`.
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>);
    /// The upstream ended: flush, and close the stream properly for the client.
    fn finish(&mut self, out: &mut Vec<u8>);
    fn usage(&self) -> Option<Usage>;
    fn model(&self) -> Option<&str>;
}

pub(super) fn error_event(message: &str, out: &mut Vec<u8>) {
    let body = error_body(message, "upstream_error", None);
    encode_event(None, &String::from_utf8_lossy(&body), out);
}

/// Drives translators in tests: the same input split anywhere.
#[cfg(test)]
pub(crate) mod testing {
    use super::StreamTranslator;
    use crate::sse::SseDecoder;

    pub fn run(t: &mut dyn StreamTranslator, input: &[u8], split: &[usize]) -> Vec<u8> {
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

    pub fn events(bytes: &[u8]) -> Vec<String> {
        let mut d = SseDecoder::new(0);
        let mut out = Vec::new();
        d.push(bytes, &mut out);
        d.finish(&mut out);
        out.into_iter().map(|e| e.data).collect()
    }
}
