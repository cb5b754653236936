//! What ai-proxy publishes when a request ends, decided here and applied by
//! the filter: filter-state properties for later filters and access logs,
//! metrics labelled by provider, model and consumer, and the statistics line.

use super::Exchange;
use crate::metrics::LabelCap;

/// Distinct values per label and VM; later ones are counted as `other`.
const MAX_MODELS: usize = 32;
const MAX_CONSUMERS: usize = 100;

/// Points in a request's life, in milliseconds on one clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    pub sent_ms: Option<u64>,
    pub answered_ms: Option<u64>,
    pub first_chunk_ms: Option<u64>,
    pub end_ms: Option<u64>,
}

fn between(from: Option<u64>, to: Option<u64>) -> Option<u64> {
    to?.checked_sub(from?)
}

/// Label caps shared by every request of one plugin instance.
#[derive(Debug)]
pub struct Labels {
    models: LabelCap,
    consumers: LabelCap,
}

impl Default for Labels {
    fn default() -> Self {
        Labels { models: LabelCap::new(MAX_MODELS), consumers: LabelCap::new(MAX_CONSUMERS) }
    }
}

/// How a request ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The gateway answered itself (a refused request, a missing credential).
    GatewayReject,
    Success,
    UpstreamError,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::GatewayReject => "gateway_reject",
            Outcome::Success => "success",
            Outcome::UpstreamError => "upstream_error",
        }
    }
}

/// Everything to publish for one request.
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    pub properties: Vec<(&'static str, String)>,
    pub counters: Vec<(String, u64)>,
    pub histograms: Vec<(String, u64)>,
    /// The `log_statistics` line, for Envoy's log at debug level.
    pub statistics: Option<String>,
    /// Why the upstream answer could not be used, for a warning.
    pub problem: Option<String>,
}

impl Exchange {
    pub fn outcome(&self, replied: bool) -> Outcome {
        match (replied, self.status()) {
            (true, _) | (false, 0) => Outcome::GatewayReject,
            (false, s) if (200..300).contains(&s) && self.problem().is_none() => Outcome::Success,
            _ => Outcome::UpstreamError,
        }
    }

