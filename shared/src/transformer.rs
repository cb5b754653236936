//! ai-request-transformer and ai-response-transformer: a payload goes to a
//! configured LLM with an instruction, and the LLM's answer replaces it.
//! The LLM is reached through ai-proxy's own translation (`Exchange`), so
//! every provider the codec speaks works, with its native request, auth
//! and answer. The filters only dispatch the call and apply the result.

use crate::config::{check_range, parse_strict, ConfigError};
use crate::error::{ErrorKind, GatewayError};
use crate::openai::Usage;
use crate::proxy::config::{ProxyConfig, RouteType};
use crate::proxy::Exchange;
use regex_lite::Regex;
use serde::Deserialize;
use std::rc::Rc;

/// Which side of the exchange a transformer rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

impl Side {
    pub fn plugin(self) -> &'static str {
        match self {
            Side::Request => "ai-request-transformer",
            Side::Response => "ai-response-transformer",
        }
    }
}

const MAX_PROMPT_LEN: usize = 64 * 1024;
const DEFAULT_TIMEOUT_MS: u64 = 60_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    prompt: String,
    llm: serde_json::Value,
    llm_cluster: String,
    #[serde(default)]
    transformation_extract_pattern: Option<String>,
    #[serde(default)]
    parse_llm_response_json_instructions: Option<bool>,
    #[serde(default = "default_timeout")]
    http_timeout: u64,
    #[serde(default = "default_max_body")]
    max_request_body_size: u64,
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

fn default_max_body() -> u64 {
    crate::config::DEFAULT_MAX_REQUEST_BODY_SIZE
}

pub struct TransformerConfig {
    pub side: Side,
    pub prompt: String,
    pub llm: Rc<ProxyConfig>,
    /// The Envoy cluster `dispatch_http_call` sends the LLM call through.
    pub llm_cluster: String,
    pub extract: Option<Regex>,
    pub parse_json_instructions: bool,
    pub http_timeout_ms: u64,
    pub max_request_body_size: u64,
}

/// The capture group of `transformation_extract_pattern` that, when the
/// pattern names one, is the body instead of the whole match.
const BODY_GROUP: &str = "body";

/// Appended to the prompt when the LLM must answer with instructions.
const JSON_INSTRUCTIONS: &str = "\n\nAnswer with one JSON object and nothing else, of the form \
{\"status\": <HTTP status as an integer>, \"headers\": {<header name>: <string value>}, \"body\": <the new response body as a string>}. \
Omit status or headers to keep the original ones.";

impl TransformerConfig {
    /// Parses either plugin's configuration; `env` resolves secrets in the
    /// `llm` block as ai-proxy does.
    pub fn from_json(side: Side, bytes: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let raw: RawConfig = parse_strict(bytes)?;
        if raw.prompt.trim().is_empty() || raw.prompt.len() > MAX_PROMPT_LEN {
            return Err(ConfigError::new("prompt", format!("must be 1 to {MAX_PROMPT_LEN} bytes")));
        }
        if side == Side::Request && raw.parse_llm_response_json_instructions.is_some() {
            return Err(ConfigError::new(
                "parse_llm_response_json_instructions",
                "only ai-response-transformer can take status and headers from the LLM",
            ));
        }
        if raw.llm_cluster.is_empty() || raw.llm_cluster.len() > 256 {
            return Err(ConfigError::new("llm_cluster", "must name the Envoy cluster that reaches the LLM"));
        }
        check_range("http_timeout", Some(raw.http_timeout), 1, 600_000)?;
        check_range("max_request_body_size", Some(raw.max_request_body_size), 1, 128 * 1024 * 1024)?;
        let llm_json = serde_json::to_vec(&raw.llm).map_err(|e| ConfigError::new("llm", e.to_string()))?;
        if !raw.llm.is_object() {
            return Err(ConfigError::new("llm", "must be an object in ai-proxy's shape (route_type, auth, model)"));
        }
        let llm = ProxyConfig::from_json(&llm_json, env).map_err(|e| ConfigError::new(format!("llm.{}", e.path.trim_start_matches('.')), e.message))?;
        if llm.route_type != RouteType::Chat {
            return Err(ConfigError::new("llm.route_type", "a transformer's LLM is called with a chat request: use llm/v1/chat"));
        }
        let extract = match &raw.transformation_extract_pattern {
            None => None,
            Some(p) if p.is_empty() || p.len() > 1024 => {
                return Err(ConfigError::new("transformation_extract_pattern", "must be 1 to 1024 bytes"));
            }
            Some(p) => Some(Regex::new(p).map_err(|e| ConfigError::new("transformation_extract_pattern", format!("invalid pattern: {e}")))?),
        };
        Ok(TransformerConfig {
            side,
            prompt: raw.prompt,
            llm: Rc::new(llm),
            llm_cluster: raw.llm_cluster,
            extract,
            parse_json_instructions: raw.parse_llm_response_json_instructions.unwrap_or(false),
            http_timeout_ms: raw.http_timeout,
            max_request_body_size: raw.max_request_body_size,
        })
    }

