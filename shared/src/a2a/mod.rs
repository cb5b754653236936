//! ai-a2a-proxy's logic: in front of an A2A agent (A2A 0.3 and 1.0, the
//! JSON-RPC and HTTP+JSON bindings), it tells A2A calls from other traffic,
//! reads each call's method and ids and each answer's task state (streams
//! included, event by event, without holding them), refuses what the
//! consumer's ACL denies (methods, and skills a message names) in the
//! binding's own error shape, and rewrites agent cards so clients keep
//! calling through the gateway. Everything else passes unchanged.

pub mod card;
pub mod config;
pub mod read;

use crate::acl::Subject;
use crate::jsonrpc::{self, RpcError, INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR};
use crate::metrics::{name, LabelCap};
use crate::sse::SseDecoder;
use config::A2aConfig;
use read::State;
use serde::Deserialize;
use std::rc::Rc;

/// Bytes of one JSON answer read for its task state; a larger answer
/// passes unread (state `unknown`).
const MAX_OBSERVED: usize = 1024 * 1024;
/// The largest agent card held for rewriting.
const MAX_CARD: usize = 1024 * 1024;
/// The largest SSE event read; a larger one passes unread.
const MAX_EVENT: usize = 1024 * 1024;
/// A2A's code for an operation the agent does not offer: what a client
/// SDK maps to a typed error, used here for an operation this consumer
/// may not use.
pub const UNSUPPORTED_OPERATION: i64 = -32004;

/// An A2A operation, named as Kong reports it (A2A 0.3's method names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Send,
    Stream,
    GetTask,
    ListTasks,
    CancelTask,
    Subscribe,
    PushSet,
    PushGet,
    PushList,
    PushDelete,
    GetCard,
    GetExtendedCard,
    /// A JSON-RPC method A2A does not define (reported as `unknown`).
    Unknown,
}

impl Method {
    pub const KNOWN: [Method; 12] = [
        Method::Send, Method::Stream, Method::GetTask, Method::ListTasks, Method::CancelTask, Method::Subscribe,
        Method::PushSet, Method::PushGet, Method::PushList, Method::PushDelete, Method::GetCard, Method::GetExtendedCard,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Send => "message/send",
            Method::Stream => "message/stream",
            Method::GetTask => "tasks/get",
            Method::ListTasks => "tasks/list",
            Method::CancelTask => "tasks/cancel",
            Method::Subscribe => "tasks/resubscribe",
            Method::PushSet => "tasks/pushNotificationConfig/set",
            Method::PushGet => "tasks/pushNotificationConfig/get",
            Method::PushList => "tasks/pushNotificationConfig/list",
            Method::PushDelete => "tasks/pushNotificationConfig/delete",
            Method::GetCard => "agent/getCard",
            Method::GetExtendedCard => "agent/getExtendedAgentCard",
            Method::Unknown => "unknown",
        }
    }

    /// A JSON-RPC method name of either version.
    pub fn from_rpc(name: &str) -> Method {
        match name {
            "message/send" | "SendMessage" => Method::Send,
            "message/stream" | "SendStreamingMessage" => Method::Stream,
            "tasks/get" | "GetTask" => Method::GetTask,
            "tasks/list" | "ListTasks" => Method::ListTasks,
            "tasks/cancel" | "CancelTask" => Method::CancelTask,
            "tasks/resubscribe" | "SubscribeToTask" => Method::Subscribe,
            "tasks/pushNotificationConfig/set" | "CreateTaskPushNotificationConfig" => Method::PushSet,
            "tasks/pushNotificationConfig/get" | "GetTaskPushNotificationConfig" => Method::PushGet,
            "tasks/pushNotificationConfig/list" | "ListTaskPushNotificationConfigs" => Method::PushList,
            "tasks/pushNotificationConfig/delete" | "DeleteTaskPushNotificationConfig" => Method::PushDelete,
            "agent/getAuthenticatedExtendedCard" | "agent/getExtendedAgentCard" | "GetExtendedAgentCard" => Method::GetExtendedCard,
            _ => Method::Unknown,
        }
    }

    pub fn from_config(name: &str) -> Option<Method> {
        match Method::from_rpc(name) {
            Method::Unknown if name == "agent/getCard" || name == "GetAgentCard" => Some(Method::GetCard),
            Method::Unknown => None,
            m => Some(m),
        }
    }

    fn is_card(self) -> bool {
        matches!(self, Method::GetCard | Method::GetExtendedCard)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    JsonRpc,
    Rest,
}