    /// The split keys access logs read, for `logging.log_statistics`.
    fn push_statistics(&self, out: &mut Vec<(&'static str, String)>, cost: Option<f64>, latency: Option<u64>, ttft: Option<u64>) {
        if let Some(model) = self.response_model() {
            out.push(("ai.response_model", model.to_string()));
        }
        if let Some(u) = self.usage() {
            if self.usage_estimated() {
                out.push(("ai.usage_estimated", "true".to_string()));
            }
            out.push(("ai.prompt_tokens", u.prompt_tokens.to_string()));
            out.push(("ai.completion_tokens", u.completion_tokens.to_string()));
            out.push(("ai.total_tokens", u.total_tokens.to_string()));
            if let Some(d) = u.prompt_tokens_details {
                out.push(("ai.cached_tokens", d.cached_tokens.to_string()));
            }
            if let Some(d) = u.completion_tokens_details {
                out.push(("ai.reasoning_tokens", d.reasoning_tokens.to_string()));
            }
        }
        if let Some(cost) = cost {
            out.push(("ai.cost", format!("{cost:.8}")));
        }
        if let Some(ms) = latency {
            out.push(("ai.upstream_latency_ms", ms.to_string()));
        }
        if let Some(ms) = ttft {
            out.push(("ai.ttft_ms", ms.to_string()));
        }
    }

    /// The report for a request that ended. `replied`: the filter answered
    /// the client itself. `consumer`: from the trusted consumer header.
    /// `line`: the statistics line would be logged (debug level is on).
    pub fn report(&self, replied: bool, consumer: Option<&str>, timing: &Timing, labels: &mut Labels, line: bool) -> Report {
        let mut r = Report { problem: self.problem().map(str::to_string), ..Default::default() };
        let usage = self.usage();
        let cost = self.cost();
        let latency = between(timing.sent_ms, timing.answered_ms);
        let ttft = between(timing.sent_ms, timing.first_chunk_ms).filter(|_| self.is_stream());
        if let Some(u) = usage {
            // Always: the rate limiter charges it, in one read.
            let value = if self.usage_estimated() { crate::usage::format_estimated(&u) } else { crate::usage::format_usage(&u) };
            r.properties.push(("ai.usage", value));
        }
        // The access log's keys cost a host call each: written only when
        // logging asks for them, as Kong's analytics are.
        if self.config().logging.log_statistics {
            self.push_statistics(&mut r.properties, cost, latency, ttft);
        }

        let provider = self.config().provider.as_str();
        let model = labels.models.admit(self.response_model().or(self.requested_model()).unwrap_or("unknown"));
        let consumer = labels.consumers.admit(consumer.unwrap_or("anonymous"));
        let outcome = self.outcome(replied).as_str();
        // The route's label, when configured, on every metric.
        let route = self.config().route_label.as_deref();
        let named = |metric: &str, l: &[(&str, &str)]| crate::metrics::name_on_route(metric, l, route);
        let who = [("provider", provider), ("model", model.as_str()), ("consumer", consumer.as_str())];
        r.counters.push((named("ai_llm_requests_total", &[who[0], who[1], who[2], ("outcome", outcome)]), 1));
        if let Some(u) = usage {
            let mut kinds = vec![("prompt", u.prompt_tokens), ("completion", u.completion_tokens), ("total", u.total_tokens)];
            if let Some(d) = u.prompt_tokens_details {
                kinds.push(("cached", d.cached_tokens));
            }
            if let Some(d) = u.completion_tokens_details {
                kinds.push(("reasoning", d.reasoning_tokens));
            }
            for (kind, n) in kinds {
                r.counters.push((named("ai_llm_tokens_total", &[who[0], who[1], who[2], ("token_type", kind)]), n));
            }
            if let Some(cost) = cost {
                r.counters.push((named("ai_llm_cost_microunits_total", &who), (cost * 1_000_000.0).round() as u64));
            }
            if self.usage_estimated() {
                r.counters.push((named("ai_llm_usage_estimated_total", &who), 1));
            }
            // Time per output token: the stream after its first chunk.
            if u.completion_tokens > 1 {
                if let Some(ms) = between(timing.first_chunk_ms, timing.end_ms) {
                    r.histograms.push((named("ai_llm_time_per_output_token_ms", &who[..2]), ms / (u.completion_tokens - 1)));
                }
            }
        }
        if let Some(ms) = latency {
            r.histograms.push((named("ai_llm_provider_latency_ms", &who[..2]), ms));
        }
        if let Some(ms) = ttft {
            r.histograms.push((named("ai_llm_time_to_first_token_ms", &who[..2]), ms));
        }
        if line && self.config().logging.log_statistics {
            let u = usage.unwrap_or_default();
            let or_dash = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
            r.statistics = Some(format!(
                "provider={provider} model={} response_model={} consumer={consumer} status={} outcome={outcome} stream={} prompt_tokens={} completion_tokens={} total_tokens={} latency_ms={} ttft_ms={}",
                self.requested_model().unwrap_or("-"),
                self.response_model().unwrap_or("-"),
                self.status(),
                self.is_stream(),
                u.prompt_tokens,
                u.completion_tokens,
                u.total_tokens,
                or_dash(latency),
                or_dash(ttft),
            ));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;
    use crate::proxy::config::ProxyConfig;
    use std::rc::Rc;

    fn exchange(json: &str) -> Exchange {
        Exchange::new(Rc::new(ProxyConfig::from_json(json.as_bytes(), &|_| None).unwrap()), "r1".into(), 1)
    }

    const PRICED: &str = r#"{"logging":{"log_statistics":true},"model":{"provider":"openai","name":"gpt-4o","options":{"input_cost":2.5,"output_cost":10}}}"#;

    fn counter(r: &Report, metric: &str) -> Option<u64> {
        r.counters.iter().find(|(n, _)| n == metric).map(|(_, v)| *v)
    }

    #[test]
    fn a_streamed_success_reports_usage_cost_and_timings() {
        let mut x = exchange(PRICED);
        x.request_body(br#"{"messages":[],"stream":true,"stream_options":{"include_usage":true}}"#).unwrap();
        x.response_headers(200, Some("text/event-stream"));
        x.response_chunk(b"data: {\"model\":\"gpt-4o-2024\",\"choices\":[],\"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":11,\"total_tokens\":1011}}\n\ndata: [DONE]\n\n", true);
        let timing = Timing { sent_ms: Some(100), answered_ms: Some(150), first_chunk_ms: Some(160), end_ms: Some(360) };
        let r = x.report(false, Some("alice"), &timing, &mut Labels::default(), true);
        assert!(r.properties.contains(&("ai.total_tokens", "1011".into())));
        assert!(r.properties.contains(&("ai.usage", "1000,11,1011".into())));
        assert!(r.properties.contains(&("ai.cost", "0.00261000".into())));
        assert!(r.properties.contains(&("ai.ttft_ms", "60".into())));
        assert_eq!(counter(&r, "ai_llm_requests_total.provider.openai.model.gpt-4o-2024.consumer.alice.outcome.success"), Some(1));
        assert_eq!(counter(&r, "ai_llm_tokens_total.provider.openai.model.gpt-4o-2024.consumer.alice.token_type.completion"), Some(11));
        assert_eq!(counter(&r, "ai_llm_cost_microunits_total.provider.openai.model.gpt-4o-2024.consumer.alice"), Some(2610));
        // 200 ms after the first chunk for the 10 tokens after the first.
        assert!(r.histograms.contains(&("ai_llm_time_per_output_token_ms.provider.openai.model.gpt-4o-2024".into(), 20)));
        assert!(r.histograms.contains(&("ai_llm_provider_latency_ms.provider.openai.model.gpt-4o-2024".into(), 50)));
        assert!(r.statistics.unwrap().contains("outcome=success stream=true prompt_tokens=1000"));
    }

    #[test]
    fn a_route_label_tells_two_routes_of_one_model_apart() {
        let mut x = exchange(r#"{"route_label":"team-a","model":{"provider":"openai","name":"gpt-4o"}}"#);
        x.request_body(br#"{"messages":[]}"#).unwrap();
        x.response_headers(200, Some("application/json"));
        x.response_chunk(br#"{"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#, true);
        let timing = Timing { sent_ms: Some(100), answered_ms: Some(150), first_chunk_ms: None, end_ms: Some(200) };
        let r = x.report(false, None, &timing, &mut Labels::default(), false);
        assert_eq!(counter(&r, "ai_llm_requests_total.provider.openai.model.gpt-4o.consumer.anonymous.outcome.success.route.team-a"), Some(1));
        assert!(r.histograms.contains(&("ai_llm_provider_latency_ms.provider.openai.model.gpt-4o.route.team-a".into(), 50)), "{:?}", r.histograms);
        let bad = ProxyConfig::from_json(br#"{"route_label":"a.b","model":{"provider":"openai"}}"#, &|_| None).err().map(|e| e.path);
        assert_eq!(bad.as_deref(), Some("route_label"));
    }


    #[test]
    fn without_log_statistics_only_the_charged_usage_is_published() {
        let mut x = exchange(r#"{"model":{"provider":"openai","name":"gpt-4o","options":{"input_cost":2.5,"output_cost":10}}}"#);
        x.request_body(br#"{"messages":[]}"#).unwrap();
        x.response_headers(200, Some("application/json"));
        x.response_body(br#"{"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#);
        let timing = Timing { sent_ms: Some(100), answered_ms: Some(150), ..Default::default() };
        let r = x.report(false, None, &timing, &mut Labels::default(), true);
        assert_eq!(r.properties, vec![("ai.usage", "3,2,5".to_string())]);
        assert!(r.statistics.is_none());
        // The metrics do not depend on it.
        assert_eq!(counter(&r, "ai_llm_tokens_total.provider.openai.model.gpt-4o.consumer.anonymous.token_type.total"), Some(5));
        assert!(counter(&r, "ai_llm_cost_microunits_total.provider.openai.model.gpt-4o.consumer.anonymous").is_some());
    }

    #[test]
    fn outcomes() {
        let x = exchange(PRICED);
        assert_eq!(x.outcome(false), Outcome::GatewayReject, "never answered: refused before upstream");
        assert_eq!(x.outcome(true), Outcome::GatewayReject);
        let mut x = exchange(PRICED);
        x.request_body(br#"{"messages":[]}"#).unwrap();
        x.response_headers(503, Some("application/json"));
        assert_eq!(x.outcome(false), Outcome::UpstreamError);
        let mut x = exchange(PRICED);
        x.request_body(br#"{"messages":[]}"#).unwrap();
        x.response_headers(200, Some("text/html"));
        assert_eq!(x.outcome(false), Outcome::UpstreamError, "a 200 that is no answer");
        let r = x.report(false, None, &Timing::default(), &mut Labels::default(), true);
        assert!(r.problem.is_some());
        assert_eq!(counter(&r, "ai_llm_requests_total.provider.openai.model.gpt-4o.consumer.anonymous.outcome.upstream_error"), Some(1));
        assert!(r.histograms.is_empty() && !r.properties.iter().any(|(k, _)| *k == "ai.total_tokens"));
    }

    #[test]
    fn client_chosen_labels_are_capped() {
        let mut labels = Labels::default();
        let x = exchange(r#"{"model":{"provider":"openai"}}"#);
        for i in 0..MAX_CONSUMERS {
            x.report(true, Some(&format!("c{i}")), &Timing::default(), &mut labels, false);
        }
        let r = x.report(true, Some("one-too-many"), &Timing::default(), &mut labels, false);
        assert_eq!(counter(&r, "ai_llm_requests_total.provider.openai.model.unknown.consumer.other.outcome.gateway_reject"), Some(1));
    }
}
