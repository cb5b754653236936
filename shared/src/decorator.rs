//! ai-prompt-decorator: messages prepended before the first message and
//! appended after the last; the client's messages are left as they are.

use crate::config::{check_range, parse_strict, ConfigError};
use crate::error::GatewayError;
use crate::openai::{ChatMessage, ChatRequest};
use serde::Deserialize;

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
    crate::proxy::config::DEFAULT_MAX_REQUEST_BODY_SIZE
}

pub struct Decorator {
    prepend: Vec<ChatMessage>,
    append: Vec<ChatMessage>,
    pub max_request_body_size: u64,
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
        Ok(Decorator { prepend, append, max_request_body_size: raw.max_request_body_size })
    }

    /// Returns the decorated body. Only chat bodies can be decorated.
    pub fn decorate(&self, body: &[u8]) -> Result<Vec<u8>, GatewayError> {
        let mut req: ChatRequest = serde_json::from_slice(body).map_err(|e| {
            let completions = serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v.get("prompt").is_some());
            if completions {
                GatewayError::bad_request("ai-prompt-decorator works on chat requests (`messages`); completions requests (`prompt`) cannot be decorated")
            } else {
                GatewayError::bad_request(format!("request body is not a valid chat request: {e}"))
            }
        })?;
        let mut messages = Vec::with_capacity(self.prepend.len() + req.messages.len() + self.append.len());
        messages.extend(self.prepend.iter().cloned());
        messages.append(&mut req.messages);
        messages.extend(self.append.iter().cloned());
        req.messages = messages;
        serde_json::to_vec(&req).map_err(|e| GatewayError::bad_request(format!("cannot encode request: {e}")))
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;
    use serde_json::{json, Value};

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