impl Binding {
    pub fn as_str(self) -> &'static str {
        match self {
            Binding::JsonRpc => "jsonrpc",
            Binding::Rest => "rest",
        }
    }
}

/// The A2A operation an HTTP+JSON request is, by method and path suffix
/// (the route's prefix and a tenant segment are ignored), with the task id
/// the path names. Both versions' paths: 0.3's `/v1/...`, 1.0's without.
pub fn rest_route(method: &str, path: &str) -> Option<(Method, Option<String>, &'static str)> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let (get, post, delete) = (method.eq_ignore_ascii_case("GET"), method.eq_ignore_ascii_case("POST"), method.eq_ignore_ascii_case("DELETE"));
    for suffix in ["/.well-known/agent-card.json", "/.well-known/agent.json"] {
        if get && path.ends_with(suffix) {
            return Some((Method::GetCard, None, suffix));
        }
    }
    for (suffix, m, ok) in [("/message:send", Method::Send, post), ("/message:stream", Method::Stream, post), ("/extendedAgentCard", Method::GetExtendedCard, get), ("/v1/card", Method::GetExtendedCard, get)] {
        if path.ends_with(suffix) {
            return ok.then_some((m, None, suffix));
        }
    }
    // `/tasks`, `/tasks/{id}`, `/tasks/{id}:cancel`, `/tasks/{id}:subscribe`,
    // `/tasks/{id}/pushNotificationConfigs[/{configId}]`: the first whole
    // `tasks` segment after which the rest is one of these (a route
    // prefix may hold one too; ids may start with `tasks`).
    let mut from = 0;
    while let Some(found) = path.get(from..).and_then(|p| p.find("/tasks")) {
        let at = from + found;
        from = at + 1;
        let Some(rest) = path.get(at + "/tasks".len()..) else { break };
        if !(rest.is_empty() || rest.starts_with('/')) {
            continue;
        }
        if let Some(route) = task_route(rest, get, post, delete) {
            return Some(route);
        }
    }
    None
}

/// What follows a `/tasks` segment.
fn task_route(rest: &str, get: bool, post: bool, delete: bool) -> Option<(Method, Option<String>, &'static str)> {
    if rest.is_empty() {
        return get.then_some((Method::ListTasks, None, ""));
    }
    let rest = rest.strip_prefix('/')?;
    let mut parts = rest.splitn(3, '/');
    let first = parts.next().unwrap_or_default();
    let id = |s: &str| (!s.is_empty()).then(|| s.to_string());
    match (parts.next(), parts.next()) {
        (None, None) => {
            if let Some(task) = first.strip_suffix(":cancel") {
                return (post && !task.is_empty()).then(|| (Method::CancelTask, id(task), ""));
            }
            if let Some(task) = first.strip_suffix(":subscribe") {
                return ((get || post) && !task.is_empty()).then(|| (Method::Subscribe, id(task), ""));
            }
            (get && !first.is_empty()).then(|| (Method::GetTask, id(first), ""))
        }
        (Some("pushNotificationConfigs"), None) if !first.is_empty() => match (get, post) {
            (true, _) => Some((Method::PushList, id(first), "")),
            (_, true) => Some((Method::PushSet, id(first), "")),
            _ => None,
        },
        (Some("pushNotificationConfigs"), Some(config)) if !first.is_empty() && !config.is_empty() && !config.contains('/') => match (get, delete) {
            (true, _) => Some((Method::PushGet, id(first), "")),
            (_, true) => Some((Method::PushDelete, id(first), "")),
            _ => None,
        },
        _ => None,
    }
}

/// A path as the agent's router reads it: `%XX` escapes decoded (uvicorn
/// decodes them before routing; Envoy does not). None when it cannot be
/// read one way: a bad escape, an encoded `/` (`%2F`), or not UTF-8.
pub fn decoded_path(path: &str) -> Option<String> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if !path.contains('%') {
        return Some(path.to_string());
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'%' {
            out.push(b);
            i += 1;
            continue;
        }
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok())?;
        if hex == b'/' {
            return None;
        }
        out.push(hex);
        i += 3;
    }
    String::from_utf8(out).ok()
}

