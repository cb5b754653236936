//! ai-prompt-guard: allow and deny patterns over prompts (and, optionally,
//! over the model's answers), compiled once at load.

use crate::config::{check_range, check_strings, parse_strict, ConfigError};
use crate::error::GatewayError;
use crate::patterns::PatternSet;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::marker::PhantomData;

const MAX_PATTERNS: usize = 100;
const MAX_PATTERN_LEN: usize = 500;
/// Streamed answers: each new piece of text is scanned together with this
/// many bytes of the text before it (per choice), so a match that
/// straddles events is found as long as it is no longer than this plus the
/// new piece, and the work per event does not grow with the answer.
pub const STREAM_OVERLAP: usize = 512;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGuardConfig {
    #[serde(default)]
    allow_patterns: Vec<String>,
    #[serde(default)]
    deny_patterns: Vec<String>,
    #[serde(default)]
    allow_all_conversation_history: bool,
    #[serde(default)]
    match_all_roles: bool,
    #[serde(default = "default_max_body")]
    max_request_body_size: u64,
    #[serde(default)]
    guard_response: bool,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    error_code: Option<u16>,
}

fn default_max_body() -> u64 {
    crate::config::DEFAULT_MAX_REQUEST_BODY_SIZE
}

pub const DEFAULT_MESSAGE: &str = "the request was blocked by the gateway's content policy";

pub struct Guard {
    /// Each list is one automaton: one pass over a text, which also names
    /// the pattern that matched.
    allow: Option<PatternSet>,
    deny: Option<PatternSet>,
    pub allow_all_conversation_history: bool,
    pub match_all_roles: bool,
    pub max_request_body_size: u64,
    pub guard_response: bool,
    pub error_message: String,
    pub error_code: u16,
}

/// Why a text was refused: the rule, for the operator's log only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Denied { index: usize },
    NotAllowed,
}

impl Block {
    /// A short id for metrics and filter state: `deny_1`, `no_allow_match`.
    pub fn rule_id(&self) -> String {
        match self {
            Block::Denied { index } => format!("deny_{index}"),
            Block::NotAllowed => "no_allow_match".to_string(),
        }
    }
}

impl std::fmt::Display for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Block::Denied { index } => write!(f, "matched deny_patterns[{index}]"),
            Block::NotAllowed => write!(f, "matched no allow pattern"),
        }
    }
}

fn compile(field: &str, patterns: &[String]) -> Result<Option<PatternSet>, ConfigError> {
    check_strings(field, patterns, MAX_PATTERNS, MAX_PATTERN_LEN)?;
    PatternSet::new(field, patterns)
}

/// What the guard reads of a request: roles and texts only, borrowed from
/// the body unless an escape forces a copy. (Parsing whole `ChatMessage`s
/// would buffer every message for its flattened extra fields.)
#[derive(Deserialize)]
struct Scanned<'a> {
    #[serde(default, borrow)]
    messages: Option<Vec<Turn<'a>>>,
    #[serde(default, borrow)]
    prompt: Option<PromptTexts<'a>>,
    /// Anthropic's Messages API keeps the system prompt out of `messages`.
    #[serde(default, borrow)]
    system: Option<Texts<'a>>,
    /// OpenAI's Responses API: `input` items in place of `messages`, the
    /// system prompt in `instructions`.
    #[serde(default, borrow)]
    input: Option<InputTurns<'a>>,
    #[serde(default, borrow)]
    instructions: Option<Texts<'a>>,
}

/// A Responses `input` as turns: a string is the user's; a message item
/// keeps its role; a tool's output is the `tool` role's, as in chat.
/// Other items (the model's own function calls, reasoning) and an
/// embeddings input's token ids carry no prompt text.
struct InputTurns<'a>(Vec<Turn<'a>>);

#[derive(Deserialize)]
struct InputItem<'a> {
    #[serde(default, borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    content: Option<Texts<'a>>,
    #[serde(default, borrow)]
    output: Option<Texts<'a>>,
}

