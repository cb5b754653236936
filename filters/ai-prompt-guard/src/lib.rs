//! ai-prompt-guard: glue over `codec::guard`.

use codec::guard::{answer_texts, Block, Guard, StreamGuard};
use codec::metrics::name;
use codec::sse::{encode_event, SseDecoder, SseEvent};
use codec::GatewayError;
use host::body_filter::{register, Policy};
use std::rc::Rc;

host::proxy_wasm::main! {{
    register("ai-prompt-guard", Guard::from_json, |guard| Check { guard, stream: None });
}}

struct Check {
    guard: Rc<Guard>,
    stream: Option<StreamCheck>,
}

/// Streamed answers: events are checked as they complete; after a block,
/// the rest of the stream is replaced by one error event.
struct StreamCheck {
    decoder: SseDecoder,
    events: Vec<SseEvent>,
    check: StreamGuard,
    blocked: bool,
}

/// Logs the rule for the operator, counts it, and builds the refusal.
fn blocked(block: &Block, answer: bool, guard: &Guard) -> GatewayError {
    let rule = if answer { format!("answer_{}", block.rule_id()) } else { block.rule_id() };
    log::warn!("ai-prompt-guard: blocked: {}{block}", if answer { "answer " } else { "" });
    host::set_property("ai.guard", format!("blocked:{rule}").as_bytes());
    host::count(&name("ai_prompt_guard_blocked_total", &[("rule", &rule)]), 1);
    guard.rejection()
}

impl Policy for Check {
    fn name(&self) -> &'static str {
        "ai-prompt-guard"
    }

    fn max_request_body_size(&self) -> u64 {
        self.guard.max_request_body_size
    }

    fn request_body(&mut self, body: &[u8]) -> Result<Option<Vec<u8>>, GatewayError> {
        let verdict = self.guard.check_request(body)?;
        let outcome = if verdict.is_ok() { "allowed" } else { "blocked" };
        host::count(&name("ai_prompt_guard_requests_total", &[("outcome", outcome)]), 1);
        match verdict {
            Ok(()) => {
                host::set_property("ai.guard", b"allowed");
                Ok(None)
            }
            // The client learns only the configured message; the rule goes to the log.
            Err(block) => Err(blocked(&block, false, &self.guard)),
        }
    }

    fn looks_at_responses(&self) -> bool {
        self.guard.guard_response
    }

    fn wants_response(&mut self, status: u16, content_type: &str) -> bool {
        if !self.guard.guard_response || !(200..300).contains(&status) {
            return false;
        }
        if content_type.to_ascii_lowercase().starts_with("text/event-stream") {
            self.stream = Some(StreamCheck { decoder: SseDecoder::new(4 * 1024 * 1024), events: Vec::new(), check: StreamGuard::default(), blocked: false });
        }
        true
    }

    fn response_body(&mut self, body: &[u8]) -> Option<GatewayError> {
        let texts = answer_texts(body);
        let block = texts.iter().find_map(|t| self.guard.check_answer(t).err())?;
        Some(blocked(&block, true, &self.guard))
    }

    fn response_chunk(&mut self, chunk: &[u8], end_of_stream: bool) -> Vec<u8> {
        let Some(s) = self.stream.as_mut() else { return chunk.to_vec() };
        if s.blocked {
            return Vec::new();
        }
        s.decoder.push(chunk, &mut s.events);
        if end_of_stream {
            s.decoder.finish(&mut s.events);
        }
        let mut out = Vec::with_capacity(chunk.len());
        for event in s.events.drain(..) {
            if let Err(block) = s.check.check_event(&self.guard, &event.data) {
                let err = blocked(&block, true, &self.guard);
                encode_event(None, &String::from_utf8_lossy(&err.to_json()), &mut out);
                s.blocked = true;
                break;
            }
            out.extend_from_slice(&event.raw);
        }
        out
    }
}
