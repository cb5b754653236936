//! ai-proxy's per-request logic as plain Rust: the filter crate calls these
//! steps from its proxy-wasm callbacks and applies what they return.

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod cohere;
pub mod common;
pub mod client;
pub mod config;
pub mod eventstream;
pub mod gemini;
pub mod messages;
pub mod mistral;
#[cfg(test)]
mod golden;
pub mod ollama;
pub mod openai;
pub mod options;
pub mod passthrough;
pub mod provider;
pub mod registry;
pub mod report;
pub mod request;
pub mod responses;
pub mod response;
pub mod sigv4;
pub mod stream;

use crate::error::{ErrorKind, GatewayError};
use crate::openai::Usage;
use config::{Credential, LlmFormat, ProxyConfig, RouteType};
use provider::{Meta, StreamFraming};
use std::rc::Rc;
use stream::StreamTranslator;

/// Credential headers a client may send for some provider; none of them is
/// forwarded unless the route allows the client to override.
pub const CLIENT_CREDENTIAL_HEADERS: [&str; 4] = ["authorization", "api-key", "x-api-key", "x-goog-api-key"];

/// What the request-headers step wants changed.
#[derive(Debug, Default, PartialEq)]
pub struct HeaderEdits {
    pub path: Option<String>,
    pub authority: Option<String>,
    pub remove: Vec<String>,
    pub set: Vec<(String, String)>,
}

impl HeaderEdits {
    /// The edits applied to a header list (lower-case names), for a filter
    /// that writes the whole map in one host call.
    pub fn apply_to(&self, headers: &mut Vec<(String, String)>) {
        let mut edits: Vec<crate::headers::HeaderEdit> = self.set.iter().map(|(n, v)| (n.as_str(), Some(v.as_str()))).collect();
        if let Some(path) = &self.path {
            edits.push((":path", Some(path)));
        }
        if let Some(authority) = &self.authority {
            edits.push((":authority", Some(authority)));
        }
        edits.extend(self.remove.iter().map(|n| (n.as_str(), None)));
        crate::headers::apply(headers, &edits);
    }
}

/// How to handle the upstream answer, decided from its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    /// Wait for the whole body, then `response_body`.
    Buffered,
    /// Translate chunk by chunk with `response_chunk`.
    Stream,
    /// Leave the body alone (preserve route, non-JSON answers).
    Passthrough,
}

#[derive(Debug, Default, PartialEq)]
pub struct ResponseHeaderEdits {
    pub status: Option<u16>,
    pub content_type: Option<&'static str>,
    /// Only for streams: a buffered body that is replaced gets its exact
    /// length when it is written.
    pub remove_content_length: bool,
    pub model_header: Option<String>,
}

/// What to do with a buffered response body.
#[derive(Debug, Default, PartialEq)]
pub struct BodyEdit {
    pub body: Option<Vec<u8>>,
    pub status: Option<u16>,
}

pub struct Exchange {
    cfg: Rc<ProxyConfig>,
    /// The API the route's clients speak.
    client: Box<dyn client::ClientApi>,
    /// Unique per request: response ids and tool-call ids derive from it.
    id: String,
    created: u64,
    facts: request::RequestFacts,
    status: u16,
    mode: ResponseMode,
    stream: Option<Box<dyn StreamTranslator>>,
    usage: Option<Usage>,
    response_model: Option<String>,
    problem: Option<String>,
    /// Path for this request when the provider puts model or streaming in
    /// it (Gemini, Bedrock).
    upstream_path: Option<String>,
    /// SHA-256 of the body sent upstream (Bedrock signs it).
    body_sha256: Option<String>,
    /// Length of the body the gateway wrote in place of the client's.
    sent_body_len: Option<usize>,
    /// Streams only: bytes of text in the prompt and in what was streamed
    /// back, for the estimate when a stream ends before its usage.
    prompt_text: u64,
    streamed_text: u64,
    stream_ended: bool,
    usage_estimated: bool,
}