/// A plain-text input: the user's turn.
fn user_turn(text: Cow<'_, str>) -> Turn<'_> {
    Turn { role: Cow::Borrowed("user"), content: Some(Texts(vec![text])) }
}

/// One element of an `input` list: an item, a string (embeddings), or
/// neither (token ids).
struct MaybeItem<'a>(Option<Turn<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for MaybeItem<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = MaybeItem<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an input item")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeItem(Some(user_turn(Cow::Borrowed(s)))))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(MaybeItem(Some(user_turn(Cow::Owned(s.to_string())))))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let item = InputItem::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(MaybeItem(match (item.output, item.role) {
                    (Some(output), _) => Some(Turn { role: Cow::Borrowed("tool"), content: Some(output) }),
                    (None, Some(role)) => Some(Turn { role, content: item.content }),
                    (None, None) => None,
                }))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeItem(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeItem(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeItem(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeItem(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeItem(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(MaybeItem(None))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for InputTurns<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = InputTurns<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of input items")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(InputTurns(vec![user_turn(Cow::Borrowed(s))]))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(InputTurns(vec![user_turn(Cow::Owned(s.to_string()))]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut turns = Vec::new();
                while let Some(item) = seq.next_element::<MaybeItem<'a>>()? {
                    turns.extend(item.0);
                }
                Ok(InputTurns(turns))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

#[derive(Deserialize)]
struct Turn<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(default, borrow)]
    content: Option<Texts<'a>>,
}

/// Message content: a string, or parts (each with a `type`) whose `text`
/// is kept; images and other parts carry none.
struct Texts<'a>(Vec<Cow<'a, str>>);

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(rename = "type", borrow)]
    _kind: Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

impl Texts<'_> {
    /// One text to scan: parts joined by newlines (borrowed when single).
    fn joined(&self) -> Cow<'_, str> {
        match self.0.as_slice() {
            [one] => Cow::Borrowed(one.as_ref()),
            many => Cow::Owned(many.join("\n")),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Texts<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Texts<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of content parts")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Texts(vec![Cow::Borrowed(s)]))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Texts(vec![Cow::Owned(s.to_string())]))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(Texts(vec![Cow::Owned(s)]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut texts = Vec::new();
                while let Some(part) = seq.next_element::<Part<'a>>()? {
                    texts.extend(part.text);
                }
                Ok(Texts(texts))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A completions `prompt`: a string or a list of strings are checked; token
/// arrays (or anything else) carry no text.
struct PromptTexts<'a>(Vec<Cow<'a, str>>);

/// One element of a prompt list: a string, or not (a token id, a list).
struct MaybeText<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for MaybeText<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A nested list (token ids) is no text, whatever it holds.
        d.deserialize_any(PromptVisitor { nested: true, lifetime: PhantomData }).map(|p| MaybeText(if p.strings { p.texts.into_iter().next() } else { None }))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for PromptTexts<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PromptVisitor { nested: false, lifetime: PhantomData }).map(|p| PromptTexts(if p.strings { p.texts } else { Vec::new() }))
    }
}

/// What a prompt value held: its texts, and whether it was only strings.
struct PromptValue<'a> {
    texts: Vec<Cow<'a, str>>,
    strings: bool,
}

/// `nested`: visiting an element of the prompt list.
struct PromptVisitor<'a> {
    nested: bool,
    lifetime: PhantomData<&'a ()>,
}

impl<'a> PromptVisitor<'a> {
    fn other<E>() -> Result<PromptValue<'a>, E> {
        Ok(PromptValue { texts: Vec::new(), strings: false })
    }
}

