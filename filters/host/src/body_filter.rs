//! The request-body filter shape shared by the governance filters: hold the
//! headers (Envoy's `allow_on_headers_stop_iteration`), buffer the JSON body
//! up to a limit, let the policy rewrite or refuse it, and optionally look
//! at the OpenAI-shaped answer on the way back.

use crate::{remove_request_header, send_error, set_request_body};
use codec::{ErrorKind, GatewayError};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

/// What a policy does with one request.
pub trait Policy {
    /// Name for log lines.
    fn name(&self) -> &'static str;
    fn max_request_body_size(&self) -> u64;
    /// The whole request body: a replacement, None to keep it, or a refusal.
    fn request_body(&mut self, body: &[u8]) -> Result<Option<Vec<u8>>, GatewayError>;
    /// Whether this policy may look at responses at all; when not, the
    /// response passes with no host call (no `:status` or content-type read).
    fn looks_at_responses(&self) -> bool {
        false
    }
    /// Called once with the response status and content type; return true
    /// to see the response body.
    fn wants_response(&mut self, _status: u16, _content_type: &str) -> bool {
        false
    }
    /// A whole (non-streamed) response body: `Some(error)` replaces it.
    fn response_body(&mut self, _body: &[u8]) -> Option<GatewayError> {
        None
    }
    /// A streamed chunk: returns what to send instead.
    fn response_chunk(&mut self, chunk: &[u8], _end_of_stream: bool) -> Vec<u8> {
        chunk.to_vec()
    }
}

pub struct BodyFilter<P: Policy> {
    name: &'static str,
    policy: P,
    replied: bool,
    response: ResponseState,
}

#[derive(PartialEq)]
enum ResponseState {
    Ignore,
    Buffered,
    Stream,
}

impl<P: Policy> BodyFilter<P> {
    pub fn new(name: &'static str, policy: P) -> Self {
        BodyFilter { name, policy, replied: false, response: ResponseState::Ignore }
    }

    fn reject(&mut self, err: &GatewayError) -> Action {
        self.replied = true;
        if err.status >= 500 {
            log::error!("{}: {err}", self.policy.name());
        }
        send_error(err, &[]);
        Action::Pause
    }
}

fn is_json(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or_default().trim().to_string();
    essence == "application/json" || essence.ends_with("+json")
}

impl<P: Policy> Context for BodyFilter<P> {}

impl<P: Policy> HttpContext for BodyFilter<P> {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            return Action::Continue; // no body, nothing to check
        }
        let max = self.policy.max_request_body_size();
        let declared = crate::request_header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|len| len > max) {
            return self.reject(&too_large(max));
        }
        if !crate::request_header("content-type").is_some_and(|ct| is_json(&ct)) {
            // A policy that could be skipped by another content type would be no policy.
            return self.reject(&GatewayError::new(ErrorKind::UnsupportedMediaType, "content-type must be application/json"));
        }
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let max = self.policy.max_request_body_size();
        if body_size as u64 > max {
            return self.reject(&too_large(max));
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = crate::request_body(body_size);
        match self.policy.request_body(&body) {
            Ok(Some(new_body)) => {
                remove_request_header("content-length");
                set_request_body(body_size, &new_body);
            }
            Ok(None) => {}
            Err(err) => return self.reject(&err),
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if self.replied || end_of_stream || !self.policy.looks_at_responses() {
            return Action::Continue;
        }
        let status = crate::response_header(":status").and_then(|s| s.parse().ok()).unwrap_or(0);
        let content_type = crate::response_header("content-type").unwrap_or_default();
        if !self.policy.wants_response(status, &content_type) {
            return Action::Continue;
        }
        crate::remove_response_header("content-length");
        if content_type.to_ascii_lowercase().starts_with("text/event-stream") {
            self.response = ResponseState::Stream;
            Action::Continue
        } else {
            // Held until the body is read: a refusal must change the status.
            self.response = ResponseState::Buffered;
            Action::Pause
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.response {
            ResponseState::Ignore => Action::Continue,
            ResponseState::Buffered => {
                if !end_of_stream {
                    return Action::Pause;
                }
                let body = crate::response_body(body_size);
                if let Some(err) = self.policy.response_body(&body) {
                    crate::set_response_header(":status", &err.status.to_string());
                    crate::set_response_header("content-type", "application/json");
                    crate::set_response_body(body_size, &err.to_json());
                }
                Action::Continue
            }
            ResponseState::Stream => {
                let chunk = crate::response_body(body_size);
                let out = self.policy.response_chunk(&chunk, end_of_stream);
                if out != chunk {
                    crate::set_response_body(body_size, &out);
                }
                Action::Continue
            }
        }
    }

    fn on_log(&mut self) {
        crate::report_host_calls(self.name);
    }
}

fn too_large(max: u64) -> GatewayError {
    GatewayError::new(ErrorKind::PayloadTooLarge, format!("request body is larger than {max} bytes")).with_code("request_too_large")
}

/// The root context of a body filter: parses the configuration once (a bad
/// one is refused with the field named) and gives each request a policy.
pub struct PolicyRoot<C: 'static, P: Policy + 'static> {
    name: &'static str,
    parse: fn(&[u8]) -> Result<C, codec::config::ConfigError>,
    make: fn(std::rc::Rc<C>) -> P,
    config: Option<std::rc::Rc<C>>,
}

impl<C: 'static, P: Policy + 'static> Context for PolicyRoot<C, P> {}

impl<C: 'static, P: Policy + 'static> proxy_wasm::traits::RootContext for PolicyRoot<C, P> {
    fn on_configure(&mut self, _: usize) -> bool {
        self.config = crate::configure(self.name, self.parse).map(std::rc::Rc::new);
        self.config.is_some()
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        let config = self.config.clone()?;
        Some(Box::new(BodyFilter::new(self.name, (self.make)(config))))
    }

    fn get_type(&self) -> Option<proxy_wasm::types::ContextType> {
        Some(proxy_wasm::types::ContextType::HttpContext)
    }
}

type RootFactory = Box<dyn Fn() -> Box<dyn proxy_wasm::traits::RootContext>>;

thread_local! {
    /// The root factory of this module (one filter per module and VM); the
    /// SDK takes a plain `fn`, which cannot carry it.
    static ROOT: std::cell::RefCell<Option<RootFactory>> = std::cell::RefCell::new(None);
}

/// Stands in if no filter registered: refuses its configuration.
struct Unregistered;

impl Context for Unregistered {}

impl proxy_wasm::traits::RootContext for Unregistered {
    fn on_configure(&mut self, _: usize) -> bool {
        log::error!("no filter registered in this module");
        false
    }
}

fn new_root(_: u32) -> Box<dyn proxy_wasm::traits::RootContext> {
    ROOT.with(|r| r.borrow().as_ref().map(|make| make())).unwrap_or_else(|| Box::new(Unregistered))
}

/// Registers a body filter: `parse` reads its configuration, `make` builds
/// the per-request policy from it.
pub fn register<C: 'static, P: Policy + 'static>(
    name: &'static str,
    parse: fn(&[u8]) -> Result<C, codec::config::ConfigError>,
    make: fn(std::rc::Rc<C>) -> P,
) {
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    ROOT.with(|r| *r.borrow_mut() = Some(Box::new(move || Box::new(PolicyRoot { name, parse, make, config: None }))));
    proxy_wasm::set_root_context(new_root);
}
