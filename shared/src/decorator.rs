//! ai-prompt-decorator: messages prepended before the first message and
//! appended after the last; the client's messages are left as they are.

use crate::config::{check_range, parse_strict, ConfigError};
use crate::error::GatewayError;
use crate::openai::ChatMessage;
use serde::Deserialize;
use serde_json::value::RawValue;

const MAX_PROMPTS: usize = 16;
const MAX_CONTENT: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptMessage {
    pub role: Role,
    pub content: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Prompts {
    #[serde(default)]
    prepend: Vec<PromptMessage>,
    #[serde(default)]
    append: Vec<PromptMessage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    prompts: Prompts,
    #[serde(default = "default_max_body")]
    max_request_body_size: u64,
}

fn default_max_body() -> u64 {
    crate::config::DEFAULT_MAX_REQUEST_BODY_SIZE
}

pub struct Decorator {
    /// The messages to insert, as JSON array elements (`{...},{...}`),
    /// encoded once at load: a request only splices them in.
    prepend: String,
    append: String,
    pub max_request_body_size: u64,
}

/// A chat body as far as the decorator reads it: where `messages` is, or a
/// Responses API body's `input` (a string, or a list of items, of which a
/// `{role, content}` message is one).
#[derive(Deserialize)]
struct ChatShape<'a> {
    #[serde(default, borrow)]
    messages: Option<&'a RawValue>,
    #[serde(default, borrow)]
    input: Option<&'a RawValue>,
}

fn elements(messages: &[ChatMessage]) -> Result<String, ConfigError> {
    let array = serde_json::to_string(messages).map_err(|e| ConfigError::new("prompts", e.to_string()))?;
    Ok(array.strip_prefix('[').and_then(|a| a.strip_suffix(']')).unwrap_or_default().to_string())
}

fn messages(field: &str, prompts: &[PromptMessage]) -> Result<Vec<ChatMessage>, ConfigError> {
    if prompts.len() > MAX_PROMPTS {
        return Err(ConfigError::new(field, format!("{} entries, at most {MAX_PROMPTS} allowed", prompts.len())));
    }
    prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if p.content.is_empty() || p.content.len() > MAX_CONTENT {
                return Err(ConfigError::new(format!("{field}[{i}].content"), format!("must be 1 to {MAX_CONTENT} bytes")));
            }
            Ok(ChatMessage::text(p.role.as_str(), &p.content))
        })
        .collect()
}

