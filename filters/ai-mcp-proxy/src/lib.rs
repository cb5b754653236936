//! ai-mcp-proxy: proxy-wasm glue over `codec::mcp`, which holds the logic.

use codec::mcp::acl::Subject;
use codec::mcp::config::McpConfig;
use codec::mcp::convert::RestCall;
use codec::mcp::{Labels, McpExchange, ResponseMode, Verdict};
use host::proxy_wasm::traits::{Context, HttpContext, RootContext};
use host::proxy_wasm::types::{Action, ContextType, LogLevel};
use std::cell::RefCell;
use std::rc::Rc;

/// Payload logging keeps at most this many bytes of each body.
const PAYLOAD_LOG_CAP: usize = 8 * 1024;

/// conversion-listener stamps the REST request it makes with its own name,
/// so the route table (matched again after the rewrite) sends it on.
const ROUTE_HEADER: &str = "x-ai-mcp-proxy";

/// Client headers that belong to MCP (or to the old body), not to the REST API.
const MCP_HEADERS: [&str; 7] = ["mcp-session-id", "mcp-protocol-version", "mcp-method", "mcp-name", "content-length", "content-type", "accept"];

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
        let Some(mut config) = host::configure("ai-mcp-proxy", McpConfig::from_json) else { return false };
        config.server_name = self.server.to_string();
        self.config = Some(Rc::new(config));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let config = self.config.clone()?;
        Some(Box::new(McpRequest { config, server: self.server.clone(), labels: self.labels.clone(), exchange: None, headers: Vec::new(), body_size: 0, replied: false }))
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
    body_size: usize,
    replied: bool,
}

fn now_ms() -> Option<u64> {
    host::now().duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_millis() as u64)
}

impl McpRequest {
    fn reply(&mut self, verdict: Verdict) -> Action {
        match verdict {
            Verdict::Forward => Action::Continue,
            Verdict::Reply { status, body } => {
                self.replied = true;
                host::send_json(status, body.as_bytes());
                Action::Pause
            }
            Verdict::Rest(call) => {
                self.send_rest(call);
                Action::Continue
            }
        }
    }

    /// conversion-listener: the held request becomes the REST call.
    fn send_rest(&mut self, call: RestCall) {
        let forward = self.config.forward_client_headers;
        let mut headers: Vec<(String, String)> = std::mem::take(&mut self.headers)
            .into_iter()
            .filter(|(k, _)| k.starts_with(':') || k == "x-request-id" || (forward && !MCP_HEADERS.contains(&k.as_str()) && k != ROUTE_HEADER))
            .filter(|(k, _)| k != ":method" && k != ":path" && !(call.host.is_some() && k == ":authority"))
            .collect();
        headers.push((":method".into(), call.method));
        headers.push((":path".into(), call.path));
        if let Some(host) = call.host {
            headers.push((":authority".into(), host));
        }
        headers.retain(|(k, _)| !call.headers.iter().any(|(name, _)| name == k));
        headers.extend(call.headers);
        headers.push(("accept".into(), "application/json".into()));
        // The new body's length (many APIs read no chunked request bodies).
        if let Some(body) = &call.body {
            headers.push(("content-length".into(), body.len().to_string()));
        }
        headers.push(("x-envoy-upstream-rq-timeout-ms".into(), self.config.timeout_ms.to_string()));
        headers.push((ROUTE_HEADER.into(), self.config.server_name.clone()));
        host::set_request_body(self.body_size, call.body.as_deref().unwrap_or_default());
        host::replace_request_headers(&headers);
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
        let headers = &self.headers;
        let verdict = exchange.request_body(&body, &|name| host::lookup(headers, name), now_ms());
        self.body_size = body_size;
        self.reply(verdict)
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let Some(exchange) = self.exchange.as_mut() else { return Action::Continue };
        if self.replied {
            return Action::Continue;
        }
        let headers = host::response_headers();
        let status = host::lookup(&headers, ":status").and_then(|s| s.parse().ok()).unwrap_or(0);
        let mode = exchange.response_headers(status, host::lookup(&headers, "content-type").as_deref());
        match mode {
            ResponseMode::Convert if end_of_stream => {
                // A REST answer without a body (a 204): the result replaces it.
                let body = exchange.response_body(b"", now_ms()).unwrap_or_default();
                self.replied = true;
                host::send_json(200, &body);
                Action::Pause
            }
            _ if end_of_stream => Action::Continue,
            // Held until the body is read: its length may change.
            ResponseMode::Buffer | ResponseMode::Convert => Action::Pause,
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
            ResponseMode::Buffer | ResponseMode::Convert => {
                if !end_of_stream {
                    return Action::Pause;
                }
                let converted = exchange.mode() == ResponseMode::Convert;
                let body = host::response_body(body_size);
                if let Some(new_body) = exchange.response_body(&body, if converted { now_ms() } else { None }) {
                    if converted {
                        // The REST API's status is in the result (isError); MCP's is 200.
                        host::set_response_header(":status", "200");
                        host::set_response_header("content-type", "application/json");
                    }
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
