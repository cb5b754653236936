//! ai-token-ratelimit: token (or cost) budgets per policy and partition,
//! with fixed or sliding windows. Pure logic: the filter keeps the counters
//! in proxy-wasm shared data and updates them with compare-and-swap.
//! Counts and times come from shared data and the host clock, so every
//! operation on them is checked or saturating.
#![deny(clippy::arithmetic_side_effects)]

use crate::config::{check_range, parse_strict, ConfigError};
use crate::error::GatewayError;
use crate::openai::{Usage, UsageProbe};
use serde::Deserialize;

const MAX_POLICIES: usize = 32;
const MAX_LIMITS: usize = 8;
/// Cost budgets are counted in millionths of the currency unit.
const COST_SCALE: f64 = 1_000_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    TotalTokens,
    PromptTokens,
    CompletionTokens,
    Cost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WindowType {
    Fixed,
    #[default]
    Sliding,
}

/// Where the counters live (Kong's `strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Envoy's shared data: exact across one Envoy's workers.
    #[default]
    Local,
    /// A rate-limit service (Envoy's RLS protocol, counters in Redis),
    /// shared by every Envoy: the filter matches and partitions, and
    /// publishes one descriptor value per matched policy for Envoy's
    /// `envoy.filters.http.ratelimit`, which checks and charges.
    Cluster,
}

/// Window sizes a rate-limit service can count (its units).
pub const CLUSTER_WINDOWS: [(u64, &str); 5] = [(1, "second"), (60, "minute"), (3600, "hour"), (86_400, "day"), (604_800, "week")];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PartitionBy {
    /// One budget shared by everything the policy matches.
    #[default]
    None,
    /// One budget per consumer (from the trusted `consumer_header`).
    Consumer,
    /// One budget per value of `partition_header` (e.g. an API key).
    Header,
    /// One budget per client IP as Envoy sees it.
    Ip,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    pub name: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    #[serde(default)]
    pub header: Option<HeaderMatch>,
    #[serde(default)]
    pub consumer: Option<Vec<String>>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub model: Option<Vec<String>>,
    #[serde(default)]
    pub provider: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Tokens per window, or currency units for the cost strategy.
    pub limit: f64,
    /// Seconds.
    pub window_size: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: String,
    #[serde(default, rename = "match")]
    matches: Match,
    #[serde(default)]
    partition_by: PartitionBy,
    #[serde(default)]
    partition_header: Option<String>,
    limits: Vec<Limit>,
    #[serde(default)]
    tokens_count_strategy: Option<Strategy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    policies: Vec<RawPolicy>,
    #[serde(default)]
    consumer_header: Option<String>,
    #[serde(default)]
    strategy: Backend,
    #[serde(default)]
    window_type: Option<WindowType>,
    #[serde(default)]
    tokens_count_strategy: Strategy,
    #[serde(default)]
    input_cost: Option<f64>,
    #[serde(default)]
    output_cost: Option<f64>,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    hide_client_headers: bool,
    #[serde(default = "default_max_body")]
    max_request_body_size: u64,
}

fn default_max_body() -> u64 {
    crate::config::DEFAULT_MAX_REQUEST_BODY_SIZE
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub matches: Match,
    pub partition_by: PartitionBy,
    pub partition_header: Option<String>,
    /// (limit in counter units, window in ms)
    pub limits: Vec<(u64, u64)>,
    pub strategy: Strategy,
}

#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    pub strategy: Backend,
    pub policies: Vec<Policy>,
    pub consumer_header: Option<String>,
    pub window_type: WindowType,
    pub input_cost: f64,
    pub output_cost: f64,
    pub error_code: u16,
    pub error_message: String,
    pub hide_client_headers: bool,
    pub max_request_body_size: u64,
    /// Some policy matches on `model`: the body must be read first.
    pub needs_model: bool,
    /// Some policy matches on `provider` / partitions by IP.
    pub needs_provider: bool,
    pub needs_ip: bool,
    /// `PARTITION_SLOTS` (tests use fewer).
    pub partition_slots: u64,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
}

