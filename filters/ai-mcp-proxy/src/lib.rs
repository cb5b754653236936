//! ai-mcp-proxy: proxy-wasm glue over `codec::mcp`, which holds the logic.

use codec::mcp::acl::Subject;
use codec::mcp::config::McpConfig;
use codec::mcp::{Labels, McpExchange, ResponseMode, Verdict};
use host::proxy_wasm::traits::{Context, HttpContext, RootContext};
use host::proxy_wasm::types::{Action, ContextType, LogLevel};
use std::cell::RefCell;
use std::rc::Rc;

/// Payload logging keeps at most this many bytes of each body.
const PAYLOAD_LOG_CAP: usize = 8 * 1024;

host::proxy_wasm::main! {{
    host::proxy_wasm::set_log_level(LogLevel::Info);
    host::proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { config: None, server: Rc::from(""), labels: Rc::new(RefCell::new(Labels::default())) })
    });
}}

struct Root {
    config: Option<Rc<McpConfig>>,
    /// This instance's name in Envoy: the `server` label.
    server: Rc<str>,
    labels: Rc<RefCell<Labels>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let name = host::get_property(&["plugin_name"]).unwrap_or_default();
        self.server = Rc::from(String::from_utf8_lossy(&name).as_ref());
        let Some(config) = host::configure("ai-mcp-proxy", McpConfig::from_json) else { return false };
        self.config = Some(Rc::new(config));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let config = self.config.clone()?;
        Some(Box::new(McpRequest { config, server: self.server.clone(), labels: self.labels.clone(), exchange: None, headers: Vec::new(), replied: false }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct McpRequest {
    config: Rc<McpConfig>,
    server: Rc<str>,
    labels: Rc<RefCell<Labels>>,
    /// Set once the request's headers are read.
    exchange: Option<McpExchange>,
    /// The request headers, kept for the body phase's mirrored-header check.
    headers: Vec<(String, String)>,
    replied: bool,
}

fn now_ms() -> Option<u64> {
    host::now().duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_millis() as u64)
}

impl McpRequest {
    fn reply(&mut self, verdict: Verdict) -> Action {
        let Verdict::Reply { status, body } = verdict else { return Action::Continue };
        self.replied = true;
        host::send_json(status, body.as_bytes());
        Action::Pause
    }
}

impl Context for McpRequest {}

// Envoy runs with `allow_on_headers_stop_iteration`: a Pause from a
// headers callback holds the headers while the body is read.
impl HttpContext for McpRequest {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let headers = host::request_headers();
        let header = |name: &str| host::lookup(&headers, name);
        let consumer = self.config.consumer_header.as_deref().and_then(header);
        let groups = self.config.consumer_groups_header.as_deref().and_then(header);
        let mut exchange = McpExchange::new(self.config.clone(), Subject::new(consumer, groups.as_deref()), header("mcp-session-id"));
        let method = header(":method").unwrap_or_default();
        let length = header("content-length").and_then(|l| l.trim().parse().ok());
        let verdict = exchange.request_headers(&method, header("content-type").as_deref(), length, !end_of_stream);
        let reads_body = method.eq_ignore_ascii_case("POST") && !end_of_stream;
        self.exchange = Some(exchange);
        if let Some(verdict) = verdict {
            return self.reply(verdict);
        }
        if !reads_body {
            return Action::Continue;
        }
        self.headers = headers;
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(exchange) = self.exchange.as_mut() else { return Action::Continue };
        if self.replied {
            return Action::Pause;
        }
        if body_size as u64 > exchange.config().max_request_body_size {
            let verdict = exchange.too_large();
            return self.reply(verdict);
        }
        if !end_of_stream {
            return Action::Pause; // buffer until the whole body is here
        }
        let body = host::request_body(body_size);
        if self.config.logging.log_payloads {
            let shown = body.get(..PAYLOAD_LOG_CAP).unwrap_or(&body);
            host::set_property("ai.mcp.request_payload", shown);
            log::info!("ai.mcp.request_payload: {}", String::from_utf8_lossy(shown));
        }
        let headers = std::mem::take(&mut self.headers);
        let verdict = exchange.request_body(&body, &|name| host::lookup(&headers, name), now_ms());
        self.reply(verdict)
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let Some(exchange) = self.exchange.as_mut() else { return Action::Continue };
        if self.replied || end_of_stream {
            return Action::Continue;
        }
        let content_type = host::response_header("content-type");
        match exchange.response_headers(content_type.as_deref()) {
            // Held until the body is read: its length may change.
            ResponseMode::Buffer => Action::Pause,
            ResponseMode::Filter => {
                host::remove_response_header("content-length");
                Action::Continue
            }
            ResponseMode::Observe | ResponseMode::Pass => Action::Continue,
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(exchange) = self.exchange.as_mut() else { return Action::Continue };
        if self.replied {
            return Action::Continue;
        }
        match exchange.mode() {
            ResponseMode::Pass => {}
            ResponseMode::Buffer => {
                if !end_of_stream {
                    return Action::Pause;
                }
                let body = host::response_body(body_size);
                if let Some(new_body) = exchange.response_body(&body, None) {
                    host::set_response_header("content-length", &new_body.len().to_string());
                    host::set_response_body(body_size, &new_body);
                }
            }
            ResponseMode::Observe | ResponseMode::Filter => {
                let chunk = host::response_body(body_size);
                if let Some(out) = exchange.response_chunk(&chunk, end_of_stream, &now_ms) {
                    if out != chunk {
                        host::set_response_body(body_size, &out);
                    }
                }
            }
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let Some(exchange) = &self.exchange else { return };
        let report = exchange.report(&self.server, &mut self.labels.borrow_mut());
        for (key, value) in &report.properties {
            host::set_property(key, value.as_bytes());
        }
        for (metric, n) in &report.counters {
            host::count(metric, *n);
        }
        for (metric, value) in &report.histograms {
            host::record(metric, *value);
        }
        host::report_host_calls("ai-mcp-proxy");
    }
}