/// The request's head, as the filter read it.
pub struct Head<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub content_length: Option<u64>,
    pub has_body: bool,
    /// `scheme://host` the client used (for card rewriting).
    pub origin: String,
}

/// Answered here, never forwarded.
#[derive(Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, PartialEq)]
pub enum Step {
    /// Not A2A traffic, or nothing to read: on it goes.
    Forward,
    /// The body is read before anything goes on.
    ReadBody,
    Reply(Reply),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    Pass,
    /// An agent card: held whole, rewritten.
    Card,
    /// A JSON answer: passed on as it comes, a copy read at its end.
    Observe,
    /// An SSE stream: passed on as it comes, each event read.
    Stream,
}

/// One A2A call.
#[derive(Debug)]
struct Call {
    method: Method,
    binding: Binding,
    /// The JSON-RPC id as sent.
    rpc_id: Option<String>,
    task_id: Option<String>,
    context_id: Option<String>,
    message_id: Option<String>,
    skill: Option<String>,
    /// Every skill the message names (params and message metadata).
    skills: Vec<String>,
    /// The latest task state the answer carried.
    state: Option<State>,
    message: bool,
    error: Option<String>,
    refused: Option<&'static str>,
    /// The agent-relative path a card request maps to.
    card_suffix: Option<&'static str>,
    /// The request named an existing task (a follow-up, a poll).
    names_task: bool,
}

/// Label caps shared by every request of one plugin instance.
#[derive(Debug)]
pub struct Labels {
    consumers: LabelCap,
}

impl Default for Labels {
    fn default() -> Self {
        Labels { consumers: LabelCap::new(100) }
    }
}

#[derive(Debug, Default, PartialEq)]
pub struct Report {
    pub properties: Vec<(&'static str, String)>,
    pub counters: Vec<(String, u64)>,
    pub histograms: Vec<(String, u64)>,
}

pub struct A2aExchange {
    config: Rc<A2aConfig>,
    subject: Subject,
    call: Option<Call>,
    origin: String,
    client_path: String,
    sent_ms: Option<u64>,
    mode: ResponseMode,
    decoder: SseDecoder,
    observed: Vec<u8>,
    observed_overflow: bool,
    encoded: bool,
    events: u64,
    first_event_ms: Option<u64>,
    response_size: u64,
    /// Last state per task id the answers carried, in order.
    tasks: Vec<(String, State)>,
    request_payload: Option<String>,
    response_payload: Vec<u8>,
}

impl A2aExchange {
    pub fn new(config: Rc<A2aConfig>, subject: Subject) -> A2aExchange {
        A2aExchange {
            config,
            subject,
            call: None,
            origin: String::new(),
            client_path: String::new(),
            sent_ms: None,
            mode: ResponseMode::Pass,
            decoder: SseDecoder::new(MAX_EVENT),
            observed: Vec::new(),
            observed_overflow: false,
            encoded: false,
            events: 0,
            first_event_ms: None,
            response_size: 0,
            tasks: Vec::new(),
            request_payload: None,
            response_payload: Vec::new(),
        }
    }

    pub fn config(&self) -> &A2aConfig {
        &self.config
    }

    /// Who asks, once the request's headers are read.
    pub fn set_subject(&mut self, subject: Subject) {
        self.subject = subject;
    }

    /// This is A2A traffic (answers must come uncompressed to be read).
    pub fn is_a2a(&self) -> bool {
        self.call.is_some()
    }

    pub fn request_headers(&mut self, head: Head, now_ms: Option<u64>) -> Step {
        self.sent_ms = now_ms;
        self.origin = head.origin;
        let Some(path) = decoded_path(head.path) else {
            // Read one way by the filter and another by the agent: refused
            // where ACLs decide; otherwise other traffic.
            if !self.config.governs {
                return Step::Forward;
            }
            let mut call = Call::new(Method::Unknown, Binding::Rest, None, None);
            call.refused = Some("invalid");
            self.call = Some(call);
            return Step::Reply(rest_error(400, "INVALID_ARGUMENT", "INVALID_REQUEST", "the request path has an encoded `/` or a bad `%` escape"));
        };
        let route = rest_route(head.method, &path);
        self.client_path = path;
        if let Some((method, task_id, suffix)) = route {
            let mut call = Call::new(method, Binding::Rest, task_id, (!suffix.is_empty()).then_some(suffix));
            call.names_task = call.task_id.is_some();
            self.call = Some(call);
            if matches!(method, Method::Send | Method::Stream) && head.has_body {
                return self.body_step(head.content_length);
            }
            return self.admit().map_or(Step::Forward, Step::Reply);
        }
        if head.method.eq_ignore_ascii_case("POST") && head.has_body {
            // The JSON-RPC binding's one endpoint: the body says what it is.
            return self.body_step(head.content_length);
        }
        Step::Forward
    }

