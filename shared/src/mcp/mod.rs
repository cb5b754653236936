//! ai-mcp-proxy's logic (Kong's `passthrough-listener` mode): in front of an
//! MCP server (Streamable HTTP, every revision from 2025-03-26 to the
//! stateless 2026-07-28), it reads each JSON-RPC message the client posts,
//! refuses `tools/call`s the consumer's ACL denies (answered here, in
//! JSON-RPC, never forwarded), cuts `tools/list` answers down to the tools
//! the consumer may call (JSON and SSE answers), and counts what happened.

pub mod config;
pub mod convert;
pub mod jsonrpc;
pub mod response;

use crate::metrics::{name, LabelCap};
use crate::sse::{SseDecoder, SseEvent};
use crate::acl::Subject;
use config::McpConfig;
use config::Mode;
use jsonrpc::{RpcError, HEADER_MISMATCH, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND};
use response::CallOutcome;
use std::rc::Rc;

/// Bytes of one answer read to learn a call's outcome; a larger answer
/// passes unread (outcome `unknown`).
const MAX_OBSERVED: usize = 1024 * 1024;
/// The largest SSE event held to be cut down; past it the stream's
/// unanswered `tools/list` requests are answered with an error.
const MAX_EVENT: usize = 8 * 1024 * 1024;

/// What the filter does with a request.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Forward,
    /// Answered here: status and a JSON body (empty for a 202).
    Reply { status: u16, body: String },
    /// conversion-listener: this REST request goes upstream instead.
    Rest(convert::RestCall),
}

/// What conversion-listener answers `initialize` with, newest first.
const VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

/// How the answer is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    /// Not looked at.
    Pass,
    /// A JSON answer holding a `tools/list` result: held whole, cut down.
    Buffer,
    /// Passed on as it comes; a copy is read for the calls' outcomes.
    Observe,
    /// An SSE stream whose events may hold `tools/list` results: each
    /// complete event is passed on, cut down where needed.
    Filter,
    /// conversion-listener: the REST API's answer, held whole and turned
    /// into the `tools/call` result (status 200, JSON).
    Convert,
}

/// One request message's fate, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    ToolError,
    Error,
    Denied,
    Invalid,
    /// The answer was not seen (a stream cut, a notification, too large).
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::ToolError => "tool_error",
            Outcome::Error => "error",
            Outcome::Denied => "denied",
            Outcome::Invalid => "invalid",
            Outcome::Unknown => "unknown",
        }
    }
}

/// A request message of the body.
#[derive(Debug)]
struct Request {
    id: Option<String>,
    method: String,
    tool: Option<String>,
    outcome: Outcome,
    error_code: Option<i64>,
    answered_ms: Option<u64>,
}

/// Label caps shared by every request of one plugin instance.
#[derive(Debug)]
pub struct Labels {
    methods: LabelCap,
    tools: LabelCap,
    consumers: LabelCap,
}

impl Default for Labels {
    fn default() -> Self {
        Labels { methods: LabelCap::new(32), tools: LabelCap::new(128), consumers: LabelCap::new(100) }
    }
}

/// Everything to publish when a request ends.
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    pub properties: Vec<(&'static str, String)>,
    pub counters: Vec<(String, u64)>,
    pub histograms: Vec<(String, u64)>,
}

pub struct McpExchange {
    config: Rc<McpConfig>,
    subject: Subject,
    session: Option<String>,
    /// A GET stream: answers to requests this filter never saw may be
    /// replayed on it, so any `tools/list` result in it is cut down.
    is_stream_request: bool,
    requests: Vec<Request>,
    list_ids: Vec<String>,
    audits: Vec<(String, bool)>,
    sent_ms: Option<u64>,
    mode: ResponseMode,
    decoder: SseDecoder,
    observed: Vec<u8>,
    /// The answer is an SSE stream.
    sse: bool,
    removed_tools: usize,
    /// conversion-listener: the raw id of the call sent as a REST request,
    /// and the REST answer's status and content type.
    rest_call: Option<String>,
    rest_status: u16,
    rest_content_type: Option<String>,
    /// The answer is compressed (or otherwise encoded).
    encoded: bool,
    /// The observed answer outgrew MAX_OBSERVED: left unread.
    observed_overflow: bool,
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

fn is_sse(content_type: &str) -> bool {
    content_type.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("text/event-stream")
}

fn reply(status: u16, err: &RpcError) -> Verdict {
    Verdict::Reply { status, body: err.to_json() }
}

impl McpExchange {
    pub fn new(config: Rc<McpConfig>, subject: Subject, session: Option<String>) -> McpExchange {
        McpExchange {
            config,
            subject,
            session,
            is_stream_request: false,
            requests: Vec::new(),
            list_ids: Vec::new(),
            audits: Vec::new(),
            sent_ms: None,
            mode: ResponseMode::Pass,
            decoder: SseDecoder::new(MAX_EVENT),
            observed: Vec::new(),
            sse: false,
            removed_tools: 0,
            rest_call: None,
            rest_status: 0,
            rest_content_type: None,
            encoded: false,
            observed_overflow: false,
        }
    }

    pub fn config(&self) -> &McpConfig {
        &self.config
    }

