//! ai-a2a-proxy: proxy-wasm glue over `codec::a2a`, which holds the logic.

use codec::a2a::config::A2aConfig;
use codec::a2a::read::State;
use codec::a2a::{task_clock, task_slot, A2aExchange, Head, Labels, ResponseMode, Step};
use codec::acl::Subject;
use host::proxy::now_ms;
use host::proxy_wasm::traits::{Context, HttpContext, RootContext};
use host::proxy_wasm::types::{Action, ContextType, LogLevel};
use std::cell::RefCell;
use std::rc::Rc;

host::proxy_wasm::main! {{
    host::proxy_wasm::set_log_level(LogLevel::Info);
    host::proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { config: None, agent: Rc::from(""), labels: Rc::new(RefCell::new(Labels::default())) })
    });
}}

struct Root {
    config: Option<Rc<A2aConfig>>,
    /// This instance's name in Envoy: the `agent` label.
    agent: Rc<str>,
    labels: Rc<RefCell<Labels>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let name = host::get_property(&["plugin_name"]).unwrap_or_default();
        self.agent = Rc::from(String::from_utf8_lossy(&name).as_ref());
        let Some(config) = host::configure("ai-a2a-proxy", A2aConfig::from_json) else { return false };
        self.config = Some(Rc::new(config));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let config = self.config.clone()?;
        let exchange = A2aExchange::new(config, Subject::default());
        Some(Box::new(A2aRequest { exchange, agent: self.agent.clone(), labels: self.labels.clone(), body_size: 0, awaiting_body: false, response_size: 0, replied: false, card_done: false }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct A2aRequest {
    exchange: A2aExchange,
    agent: Rc<str>,
    labels: Rc<RefCell<Labels>>,
    body_size: usize,
    /// The body is still being buffered: nothing may pass before it is read.
    awaiting_body: bool,
    response_size: usize,
    replied: bool,
    card_done: bool,
}

impl A2aRequest {
    fn reply(&mut self, reply: codec::a2a::Reply) -> Action {
        self.replied = true;
        host::send_json(reply.status, reply.body.as_bytes());
        Action::Pause
    }

    fn decide(&mut self) -> Action {
        self.awaiting_body = false;
        let body = host::request_body(self.body_size);
        match self.exchange.request_body(&body) {
            Some(reply) => self.reply(reply),
            None => Action::Continue,
        }
    }

    /// The held card is complete: rewritten, or refused (once: a body
    /// may end in the body callback or with trailers).
    fn card_held(&mut self) {
        if std::mem::replace(&mut self.card_done, true) {
            return;
        }
        let body = host::response_body(self.response_size);
        match self.exchange.card_body(&body) {
            Ok(Some(card)) => {
                host::set_response_body(self.response_size, &card);
            }
            Ok(None) => {}
            Err(reply) => {
                // The card's headers are still held: the error replaces
                // the whole answer, status included.
                log::warn!("ai-a2a-proxy: {}", reply.body);
                self.replied = true;
                host::send_json(reply.status, reply.body.as_bytes());
            }
        }
    }

    /// Each task the answer moved: its clock in shared data (polls and
    /// streams may reach other workers), and the tasks that ended now.
    fn finished_tasks(&self) -> Vec<(State, u64)> {
        let mut finished = Vec::new();
        let (Some(started), Some(now)) = (self.exchange.sent_ms(), now_ms()) else { return finished };
        for update in self.exchange.task_updates() {
            let key = task_slot(&self.agent, update.id);
            if update.fresh {
                // Its slot is no one else's yet: nothing to read.
                let tick = task_clock(&update, None, started, now);
                if let Some(write) = tick.write {
                    let _ = host::set_shared_data(&key, write.as_bytes(), None);
                }
                finished.extend(tick.ended_ms.map(|ms| (update.state, ms)));
                continue;
            }
            for _ in 0..3 {
                let (value, cas) = host::shared_data(&key);
                let slot = value.as_deref().and_then(|v| std::str::from_utf8(v).ok());
                let tick = task_clock(&update, slot, started, now);
                if tick.write.as_ref().is_none_or(|w| host::set_shared_data(&key, w.as_bytes(), cas).unwrap_or(false)) {
                    finished.extend(tick.ended_ms.map(|ms| (update.state, ms)));
                    break;
                }
            }
        }
        finished
    }
}

impl Context for A2aRequest {}

// Envoy runs with `allow_on_headers_stop_iteration`: a Pause from a
// headers callback holds the headers while the body is read.
impl HttpContext for A2aRequest {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let headers = host::request_headers();
        let header = |name: &str| host::lookup(&headers, name);
        let config = self.exchange.config();
        let consumer = config.consumer_header.as_deref().and_then(header);
        let groups = config.consumer_groups_header.as_deref().and_then(header);
        self.exchange.set_subject(Subject::new(consumer, groups.as_deref()));
        // Answers are read (states, cards): they must come uncompressed.
        if header("accept-encoding").is_some() {
            host::remove_request_header("accept-encoding");
        }
        let scheme = header("x-forwarded-proto").or_else(|| header(":scheme")).unwrap_or_else(|| "http".into());
        // The first of a list is the host the client asked for.
        let host = header("x-forwarded-host").or_else(|| header(":authority")).unwrap_or_default();
        let host = host.split(',').next().unwrap_or_default().trim();
        let path = header(":path").unwrap_or_default();
        let method = header(":method").unwrap_or_default();
        let content_length = header("content-length").and_then(|l| l.trim().parse().ok());
        let head = Head { method: &method, path: &path, content_length, has_body: !end_of_stream, origin: format!("{scheme}://{host}") };
        match self.exchange.request_headers(head, now_ms()) {
            Step::Forward => Action::Continue,
            Step::Reply(reply) => self.reply(reply),
            Step::ReadBody => {
                self.awaiting_body = true;
                Action::Pause
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.replied {
            return Action::Pause;
        }
        if !self.awaiting_body {
            return Action::Continue;
        }
        if body_size as u64 > self.exchange.config().max_request_body_size {
            self.awaiting_body = false;
            return match self.exchange.too_large() {
                Some(reply) => self.reply(reply),
                None => Action::Continue, // passed on unread, as in Kong
            };
        }
        self.body_size = body_size;
        if !end_of_stream {
            return Action::Pause; // buffer until the whole body is here
        }
        self.decide()
    }

    // A body ended by trailers (HTTP/2) is decided here, or it would pass unread.
    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        if !self.awaiting_body || self.replied {
            return Action::Continue;
        }
        self.decide()
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if self.replied || !self.exchange.is_a2a() {
            return Action::Continue;
        }
        let headers = host::response_headers();
        let header = |name: &str| host::lookup(&headers, name);
        let status = header(":status").and_then(|s| s.parse().ok()).unwrap_or(0);
        let mode = self.exchange.response_headers(status, header("content-type").as_deref(), header("content-encoding").as_deref());
        if mode != ResponseMode::Card || end_of_stream {
            return Action::Continue;
        }
        // The card changes: its length and validators go (an encoded card
        // is replaced by an error, so its encoding goes too). It is made
        // for this consumer and this public address: no shared cache keeps it.
        host::edit_response_headers(Some(headers), &[("content-length", None), ("etag", None), ("content-encoding", None), ("cache-control", Some("private"))]);
        Action::Pause
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.replied || !self.exchange.is_a2a() {
            return Action::Continue;
        }
        match self.exchange.mode() {
            ResponseMode::Pass => {}
            ResponseMode::Card => {
                // Held whole (Envoy's buffer limit bounds it; the codec
                // refuses a card over 1 MiB).
                self.response_size = body_size;
                if !end_of_stream {
                    return Action::Pause;
                }
                self.card_held();
            }
            ResponseMode::Observe | ResponseMode::Stream => {
                let chunk = host::response_body(body_size);
                self.exchange.response_chunk(&chunk, end_of_stream, &now_ms);
            }
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _: usize) -> Action {
        if !self.replied && self.exchange.mode() == ResponseMode::Card {
            self.card_held();
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if !self.exchange.is_a2a() {
            return;
        }
        let finished = self.finished_tasks();
        let report = self.exchange.report(&self.agent, &mut self.labels.borrow_mut(), &finished);
        host::publish(&report.properties, &report.counters, &report.histograms);
        host::report_host_calls("ai-a2a-proxy");
    }
}