    /// A body over `max_request_body_size`: refused where ACLs must read
    /// it; otherwise, as in Kong, passed on unread.
    fn body_step(&mut self, length: Option<u64>) -> Step {
        if length.is_none_or(|l| l <= self.config.max_request_body_size) {
            return Step::ReadBody;
        }
        self.too_large().map_or(Step::Forward, Step::Reply)
    }

    /// The body outgrew the limit while it was read. None: pass it unread.
    pub fn too_large(&mut self) -> Option<Reply> {
        if !self.config.governs {
            if self.call.is_none() {
                self.call = Some(Call::new(Method::Unknown, Binding::JsonRpc, None, None));
            }
            return None;
        }
        let why = format!("the request body is larger than {} bytes", self.config.max_request_body_size);
        let call = self.call.get_or_insert_with(|| Call::new(Method::Unknown, Binding::JsonRpc, None, None));
        call.refused = Some("invalid");
        Some(match call.binding {
            Binding::JsonRpc => Reply { status: 413, body: RpcError::new(INVALID_REQUEST, format!("Invalid Request: {why}")).to_json() },
            Binding::Rest => rest_error(413, "RESOURCE_EXHAUSTED", "INVALID_REQUEST", &why),
        })
    }

    /// The whole request body. None: forward it.
    pub fn request_body(&mut self, body: &[u8]) -> Option<Reply> {
        if self.config.logging.log_payloads {
            self.request_payload = Some(String::from_utf8_lossy(body.get(..self.config.logging.max_payload_size).unwrap_or(body)).into_owned());
        }
        if body.len() as u64 > self.config.max_request_body_size {
            return self.too_large();
        }
        match self.call.as_ref().map(|c| c.binding) {
            Some(Binding::Rest) => match serde_json::from_slice::<Params>(body) {
                Ok(params) => self.read_params(Some(params)),
                // A skill ACL cannot be decided on what cannot be read.
                Err(e) if self.config.governs => {
                    let call = self.call.as_mut()?;
                    call.refused = Some("invalid");
                    call.error = Some("INVALID_ARGUMENT".into());
                    Some(rest_error(400, "INVALID_ARGUMENT", "INVALID_PARAMS", &format!("the request body is not a message the gateway can read: {e}")))
                }
                Err(_) => self.read_params(None),
            },
            _ => self.read_rpc(body),
        }
    }

    fn read_rpc(&mut self, body: &[u8]) -> Option<Reply> {
        let parsed = match jsonrpc::read(body) {
            Ok(jsonrpc::Body::Single(m)) => m,
            Ok(jsonrpc::Body::Batch(_)) => return self.refuse_rpc(400, RpcError::new(INVALID_REQUEST, "Invalid Request: A2A has no JSON-RPC batches")),
            // Not JSON-RPC at all: other traffic, unless ACLs must decide.
            Err(_) if !self.config.governs && !looks_like_rpc(body) => return None,
            Err(err) => return self.refuse_rpc(400, err),
        };
        let Some(method_name) = parsed.method.as_deref() else {
            return self.refuse_rpc(400, RpcError::new(INVALID_REQUEST, "Invalid Request: an A2A agent takes requests, not responses").with_id(parsed.id));
        };
        let mut call = Call::new(Method::from_rpc(method_name), Binding::JsonRpc, None, None);
        call.rpc_id = parsed.id.map(|id| id.get().to_string());
        self.call = Some(call);
        let params = parsed.params.map(|p| serde_json::from_str::<Params>(p.get()));
        match params {
            Some(Err(e)) if self.config.governs => {
                let err = RpcError { id: parsed.id.map(|i| i.get().to_string()), ..RpcError::new(INVALID_PARAMS, format!("Invalid params: {e}")) };
                self.refuse_rpc(200, err)
            }
            params => self.read_params(params.and_then(Result::ok)),
        }
    }