    /// The request's headers. `has_body`: a body follows. None: go on (to
    /// `request_body` when there is a body).
    pub fn request_headers(&mut self, method: &str, content_type: Option<&str>, content_length: Option<u64>, has_body: bool) -> Option<Verdict> {
        self.is_stream_request = method.eq_ignore_ascii_case("GET");
        if self.config.mode == Mode::Conversion && !method.eq_ignore_ascii_case("POST") {
            // A stateless server: no GET stream, no session to DELETE.
            return Some(reply(405, &RpcError::new(INVALID_REQUEST, format!("Method Not Allowed: {method} (this server is stateless: POST only)"))));
        }
        if !method.eq_ignore_ascii_case("POST") {
            if has_body {
                // A body this filter does not read would go on unchecked.
                return Some(reply(405, &RpcError::new(INVALID_REQUEST, format!("Method Not Allowed: JSON-RPC messages are POSTed, not sent with {method}"))));
            }
            return None; // GET streams, DELETE: the server's to answer
        }
        if !has_body {
            return None;
        }
        if !content_type.is_some_and(is_json) {
            // What is not read as JSON cannot be checked: it goes nowhere.
            let err = RpcError::new(INVALID_REQUEST, "Invalid Request: the content type must be application/json");
            self.refused(&err);
            return Some(reply(415, &err));
        }
        if content_length.is_some_and(|len| len > self.config.max_request_body_size) {
            return Some(self.too_large());
        }
        None
    }

    /// The refusal of a body over `max_request_body_size`.
    pub fn too_large(&mut self) -> Verdict {
        let err = RpcError::new(INVALID_REQUEST, format!("Invalid Request: the body is larger than {} bytes", self.config.max_request_body_size));
        self.refused(&err);
        reply(413, &err)
    }

    /// A body refused before its messages could be read.
    fn refused(&mut self, err: &RpcError) {
        self.requests.push(Request { id: err.id.clone(), method: "invalid".into(), tool: None, outcome: Outcome::Invalid, error_code: Some(err.code), answered_ms: None });
    }

    pub fn mode(&self) -> ResponseMode {
        self.mode
    }

    /// The whole POST body. `header`: a request header by lower-case name.
    pub fn request_body(&mut self, body: &[u8], header: &dyn Fn(&str) -> Option<String>, now_ms: Option<u64>) -> Verdict {
        self.sent_ms = now_ms;
        if body.len() as u64 > self.config.max_request_body_size {
            return self.too_large();
        }
        let parsed = match jsonrpc::read(body) {
            Ok(parsed) => parsed,
            Err(err) => {
                self.refused(&err);
                return reply(400, &err);
            }
        };
        if self.config.mode == Mode::Conversion {
            return self.serve(&parsed, header);
        }
        let messages = parsed.messages();
        let batch = matches!(parsed, jsonrpc::Body::Batch(_));
        let mut refusals: Vec<Option<RpcError>> = Vec::with_capacity(messages.len());
        for m in messages {
            let Some(method) = m.method.as_deref() else {
                refusals.push(None); // the client answering the server
                continue;
            };
            // Paired with answers by the id as parsed; refusals echo it as sent.
            let id = m.id.and_then(jsonrpc::canonical_id);
            let raw_id = m.id.map(|id| id.get().to_string());
            let mut request = Request { id: id.clone(), method: method.to_string(), tool: None, outcome: Outcome::Unknown, error_code: None, answered_ms: None };
            let mut refusal = None;
            if !batch {
                if let Some(mirrored) = header("mcp-method").filter(|h| h != method) {
                    refusal = Some(RpcError { id: raw_id.clone(), ..RpcError::new(HEADER_MISMATCH, format!("Header mismatch: Mcp-Method header value '{mirrored}' does not match body value '{method}'")) });
                }
            }
            if method == "tools/call" && refusal.is_none() {
                refusal = self.check_call(m, &mut request, raw_id, batch, header).err();
            } else if method == "tools/list" {
                if let Some(id) = &id {
                    self.list_ids.push(id.clone());
                }
            }
            if let Some(err) = &refusal {
                if request.outcome != Outcome::Denied {
                    request.outcome = Outcome::Invalid;
                }
                request.error_code = Some(err.code);
            }
            self.requests.push(request);
            refusals.push(refusal);
        }
        if refusals.iter().all(Option::is_none) {
            return Verdict::Forward;
        }
        if !batch {
            let err = refusals.into_iter().flatten().next().unwrap_or_else(|| RpcError::new(INTERNAL_ERROR, "refused"));
            // Answerable in JSON-RPC where the message has an id; a header
            // mismatch is a 400 as the specification has it.
            let status = if err.id.is_none() || err.code == HEADER_MISMATCH { 400 } else { 200 };
            return reply(status, &err);
        }
        // A batch goes whole or not at all: each request gets its refusal,
        // or word that the batch was refused for another's.
        let answers: Vec<String> = messages
            .iter()
            .zip(refusals)
            .filter_map(|(m, refusal)| {
                let id = m.id.filter(|_| m.method.is_some())?;
                let err = refusal.unwrap_or_else(|| RpcError { id: Some(id.get().to_string()), ..RpcError::new(INVALID_REQUEST, "Invalid Request: the batch holds a call the gateway refused; nothing in it was sent") });
                Some(err.to_json())
            })
            .collect();
        for r in self.requests.iter_mut().filter(|r| r.outcome == Outcome::Unknown) {
            r.outcome = Outcome::Invalid;
        }
        self.list_ids.clear();
        Verdict::Reply { status: 200, body: format!("[{}]", answers.join(",")) }
    }