/// `application/json` or any `+json` type, parameters and case aside.
pub(crate) fn is_json(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or_default().trim();
    essence == "application/json" || essence.ends_with("+json")
}

impl Exchange {
    pub fn new(cfg: Rc<ProxyConfig>, id: String, created: u64) -> Self {
        Exchange {
            client: client::for_request(&cfg),
            cfg,
            id,
            created,
            facts: request::RequestFacts::default(),
            status: 0,
            mode: ResponseMode::Passthrough,
            stream: None,
            usage: None,
            response_model: None,
            problem: None,
            upstream_path: None,
            body_sha256: None,
            sent_body_len: None,
            prompt_text: 0,
            streamed_text: 0,
            stream_ended: false,
            usage_estimated: false,
        }
    }

    pub fn config(&self) -> &ProxyConfig {
        &self.cfg
    }

    /// Names the request once its id and time are known (headers phase).
    pub fn begin(&mut self, id: String, created: u64) {
        self.id = id;
        self.created = created;
    }

    /// Request headers, first look: what can be refused before any body is
    /// read (nothing has gone upstream yet). `header` looks up a request
    /// header by lower-case name.
    pub fn check_request_headers(
        &self,
        method: &str,
        has_body: bool,
        header: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), GatewayError> {
        let cfg = &*self.cfg;
        if let Some(missing) = &cfg.missing_secret {
            // Never forward unauthenticated: the operator's log names the variable.
            return Err(GatewayError::new(ErrorKind::Internal, "the gateway has no credential configured for this provider")
                .with_code(format!("missing_secret:{missing}")));
        }
        if let Some(len) = header("content-length").and_then(|v| v.trim().parse::<u64>().ok()) {
            if len > cfg.max_request_body_size {
                return Err(too_large(cfg.max_request_body_size));
            }
        }
        if cfg.translates_responses() && (method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("DELETE")) {
            // GET /v1/responses/{id}: nothing is stored for a translated provider.
            return Err(GatewayError::new(ErrorKind::NotFound, "no stored response: this gateway does not store responses for this provider"));
        }
        if cfg.route_type != RouteType::Preserve {
            if !method.eq_ignore_ascii_case("POST") {
                return Err(GatewayError::new(ErrorKind::MethodNotAllowed, format!("{} routes take POST requests", cfg.route_type.as_str())));
            }
            if !has_body {
                return Err(GatewayError::bad_request("request body is empty; expected a JSON object"));
            }
            if !header("content-type").is_some_and(|ct| is_json(&ct)) {
                return Err(GatewayError::new(ErrorKind::UnsupportedMediaType, "content-type must be application/json"));
            }
        }
        Ok(())
    }