    fn refuse_rpc(&mut self, status: u16, err: RpcError) -> Option<Reply> {
        let call = self.call.get_or_insert_with(|| Call::new(Method::Unknown, Binding::JsonRpc, None, None));
        call.refused = Some("invalid");
        call.error = Some(match err.code { PARSE_ERROR => "JSONParseError", INVALID_PARAMS => "InvalidParamsError", _ => "InvalidRequestError" }.into());
        Some(Reply { status, body: err.to_json() })
    }

    /// The ids and skill a call's params name; then the ACL decides.
    fn read_params(&mut self, params: Option<Params>) -> Option<Reply> {
        let key = self.config.skill_metadata_key.clone();
        if let (Some(call), Some(p)) = (self.call.as_mut(), params) {
            let message = p.message.as_ref();
            call.task_id = call.task_id.take().or(p.task_id.clone()).or(message.and_then(|m| m.task_id.clone())).or(p.id.clone());
            call.names_task = call.task_id.is_some();
            call.context_id = message.and_then(|m| m.context_id.clone());
            call.message_id = message.and_then(|m| m.message_id.clone());
            // Every place a message may name its skill: each is checked.
            let named = [p.metadata.as_ref(), message.and_then(|m| m.metadata.as_ref())];
            for meta in named.into_iter().flatten() {
                match meta.get(&key) {
                    None => {}
                    Some(serde_json::Value::String(skill)) => call.skills.push(skill.clone()),
                    Some(_) => call.skills.push(String::new()), // not a name: matches no skill, refused by any skill ACL below
                }
            }
            call.skill = call.skills.first().cloned();
        }
        self.admit()
    }

    /// The consumer's ACL on the call's method and skill.
    fn admit(&mut self) -> Option<Reply> {
        let call = self.call.as_mut()?;
        let method_ok = self.config.method_acl(call.method).allows(&self.subject);
        let denied_skill = call.skills.iter().find(|s| s.is_empty() && self.config.governs || !self.config.skill_acl(s).allows(&self.subject)).cloned();
        let skill_ok = denied_skill.is_none();
        if method_ok && skill_ok {
            return None;
        }
        call.refused = Some("denied");
        let who = match &self.subject.consumer {
            Some(c) => format!("consumer '{c}'"),
            None => "anonymous requests".to_string(),
        };
        let why = if method_ok {
            match denied_skill.as_deref() {
                Some("") | None => format!("A message's `{}` must name a skill", self.config.skill_metadata_key),
                Some(skill) => format!("Skill '{skill}' is not available for {who}"),
            }
        } else {
            format!("Method '{}' is not available for {who}", call.method.as_str())
        };
        Some(match call.binding {
            Binding::JsonRpc => {
                let err = RpcError { id: call.rpc_id.clone(), ..RpcError::new(UNSUPPORTED_OPERATION, why) };
                Reply { status: if err.id.is_some() { 200 } else { 403 }, body: err.to_json() }
            }
            Binding::Rest => rest_error(403, "PERMISSION_DENIED", "UNSUPPORTED_OPERATION", &why),
        })
    }

    /// How the answer is read. `content_encoding`: the answer's, if any.
    pub fn response_headers(&mut self, status: u16, content_type: Option<&str>, content_encoding: Option<&str>) -> ResponseMode {
        let Some(call) = &self.call else { return ResponseMode::Pass };
        if call.refused.is_some() {
            return ResponseMode::Pass;
        }
        self.encoded = content_encoding.is_some_and(|e| !e.trim().is_empty() && !e.trim().eq_ignore_ascii_case("identity"));
        let sse = content_type.is_some_and(|t| t.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("text/event-stream"));
        self.mode = if call.method.is_card() && (200..300).contains(&status) && !sse {
            ResponseMode::Card
        } else if self.encoded {
            ResponseMode::Pass
        } else if sse {
            ResponseMode::Stream
        } else {
            ResponseMode::Observe
        };
        self.mode
    }

    pub fn mode(&self) -> ResponseMode {
        self.mode
    }