    pub fn too_large(&self) -> GatewayError {
        GatewayError::new(ErrorKind::PayloadTooLarge, format!("body is larger than {} bytes", self.max_request_body_size))
            .with_code("request_too_large")
    }
}

/// The HTTP call to make: pseudo-headers included, ready for
/// `dispatch_http_call`.
#[derive(Debug)]
pub struct LlmRequest {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the LLM's answer means for the payload.
#[derive(Debug, Default, PartialEq)]
pub struct Transformed {
    pub body: Vec<u8>,
    /// From the LLM's JSON instructions (response transformer only).
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
}

/// One LLM call of one transformed request.
pub struct Call {
    cfg: Rc<TransformerConfig>,
    exchange: Exchange,
}

fn llm_failure(status: u16, message: impl Into<String>, code: &str) -> GatewayError {
    GatewayError::with_status(status, message).with_code(code)
}

/// Headers the LLM's instructions may not set on the client's answer:
/// framing is Envoy's, and pseudo-headers are not headers.
fn settable_header(name: &str) -> bool {
    crate::config::is_header_name(name)
        && !matches!(name, "content-length" | "transfer-encoding" | "connection" | "keep-alive" | "upgrade" | "te" | "trailer")
}

impl Call {
    pub fn new(cfg: Rc<TransformerConfig>, id: String, now_unix: u64) -> Self {
        let exchange = Exchange::new(cfg.llm.clone(), id, now_unix);
        Call { cfg, exchange }
    }

    pub fn config(&self) -> &TransformerConfig {
        &self.cfg
    }

    /// Names the call once the request's id and time are known.
    pub fn begin(&mut self, id: String, now_unix: u64) {
        self.exchange.begin(id, now_unix);
    }

    /// The LLM request for `payload`: the prompt as the system message, the
    /// payload (as text) as the user message, in the provider's own format.
    pub fn request(&mut self, payload: &[u8]) -> Result<LlmRequest, GatewayError> {
        let cfg = &*self.cfg;
        if let Some(missing) = &cfg.llm.missing_secret {
            return Err(GatewayError::new(ErrorKind::Internal, "the gateway has no credential configured for the transformer's LLM")
                .with_code(format!("missing_secret:{missing}")));
        }
        if payload.len() as u64 > cfg.max_request_body_size {
            return Err(cfg.too_large());
        }
        let mut system = cfg.prompt.clone();
        if cfg.parse_json_instructions {
            system.push_str(JSON_INSTRUCTIONS);
        }
        let chat = serde_json::json!({
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": String::from_utf8_lossy(payload)},
            ],
            "stream": false,
        });
        let chat = serde_json::to_vec(&chat).map_err(|e| GatewayError::new(ErrorKind::Internal, e.to_string()))?;
        let body = self.exchange.request_body(&chat)?.unwrap_or(chat);
        let edits = self.exchange.header_edits("/v1/chat/completions", &|name| (name == "content-type").then(|| "application/json".to_string()));
        let path = edits.path.unwrap_or_else(|| "/v1/chat/completions".to_string());
        let authority = edits.authority.unwrap_or_else(|| cfg.llm_cluster.clone());
        let mut headers = vec![
            (":method".to_string(), "POST".to_string()),
            (":path".to_string(), path),
            (":authority".to_string(), authority),
            ("content-type".to_string(), "application/json".to_string()),
        ];
        // Envoy sizes a dispatched call's body itself.
        headers.extend(edits.set.into_iter().filter(|(name, _)| name != "content-length"));
        Ok(LlmRequest { headers, body })
    }