impl<'de: 'a, 'a> Visitor<'de> for PromptVisitor<'a> {
    type Value = PromptValue<'a>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a prompt")
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(PromptValue { texts: vec![Cow::Borrowed(s)], strings: true })
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(PromptValue { texts: vec![Cow::Owned(s.to_string())], strings: true })
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(PromptValue { texts: vec![Cow::Owned(s)], strings: true })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if self.nested {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Self::other();
        }
        let mut texts = Vec::new();
        let mut strings = true;
        while let Some(item) = seq.next_element::<MaybeText<'a>>()? {
            match item.0 {
                Some(t) => texts.push(t),
                None => strings = false,
            }
        }
        Ok(PromptValue { texts, strings })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Self::other()
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Self::other()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Self::other()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Self::other()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Self::other()
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Self::other()
    }
}

impl Guard {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawGuardConfig = parse_strict(bytes)?;
        if raw.allow_patterns.is_empty() && raw.deny_patterns.is_empty() {
            return Err(ConfigError::new("allow_patterns", "at least one of allow_patterns and deny_patterns is required"));
        }
        check_range("max_request_body_size", Some(raw.max_request_body_size), 1, 128 * 1024 * 1024)?;
        let error_code = raw.error_code.unwrap_or(400);
        check_range("error_code", Some(error_code), 400, 599)?;
        if raw.error_message.as_ref().is_some_and(|m| m.is_empty() || m.len() > 1024) {
            return Err(ConfigError::new("error_message", "must be 1 to 1024 characters"));
        }
        let allow = compile("allow_patterns", &raw.allow_patterns)?;
        let deny = compile("deny_patterns", &raw.deny_patterns)?;
        Ok(Guard {
            allow,
            deny,
            allow_all_conversation_history: raw.allow_all_conversation_history,
            match_all_roles: raw.match_all_roles,
            max_request_body_size: raw.max_request_body_size,
            guard_response: raw.guard_response,
            error_message: raw.error_message.unwrap_or_else(|| DEFAULT_MESSAGE.to_string()),
            error_code,
        })
    }

    /// Any deny match refuses, even if an allow pattern also matches; with
    /// allow patterns, every checked text must match one of them.
    pub fn check_text(&self, text: &str) -> Result<(), Block> {
        self.check_answer(text)?;
        if self.allow.as_ref().is_some_and(|allow| !allow.is_match(text)) {
            return Err(Block::NotAllowed);
        }
        Ok(())
    }

    /// Deny patterns only: for model answers.
    pub fn check_answer(&self, text: &str) -> Result<(), Block> {
        match self.deny.as_ref().and_then(|deny| deny.first_match(text)) {
            Some(index) => Err(Block::Denied { index }),
            None => Ok(()),
        }
    }

    /// Checks a request body: chat `messages` (text of string content and of
    /// text parts; images are not a reason to refuse) and completions
    /// `prompt`. `Ok(Err(block))` is a refusal; `Err` a malformed body.
    pub fn check_request(&self, body: &[u8]) -> Result<Result<(), Block>, GatewayError> {
        let parsed: Scanned = serde_json::from_slice(body)
            .map_err(|e| GatewayError::bad_request(format!("request body is not a valid chat, completions or responses request: {e}")))?;
        for system in [parsed.system.as_ref(), parsed.instructions.as_ref()].into_iter().flatten() {
            if let (true, false) = (self.match_all_roles, self.allow_all_conversation_history) {
                if let Err(block) = self.check_text(&system.joined()) {
                    return Ok(Err(block));
                }
            }
        }
        // Both lists, should a body carry both: neither can hide the other.
        for messages in [parsed.messages.as_ref(), parsed.input.as_ref().map(|i| &i.0)].into_iter().flatten() {
            let checked: Vec<&Turn> = messages.iter().filter(|m| self.match_all_roles || m.role == "user").collect();
            let checked = match (self.allow_all_conversation_history, checked.last()) {
                (true, Some(last)) => vec![*last],
                _ => checked,
            };
            for m in checked {
                if let Some(content) = &m.content {
                    if let Err(block) = self.check_text(&content.joined()) {
                        return Ok(Err(block));
                    }
                }
            }
        }
        if let Some(prompt) = &parsed.prompt {
            for text in &prompt.0 {
                if let Err(block) = self.check_text(text) {
                    return Ok(Err(block));
                }
            }
        }
        Ok(Ok(()))
    }

    pub fn rejection(&self) -> GatewayError {
        GatewayError::with_status(self.error_code, self.error_message.clone()).with_code("content_blocked")
    }
}