    /// The whole card answer. Ok(Some): the rewritten body; Err: the
    /// error answer (status, body) to send instead.
    pub fn card_body(&mut self, body: &[u8]) -> Result<Option<Vec<u8>>, Reply> {
        self.response_size = body.len() as u64;
        self.capture(body);
        let Some(call) = self.call.as_mut() else { return Ok(None) };
        let fail = |why: String| {
            let why = format!("the gateway could not rewrite the agent card ({why}), so it was not passed on");
            match call.binding {
                Binding::JsonRpc => Reply { status: 502, body: RpcError { id: call.rpc_id.clone(), ..RpcError::new(jsonrpc::INTERNAL_ERROR, why) }.to_json() },
                Binding::Rest => rest_error(502, "UNAVAILABLE", "INVALID_AGENT_RESPONSE", &why),
            }
        };
        if self.encoded {
            return Err(fail("it came compressed".into()));
        }
        if body.len() > MAX_CARD {
            return Err(fail(format!("it is larger than {MAX_CARD} bytes")));
        }
        let Ok(text) = std::str::from_utf8(body) else { return Err(fail("it is not UTF-8".into())) };
        // A JSON-RPC answer carries the card as its result.
        let (card_text, envelope) = if call.binding == Binding::JsonRpc {
            #[derive(Deserialize)]
            struct Answer<'a> {
                #[serde(borrow)]
                result: Option<&'a serde_json::value::RawValue>,
            }
            match serde_json::from_str::<Answer>(text) {
                Ok(Answer { result: Some(result) }) => (result.get(), true),
                Ok(_) => return Ok(None), // an error answer
                Err(e) => return Err(fail(e.to_string())),
            }
        } else {
            (text, false)
        };
        let asked = card::Asked { public_url: self.config.public_url.as_deref(), origin: &self.origin, client_path: &self.client_path, suffix: call.card_suffix };
        let config = &self.config;
        let subject = &self.subject;
        let rewritten = card::rewrite(card_text, &asked, &|skill| config.skill_acl(skill).allows(subject)).map_err(|e| fail(e.0))?;
        let Some(new_card) = rewritten.text else { return Ok(None) };
        if !envelope {
            return Ok(Some(new_card.into_bytes()));
        }
        let (start, end) = crate::json_edit::span(text, card_text).ok_or_else(|| fail("the answer could not be located".into()))?;
        Ok(Some(crate::json_edit::apply(text, &[(start, end, new_card)]).into_bytes()))
    }

    /// A chunk of an observed or streamed answer (never changed).
    pub fn response_chunk(&mut self, chunk: &[u8], end_of_stream: bool, now_ms: &dyn Fn() -> Option<u64>) {
        self.response_size += chunk.len() as u64;
        self.capture(chunk);
        let rpc = self.call.as_ref().is_some_and(|c| c.binding == Binding::JsonRpc);
        match self.mode {
            ResponseMode::Pass | ResponseMode::Card => {}
            ResponseMode::Stream => {
                let mut events = Vec::new();
                self.decoder.push(chunk, &mut events);
                if end_of_stream {
                    self.decoder.finish(&mut events);
                }
                for e in events.iter().filter(|e| e.has_data) {
                    self.events += 1;
                    if self.first_event_ms.is_none() {
                        self.first_event_ms = now_ms();
                    }
                    if let Some(seen) = read::answer(&e.data, rpc) {
                        self.note(seen);
                    }
                }
            }
            ResponseMode::Observe => {
                if self.observed_overflow || self.observed.len() + chunk.len() > MAX_OBSERVED {
                    self.observed_overflow = true;
                    self.observed = Vec::new();
                } else {
                    self.observed.extend_from_slice(chunk);
                }
                if end_of_stream && !self.observed_overflow {
                    let observed = std::mem::take(&mut self.observed);
                    if let Some(seen) = std::str::from_utf8(&observed).ok().and_then(|t| read::answer(t, rpc)) {
                        self.note(seen);
                    }
                }
            }
        }
    }

    fn capture(&mut self, bytes: &[u8]) {
        if self.config.logging.log_payloads {
            let room = self.config.logging.max_payload_size.saturating_sub(self.response_payload.len());
            self.response_payload.extend_from_slice(bytes.get(..room).unwrap_or(bytes));
        }
    }

    fn note(&mut self, seen: read::Seen) {
        let Some(call) = self.call.as_mut() else { return };
        if seen.error.is_some() {
            call.error = seen.error;
            return;
        }
        if call.task_id.is_none() {
            call.task_id = seen.task_id.clone();
        }
        if call.context_id.is_none() {
            call.context_id = seen.context_id.clone();
        }
        call.message |= seen.message;
        if let Some(state) = seen.state {
            call.state = Some(state);
            if let Some(task) = seen.task_id {
                match self.tasks.iter_mut().find(|(t, _)| *t == task) {
                    Some(entry) => entry.1 = state,
                    None => self.tasks.push((task, state)),
                }
            }
        }
    }

