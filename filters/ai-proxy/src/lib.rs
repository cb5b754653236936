//! ai-proxy: thin proxy-wasm glue over `codec::proxy::Exchange`, which
//! holds all the logic and runs under `cargo test` natively.

use codec::proxy::config::ProxyConfig;
use codec::proxy::{Exchange, ResponseMode};
use codec::GatewayError;
use host::proxy_wasm::traits::{Context, HttpContext, RootContext};
use host::proxy_wasm::types::{Action, ContextType, LogLevel};
use std::rc::Rc;

/// Request header naming the ai-proxy instance that rewrote the request.
const ROUTE_HEADER: &str = "x-ai-proxy";

host::proxy_wasm::main! {{
    host::proxy_wasm::set_log_level(LogLevel::Info);
    host::proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { config: None, name: Rc::from("") }) });
}}

struct Root {
    config: Option<Rc<ProxyConfig>>,
    /// This instance's name in Envoy (`config.name`), stamped on rewritten
    /// requests so envoy.yaml can route them after Envoy re-matches routes.
    name: Rc<str>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = host::plugin_configuration();
        let name = host::get_property(&["plugin_name"]).unwrap_or_default();
        self.name = Rc::from(String::from_utf8_lossy(&name).as_ref());
        match ProxyConfig::from_json(&raw, &host::env_var) {
            Ok(config) => {
                if let Some(missing) = &config.missing_secret {
                    log::warn!("no credential at {missing}; requests on this route will be answered 500");
                }
                log::info!(
                    "configured provider={} route_type={} model={}",
                    config.provider.as_str(),
                    config.route_type.as_str(),
                    config.model_name.as_deref().unwrap_or("(from request)")
                );
                self.config = Some(Rc::new(config));
                true
            }
            Err(err) => {
                log::error!("{err}");
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let config = self.config.clone()?;
        Some(Box::new(Request {
            exchange: Exchange::new(config, String::new(), 0),
            instance: self.name.clone(),
            streamed_logged: 0,
            replied: false,
            context_id,
            started: None,
            published: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Payload logging keeps at most this many bytes of each body.
const PAYLOAD_LOG_CAP: usize = 8 * 1024;

fn capped(body: &[u8]) -> String {
    let shown = body.get(..PAYLOAD_LOG_CAP).unwrap_or(body);
    let mut text = String::from_utf8_lossy(shown).into_owned();
    if body.len() > PAYLOAD_LOG_CAP {
        text.push_str(&format!("... ({} bytes in all)", body.len()));
    }
    text
}

struct Request {
    exchange: Exchange,
    streamed_logged: usize,
    /// The filter answered the client itself; its reply passes untouched.
    replied: bool,
    instance: Rc<str>,
    context_id: u32,
    started: Option<std::time::SystemTime>,
    published: bool,
}

impl Request {
    fn reject(&mut self, err: &GatewayError) -> Action {
        self.replied = true;
        if err.status >= 500 {
            log::error!("{err} ({})", err.code.as_deref().unwrap_or_default());
        } else {
            log::info!("rejected request: {err}");
        }
        let mut client_err = err.clone();
        if client_err.code.as_deref().is_some_and(|c| c.starts_with("missing_secret:")) {
            client_err.code = None; // the variable name is for the operator only
        }
        host::send_error(&client_err, &[]);
        Action::Pause
    }

    /// Makes usage, model and cost readable by later filters and access logs.
    fn publish(&mut self) {
        if self.published {
            return;
        }
        self.published = true;
        let x = &self.exchange;
        if let Some(model) = x.response_model() {
            host::set_property("ai.response_model", model.as_bytes());
        }
        if let Some(u) = x.usage() {
            host::set_property("ai.prompt_tokens", u.prompt_tokens.to_string().as_bytes());
            host::set_property("ai.completion_tokens", u.completion_tokens.to_string().as_bytes());
            host::set_property("ai.total_tokens", u.total_tokens.to_string().as_bytes());
            if let Some(d) = u.prompt_tokens_details {
                host::set_property("ai.cached_tokens", d.cached_tokens.to_string().as_bytes());
            }
            if let Some(d) = u.completion_tokens_details {
                host::set_property("ai.reasoning_tokens", d.reasoning_tokens.to_string().as_bytes());
            }
        }
        if let Some(cost) = x.cost() {
            host::set_property("ai.cost", format!("{cost:.8}").as_bytes());
        }
        if let Some(problem) = x.problem() {
            log::warn!("{problem}");
        }
        if x.config().logging.log_statistics {
            let latency = self.started.and_then(|s| host::now().duration_since(s).ok()).map(|d| d.as_millis()).unwrap_or(0);
            let u = x.usage().unwrap_or_default();
            log::info!(
                "provider={} model={} response_model={} status={} stream={} prompt_tokens={} completion_tokens={} total_tokens={} latency_ms={latency}",
                x.config().provider.as_str(),
                x.requested_model().unwrap_or("-"),
                x.response_model().unwrap_or("-"),
                x.status(),
                x.is_stream(),
                u.prompt_tokens,
                u.completion_tokens,
                u.total_tokens,
            );
        }
    }
}

impl Context for Request {}

impl Request {
    fn apply_request_edits(&self) {
        let path = host::request_header(":path").unwrap_or_default();
        let edits = self.exchange.header_edits(&path, &host::request_header);
        for name in &edits.remove {
            host::remove_request_header(name);
        }
        for (name, value) in &edits.set {
            host::set_request_header(name, value);
        }
        if let Some(path) = &edits.path {
            host::set_request_header(":path", path);
        }
        if let Some(authority) = &edits.authority {
            host::set_request_header(":authority", authority);
        }
        // Envoy picks the route again after any header change; this header
        // (always ours, never the client's) lets the route table send the
        // rewritten request where this instance meant it to go.
        host::set_request_header(ROUTE_HEADER, &self.instance);
    }
}

// Envoy runs with `allow_on_headers_stop_iteration`, so returning Pause from
// a headers callback holds the headers while the body is read: nothing goes
// upstream before the body is checked, and headers may still be changed.
impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.started = Some(host::now());
        let request_id = host::request_header("x-request-id").unwrap_or_default();
        let id: String = request_id.chars().filter(char::is_ascii_alphanumeric).take(32).collect();
        let id = if id.is_empty() { format!("{:x}{:x}", host::unix_nanos(), self.context_id) } else { id };
        self.exchange.begin(id, host::unix_seconds());

        let method = host::request_header(":method").unwrap_or_default();
        if let Err(err) = self.exchange.check_request_headers(&method, !end_of_stream, &host::request_header) {
            return self.reject(&err);
        }
        host::set_property("ai.provider", self.exchange.config().provider.as_str().as_bytes());
        host::set_property("ai.route_type", self.exchange.config().route_type.as_str().as_bytes());
        if end_of_stream {
            self.apply_request_edits();
            return Action::Continue;
        }
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if body_size as u64 > self.exchange.config().max_request_body_size {
            let max = self.exchange.config().max_request_body_size;
            return self.reject(
                &GatewayError::new(codec::ErrorKind::PayloadTooLarge, format!("request body is larger than {max} bytes"))
                    .with_code("request_too_large"),
            );
        }
        if !end_of_stream {
            return Action::Pause; // buffer until the whole body is here
        }
        let body = host::request_body(body_size);
        if self.exchange.config().logging.log_payloads {
            // The client's body, before any credential is added to it.
            log::info!("request payload: {}", capped(&body));
        }
        match self.exchange.request_body(&body) {
            Ok(Some(new_body)) => {
                host::set_request_body(body_size, &new_body);
            }
            Ok(None) => {}
            Err(err) => return self.reject(&err),
        }
        if let Some(model) = self.exchange.requested_model() {
            host::set_property("ai.request_model", model.as_bytes());
        }
        self.apply_request_edits();
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.replied {
            return Action::Continue; // our own error reply: already in shape
        }
        let status = host::response_header(":status").and_then(|s| s.parse().ok()).unwrap_or(0);
        let content_type = host::response_header("content-type");
        let edits = self.exchange.response_headers(status, content_type.as_deref());
        if let Some(ct) = edits.content_type {
            host::set_response_header("content-type", ct);
        }
        if edits.remove_content_length {
            host::remove_response_header("content-length");
        }
        if let Some(model) = &edits.model_header {
            host::set_response_header("x-llm-model", model);
        }
        if let Some(status) = edits.status {
            host::set_response_header(":status", &status.to_string());
        }
        if self.exchange.response_mode() == ResponseMode::Buffered && !end_of_stream {
            // Held until the body is read: its status may still change.
            return Action::Pause;
        }
        if end_of_stream {
            self.publish();
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.replied {
            return Action::Continue;
        }
        match self.exchange.response_mode() {
            ResponseMode::Passthrough => {}
            ResponseMode::Buffered => {
                if !end_of_stream {
                    return Action::Pause;
                }
                let body = host::response_body(body_size);
                let edit = self.exchange.response_body(&body);
                if self.exchange.config().logging.log_payloads {
                    log::info!("response payload: {}", capped(edit.body.as_deref().unwrap_or(&body)));
                }
                if let Some(status) = edit.status {
                    host::set_response_header(":status", &status.to_string());
                }
                if let Some(new_body) = edit.body {
                    host::set_response_body(body_size, &new_body);
                }
            }
            ResponseMode::Stream => {
                let chunk = host::response_body(body_size);
                let out = self.exchange.response_chunk(&chunk, end_of_stream);
                if self.exchange.config().logging.log_payloads && self.streamed_logged < PAYLOAD_LOG_CAP {
                    self.streamed_logged = self.streamed_logged.saturating_add(out.len());
                    log::info!("response stream payload: {}", capped(&out));
                }
                if out != chunk {
                    host::set_response_body(body_size, &out);
                }
            }
        }
        if end_of_stream {
            self.publish();
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        self.publish();
    }
}
