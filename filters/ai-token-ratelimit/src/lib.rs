//! ai-token-ratelimit: glue over `codec::ratelimit`. Counters live in
//! proxy-wasm shared data, so every Envoy worker shares one budget; with
//! `strategy: cluster` a rate-limit service counts (see `publish_descriptors`).

use codec::openai::{Usage, UsageProbe};
use codec::ratelimit::{cluster_partition, cluster_state_key, client_ip, request_usage, Backend, Counter, LimitState, RateLimitConfig, RequestFacts, UsageTap};
use codec::{ErrorKind, GatewayError};
use host::proxy_wasm::traits::{Context, HttpContext, RootContext};
use host::proxy_wasm::types::{Action, ContextType, LogLevel};
use std::rc::Rc;
use std::time::UNIX_EPOCH;

host::proxy_wasm::main! {{
    host::proxy_wasm::set_log_level(LogLevel::Info);
    host::proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { shared: None }) });
}}

/// Per policy: allowed and rejected requests, units charged (and of those,
/// charges from an estimate: a stream that ended before its usage).
struct Metrics {
    allowed: Option<u32>,
    rejected: Option<u32>,
    charged: Option<u32>,
    estimated: Option<u32>,
}

struct Shared {
    config: RateLimitConfig,
    metrics: Vec<Metrics>,
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
            .map(|p| Metrics {
                allowed: host::define_counter(&format!("ai_ratelimit_requests_total.policy.{}.outcome.allowed", p.name)),
                rejected: host::define_counter(&format!("ai_ratelimit_requests_total.policy.{}.outcome.rejected", p.name)),
                charged: host::define_counter(&format!("ai_ratelimit_units_charged_total.policy.{}", p.name)),
                estimated: host::define_counter(&format!("ai_ratelimit_estimated_charges_total.policy.{}", p.name)),
            })
            .collect();
        self.shared = Some(Rc::new(Shared { config, metrics }));
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Limiter { shared: self.shared.clone()?, request: Request::default() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Limiter {
    shared: Rc<Shared>,
    request: Request,
}

/// What the limiter knows of one request.
#[derive(Default)]
struct Request {
    /// Matched (policy index, partition) pairs.
    matched: Vec<(usize, String)>,
    /// The counters to charge when the request ends, keyed once at admission.
    counters: Vec<Counter>,
    /// The checked limits, for the client's headers.
    states: Vec<LimitState>,
    replied: bool,
    /// Usage read from the response itself, when no ai-proxy published it.
    body_usage: Option<Usage>,
    tap: Option<UsageTap>,
    /// Cluster strategy: the matched policies, for the counters.
    cluster_policies: Vec<usize>,
}

const MAX_COPY: usize = 1024 * 1024;

use host::SharedData;

fn now_ms() -> u64 {
    host::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Limiter {
    fn config(&self) -> &RateLimitConfig {
        &self.shared.config
    }

    /// Checks every limit of every matching policy; a request goes on only
    /// if none is exhausted.
    fn admit(&mut self, model: Option<&str>) -> Action {
        let shared = self.shared.clone();
        let config = &shared.config;
        let headers = host::request_headers();
        let header = |name: &str| host::lookup(&headers, name);
        let path = header(":path").unwrap_or_default();
        // Provider: from the route's metadata (this filter runs before
        // ai-proxy), or from ai-proxy's filter state if it ran first. Read
        // only when a policy matches on it (each read is a host call).
        let provider = if config.needs_provider {
            host::property_string(&["xds", "route_metadata", "filter_metadata", "ai_gateway", "provider"])
                .or_else(|| host::property_string(&["ai.provider"]))
        } else {
            None
        };
        let address = if config.needs_ip { host::property_string(&["source", "address"]) } else { None };
        let facts = RequestFacts { header: &header, path: &path, model, provider: provider.as_deref(), ip: address.as_deref().map(client_ip) };
        self.request.matched = config.matching(&facts);
        if config.strategy == Backend::Cluster {
            return self.publish_descriptors();
        }
        let admission = config.admit(&self.request.matched, &SharedData, now_ms());
        let headers = config.client_headers(&admission);
        if admission.rejected() {
            let names = config.policy_names(admission.rejected_by.iter().copied());
            for i in &admission.rejected_by {
                host::increment(self.shared.metrics.get(*i).and_then(|m| m.rejected), 1);
            }
            log::info!("ai-token-ratelimit: rejected by policy {names}");
            host::set_property("ai.ratelimit", format!("rejected:{names}").as_bytes());
            self.request.matched.clear();
            self.request.replied = true;
            let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            host::send_error(&config.rejection(), &refs);
            return Action::Pause;
        }
        for (i, _) in &self.request.matched {
            host::increment(self.shared.metrics.get(*i).and_then(|m| m.allowed), 1);
        }
        if !self.request.matched.is_empty() {
            host::set_property("ai.ratelimit", config.policy_names(self.request.matched.iter().map(|(i, _)| *i)).as_bytes());
        }
        self.request.counters = admission.counters;
        self.request.states = admission.states;
        Action::Continue
    }

    /// Cluster strategy: Envoy's ratelimit filter (after this one) checks
    /// and charges through the rate-limit service; this filter only says
    /// which policies matched, with their (hashed) partition.
    fn publish_descriptors(&mut self) -> Action {
        let shared = self.shared.clone();
        let config = &shared.config;
        let mut names = Vec::with_capacity(self.request.matched.len());
        for (i, partition) in std::mem::take(&mut self.request.matched) {
            let Some(policy) = config.policies.get(i) else { continue };
            self.request.cluster_policies.push(i);
            host::set_property(&cluster_state_key(&policy.name), cluster_partition(&partition).as_bytes());
            names.push(policy.name.as_str());
        }
        if !names.is_empty() {
            host::set_property("ai.ratelimit", names.join(",").as_bytes());
        }
        Action::Continue
    }

    /// The request's usage, and whether it is (partly) an estimate.
    fn usage(&self) -> Option<(Usage, bool)> {
        let transformers = ["ai.transformer.request.usage", "ai.transformer.response.usage"].map(|k| host::property_string(&[k]));
        request_usage(host::property_string(&["ai.usage"]).as_deref(), self.request.body_usage, &transformers)
    }

    /// Charges the request's usage to its counters. `last_chance`: the
    /// request's final callback; before it, a request whose usage is not
    /// published yet waits (on a stream the client left, ai-proxy publishes
    /// its estimate in its own log phase, which may come after this one's).
    fn charge(&mut self, last_chance: bool) {
        if self.request.counters.is_empty() {
            return; // nothing matched (or cluster strategy): no usage reads
        }
        let Some((usage, estimated)) = self.usage() else {
            if last_chance {
                self.request.counters.clear();
            }
            return;
        };
        self.request.matched.clear();
        let counters = std::mem::take(&mut self.request.counters);
        let shared = self.shared.clone();
        for (policy, amount) in shared.config.charge(&counters, &usage, &SharedData, now_ms()) {
            let metrics = shared.metrics.get(policy);
            host::increment(metrics.and_then(|m| m.charged), amount);
            if estimated {
                host::increment(metrics.and_then(|m| m.estimated), 1);
            }
        }
    }

    /// Cluster strategy: Envoy's ratelimit filter decides and charges; this
    /// counts what it did, so the dashboard's budget panels work for shared
    /// budgets too, and gives a refused request a zero charge (it reads
    /// `ai.total_tokens` when the stream ends, and warns when it is unset).
    fn observe_cluster_answer(&mut self) {
        let details = host::property_string(&["response", "code_details"]).unwrap_or_default();
        let refused = details == "request_rate_limited";
        for i in &self.request.cluster_policies {
            let metrics = self.shared.metrics.get(*i);
            host::increment(metrics.and_then(|m| if refused { m.rejected } else { m.allowed }), 1);
        }
        if details != "via_upstream" {
            // Envoy answered itself (refused, or the service failed closed):
            // nothing was spent.
            host::set_property("ai.total_tokens", b"0");
            self.request.cluster_policies.clear();
        }
    }

    /// Cluster strategy: what the service was charged, for the counters.
    fn count_cluster_charge(&mut self) {
        let policies = std::mem::take(&mut self.request.cluster_policies);
        if policies.is_empty() {
            return;
        }
        let Some((usage, estimated)) = self.usage() else { return };
        for i in policies {
            let (Some(policy), metrics) = (self.config().policies.get(i), self.shared.metrics.get(i)) else { continue };
            host::increment(metrics.and_then(|m| m.charged), self.config().charge_for(policy, &usage));
            if estimated {
                host::increment(metrics.and_then(|m| m.estimated), 1);
            }
        }
    }
}

impl Context for Limiter {
    // Envoy calls this when it destroys the filters, after every filter's
    // log phase.
    fn on_done(&mut self) -> bool {
        self.charge(true);
        self.count_cluster_charge();
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
        if !self.config().needs_model || self.request.replied {
            return Action::Continue;
        }
        let max = self.config().max_request_body_size;
        if body_size as u64 > max {
            self.request.replied = true;
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
        if self.request.replied {
            return Action::Continue;
        }
        if !self.request.cluster_policies.is_empty() {
            self.observe_cluster_answer();
        }
        if !self.config().hide_client_headers && !self.request.states.is_empty() {
            host::set_response_headers(&codec::ratelimit::client_headers(&self.request.states, None));
        }
        // Without ai-proxy in the chain, usage is read from the answer itself.
        if !self.request.matched.is_empty() && host::property_string(&["ai.provider"]).is_none() {
            let ct = host::response_header("content-type").unwrap_or_default();
            self.request.tap = UsageTap::for_content_type(&ct, MAX_COPY);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(tap) = self.request.tap.as_mut() else { return Action::Continue };
        let chunk = host::response_body(body_size);
        if let Some(usage) = tap.push(&chunk, end_of_stream) {
            self.request.body_usage = Some(usage);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        self.charge(false);
        host::report_host_calls("ai-token-ratelimit");
    }

}
