//! Whole (non-streamed) upstream answers: errors normalized to OpenAI's
//! shape, native answers translated, usage read.

use super::options::RouteType;
use crate::openai::{ChatResponse, CompletionResponse, EmbeddingResponse};
use crate::error::{error_body, error_type_for_status, GatewayError};
use crate::openai::{Usage, UsageProbe};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Default)]
pub struct Answer {
    /// Replacement body; None keeps the upstream's bytes.
    pub body: Option<Vec<u8>>,
    pub usage: Option<Usage>,
    pub model: Option<String>,
    /// Why the answer could not be used, for the operator's log.
    pub problem: Option<String>,
}

/// An upstream error body in OpenAI's shape. Bodies already in that shape
/// are kept byte for byte; others are wrapped, never passed through raw.
///
/// `openai_dialect`: the upstream speaks OpenAI's format, so an error body
/// in OpenAI's shape is its own and is kept; native providers' bodies
/// (Anthropic's and Gemini's also carry `error.message`) are rebuilt.
pub fn normalize_error(status: u16, body: &[u8], openai_dialect: bool) -> Option<Vec<u8>> {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error_type = error_type_for_status(status);
    let message = match &parsed {
        Some(v) => {
            if openai_dialect && v.get("error").and_then(|e| e.get("message")).is_some_and(Value::is_string) {
                return None;
            }
            let text = |v: &Value| match v {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            };
            v.get("error")
                .and_then(|e| e.get("message").or(Some(e)))
                .and_then(text)
                .or_else(|| v.get("message").and_then(text))
                .or_else(|| v.get("detail").and_then(text))
                .unwrap_or_else(|| format!("upstream returned HTTP {status}"))
        }
        None => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() || text.starts_with('<') {
                format!("upstream returned HTTP {status} with a non-JSON body")
            } else {
                let snippet: String = text.chars().take(200).collect();
                format!("upstream returned HTTP {status}: {snippet}")
            }
        }
    };
    Some(error_body(&message, error_type, None))
}

fn encode<T: Serialize>(value: &T) -> Option<Vec<u8>> {
    serde_json::to_vec(value).ok()
}

pub trait AnswerModel {
    fn model(&self) -> &str;
}
impl AnswerModel for ChatResponse {
    fn model(&self) -> &str {
        &self.model
    }
}
impl AnswerModel for CompletionResponse {
    fn model(&self) -> &str {
        &self.model
    }
}
impl AnswerModel for EmbeddingResponse {
    fn model(&self) -> &str {
        &self.model
    }
}

pub fn translated<T: Serialize + AnswerModel, U: Into<Option<Usage>>>(result: Result<(T, U), serde_json::Error>, what: &str) -> Answer {
    match result {
        Ok((r, usage)) => Answer { body: encode(&r), usage: usage.into(), model: Some(r.model().to_string()), problem: None },
        Err(e) => bad_payload(format!("{what} answer unreadable: {e}")),
    }
}

pub fn bad_payload(why: String) -> Answer {
    let e = GatewayError::new(crate::error::ErrorKind::BadGateway, "upstream returned a response the gateway could not read");
    Answer { body: Some(e.to_json()), problem: Some(why), ..Default::default() }
}

/// An OpenAI-format answer (or any answer on a `preserve` route): kept as
/// it is, usage and model read from it.
pub fn usage_only(route: RouteType, body: &[u8]) -> Answer {
    match serde_json::from_slice::<UsageProbe>(body) {
        Ok(probe) => Answer { body: None, usage: probe.usage, model: probe.model, problem: None },
        Err(e) if route == RouteType::Preserve => Answer { problem: Some(format!("no usage in upstream body: {e}")), ..Default::default() },
        Err(e) => bad_payload(format!("upstream body is not JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    // The same tests run natively and, through wasm-bindgen-test, as wasm32.
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    fn message(body: &[u8]) -> String {
        let v: Value = serde_json::from_slice(body).unwrap();
        v["error"]["message"].as_str().unwrap().to_string()
    }

    #[test]
    fn openai_errors_are_kept_byte_for_byte() {
        assert!(normalize_error(429, br#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#, true).is_none());
    }

    #[test]
    fn other_error_shapes_are_wrapped() {
        assert_eq!(message(&normalize_error(404, br#"{"error":"model 'x' not found"}"#, true).unwrap()), "model 'x' not found");
        assert_eq!(message(&normalize_error(400, br#"{"object":"error","message":"bad temp","type":"invalid_request_error"}"#, true).unwrap()), "bad temp");
        assert_eq!(message(&normalize_error(422, br#"{"detail":[{"loc":["body"],"msg":"x"}]}"#, true).unwrap()), r#"[{"loc":["body"],"msg":"x"}]"#);
        let html = normalize_error(502, b"<html><body>Bad Gateway</body></html>", true).unwrap();
        assert_eq!(message(&html), "upstream returned HTTP 502 with a non-JSON body");
        let v: Value = serde_json::from_slice(&html).unwrap();
        assert_eq!(v["error"]["type"], "upstream_error");
        assert_eq!(message(&normalize_error(500, b"boom", true).unwrap()), "upstream returned HTTP 500: boom");
    }

    #[test]
    fn native_error_bodies_are_rebuilt() {
        let anthropic = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let v: Value = serde_json::from_slice(&normalize_error(529, anthropic, false).unwrap()).unwrap();
        assert_eq!(v, serde_json::json!({"error":{"message":"Overloaded","type":"api_error","param":null,"code":null}}));
        let bedrock = br#"{"message":"The security token included in the request is invalid."}"#;
        assert!(message(&normalize_error(403, bedrock, false).unwrap()).contains("security token"));
    }

    #[test]
    fn openai_success_reads_usage_and_keeps_body() {
        let a = usage_only(
            RouteType::Chat,
            br#"{"id":"x","model":"gpt-4o-2024","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#,
        );
        assert!(a.body.is_none());
        assert_eq!(a.usage, Some(Usage::new(3, 4)));
        assert_eq!(a.model.as_deref(), Some("gpt-4o-2024"));
    }

    #[test]
    fn unreadable_success_becomes_an_error_body() {
        let a = usage_only(RouteType::Chat, b"<html>");
        assert!(a.problem.is_some());
        assert!(message(&a.body.unwrap()).contains("could not read"));
    }
}