    /// The upstream target and credentials, decided once the body (if any)
    /// has been read, so a provider's path may depend on the request.
    pub fn header_edits(&self, path: &str, header: &dyn Fn(&str) -> Option<String>) -> HeaderEdits {
        let cfg = &*self.cfg;
        let mut edits = HeaderEdits::default();
        // Edits come after the body was read: a rewritten body gets its exact
        // length (no chunked upload), an untouched one keeps the client's.
        if let Some(len) = self.sent_body_len {
            edits.set.push(("content-length".into(), len.to_string()));
        }
        // Upstream bodies are read (usage, translation): they must not be compressed.
        if header("accept-encoding").is_some() {
            edits.remove.push("accept-encoding".into());
        }

        let mut target = match self.upstream_path.as_ref().or(cfg.path.as_ref()) {
            Some(p) => p.clone(),
            None => path.to_string(),
        };
        cfg.api.headers(&mut edits.set);
        if self.native_messages() {
            // A Claude client's own API version (and its betas) stand.
            if header("anthropic-version").is_some() {
                edits.set.retain(|(n, _)| n != "anthropic-version");
            }
        } else {
            // The client's own API headers mean nothing to a translated upstream.
            for name in self.client.own_headers() {
                if header(name).is_some() {
                    edits.remove.push(name.to_string());
                }
            }
        }
        let client_overrides = |name: &str| cfg.allow_override && header(name).is_some();
        for cred in &cfg.credentials {
            match cred {
                Credential::Header { name, value } => {
                    if !client_overrides(name) {
                        edits.set.push((name.clone(), value.clone()));
                    }
                }
                Credential::Query { name, value } => {
                    let (base, query) = target.split_once('?').unwrap_or((&target, ""));
                    let prefix = format!("{}=", config::encode_query(name));
                    let client_has = query.split('&').any(|kv| kv.starts_with(&prefix));
                    if !(cfg.allow_override && client_has) {
                        let mut kept: Vec<&str> = query.split('&').filter(|kv| !kv.is_empty() && !kv.starts_with(&prefix)).collect();
                        let ours = format!("{prefix}{}", config::encode_query(value));
                        kept.push(&ours);
                        target = format!("{base}?{}", kept.join("&"));
                    }
                }
                Credential::Body { .. } => {}
            }
        }
        if cfg.api.signs_body() {
            // Signed last: over the final path and body.
            let host = cfg.authority.as_deref().unwrap_or_default();
            let body_sha256 = self.body_sha256.clone().unwrap_or_else(|| crate::digest::sha256_hex(b""));
            edits.set.extend(cfg.api.sign(&provider::SignedRequest { host, target: &target, body_sha256: &body_sha256, unix_seconds: self.created }));
        }
        for name in CLIENT_CREDENTIAL_HEADERS {
            let ours = edits.set.iter().any(|(n, _)| n == name);
            if !ours && header(name).is_some() && !client_overrides(name) {
                edits.remove.push(name.to_string());
            }
        }
        if target != path {
            edits.path = Some(target);
        }
        edits.authority = cfg.authority.clone();
        edits
    }

    /// The whole request body; returns the body to send, or None to send the
    /// client's bytes unchanged.
    pub fn request_body(&mut self, body: &[u8]) -> Result<Option<Vec<u8>>, GatewayError> {
        let sent = self.translate_request_body(body)?;
        if self.facts.stream {
            // Only a stream can end half-way with its usage unsaid.
            self.prompt_text = crate::usage::text_bytes(body);
        }
        Ok(sent)
    }

    fn translate_request_body(&mut self, body: &[u8]) -> Result<Option<Vec<u8>>, GatewayError> {
        let cfg = &*self.cfg;
        if body.len() as u64 > cfg.max_request_body_size {
            return Err(too_large(cfg.max_request_body_size));
        }
        if self.native_messages() {
            return self.native_messages_body(body);
        }
        // Every client format goes through OpenAI's chat shape.
        let translated = match self.client.to_chat(body)? {
            Some(chat) => request::translate_chat_value(cfg, chat)?,
            None => request::translate_request(cfg, body)?,
        };
        self.facts = translated.facts;
        self.upstream_path = cfg
            .request_path(self.facts.model.as_deref(), self.facts.stream)
            .map_err(GatewayError::bad_request)?;
        if cfg.api.signs_body() {
            self.body_sha256 = Some(crate::digest::sha256_hex(translated.body.as_deref().unwrap_or(body)));
        }
        self.sent_body_len = translated.body.as_ref().map(Vec::len);
        Ok(translated.body)
    }

    /// A Messages client in front of Anthropic itself: bodies pass as sent,
    /// the one pairing of client format and provider with no translation.
    fn native_messages(&self) -> bool {
        self.cfg.llm_format == LlmFormat::Anthropic && self.cfg.provider == config::ProviderName::Anthropic
    }