    /// A `tools/call`: read strictly, its tool's ACL decides.
    fn check_call(&mut self, m: &jsonrpc::Message, request: &mut Request, raw_id: Option<String>, batch: bool, header: &dyn Fn(&str) -> Option<String>) -> Result<(), RpcError> {
        if m.id.is_none() {
            return Err(RpcError::new(INVALID_REQUEST, "Invalid Request: tools/call needs an id"));
        }
        let tool = jsonrpc::tool_name(m)?;
        if !batch {
            if let Some(mirrored) = header("mcp-name").filter(|h| *h != tool) {
                return Err(RpcError { id: raw_id, ..RpcError::new(HEADER_MISMATCH, format!("Header mismatch: Mcp-Name header value '{mirrored}' does not match body value '{tool}'")) });
            }
        }
        let allowed = self.config.acl_for(&tool).allows(&self.subject);
        self.audits.push((tool.clone(), allowed));
        request.tool = Some(tool.clone());
        if allowed {
            return Ok(());
        }
        request.outcome = Outcome::Denied;
        let who = match &self.subject.consumer {
            Some(c) => format!("consumer '{c}'"),
            None => "anonymous requests".to_string(),
        };
        Err(RpcError { id: raw_id, ..RpcError::new(INVALID_PARAMS, format!("Tool '{tool}' is not available for {who}")) })
    }

    /// conversion-listener: the filter answers as the MCP server, or turns
    /// a `tools/call` into its REST request.
    fn serve(&mut self, parsed: &jsonrpc::Body, header: &dyn Fn(&str) -> Option<String>) -> Verdict {
        let jsonrpc::Body::Single(m) = parsed else {
            return reply(400, &RpcError::new(INVALID_REQUEST, "Invalid Request: batches are not supported (MCP 2025-06-18 removed them)"));
        };
        let (Some(method), Some(raw)) = (m.method.as_deref(), m.id) else {
            return Verdict::Reply { status: 202, body: String::new() }; // a notification or a response
        };
        let raw_id = raw.get().to_string();
        let id = jsonrpc::canonical_id(raw);
        let mut request = Request { id, method: method.to_string(), tool: None, outcome: Outcome::Success, error_code: None, answered_ms: None };
        let answer = |result: serde_json::Value| Verdict::Reply { status: 200, body: serde_json::json!({"jsonrpc": "2.0", "id": serde_json::from_str::<serde_json::Value>(&raw_id).unwrap_or_default(), "result": result}).to_string() };
        let verdict = match method {
            "initialize" => {
                let asked = m.params.and_then(|p| serde_json::from_str::<serde_json::Value>(p.get()).ok());
                let asked = asked.as_ref().and_then(|p| p["protocolVersion"].as_str());
                let version = VERSIONS.iter().find(|v| Some(**v) == asked).unwrap_or(&VERSIONS[0]);
                answer(serde_json::json!({"protocolVersion": version, "capabilities": {"tools": {"listChanged": false}},
                    "serverInfo": {"name": self.config.server_name, "version": env!("CARGO_PKG_VERSION")}}))
            }
            "ping" => answer(serde_json::json!({})),
            "tools/list" => {
                let tools: Vec<&serde_json::Value> = self.config.rest_tools.iter().filter(|t| self.allowed(&t.name)).map(|t| &t.listing).collect();
                self.removed_tools += self.config.rest_tools.len() - tools.len();
                answer(serde_json::json!({"tools": tools}))
            }
            "tools/call" => match self.check_call(m, &mut request, Some(raw_id.clone()), false, header) {
                Err(err) => {
                    request.error_code = Some(err.code);
                    if request.outcome != Outcome::Denied {
                        request.outcome = Outcome::Invalid;
                    }
                    reply(if err.code == HEADER_MISMATCH { 400 } else { 200 }, &err)
                }
                Ok(()) => {
                    let name = request.tool.clone().unwrap_or_default();
                    match self.config.rest_tools.iter().find(|t| t.name == name) {
                        None => {
                            request.outcome = Outcome::Error;
                            request.error_code = Some(INVALID_PARAMS);
                            reply(200, &RpcError { id: Some(raw_id.clone()), ..RpcError::new(INVALID_PARAMS, format!("Unknown tool: {name}")) })
                        }
                        Some(tool) => {
                            let params = m.params.and_then(|p| serde_json::from_str::<serde_json::Value>(p.get()).ok()).unwrap_or_default();
                            match tool.call(params.get("arguments")) {
                                Ok(call) => {
                                    request.outcome = Outcome::Unknown; // until the API answers
                                    self.rest_call = Some(raw_id.clone());
                                    Verdict::Rest(call)
                                }
                                Err(why) => {
                                    request.outcome = Outcome::ToolError;
                                    answer(serde_json::json!({"content": [{"type": "text", "text": why}], "isError": true}))
                                }
                            }
                        }
                    }
                }
            },
            _ => {
                request.outcome = Outcome::Error;
                request.error_code = Some(METHOD_NOT_FOUND);
                reply(200, &RpcError { id: Some(raw_id.clone()), ..RpcError::new(METHOD_NOT_FOUND, format!("Method not found: {method}")) })
            }
        };
        self.requests.push(request);
        verdict
    }

