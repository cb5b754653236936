//! One request through ai-token-ratelimit: admission, the client's headers,
//! the usage read on the way back, and the charge when the request ends,
//! for both strategies. The filter crate only hands over host values
//! through `LimiterHost`, so all of it is tested natively with a fake host.

use super::{cluster_partition, cluster_state_key, request_usage, Backend, Counter, LimitState, RateLimitConfig, RequestFacts, UsageTap};
use crate::openai::Usage;
use crate::store::CounterStore;
use crate::GatewayError;

/// The per-policy counters the filter keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyMetric {
    Allowed,
    Rejected,
    /// Units charged.
    Charged,
    /// Charges from an estimate (a stream that ended before its usage).
    Estimated,
}

/// What the limiter needs from the proxy host.
pub trait LimiterHost {
    /// A property (filter state or Envoy attribute) as text.
    fn property(&self, path: &[&str]) -> Option<String>;
    fn set_property(&self, key: &str, value: &str);
    fn count(&self, policy: usize, metric: PolicyMetric, n: u64);
    fn store(&self) -> &dyn CounterStore;
    fn now_ms(&self) -> u64;
}

/// Admission's verdict for the filter to apply.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Continue,
    /// Answer the client with this error and these headers.
    Reject(GatewayError, Vec<(String, String)>),
}

/// Bytes of an answer copied to read its usage, at most.
const MAX_COPY: usize = 1024 * 1024;

/// What the limiter knows of one request.
#[derive(Default)]
pub struct RequestLimiter {
    /// Matched (policy index, partition) pairs.
    matched: Vec<(usize, String)>,
    /// The counters to charge when the request ends, keyed once at admission.
    counters: Vec<Counter>,
    /// The checked limits, for the client's headers.
    states: Vec<LimitState>,
    /// Usage read from the answer itself, when no ai-proxy published it.
    answer_usage: Option<Usage>,
    tap: Option<UsageTap>,
    /// Cluster strategy: the matched policies, for the counters.
    cluster_policies: Vec<usize>,
}

impl RequestLimiter {
    /// Matches the request against the policies and checks every limit of
    /// every matching one: it goes on only if none is exhausted. With the
    /// cluster strategy, Envoy's ratelimit filter (after this one) decides;
    /// this only publishes which policies matched, with their hashed partition.
    pub fn admit(&mut self, config: &RateLimitConfig, facts: &RequestFacts, host: &dyn LimiterHost) -> Verdict {
        self.matched = config.matching(facts);
        if config.strategy == Backend::Cluster {
            for (i, partition) in std::mem::take(&mut self.matched) {
                let Some(policy) = config.policies.get(i) else { continue };
                self.cluster_policies.push(i);
                host.set_property(&cluster_state_key(&policy.name), &cluster_partition(&partition));
            }
            if !self.cluster_policies.is_empty() {
                host.set_property("ai.ratelimit", &config.policy_names(self.cluster_policies.iter().copied()));
            }
            return Verdict::Continue;
        }
        let admission = config.admit(&self.matched, host.store(), host.now_ms());
        let headers = config.client_headers(&admission);
        if admission.rejected() {
            let names = config.policy_names(admission.rejected_by.iter().copied());
            for i in &admission.rejected_by {
                host.count(*i, PolicyMetric::Rejected, 1);
            }
            log::info!("ai-token-ratelimit: rejected by policy {names}");
            host.set_property("ai.ratelimit", &format!("rejected:{names}"));
            self.matched.clear();
            return Verdict::Reject(config.rejection(), headers);
        }
        for (i, _) in &self.matched {
            host.count(*i, PolicyMetric::Allowed, 1);
        }
        if !self.matched.is_empty() {
            host.set_property("ai.ratelimit", &config.policy_names(self.matched.iter().map(|(i, _)| *i)));
        }
        self.counters = admission.counters;
        self.states = admission.states;
        Verdict::Continue
    }

    /// At the response headers: the headers to add for the client; the
    /// cluster strategy's outcome is counted. `content_type` is read only
    /// when the answer's own usage is needed (no ai-proxy in the chain).
    pub fn response_headers(&mut self, config: &RateLimitConfig, host: &dyn LimiterHost, content_type: &dyn Fn() -> String) -> Vec<(String, String)> {
        if !self.cluster_policies.is_empty() {
            self.observe_cluster_answer(host);
        }
        if !self.matched.is_empty() && host.property(&["ai.provider"]).is_none() {
            self.tap = UsageTap::for_content_type(&content_type(), MAX_COPY);
        }
        if config.hide_client_headers || self.states.is_empty() {
            return Vec::new();
        }
        super::client_headers(&self.states, None)
    }

