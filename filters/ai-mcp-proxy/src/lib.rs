//! ai-mcp-proxy: proxy-wasm glue over `codec::mcp`, which holds the logic.

use codec::acl::Subject;
use codec::mcp::config::McpConfig;
use codec::mcp::convert::RestCall;
use codec::mcp::config::Mode;
use codec::mcp::{Labels, McpExchange, ResponseMode, Verdict};
use host::proxy::now_ms;
use host::proxy_wasm::traits::{Context, HttpContext, RootContext};
use host::proxy_wasm::types::{Action, ContextType, LogLevel};
use std::cell::RefCell;
use std::rc::Rc;

/// Payload logging keeps at most this many bytes of each body.
const PAYLOAD_LOG_CAP: usize = 8 * 1024;

/// conversion-listener stamps the REST request it makes with its own name,
/// so the route table (matched again after the rewrite) sends it on.
const ROUTE_HEADER: &str = "x-ai-mcp-proxy";

/// Client headers that never go on to the REST API: MCP's own, the old
/// body's, hop-by-hop ones, and those the filter sets itself.
const NOT_FORWARDED: [&str; 16] = [
    "mcp-session-id", "mcp-protocol-version", "mcp-method", "mcp-name", "content-length", "content-type", "accept", "accept-encoding",
    "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "expect", ROUTE_HEADER,
];

/// REST answer headers that mean nothing (or something wrong) on the MCP
/// answer the filter makes of it.
const REST_ONLY: [&str; 8] = ["set-cookie", "content-encoding", "etag", "last-modified", "content-range", "www-authenticate", "location", "content-disposition"];

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
        Some(Box::new(McpRequest { config, server: self.server.clone(), labels: self.labels.clone(), exchange: None, headers: Vec::new(), body_size: 0, awaiting_body: false, response_size: 0, answered: false, replied: false }))
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
    /// The POST body is still being buffered: nothing may pass before it is read.
    awaiting_body: bool,
    /// Size of the held answer so far, and whether it was read.
    response_size: usize,
    answered: bool,
    replied: bool,
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

    /// The whole request body is here: forward, refuse or convert it.
    fn decide(&mut self) -> Action {
        self.awaiting_body = false;
        let body = host::request_body(self.body_size);
        let Some(exchange) = self.exchange.as_mut() else { return Action::Continue };
        if self.config.logging.log_payloads {
            let shown = body.get(..PAYLOAD_LOG_CAP).unwrap_or(&body);
            host::set_property("ai.mcp.request_payload", shown);
            log::info!("ai.mcp.request_payload: {}", String::from_utf8_lossy(shown));
        }
        let headers = &self.headers;
        let verdict = exchange.request_body(&body, &|name| host::lookup(headers, name), now_ms());
        self.reply(verdict)
    }

    /// A held answer (Buffer, Convert) is complete: read and replaced.
    fn answer_held(&mut self) {
        let Some(exchange) = self.exchange.as_mut() else { return };
        if self.answered {
            return;
        }
        self.answered = true;
        let body = host::response_body(self.response_size);
        if let Some(new_body) = exchange.response_body(&body, now_ms()) {
            host::set_response_body(self.response_size, &new_body);
        }
    }

    /// conversion-listener: the held request becomes the REST call.
    fn send_rest(&mut self, call: RestCall) {
        let forward = self.config.forward_client_headers;
        let forwarded = |k: &str| forward && !NOT_FORWARDED.contains(&k) && !k.starts_with("x-envoy-") && !k.starts_with("proxy-");
        let mut headers: Vec<(String, String)> = std::mem::take(&mut self.headers)
            .into_iter()
            .filter(|(k, _)| k.starts_with(':') || k == "x-request-id" || forwarded(k))
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
        // The answer is read: not compressed.
        headers.push(("accept-encoding".into(), "identity".into()));
        // The new body's length, 0 without one (many APIs read no chunked
        // request bodies).
        let length = call.body.as_ref().map_or(0, Vec::len);
        headers.push(("content-length".into(), length.to_string()));
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
        // Answers are read (lists cut down): they must come uncompressed.
        let mut headers = headers;
        if self.config.mode == Mode::Passthrough && host::lookup(&headers, "accept-encoding").is_some() {
            host::remove_request_header("accept-encoding");
            headers.retain(|(k, _)| k != "accept-encoding");
        }
        if !reads_body {
            return Action::Continue;
        }
        self.headers = headers;
        self.awaiting_body = true;
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
        self.body_size = body_size;
        if !end_of_stream {
            return Action::Pause; // buffer until the whole body is here
        }
        self.decide()
    }

    // HTTP/2 (or HTTP/1.1 with trailers on) can end a body with trailers,
    // never with an end-of-stream body callback: it is decided here, or it
    // would pass unread.
    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        if !self.awaiting_body || self.replied {
            return Action::Continue;
        }
        self.decide()
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let Some(exchange) = self.exchange.as_mut() else { return Action::Continue };
        if self.replied {
            return Action::Continue;
        }
        let headers = host::response_headers();
        let header = |name: &str| host::lookup(&headers, name);
        let status = header(":status").and_then(|s| s.parse().ok()).unwrap_or(0);
        let mode = exchange.response_headers(status, header("content-type").as_deref(), header("content-encoding").as_deref());
        if mode == ResponseMode::Convert && end_of_stream {
            // A REST answer without a body (a 204): the result replaces it.
            let body = exchange.response_body(b"", now_ms()).unwrap_or_default();
            self.replied = true;
            host::send_json(200, &body);
            return Action::Pause;
        }
        if end_of_stream || matches!(mode, ResponseMode::Observe | ResponseMode::Pass) {
            return Action::Continue;
        }
        // The body may change: its length goes, and so does an encoding
        // the filter replaced by its own error.
        let mut edits: Vec<codec::headers::HeaderEdit> = vec![("content-length", None)];
        if exchange.drops_encoding() {
            edits.push(("content-encoding", None));
        }
        if mode == ResponseMode::Convert {
            // The REST API's status is in the result (isError); MCP's is 200.
            edits.extend([(":status", Some("200")), ("content-type", Some("application/json"))]);
            edits.extend(REST_ONLY.iter().map(|h| (*h, None)));
        }
        host::edit_response_headers(Some(headers), &edits);
        match mode {
            // Held until the body is read.
            ResponseMode::Buffer | ResponseMode::Convert => Action::Pause,
            _ => Action::Continue,
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
                self.response_size = body_size;
                if !end_of_stream {
                    return Action::Pause;
                }
                self.answer_held();
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

    // An answer ended by trailers: a held one is read here.
    fn on_http_response_trailers(&mut self, _: usize) -> Action {
        let held = self.exchange.as_ref().is_some_and(|x| matches!(x.mode(), ResponseMode::Buffer | ResponseMode::Convert));
        if held && !self.replied {
            self.answer_held();
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let Some(exchange) = &self.exchange else { return };
        let report = exchange.report(&self.server, &mut self.labels.borrow_mut());
        host::publish(&report.properties, &report.counters, &report.histograms);
        host::report_host_calls("ai-mcp-proxy");
    }
}