impl Decorator {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = parse_strict(bytes)?;
        check_range("max_request_body_size", Some(raw.max_request_body_size), 1, 128 * 1024 * 1024)?;
        let prepend = messages("prompts.prepend", &raw.prompts.prepend)?;
        let append = messages("prompts.append", &raw.prompts.append)?;
        if prepend.is_empty() && append.is_empty() {
            return Err(ConfigError::new("prompts", "needs at least one prepend or append message"));
        }
        Ok(Decorator { prepend: elements(&prepend)?, append: elements(&append)?, max_request_body_size: raw.max_request_body_size })
    }

    /// Returns the decorated body. Only chat bodies can be decorated. The
    /// configured messages are spliced into the client's `messages` array:
    /// the client's bytes, messages included, are kept as they came.
    pub fn decorate(&self, body: &[u8]) -> Result<Vec<u8>, GatewayError> {
        // serde skips the fields it does not read without checking their
        // UTF-8: check it here, so a body that goes on is JSON.
        let text = std::str::from_utf8(body).map_err(|e| GatewayError::bad_request(format!("request body is not valid UTF-8: {e}")))?;
        let shape: ChatShape = serde_json::from_str(text).map_err(|e| GatewayError::bad_request(format!("request body is not a valid chat request: {e}")))?;
        let (raw, field) = match (shape.messages, shape.input) {
            (Some(messages), _) => (messages.get(), "messages"),
            (None, Some(input)) => (input.get(), "input"),
            (None, None) if serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v.get("prompt").is_some()) => {
                return Err(GatewayError::bad_request("ai-prompt-decorator works on chat requests (`messages`); completions requests (`prompt`) cannot be decorated"))
            }
            (None, None) => return Err(GatewayError::bad_request("request body is not a valid chat request: missing field `messages`")),
        };
        // A Responses `input` string is one user message.
        let as_message;
        let inner = match raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')).map(str::trim) {
            Some(inner) => inner,
            None if field == "input" && raw.starts_with('"') => {
                as_message = format!(r#"{{"role":"user","content":{raw}}}"#);
                as_message.as_str()
            }
            None => return Err(GatewayError::bad_request(format!("request body is not a valid chat request: `{field}` must be an array"))),
        };
        // The raw value borrows from `body`: its offset is where it starts.
        let start = (raw.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
        let (Some(before), Some(after)) = (body.get(..start), body.get(start.saturating_add(raw.len())..)) else {
            return Err(GatewayError::bad_request("request body is not a valid chat request"));
        };
        let mut out = Vec::with_capacity(body.len() + self.prepend.len() + self.append.len() + 4);
        out.extend_from_slice(before);
        out.push(b'[');
        for part in [self.prepend.as_str(), inner, self.append.as_str()].into_iter().filter(|p| !p.is_empty()) {
            if out.last() != Some(&b'[') {
                out.push(b',');
            }
            out.extend_from_slice(part.as_bytes());
        }
        out.push(b']');
        out.extend_from_slice(after);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn a_responses_input_is_decorated_as_items() {
        let d = Decorator::from_json(br#"{"prompts":{"prepend":[{"role":"system","content":"Be kind."}],"append":[{"role":"user","content":"In French."}]}}"#).unwrap();
        let out: Value = serde_json::from_slice(&d.decorate(br#"{"model":"m","input":"hi \"there\"","instructions":"x"}"#).unwrap()).unwrap();
        assert_eq!(out["input"], json!([{"role":"system","content":"Be kind."},{"role":"user","content":"hi \"there\""},{"role":"user","content":"In French."}]));
        assert_eq!(out["instructions"], "x");
        let items = br#"{"input":[{"type":"function_call_output","call_id":"c","output":"18C"}]}"#;
        let out: Value = serde_json::from_slice(&d.decorate(items).unwrap()).unwrap();
        assert_eq!(out["input"][1]["type"], "function_call_output", "the client's items stay as they were, in order");
        assert_eq!(out["input"].as_array().map(Vec::len), Some(3));
        assert!(d.decorate(br#"{"input":{"role":"user"}}"#).unwrap_err().message.contains("`input` must be an array"));
    }

    #[test]
    fn prepends_and_appends_around_untouched_messages() {
        let d = Decorator::from_json(br#"{"prompts":{"prepend":[{"role":"system","content":"Be kind."},{"role":"user","content":"Context: A"}],"append":[{"role":"user","content":"Answer in French."}]}}"#).unwrap();
        let body = br#"{"model":"m","messages":[{"role":"system","content":"client system"},{"role":"user","content":[{"type":"text","text":"hi"}],"name":"bob"}],"stream":true,"x":1}"#;
        let out: Value = serde_json::from_slice(&d.decorate(body).unwrap()).unwrap();
        let roles: Vec<&str> = out["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["system", "user", "system", "user", "user"]);
        assert_eq!(out["messages"][3], json!({"role":"user","content":[{"type":"text","text":"hi"}],"name":"bob"}));
        assert_eq!(out["messages"][4]["content"], "Answer in French.");
        assert_eq!((out["stream"].clone(), out["x"].clone()), (json!(true), json!(1)));
    }

    #[test]
    fn the_clients_bytes_are_kept_and_odd_arrays_work() {
        let d = Decorator::from_json(br#"{"prompts":{"prepend":[{"role":"system","content":"P"}],"append":[{"role":"user","content":"A"}]}}"#).unwrap();
        let body = br#"{ "messages" : [ {"role":"user",  "content":"x\u00e9"} ] , "z": [1,2] }"#;
        let out = String::from_utf8(d.decorate(body).unwrap()).unwrap();
        assert_eq!(out, r#"{ "messages" : [{"role":"system","content":"P"},{"role":"user",  "content":"x\u00e9"},{"role":"user","content":"A"}] , "z": [1,2] }"#);
        let out: Value = serde_json::from_slice(&d.decorate(br#"{"messages":[ ]}"#).unwrap()).unwrap();
        assert_eq!(out["messages"].as_array().map(Vec::len), Some(2));
        let only_append = Decorator::from_json(br#"{"prompts":{"append":[{"role":"user","content":"A"}]}}"#).unwrap();
        let out: Value = serde_json::from_slice(&only_append.decorate(br#"{"messages":[]}"#).unwrap()).unwrap();
        assert_eq!(out["messages"], json!([{"role":"user","content":"A"}]));
        for bad in [&br#"{"messages":"x"}"#[..], br#"{"messages":{}}"#, b"[]", b"{", br#"{"messages":[],"messages":[]}"#, b"{\"messages\":[],\"x\":\"\xff\"}"] {
            assert_eq!(d.decorate(bad).err().map(|e| e.status), Some(400), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn completions_bodies_get_a_clear_400() {
        let d = Decorator::from_json(br#"{"prompts":{"append":[{"role":"user","content":"x"}]}}"#).unwrap();
        let e = d.decorate(br#"{"prompt":"hi"}"#).err().unwrap();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("completions requests"));
    }

    #[test]
    fn config_is_bounded() {
        assert_eq!(Decorator::from_json(br#"{"prompts":{}}"#).err().map(|e| e.path), Some("prompts".into()));
        assert_eq!(Decorator::from_json(br#"{"prompts":{"prepend":[{"role":"tool","content":"x"}]}}"#).err().map(|e| e.path), Some("prompts.prepend[0].role".into()));
        assert_eq!(Decorator::from_json(br#"{"prompts":{"append":[{"role":"user","content":""}]}}"#).err().map(|e| e.path), Some("prompts.append[0].content".into()));
        let many = format!(r#"{{"prompts":{{"prepend":[{}]}}}}"#, vec![r#"{"role":"user","content":"x"}"#; 17].join(","));
        assert_eq!(Decorator::from_json(many.as_bytes()).err().map(|e| e.path), Some("prompts.prepend".into()));
    }
}