    /// Reads the LLM's answer. `status` is None when no answer came;
    /// `timed_out` when the call ran out of `http_timeout`.
    pub fn answer(&mut self, status: Option<u16>, content_type: Option<&str>, body: &[u8], timed_out: bool) -> Result<Transformed, GatewayError> {
        if timed_out {
            return Err(llm_failure(504, format!("the transformer's LLM did not answer within {} ms", self.cfg.http_timeout_ms), "llm_timeout"));
        }
        let Some(status) = status else {
            return Err(llm_failure(502, "the transformer's LLM could not be reached", "llm_unreachable"));
        };
        let edits = self.exchange.response_headers(status, content_type);
        if (200..300).contains(&status) && edits.status.is_some_and(|s| !(200..300).contains(&s)) {
            // A success status with a body that is no answer (an HTML page
            // from a proxy in front of the LLM, say).
            let ct = content_type.unwrap_or("none");
            return Err(llm_failure(502, format!("the transformer's LLM answered {status} with content type {ct}, not JSON"), "llm_unreadable"));
        }
        let edit = self.exchange.response_body(body);
        let status = edit.status.or(edits.status).unwrap_or(status);
        if !(200..300).contains(&status) {
            // The LLM's own error text stays in the gateway's log: it may
            // describe the gateway's credentials or account.
            return Err(llm_failure(502, format!("the transformer's LLM answered {status}"), "llm_error"));
        }
        let answer: serde_json::Value = edit
            .body
            .as_deref()
            .map(serde_json::from_slice)
            .unwrap_or_else(|| serde_json::from_slice(body))
            .map_err(|_| llm_failure(502, "the transformer's LLM answer could not be read", "llm_unreadable"))?;
        let text = answer
            .get("choices")
            .and_then(|c| c.get(0))
            .and_then(|c| c.get("message"))
            .and_then(|m| m.get("content"))
            .and_then(|c| c.as_str())
            .ok_or_else(|| llm_failure(502, "the transformer's LLM answer holds no text", "llm_unreadable"))?;
        let text = self.extract(text)?;
        if self.cfg.parse_json_instructions {
            return instructions(text);
        }
        Ok(Transformed { body: text.as_bytes().to_vec(), ..Default::default() })
    }

    /// Kong's rule: the first match is the body. A group named `body`
    /// narrows it to that group (this gateway's addition, opt-in by name so
    /// Kong's own patterns keep Kong's meaning).
    fn extract<'t>(&self, text: &'t str) -> Result<&'t str, GatewayError> {
        let Some(re) = &self.cfg.extract else { return Ok(text) };
        let caps = re
            .captures(text)
            .ok_or_else(|| llm_failure(502, "the transformer's LLM answer did not match transformation_extract_pattern", "llm_no_match"))?;
        let m = caps.name(BODY_GROUP).or_else(|| caps.get(0));
        Ok(m.map(|m| m.as_str()).unwrap_or_default())
    }

    pub fn usage(&self) -> Option<Usage> {
        self.exchange.usage()
    }

    pub fn cost(&self) -> Option<f64> {
        self.exchange.cost()
    }

    pub fn model(&self) -> Option<&str> {
        self.exchange.response_model().or(self.exchange.requested_model())
    }

    /// Why the LLM's answer could not be used, for the operator's log.
    pub fn problem(&self) -> Option<&str> {
        self.exchange.problem()
    }
}

