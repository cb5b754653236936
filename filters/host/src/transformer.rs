//! The proxy-wasm glue of ai-request-transformer and ai-response-transformer
//! (one module each, registering a `Side`): hold the payload, send it to
//! the LLM with `dispatch_http_call`, then resume with the LLM's answer or
//! answer the client with an error. What to send and what the answer means
//! is `codec::transformer`'s.

use crate::{now, send_error};
use codec::metrics::name;
use codec::transformer::{Call, Side, TransformerConfig, Transformed};
use codec::{ErrorKind, GatewayError};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

struct Root {
    side: Side,
    config: Option<Rc<TransformerConfig>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        let side = self.side;
        let Some(config) = crate::configure(side.plugin(), |raw| TransformerConfig::from_json(side, raw, &crate::env_var)) else {
            return false;
        };
        if let Some(missing) = &config.llm.missing_secret {
            log::warn!("{}: no credential at {missing}; transformed requests will be answered 500", side.plugin());
        }
        self.config = Some(Rc::new(config));
        true
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let config = self.config.clone()?;
        Some(Box::new(Transform {
            side: self.side,
            call: Call::new(config, String::new(), 0),
            context_id,
            request_id: String::new(),
            payload_size: 0,
            sent: None,
            response: Held::No,
            outcome: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Writes the exact `content-length` of a replaced body: its headers are
/// held (the phase paused) until the body is known.
fn set_length(set_header: fn(&str, &str) -> bool, len: usize) {
    set_header("content-length", &len.to_string());
}

/// Registers the transformer of `side` as this module's root context.
pub fn register(side: Side) {
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(match side {
        Side::Request => |_| -> Box<dyn RootContext> { Box::new(Root { side: Side::Request, config: None }) },
        Side::Response => |_| -> Box<dyn RootContext> { Box::new(Root { side: Side::Response, config: None }) },
    });
}

/// What the response transformer does with the response body.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Not ours to transform (request transformer, stream, no body).
    No,
    /// Buffering until the end of the body.
    Buffering,
    /// Replaced by an error: later chunks are dropped.
    Failed,
}

struct Transform {
    side: Side,
    call: Call,
    context_id: u32,
    /// From `x-request-id`, read in the request phase (request headers
    /// cannot be read in the response phase): LLM response ids derive from it.
    request_id: String,
    /// Size of the held payload, replaced whole by the answer.
    payload_size: usize,
    /// When the LLM call went out (timeouts are told from failures by it).
    sent: Option<SystemTime>,
    response: Held,
    /// "success" or "upstream_error" once the LLM call ended.
    outcome: Option<&'static str>,
}

impl Transform {
    fn config(&self) -> &TransformerConfig {
        self.call.config()
    }

    /// Sends the held payload to the LLM; on failure, the error to answer.
    fn start_call(&mut self, payload: &[u8]) -> Result<(), GatewayError> {
        let id = if self.request_id.is_empty() { format!("{:x}{:x}", crate::unix_nanos(), self.context_id) } else { self.request_id.clone() };
        self.call.begin(id, crate::unix_seconds());
        let request = self.call.request(payload)?;
        let timeout = Duration::from_millis(self.config().http_timeout_ms);
        let cluster = self.config().llm_cluster.clone();
        crate::dispatch_http_call(&cluster, &request.headers, &request.body, timeout).map_err(|status| {
            GatewayError::new(ErrorKind::Internal, "the transformer could not call its LLM")
                .with_code(format!("dispatch_failed:{status:?} (is llm_cluster `{cluster}` defined?)"))
        })?;
        self.sent = Some(now());
        Ok(())
    }

    /// Logs the operator's detail of a failure and gives the client's part.
    fn client_error(&self, err: &GatewayError) -> GatewayError {
        log::warn!("{}: {err} ({})", self.side.plugin(), err.code.as_deref().unwrap_or_default());
        if let Some(problem) = self.call.problem() {
            log::warn!("{}: {problem}", self.side.plugin());
        }
        let mut client = err.clone();
        if client.code.as_deref().is_some_and(|c| c.starts_with("missing_secret:") || c.starts_with("dispatch_failed:")) {
            client.code = None; // variable and cluster names are for the operator only
        }
        client
    }

    fn reject_request(&mut self, err: &GatewayError) -> Action {
        let client = self.client_error(err);
        send_error(&client, &[]);
        Action::Pause
    }

    /// Replaces the held response by an error, in OpenAI's shape.
    fn fail_response(&mut self, err: &GatewayError) {
        let client = self.client_error(err);
        crate::set_response_header(":status", &client.status.to_string());
        crate::set_response_header("content-type", "application/json");
        let body = client.to_json();
        set_length(crate::set_response_header, body.len());
        crate::set_response_body(self.payload_size, &body);
    }

    fn apply_response(&mut self, t: &Transformed) {
        if let Some(status) = t.status {
            crate::set_response_header(":status", &status.to_string());
        }
        for (name, value) in &t.headers {
            crate::set_response_header(name, value);
        }
        set_length(crate::set_response_header, t.body.len());
        crate::set_response_body(self.payload_size, &t.body);
    }

    /// Usage and outcome of the LLM call, for logs, budgets and metrics.
    fn publish(&self) {
        let Some(outcome) = self.outcome else { return };
        let side = match self.side {
            Side::Request => "request",
            Side::Response => "response",
        };
        let key = |k: &str| format!("ai.transformer.{side}.{k}");
        let provider = self.config().llm.provider.as_str();
        let model = self.call.model().unwrap_or("unknown").to_string();
        crate::set_property(&key("provider"), provider.as_bytes());
        crate::set_property(&key("model"), model.as_bytes());
        crate::set_property(&key("outcome"), outcome.as_bytes());
        let who = [("provider", provider), ("model", model.as_str()), ("plugin", self.side.plugin())];
        crate::count(&name("ai_llm_requests_total", &[who[0], who[1], who[2], ("outcome", outcome)]), 1);
        if let Some(u) = self.call.usage() {
            crate::set_property(&key("prompt_tokens"), u.prompt_tokens.to_string().as_bytes());
            crate::set_property(&key("completion_tokens"), u.completion_tokens.to_string().as_bytes());
            crate::set_property(&key("total_tokens"), u.total_tokens.to_string().as_bytes());
            crate::set_property(&key("usage"), codec::usage::format_usage(&u).as_bytes());
            for (kind, n) in [("prompt", u.prompt_tokens), ("completion", u.completion_tokens), ("total", u.total_tokens)] {
                crate::count(&name("ai_llm_tokens_total", &[who[0], who[1], who[2], ("token_type", kind)]), n);
            }
            if let Some(cost) = self.call.cost() {
                crate::count(&name("ai_llm_cost_microunits_total", &who), (cost * 1_000_000.0).round() as u64);
            }
        }
        if let Some(ms) = self.sent.and_then(|s| now().duration_since(s).ok()) {
            crate::record(&name("ai_llm_provider_latency_ms", &[who[0], who[1]]), ms.as_millis() as u64);
        }
    }
}

impl Context for Transform {
    fn on_http_call_response(&mut self, _token: u32, num_headers: usize, body_size: usize, _trailers: usize) {
        let headers = if num_headers > 0 { crate::http_call_response_headers() } else { Vec::new() };
        let status = crate::lookup(&headers, ":status").and_then(|s| s.parse::<u16>().ok());
        let content_type = crate::lookup(&headers, "content-type");
        let body = if body_size > 0 { crate::http_call_response_body(body_size) } else { Vec::new() };
        let elapsed = self.sent.and_then(|s| now().duration_since(s).ok()).unwrap_or_default();
        // Envoy answers a timed-out call itself (504, or no headers at all).
        // It is a timeout when the call lasted (about) the whole timeout.
        let timed_out = status.is_none_or(|s| s == 504) && elapsed.as_millis() as u64 * 10 >= self.config().http_timeout_ms * 9;
        let result = self.call.answer(status, content_type.as_deref(), &body, timed_out);
        self.outcome = Some(if result.is_ok() { "success" } else { "upstream_error" });
        self.publish();
        match (self.side, result) {
            (Side::Request, Ok(t)) => {
                // The headers are still held: the upstream gets an exact
                // length, as from Kong (many plain APIs refuse chunked bodies).
                set_length(crate::set_request_header, t.body.len());
                crate::set_request_body(self.payload_size, &t.body);
                crate::resume_request();
            }
            (Side::Request, Err(err)) => {
                self.reject_request(&err);
            }
            (Side::Response, Ok(t)) => {
                self.apply_response(&t);
                crate::resume_response();
            }
            (Side::Response, Err(err)) => {
                self.fail_response(&err);
                crate::resume_response();
            }
        }
    }
}

// Envoy runs these with `allow_on_headers_stop_iteration`: headers paused
// in their phase are held until the body is transformed.
impl HttpContext for Transform {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let request_id = crate::request_header("x-request-id").unwrap_or_default();
        self.request_id = request_id.chars().filter(char::is_ascii_alphanumeric).take(32).collect();
        if self.side != Side::Request || end_of_stream {
            return Action::Continue; // no request body: nothing to transform
        }
        let max = self.config().max_request_body_size;
        if crate::request_header("content-length").and_then(|v| v.trim().parse::<u64>().ok()).is_some_and(|len| len > max) {
            let err = self.config().too_large();
            return self.reject_request(&err);
        }
        // The body will be the LLM's answer (or the request is refused).
        crate::remove_request_header("content-length");
        crate::set_request_header("content-type", "application/json");
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.side != Side::Request {
            return Action::Continue;
        }
        if body_size as u64 > self.config().max_request_body_size {
            let err = self.config().too_large();
            return self.reject_request(&err);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.payload_size = body_size;
        let body = crate::request_body(body_size);
        match self.start_call(&body) {
            Ok(()) => Action::Pause,
            Err(err) => self.reject_request(&err),
        }
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if self.side != Side::Response || end_of_stream {
            return Action::Continue;
        }
        let content_type = crate::response_header("content-type").unwrap_or_default();
        if content_type.to_ascii_lowercase().starts_with("text/event-stream") {
            log::info!("ai-response-transformer: streamed response passed through untransformed");
            return Action::Continue;
        }
        self.response = Held::Buffering;
        crate::remove_response_header("content-length");
        Action::Pause
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.response {
            Held::No => return Action::Continue,
            Held::Failed => {
                crate::set_response_body(body_size, b"");
                return Action::Continue;
            }
            Held::Buffering => {}
        }
        self.payload_size = body_size;
        if body_size as u64 > self.config().max_request_body_size {
            self.response = Held::Failed;
            let err = GatewayError::with_status(502, "the upstream response is too large to transform").with_code("response_too_large");
            self.fail_response(&err);
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.response = Held::No;
        let body = crate::response_body(body_size);
        match self.start_call(&body) {
            Ok(()) => Action::Pause,
            Err(err) => {
                self.fail_response(&err);
                Action::Continue
            }
        }
    }
}