    /// Whether the answer's body is read (for its usage).
    pub fn reads_answer(&self) -> bool {
        self.tap.is_some()
    }

    pub fn answer_chunk(&mut self, chunk: &[u8], end_of_stream: bool) {
        if let Some(usage) = self.tap.as_mut().and_then(|t| t.push(chunk, end_of_stream)) {
            self.answer_usage = Some(usage);
        }
    }

    /// Cluster strategy: Envoy's ratelimit filter decided and charges; this
    /// counts what it did, so the budget panels work for shared budgets too,
    /// and gives a request Envoy answered itself a zero charge (the filter
    /// reads `ai.total_tokens` when the stream ends, and warns when unset).
    fn observe_cluster_answer(&mut self, host: &dyn LimiterHost) {
        let details = host.property(&["response", "code_details"]).unwrap_or_default();
        let metric = if details == "request_rate_limited" { PolicyMetric::Rejected } else { PolicyMetric::Allowed };
        for i in &self.cluster_policies {
            host.count(*i, metric, 1);
        }
        if details != "via_upstream" {
            // Refused, or the service failed closed: nothing was spent.
            host.set_property("ai.total_tokens", "0");
            self.cluster_policies.clear();
        }
    }

    /// The request's usage, and whether it is (partly) an estimate.
    fn usage(&self, host: &dyn LimiterHost) -> Option<(Usage, bool)> {
        let transformers = ["ai.transformer.request.usage", "ai.transformer.response.usage"].map(|k| host.property(&[k]));
        request_usage(host.property(&["ai.usage"]).as_deref(), self.answer_usage, &transformers)
    }

