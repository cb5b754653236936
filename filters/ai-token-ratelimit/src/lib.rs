//! ai-token-ratelimit: glue over `codec::ratelimit` (one request's work is
//! `codec::ratelimit::request::RequestLimiter`). Counters live in
//! proxy-wasm shared data, so every Envoy worker shares one budget; with
//! `strategy: cluster` a rate-limit service counts.

use codec::openai::UsageProbe;
use codec::ratelimit::request::{LimiterHost, PolicyMetric, RequestLimiter, Verdict};
use codec::ratelimit::{client_ip, CounterStore, RateLimitConfig, RequestFacts};
use codec::{ErrorKind, GatewayError};
use host::proxy_wasm::traits::{Context, HttpContext, RootContext};
use host::proxy_wasm::types::{Action, ContextType, LogLevel};
use std::rc::Rc;
use std::time::UNIX_EPOCH;

host::proxy_wasm::main! {{
    host::proxy_wasm::set_log_level(LogLevel::Info);
    host::proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { shared: None }) });
}}

/// Per policy, the metric ids of `PolicyMetric`'s counters, in its order.
type PolicyMetrics = [Option<u32>; 4];

struct Shared {
    config: RateLimitConfig,
    metrics: Vec<PolicyMetrics>,
}

struct Root {
    shared: Option<Rc<Shared>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        let Some(config) = host::configure("ai-token-ratelimit", RateLimitConfig::from_json) else { return false };
        let metrics = config
            .policies
            .iter()
            .map(|p| {
                [
                    format!("ai_ratelimit_requests_total.policy.{}.outcome.allowed", p.name),
                    format!("ai_ratelimit_requests_total.policy.{}.outcome.rejected", p.name),
                    format!("ai_ratelimit_units_charged_total.policy.{}", p.name),
                    format!("ai_ratelimit_estimated_charges_total.policy.{}", p.name),
                ]
                .map(|name| host::define_counter(&name))
            })
            .collect();
        self.shared = Some(Rc::new(Shared { config, metrics }));
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Limiter { shared: self.shared.clone()?, request: RequestLimiter::default(), replied: false }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// The proxy-wasm host, as the limiter sees it.
struct Host<'a>(&'a Shared);

impl LimiterHost for Host<'_> {
    fn property(&self, path: &[&str]) -> Option<String> {
        host::property_string(path)
    }
    fn set_property(&self, key: &str, value: &str) {
        host::set_property(key, value.as_bytes());
    }
    fn count(&self, policy: usize, metric: PolicyMetric, n: u64) {
        let index = match metric {
            PolicyMetric::Allowed => 0,
            PolicyMetric::Rejected => 1,
            PolicyMetric::Charged => 2,
            PolicyMetric::Estimated => 3,
        };
        host::increment(self.0.metrics.get(policy).and_then(|m| m.get(index).copied().flatten()), n);
    }
    fn store(&self) -> &dyn CounterStore {
        &host::SharedData
    }
    fn now_ms(&self) -> u64 {
        host::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }
}

struct Limiter {
    shared: Rc<Shared>,
    request: RequestLimiter,
    replied: bool,
}

impl Limiter {
    fn config(&self) -> &RateLimitConfig {
        &self.shared.config
    }

    fn admit(&mut self, model: Option<&str>) -> Action {
        let shared = self.shared.clone();
        let config = &shared.config;
        let headers = host::request_headers();
        let header = |name: &str| host::lookup(&headers, name);
        let path = header(":path").unwrap_or_default();
        // Provider: from the route's metadata (this filter runs before
        // ai-proxy), or from ai-proxy's filter state if it ran first. Each
        // read is a host call: only when a policy matches on it.
        let provider = if config.needs_provider {
            host::property_string(&["xds", "route_metadata", "filter_metadata", "ai_gateway", "provider"])
                .or_else(|| host::property_string(&["ai.provider"]))
        } else {
            None
        };
        let address = if config.needs_ip { host::property_string(&["source", "address"]) } else { None };
        let facts = RequestFacts { header: &header, path: &path, model, provider: provider.as_deref(), ip: address.as_deref().map(client_ip) };
        match self.request.admit(config, &facts, &Host(&shared)) {
            Verdict::Continue => Action::Continue,
            Verdict::Reject(err, headers) => {
                self.replied = true;
                let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                host::send_error(&err, &refs);
                Action::Pause
            }
        }
    }
}

impl Context for Limiter {
    // Envoy calls this when it destroys the filters, after every filter's
    // log phase: the last chance to learn the usage.
    fn on_done(&mut self) -> bool {
        let shared = self.shared.clone();
        self.request.charge(&shared.config, &Host(&shared), true);
        true
    }
}

impl HttpContext for Limiter {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if self.config().needs_model && !end_of_stream {
            return Action::Pause; // the model is in the body
        }
        self.admit(None)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.config().needs_model || self.replied {
            return Action::Continue;
        }
        let max = self.config().max_request_body_size;
        if body_size as u64 > max {
            self.replied = true;
            let err = GatewayError::new(ErrorKind::PayloadTooLarge, format!("request body is larger than {max} bytes"));
            host::send_error(&err, &[]);
            return Action::Pause;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = host::request_body(body_size);
        let model = serde_json::from_slice::<UsageProbe>(&body).ok().and_then(|p| p.model);
        self.admit(model.as_deref())
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        if self.replied {
            return Action::Continue;
        }
        let shared = self.shared.clone();
        let content_type = || host::response_header("content-type").unwrap_or_default();
        let headers = self.request.response_headers(&shared.config, &Host(&shared), &content_type);
        if !headers.is_empty() {
            host::set_response_headers(&headers);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.request.reads_answer() {
            self.request.answer_chunk(&host::response_body(body_size), end_of_stream);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let shared = self.shared.clone();
        self.request.charge(&shared.config, &Host(&shared), false);
        host::report_host_calls("ai-token-ratelimit");
    }
}