/// The answer texts of a whole OpenAI response: chat or completions
/// `choices`, or a Responses API `response` object's `output_text` parts.
pub fn answer_texts(body: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let choices = v.get("choices").and_then(|c| c.as_array()).into_iter().flatten().filter_map(|c| {
        c.get("message").and_then(|m| m.get("content")).and_then(|t| t.as_str()).or_else(|| c.get("text").and_then(|t| t.as_str()))
    });
    let output = v.get("output").and_then(|o| o.as_array()).into_iter().flatten();
    let parts = output.filter_map(|item| item.get("content").and_then(|c| c.as_array())).flatten();
    let output_texts = parts.filter(|p| p.get("type").and_then(|t| t.as_str()) == Some("output_text")).filter_map(|p| p.get("text").and_then(|t| t.as_str()));
    choices.chain(output_texts).map(str::to_string).collect()
}

/// The deny check of a streamed OpenAI answer, event by event: per choice
/// index (`n > 1` streams interleave), the new text is scanned with the
/// last `STREAM_OVERLAP` bytes of that choice's earlier text.
#[derive(Debug, Default)]
pub struct StreamGuard {
    /// (choice index, tail of its text so far)
    tails: Vec<(u64, String)>,
    scratch: String,
    /// Bytes scanned so far, for tests and benchmarks: it must grow with
    /// the events, not with the square of the answer.
    pub scanned_bytes: u64,
}

#[derive(Deserialize)]
struct StreamChunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<StreamChoice<'a>>,
    /// Responses API events: `response.output_text.delta` carries the new
    /// text in `delta`, per `output_index`.
    #[serde(default, rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    delta: Option<Cow<'a, str>>,
    #[serde(default)]
    output_index: u64,
}

#[derive(Deserialize)]
struct StreamChoice<'a> {
    #[serde(default)]
    index: u64,
    #[serde(default, borrow)]
    delta: Option<StreamDelta<'a>>,
    /// Completions streams carry `text`.
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct StreamDelta<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
}

impl StreamGuard {
    /// One SSE event's data; events that are not chunks with text pass.
    pub fn check_event(&mut self, guard: &Guard, data: &str) -> Result<(), Block> {
        let Ok(chunk) = serde_json::from_str::<StreamChunk>(data) else { return Ok(()) };
        if chunk.kind.as_deref() == Some("response.output_text.delta") {
            if let Some(piece) = chunk.delta.as_deref().filter(|d| !d.is_empty()) {
                self.check_piece(guard, chunk.output_index, piece)?;
            }
        }
        for choice in &chunk.choices {
            let piece = choice.delta.as_ref().and_then(|d| d.content.as_deref()).or(choice.text.as_deref()).unwrap_or_default();
            if !piece.is_empty() {
                self.check_piece(guard, choice.index, piece)?;
            }
        }
        Ok(())
    }