    fn native_messages_body(&mut self, body: &[u8]) -> Result<Option<Vec<u8>>, GatewayError> {
        let cfg = &*self.cfg;
        let (mut req, stream) = messages::check_native(body)?;
        let asked = req.get("model").and_then(|m| m.as_str()).map(str::to_string);
        let model = match (&cfg.model_name, asked) {
            (Some(pinned), Some(asked)) if &asked != pinned && !cfg.replaces_model(&asked) => {
                return Err(GatewayError::bad_request(format!("cannot use own model - must be: {pinned}")).with_code("model_not_allowed"))
            }
            (Some(pinned), _) => pinned.clone(),
            (None, Some(asked)) if !asked.is_empty() && asked.len() <= 256 => asked,
            (None, _) => return Err(GatewayError::bad_request("model: Field required (1 to 256 characters)")),
        };
        let mut changed = req.get("model").and_then(|m| m.as_str()) != Some(model.as_str());
        self.facts.model = Some(model.clone());
        self.facts.stream = stream;
        self.upstream_path = cfg.request_path(Some(&model), stream).map_err(GatewayError::bad_request)?;
        if changed {
            if let Some(obj) = req.as_object_mut() {
                obj.insert("model".into(), model.into());
            }
        }
        changed |= cfg.api.adapt_native_messages(&mut req);
        if !changed {
            return Ok(None);
        }
        let out = req.to_string().into_bytes();
        self.sent_body_len = Some(out.len());
        Ok(Some(out))
    }

    /// The gateway's own error reply, in the shape the route's clients speak.
    pub fn error_reply(&self, err: &GatewayError) -> Vec<u8> {
        self.client.error(err)
    }

    /// Response headers: choose how to read the body, and what to change.
    pub fn response_headers(&mut self, status: u16, content_type: Option<&str>) -> ResponseHeaderEdits {
        self.status = status;
        let cfg = &*self.cfg;
        let ct = content_type.unwrap_or_default().to_ascii_lowercase();
        let mut edits = ResponseHeaderEdits {
            model_header: self.requested_model().filter(|_| cfg.model_name_header).map(|m| format!("{}/{m}", cfg.provider.as_str())),
            ..Default::default()
        };
        let event_stream = ct.starts_with("text/event-stream");
        let ndjson = ct.starts_with("application/x-ndjson");
        let aws_stream = ct.starts_with("application/vnd.amazon.eventstream");
        let framing = cfg.api.stream_framing();
        self.mode = if status >= 400 {
            ResponseMode::Buffered
        } else if cfg.route_type == RouteType::Preserve {
            match (event_stream, is_json(&ct)) {
                (true, _) => ResponseMode::Stream,
                (_, true) => ResponseMode::Buffered,
                _ => ResponseMode::Passthrough,
            }
        } else if event_stream && framing == StreamFraming::Sse {
            ResponseMode::Stream
        } else if (aws_stream && framing == StreamFraming::AwsEventStream)
            || (ndjson && framing == StreamFraming::Ndjson && self.facts.stream)
        {
            // Native binary or line streams become SSE for the client.
            edits.content_type = Some("text/event-stream");
            ResponseMode::Stream
        } else if is_json(&ct) || (ndjson && framing == StreamFraming::Ndjson) {
            if !cfg.api.speaks_openai() {
                edits.content_type = Some("application/json");
            }
            ResponseMode::Buffered
        } else {
            // A success status with an HTML or text body is no answer.
            self.problem = Some(format!("upstream answered {status} with content-type {ct:?}"));
            edits.status = Some(502);
            edits.content_type = Some("application/json");
            self.status = 502;
            ResponseMode::Buffered
        };
        if self.mode == ResponseMode::Stream {
            let model = self.requested_model().unwrap_or_default();
            let meta = Meta { id: &self.id, created: self.created, model };
            self.stream = Some(match cfg.upstream_route {
                RouteType::Preserve | RouteType::Responses => Box::new(passthrough::PassthroughStream::new()),
                _ if self.native_messages() => Box::new(messages::NativeStream::new(&self.id, self.created, model)),
                route => {
                    let usage = self.facts.client_wants_usage || self.client.stream_needs_usage();
                    self.client.stream(cfg.api.stream(route, &meta, usage), &meta)
                }
            });
        }
        // A buffered answer's headers wait for its body, which sets the
        // length only if it replaces the body; a stream's length is unknown.
        edits.remove_content_length = self.mode == ResponseMode::Stream;
        edits
    }

