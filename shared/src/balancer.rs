//! ai-proxy-advanced as plain Rust: its configuration (Kong's field
//! names), the ordered plan of targets for one request, what each try
//! records, and the statistics the balancer keeps per target.
//!
//! Envoy's router does the retrying (see docs/ai-proxy-advanced.md); this
//! module decides the order and what the router's retry headers say.

use crate::config::{check_range, parse_strict, ConfigError};
use crate::metrics::name;
use crate::openai::Usage;
use crate::store::CounterStore;
use crate::proxy::config::{
    default_max_body, default_route_type, default_true, is_header_name, AuthConfig, LlmFormat, LoggingConfig, ModelConfig,
    ProxyConfig, RawConfig, RouteType, StreamingPolicy,
};
use serde::Deserialize;
use std::rc::Rc;

/// At most this many targets per instance (indices travel as one byte).
pub const MAX_TARGETS: usize = 64;
/// At most this many retries: the route's matcher has one entry per try.
pub const MAX_RETRIES: u32 = 20;
/// lowest-usage counts tokens over this sliding window.
pub const USAGE_WINDOW_SECS: u64 = 60;
/// Weight of the newest sample in the latency average.
const EWMA_ALPHA: f64 = 0.3;
/// A failed try counts for lowest-latency as at least this many ms (per
/// token for `tpot`), so a target that fails fast does not look fast.
const FAILURE_PENALTY: f64 = 1000.0;
/// Smooth weighted round-robin sequences are kept at most this long.
const MAX_ROTATION: u32 = 1000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    #[default]
    RoundRobin,
    Priority,
    LowestLatency,
    LowestUsage,
    ConsistentHashing,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatencyStrategy {
    /// Time per output token.
    #[default]
    Tpot,
    /// Whole request, end to end.
    E2e,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokensStrategy {
    #[default]
    TotalTokens,
    PromptTokens,
    CompletionTokens,
    Cost,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBalancer {
    #[serde(default)]
    algorithm: Algorithm,
    #[serde(default = "default_retries")]
    retries: u32,
    #[serde(default = "default_criteria")]
    failover_criteria: Vec<String>,
    connect_timeout: Option<u64>,
    read_timeout: Option<u64>,
    write_timeout: Option<u64>,
    #[serde(default = "default_hash_header")]
    hash_on_header: String,
    #[serde(default)]
    latency_strategy: LatencyStrategy,
    #[serde(default)]
    tokens_count_strategy: TokensStrategy,
}

impl Default for RawBalancer {
    fn default() -> Self {
        RawBalancer {
            algorithm: Algorithm::default(),
            retries: default_retries(),
            failover_criteria: default_criteria(),
            connect_timeout: None,
            read_timeout: None,
            write_timeout: None,
            hash_on_header: default_hash_header(),
            latency_strategy: LatencyStrategy::default(),
            tokens_count_strategy: TokensStrategy::default(),
        }
    }
}

fn default_retries() -> u32 {
    5
}
fn default_criteria() -> Vec<String> {
    vec!["error".into(), "timeout".into()]
}
fn default_hash_header() -> String {
    "X-Kong-LLM-Request-ID".into()
}
fn default_weight() -> u32 {
    100
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    #[serde(default = "default_route_type")]
    route_type: RouteType,
    #[serde(default)]
    auth: AuthConfig,
    model: ModelConfig,
    #[serde(default)]
    logging: LoggingConfig,
    #[serde(default = "default_weight")]
    weight: u32,
    #[serde(default)]
    priority: u32,
    description: Option<String>,
    /// Label in metrics and logs; defaults to the provider's name.
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdvanced {
    #[serde(default)]
    balancer: RawBalancer,
    targets: Vec<RawTarget>,
    #[serde(default)]
    response_streaming: StreamingPolicy,
    #[serde(default = "default_max_body")]
    max_request_body_size: u64,
    #[serde(default = "default_true")]
    model_name_header: bool,
    #[serde(default)]
    consumer_header: Option<String>,
    #[serde(default)]
    llm_format: LlmFormat,
    /// ai-proxy's `route_label`, for every target.
    #[serde(default)]
    route_label: Option<String>,
}

#[derive(Debug)]
pub struct Target {
    pub name: String,
    pub weight: u32,
    pub priority: u32,
    pub description: Option<String>,
    pub proxy: Rc<ProxyConfig>,
}

#[derive(Debug)]
pub struct AdvancedConfig {
    pub algorithm: Algorithm,
    /// Tries per request: `retries + 1`.
    pub tries: usize,
    /// `x-envoy-retry-on` for the router; empty: no retry.
    pub retry_on: String,
    /// `x-envoy-retriable-status-codes`.
    pub retriable_status_codes: String,
    /// `read_timeout`: the router's per-try timeout (to the first byte).
    pub per_try_timeout_ms: Option<u64>,
    /// Lower-case header name for consistent-hashing.
    pub hash_header: String,
    pub latency_strategy: LatencyStrategy,
    pub tokens_strategy: TokensStrategy,
    pub targets: Vec<Target>,
    pub llm_format: LlmFormat,
    /// Per priority group (one group unless the algorithm is `priority`),
    /// ascending: the smooth weighted round-robin sequence of its targets.
    rotations: Vec<Vec<u8>>,
    /// Targets a request may go to: those whose credentials are all set.
    usable: Vec<bool>,
}

/// `targets[1].model.provider` from a target-relative path.
fn in_target(i: usize, err: ConfigError) -> ConfigError {
    let path = if err.path == "." { format!("targets[{i}]") } else { format!("targets[{i}].{}", err.path) };
    ConfigError::new(path, err.message)
}

impl AdvancedConfig {
    pub fn from_json(bytes: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let raw: RawAdvanced = parse_strict(bytes)?;
        let b = &raw.balancer;
        check_range("balancer.retries", Some(b.retries), 0, MAX_RETRIES)?;
        for (field, value) in [("connect_timeout", b.connect_timeout), ("read_timeout", b.read_timeout), ("write_timeout", b.write_timeout)] {
            check_range(&format!("balancer.{field}"), value, 1, 3_600_000)?;
        }
        if !is_header_name(&b.hash_on_header) {
            return Err(ConfigError::new("balancer.hash_on_header", "is not a valid header name"));
        }
        if let Some(h) = &raw.consumer_header {
            if !is_header_name(h) {
                return Err(ConfigError::new("consumer_header", "is not a valid header name"));
            }
        }
        let (retry_on, retriable_status_codes) = retry_policy(&b.failover_criteria)?;
        if raw.targets.is_empty() || raw.targets.len() > MAX_TARGETS {
            return Err(ConfigError::new("targets", format!("needs 1 to {MAX_TARGETS} targets")));
        }

        let mut targets = Vec::with_capacity(raw.targets.len());
        for (i, t) in raw.targets.into_iter().enumerate() {
            check_range("weight", Some(t.weight), 1, 65535).map_err(|e| in_target(i, e))?;
            check_range("priority", Some(t.priority), 0, 1000).map_err(|e| in_target(i, e))?;
            if let Some(d) = &t.description {
                check_range("description", Some(d.len()), 0, 1024).map_err(|e| in_target(i, e))?;
            }
            let name = match t.name {
                Some(n) if crate::config::is_label(&n) => n,
                Some(_) => return Err(in_target(i, ConfigError::new("name", "must be 1 to 64 letters, digits, `-` or `_`"))),
                None => t.model.provider.as_str().to_string(),
            };
            let proxy = ProxyConfig::from_raw(
                RawConfig {
                    route_type: t.route_type,
                    auth: t.auth,
                    model: t.model,
                    response_streaming: raw.response_streaming,
                    max_request_body_size: raw.max_request_body_size,
                    model_name_header: raw.model_name_header,
                    logging: t.logging,
                    consumer_header: raw.consumer_header.clone(),
                    llm_format: raw.llm_format,
                    // The balancer replaces every client's model.
                    model_aliases: Vec::new(),
                    route_label: raw.route_label.clone(),
                },
                env,
            )
            .map_err(|e| in_target(i, e))?;
            let proxy = ProxyConfig { replace_client_model: true, ..proxy };
            targets.push(Target { name, weight: t.weight, priority: t.priority, description: t.description, proxy: Rc::new(proxy) });
        }
        // Default names are provider names: number them where they repeat.
        let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
        for (i, t) in targets.iter_mut().enumerate() {
            if names.iter().filter(|n| **n == t.name).count() > 1 {
                t.name = format!("{}-{i}", t.name);
            }
        }
        for (i, t) in targets.iter().enumerate() {
            if targets.iter().take(i).any(|o| o.name == t.name) {
                return Err(in_target(i, ConfigError::new("name", format!("`{}` names another target too", t.name))));
            }
        }
        let route = targets.first().map(|t| t.proxy.route_type);
        if let Some(i) = targets.iter().position(|t| Some(t.proxy.route_type) != route) {
            return Err(in_target(i, ConfigError::new("route_type", "must be the same for every target of one route")));
        }

        let usable: Vec<bool> = targets.iter().map(|t| t.proxy.missing_secret.is_none()).collect();
        let mut groups: Vec<u32> = targets.iter().map(|t| if b.algorithm == Algorithm::Priority { t.priority } else { 0 }).collect();
        groups.sort_unstable();
        groups.dedup();
        let rotations = groups
            .iter()
            .map(|g| {
                let members: Vec<(u8, u32)> = targets
                    .iter()
                    .enumerate()
                    .filter(|(i, t)| usable.get(*i) == Some(&true) && (b.algorithm != Algorithm::Priority || t.priority == *g))
                    .map(|(i, t)| (i as u8, t.weight))
                    .collect();
                smooth_rotation(&members)
            })
            .filter(|r| !r.is_empty())
            .collect();

        Ok(AdvancedConfig {
            algorithm: b.algorithm,
            tries: b.retries as usize + 1,
            retry_on,
            retriable_status_codes,
            per_try_timeout_ms: b.read_timeout,
            hash_header: b.hash_on_header.to_ascii_lowercase(),
            latency_strategy: b.latency_strategy,
            tokens_strategy: b.tokens_count_strategy,
            targets,
            llm_format: raw.llm_format,
            rotations,
            usable,
        })
    }

    /// The balancer's own error reply, in the shape its clients speak.
    pub fn error_reply(&self, err: &crate::GatewayError) -> Vec<u8> {
        match self.llm_format {
            LlmFormat::Anthropic => crate::proxy::messages::gateway_error(err),
            LlmFormat::Openai => err.to_json(),
        }
    }

    /// Whether planning needs the instance-wide request counter (exact
    /// across workers), or per-target scores from shared data.
    pub fn needs_counter(&self) -> bool {
        matches!(self.algorithm, Algorithm::RoundRobin | Algorithm::Priority | Algorithm::ConsistentHashing)
    }

    pub fn needs_scores(&self) -> bool {
        matches!(self.algorithm, Algorithm::LowestLatency | Algorithm::LowestUsage)
    }

    /// Every usable target once, best first. `counter`: this request's
    /// number; `scores`: per target, lower is better (unknown counts as 0,
    /// so a new target is measured first); `hash_key`: the value of
    /// `hash_on_header` (consistent-hashing; round-robin without it).
    pub fn order(&self, counter: u64, scores: &[Option<f64>], hash_key: Option<&str>) -> Vec<u8> {
        let rotation_order = || -> Vec<u8> {
            let mut out = Vec::with_capacity(self.targets.len());
            for rotation in &self.rotations {
                let len = rotation.len().max(1);
                let start = (counter % len as u64) as usize;
                for k in 0..len {
                    if let Some(&t) = rotation.get((start + k) % len) {
                        if !out.contains(&t) {
                            out.push(t);
                        }
                    }
                }
            }
            out
        };
        match self.algorithm {
            Algorithm::RoundRobin | Algorithm::Priority => rotation_order(),
            Algorithm::ConsistentHashing => match hash_key {
                Some(key) => {
                    let mut ranked: Vec<(f64, u8)> = self
                        .usable_targets()
                        .map(|(i, t)| (rendezvous_score(key, &t.name, t.weight), i))
                        .collect();
                    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
                    ranked.into_iter().map(|(_, i)| i).collect()
                }
                None => rotation_order(),
            },
            Algorithm::LowestLatency | Algorithm::LowestUsage => {
                // Ties (all new targets, say) go round by the counter.
                let rotation = rotation_order();
                let mut ranked: Vec<(f64, usize, u8)> = rotation
                    .iter()
                    .enumerate()
                    .map(|(pos, &i)| (scores.get(i as usize).copied().flatten().unwrap_or(0.0), pos, i))
                    .collect();
                ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                ranked.into_iter().map(|(_, _, i)| i).collect()
            }
        }
    }

    fn usable_targets(&self) -> impl Iterator<Item = (u8, &Target)> {
        self.targets.iter().enumerate().filter(|(i, _)| self.usable.get(*i) == Some(&true)).map(|(i, t)| (i as u8, t))
    }

    /// The target of try `k` (0-based) for a request planned with `order`:
    /// the order again from the top once every target was tried.
    pub fn target_of_try(order: &[u8], k: usize) -> Option<u8> {
        order.get(k.checked_rem(order.len())?).copied()
    }

    pub fn target(&self, index: u8) -> Option<&Target> {
        self.targets.get(index as usize)
    }

    /// The balancer's number for a served or failed try, from its record.
    pub fn latency_sample(&self, record: &TryRecord, current: Option<f64>) -> f64 {
        if !record.succeeded() {
            return (current.unwrap_or(0.0) * 2.0).max(FAILURE_PENALTY);
        }
        let ms = record.latency_ms as f64;
        match self.latency_strategy {
            LatencyStrategy::E2e => ms,
            LatencyStrategy::Tpot => ms / record.usage.map_or(1, |u| u.completion_tokens.max(1)) as f64,
        }
    }

    /// What a served try adds to its target's usage (cost in dollars).
    pub fn usage_amount(&self, record: &TryRecord) -> f64 {
        let Some(u) = record.usage else { return 0.0 };
        match self.tokens_strategy {
            TokensStrategy::TotalTokens => u.total_tokens as f64,
            TokensStrategy::PromptTokens => u.prompt_tokens as f64,
            TokensStrategy::CompletionTokens => u.completion_tokens as f64,
            TokensStrategy::Cost => record.cost.unwrap_or(0.0),
        }
    }
}

/// Kong's `failover_criteria` as Envoy's router retry policy.
fn retry_policy(criteria: &[String]) -> Result<(String, String), ConfigError> {
    let mut on: Vec<&str> = Vec::new();
    let mut codes: Vec<u16> = Vec::new();
    for (i, c) in criteria.iter().enumerate() {
        match c.as_str() {
            "error" => on.extend(["connect-failure", "refused-stream", "reset"]),
            // Envoy retries a per-try timeout, and a bad response header,
            // as an upstream reset.
            "timeout" | "invalid_header" => on.push("reset"),
            // LLM calls are POSTs; the router re-sends the buffered body.
            "non_idempotent" => {}
            other => match other.strip_prefix("http_").and_then(|n| n.parse::<u16>().ok()).filter(|n| (400..=599).contains(n)) {
                Some(code) => codes.push(code),
                None => {
                    return Err(ConfigError::new(
                        format!("balancer.failover_criteria[{i}]"),
                        format!("unknown criterion `{other}` (error, timeout, invalid_header, non_idempotent, http_4xx/5xx such as http_429)"),
                    ))
                }
            },
        }
    }
    if !codes.is_empty() {
        on.push("retriable-status-codes");
    }
    on.sort_unstable();
    on.dedup();
    codes.sort_unstable();
    codes.dedup();
    let codes: Vec<String> = codes.iter().map(u16::to_string).collect();
    Ok((on.join(","), codes.join(",")))
}

/// Nginx's smooth weighted round-robin: each target appears `weight` times
/// per cycle (weights reduced to at most `MAX_ROTATION` in all), spread out
/// rather than in runs.
fn smooth_rotation(members: &[(u8, u32)]) -> Vec<u8> {
    let divisor = members.iter().fold(0, |g, (_, w)| gcd(g, *w)).max(1);
    let mut weights: Vec<u32> = members.iter().map(|(_, w)| w / divisor).collect();
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total > u64::from(MAX_ROTATION) {
        for w in &mut weights {
            *w = ((u64::from(*w) * u64::from(MAX_ROTATION)) / total).max(1) as u32;
        }
    }
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    let mut current = vec![0i64; members.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (k, w) in weights.iter().enumerate() {
            if let Some(c) = current.get_mut(k) {
                *c += i64::from(*w);
            }
            if current.get(k) > current.get(best) {
                best = k;
            }
        }
        if let Some(c) = current.get_mut(best) {
            *c -= total;
        }
        if let Some((t, _)) = members.get(best) {
            out.push(*t);
        }
    }
    out
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Weighted rendezvous hashing: a key's targets ranked so that adding or
/// losing one target moves only the keys that ranked it first.
fn rendezvous_score(key: &str, target: &str, weight: u32) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain([0xff]).chain(target.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64's finalizer: FNV alone leaves the high bits correlated.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    let unit = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64; // in (0, 1)
    f64::from(weight) / -unit.ln()
}

/// The latency average after one more sample.
pub fn ewma(current: Option<f64>, sample: f64) -> f64 {
    match current {
        Some(c) if c.is_finite() => c + EWMA_ALPHA * (sample - c),
        _ => sample,
    }
}

/// Usage in a sliding window: the current fixed window plus the previous
/// one, weighted by how much of it still overlaps.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UsageWindow {
    pub start: u64,
    pub current: f64,
    pub previous: f64,
}

impl UsageWindow {
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.split(' ');
        let w = UsageWindow {
            start: parts.next()?.parse().ok()?,
            current: parts.next()?.parse().ok()?,
            previous: parts.next()?.parse().ok()?,
        };
        (w.current.is_finite() && w.previous.is_finite()).then_some(w)
    }

    pub fn encode(&self) -> String {
        format!("{} {} {}", self.start, self.current, self.previous)
    }

    /// Moves the window to `now`.
    fn roll(&mut self, now: u64) {
        let elapsed = now.saturating_sub(self.start);
        if elapsed >= 2 * USAGE_WINDOW_SECS {
            *self = UsageWindow { start: now - now % USAGE_WINDOW_SECS, current: 0.0, previous: 0.0 };
        } else if elapsed >= USAGE_WINDOW_SECS {
            *self = UsageWindow { start: self.start + USAGE_WINDOW_SECS, current: 0.0, previous: self.current };
        }
    }

    pub fn add(mut self, now: u64, amount: f64) -> Self {
        self.roll(now);
        self.current += amount;
        self
    }

    pub fn estimate(mut self, now: u64) -> f64 {
        self.roll(now);
        let into = now.saturating_sub(self.start).min(USAGE_WINDOW_SECS) as f64 / USAGE_WINDOW_SECS as f64;
        self.current + self.previous * (1.0 - into)
    }
}

/// One try of one request, as the upstream filter records it. `status` 0:
/// no answer (connect failure, reset, per-try timeout).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TryRecord {
    pub target: u8,
    pub status: u16,
    pub latency_ms: u64,
    pub usage: Option<Usage>,
    pub cost: Option<f64>,
}

impl TryRecord {
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `target:status:latency[:prompt:completion:total[:cost]]`
    pub fn encode(&self) -> String {
        let mut s = format!("{}:{}:{}", self.target, self.status, self.latency_ms);
        if let Some(u) = self.usage {
            s.push_str(&format!(":{}:{}:{}", u.prompt_tokens, u.completion_tokens, u.total_tokens));
            if let Some(c) = self.cost {
                s.push_str(&format!(":{c}"));
            }
        }
        s
    }

    pub fn parse(text: &str) -> Option<Self> {
        let mut p = text.split(':');
        let mut r = TryRecord { target: p.next()?.parse().ok()?, status: p.next()?.parse().ok()?, latency_ms: p.next()?.parse().ok()?, ..Default::default() };
        if let Some(prompt) = p.next() {
            let mut u = Usage::new(prompt.parse().ok()?, p.next()?.parse().ok()?);
            u.total_tokens = p.next()?.parse().ok()?;
            r.usage = Some(u);
            r.cost = p.next().and_then(|c| c.parse().ok()).filter(|c: &f64| c.is_finite());
        }
        Some(r)
    }
}

/// The `ai.try_log` value (written by each try): one record per try, in order.
pub fn parse_tries(text: &str) -> Vec<TryRecord> {
    text.split(',').filter_map(TryRecord::parse).collect()
}

pub fn encode_tries(records: &[TryRecord]) -> String {
    records.iter().map(TryRecord::encode).collect::<Vec<_>>().join(",")
}

/// What the downstream filter publishes when a request ends.
#[derive(Debug, Default, PartialEq)]
pub struct BalancerReport {
    pub properties: Vec<(&'static str, String)>,
    pub counters: Vec<(String, u64)>,
}

impl AdvancedConfig {
    pub fn report(&self, records: &[TryRecord]) -> BalancerReport {
        let mut r = BalancerReport::default();
        self.report_into(records, &mut r);
        if !self.log_statistics() {
            // The access log's keys, published only when a target's
            // `logging.log_statistics` asks for them (a host call each).
            r.properties.clear();
        }
        r
    }

    fn report_into(&self, records: &[TryRecord], r: &mut BalancerReport) {
        let label = |t: u8| self.target(t).map_or("unknown", |t| t.name.as_str());
        if let Some(last) = records.last() {
            r.properties.push(("ai.target", label(last.target).to_string()));
        }
        r.properties.push(("ai.tries", records.len().to_string()));
        let failed: Vec<String> = records
            .iter()
            .filter(|t| !t.succeeded())
            .map(|t| match t.status {
                0 => format!("{}:error", label(t.target)),
                s => format!("{}:{s}", label(t.target)),
            })
            .collect();
        if !failed.is_empty() {
            r.properties.push(("ai.failed_targets", failed.join(",")));
        }
        for t in records {
            let outcome = if t.succeeded() { "success" } else { "failure" };
            r.counters.push((name("ai_balancer_tries_total", &[("target", label(t.target)), ("outcome", outcome)]), 1));
        }
        for pair in records.windows(2) {
            if let [from, to] = pair {
                r.counters.push((name("ai_balancer_fallbacks_total", &[("from", label(from.target)), ("to", label(to.target))]), 1));
            }
        }
        if let Some(last) = records.last().filter(|last| records.len() < self.planned_tries() && self.fails_over(last.status)) {
            // The router stopped early on a failure that should have fallen
            // over: Envoy refused the retry (its `max_retries` circuit
            // breaker, a route timeout) and the client got this failure.
            let status = if last.status == 0 { "error".to_string() } else { last.status.to_string() };
            r.properties.push(("ai.fallback_skipped", format!("{}:{status}", label(last.target))));
            r.counters.push((name("ai_balancer_fallback_skipped_total", &[("target", label(last.target))]), 1));
        }
    }

    /// Some target publishes the access log's keys.
    fn log_statistics(&self) -> bool {
        self.targets.iter().any(|t| t.proxy.logging.log_statistics)
    }

    /// How many tries the router was told it may make.
    fn planned_tries(&self) -> usize {
        if self.retry_on.is_empty() {
            1
        } else {
            self.tries
        }
    }

    /// Whether a try that ended with `status` (0: no answer) is one the
    /// router was told to retry.
    fn fails_over(&self, status: u16) -> bool {
        if status == 0 {
            return self.retry_on.split(',').any(|on| matches!(on, "reset" | "connect-failure" | "refused-stream"));
        }
        let code = status.to_string();
        self.retriable_status_codes.split(',').any(|c| c == code)
    }
}

/// Compare-and-swap attempts on a shared value before giving up on exactness.
const CAS_ATTEMPTS: usize = 8;

/// A balancer's shared value (every worker's counter and statistics).
pub fn shared_key(instance: &str, what: &str) -> String {
    format!("ai-proxy-advanced/{instance}/{what}")
}

fn parse_f64(bytes: Option<&[u8]>) -> Option<f64> {
    std::str::from_utf8(bytes?).ok()?.parse().ok().filter(|v: &f64| v.is_finite())
}

impl AdvancedConfig {
    /// This request's number, counted across workers (the rotation's
    /// position); None when other workers kept winning the race.
    pub fn next_request(store: &dyn CounterStore, instance: &str) -> Option<u64> {
        let mut taken = 0;
        let new = crate::store::update(store, &shared_key(instance, "counter"), CAS_ATTEMPTS, |old| {
            taken = old.and_then(|v| <[u8; 8]>::try_from(v).ok()).map_or(0, u64::from_le_bytes);
            taken.wrapping_add(1).to_le_bytes().to_vec()
        });
        new.map(|_| taken)
    }

    /// The order in which this request tries the targets. The rotation's
    /// position is shared by every worker, or this worker's own
    /// (`local`) when the shared count cannot be had; `now` is read only by
    /// the algorithms that keep statistics.
    pub fn plan(&self, store: &dyn CounterStore, instance: &str, hash_key: Option<&str>, local: &std::cell::Cell<u64>, now: &dyn Fn() -> u64) -> Vec<u8> {
        let shared = if self.needs_counter() && hash_key.is_none() { AdvancedConfig::next_request(store, instance) } else { None };
        let counter = shared.unwrap_or_else(|| {
            let n = local.get();
            local.set(n.wrapping_add(1));
            n
        });
        let scores = if self.needs_scores() { self.scores(store, instance, now()) } else { Vec::new() };
        self.order(counter, &scores, hash_key)
    }

    /// Each target's score for the latency and usage algorithms, from the
    /// statistics every worker keeps.
    pub fn scores(&self, store: &dyn CounterStore, instance: &str, now: u64) -> Vec<Option<f64>> {
        (0..self.targets.len())
            .map(|i| match self.algorithm {
                Algorithm::LowestLatency => parse_f64(store.get(&shared_key(instance, &format!("latency/{i}"))).0.as_deref()),
                _ => store.get(&shared_key(instance, &format!("usage/{i}"))).0.and_then(|v| UsageWindow::parse(&v)).map(|w| w.estimate(now)),
            })
            .collect()
    }

    /// Updates the latency or usage statistics from one request's tries;
    /// returns the gauges to publish (`ai_balancer_latency_ms`, `ai_balancer_usage`).
    pub fn learn(&self, store: &dyn CounterStore, instance: &str, records: &[TryRecord], now: u64) -> Vec<(String, u64)> {
        let mut gauges = Vec::new();
        for r in records {
            let Some(target) = self.target(r.target) else { continue };
            match self.algorithm {
                Algorithm::LowestLatency => {
                    let key = shared_key(instance, &format!("latency/{}", r.target));
                    let new = crate::store::update(store, &key, CAS_ATTEMPTS, |old| {
                        let current = parse_f64(old);
                        ewma(current, self.latency_sample(r, current)).to_string().into_bytes()
                    });
                    if let Some(v) = parse_f64(new.as_deref()) {
                        gauges.push((name("ai_balancer_latency_ms", &[("target", &target.name)]), v as u64));
                    }
                }
                Algorithm::LowestUsage if r.succeeded() => {
                    let amount = self.usage_amount(r);
                    let key = shared_key(instance, &format!("usage/{}", r.target));
                    let new = crate::store::update(store, &key, CAS_ATTEMPTS, |old| {
                        old.and_then(UsageWindow::parse).unwrap_or_default().add(now, amount).encode().into_bytes()
                    });
                    if let Some(w) = new.as_deref().and_then(UsageWindow::parse) {
                        gauges.push((name("ai_balancer_usage", &[("target", &target.name)]), w.estimate(now) as u64));
                    }
                }
                _ => {}
            }
        }
        gauges
    }
}

/// The `ai.plan` value the balancer hands the upstream filter:
/// `<instance> <target>,<target>,...`.
pub fn encode_plan(instance: &str, order: &[u8]) -> String {
    let targets: Vec<String> = order.iter().map(u8::to_string).collect();
    format!("{instance} {}", targets.join(","))
}

pub fn parse_plan(text: &str) -> Option<(&str, Vec<u8>)> {
    let (instance, targets) = text.split_once(' ')?;
    let order: Option<Vec<u8>> = targets.split(',').map(|t| t.parse().ok()).collect();
    Some((instance, order?)).filter(|(_, o)| !o.is_empty())
}

/// The request header naming the target of try `k` (`x-ai-try-<k>`): the
/// route's matcher maps its value to the target's cluster.
pub const TRY_HEADER_PREFIX: &str = "x-ai-try-";

impl AdvancedConfig {
    /// The request's headers for the router: the client's, less any it sent
    /// under the router's or the matcher's names (they never count), plus
    /// the target of each try and the retry policy. One header map, written
    /// at once.
    pub fn router_headers(&self, client: Vec<(String, String)>, order: &[u8]) -> Vec<(String, String)> {
        let retries = if self.retry_on.is_empty() { 0 } else { self.tries - 1 };
        let ours = [
            ("x-envoy-attempt-count", Some("0".to_string())),
            ("x-envoy-max-retries", Some(retries.to_string())),
            ("x-envoy-retry-on", Some(self.retry_on.clone()).filter(|v| !v.is_empty())),
            ("x-envoy-retriable-status-codes", Some(self.retriable_status_codes.clone()).filter(|v| !v.is_empty())),
            ("x-envoy-upstream-rq-per-try-timeout-ms", self.per_try_timeout_ms.map(|ms| ms.to_string())),
        ];
        let mut headers: Vec<(String, String)> =
            client.into_iter().filter(|(n, _)| !n.starts_with(TRY_HEADER_PREFIX) && !ours.iter().any(|(o, _)| o == n)).collect();
        for k in 0..self.tries {
            let target = AdvancedConfig::target_of_try(order, k).unwrap_or_default();
            headers.push((format!("{TRY_HEADER_PREFIX}{k}"), target.to_string()));
        }
        headers.extend(ours.into_iter().filter_map(|(n, v)| Some((n.to_string(), v?))));
        headers
    }
}

/// The upstream (translator) filter takes no configuration of its own.
pub fn check_upstream_configuration(raw: &[u8]) -> Result<(), ConfigError> {
    if raw.iter().all(u8::is_ascii_whitespace) || raw.trim_ascii() == b"{}" {
        Ok(())
    } else {
        Err(ConfigError::new(".", "the upstream filter takes none (the balancer's targets are used)"))
    }
}

/// The `ai.try_log` value with one more try's record.
pub fn append_try(tries: &str, record: &TryRecord) -> String {
    if tries.is_empty() {
        record.encode()
    } else {
        format!("{tries},{}", record.encode())
    }
}

/// Request headers an earlier try changed, with the client's value (None:
/// the client sent none). Envoy does not undo an upstream filter's header
/// changes between tries, so each try first puts these back.
pub type SavedHeaders = Vec<(String, Option<String>)>;

/// The request headers as the client sent them: `current` with every
/// header an earlier try changed put back.
pub fn client_view(current: Vec<(String, String)>, saved: &SavedHeaders) -> Vec<(String, String)> {
    if saved.is_empty() {
        return current;
    }
    let mut view: Vec<(String, String)> = current.into_iter().filter(|(n, _)| !saved.iter().any(|(s, _)| s == n)).collect();
    view.extend(saved.iter().filter_map(|(n, v)| Some((n.clone(), v.clone()?))));
    view
}

/// Records, before a try changes headers, the client's value of each
/// header it changes that no earlier try did; returns whether `saved` grew
/// (it then needs publishing for the next try). `client`: the client's value.
pub fn save_client_headers(saved: &mut SavedHeaders, edits: &crate::proxy::HeaderEdits, client: &dyn Fn(&str) -> Option<String>) -> bool {
    let mut touched: Vec<&str> = edits.remove.iter().map(String::as_str).chain(edits.set.iter().map(|(n, _)| n.as_str())).collect();
    if edits.path.is_some() {
        touched.push(":path");
    }
    if edits.authority.is_some() {
        touched.push(":authority");
    }
    let mut grew = false;
    for name in touched {
        if !saved.iter().any(|(n, _)| n == name) {
            saved.push((name.to_string(), client(name)));
            grew = true;
        }
    }
    grew
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    fn config(json: &str) -> Result<AdvancedConfig, ConfigError> {
        AdvancedConfig::from_json(json.as_bytes(), &|_| Some("secret".into()))
    }

    const TARGETS: &str = r#"[
        {"model": {"provider": "openai", "name": "gpt-4o"}, "auth": {"header_name": "Authorization", "header_value": "Bearer a"}, "weight": 70},
        {"model": {"provider": "anthropic", "name": "claude"}, "auth": {"header_name": "x-api-key", "header_value": "b"}, "weight": 25},
        {"model": {"provider": "mistral", "name": "m"}, "auth": {"header_name": "Authorization", "header_value": "Bearer c"}, "weight": 5, "logging": {"log_statistics": true}}
    ]"#;

    fn with(balancer: &str) -> AdvancedConfig {
        config(&format!(r#"{{"balancer": {balancer}, "targets": {TARGETS}}}"#)).unwrap()
    }

    #[test]
    fn router_headers_replace_the_clients_and_name_each_try() {
        let cfg = AdvancedConfig::from_json(br#"{"balancer":{"retries":2,"failover_criteria":["error","http_429"],"read_timeout":1500},"targets":[{"model":{"provider":"openai","name":"a"}},{"model":{"provider":"openai","name":"b"}}]}"#, &|_| None).unwrap();
        let client = vec![("x-ai-try-0".into(), "1".into()), ("x-envoy-max-retries".into(), "99".into()), ("x-keep".into(), "v".into())];
        let h = cfg.router_headers(client, &[1, 0]);
        let get = |n: &str| h.iter().filter(|(k, _)| k == n).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
        assert_eq!(get("x-keep"), ["v"]);
        assert_eq!((get("x-ai-try-0"), get("x-ai-try-1")), (vec!["1"], vec!["0"]), "the client's forged try header is gone");
        assert_eq!(get("x-envoy-max-retries"), [(cfg.tries - 1).to_string()]);
        assert_eq!(get("x-envoy-upstream-rq-per-try-timeout-ms"), ["1500"]);
        assert_eq!(get("x-envoy-attempt-count"), ["0"]);
    }

    #[test]
    fn the_try_log_grows_one_record_at_a_time() {
        let a = TryRecord { target: 0, status: 429, ..Default::default() };
        let b = TryRecord { target: 1, status: 200, ..Default::default() };
        let log = append_try(&append_try("", &a), &b);
        assert_eq!(parse_tries(&log), vec![a, b]);
        assert!(check_upstream_configuration(b" {} ").is_ok() && check_upstream_configuration(b"").is_ok());
        assert_eq!(check_upstream_configuration(br#"{"targets":[]}"#).unwrap_err().path, ".");
    }

    #[test]
    fn kong_fields_parse_with_defaults() {
        let c = with("{}");
        assert_eq!(c.algorithm, Algorithm::RoundRobin);
        assert_eq!(c.tries, 6);
        assert_eq!(c.retry_on, "connect-failure,refused-stream,reset");
        assert_eq!(c.retriable_status_codes, "");
        assert_eq!(c.hash_header, "x-kong-llm-request-id");
        assert_eq!(c.targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["openai", "anthropic", "mistral"]);
    }

    #[test]
    fn failover_criteria_become_the_routers_retry_policy() {
        let c = with(r#"{"failover_criteria": ["http_429", "http_503", "error", "http_429"], "read_timeout": 1500}"#);
        assert_eq!(c.retry_on, "connect-failure,refused-stream,reset,retriable-status-codes");
        assert_eq!(c.retriable_status_codes, "429,503");
        assert_eq!(c.per_try_timeout_ms, Some(1500));
    }

    #[test]
    fn bad_configs_name_their_field() {
        let cases = [
            (r#"{"balancer": {"algorithm": "random"}, "targets": []}"#, "balancer.algorithm"),
            (r#"{"balancer": {"failover_criteria": ["http_200"]}, "targets": [{"model": {"provider": "openai"}}]}"#, "balancer.failover_criteria[0]"),
            (r#"{"balancer": {"retries": 99}, "targets": [{"model": {"provider": "openai"}}]}"#, "balancer.retries"),
            (r#"{"targets": []}"#, "targets"),
            (r#"{"targets": [{"model": {"provider": "openai"}, "weight": 0}]}"#, "targets[0].weight"),
            (r#"{"targets": [{"model": {"provider": "openai"}}, {"model": {"provider": "nope"}}]}"#, "targets[1].model.provider"),
            (r#"{"targets": [{"model": {"provider": "openai", "options": {"temperature": 9}}}]}"#, "targets[0].model.options.temperature"),
            (r#"{"targets": [{"model": {"provider": "openai"}, "name": "a b"}]}"#, "targets[0].name"),
            (r#"{"targets": [{"model": {"provider": "openai"}}, {"model": {"provider": "openai"}, "route_type": "llm/v1/embeddings"}]}"#, "targets[1].route_type"),
            (r#"{"targets": [{"model": {"provider": "openai"}, "extra": 1}]}"#, "targets[0].extra"),
        ];
        for (json, path) in cases {
            let err = config(json).unwrap_err();
            assert!(err.path.starts_with(path), "{json}: {err}");
        }
    }

    #[test]
    fn claude_clients_fall_over_too() {
        let c = config(r#"{"llm_format": "anthropic", "targets": [{"model": {"provider": "anthropic", "name": "claude"}}, {"model": {"provider": "bedrock", "name": "b", "options": {"bedrock": {"aws_region": "us-east-1"}}}, "auth": {"aws_access_key_id": "a", "aws_secret_access_key": "s"}}]}"#).unwrap();
        assert!(c.targets.iter().all(|t| t.proxy.llm_format == LlmFormat::Anthropic));
        let err = config(r#"{"llm_format": "anthropic", "targets": [{"model": {"provider": "openai"}, "route_type": "llm/v1/embeddings"}]}"#).unwrap_err();
        assert_eq!(err.path, "targets[0].llm_format");
    }

    #[test]
    fn repeated_providers_get_numbered_names() {
        let c = config(r#"{"targets": [{"model": {"provider": "openai"}}, {"model": {"provider": "openai"}}, {"model": {"provider": "cohere"}}]}"#).unwrap();
        assert_eq!(c.targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["openai-0", "openai-1", "cohere"]);
    }

    #[test]
    fn weighted_round_robin_is_exact_per_cycle_and_spread_out() {
        let c = with("{}");
        let mut hits = [0u32; 3];
        for n in 0..1000 {
            hits[c.order(n, &[], None)[0] as usize] += 1;
        }
        assert_eq!(hits, [700, 250, 50]);
        // Smooth: the light target never waits a whole cycle's worth.
        let firsts: Vec<u8> = (0..20).map(|n| c.order(n, &[], None)[0]).collect();
        assert!(firsts.iter().filter(|t| **t == 1).count() >= 4, "{firsts:?}");
    }

    #[test]
    fn every_order_holds_each_target_once() {
        for algorithm in ["round-robin", "priority", "lowest-latency", "lowest-usage", "consistent-hashing"] {
            let c = with(&format!(r#"{{"algorithm": "{algorithm}"}}"#));
            for n in 0..50 {
                let mut o = c.order(n, &[Some(3.0), None, Some(1.0)], Some("user-7"));
                o.sort_unstable();
                assert_eq!(o, [0, 1, 2], "{algorithm}");
            }
        }
    }

    #[test]
    fn tries_wrap_around_the_order() {
        assert_eq!(AdvancedConfig::target_of_try(&[2, 0], 0), Some(2));
        assert_eq!(AdvancedConfig::target_of_try(&[2, 0], 3), Some(0));
        assert_eq!(AdvancedConfig::target_of_try(&[], 0), None);
    }

    #[test]
    fn priority_tries_the_lowest_group_first() {
        let c = config(
            r#"{"balancer": {"algorithm": "priority"}, "targets": [
                {"model": {"provider": "openai"}, "priority": 2},
                {"model": {"provider": "cohere"}, "priority": 1, "weight": 50},
                {"model": {"provider": "mistral"}, "priority": 1, "weight": 50}]}"#,
        )
        .unwrap();
        for n in 0..10 {
            let o = c.order(n, &[], None);
            assert_ne!(o[0], 0);
            assert_eq!(o[2], 0, "the backup group comes last");
        }
        let firsts: Vec<u8> = (0..4).map(|n| c.order(n, &[], None)[0]).collect();
        assert!(firsts.contains(&1) && firsts.contains(&2), "the primary group is balanced: {firsts:?}");
    }

    #[test]
    fn lowest_scores_go_first_and_unknown_targets_are_measured() {
        let c = with(r#"{"algorithm": "lowest-latency"}"#);
        assert_eq!(c.order(0, &[Some(50.0), Some(10.0), Some(30.0)], None), [1, 2, 0]);
        assert_eq!(c.order(0, &[Some(50.0), None, Some(30.0)], None)[0], 1);
    }

    #[test]
    fn consistent_hashing_is_sticky_and_spreads_keys() {
        let c = with(r#"{"algorithm": "consistent-hashing"}"#);
        let mut firsts = std::collections::BTreeSet::new();
        for user in 0..200 {
            let key = format!("user-{user}");
            let first = c.order(0, &[], Some(&key));
            assert_eq!(first, c.order(99, &[], Some(&key)), "same key, same order, whatever the counter");
            firsts.insert(first[0]);
        }
        assert_eq!(firsts.len(), 3);
    }

    #[test]
    fn consistent_hashing_moves_only_the_keys_of_a_lost_target() {
        let all = with(r#"{"algorithm": "consistent-hashing"}"#);
        // The same targets, the third unusable (its secret is not set).
        let c = AdvancedConfig::from_json(
            format!(r#"{{"balancer": {{"algorithm": "consistent-hashing"}}, "targets": {}}}"#, TARGETS.replace("Bearer c", "{vault://env/UNSET}")).as_bytes(),
            &|name| (name != "UNSET").then(|| "k".to_string()),
        )
        .unwrap();
        for user in 0..300 {
            let key = format!("user-{user}");
            let before = all.order(0, &[], Some(&key));
            let after = c.order(0, &[], Some(&key));
            assert!(!after.contains(&2));
            if before[0] != 2 {
                assert_eq!(after[0], before[0], "{key} moved although its target stayed");
            }
        }
    }

    #[test]
    fn usage_window_slides() {
        let w = UsageWindow::default().add(600, 100.0);
        assert_eq!(w.estimate(610), 100.0);
        let w = w.add(665, 10.0); // next window: the first is "previous"
        assert!((w.estimate(690) - (10.0 + 100.0 * 0.5)).abs() < 1e-9);
        assert_eq!(w.estimate(800), 0.0);
        assert_eq!(UsageWindow::parse(w.encode().as_bytes()), Some(w));
        assert_eq!(UsageWindow::parse(b"1 x 2"), None);
    }

    #[test]
    fn latency_samples_follow_the_strategy_and_punish_failures() {
        let tpot = with("{}");
        let e2e = with(r#"{"latency_strategy": "e2e"}"#);
        let ok = TryRecord { target: 0, status: 200, latency_ms: 1000, usage: Some(Usage::new(10, 50)), cost: None };
        assert_eq!(tpot.latency_sample(&ok, None), 20.0);
        assert_eq!(e2e.latency_sample(&ok, None), 1000.0);
        let failed = TryRecord { status: 429, latency_ms: 3, ..ok };
        assert!(tpot.latency_sample(&failed, Some(20.0)) >= FAILURE_PENALTY);
        assert_eq!(ewma(None, 10.0), 10.0);
        assert!((ewma(Some(10.0), 20.0) - 13.0).abs() < 1e-9);
    }

    #[test]
    fn plans_round_trip() {
        assert_eq!(parse_plan(&encode_plan("chat", &[2, 0, 1])), Some(("chat", vec![2, 0, 1])));
        assert_eq!(parse_plan("chat "), None);
        assert_eq!(parse_plan("chat 1,x"), None);
    }

    #[test]
    fn a_later_try_starts_from_the_clients_headers() {
        use crate::proxy::HeaderEdits;
        let client = vec![(":path".to_string(), "/v1/chat/completions".to_string()), ("authorization".to_string(), "Bearer client".to_string())];
        let lookup = |h: &[(String, String)], n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        // Try 1 (OpenAI-like): sets its key and a path.
        let mut saved = SavedHeaders::new();
        let first = HeaderEdits { path: Some("/openai".into()), set: vec![("authorization".into(), "Bearer ours".into())], ..Default::default() };
        assert!(save_client_headers(&mut saved, &first, &|n| lookup(&client, n)));
        let mut sent = client.clone();
        first.apply_to(&mut sent);
        // Try 2 sees try 1's changes (Envoy keeps them); its view is the client's.
        let view = client_view(sent, &saved);
        assert_eq!(lookup(&view, ":path").as_deref(), Some("/v1/chat/completions"));
        assert_eq!(lookup(&view, "authorization").as_deref(), Some("Bearer client"));
        // Try 2 (Anthropic-like): its own key header, the client's bearer removed.
        let second = HeaderEdits { set: vec![("x-api-key".into(), "k".into())], remove: vec!["authorization".into()], ..Default::default() };
        assert!(save_client_headers(&mut saved, &second, &|n| lookup(&view, n)), "x-api-key is new");
        let mut sent = view.clone();
        second.apply_to(&mut sent);
        assert_eq!(lookup(&sent, ":path").as_deref(), Some("/v1/chat/completions"), "try 1's path is gone");
        assert_eq!(lookup(&sent, "authorization"), None);
        // Try 3 (OpenAI-like again) does not inherit try 2's key.
        let third = client_view(sent, &saved);
        assert_eq!(lookup(&third, "x-api-key"), None);
        assert!(!save_client_headers(&mut saved, &first, &|n| lookup(&third, n)));
    }

    #[test]
    fn try_records_round_trip_and_report() {
        let c = with("{}");
        let records = vec![
            TryRecord { target: 0, status: 429, latency_ms: 4, usage: None, cost: None },
            TryRecord { target: 1, status: 0, latency_ms: 0, usage: None, cost: None },
            TryRecord { target: 2, status: 200, latency_ms: 40, usage: Some(Usage::new(3, 4)), cost: Some(0.5) },
        ];
        let text = encode_tries(&records);
        assert_eq!(parse_tries(&text), records);
        assert_eq!(parse_tries("garbage,,1:2"), vec![]);
        let r = c.report(&records);
        assert!(r.properties.contains(&("ai.target", "mistral".into())));
        assert!(r.properties.contains(&("ai.tries", "3".into())));
        assert!(r.properties.contains(&("ai.failed_targets", "openai:429,anthropic:error".into())));
        assert!(r.counters.contains(&("ai_balancer_fallbacks_total.from.openai.to.anthropic".into(), 1)));
        assert!(r.counters.contains(&("ai_balancer_tries_total.target.mistral.outcome.success".into(), 1)));
        assert!(!r.properties.iter().any(|(k, _)| *k == "ai.fallback_skipped"), "a served request skipped nothing");
        // No target logs statistics: the same counters, no access-log keys.
        let quiet = config(r#"{"targets": [{"model": {"provider": "openai"}}, {"model": {"provider": "anthropic", "name": "c"}}, {"model": {"provider": "mistral"}}]}"#).unwrap();
        let r = quiet.report(&records);
        assert!(r.properties.is_empty());
        assert!(r.counters.contains(&("ai_balancer_tries_total.target.mistral.outcome.success".into(), 1)));
    }

    #[test]
    fn a_retriable_failure_with_tries_left_is_a_skipped_fallback() {
        let c = with(r#"{"failover_criteria": ["http_429", "error"], "retries": 2}"#);
        let failed = |status| TryRecord { target: 0, status, ..Default::default() };
        let skipped = |records: &[TryRecord]| c.report(records).properties.into_iter().find(|(k, _)| *k == "ai.fallback_skipped").map(|(_, v)| v);
        assert_eq!(skipped(&[failed(429)]).as_deref(), Some("openai:429"));
        assert_eq!(skipped(&[failed(0)]).as_deref(), Some("openai:error"));
        assert!(c.report(&[failed(429)]).counters.contains(&("ai_balancer_fallback_skipped_total.target.openai".into(), 1)));
        // Not a failover criterion: the router was right to stop.
        assert_eq!(skipped(&[failed(400)]), None);
        // Every planned try was made.
        assert_eq!(skipped(&[failed(429), failed(429), failed(429)]), None);
        // No retry policy at all: one try was the plan.
        let once = with(r#"{"failover_criteria": [], "retries": 2}"#);
        assert!(!once.report(&[failed(429)]).properties.iter().any(|(k, _)| *k == "ai.fallback_skipped"));
    }

    #[test]
    fn the_request_counter_is_exact_when_other_workers_win_races() {
        use crate::store::MapStore;
        let store = MapStore::default();
        assert_eq!(AdvancedConfig::next_request(&store, "b"), Some(0));
        assert_eq!(AdvancedConfig::next_request(&store, "b"), Some(1));
        // Another worker counts 7 first, twice: we get the number after it.
        let store = MapStore { theirs: 7u64.to_le_bytes().to_vec(), ..Default::default() };
        store.lose.set(2);
        assert_eq!(AdvancedConfig::next_request(&store, "b"), Some(7));
        assert_eq!(store.get(&shared_key("b", "counter")).0, Some(8u64.to_le_bytes().to_vec()));
        // Others keep winning: no number (the glue counts locally then).
        store.lose.set(100);
        assert_eq!(AdvancedConfig::next_request(&store, "b"), None);
    }

    #[test]
    fn the_plan_rotates_on_the_shared_count_and_falls_back_to_the_workers_own() {
        use crate::store::MapStore;
        let c = config(r#"{"balancer": {"algorithm": "round-robin"}, "targets": [{"model": {"provider": "openai", "name": "a"}}, {"model": {"provider": "openai", "name": "b"}}]}"#).unwrap();
        let (store, local) = (MapStore::default(), std::cell::Cell::new(0));
        let first = |s: &MapStore| c.plan(s, "b", None, &local, &|| 0)[0];
        let shared: Vec<u8> = (0..4).map(|_| first(&store)).collect();
        assert_eq!(shared, [0, 1, 0, 1], "one rotation across workers");
        assert_eq!(local.get(), 0, "the local count is left alone while the shared one works");
        store.lose.set(1000);
        assert_eq!((first(&store), first(&store)), (0, 1), "others keep winning: this worker rotates on its own");
        assert_eq!(local.get(), 2);
    }

    #[test]
    fn statistics_are_learned_into_the_store_and_scored_from_it() {
        use crate::store::MapStore;
        let c = with(r#"{"algorithm": "lowest-latency"}"#);
        let store = MapStore::default();
        let served = |target, latency_ms| TryRecord { target, status: 200, latency_ms, usage: Some(Usage::new(10, 10)), cost: None };
        let gauges = c.learn(&store, "b", &[served(0, 100), served(1, 30)], 0);
        assert_eq!(gauges.len(), 2);
        let scores = c.scores(&store, "b", 0);
        assert!(scores[1].unwrap() < scores[0].unwrap(), "{scores:?}");
        assert_eq!(scores[2], None, "no statistics yet");
        // A lost race is retried: the sample still lands.
        let racing = MapStore { theirs: b"50".to_vec(), ..Default::default() };
        racing.lose.set(1);
        c.learn(&racing, "b", &[served(0, 100)], 0);
        // 10 ms per token, averaged into the other worker's 50.
        assert!(c.scores(&racing, "b", 0)[0].is_some_and(|v| v > 10.0 && v < 50.0));
        let u = with(r#"{"algorithm": "lowest-usage"}"#);
        u.learn(&store, "u", &[served(2, 1)], 600);
        assert!(u.scores(&store, "u", 600)[2].is_some_and(|v| v > 0.0));
    }
}