    fn check_piece(&mut self, guard: &Guard, index: u64, piece: &str) -> Result<(), Block> {
        let slot = match self.tails.iter().position(|(i, _)| *i == index) {
            Some(slot) => slot,
            None => {
                self.tails.push((index, String::new()));
                self.tails.len() - 1
            }
        };
        let Some((_, tail)) = self.tails.get_mut(slot) else { return Ok(()) };
        self.scratch.clear();
        self.scratch.push_str(tail);
        self.scratch.push_str(piece);
        self.scanned_bytes = self.scanned_bytes.saturating_add(self.scratch.len() as u64);
        guard.check_answer(&self.scratch)?;
        let mut cut = self.scratch.len().saturating_sub(STREAM_OVERLAP);
        while !self.scratch.is_char_boundary(cut) {
            cut = cut.saturating_add(1);
        }
        tail.clear();
        tail.push_str(self.scratch.get(cut..).unwrap_or_default());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    fn guard(json: &str) -> Guard {
        Guard::from_json(json.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn verdict(g: &Guard, body: &str) -> Result<(), Block> {
        g.check_request(body.as_bytes()).unwrap()
    }

    #[test]
    fn deny_wins_over_allow() {
        let g = guard(r#"{"allow_patterns":["(?i)weather"],"deny_patterns":["(?i)password"]}"#);
        assert_eq!(verdict(&g, r#"{"messages":[{"role":"user","content":"weather today?"}]}"#), Ok(()));
        assert_eq!(
            verdict(&g, r#"{"messages":[{"role":"user","content":"weather and my PASSWORD"}]}"#),
            Err(Block::Denied { index: 0 })
        );
        assert_eq!(verdict(&g, r#"{"messages":[{"role":"user","content":"stock tips"}]}"#), Err(Block::NotAllowed));
    }

    #[test]
    fn the_combined_scan_names_the_same_rule() {
        let g = guard(r#"{"deny_patterns":["^start","(?i)b","c$"],"allow_patterns":["x","(?i)Y"]}"#);
        assert_eq!(g.check_text("start x"), Err(Block::Denied { index: 0 }));
        assert_eq!(g.check_text("a B y"), Err(Block::Denied { index: 1 }));
        assert_eq!(g.check_text("y c"), Err(Block::Denied { index: 2 }));
        assert_eq!(g.check_text("not start, y"), Ok(()), "anchors keep their meaning in the alternation");
        assert_eq!(g.check_text("zzz"), Err(Block::NotAllowed));
    }

    #[test]
    fn history_and_roles() {
        let body = r#"{"messages":[{"role":"system","content":"ignore the password rule"},{"role":"user","content":"my password is x"},{"role":"assistant","content":"ok"},{"role":"user","content":"hello"}]}"#;
        let g = guard(r#"{"deny_patterns":["password"]}"#);
        assert!(verdict(&g, body).is_err(), "the whole history is checked by default");
        let g = guard(r#"{"deny_patterns":["password"],"allow_all_conversation_history":true}"#);
        assert_eq!(verdict(&g, body), Ok(()), "only the latest user message");
        let g = guard(r#"{"deny_patterns":["rule"]}"#);
        assert_eq!(verdict(&g, body), Ok(()), "system content is not checked by default");
        let g = guard(r#"{"deny_patterns":["rule"],"match_all_roles":true}"#);
        assert!(verdict(&g, body).is_err());
    }

    #[test]
    fn a_messages_api_body_is_checked_too() {
        let g = guard(r#"{"deny_patterns":["password"],"match_all_roles":true}"#);
        let blocks = r#"{"max_tokens":9,"system":[{"type":"text","text":"tell the password"}],"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}"#;
        assert!(verdict(&g, blocks).is_err(), "a top-level system prompt is checked with match_all_roles");
        let user = r#"{"max_tokens":9,"messages":[{"role":"user","content":[{"type":"text","text":"my password"}]}]}"#;
        assert!(verdict(&guard(r#"{"deny_patterns":["password"]}"#), user).is_err());
    }

    #[test]
    fn a_responses_body_is_checked_by_its_input_items_and_instructions() {
        let g = guard(r#"{"deny_patterns":["password"]}"#);
        assert!(verdict(&g, r#"{"input":"tell me the password"}"#).is_err(), "a string input is the user's");
        let items = r#"{"input":[{"role":"user","content":"hi"},{"type":"message","role":"user","content":[{"type":"input_text","text":"the password"},{"type":"input_image","image_url":"https://x"}]}]}"#;
        assert!(verdict(&g, items).is_err());
        let tool = r#"{"input":[{"role":"user","content":"hi"},{"type":"function_call","call_id":"c","name":"password","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"password: x"}]}"#;
        assert_eq!(verdict(&g, tool), Ok(()), "a tool's output is not the user's, as in chat");
        let all = guard(r#"{"deny_patterns":["password"],"match_all_roles":true}"#);
        assert!(verdict(&all, tool).is_err(), "but is checked with match_all_roles");
        assert!(verdict(&all, r#"{"instructions":"reveal the password","input":"hi"}"#).is_err());
        assert_eq!(verdict(&g, r#"{"instructions":"reveal the password","input":"hi"}"#), Ok(()), "instructions are the system prompt");
        let both = r#"{"messages":[{"role":"user","content":"fine"}],"input":"the password"}"#;
        assert!(verdict(&g, both).is_err(), "one list cannot hide the other");
        assert_eq!(verdict(&g, r#"{"input":[[1,2],3,{"type":"reasoning"}]}"#), Ok(()), "token ids and reasoning carry no prompt");
        assert!(verdict(&g, r#"{"input":["fine","password"]}"#).is_err(), "an embeddings input list is checked");
        assert!(g.check_request(br#"{"input":{"role":"user"}}"#).is_err(), "a malformed input is an error, not a pass");
    }

    #[test]
    fn responses_answers_and_streams_are_checked() {
        let g = guard(r#"{"deny_patterns":["secret sauce"],"guard_response":true}"#);
        let answer = r#"{"object":"response","output":[{"type":"function_call","arguments":"{}"},{"type":"message","content":[{"type":"output_text","text":"the secret sauce is"}]}]}"#;
        assert_eq!(answer_texts(answer.as_bytes()), ["the secret sauce is"]);
        let mut s = StreamGuard::default();
        let delta = |i: u64, d: &str| format!(r#"{{"type":"response.output_text.delta","output_index":{i},"content_index":0,"delta":"{d}"}}"#);
        assert_eq!(s.check_event(&g, &delta(0, "the secret ")), Ok(()));
        assert_eq!(s.check_event(&g, &delta(1, "sauce")), Ok(()), "another item's text does not join this one");
        assert!(s.check_event(&g, &delta(0, "sauce")).is_err(), "a match across events is found");
        let args = r#"{"type":"response.function_call_arguments.delta","output_index":2,"delta":"secret sauce"}"#;
        assert_eq!(StreamGuard::default().check_event(&g, args), Ok(()), "tool arguments are not answer text");
    }

    #[test]
    fn multimodal_text_parts_and_completions_prompts() {
        let g = guard(r#"{"deny_patterns":["secret"]}"#);
        let parts = r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA"}},{"type":"text","text":"a secret"}]}]}"#;
        assert!(verdict(&g, parts).is_err());
        let image_only = r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/secret.png"}}]}]}"#;
        assert_eq!(verdict(&g, image_only), Ok(()), "images are not refused");
        assert!(verdict(&g, r#"{"prompt":["fine","secret"]}"#).is_err());
        assert_eq!(verdict(&g, r#"{"prompt":"fine"}"#), Ok(()));
    }

    /// The guard's verdicts as they were when it parsed whole `ChatMessage`s:
    /// the lean reader must decide every body the same way.
    fn typed_verdict(g: &Guard, body: &str) -> Option<Result<(), Block>> {
        use crate::openai::{ChatMessage, Content, Prompt};
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            messages: Option<Vec<ChatMessage>>,
            #[serde(default)]
            prompt: Option<Prompt>,
            #[serde(default)]
            system: Option<Content>,
        }
        let parsed: Body = serde_json::from_str(body).ok()?;
        if let (true, false, Some(system)) = (g.match_all_roles, g.allow_all_conversation_history, &parsed.system) {
            if let Err(b) = g.check_text(&system.joined_text("\n")) {
                return Some(Err(b));
            }
        }
        if let Some(messages) = &parsed.messages {
            let checked: Vec<&ChatMessage> = messages.iter().filter(|m| g.match_all_roles || m.role == "user").collect();
            let checked = match (g.allow_all_conversation_history, checked.last()) {
                (true, Some(last)) => vec![*last],
                _ => checked,
            };
            for m in checked {
                if let Some(Err(b)) = m.content.as_ref().map(|c| g.check_text(&c.joined_text("\n"))) {
                    return Some(Err(b));
                }
            }
        }
        let mut verdict = Ok(());
        if let Some(p) = &parsed.prompt {
            p.for_each_text(|t| {
                if verdict.is_ok() {
                    verdict = g.check_text(t);
                }
            });
        }
        Some(verdict)
    }

    #[test]
    fn the_lean_reader_decides_as_the_typed_parse_did() {
        let bodies = [
            r#"{"messages":[{"role":"user","content":"a secret"}]}"#,
            r#"{"messages":[{"role":"user","content":"a \u0073ecret, escaped"}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"sec"},{"type":"text","text":"ret"}]}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"secret\nb"}]}]}"#,
            r#"{"messages":[{"role":"user","content":[{"text":"secret"}]}]}"#,
            r#"{"messages":[{"role":"user","content":null},{"role":"assistant","content":"secret"}]}"#,
            r#"{"messages":[{"role":"system","content":"secret"},{"role":"user","content":"fine","name":"n","tool_calls":[]}]}"#,
            r#"{"messages":[{"role":"user","content":"secret"},{"role":"user","content":"fine"}]}"#,
            r#"{"messages":[{"content":"secret"}]}"#,
            r#"{"messages":{"role":"user"}}"#,
            r#"{"messages":[{"role":"user","content":{"text":"secret"}}]}"#,
            r#"{"system":"secret","messages":[{"role":"user","content":"fine"}]}"#,
            r#"{"system":[{"type":"text","text":"secret"}],"messages":[]}"#,
            r#"{"prompt":"secret"}"#,
            r#"{"prompt":["fine","secret"]}"#,
            r#"{"prompt":["secret",1]}"#,
            r#"{"prompt":[[1,2],[3]]}"#,
            r#"{"prompt":[["secret"]]}"#,
            r#"{"prompt":{"secret":1}}"#,
            r#"{"prompt":null,"messages":null}"#,
            r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"fine"}],"prompt":"secret"}"#,
            r#"[1,2]"#,
        ];
        for config in [
            r#"{"deny_patterns":["secret"]}"#,
            r#"{"deny_patterns":["secret"],"match_all_roles":true}"#,
            r#"{"deny_patterns":["secret"],"allow_all_conversation_history":true}"#,
            r#"{"allow_patterns":["fine"],"match_all_roles":true}"#,
            r#"{"deny_patterns":["c\nb","secret"]}"#,
        ] {
            let g = guard(config);
            for body in bodies {
                let lean = g.check_request(body.as_bytes()).ok();
                assert_eq!(lean, typed_verdict(&g, body), "{config} on {body}");
            }
        }
    }

    #[test]
    fn bad_bodies_are_errors_not_passes() {
        let g = guard(r#"{"deny_patterns":["x"]}"#);
        assert!(g.check_request(b"{not json").is_err());
        assert!(g.check_request(br#"{"messages":"x"}"#).is_err());
    }

    #[test]
    fn config_errors_name_the_pattern() {
        let e = Guard::from_json(br#"{"deny_patterns":["ok","(unclosed"]}"#).err().unwrap();
        assert_eq!(e.path, "deny_patterns[1]");
        assert!(e.message.contains("invalid pattern"));
        assert_eq!(Guard::from_json(b"{}").err().map(|e| e.path), Some("allow_patterns".into()));
        let long = format!(r#"{{"deny_patterns":["{}"]}}"#, "a".repeat(501));
        assert_eq!(Guard::from_json(long.as_bytes()).err().map(|e| e.path), Some("deny_patterns[0]".into()));
        assert_eq!(Guard::from_json(br#"{"deny_patterns":["a"],"error_code":200}"#).err().map(|e| e.path), Some("error_code".into()));
    }

    #[test]
    fn rejection_is_generic_by_default() {
        let g = guard(r#"{"deny_patterns":["x"]}"#);
        let e = g.rejection();
        assert_eq!(e.status, 400);
        assert_eq!(e.message, DEFAULT_MESSAGE);
        let g = guard(r#"{"deny_patterns":["x"],"error_message":"nope","error_code":403}"#);
        assert_eq!((g.rejection().status, g.rejection().message), (403, "nope".to_string()));
    }

    #[test]
    fn whole_answers() {
        assert_eq!(answer_texts(br#"{"choices":[{"message":{"content":"a"}},{"text":"b"}]}"#), vec!["a", "b"]);
    }

    fn chunk(index: u64, text: &str) -> String {
        serde_json::json!({"choices": [{"index": index, "delta": {"content": text}}]}).to_string()
    }

    #[test]
    fn a_match_split_across_events_is_found() {
        let g = guard(r#"{"deny_patterns":["secret key"]}"#);
        let mut s = StreamGuard::default();
        assert_eq!(s.check_event(&g, &chunk(0, "here is the sec")), Ok(()));
        assert_eq!(s.check_event(&g, &chunk(0, "ret key: 42")), Err(Block::Denied { index: 0 }));
        let mut s = StreamGuard::default();
        let completions = serde_json::json!({"choices": [{"index": 0, "text": "ret key"}]}).to_string();
        s.check_event(&g, &chunk(0, "a sec")).unwrap();
        assert!(s.check_event(&g, &completions).is_err(), "completions streams carry text");
    }

    #[test]
    fn choices_are_checked_apart() {
        let g = guard(r#"{"deny_patterns":["secret key"]}"#);
        let mut s = StreamGuard::default();
        // Interleaved: choice 0 says "secret", choice 1 says " key": no match.
        s.check_event(&g, &chunk(0, "a secret")).unwrap();
        assert_eq!(s.check_event(&g, &chunk(1, " key")), Ok(()), "text of another choice is not joined");
        s.check_event(&g, &chunk(1, "my secr")).unwrap();
        assert!(s.check_event(&g, &chunk(1, "et key")).is_err(), "a choice's own split match is found");
        let two = serde_json::json!({"choices": [{"index": 0, "delta": {"content": "fine"}}, {"index": 1, "delta": {"content": "secret key"}}]}).to_string();
        assert!(StreamGuard::default().check_event(&g, &two).is_err(), "every choice of one chunk is checked");
    }

    #[test]
    fn work_per_event_does_not_grow_with_the_answer() {
        let g = guard(r#"{"deny_patterns":["(?i)forbidden phrase"]}"#);
        let mut s = StreamGuard::default();
        let piece = "lorem ipsum dolor sit amet, ";
        let mut last = 0;
        // About 200 KB in 7,000 events.
        for i in 0..7_000 {
            s.check_event(&g, &chunk(0, piece)).unwrap();
            let this_event = s.scanned_bytes - last;
            last = s.scanned_bytes;
            assert!(this_event as usize <= STREAM_OVERLAP + piece.len(), "event {i} scanned {this_event} bytes");
        }
        assert!(s.check_event(&g, &chunk(0, "a FORBIDDEN ")).is_ok());
        assert!(s.check_event(&g, &chunk(0, "phrase")).is_err(), "still caught at the end of a long answer");
        let multibyte = "é".repeat(STREAM_OVERLAP);
        assert!(StreamGuard::default().check_event(&g, &chunk(0, &multibyte)).is_ok(), "tails are cut on character boundaries");
    }
}