impl RateLimitConfig {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = parse_strict(bytes)?;
        if raw.policies.is_empty() || raw.policies.len() > MAX_POLICIES {
            return Err(ConfigError::new("policies", format!("needs 1 to {MAX_POLICIES} policies")));
        }
        let error_code = raw.error_code.unwrap_or(429);
        check_range("error_code", Some(error_code), 400, 599)?;
        check_range("max_request_body_size", Some(raw.max_request_body_size), 1, 128 * 1024 * 1024)?;
        check_range("input_cost", raw.input_cost, 0.0, 1e9)?;
        check_range("output_cost", raw.output_cost, 0.0, 1e9)?;
        if let Some(h) = &raw.consumer_header {
            if !crate::config::is_header_name(h) {
                return Err(ConfigError::new("consumer_header", "is not a valid header name"));
            }
        }
        let cluster = raw.strategy == Backend::Cluster;
        let window_type = match (raw.window_type, cluster) {
            (Some(WindowType::Sliding), true) => {
                return Err(ConfigError::new("window_type", "strategy cluster counts fixed windows only (a rate-limit service's units)"));
            }
            (Some(w), _) => w,
            (None, true) => WindowType::Fixed,
            (None, false) => WindowType::Sliding,
        };
        let mut policies: Vec<Policy> = Vec::new();
        for (i, p) in raw.policies.into_iter().enumerate() {
            let at = |f: &str| format!("policies[{i}].{f}");
            if !valid_name(&p.name) || policies.iter().any(|x| x.name == p.name) {
                return Err(ConfigError::new(at("name"), "must be a unique name of letters, digits, - and _"));
            }
            if p.limits.is_empty() || p.limits.len() > MAX_LIMITS {
                return Err(ConfigError::new(at("limits"), format!("needs 1 to {MAX_LIMITS} limits")));
            }
            let strategy = p.tokens_count_strategy.unwrap_or(raw.tokens_count_strategy);
            if strategy == Strategy::Cost && raw.input_cost.is_none() && raw.output_cost.is_none() {
                return Err(ConfigError::new(at("tokens_count_strategy"), "cost needs input_cost and/or output_cost"));
            }
            if cluster && strategy == Strategy::Cost {
                return Err(ConfigError::new(at("tokens_count_strategy"), "strategy cluster charges tokens (total, prompt or completion), not cost"));
            }
            let mut limits = Vec::new();
            for (j, l) in p.limits.iter().enumerate() {
                let lat = |f: &str| format!("policies[{i}].limits[{j}].{f}");
                check_range(&lat("window_size"), Some(l.window_size), 1, 366 * 86_400)?;
                check_range(&lat("limit"), Some(l.limit), 0.0, 1e15)?;
                if cluster {
                    if !CLUSTER_WINDOWS.iter().any(|(w, _)| *w == l.window_size) {
                        return Err(ConfigError::new(lat("window_size"), "strategy cluster takes 1, 60, 3600, 86400 or 604800 (a rate-limit service's units)"));
                    }
                    check_range(&lat("limit"), Some(l.limit), 0.0, f64::from(u32::MAX))?;
                    if p.limits.iter().take(j).any(|o| o.window_size == l.window_size) {
                        return Err(ConfigError::new(lat("window_size"), "strategy cluster takes one limit per window size and policy"));
                    }
                }
                let units = if strategy == Strategy::Cost { l.limit * COST_SCALE } else { l.limit };
                limits.push((units as u64, l.window_size.saturating_mul(1000)));
            }
            if p.partition_by == PartitionBy::Header && !p.partition_header.as_deref().is_some_and(crate::config::is_header_name) {
                return Err(ConfigError::new(at("partition_header"), "is required (a header name) with partition_by: header"));
            }
            if p.partition_by == PartitionBy::Consumer && raw.consumer_header.is_none() {
                return Err(ConfigError::new("consumer_header", "is required when a policy partitions by consumer"));
            }
            if p.matches.consumer.is_some() && raw.consumer_header.is_none() {
                return Err(ConfigError::new("consumer_header", "is required when a policy matches on consumer"));
            }
            if let Some(h) = &p.matches.header {
                if !crate::config::is_header_name(&h.name) {
                    return Err(ConfigError::new(at("match.header.name"), "is not a valid header name"));
                }
            }
            policies.push(Policy {
                name: p.name,
                matches: p.matches,
                partition_by: p.partition_by,
                partition_header: p.partition_header.map(|h| h.to_ascii_lowercase()),
                limits,
                strategy,
            });
        }
        let needs_model = policies.iter().any(|p| p.matches.model.is_some());
        let needs_provider = policies.iter().any(|p| p.matches.provider.is_some());
        let needs_ip = policies.iter().any(|p| p.partition_by == PartitionBy::Ip);
        Ok(RateLimitConfig {
            strategy: raw.strategy,
            policies,
            consumer_header: raw.consumer_header.map(|h| h.to_ascii_lowercase()),
            window_type,
            input_cost: raw.input_cost.unwrap_or(0.0),
            output_cost: raw.output_cost.unwrap_or(0.0),
            error_code,
            error_message: raw.error_message.unwrap_or_else(|| "AI token rate limit exceeded for this client".to_string()),
            hide_client_headers: raw.hide_client_headers,
            max_request_body_size: raw.max_request_body_size,
            needs_model,
            needs_provider,
            needs_ip,
            partition_slots: PARTITION_SLOTS,
        })
    }

    /// Policies that apply to a request, with their partition key. All
    /// matching policies apply, so budgets compose (org-wide and per key).
    pub fn matching(&self, req: &RequestFacts) -> Vec<(usize, String)> {
        let consumer = self.consumer_header.as_deref().and_then(|h| (req.header)(h));
        self.policies
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                let m = &p.matches;
                m.header.as_ref().is_none_or(|h| (req.header)(&h.name.to_ascii_lowercase()).is_some_and(|v| h.values.contains(&v)))
                    && m.consumer.as_ref().is_none_or(|c| consumer.as_ref().is_some_and(|v| c.contains(v)))
                    && m.path.as_ref().is_none_or(|prefix| req.path.starts_with(prefix.as_str()))
                    && m.model.as_ref().is_none_or(|ms| req.model.is_some_and(|x| ms.iter().any(|m| m == x)))
                    && m.provider.as_ref().is_none_or(|ps| req.provider.is_some_and(|x| ps.iter().any(|p| p == x)))
            })
            .map(|(i, p)| {
                let partition = match p.partition_by {
                    PartitionBy::None => String::new(),
                    PartitionBy::Consumer => consumer.clone().unwrap_or_default(),
                    PartitionBy::Header => p.partition_header.as_deref().and_then(|h| (req.header)(h)).unwrap_or_default(),
                    PartitionBy::Ip => req.ip.unwrap_or_default().to_string(),
                };
                (i, partition)
            })
            .collect()
    }

    /// What a response costs a policy, in its counter units.
    pub fn charge_for(&self, policy: &Policy, usage: &Usage) -> u64 {
        match policy.strategy {
            Strategy::TotalTokens => usage.total_tokens.max(usage.prompt_tokens.saturating_add(usage.completion_tokens)),
            Strategy::PromptTokens => usage.prompt_tokens,
            Strategy::CompletionTokens => usage.completion_tokens,
            Strategy::Cost => {
                // Prices are per million tokens and budgets in millionths:
                // the scales cancel out.
                let cost = usage.prompt_tokens as f64 * self.input_cost + usage.completion_tokens as f64 * self.output_cost;
                cost.ceil().clamp(0.0, u64::MAX as f64) as u64
            }
        }
    }

    pub fn rejection(&self) -> GatewayError {
        GatewayError::with_status(self.error_code, self.error_message.clone()).with_code("rate_limit_exceeded")
    }
}

/// What the matcher needs to know of a request.
pub struct RequestFacts<'a> {
    pub header: &'a dyn Fn(&str) -> Option<String>,
    pub path: &'a str,
    pub model: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub ip: Option<&'a str>,
}