/// Kong's `{"status": 200, "headers": {...}, "body": "..."}` from the LLM
/// (`status_code` is read as an alias of `status`).
fn instructions(text: &str) -> Result<Transformed, GatewayError> {
    let bad = |why: &str| llm_failure(502, format!("the transformer's LLM gave invalid JSON instructions: {why}"), "llm_bad_instructions");
    // Models like to fence JSON in markdown; the object is what counts.
    let start = text.find('{').ok_or_else(|| bad("no JSON object"))?;
    let end = text.rfind('}').ok_or_else(|| bad("no JSON object"))?;
    let json = text.get(start..=end).ok_or_else(|| bad("no JSON object"))?;
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(&e.to_string()))?;
    let obj = v.as_object().ok_or_else(|| bad("not an object"))?;
    let given = |key: &'static str| obj.get(key).filter(|v| !v.is_null()).map(|v| (key, v));
    let status = match given("status").or_else(|| given("status_code")) {
        None => None,
        Some((key, s)) => {
            let code = s.as_u64().or_else(|| s.as_str().and_then(|t| t.trim().parse().ok())).ok_or_else(|| bad(&format!("{key} is not a number")))?;
            Some(u16::try_from(code).ok().filter(|c| (100..600).contains(c)).ok_or_else(|| bad(&format!("{key} is out of range")))?)
        }
    };
    let mut headers = Vec::new();
    match obj.get("headers") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(map)) => {
            for (name, value) in map {
                let name = name.to_ascii_lowercase();
                let value = match value {
                    serde_json::Value::String(s) => s.clone(),
                    other if other.is_number() || other.is_boolean() => other.to_string(),
                    _ => return Err(bad(&format!("header {name} is not a string"))),
                };
                if !settable_header(&name) || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                    return Err(bad(&format!("header {name} cannot be set")));
                }
                headers.push((name, value));
            }
        }
        Some(_) => return Err(bad("headers is not an object")),
    }
    let body = match obj.get("body") {
        None | Some(serde_json::Value::Null) => return Err(bad("no body")),
        Some(serde_json::Value::String(s)) => s.as_bytes().to_vec(),
        // A JSON body given as JSON rather than as a string is still meant.
        Some(other) => serde_json::to_vec(other).map_err(|e| bad(&e.to_string()))?,
    };
    Ok(Transformed { body, status, headers })
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "LLM_KEY").then(|| "sk-test".to_string())
    }

    fn config(side: Side, extra: &str) -> Rc<TransformerConfig> {
        let json = format!(
            r#"{{"prompt":"Translate to French.","llm_cluster":"llm","llm":{{"route_type":"llm/v1/chat","auth":{{"header_name":"Authorization","header_value":"Bearer {{vault://env/LLM_KEY}}"}},"model":{{"provider":"openai","name":"gpt-4o-mini"}}}}{extra}}}"#
        );
        Rc::new(TransformerConfig::from_json(side, json.as_bytes(), &env).unwrap_or_else(|e| panic!("{e}")))
    }

    fn header<'a>(r: &'a LlmRequest, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn openai_answer(text: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "id": "x", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        }))
        .unwrap()
    }

    /// One call's answer (a `Call` reads one answer in its life).
    fn answer(cfg: &Rc<TransformerConfig>, status: Option<u16>, content_type: Option<&str>, body: &[u8]) -> Result<Transformed, GatewayError> {
        let mut call = Call::new(cfg.clone(), "r".into(), 1);
        call.request(b"x").unwrap();
        call.answer(status, content_type, body, false)
    }

    const JSON: Option<&str> = Some("application/json");

    #[test]
    fn the_payload_goes_to_the_llm_as_the_user_message_with_the_prompt_as_system() {
        let mut call = Call::new(config(Side::Request, ""), "r1".into(), 1);
        let req = call.request(br#"{"name":"Ada"}"#).unwrap();
        assert_eq!(header(&req, ":path"), Some("/v1/chat/completions"));
        assert_eq!(header(&req, ":authority"), Some("api.openai.com"));
        assert_eq!(header(&req, "authorization"), Some("Bearer sk-test"));
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["model"], "gpt-4o-mini");
        assert_eq!(body["messages"][0], serde_json::json!({"role": "system", "content": "Translate to French."}));
        assert_eq!(body["messages"][1]["content"], r#"{"name":"Ada"}"#);
        let out = call.answer(Some(200), Some("application/json"), &openai_answer(r#"{"nom":"Ada"}"#), false).unwrap();
        assert_eq!(out.body, br#"{"nom":"Ada"}"#);
        assert_eq!(call.usage().map(|u| u.total_tokens), Some(18));
    }

    #[test]
    fn native_providers_get_their_own_request_and_answer() {
        let json = r#"{"prompt":"p","llm_cluster":"llm","llm":{"auth":{"header_name":"x-api-key","header_value":"ak"},"model":{"provider":"anthropic","name":"claude-3-5-haiku","options":{"max_tokens":256}}}}"#;
        let cfg = Rc::new(TransformerConfig::from_json(Side::Request, json.as_bytes(), &env).unwrap());
        let mut call = Call::new(cfg, "r2".into(), 1);
        let req = call.request(b"hello").unwrap();
        assert_eq!(header(&req, ":path"), Some("/v1/messages"));
        assert_eq!(header(&req, "x-api-key"), Some("ak"));
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["system"], "p");
        assert_eq!(body["max_tokens"], 256);
        let answer = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-3-5-haiku","content":[{"type":"text","text":"bonjour"}],"stop_reason":"end_turn","usage":{"input_tokens":5,"output_tokens":2}}"#;
        let out = call.answer(Some(200), Some("application/json"), answer, false).unwrap();
        assert_eq!(out.body, b"bonjour");
        assert_eq!(call.usage().map(|u| (u.prompt_tokens, u.completion_tokens)), Some((5, 2)));
    }

    #[test]
    fn extraction_takes_the_whole_match_as_kong_or_the_group_named_body() {
        // Kong's own documented example: the first match, braces included.
        let cfg = config(Side::Request, r#","transformation_extract_pattern":"\\{((.|\\n)*)\\}""#);
        let out = answer(&cfg, Some(200), JSON, &openai_answer("Here it is:\n{\"a\": {\"b\": 1}}\nDone.")).unwrap();
        assert_eq!(out.body, br#"{"a": {"b": 1}}"#);
        // Unnamed groups do not narrow the match; a group named `body` does.
        let cfg = config(Side::Request, r#","transformation_extract_pattern":"```json\\n([\\s\\S]*?)\\n```""#);
        let fenced = openai_answer("Sure!\n```json\n{\"a\":1}\n```\nDone.");
        assert_eq!(answer(&cfg, Some(200), JSON, &fenced).unwrap().body, b"```json\n{\"a\":1}\n```");
        let cfg = config(Side::Request, r#","transformation_extract_pattern":"```json\\n(?P<body>[\\s\\S]*?)\\n```""#);
        assert_eq!(answer(&cfg, Some(200), JSON, &fenced).unwrap().body, br#"{"a":1}"#);
        let err = answer(&cfg, Some(200), JSON, &openai_answer("no fence")).unwrap_err();
        assert_eq!((err.status, err.code.as_deref()), (502, Some("llm_no_match")));
    }

    #[test]
    fn failures_have_their_own_status_and_never_leak_the_llm_body() {
        let cfg = config(Side::Request, "");
        let mut call = Call::new(cfg.clone(), "r".into(), 1);
        call.request(b"x").unwrap();
        let timeout = call.answer(None, None, b"", true).unwrap_err();
        assert_eq!((timeout.status, timeout.code.as_deref()), (504, Some("llm_timeout")));
        assert_eq!(answer(&cfg, None, None, b"").unwrap_err().status, 502);
        let err = answer(&cfg, Some(401), JSON, br#"{"error":{"message":"Incorrect API key sk-test"}}"#).unwrap_err();
        assert_eq!(err.status, 502);
        assert!(!err.message.contains("sk-test"), "{}", err.message);
        assert_eq!(answer(&cfg, Some(200), JSON, b"{trunc").unwrap_err().status, 502);
        let html = answer(&cfg, Some(200), Some("text/html"), b"<html>").unwrap_err();
        assert_eq!((html.status, html.code.as_deref()), (502, Some("llm_unreadable")));
        assert!(html.message.contains("200") && html.message.contains("text/html"), "{}", html.message);
    }

    #[test]
    fn json_instructions_set_status_headers_and_body() {
        let cfg = config(Side::Response, r#","parse_llm_response_json_instructions":true"#);
        let mut call = Call::new(cfg.clone(), "r".into(), 1);
        let req = call.request(b"{}").unwrap();
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert!(body["messages"][0]["content"].as_str().unwrap().contains("\"status\""), "the LLM is told Kong's shape");
        // Kong's `status`, and `status_code` as its alias.
        let alias = answer(&cfg, Some(200), JSON, &openai_answer(r#"{"status_code": 202, "body": "x"}"#)).unwrap();
        assert_eq!(alias.status, Some(202));
        let text = "```json\n{\"status\": 201, \"headers\": {\"X-Lang\": \"fr\"}, \"body\": \"{\\\"nom\\\":1}\"}\n```";
        let out = call.answer(Some(200), JSON, &openai_answer(text), false).unwrap();
        assert_eq!(out.status, Some(201));
        assert_eq!(out.headers, vec![("x-lang".to_string(), "fr".to_string())]);
        assert_eq!(out.body, br#"{"nom":1}"#);
        let out = answer(&cfg, Some(200), JSON, &openai_answer(r#"{"body": {"a": [1]}}"#)).unwrap();
        assert_eq!((out.status, out.body), (None, br#"{"a":[1]}"#.to_vec()));
        for bad in [r#"{"status": 99, "body": ""}"#, r#"{"status_code": 99, "body": ""}"#, r#"{"headers": {"content-length": "1"}, "body": ""}"#, r#"{"headers": []}"#, "not json", r#"{"status_code": 200}"#, r#"{"headers": {"x": "a\r\nb"}, "body": ""}"#] {
            let err = answer(&cfg, Some(200), JSON, &openai_answer(bad)).unwrap_err();
            assert_eq!((err.status, err.code.as_deref()), (502, Some("llm_bad_instructions")), "{bad}");
        }
    }

    #[test]
    fn configuration_is_strict_and_names_the_field() {
        let path = |side: Side, json: &str| TransformerConfig::from_json(side, json.as_bytes(), &env).err().map(|e| e.path);
        let llm = r#""llm":{"model":{"provider":"openai","name":"m"}}"#;
        let message = |json: &str| TransformerConfig::from_json(Side::Request, json.as_bytes(), &env).err().map(|e| e.message).unwrap_or_default();
        assert!(message(&format!(r#"{{"llm_cluster":"c",{llm}}}"#)).contains("missing field `prompt`"));
        assert!(message(&format!(r#"{{"prompt":"p",{llm}}}"#)).contains("missing field `llm_cluster`"));
        assert_eq!(path(Side::Request, &format!(r#"{{"prompt":" ","llm_cluster":"c",{llm}}}"#)), Some("prompt".into()));
        assert_eq!(path(Side::Request, &format!(r#"{{"prompt":"p","llm_cluster":"",{llm}}}"#)), Some("llm_cluster".into()));
        assert_eq!(path(Side::Request, r#"{"prompt":"p","llm_cluster":"c","llm":{"model":{"provider":"nope"}}}"#), Some("llm.model.provider".into()));
        assert_eq!(path(Side::Request, &format!(r#"{{"prompt":"p","llm_cluster":"c",{llm},"transformation_extract_pattern":"("}}"#)), Some("transformation_extract_pattern".into()));
        assert_eq!(path(Side::Request, &format!(r#"{{"prompt":"p","llm_cluster":"c",{llm},"parse_llm_response_json_instructions":true}}"#)), Some("parse_llm_response_json_instructions".into()));
        assert_eq!(path(Side::Response, &format!(r#"{{"prompt":"p","llm_cluster":"c",{llm},"http_timeout":0}}"#)), Some("http_timeout".into()));
        assert_eq!(path(Side::Response, &format!(r#"{{"prompt":"p","llm_cluster":"c",{llm},"extra":1}}"#)), Some("extra".into()));
        assert_eq!(path(Side::Response, r#"{"prompt":"p","llm_cluster":"c","llm":{"route_type":"llm/v1/embeddings","model":{"provider":"openai","name":"m"}}}"#), Some("llm.route_type".into()));
        assert!(path(Side::Response, &format!(r#"{{"prompt":"p","llm_cluster":"c",{llm},"parse_llm_response_json_instructions":true}}"#)).is_none());
    }

    #[test]
    fn a_missing_key_is_a_500_that_names_the_variable_for_the_log_only() {
        let json = r#"{"prompt":"p","llm_cluster":"c","llm":{"auth":{"header_name":"Authorization","header_value":"Bearer {vault://env/NOPE}"},"model":{"provider":"openai","name":"m"}}}"#;
        let cfg = Rc::new(TransformerConfig::from_json(Side::Request, json.as_bytes(), &env).unwrap());
        let err = Call::new(cfg, "r".into(), 1).request(b"x").unwrap_err();
        assert_eq!(err.status, 500);
        assert!(err.code.unwrap_or_default().contains("NOPE"));
    }
}