    pub fn response_mode(&self) -> ResponseMode {
        self.mode
    }

    /// The whole buffered answer (its headers were held back): returns a
    /// replacement body, if any, and the status to send instead, if any.
    pub fn response_body(&mut self, body: &[u8]) -> BodyEdit {
        if self.status == 502 && self.problem.is_some() {
            let error = GatewayError::new(ErrorKind::BadGateway, "upstream returned a response that is not JSON");
            return BodyEdit { body: Some(self.error_reply(&error)), status: None };
        }
        if self.status >= 400 {
            if self.native_messages() && messages::is_error_body(body) {
                return BodyEdit::default(); // already Anthropic's shape
            }
            let openai = self.cfg.api.speaks_openai() || self.cfg.route_type == RouteType::Preserve;
            let normalized = response::normalize_error(self.status, body, openai);
            let client = self.client.upstream_error(self.status, normalized.as_deref().unwrap_or(body));
            return BodyEdit { body: client.or(normalized), status: None };
        }
        let meta = Meta { id: &self.id, created: self.created, model: self.requested_model().unwrap_or_default() };
        let answer = match self.cfg.upstream_route {
            RouteType::Preserve => response::usage_only(RouteType::Preserve, body),
            RouteType::Responses => passthrough::answer(body),
            route => self.cfg.api.answer(route, body, &meta),
        };
        self.usage = answer.usage;
        self.response_model = answer.model;
        let mut status = None;
        if answer.problem.is_some() {
            self.problem = answer.problem;
            if answer.body.is_some() {
                // A 2xx whose body cannot be read is a bad gateway answer.
                self.status = 502;
                status = Some(502);
                if let Some(body) = answer.body.as_deref().and_then(|b| self.client.upstream_error(502, b)) {
                    return BodyEdit { body: Some(body), status };
                }
            }
            return BodyEdit { body: answer.body, status };
        }
        if self.native_messages() {
            return BodyEdit::default(); // Anthropic's answer, as it came
        }
        match self.client.answer(answer.body.as_deref().unwrap_or(body)) {
            Ok(None) => BodyEdit { body: answer.body, status },
            Ok(Some(converted)) => BodyEdit { body: Some(converted), status },
            Err(e) => {
                self.problem = Some(format!("answer could not be read for the client's format: {e}"));
                self.status = 502;
                let error = GatewayError::new(ErrorKind::BadGateway, "upstream returned a response that could not be read");
                BodyEdit { body: Some(self.error_reply(&error)), status: Some(502) }
            }
        }
    }