/// Cluster strategy: the filter-state key naming a matched policy's
/// partition, read by Envoy's ratelimit filter (`wasm.` + this).
pub fn cluster_state_key(policy: &str) -> String {
    format!("ai.ratelimit.{policy}")
}

/// Cluster strategy: the descriptor value of a partition. Hashed like the
/// local counter keys, so API keys never reach the service or Redis; never
/// empty (Envoy drops a descriptor whose value is empty).
pub fn cluster_partition(partition: &str) -> String {
    if partition.is_empty() {
        return "all".to_string();
    }
    let digest = crate::digest::sha256_hex(partition.as_bytes());
    digest.get(..32).unwrap_or_default().to_string()
}

/// A partition as counter keys name it (hashed once per policy, not per limit).
fn partition_digest(partition: &str) -> String {
    let mut digest = crate::digest::sha256_hex(partition.as_bytes());
    digest.truncate(32);
    digest
}

/// Counter slots per (policy, limit). Shared data has no delete: a key per
/// partition would grow without bound (every new API key, and every random
/// one a client makes up). A partition owns a slot while its windows last;
/// a slot whose windows are over is taken by the next partition hashed there.
pub const PARTITION_SLOTS: u64 = 16_384;
/// Slots tried from a partition's home slot before it shares one with a
/// partition still counting (its count then includes the other's).
const PROBES: u64 = 8;

fn slot_key(policy: &str, window_ms: u64, slot: u64) -> String {
    format!("ai-ratelimit|{policy}|{window_ms}|{slot}")
}

/// A counter as stored: its window, then the digest of the partition that owns it.
fn record(w: &Window, owner: &str) -> Vec<u8> {
    let mut out = w.encode().to_vec();
    out.extend_from_slice(owner.as_bytes());
    out
}

fn owner(data: &[u8]) -> &[u8] {
    data.get(24..).unwrap_or_default()
}

/// Whether nothing in the window counts any more (its slot may be reused).
fn is_over(w: Window, now_ms: u64, window_ms: u64) -> bool {
    let w = w.at(now_ms, window_ms);
    w.current == 0 && w.previous == 0
}

/// One counter: its current window's start and the counts of the current
/// and the previous window. 24 bytes in shared data; the entry is rolled
/// over in place, so old windows never pile up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub start_ms: u64,
    pub current: u64,
    pub previous: u64,
}