    /// Each task this answer moved, with the state it left it in.
    pub fn task_updates(&self) -> Vec<TaskUpdate<'_>> {
        let Some(call) = &self.call else { return Vec::new() };
        let driving = matches!(call.method, Method::Send | Method::Stream | Method::CancelTask | Method::Subscribe);
        self.tasks
            .iter()
            .map(|(id, state)| TaskUpdate { id, state: *state, fresh: driving && !call.names_task && matches!(call.method, Method::Send | Method::Stream), driving })
            .collect()
    }

    pub fn sent_ms(&self) -> Option<u64> {
        self.sent_ms
    }

    /// What this request did. `finished`: the tasks that reached a terminal
    /// state with it, and how long they took (from `task_clock`).
    pub fn report(&self, agent: &str, labels: &mut Labels, finished: &[(State, u64)]) -> Report {
        let mut r = Report::default();
        let Some(call) = &self.call else { return r };
        let outcome = call.refused.unwrap_or_else(|| match (&call.error, call.state) {
            (Some(_), _) => "error",
            (None, Some(state)) => state.as_str(),
            (None, None) if call.message => "message",
            _ if self.encoded || self.observed_overflow || self.decoder.overflowed() => "unknown",
            _ => "none",
        });
        let method = call.method.as_str();
        r.counters.push((name("ai_a2a_requests_total", &[("agent", agent), ("method", method), ("binding", call.binding.as_str()), ("state", outcome)]), 1));
        if call.refused == Some("denied") {
            let consumer = labels.consumers.admit(self.subject.label());
            r.counters.push((name("ai_a2a_acl_denials_total", &[("agent", agent), ("consumer", &consumer)]), 1));
        }
        // The histogram's count is the number of tasks that ended.
        for (state, ms) in finished {
            r.histograms.push((name("ai_a2a_task_duration_ms", &[("agent", agent), ("state", state.as_str())]), *ms));
        }
        if let (Some(sent), Some(first)) = (self.sent_ms, self.first_event_ms) {
            r.histograms.push((name("ai_a2a_stream_first_event_ms", &[("agent", agent), ("method", method)]), first.saturating_sub(sent)));
        }
        let logging = &self.config.logging;
        if logging.log_statistics {
            let mut put = |key: &'static str, value: Option<String>| {
                if let Some(v) = value {
                    r.properties.push((key, v));
                }
            };
            put("ai.a2a.method", Some(method.to_string()));
            put("ai.a2a.binding", Some(call.binding.as_str().to_string()));
            put("ai.a2a.id", call.rpc_id.clone());
            put("ai.a2a.task_id", call.task_id.clone());
            put("ai.a2a.context_id", call.context_id.clone());
            put("ai.a2a.message_id", call.message_id.clone());
            put("ai.a2a.skill", call.skill.clone());
            put("ai.a2a.task_state", call.state.map(|s| s.as_str().to_string()));
            put("ai.a2a.outcome", Some(outcome.to_string()));
            put("ai.a2a.error", call.error.clone());
            put("ai.a2a.consumer", Some(self.subject.label().to_string()));
            put("ai.a2a.response_body_size", Some(self.response_size.to_string()));
            let streaming = self.mode == ResponseMode::Stream;
            put("ai.a2a.streaming", Some(streaming.to_string()));
            if streaming {
                put("ai.a2a.sse_events_count", Some(self.events.to_string()));
                put("ai.a2a.ttfb_latency", self.sent_ms.zip(self.first_event_ms).map(|(s, f)| f.saturating_sub(s).to_string()));
            }
            if logging.log_payloads {
                put("ai.a2a.payload.request", self.request_payload.clone());
                put("ai.a2a.payload.response", Some(String::from_utf8_lossy(&self.response_payload).into_owned()));
            }
        }
        r
    }
}

impl Call {
    fn new(method: Method, binding: Binding, task_id: Option<String>, card_suffix: Option<&'static str>) -> Call {
        Call { method, binding, rpc_id: None, task_id, context_id: None, message_id: None, skill: None, skills: Vec::new(), state: None, message: false, error: None, refused: None, card_suffix: card_suffix.filter(|_| method.is_card()), names_task: false }
    }
}

