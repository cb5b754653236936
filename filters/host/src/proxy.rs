//! One proxied request as proxy-wasm callbacks, over `codec::proxy::Exchange`
//! (which holds the logic): ai-proxy runs it as a downstream filter, and
//! ai-proxy-advanced runs it once per try as an upstream filter. `Hooks` is
//! where the two differ: how header edits are applied, and what a finished
//! request records besides the shared report.

use codec::proxy::config::ProxyConfig;
use codec::proxy::report::{Labels, Timing};
use codec::proxy::{Exchange, HeaderEdits, ResponseMode};
use codec::GatewayError;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::SystemTime;

/// Payload logging keeps at most this many bytes of each body.
const PAYLOAD_LOG_CAP: usize = 8 * 1024;

pub trait Hooks {
    /// Name in log lines and the benchmark's host-call table.
    fn filter(&self) -> &'static str;
    /// Applies the request's edits. `headers`: the request headers the
    /// edits were computed from (owned: a filter may edit and write them back).
    fn apply(&mut self, edits: &HeaderEdits, headers: Vec<(String, String)>);
    /// The request ended; the shared report is already published.
    fn finished(&mut self, _exchange: &Exchange, _replied: bool, _timing: &Timing) {}
}

pub fn now_ms() -> Option<u64> {
    Some(crate::now().duration_since(SystemTime::UNIX_EPOCH).ok()?.as_millis() as u64)
}

fn capped(body: &[u8]) -> String {
    let shown = body.get(..PAYLOAD_LOG_CAP).unwrap_or(body);
    let mut text = String::from_utf8_lossy(shown).into_owned();
    if body.len() > PAYLOAD_LOG_CAP {
        text.push_str(&format!("... ({} bytes in all)", body.len()));
    }
    text
}

pub struct ProxyRequest<H: Hooks> {
    pub exchange: Exchange,
    pub hooks: H,
    labels: Rc<RefCell<Labels>>,
    context_id: u32,
    consumer: Option<String>,
    /// Request headers read in the headers phase, used again in the body phase.
    headers: Vec<(String, String)>,
    /// The request reached this filter (on_log also comes for requests an
    /// earlier filter refused).
    started: bool,
    pub timing: Timing,
    streamed_logged: usize,
    /// The filter answered the client itself; its reply passes untouched.
    replied: bool,
    published: bool,
}

impl<H: Hooks> ProxyRequest<H> {
    pub fn new(config: Rc<ProxyConfig>, hooks: H, labels: Rc<RefCell<Labels>>, context_id: u32) -> Self {
        ProxyRequest {
            exchange: Exchange::new(config, String::new(), 0),
            hooks,
            labels,
            context_id,
            consumer: None,
            headers: Vec::new(),
            started: false,
            timing: Timing::default(),
            streamed_logged: 0,
            replied: false,
            published: false,
        }
    }

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
        crate::send_json(client_err.status, &self.exchange.error_reply(&client_err));
        Action::Pause
    }

    /// The access log's keys are published (`logging.log_statistics`).
    fn statistics(&self) -> bool {
        self.exchange.config().logging.log_statistics
    }

    fn log_payload(&self, key: &str, body: &[u8]) {
        if self.exchange.config().logging.log_payloads {
            let text = capped(body);
            log::info!("{key}: {text}");
            crate::set_property(key, text.as_bytes());
        }
    }

    /// `headers`: the request headers as they arrived (a snapshot: one host
    /// call instead of one per header looked up).
    fn apply_request_edits(&mut self, headers: Vec<(String, String)>) {
        let path = crate::lookup(&headers, ":path").unwrap_or_default();
        if self.statistics() {
            // The client's path without its query (which may hold a key).
            crate::set_property("ai.client_path", path.split('?').next().unwrap_or_default().as_bytes());
        }
        let edits = self.exchange.header_edits(&path, &|name| crate::lookup(&headers, name));
        self.hooks.apply(&edits, headers);
        self.timing.sent_ms = now_ms();
    }

    /// Makes usage, model, cost and timings readable by later filters and
    /// access logs, and counts the request in the metrics.
    fn publish(&mut self) {
        if self.published || !self.started {
            return;
        }
        self.published = true;
        // A stream the client left (or the upstream cut) never saw its end:
        // it is charged what the provider reported, the rest estimated.
        self.exchange.end_stream();
        // The end time only serves time per output token, for streams.
        if self.timing.first_chunk_ms.is_some() {
            self.timing.end_ms = now_ms();
        }
        let line = log::log_enabled!(log::Level::Debug);
        let report = self.exchange.report(self.replied, self.consumer.as_deref(), &self.timing, &mut self.labels.borrow_mut(), line);
        crate::publish(&report.properties, &report.counters, &report.histograms);
        if let Some(problem) = &report.problem {
            log::warn!("{problem}");
        }
        if let Some(line) = &report.statistics {
            log::debug!("{line}");
        }
        self.hooks.finished(&self.exchange, self.replied, &self.timing);
    }

    /// The request headers phase, given the headers to work from.
    pub fn request_headers(&mut self, headers: Vec<(String, String)>, end_of_stream: bool) -> Action {
        self.started = true;
        let header = |name: &str| crate::lookup(&headers, name);
        let request_id = header("x-request-id").unwrap_or_default();
        let id: String = request_id.chars().filter(char::is_ascii_alphanumeric).take(32).collect();
        let id = if id.is_empty() { format!("{:x}{:x}", crate::unix_nanos(), self.context_id) } else { id };
        self.exchange.begin(id, crate::unix_seconds());
        // Always: the rate limiter reads it to know ai-proxy will charge.
        crate::set_property("ai.provider", self.exchange.config().provider.as_str().as_bytes());
        if self.statistics() {
            crate::set_property("ai.route_type", self.exchange.config().route_type.as_str().as_bytes());
        }
        if let Some(name) = &self.exchange.config().consumer_header {
            self.consumer = header(name);
            if let (Some(c), true) = (&self.consumer, self.statistics()) {
                crate::set_property("ai.consumer", c.as_bytes());
            }
        }

        let method = header(":method").unwrap_or_default();
        if let Err(err) = self.exchange.check_request_headers(&method, !end_of_stream, &header) {
            return self.reject(&err);
        }
        if end_of_stream {
            self.apply_request_edits(headers);
            return Action::Continue;
        }
        self.headers = headers; // kept for the edits once the body is read
        Action::Pause
    }
}