impl Window {
    pub fn decode(bytes: Option<&[u8]>) -> Window {
        let word = |i: usize| -> u64 {
            bytes.and_then(|b| b.chunks_exact(8).nth(i)).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes).unwrap_or(0)
        };
        Window { start_ms: word(0), current: word(1), previous: word(2) }
    }

    pub fn encode(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        for (i, v) in [self.start_ms, self.current, self.previous].iter().enumerate() {
            if let Some(slot) = out.chunks_exact_mut(8).nth(i) {
                slot.copy_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// The counter as of `now`, its windows rolled forward.
    pub fn at(self, now_ms: u64, window_ms: u64) -> Window {
        let window_ms = window_ms.max(1);
        let start = now_ms.saturating_sub(now_ms.checked_rem(window_ms).unwrap_or(0));
        if start == self.start_ms {
            self
        } else if self.start_ms.checked_add(window_ms) == Some(start) {
            Window { start_ms: start, current: 0, previous: self.current }
        } else if start > self.start_ms {
            Window { start_ms: start, current: 0, previous: 0 }
        } else {
            self // a clock step back: keep counting in the newer window
        }
    }

    /// Units used as of `now`: the current window, plus for sliding windows
    /// the previous one weighted by how much of it still overlaps.
    pub fn used(self, now_ms: u64, window_ms: u64, kind: WindowType) -> u64 {
        let w = self.at(now_ms, window_ms);
        match kind {
            WindowType::Fixed => w.current,
            WindowType::Sliding => {
                let elapsed = now_ms.saturating_sub(w.start_ms).min(window_ms);
                let weight = window_ms.saturating_sub(elapsed) as f64 / window_ms.max(1) as f64;
                w.current.saturating_add((w.previous as f64 * weight) as u64)
            }
        }
    }

    pub fn charged(self, now_ms: u64, window_ms: u64, amount: u64) -> Window {
        let mut w = self.at(now_ms, window_ms);
        w.current = w.current.saturating_add(amount);
        w
    }

    /// Milliseconds until usage drops below `limit` (0 if it already is).
    pub fn retry_after_ms(self, now_ms: u64, window_ms: u64, limit: u64, kind: WindowType) -> u64 {
        if self.used(now_ms, window_ms, kind) < limit {
            return 0;
        }
        let w = self.at(now_ms, window_ms);
        let next = w.start_ms.saturating_add(window_ms);
        match kind {
            WindowType::Fixed => next.saturating_sub(now_ms),
            WindowType::Sliding => {
                if w.current < limit && w.previous > 0 {
                    // previous * (1 - f) + current < limit  =>  f > 1 - (limit - current) / previous
                    let f = 1.0 - limit.saturating_sub(w.current) as f64 / w.previous as f64;
                    let offset = (f * window_ms as f64).ceil() as u64;
                    w.start_ms.saturating_add(offset).saturating_add(1).saturating_sub(now_ms)
                } else {
                    // Next window: current * (1 - f) < limit.
                    let f = if w.current == 0 { 0.0 } else { 1.0 - limit as f64 / w.current as f64 };
                    let offset = (f.max(0.0) * window_ms as f64).ceil() as u64;
                    next.saturating_add(offset).saturating_add(1).saturating_sub(now_ms)
                }
            }
        }
    }

    /// Milliseconds until the current window ends.
    pub fn reset_ms(now_ms: u64, window_ms: u64) -> u64 {
        let window_ms = window_ms.max(1);
        window_ms.saturating_sub(now_ms.checked_rem(window_ms).unwrap_or(0))
    }
}

/// One limit's state for client headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitState {
    pub window_s: u64,
    pub limit: u64,
    pub remaining: u64,
    pub reset_s: u64,
}

/// Response headers for the limits of the matched policies: per window size
/// the most restrictive one, and the IETF draft headers for the single most
/// restrictive limit.
pub fn client_headers(states: &[LimitState], retry_after_s: Option<u64>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut windows: Vec<u64> = states.iter().map(|s| s.window_s).collect();
    windows.sort_unstable();
    windows.dedup();
    for w in windows {
        if let Some(s) = states.iter().filter(|s| s.window_s == w).min_by_key(|s| s.remaining) {
            out.push((format!("x-ai-ratelimit-limit-{w}"), s.limit.to_string()));
            out.push((format!("x-ai-ratelimit-remaining-{w}"), s.remaining.to_string()));
        }
    }
    if let Some(tightest) = states.iter().min_by_key(|s| (s.remaining, s.reset_s)) {
        // A spent budget resets when a request is admitted again: with a
        // sliding window that is Retry-After, later than the window's end.
        let reset = retry_after_s.filter(|_| tightest.remaining == 0).unwrap_or(tightest.reset_s);
        out.push(("x-ai-ratelimit-reset".into(), reset.to_string()));
        out.push(("ratelimit-limit".into(), tightest.limit.to_string()));
        out.push(("ratelimit-remaining".into(), tightest.remaining.to_string()));
        out.push(("ratelimit-reset".into(), reset.to_string()));
    }
    if let Some(r) = retry_after_s {
        out.push(("retry-after".into(), r.to_string()));
    }
    out
}

/// Reads usage from an OpenAI-format answer as it passes, for routes with
/// no ai-proxy to publish it: a JSON body (kept up to a bound) or the usage
/// chunk of an SSE stream.
pub enum UsageTap {
    Json { copy: Vec<u8>, max: usize },
    Sse(crate::sse::SseDecoder),
}

impl UsageTap {
    /// The tap for a response's content type, if it can carry usage.
    pub fn for_content_type(content_type: &str, max: usize) -> Option<UsageTap> {
        let ct = content_type.to_ascii_lowercase();
        if ct.starts_with("text/event-stream") {
            Some(UsageTap::Sse(crate::sse::SseDecoder::new(max)))
        } else if ct.contains("json") {
            Some(UsageTap::Json { copy: Vec::new(), max })
        } else {
            None
        }
    }

    /// One body chunk; returns the usage once it is known.
    pub fn push(&mut self, chunk: &[u8], end_of_stream: bool) -> Option<Usage> {
        match self {
            UsageTap::Json { copy, max } => {
                if copy.len().saturating_add(chunk.len()) <= *max {
                    copy.extend_from_slice(chunk);
                }
                end_of_stream.then(|| serde_json::from_slice::<UsageProbe>(copy).ok()?.usage).flatten()
            }
            UsageTap::Sse(decoder) => {
                let mut events = Vec::new();
                decoder.push(chunk, &mut events);
                if end_of_stream {
                    decoder.finish(&mut events);
                }
                events.iter().rev().find_map(|e| serde_json::from_str::<UsageProbe>(&e.data).ok()?.usage)
            }
        }
    }
}

/// The usage to charge: what the answer reported plus the AI transformers'
/// own LLM calls on the same request.
pub fn total_usage(served: Option<Usage>, transformers: &[Usage]) -> Option<Usage> {
    transformers.iter().fold(served, |sum, u| {
        let mut total = sum.unwrap_or_default();
        total.prompt_tokens = total.prompt_tokens.saturating_add(u.prompt_tokens);
        total.completion_tokens = total.completion_tokens.saturating_add(u.completion_tokens);
        total.total_tokens = total.total_tokens.saturating_add(u.total_tokens);
        Some(total)
    })
}

/// The request's usage to charge, and whether it is (partly) an estimate:
/// what ai-proxy published (`ai.usage`: "prompt,completion,total[,estimated]")
/// or else what the answer itself reported, plus each AI transformer's LLM
/// call ("prompt,completion,total").
pub fn request_usage(published: Option<&str>, from_answer: Option<Usage>, transformers: &[Option<String>]) -> Option<(Usage, bool)> {
    let served = published.and_then(crate::usage::parse_usage);
    let estimated = served.is_some_and(|(_, e)| e);
    let served = served.map(|(u, _)| u).or(from_answer);
    let transformers: Vec<Usage> = transformers.iter().flatten().filter_map(|v| crate::usage::parse_usage(v).map(|(u, _)| u)).collect();
    Some((total_usage(served, &transformers)?, estimated))
}

/// The client's IP from Envoy's `source.address` (`ip:port`, IPv6 in brackets).
pub fn client_ip(source_address: &str) -> &str {
    match source_address.rsplit_once(':') {
        Some((host, _)) => host.trim_matches(['[', ']']),
        None => source_address,
    }
}

impl RateLimitConfig {
    /// The named policies, comma-separated, for logs and `ai.ratelimit`.
    pub fn policy_names(&self, indices: impl Iterator<Item = usize>) -> String {
        indices.filter_map(|i| self.policies.get(i)).map(|p| p.name.as_str()).collect::<Vec<_>>().join(",")
    }
}

pub use crate::store::CounterStore;

pub mod request;

/// One limit of one matched policy, as counted for this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub policy: usize,
    pub window_ms: u64,
    pub key: String,
    /// The partition's digest: the slot's owner.
    pub owner: String,
}

/// What admission decided, and what the response side needs later.
#[derive(Debug, Default, PartialEq)]
pub struct Admission {
    /// The counters to charge when the request ends (empty when refused).
    pub counters: Vec<Counter>,
    /// Every checked limit, for the client's headers.
    pub states: Vec<LimitState>,
    /// Policies whose budget is spent; empty when the request may go on.
    pub rejected_by: Vec<usize>,
    pub retry_after_s: Option<u64>,
}

impl Admission {
    pub fn rejected(&self) -> bool {
        !self.rejected_by.is_empty()
    }
}

/// Writes lost to other workers are retried this often before giving up.
const CAS_RETRIES: usize = 64;