    /// One streamed chunk; returns what replaces it.
    pub fn response_chunk(&mut self, chunk: &[u8], end_of_stream: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len() + 64);
        if let Some(t) = self.stream.as_mut() {
            t.push(chunk, &mut out);
            if end_of_stream {
                t.finish(&mut out);
            }
            self.streamed_text += crate::usage::text_bytes(&out);
            if end_of_stream {
                self.end_stream();
            }
        }
        out
    }

    /// The stream ended, whole or not (the client gone, the upstream reset
    /// or timed out, or it stopped without its last event): its usage is
    /// what the provider reported, the rest estimated (`crate::usage`).
    pub fn end_stream(&mut self) {
        let Some(t) = self.stream.as_ref() else { return };
        if self.stream_ended {
            return;
        }
        self.stream_ended = true;
        self.response_model = t.model().map(str::to_string);
        let reported = t.usage();
        if reported.is_some_and(|u| u.completion_tokens > 0) || self.streamed_text == 0 && reported.is_some() {
            self.usage = reported;
        } else if (200..300).contains(&self.status) {
            let (usage, estimated) = crate::usage::estimate(reported, self.prompt_text, self.streamed_text);
            self.usage = Some(usage);
            self.usage_estimated = estimated;
        }
    }

    /// Whether `usage()` is (partly) an estimate: see `end_stream`.
    pub fn usage_estimated(&self) -> bool {
        self.usage_estimated
    }

    pub fn requested_model(&self) -> Option<&str> {
        self.facts.model.as_deref().or(self.cfg.model_name.as_deref())
    }

    pub fn response_model(&self) -> Option<&str> {
        self.response_model.as_deref()
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    pub fn cost(&self) -> Option<f64> {
        let u = self.usage?;
        self.cfg.cost(u.prompt_tokens, u.completion_tokens)
    }

    pub fn is_stream(&self) -> bool {
        self.mode == ResponseMode::Stream
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// Why the upstream answer could not be used, for the operator's log.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }
}

fn too_large(max: u64) -> GatewayError {
    GatewayError::new(ErrorKind::PayloadTooLarge, format!("request body is larger than {max} bytes"))
        .with_code("request_too_large")
}

#[cfg(test)]
mod tests {
    // The same tests run natively and, through wasm-bindgen-test, as wasm32.
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    fn exchange(json: &str) -> Exchange {
        let cfg = ProxyConfig::from_json(json.as_bytes(), &|_| None).unwrap();
        Exchange::new(Rc::new(cfg), "req1".into(), 1700000000)
    }

    fn headers(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
    }

    const OPENAI: &str = r#"{"auth":{"header_name":"Authorization","header_value":"Bearer sk-gw"},"model":{"provider":"openai","name":"gpt-4o"}}"#;

    #[test]
    fn headers_set_target_and_replace_client_credentials() {
        let x = exchange(OPENAI);
        let h = headers(&[("content-type", "application/json"), ("authorization", "Bearer client"), ("x-api-key", "k")]);
        assert!(x.check_request_headers("POST", true, &h).is_ok());
        let e = x.header_edits("/v1/chat/completions", &h);
        assert_eq!(e.authority.as_deref(), Some("api.openai.com"));
        assert_eq!(e.path, None, "path already right");
        assert_eq!(e.set, vec![("authorization".to_string(), "Bearer sk-gw".to_string())]);
        assert!(e.remove.contains(&"x-api-key".to_string()));
        assert!(!e.remove.iter().chain(e.set.iter().map(|(n, _)| n)).any(|n| n == "content-length"), "no body was rewritten");
        assert!(!e.remove.contains(&"accept-encoding".to_string()), "the client sent none");
    }

    #[test]
    fn edits_apply_to_a_header_list() {
        let edits = HeaderEdits {
            path: Some("/v1/messages".into()),
            authority: None,
            remove: vec!["authorization".into()],
            set: vec![("x-api-key".into(), "k".into()), ("content-length".into(), "9".into())],
        };
        let mut h: Vec<(String, String)> = [(":path", "/x"), (":authority", "gw"), ("authorization", "Bearer c"), ("content-length", "5")]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        edits.apply_to(&mut h);
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get(":path"), Some("/v1/messages"));
        assert_eq!(get(":authority"), Some("gw"));
        assert_eq!(get("authorization"), None);
        assert_eq!(get("x-api-key"), Some("k"));
        assert_eq!(get("content-length"), Some("9"));
        assert_eq!(h.len(), 4);
    }

    #[test]
    fn a_rewritten_body_gets_its_exact_length_and_compression_is_refused() {
        let mut x = exchange(OPENAI);
        let body = x.request_body(br#"{"messages":[{"role":"user","content":"hi"}]}"#).unwrap().unwrap();
        let e = x.header_edits("/v1/chat/completions", &headers(&[("content-length", "44"), ("accept-encoding", "gzip")]));
        assert!(e.set.contains(&("content-length".to_string(), body.len().to_string())), "{e:?}");
        assert!(e.remove.contains(&"accept-encoding".to_string()));
    }

    #[test]
    fn allow_override_keeps_the_clients_key() {
        let x = exchange(r#"{"auth":{"header_name":"Authorization","header_value":"Bearer sk-gw","allow_override":true},"model":{"provider":"openai","name":"gpt-4o"}}"#);
        let h = headers(&[("content-type", "application/json"), ("authorization", "Bearer client")]);
        let e = x.header_edits("/x", &h);
        assert!(e.set.is_empty());
        assert!(!e.remove.contains(&"authorization".to_string()));
    }

    #[test]
    fn query_credential_replaces_the_clients() {
        let x = exchange(r#"{"route_type":"preserve","auth":{"param_name":"key","param_value":"a b"},"model":{"provider":"openai"}}"#);
        assert!(x.check_request_headers("GET", false, &headers(&[])).is_ok());
        let e = x.header_edits("/v1/models?key=client&x=1", &headers(&[]));
        assert_eq!(e.path.as_deref(), Some("/v1/models?x=1&key=a%20b"));
    }

    #[test]
    fn header_phase_rejections() {
        let x = exchange(OPENAI);
        let json = headers(&[("content-type", "application/json; charset=utf-8")]);
        assert_eq!(x.check_request_headers("GET", true, &json).err().map(|e| e.status), Some(405));
        assert_eq!(x.check_request_headers("POST", false, &json).err().map(|e| e.status), Some(400));
        let form = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        assert_eq!(x.check_request_headers("POST", true, &form).err().map(|e| e.status), Some(415));
        let big = headers(&[("content-type", "application/json"), ("content-length", "999999999")]);
        assert_eq!(x.check_request_headers("POST", true, &big).err().map(|e| e.status), Some(413));
    }

    #[test]
    fn missing_secret_is_a_500_not_an_unauthenticated_call() {
        let x = exchange(r#"{"auth":{"header_name":"Authorization","header_value":"{vault://env/NOPE}"},"model":{"provider":"openai"}}"#);
        let e = x.check_request_headers("POST", true, &headers(&[("content-type", "application/json")])).err().unwrap();
        assert_eq!(e.status, 500);
        assert!(!e.message.contains("NOPE"), "the variable name is for the log, not the client");
    }

    #[test]
    fn html_success_becomes_502() {
        let mut x = exchange(OPENAI);
        let _ = x.request_body(br#"{"messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        let e = x.response_headers(200, Some("text/html"));
        assert_eq!(e.status, Some(502));
        let edit = x.response_body(b"<html>");
        assert!(String::from_utf8_lossy(&edit.body.unwrap()).contains("not JSON"));
    }

    #[test]
    fn json_success_that_is_not_json_becomes_502() {
        let mut x = exchange(OPENAI);
        let _ = x.request_body(br#"{"messages":[]}"#).unwrap();
        let _ = x.response_headers(200, Some("application/json"));
        let edit = x.response_body(b"{truncated");
        assert_eq!(edit.status, Some(502));
        assert!(edit.body.is_some());
    }

    #[test]
    fn ollama_stream_switches_content_type() {
        let mut x = exchange(r#"{"model":{"provider":"ollama","name":"llama3","options":{"upstream_url":"http://o:11434"}}}"#);
        let body = x.request_body(br#"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#).unwrap().unwrap();
        assert!(String::from_utf8_lossy(&body).contains("\"stream\":true"));
        let e = x.response_headers(200, Some("application/x-ndjson"));
        assert_eq!(e.content_type, Some("text/event-stream"));
        assert!(x.is_stream());
        let out = x.response_chunk(b"{\"model\":\"llama3\",\"message\":{\"content\":\"hi\"},\"done\":true,\"prompt_eval_count\":1,\"eval_count\":2}\n", true);
        assert!(String::from_utf8_lossy(&out).ends_with("data: [DONE]\n\n"));
        assert_eq!(x.usage(), Some(Usage::new(1, 2)));
    }
}