    fn allowed(&self, tool: &str) -> bool {
        self.config.acl_for(tool).allows(&self.subject)
    }

    /// The answer's status and content type: how its body is read.
    /// `content_encoding`: the answer's `content-encoding`, if any (the
    /// filter asks for none; an encoded answer it must read is refused).
    pub fn response_headers(&mut self, status: u16, content_type: Option<&str>, content_encoding: Option<&str>) -> ResponseMode {
        self.encoded = content_encoding.is_some_and(|e| !e.trim().is_empty() && !e.trim().eq_ignore_ascii_case("identity"));
        if self.rest_call.is_some() {
            self.rest_status = status;
            self.rest_content_type = content_type.map(str::to_string);
            self.mode = ResponseMode::Convert;
            return self.mode;
        }
        let content_type = content_type.unwrap_or_default();
        let has_calls = self.requests.iter().any(|r| r.id.is_some());
        let must_read = self.is_stream_request || !self.list_ids.is_empty();
        self.sse = is_sse(content_type);
        self.mode = if self.sse && (must_read || has_calls) {
            // Every event is read, so a list on any stream is cut down.
            ResponseMode::Filter
        } else if must_read {
            // Whatever the content type says: clients read `application/json-rpc`
            // or a missing type as JSON too.
            ResponseMode::Buffer
        } else if has_calls && !self.encoded {
            ResponseMode::Observe
        } else {
            ResponseMode::Pass
        };
        self.mode
    }

    /// The answer must be passed on without its `content-encoding` (it is
    /// replaced by an error the filter wrote).
    pub fn drops_encoding(&self) -> bool {
        self.encoded && matches!(self.mode, ResponseMode::Buffer | ResponseMode::Filter | ResponseMode::Convert)
    }

    /// Reads one answer text; returns it cut down where needed.
    fn read_answers(&mut self, text: &str, now_ms: Option<u64>) -> Option<String> {
        let read = response::read(text, &|tool| self.allowed(tool));
        for (id, outcome) in read.outcomes {
            if let Some(r) = self.requests.iter_mut().find(|r| r.id.as_deref() == Some(id.as_str()) && r.answered_ms.is_none()) {
                (r.outcome, r.error_code) = match outcome {
                    CallOutcome::Success => (Outcome::Success, None),
                    CallOutcome::ToolError => (Outcome::ToolError, None),
                    CallOutcome::Error(code) => (Outcome::Error, Some(code)),
                };
                r.answered_ms = now_ms.or(Some(0));
            }
        }
        self.removed_tools += read.removed;
        self.list_ids.retain(|id| !read.lists_answered.contains(id));
        if read.unreadable {
            // Never pass on a tools list that was not checked.
            return Some(self.unreadable_lists());
        }
        read.edited
    }

    /// Errors for every `tools/list` still unanswered.
    fn unreadable_lists(&mut self) -> String {
        let ids = std::mem::take(&mut self.list_ids);
        let errors: Vec<String> = ids
            .iter()
            .map(|id| RpcError { id: Some(id.clone()), ..RpcError::new(INTERNAL_ERROR, "the gateway could not read the server's tools list, so it was not passed on") }.to_json())
            .collect();
        match errors.len() {
            0 => RpcError::new(INTERNAL_ERROR, "the gateway could not read the server's tools list, so it was not passed on").to_json(),
            1 => errors.into_iter().next().unwrap_or_default(),
            _ => format!("[{}]", errors.join(",")),
        }
    }

    /// A whole JSON answer (`Buffer` mode, or `Convert`: the REST answer):
    /// the body to send instead, if any.
    pub fn response_body(&mut self, body: &[u8], now_ms: Option<u64>) -> Option<Vec<u8>> {
        if let Some(raw_id) = self.rest_call.take() {
            let result = if self.encoded {
                serde_json::json!({"content": [{"type": "text", "text": "the REST API answered with an encoded body the gateway cannot read"}], "isError": true})
            } else {
                convert::tool_result(self.rest_status, self.rest_content_type.as_deref(), body)
            };
            let failed = result.get("isError") == Some(&serde_json::Value::Bool(true));
            if let Some(r) = self.requests.last_mut() {
                r.outcome = if failed { Outcome::ToolError } else { Outcome::Success };
                r.answered_ms = now_ms;
            }
            let id: serde_json::Value = serde_json::from_str(&raw_id).unwrap_or_default();
            return Some(serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string().into_bytes());
        }
        let text = std::str::from_utf8(body).ok().filter(|_| !self.encoded);
        let Some(text) = text else {
            return Some(self.unreadable_lists().into_bytes());
        };
        self.read_answers(text, now_ms).map(String::into_bytes)
    }