impl RateLimitConfig {
    /// Checks every limit of every matched policy against the store: the
    /// request goes on only if none is exhausted. Counters are created
    /// here, before any charge on them can exist (two workers racing both
    /// write zero).
    pub fn admit(&self, matched: &[(usize, String)], store: &dyn CounterStore, now_ms: u64) -> Admission {
        let mut a = Admission::default();
        let mut retry_after_ms: Option<u64> = None;
        for (policy_idx, partition) in matched {
            let Some(policy) = self.policies.get(*policy_idx) else { continue };
            let digest = partition_digest(partition);
            for &(limit, window_ms) in &policy.limits {
                let (key, w) = self.slot(store, &policy.name, window_ms, &digest, now_ms);
                let used = w.used(now_ms, window_ms, self.window_type);
                let reset_ms = Window::reset_ms(now_ms, window_ms);
                a.states.push(LimitState {
                    window_s: window_ms / 1000,
                    limit,
                    remaining: limit.saturating_sub(used),
                    reset_s: reset_ms.div_ceil(1000),
                });
                if used >= limit {
                    let wait = w.retry_after_ms(now_ms, window_ms, limit, self.window_type);
                    let cap = wait.max(reset_ms).max(1);
                    retry_after_ms = Some(retry_after_ms.unwrap_or(0).max(wait).max(1).min(cap));
                    if !a.rejected_by.contains(policy_idx) {
                        a.rejected_by.push(*policy_idx);
                    }
                }
                a.counters.push(Counter { policy: *policy_idx, window_ms, key, owner: digest.clone() });
            }
        }
        if let Some(ms) = retry_after_ms {
            a.retry_after_s = Some(ms.div_ceil(1000));
            a.counters.clear(); // nothing is charged for a refused request
        }
        a
    }

    /// The slot counting `digest`'s partition for one limit, and its window:
    /// the slot it owns, else a free or finished one (claimed as new), else
    /// its home slot, shared.
    fn slot(&self, store: &dyn CounterStore, policy: &str, window_ms: u64, digest: &str, now_ms: u64) -> (String, Window) {
        let slots = self.partition_slots.max(1);
        let home = digest.get(..16).and_then(|h| u64::from_str_radix(h, 16).ok()).unwrap_or(0).checked_rem(slots).unwrap_or(0);
        let mut shared = None;
        for probe in 0..PROBES.min(slots) {
            let key = slot_key(policy, window_ms, home.wrapping_add(probe).checked_rem(slots).unwrap_or(0));
            let (data, _) = store.get(&key);
            let Some(data) = data else {
                // Created before any charge on it can exist (two workers
                // racing both write zero).
                let _ = store.set(&key, &record(&Window::default(), digest), None);
                return (key, Window::default());
            };
            let w = Window::decode(Some(&data));
            if owner(&data) == digest.as_bytes() {
                return (key, w);
            }
            if is_over(w, now_ms, window_ms) {
                return (key, Window::default()); // taken over when charged
            }
            shared.get_or_insert((key, w));
        }
        shared.unwrap_or_else(|| (slot_key(policy, window_ms, home), Window::default()))
    }

    /// Headers for the client: the limits' state, or only `Retry-After`
    /// with `hide_client_headers`.
    pub fn client_headers(&self, a: &Admission) -> Vec<(String, String)> {
        match (self.hide_client_headers, a.retry_after_s) {
            (true, Some(s)) => vec![("retry-after".to_string(), s.to_string())],
            (true, None) => Vec::new(),
            (false, retry) => client_headers(&a.states, retry),
        }
    }