    /// Charges the request's usage to its counters (or, with the cluster
    /// strategy, counts what the service was charged). `last_chance`: the
    /// request's final callback; before it, a request whose usage is not
    /// published yet waits (on a stream the client left, ai-proxy publishes
    /// its estimate in its own log phase, which may come after this one's).
    pub fn charge(&mut self, config: &RateLimitConfig, host: &dyn LimiterHost, last_chance: bool) {
        let cluster = !self.cluster_policies.is_empty();
        if (self.counters.is_empty() && !cluster) || (cluster && !last_chance) {
            // Nothing matched: no usage reads. The service's charge is
            // counted once, at the very end.
            return;
        }
        let Some((usage, estimated)) = self.usage(host) else {
            if last_chance {
                self.counters.clear();
                self.cluster_policies.clear();
            }
            return;
        };
        let charged: Vec<(usize, u64)> = if cluster {
            let policies = std::mem::take(&mut self.cluster_policies);
            policies.into_iter().filter_map(|i| Some((i, config.charge_for(config.policies.get(i)?, &usage)))).collect()
        } else {
            config.charge(&std::mem::take(&mut self.counters), &usage, host.store(), host.now_ms())
        };
        self.matched.clear();
        for (policy, amount) in charged {
            host.count(policy, PolicyMetric::Charged, amount);
            if estimated {
                host.count(policy, PolicyMetric::Estimated, 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;
    use crate::store::MapStore;
    use std::cell::RefCell;
    use std::collections::HashMap;

    #[derive(Default)]
    struct FakeHost {
        properties: RefCell<HashMap<String, String>>,
        counts: RefCell<Vec<(usize, PolicyMetric, u64)>>,
        store: MapStore,
    }

    impl LimiterHost for FakeHost {
        fn property(&self, path: &[&str]) -> Option<String> {
            self.properties.borrow().get(&path.join(".")).cloned()
        }
        fn set_property(&self, key: &str, value: &str) {
            self.properties.borrow_mut().insert(key.to_string(), value.to_string());
        }
        fn count(&self, policy: usize, metric: PolicyMetric, n: u64) {
            self.counts.borrow_mut().push((policy, metric, n));
        }
        fn store(&self) -> &dyn CounterStore {
            &self.store
        }
        fn now_ms(&self) -> u64 {
            1_000_000
        }
    }

    fn config(json: &str) -> RateLimitConfig {
        RateLimitConfig::from_json(json.as_bytes()).unwrap()
    }

    fn facts<'a>(header: &'a dyn Fn(&str) -> Option<String>) -> RequestFacts<'a> {
        RequestFacts { header, path: "/v1/chat/completions", model: None, provider: None, ip: None }
    }

    const LOCAL: &str = r#"{"policies": [{"name": "team", "limits": [{"limit": 100, "window_size": 60}]}]}"#;

    #[test]
    fn a_request_is_admitted_charged_its_usage_then_the_next_refused() {
        let (cfg, host) = (config(LOCAL), FakeHost::default());
        let none = |_: &str| None;
        let mut first = RequestLimiter::default();
        assert_eq!(first.admit(&cfg, &facts(&none), &host), Verdict::Continue);
        assert_eq!(host.property(&["ai.ratelimit"]).as_deref(), Some("team"));
        host.set_property("ai.provider", "openai");
        let headers = first.response_headers(&cfg, &host, &|| unreachable!("ai-proxy published the provider"));
        assert!(headers.iter().any(|(k, v)| k == "x-ai-ratelimit-remaining-60" && v == "100"), "{headers:?}");
        // ai-proxy publishes its usage in its own log phase, maybe after ours.
        first.charge(&cfg, &host, false);
        assert!(!host.counts.borrow().iter().any(|(_, m, _)| *m == PolicyMetric::Charged), "waits for the usage");
        host.set_property("ai.usage", "60,50,110,estimated");
        first.charge(&cfg, &host, true);
        assert!(host.counts.borrow().contains(&(0, PolicyMetric::Charged, 110)));
        assert!(host.counts.borrow().contains(&(0, PolicyMetric::Estimated, 1)));

        let mut second = RequestLimiter::default();
        let Verdict::Reject(err, headers) = second.admit(&cfg, &facts(&none), &host) else { panic!("the budget is spent") };
        assert_eq!(err.status, 429);
        assert!(headers.iter().any(|(k, _)| k == "retry-after"), "{headers:?}");
        assert_eq!(host.property(&["ai.ratelimit"]).as_deref(), Some("rejected:team"));
        assert!(host.counts.borrow().contains(&(0, PolicyMetric::Rejected, 1)));
    }

    #[test]
    fn without_ai_proxy_the_answers_own_usage_is_charged() {
        let (cfg, host) = (config(LOCAL), FakeHost::default());
        let mut r = RequestLimiter::default();
        r.admit(&cfg, &facts(&|_| None), &host);
        r.response_headers(&cfg, &host, &|| "application/json".into());
        assert!(r.reads_answer());
        r.answer_chunk(br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#, true);
        r.charge(&cfg, &host, false);
        assert_eq!(host.counts.borrow().iter().find(|(_, m, _)| *m == PolicyMetric::Charged), Some(&(0, PolicyMetric::Charged, 7)));
        // A request that never learns its usage is not charged, and stops waiting.
        let mut lost = RequestLimiter::default();
        lost.admit(&cfg, &facts(&|_| None), &host);
        lost.charge(&cfg, &host, true);
        assert_eq!(host.counts.borrow().iter().filter(|(_, m, _)| *m == PolicyMetric::Charged).count(), 1);
    }

    #[test]
    fn the_cluster_strategy_publishes_partitions_and_counts_what_the_service_did() {
        let cfg = config(r#"{"strategy": "cluster", "policies": [{"name": "per-key", "partition_by": "header", "partition_header": "x-key", "limits": [{"limit": 10, "window_size": 60}]}]}"#);
        let key = |n: &str| (n == "x-key").then(|| "alice".to_string());
        let host = FakeHost::default();
        let mut r = RequestLimiter::default();
        assert_eq!(r.admit(&cfg, &facts(&key), &host), Verdict::Continue);
        assert_eq!(host.property(&[&cluster_state_key("per-key")]), Some(cluster_partition("alice")));
        host.set_property("response.code_details", "via_upstream");
        host.set_property("ai.provider", "openai");
        assert!(r.response_headers(&cfg, &host, &|| String::new()).is_empty(), "the service's own headers stand");
        host.set_property("ai.usage", "2,3,5");
        r.charge(&cfg, &host, false);
        assert!(!host.counts.borrow().iter().any(|(_, m, _)| *m == PolicyMetric::Charged), "counted once, at the end");
        r.charge(&cfg, &host, true);
        assert!(host.counts.borrow().contains(&(0, PolicyMetric::Allowed, 1)));
        assert!(host.counts.borrow().contains(&(0, PolicyMetric::Charged, 5)));

        // Envoy refused it itself: counted as rejected, nothing spent.
        let refused = FakeHost::default();
        let mut r = RequestLimiter::default();
        r.admit(&cfg, &facts(&key), &refused);
        refused.set_property("response.code_details", "request_rate_limited");
        r.response_headers(&cfg, &refused, &|| String::new());
        assert_eq!(refused.property(&["ai.total_tokens"]).as_deref(), Some("0"));
        r.charge(&cfg, &refused, true);
        assert_eq!(*refused.counts.borrow(), [(0, PolicyMetric::Rejected, 1)]);
    }
}