    /// A chunk of the answer (`Observe` and `Filter`): what to send instead
    /// (None: the chunk as it is).
    pub fn response_chunk(&mut self, chunk: &[u8], end_of_stream: bool, now_ms: &dyn Fn() -> Option<u64>) -> Option<Vec<u8>> {
        match self.mode {
            ResponseMode::Pass | ResponseMode::Buffer | ResponseMode::Convert => None,
            ResponseMode::Observe if self.sse => {
                let mut events = Vec::new();
                self.decoder.push(chunk, &mut events);
                if end_of_stream {
                    self.decoder.finish(&mut events);
                }
                let now = if events.is_empty() { None } else { now_ms() };
                for e in events.iter().filter(|e| e.has_data) {
                    self.read_answers(&e.data, now);
                }
                None
            }
            ResponseMode::Observe => {
                if self.observed_overflow || self.observed.len() + chunk.len() > MAX_OBSERVED {
                    self.observed_overflow = true; // too large: left unread
                    self.observed = Vec::new();
                } else {
                    self.observed.extend_from_slice(chunk);
                }
                if end_of_stream && !self.observed_overflow {
                    let observed = std::mem::take(&mut self.observed);
                    if let Ok(text) = std::str::from_utf8(&observed) {
                        self.read_answers(text, now_ms());
                    }
                }
                None
            }
            ResponseMode::Filter => Some(self.filter_chunk(chunk, end_of_stream, now_ms)),
        }
    }

    fn filter_chunk(&mut self, chunk: &[u8], end_of_stream: bool, now_ms: &dyn Fn() -> Option<u64>) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len());
        if self.encoded {
            // Nothing of an encoded stream can be checked: only errors go on.
            if end_of_stream {
                let errors = self.unreadable_lists();
                encode(&SseEvent { event: Some("message".into()), ..Default::default() }, &errors, &mut out);
            }
            return out;
        }
        let mut events = Vec::new();
        self.decoder.push(chunk, &mut events);
        if end_of_stream {
            self.decoder.finish(&mut events);
        }
        let now = if events.is_empty() { None } else { now_ms() };
        for event in events {
            match event.has_data.then(|| self.read_answers(&event.data, now)).flatten() {
                Some(data) => encode(&event, &data, &mut out),
                None => out.extend_from_slice(&event.raw),
            }
        }
        if self.decoder.overflowed() && !self.list_ids.is_empty() {
            // An event too large to hold was dropped: it may have been the
            // list. Its requests get an error rather than nothing.
            let errors = self.unreadable_lists();
            encode(&SseEvent { event: Some("message".into()), ..Default::default() }, &errors, &mut out);
        }
        out
    }

    /// What this request did, for properties, metrics and the access log.
    pub fn report(&self, server: &str, labels: &mut Labels) -> Report {
        let mut r = Report::default();
        let consumer = labels.consumers.admit(self.subject.label());
        for q in self.requests.iter().filter(|q| q.id.is_some() || q.outcome == Outcome::Invalid) {
            let method = labels.methods.admit(&q.method);
            r.counters.push((name("ai_mcp_requests_total", &[("server", server), ("method", &method), ("outcome", q.outcome.as_str())]), 1));
            if let Some(tool) = &q.tool {
                let tool = labels.tools.admit(tool);
                r.counters.push((name("ai_mcp_tool_calls_total", &[("server", server), ("tool", &tool), ("outcome", q.outcome.as_str())]), 1));
                if let (Some(sent), Some(answered)) = (self.sent_ms, q.answered_ms) {
                    r.histograms.push((name("ai_mcp_tool_call_latency_ms", &[("server", server), ("tool", &tool)]), answered.saturating_sub(sent)));
                }
                if q.outcome == Outcome::Denied {
                    r.counters.push((name("ai_mcp_acl_denials_total", &[("server", server), ("consumer", &consumer)]), 1));
                }
            }
        }
        if self.removed_tools > 0 {
            r.counters.push((name("ai_mcp_tools_hidden_total", &[("server", server), ("consumer", &consumer)]), self.removed_tools as u64));
        }
        let logging = &self.config.logging;
        if logging.log_statistics && !self.requests.is_empty() {
            let join = |f: &dyn Fn(&Request) -> Option<String>| self.requests.iter().filter_map(f).collect::<Vec<_>>().join(",");
            r.properties.push(("ai.mcp.method", join(&|q| Some(q.method.clone()))));
            let tools = join(&|q| q.tool.clone());
            if !tools.is_empty() {
                r.properties.push(("ai.mcp.tool", tools));
            }
            r.properties.push(("ai.mcp.outcome", join(&|q| Some(q.outcome.as_str().to_string()))));
            let codes = join(&|q| q.error_code.map(|c| c.to_string()));
            if !codes.is_empty() {
                r.properties.push(("ai.mcp.error_code", codes));
            }
            if let Some(session) = &self.session {
                r.properties.push(("ai.mcp.session", session.clone()));
            }
            r.properties.push(("ai.mcp.consumer", self.subject.label().to_string()));
        }
        if logging.log_audits && !self.audits.is_empty() {
            let entries: Vec<serde_json::Value> = self
                .audits
                .iter()
                .map(|(tool, allowed)| {
                    serde_json::json!({"primitive_name": tool, "consumer": {"name": self.subject.label(), "groups": self.subject.groups},
                        "scope": "primitive", "primitive": "tool", "action": if *allowed { "allow" } else { "deny" }})
                })
                .collect();
            r.properties.push(("ai.mcp.audit", serde_json::Value::Array(entries).to_string()));
        }
        r
    }
}