    /// Adds the request's real usage to every counter. Returns what each
    /// policy was charged, once per policy however many limits it has.
    pub fn charge(&self, counters: &[Counter], usage: &Usage, store: &dyn CounterStore, now_ms: u64) -> Vec<(usize, u64)> {
        let mut charged: Vec<(usize, u64)> = Vec::new();
        for c in counters {
            let Some(policy) = self.policies.get(c.policy) else { continue };
            let amount = self.charge_for(policy, usage);
            if amount == 0 {
                continue;
            }
            let mut done = false;
            for _ in 0..CAS_RETRIES {
                let (data, version) = store.get(&c.key);
                let data = data.unwrap_or_default();
                let current = Window::decode(Some(&data));
                let ours = owner(&data) == c.owner.as_bytes();
                // A finished window of another partition is taken over; a
                // live one is shared (all probes were taken).
                let (base, owner_now) = match (ours, is_over(current, now_ms, c.window_ms)) {
                    (true, _) => (current, c.owner.as_bytes()),
                    (false, true) => (Window::default(), c.owner.as_bytes()),
                    (false, false) => (current, owner(&data)),
                };
                let mut next = base.charged(now_ms, c.window_ms, amount).encode().to_vec();
                next.extend_from_slice(owner_now);
                match store.set(&c.key, &next, version) {
                    Ok(true) => {
                        done = true;
                        break;
                    }
                    Ok(false) => continue,
                    Err(e) => {
                        log::warn!("ai-token-ratelimit: counter write failed: {e}");
                        break;
                    }
                }
            }
            if !done {
                log::warn!("ai-token-ratelimit: could not charge {amount} to policy {}", policy.name);
            }
            if !charged.iter().any(|(p, _)| *p == c.policy) {
                charged.push((c.policy, amount));
            }
        }
        charged
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    const MIN: u64 = 60_000;

    #[test]
    fn usage_to_charge_adds_the_transformers_calls_and_says_when_estimated() {
        let (u, estimated) = request_usage(Some("10,5,15,estimated"), None, &[Some("1,2,3".into()), None]).unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens, u.total_tokens, estimated), (11, 7, 18, true));
        let answer = Usage { prompt_tokens: 2, completion_tokens: 2, total_tokens: 4, ..Default::default() };
        assert_eq!(request_usage(None, Some(answer), &[]).map(|(u, e)| (u.total_tokens, e)), Some((4, false)));
        assert_eq!(request_usage(Some("garbage"), None, &[None, None]), None, "nothing known: nothing to charge");
        assert_eq!((client_ip("10.0.0.1:5555"), client_ip("[::1]:80"), client_ip("pipe")), ("10.0.0.1", "::1", "pipe"));
    }

    #[test]
    fn fixed_windows_roll_over() {
        let w = Window::default().charged(10 * MIN + 5, MIN, 40);
        assert_eq!(w.used(10 * MIN + 59_999, MIN, WindowType::Fixed), 40);
        assert_eq!(w.used(11 * MIN, MIN, WindowType::Fixed), 0, "a new window starts empty");
        assert_eq!(w.retry_after_ms(10 * MIN + 20_000, MIN, 40, WindowType::Fixed), 40_000);
        assert_eq!(w.retry_after_ms(10 * MIN + 20_000, MIN, 41, WindowType::Fixed), 0);
    }

    #[test]
    fn sliding_windows_weight_the_previous_one() {
        let w = Window::default().charged(10 * MIN, MIN, 100);
        // A quarter into the next window, 75% of the previous still counts.
        assert_eq!(w.used(11 * MIN + 15_000, MIN, WindowType::Sliding), 75);
        assert_eq!(w.used(12 * MIN + 1, MIN, WindowType::Sliding), 0, "two windows later nothing counts");
        let later = w.charged(11 * MIN + 15_000, MIN, 10);
        assert_eq!(later, Window { start_ms: 11 * MIN, current: 10, previous: 100 });
        assert_eq!(later.used(11 * MIN + 15_000, MIN, WindowType::Sliding), 85);
        // 85 >= 50: usable again once 100*(1-f) + 10 < 50, f > 0.6.
        let wait = later.retry_after_ms(11 * MIN + 15_000, MIN, 50, WindowType::Sliding);
        assert_eq!(wait, 21_001); // f = 0.6 is 36 s into the window, 21 s from now
        assert!(later.used(11 * MIN + 15_000 + wait, MIN, WindowType::Sliding) < 50);
    }

    #[test]
    fn garbage_counters_never_overflow() {
        // Found by fuzzing: a counter from shared data near u64::MAX.
        let w = Window { start_ms: u64::MAX - 5, current: 3, previous: u64::MAX };
        for kind in [WindowType::Fixed, WindowType::Sliding] {
            let _ = (w.used(u64::MAX, 7, kind), w.retry_after_ms(u64::MAX - 1, 1000, 10, kind), w.charged(u64::MAX, 1, u64::MAX));
        }
    }

    #[test]
    fn encoding_round_trips_and_tolerates_garbage() {
        let w = Window { start_ms: 7, current: u64::MAX, previous: 3 };
        assert_eq!(Window::decode(Some(&w.encode())), w);
        assert_eq!(Window::decode(Some(b"short")), Window::default());
        assert_eq!(Window::decode(None), Window::default());
    }

    fn config(json: &str) -> RateLimitConfig {
        RateLimitConfig::from_json(json.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn matching_and_partitions_come_from_trusted_sources_only() {
        let c = config(r#"{"consumer_header":"x-consumer","policies":[
            {"name":"all","limits":[{"limit":1000,"window_size":60}]},
            {"name":"per-consumer","partition_by":"consumer","limits":[{"limit":100,"window_size":60}]},
            {"name":"gpt4","match":{"model":["gpt-4o"],"path":"/openai/"},"partition_by":"header","partition_header":"x-api-key","limits":[{"limit":10,"window_size":60}]},
            {"name":"red-team","match":{"header":{"name":"X-Team","values":["red"]},"provider":["anthropic"]},"limits":[{"limit":5,"window_size":60}]}]}"#);
        let headers = |pairs: &'static [(&'static str, &'static str)]| move |n: &str| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string());
        let h = headers(&[("x-consumer", "alice"), ("x-api-key", "k1"), ("x-team", "red"), ("x-partition", "evil")]);
        let facts = RequestFacts { header: &h, path: "/openai/v1/chat/completions", model: Some("gpt-4o"), provider: Some("openai"), ip: None };
        let m = c.matching(&facts);
        assert_eq!(m, vec![(0, "".into()), (1, "alice".into()), (2, "k1".into())]);
        let facts = RequestFacts { header: &h, path: "/anthropic/x", model: Some("claude"), provider: Some("anthropic"), ip: None };
        assert_eq!(c.matching(&facts).iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 1, 3]);
        // No consumer header: the anonymous partition, never a client-chosen one.
        let h = headers(&[("x-partition", "alice")]);
        let facts = RequestFacts { header: &h, path: "/", model: None, provider: None, ip: None };
        assert_eq!(c.matching(&facts), vec![(0, "".into()), (1, "".into())]);
        assert!(c.needs_model);
    }

    /// Shared data as a map; `conflicts` makes that many writes lose to a
    /// worker that charges 5 first, as a racing Envoy worker would.
    #[derive(Default)]
    struct FakeStore {
        map: std::cell::RefCell<std::collections::HashMap<String, (Vec<u8>, u32)>>,
        conflicts: std::cell::Cell<u32>,
    }

    impl CounterStore for FakeStore {
        fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
            match self.map.borrow().get(key) {
                Some((v, version)) => (Some(v.clone()), Some(*version)),
                None => (None, None),
            }
        }
        fn set(&self, key: &str, value: &[u8], version: Option<u32>) -> Result<bool, String> {
            let mut map = self.map.borrow_mut();
            let current = map.get(key).map(|(_, v)| *v);
            if self.conflicts.get() > 0 && version.is_some() {
                self.conflicts.set(self.conflicts.get().saturating_sub(1));
                let (old, v) = map.get(key).cloned().unwrap_or_default();
                let theirs = Window::decode(Some(&old)).charged(MIN, MIN, 5);
                let mut record = theirs.encode().to_vec();
                record.extend_from_slice(owner(&old));
                map.insert(key.to_string(), (record, v.saturating_add(1)));
                return Ok(false);
            }
            if version.is_some() && version != current {
                return Ok(false);
            }
            map.insert(key.to_string(), (value.to_vec(), current.unwrap_or(0).saturating_add(1)));
            Ok(true)
        }
    }

    #[test]
    fn admission_charging_and_retry_after_against_a_store() {
        let c = config(r#"{"policies":[{"name":"p","limits":[{"limit":100,"window_size":60},{"limit":1000,"window_size":3600}]}]}"#);
        let store = FakeStore::default();
        let matched = vec![(0, "alice".to_string())];
        let a = c.admit(&matched, &store, MIN);
        assert!(!a.rejected());
        assert_eq!(a.counters.len(), 2, "one counter per limit");
        assert_eq!(a.states.iter().map(|s| s.remaining).collect::<Vec<_>>(), vec![100, 1000]);
        // One policy with two limits is one charge in the metrics.
        assert_eq!(c.charge(&a.counters, &Usage::new(90, 30), &store, MIN + 10), vec![(0, 120)]);

        let a = c.admit(&matched, &store, MIN + 20_000);
        assert!(a.rejected());
        assert!(a.counters.is_empty(), "a refused request is not charged");
        // Sliding: the 120 spent weigh under 100 once a sixth of the next minute passed.
        assert_eq!(a.retry_after_s, Some(51));
        let h = c.client_headers(&a);
        assert!(h.contains(&("x-ai-ratelimit-remaining-60".into(), "0".into())), "{h:?}");
        assert!(h.contains(&("x-ai-ratelimit-remaining-3600".into(), "880".into())), "{h:?}");
        assert!(h.contains(&("retry-after".into(), "51".into())), "{h:?}");
        // Another partition has its own budget.
        assert!(!c.admit(&[(0, "bob".to_string())], &store, MIN + 20_000).rejected());
        assert!(c.admit(&matched, &store, MIN + 20_000 + 50_000).rejected());
        assert!(!c.admit(&matched, &store, MIN + 20_000 + 51_000).rejected(), "open again when Retry-After said");
    }

    #[test]
    fn concurrent_charges_are_never_lost() {
        let c = config(r#"{"window_type":"fixed","policies":[{"name":"p","limits":[{"limit":1000,"window_size":60}]}]}"#);
        let store = FakeStore::default();
        let a = c.admit(&[(0, String::new())], &store, MIN);
        store.conflicts.set(3);
        c.charge(&a.counters, &Usage::new(7, 3), &store, MIN);
        let (data, _) = store.get(&a.counters[0].key);
        assert_eq!(Window::decode(data.as_deref()).used(MIN, MIN, WindowType::Fixed), 3 * 5 + 10);
    }

    #[test]
    fn hidden_client_headers_keep_only_retry_after() {
        let c = config(r#"{"hide_client_headers":true,"policies":[{"name":"p","limits":[{"limit":1,"window_size":60}]}]}"#);
        let store = FakeStore::default();
        let a = c.admit(&[(0, String::new())], &store, MIN);
        assert!(c.client_headers(&a).is_empty());
        c.charge(&a.counters, &Usage::new(1, 0), &store, MIN);
        let a = c.admit(&[(0, String::new())], &store, MIN + 1);
        assert_eq!(c.client_headers(&a), vec![("retry-after".to_string(), "60".to_string())]);
    }

    #[test]
    fn usage_is_tapped_from_json_and_sse_answers_at_any_split() {
        let json = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        let sse = b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\ndata: [DONE]\n\n";
        for (ct, body) in [("application/json", &json[..]), ("text/event-stream", &sse[..])] {
            for at in 0..=body.len() {
                let mut tap = UsageTap::for_content_type(ct, 1 << 20).unwrap();
                let first = tap.push(&body[..at], false);
                let usage = first.or(tap.push(&body[at..], true));
                assert_eq!(usage, Some(Usage::new(3, 4)), "{ct} split at {at}");
            }
        }
        assert!(UsageTap::for_content_type("text/html", 10).is_none());
        let mut small = UsageTap::for_content_type("application/json", 8).unwrap();
        assert_eq!(small.push(json, true), None, "beyond the bound nothing is read");
    }

    #[test]
    fn transformer_calls_add_to_the_served_usage() {
        assert_eq!(total_usage(None, &[]), None);
        assert_eq!(total_usage(Some(Usage::new(1, 2)), &[Usage::new(10, 20), Usage::new(100, 200)]), Some(Usage::new(111, 222)));
        assert_eq!(total_usage(None, &[Usage::new(5, 5)]), Some(Usage::new(5, 5)));
    }

    #[test]
    fn strategies_and_cost() {
        let c = config(r#"{"input_cost":2.5,"output_cost":10,"policies":[
            {"name":"t","limits":[{"limit":1,"window_size":1}]},
            {"name":"c","tokens_count_strategy":"cost","limits":[{"limit":0.5,"window_size":60}]},
            {"name":"p","tokens_count_strategy":"prompt_tokens","limits":[{"limit":1,"window_size":1}]}]}"#);
        let u = Usage::new(1000, 200);
        assert_eq!(c.charge_for(&c.policies[0], &u), 1200);
        assert_eq!(c.charge_for(&c.policies[2], &u), 1000);
        // 1000 * 2.5/1M + 200 * 10/1M = 0.0045 currency = 4500 millionths.
        assert_eq!(c.charge_for(&c.policies[1], &u), 4500);
        assert_eq!(c.policies[1].limits, vec![(500_000, 60_000)]);
    }

    #[test]
    fn config_errors_name_fields() {
        let err = |j: &str| RateLimitConfig::from_json(j.as_bytes()).err().map(|e| e.path).unwrap_or_default();
        assert_eq!(err(r#"{"policies":[]}"#), "policies");
        assert_eq!(err(r#"{"policies":[{"name":"a","limits":[{"limit":1,"window_size":0}]}]}"#), "policies[0].limits[0].window_size");
        assert_eq!(err(r#"{"policies":[{"name":"a","partition_by":"consumer","limits":[{"limit":1,"window_size":1}]}]}"#), "consumer_header");
        assert_eq!(err(r#"{"policies":[{"name":"a","partition_by":"header","limits":[{"limit":1,"window_size":1}]}]}"#), "policies[0].partition_header");
        assert_eq!(err(r#"{"policies":[{"name":"a","tokens_count_strategy":"cost","limits":[{"limit":1,"window_size":1}]}]}"#), "policies[0].tokens_count_strategy");
        assert_eq!(err(r#"{"policies":[{"name":"a","limits":[{"limit":1,"window_size":1}]},{"name":"a","limits":[{"limit":1,"window_size":1}]}]}"#), "policies[1].name");
        assert_eq!(err(r#"{"policies":[{"name":"a","limits":[{"limit":1,"window_size":1}],"extra":1}]}"#), "policies[0].extra");
    }

    #[test]
    fn headers_report_the_tightest_limits() {
        let states = [
            LimitState { window_s: 60, limit: 100, remaining: 40, reset_s: 20 },
            LimitState { window_s: 60, limit: 1000, remaining: 900, reset_s: 20 },
            LimitState { window_s: 86400, limit: 5000, remaining: 10, reset_s: 3600 },
        ];
        let h = client_headers(&states, Some(20));
        let get = |k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("x-ai-ratelimit-remaining-60"), Some("40"));
        assert_eq!(get("x-ai-ratelimit-limit-86400"), Some("5000"));
        assert_eq!(get("ratelimit-remaining"), Some("10"));
        assert_eq!(get("ratelimit-reset"), Some("3600"));
        assert_eq!(get("retry-after"), Some("20"));
        // Refused: the reset and Retry-After agree.
        let spent = [LimitState { window_s: 60, limit: 100, remaining: 0, reset_s: 21 }];
        let h = client_headers(&spent, Some(31));
        let get = |k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!((get("x-ai-ratelimit-reset"), get("ratelimit-reset"), get("retry-after")), (Some("31"), Some("31"), Some("31")));
    }

    #[test]
    fn partitions_share_a_bounded_set_of_slots_and_never_store_the_secret() {
        let mut c = config(r#"{"policies":[{"name":"p","partition_by":"header","partition_header":"x-k","limits":[{"limit":1000,"window_size":60}]}]}"#);
        c.partition_slots = 64;
        let store = FakeStore::default();
        let spend = |partition: &str, now_ms: u64, tokens: u64| {
            let a = c.admit(&[(0, partition.to_string())], &store, now_ms);
            c.charge(&a.counters, &Usage::new(tokens, 0), &store, now_ms);
            a.states.first().map(|s| s.remaining).unwrap_or(0)
        };
        // Many partitions, one window: at most 64 keys, and a partition that
        // owns its slot is counted exactly.
        assert_eq!(spend("sk-secret-api-key", MIN, 10), 1000);
        for i in 0..40 {
            spend(&format!("key-{i}"), MIN, 1);
        }
        assert_eq!(spend("sk-secret-api-key", MIN, 0), 990, "its own count, not its neighbours'");
        for i in 0..10_000 {
            spend(&format!("flood-{i}"), MIN, 1);
        }
        assert!(store.map.borrow().len() <= 64, "{} keys", store.map.borrow().len());
        // Two windows later every slot is finished: a new partition starts at zero.
        assert_eq!(spend("newcomer", 3 * MIN + 1, 5), 1000);
        assert_eq!(spend("newcomer", 3 * MIN + 2, 0), 995);
        let map = store.map.borrow();
        assert!(map.iter().all(|(k, (v, _))| !k.contains("secret") && !String::from_utf8_lossy(v).contains("secret")));
    }

    #[test]
    fn cluster_strategy_takes_what_a_rate_limit_service_can_count() {
        let ok = RateLimitConfig::from_json(br#"{"strategy":"cluster","policies":[{"name":"p","limits":[{"limit":100,"window_size":60},{"limit":5000,"window_size":86400}]}]}"#).unwrap();
        assert_eq!((ok.strategy, ok.window_type), (Backend::Cluster, WindowType::Fixed), "fixed windows by default");
        let path = |json: &str| RateLimitConfig::from_json(json.as_bytes()).err().map(|e| e.path);
        assert_eq!(path(r#"{"strategy":"cluster","window_type":"sliding","policies":[{"name":"p","limits":[{"limit":1,"window_size":60}]}]}"#), Some("window_type".into()));
        assert_eq!(path(r#"{"strategy":"cluster","policies":[{"name":"p","limits":[{"limit":1,"window_size":90}]}]}"#), Some("policies[0].limits[0].window_size".into()));
        assert_eq!(path(r#"{"strategy":"cluster","policies":[{"name":"p","limits":[{"limit":1,"window_size":60},{"limit":2,"window_size":60}]}]}"#), Some("policies[0].limits[1].window_size".into()));
        assert_eq!(path(r#"{"strategy":"cluster","policies":[{"name":"p","limits":[{"limit":5000000000,"window_size":60}]}]}"#), Some("policies[0].limits[0].limit".into()));
        assert_eq!(path(r#"{"strategy":"cluster","input_cost":1,"policies":[{"name":"p","tokens_count_strategy":"cost","limits":[{"limit":1,"window_size":60}]}]}"#), Some("policies[0].tokens_count_strategy".into()));
        assert!(RateLimitConfig::from_json(br#"{"strategy":"redis","policies":[{"name":"p","limits":[{"limit":1,"window_size":60}]}]}"#).is_err());
        let local = RateLimitConfig::from_json(br#"{"policies":[{"name":"p","limits":[{"limit":1,"window_size":90}]}]}"#).unwrap();
        assert_eq!((local.strategy, local.window_type), (Backend::Local, WindowType::Sliding));
    }

    #[test]
    fn cluster_partitions_are_hashed_and_never_empty() {
        assert_eq!(cluster_partition(""), "all");
        let p = cluster_partition("Bearer sk-secret");
        assert_eq!(p.len(), 32);
        assert!(!p.contains("secret"));
        assert_ne!(p, cluster_partition("Bearer sk-other"));
        assert_eq!(cluster_state_key("per-key"), "ai.ratelimit.per-key");
    }
}