/// A body that means to be JSON-RPC (so a malformed one is an error, not
/// other traffic).
fn looks_like_rpc(body: &[u8]) -> bool {
    let head = body.get(..body.len().min(4096)).unwrap_or(body);
    head.windows(9).any(|w| w == b"\"jsonrpc\"")
}

/// The HTTP+JSON binding's error (A2A 1.0: google.rpc.Status in JSON).
fn rest_error(status: u16, code: &str, reason: &str, message: &str) -> Reply {
    let body = serde_json::json!({"error": {"code": status, "status": code, "message": message,
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "a2a-protocol.org", "metadata": {"gateway": "ai-a2a-proxy"}}]}});
    Reply { status, body: body.to_string() }
}

/// The params fields a call is known by (either version, either binding;
/// 0.3's HTTP+JSON body is proto JSON in snake_case with the message as
/// `request`, and proto JSON parsers read either spelling).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    id: Option<String>,
    #[serde(alias = "task_id")]
    task_id: Option<String>,
    #[serde(alias = "request")]
    message: Option<MessageParams>,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageParams {
    #[serde(alias = "message_id")]
    message_id: Option<String>,
    #[serde(alias = "task_id")]
    task_id: Option<String>,
    #[serde(alias = "context_id")]
    context_id: Option<String>,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// How many tasks one agent's clock tracks at once (shared data slots).
pub const TASK_SLOTS: u64 = 4096;

/// The shared-data key of a task's clock slot. Tasks share slots by hash:
/// a collision only costs the older task its duration.
pub fn task_slot(agent: &str, task_id: &str) -> String {
    let hash = task_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("ai-a2a-proxy.{agent}.task.{}", hash % TASK_SLOTS)
}

/// A task an answer moved.
#[derive(Debug, PartialEq)]
pub struct TaskUpdate<'a> {
    pub id: &'a str,
    pub state: State,
    /// Created by this request (a message naming no task): its clock
    /// starts here and, if it ended, ends here, with no shared state.
    pub fresh: bool,
    /// The request moves the task (send, stream, cancel, resubscribe); a
    /// poll (tasks/get) only observes it.
    pub driving: bool,
}

/// What the task's clock does now.
#[derive(Debug, PartialEq)]
pub struct Tick {
    /// The slot's new value, if it changes.
    pub write: Option<String>,
    /// The task ended now, this long after its first request.
    pub ended_ms: Option<u64>,
}

/// One step of a task's clock. `slot`: the slot's value (never read for a
/// fresh task); `started_ms`: when this request began. A task is counted
/// once: where it ends, and a poll of a task whose start this gateway
/// never saw (or whose slot another task took) counts nothing.
pub fn task_clock(update: &TaskUpdate, slot: Option<&str>, started_ms: u64, now_ms: u64) -> Tick {
    let terminal = update.state.is_terminal();
    let id = update.id;
    if update.fresh {
        return match terminal {
            true => Tick { write: None, ended_ms: Some(now_ms.saturating_sub(started_ms)) },
            false => Tick { write: Some(format!("{started_ms} 0 {id}")), ended_ms: None },
        };
    }
    // "<start_ms> <0|1 ended> <task id>"
    let mine = slot.and_then(|s| {
        let mut parts = s.splitn(3, ' ');
        let start = parts.next()?.parse::<u64>().ok()?;
        let ended = parts.next()? == "1";
        (parts.next()? == id).then_some((start, ended))
    });
    match (mine, terminal) {
        (Some((_, true)), _) | (Some(_), false) => Tick { write: None, ended_ms: None },
        // A poll of a live task whose start was not seen: not timed.
        (None, false) if !update.driving => Tick { write: None, ended_ms: None },
        (None, false) => Tick { write: Some(format!("{started_ms} 0 {id}")), ended_ms: None },
        (Some((start, false)), true) => Tick { write: Some(format!("{start} 1 {id}")), ended_ms: Some(now_ms.saturating_sub(start)) },
        // Ended by a follow-up or a cancel of a task whose start is not
        // known: counted, timed from this request.
        (None, true) if update.driving => Tick { write: None, ended_ms: Some(now_ms.saturating_sub(started_ms)) },
        (None, true) => Tick { write: None, ended_ms: None },
    }
}

#[cfg(test)]
mod tests;