/// One SSE event with new data: its `id` and `event` kept, the data on as
/// many `data:` lines as it has lines.
fn encode(event: &SseEvent, data: &str, out: &mut Vec<u8>) {
    if let Some(id) = &event.id {
        out.extend_from_slice(format!("id: {id}\n").as_bytes());
    }
    if let Some(name) = &event.event {
        out.extend_from_slice(format!("event: {name}\n").as_bytes());
    }
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    const CONFIG: &str = r#"{"mode":"passthrough-listener","consumer_header":"x-consumer","logging":{"log_statistics":true,"log_audits":true},
        "default_acl":[{"scope":"tools","deny":["interns"]}],
        "tools":[{"name":"delete_everything","description":"d","acl":{"allow":["admin"]}}]}"#;

    fn exchange(consumer: Option<&str>, groups: Option<&str>) -> McpExchange {
        let config = Rc::new(McpConfig::from_json(CONFIG.as_bytes()).unwrap());
        McpExchange::new(config, Subject::new(consumer.map(str::to_string), groups), Some("s-1".into()))
    }

    fn no_headers(_: &str) -> Option<String> {
        None
    }

    fn call(tool: &str) -> String {
        format!(r#"{{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#)
    }

    fn post(x: &mut McpExchange, body: &str) -> Verdict {
        assert_eq!(x.request_headers("POST", Some("application/json; charset=utf-8"), Some(body.len() as u64), true), None);
        x.request_body(body.as_bytes(), &no_headers, Some(100))
    }

    #[test]
    fn a_denied_call_is_answered_in_json_rpc_and_counted() {
        let mut x = exchange(Some("bob"), None);
        let Verdict::Reply { status, body } = post(&mut x, &call("delete_everything")) else { panic!("forwarded") };
        assert_eq!(status, 200);
        assert_eq!(body, r#"{"jsonrpc":"2.0","id":5,"error":{"code":-32602,"message":"Tool 'delete_everything' is not available for consumer 'bob'"}}"#);
        let r = x.report("tools", &mut Labels::default());
        assert!(r.counters.contains(&("ai_mcp_tool_calls_total.server.tools.tool.delete_everything.outcome.denied".into(), 1)));
        assert!(r.counters.contains(&("ai_mcp_acl_denials_total.server.tools.consumer.bob".into(), 1)));
        assert!(r.properties.contains(&("ai.mcp.outcome", "denied".into())));
        assert!(r.properties.contains(&("ai.mcp.session", "s-1".into())));
        let audit = &r.properties.iter().find(|(k, _)| *k == "ai.mcp.audit").unwrap().1;
        assert!(audit.contains(r#""action":"deny""#) && audit.contains(r#""primitive_name":"delete_everything""#));
        // The tool's own ACL replaces the default; groups count.
        assert_eq!(post(&mut exchange(Some("admin"), None), &call("delete_everything")), Verdict::Forward);
        assert!(matches!(post(&mut exchange(Some("ann"), Some("interns")), &call("add")), Verdict::Reply { status: 200, .. }));
        assert_eq!(post(&mut exchange(None, None), &call("add")), Verdict::Forward, "deny-only default: anonymous may");
        let Verdict::Reply { body, .. } = post(&mut exchange(None, None), &call("delete_everything")) else { panic!() };
        assert!(body.contains("not available for anonymous requests"));
    }

    #[test]
    fn bad_input_is_refused_in_json_rpc_and_nothing_goes_upstream() {
        let mut x = exchange(Some("bob"), None);
        assert!(matches!(x.request_headers("POST", Some("text/plain"), None, true), Some(Verdict::Reply { status: 415, .. })));
        assert!(matches!(x.request_headers("POST", Some("application/json"), Some(2 << 20), true), Some(Verdict::Reply { status: 413, .. })));
        assert_eq!(x.request_headers("GET", None, None, false), None);
        let Verdict::Reply { status, body } = post(&mut exchange(None, None), "{not json") else { panic!() };
        assert_eq!(status, 400);
        assert!(body.starts_with(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700"#), "{body}");
        // The mirrored headers of the stateless revision must agree with the body.
        let mut x = exchange(Some("admin"), None);
        let name = |h: &str| (h == "mcp-name").then(|| "add".to_string());
        let Verdict::Reply { status, body } = x.request_body(call("delete_everything").as_bytes(), &name, None) else { panic!() };
        assert_eq!(status, 400);
        assert!(body.contains("-32020"));
        // A batch with one denied call is refused whole.
        let batch = format!(r#"[{{"jsonrpc":"2.0","id":1,"method":"tools/list"}},{},{{"jsonrpc":"2.0","method":"notifications/initialized"}}]"#, call("delete_everything"));
        let Verdict::Reply { status, body } = post(&mut exchange(Some("bob"), None), &batch) else { panic!() };
        assert_eq!(status, 200);
        let answers: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answers.as_array().map(Vec::len), Some(2), "no answer for the notification");
        assert_eq!((answers[0]["id"].clone(), answers[1]["error"]["code"].clone()), (serde_json::json!(1), serde_json::json!(-32602)));
    }

    #[test]
    fn tools_list_answers_are_cut_down_in_json_and_in_streams() {
        let list = r#"{"jsonrpc":"2.0","id":"L","result":{"tools":[{"name":"add"},{"name":"delete_everything"}]}}"#;
        let mut x = exchange(Some("bob"), None);
        assert_eq!(post(&mut x, r#"{"jsonrpc":"2.0","id":"L","method":"tools/list"}"#), Verdict::Forward);
        assert_eq!(x.response_headers(200, Some("application/json"), None), ResponseMode::Buffer);
        let body = x.response_body(list.as_bytes(), None).unwrap();
        assert_eq!(String::from_utf8(body).unwrap(), r#"{"jsonrpc":"2.0","id":"L","result":{"tools":[{"name":"add"}]}}"#);
        let r = x.report("tools", &mut Labels::default());
        assert!(r.counters.contains(&("ai_mcp_tools_hidden_total.server.tools.consumer.bob".into(), 1)));
        assert!(r.counters.contains(&("ai_mcp_requests_total.server.tools.method.tools_list.outcome.success".into(), 1)));

        // SSE, cut anywhere: a progress notification passes as sent, the
        // answer is cut down, its event id kept.
        let mut x = exchange(Some("bob"), None);
        post(&mut x, r#"{"jsonrpc":"2.0","id":"L","method":"tools/list"}"#);
        assert_eq!(x.response_headers(200, Some("text/event-stream"), None), ResponseMode::Filter);
        let stream = format!("event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}}\n\nid: e2\nevent: message\ndata: {list}\n\n");
        let (a, b) = stream.as_bytes().split_at(stream.find("id: e2").unwrap() + 10);
        let mut out = x.response_chunk(a, false, &|| None).unwrap();
        assert!(out.starts_with(b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n"), "the first event is not held back");
        out.extend(x.response_chunk(b, true, &|| None).unwrap());
        let out = String::from_utf8(out).unwrap();
        assert!(out.ends_with("id: e2\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"L\",\"result\":{\"tools\":[{\"name\":\"add\"}]}}\n\n"), "{out}");

        // A GET stream may replay any answer: every tools list is cut down.
        let mut x = exchange(Some("bob"), None);
        assert_eq!(x.request_headers("GET", None, None, false), None);
        assert_eq!(x.response_headers(200, Some("text/event-stream"), None), ResponseMode::Filter);
        let out = x.response_chunk(format!("data: {list}\n\n").as_bytes(), false, &|| None).unwrap();
        assert!(!String::from_utf8(out).unwrap().contains("delete_everything"));
    }

    #[test]
    fn what_the_filter_cannot_read_never_passes_as_a_list() {
        let list = r#"{"jsonrpc":"2.0","id":"L","result":{"tools":[{"name":"delete_everything"}]}}"#;
        let ask = |x: &mut McpExchange| post(x, r#"{"jsonrpc":"2.0","id":"L","method":"tools/list"}"#);
        // A compressed answer (the filter asked for none).
        let mut x = exchange(Some("bob"), None);
        ask(&mut x);
        assert_eq!(x.response_headers(200, Some("application/json"), Some("gzip")), ResponseMode::Buffer);
        assert!(x.drops_encoding());
        let out = String::from_utf8(x.response_body(b"\x1f\x8b...", None).unwrap()).unwrap();
        assert!(out.contains("-32603") && out.contains(r#""id":"L""#), "{out}");
        // Any content type: clients read `application/json-rpc` or none as JSON.
        for ct in [Some("application/json-rpc"), None, Some("APPLICATION/JSON; charset=utf-8")] {
            let mut x = exchange(Some("bob"), None);
            ask(&mut x);
            assert_eq!(x.response_headers(200, ct, None), ResponseMode::Buffer, "{ct:?}");
            let out = x.response_body(list.as_bytes(), None).unwrap();
            assert!(!String::from_utf8(out).unwrap().contains("delete_everything"));
        }
        // JSON serde refuses but Python reads (Infinity), or an escaped repeated key.
        for text in [r#"{"jsonrpc":"2.0","id":"L","result":{"tools":[{"name":"delete_everything","inputSchema":{"maximum":Infinity}}]}}"#,
                     r#"{"jsonrpc":"2.0","id":"L","result":{"t\u006fols":[],"t\u006fols":[{"name":"delete_everything"}]}}"#,
                     r#"{"jsonrpc":"2.0","id":"L","error":{"code":1,"message":"x"},"result":{"tools":[{"name":"delete_everything"}]}}"#] {
            let mut x = exchange(Some("bob"), None);
            ask(&mut x);
            x.response_headers(200, Some("application/json"), None);
            let out = x.response_body(text.as_bytes(), None).map(|b| String::from_utf8(b).unwrap()).unwrap_or_else(|| text.to_string());
            assert!(!out.contains("delete_everything") && !out.contains("Infinity"), "{text} -> {out}");
        }
        // A body on another method would go on unread.
        assert!(matches!(exchange(None, None).request_headers("PUT", Some("application/json"), None, true), Some(Verdict::Reply { status: 405, .. })));
    }

    #[test]
    fn call_outcomes_are_read_from_the_answer() {
        let mut x = exchange(Some("admin"), None);
        post(&mut x, &call("add"));
        assert_eq!(x.response_headers(200, Some("text/event-stream"), None), ResponseMode::Filter);
        let event = "data: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"content\":[],\"isError\":true}}\n\n";
        assert_eq!(x.response_chunk(event.as_bytes(), true, &|| Some(130)).as_deref(), Some(event.as_bytes()), "passed on as it came");
        let r = x.report("tools", &mut Labels::default());
        assert!(r.counters.contains(&("ai_mcp_tool_calls_total.server.tools.tool.add.outcome.tool_error".into(), 1)));
        assert!(r.histograms.contains(&("ai_mcp_tool_call_latency_ms.server.tools.tool.add".into(), 30)));
        let mut x = exchange(Some("admin"), None);
        post(&mut x, &call("add"));
        assert_eq!(x.response_headers(200, Some("application/json"), None), ResponseMode::Observe);
        let (a, b) = r#"{"jsonrpc":"2.0","id":5,"error":{"code":-32601,"message":"x"}}"#.split_at(20);
        x.response_chunk(a.as_bytes(), false, &|| None);
        x.response_chunk(b.as_bytes(), true, &|| None);
        let r = x.report("tools", &mut Labels::default());
        assert!(r.properties.contains(&("ai.mcp.error_code", "-32601".into())));
        assert!(r.counters.contains(&("ai_mcp_tool_calls_total.server.tools.tool.add.outcome.error".into(), 1)));
    }

    const REST: &str = r#"{"mode":"conversion-listener","consumer_header":"x-consumer","logging":{"log_statistics":true},
        "tools":[{"name":"get_order","description":"Gets an order","method":"GET","path":"/orders/{id}","parameters":[{"name":"id","in":"path"}]},
                 {"name":"cancel_order","description":"Cancels","method":"DELETE","path":"/orders/{id}","parameters":[{"name":"id","in":"path"}],"acl":{"allow":["admin"]}}]}"#;

    fn rest(consumer: &str) -> McpExchange {
        let config = Rc::new(McpConfig::from_json(REST.as_bytes()).unwrap());
        McpExchange::new(config, Subject::new(Some(consumer.into()), None), None)
    }

    fn result(v: Verdict) -> serde_json::Value {
        let Verdict::Reply { status: 200, body } = v else { panic!("{v:?}") };
        serde_json::from_str(&body).unwrap()
    }

    #[test]
    fn conversion_answers_as_an_mcp_server_and_calls_the_rest_api() {
        let init = result(post(&mut rest("bob"), r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}}"#));
        assert_eq!((init["id"].clone(), init["result"]["protocolVersion"].clone()), (serde_json::json!(0), serde_json::json!("2025-06-18")));
        let newer = result(post(&mut rest("bob"), r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2099-01-01"}}"#));
        assert_eq!(newer["result"]["protocolVersion"], "2025-11-25");
        assert_eq!(post(&mut rest("bob"), r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#), Verdict::Reply { status: 202, body: String::new() });
        let list = result(post(&mut rest("bob"), r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#));
        assert_eq!(list["result"]["tools"].as_array().map(Vec::len), Some(1), "cancel_order is for admins");
        assert_eq!(list["result"]["tools"][0]["inputSchema"]["required"], serde_json::json!(["id"]));

        let mut x = rest("bob");
        let Verdict::Rest(call) = post(&mut x, r#"{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"get_order","arguments":{"id":"a/b"}}}"#) else { panic!() };
        assert_eq!((call.method.as_str(), call.path.as_str()), ("GET", "/orders/a%2Fb"));
        assert_eq!(x.response_headers(404, Some("text/plain"), None), ResponseMode::Convert);
        let answer: serde_json::Value = serde_json::from_slice(&x.response_body(b"no such order", Some(150)).unwrap()).unwrap();
        assert_eq!(answer, serde_json::json!({"jsonrpc": "2.0", "id": "c1", "result": {"content": [{"type": "text", "text": "no such order"}], "isError": true}}));
        let r = x.report("orders", &mut Labels::default());
        assert!(r.counters.contains(&("ai_mcp_tool_calls_total.server.orders.tool.get_order.outcome.tool_error".into(), 1)));
        assert!(r.histograms.contains(&("ai_mcp_tool_call_latency_ms.server.orders.tool.get_order".into(), 50)));

        let denied = result(post(&mut rest("bob"), r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"cancel_order","arguments":{"id":"1"}}}"#));
        assert_eq!(denied["error"]["code"], -32602);
        let missing = result(post(&mut rest("bob"), r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_order","arguments":{}}}"#));
        assert_eq!((missing["result"]["isError"].clone(), missing["result"]["content"][0]["text"].clone()), (serde_json::json!(true), serde_json::json!("missing required argument `id`")));
        let unknown = result(post(&mut rest("bob"), r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"nope"}}"#));
        assert_eq!(unknown["error"]["message"], "Unknown tool: nope");
        let other = result(post(&mut rest("bob"), r#"{"jsonrpc":"2.0","id":5,"method":"resources/list"}"#));
        assert_eq!(other["error"]["code"], -32601);
        assert!(matches!(rest("bob").request_headers("GET", None, None, false), Some(Verdict::Reply { status: 405, .. })));
    }
}