impl<H: Hooks> Context for ProxyRequest<H> {}

// Envoy runs with `allow_on_headers_stop_iteration`, so returning Pause from
// a headers callback holds the headers while the body is read: nothing goes
// upstream before the body is checked, and headers may still be changed.
impl<H: Hooks> HttpContext for ProxyRequest<H> {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.request_headers(crate::request_headers(), end_of_stream)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.replied {
            return Action::Pause;
        }
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
        let body = crate::request_body(body_size);
        // The client's body, before any credential is added to it.
        self.log_payload("ai.request_payload", &body);
        match self.exchange.request_body(&body) {
            Ok(Some(new_body)) => {
                crate::set_request_body(body_size, &new_body);
            }
            Ok(None) => {}
            Err(err) => return self.reject(&err),
        }
        if let (Some(model), true) = (self.exchange.requested_model(), self.statistics()) {
            crate::set_property("ai.request_model", model.as_bytes());
        }
        let headers = std::mem::take(&mut self.headers);
        self.apply_request_edits(headers);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.replied {
            return Action::Continue; // our own error reply: already in shape
        }
        let headers = crate::response_headers();
        let status = crate::lookup(&headers, ":status").and_then(|s| s.parse().ok()).unwrap_or(0);
        // Envoy's own 5xx (connect failure, reset, timeout) has no upstream
        // time: it is no provider latency sample.
        let from_envoy = status >= 500 && crate::lookup(&headers, "x-envoy-upstream-service-time").is_none();
        self.timing.answered_ms = if from_envoy { None } else { now_ms() };
        let content_type = crate::lookup(&headers, "content-type");
        let edits = self.exchange.response_headers(status, content_type.as_deref());
        let status_text = edits.status.map(|s| s.to_string());
        let mut changes: Vec<codec::headers::HeaderEdit> = Vec::with_capacity(4);
        if let Some(ct) = edits.content_type {
            changes.push(("content-type", Some(ct)));
        }
        if let Some(model) = &edits.model_header {
            changes.push(("x-llm-model", Some(model)));
        }
        if let Some(status) = &status_text {
            changes.push((":status", Some(status)));
        }
        if edits.remove_content_length {
            changes.push(("content-length", None));
        }
        if !changes.is_empty() {
            crate::edit_response_headers(Some(headers), &changes);
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
                let body = crate::response_body(body_size);
                let edit = self.exchange.response_body(&body);
                self.log_payload("ai.response_payload", edit.body.as_deref().unwrap_or(&body));
                if let Some(status) = edit.status {
                    crate::set_response_header(":status", &status.to_string());
                }
                if let Some(new_body) = edit.body {
                    // The headers were held for this: the new body's length.
                    crate::set_response_header("content-length", &new_body.len().to_string());
                    crate::set_response_body(body_size, &new_body);
                }
            }
            ResponseMode::Stream => {
                let chunk = crate::response_body(body_size);
                let out = self.exchange.response_chunk(&chunk, end_of_stream);
                if self.timing.first_chunk_ms.is_none() && !out.is_empty() {
                    self.timing.first_chunk_ms = now_ms();
                }
                if self.exchange.config().logging.log_payloads && self.streamed_logged < PAYLOAD_LOG_CAP {
                    self.streamed_logged = self.streamed_logged.saturating_add(out.len());
                    log::info!("response stream payload: {}", capped(&out));
                }
                if out != chunk {
                    crate::set_response_body(body_size, &out);
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
        crate::report_host_calls(self.hooks.filter());
    }
}
