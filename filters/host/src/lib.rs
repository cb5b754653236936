//! Every host call the filters make goes through here. The SDK's trait
//! methods `unwrap()` host results, and a panic traps the whole VM (every
//! later request on that worker fails), so these return `Result`/`Option`
//! and log instead.

use codec::GatewayError;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType, Status};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use proxy_wasm;

pub mod body_filter;
pub mod proxy;
pub mod transformer;

// Host calls this VM made since the last `report_host_calls`, counted only
// in the benchmark's `count-host-calls` builds (compiled out otherwise).
#[cfg(feature = "count-host-calls")]
thread_local! {
    static HOST_CALLS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

#[inline(always)]
fn tick() {
    #[cfg(feature = "count-host-calls")]
    HOST_CALLS.with(|c| c.set(c.get().saturating_add(1)));
}

/// For the benchmark's host-call table: logs how many host calls `filter`
/// made for the request that ends now, and starts counting afresh. A
/// no-op in shipped builds.
pub fn report_host_calls(filter: &str) {
    #[cfg(feature = "count-host-calls")]
    {
        let calls = HOST_CALLS.with(|c| c.replace(0));
        log::info!("host calls: {filter} {calls}");
    }
    #[cfg(not(feature = "count-host-calls"))]
    let _ = filter;
}

fn warn_on_err(what: &str, result: Result<(), Status>) -> bool {
    match result {
        Ok(()) => true,
        Err(status) => {
            log::warn!("host call {what} failed: {status:?}");
            false
        }
    }
}

pub fn plugin_configuration() -> Vec<u8> {
    tick();
    hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX).ok().flatten().unwrap_or_default()
}

pub fn request_header(name: &str) -> Option<String> {
    tick();
    hostcalls::get_map_value(MapType::HttpRequestHeaders, name).ok().flatten()
}

pub fn set_request_header(name: &str, value: &str) -> bool {
    tick();
    warn_on_err("set_request_header", hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value)))
}

pub fn remove_request_header(name: &str) -> bool {
    tick();
    warn_on_err("remove_request_header", hostcalls::remove_map_value(MapType::HttpRequestHeaders, name))
}

pub fn response_header(name: &str) -> Option<String> {
    tick();
    hostcalls::get_map_value(MapType::HttpResponseHeaders, name).ok().flatten()
}

pub fn set_response_header(name: &str, value: &str) -> bool {
    tick();
    warn_on_err("set_response_header", hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(value)))
}

pub fn add_response_header(name: &str, value: &str) -> bool {
    tick();
    warn_on_err("add_response_header", hostcalls::add_map_value(MapType::HttpResponseHeaders, name, value))
}

pub fn remove_response_header(name: &str) -> bool {
    tick();
    warn_on_err("remove_response_header", hostcalls::remove_map_value(MapType::HttpResponseHeaders, name))
}

pub fn request_body(size: usize) -> Vec<u8> {
    tick();
    hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size).ok().flatten().unwrap_or_default()
}

pub fn set_request_body(size: usize, body: &[u8]) -> bool {
    tick();
    warn_on_err("set_request_body", hostcalls::set_buffer(BufferType::HttpRequestBody, 0, size, body))
}

pub fn response_body(size: usize) -> Vec<u8> {
    tick();
    hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size).ok().flatten().unwrap_or_default()
}

pub fn set_response_body(size: usize, body: &[u8]) -> bool {
    tick();
    warn_on_err("set_response_body", hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, body))
}

/// Answers the client with OpenAI's error shape; nothing goes upstream
/// after this (if called in the headers phase).
pub fn send_error(err: &GatewayError, extra_headers: &[(&str, &str)]) {
    let body = err.to_json();
    let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
    headers.extend_from_slice(extra_headers);
    tick();
    warn_on_err("send_http_response", hostcalls::send_http_response(u32::from(err.status), headers, Some(&body)));
}

/// Answers the client with a JSON body already in the route's error shape.
pub fn send_json(status: u16, body: &[u8]) {
    tick();
    warn_on_err("send_http_response", hostcalls::send_http_response(u32::from(status), vec![("content-type", "application/json")], Some(body)));
}

pub fn get_property(path: &[&str]) -> Option<Vec<u8>> {
    tick();
    hostcalls::get_property(path.to_vec()).ok().flatten()
}

/// Publishes a value for later filters and access logs
/// (`%FILTER_STATE(wasm.KEY:PLAIN)%`).
pub fn set_property(key: &str, value: &[u8]) -> bool {
    tick();
    warn_on_err("set_property", hostcalls::set_property(vec![key], Some(value)))
}

pub fn now() -> SystemTime {
    tick();
    hostcalls::get_current_time().unwrap_or(UNIX_EPOCH)
}

pub fn unix_seconds() -> u64 {
    now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs()
}

pub fn unix_nanos() -> u128 {
    now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_nanos()
}

pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads and parses a filter's plugin configuration; on error the log line
/// names the field, and Envoy refuses the configuration.
pub fn configure<T>(filter: &str, parse: impl FnOnce(&[u8]) -> Result<T, codec::config::ConfigError>) -> Option<T> {
    // Envoy's level for wasm logs, so lines it would drop are not even
    // formatted (and the debug-only ones can be turned on).
    tick();
    if let Ok(level) = hostcalls::get_log_level() {
        proxy_wasm::set_log_level(level);
    }
    match parse(&plugin_configuration()) {
        Ok(config) => Some(config),
        Err(err) => {
            log::error!("{filter}: {err}");
            None
        }
    }
}

/// True for the first VM to ask, of all workers' VMs of one `vm_id`: a
/// configuration warning is then logged once, not once per worker.
pub fn first_to_say(key: &str) -> bool {
    if shared_data(key).0.is_some() {
        return false;
    }
    matches!(set_shared_data(key, b"1", None), Ok(true))
}

/// Reads a shared-data entry and its CAS token.
/// proxy-wasm shared data as the codec's store: one for every worker of
/// this Envoy (per vm_id).
pub struct SharedData;

impl codec::store::CounterStore for SharedData {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        shared_data(key)
    }
    fn set(&self, key: &str, value: &[u8], version: Option<u32>) -> Result<bool, String> {
        set_shared_data(key, value, version).map_err(|e| format!("{e:?}"))
    }
}

pub fn shared_data(key: &str) -> (Option<Vec<u8>>, Option<u32>) {
    tick();
    hostcalls::get_shared_data(key).unwrap_or((None, None))
}

/// Writes a shared-data entry; `Ok(false)` when another worker changed it
/// since `cas` was read.
pub fn set_shared_data(key: &str, value: &[u8], cas: Option<u32>) -> Result<bool, Status> {
    tick();
    match hostcalls::set_shared_data(key, Some(value), cas) {
        Ok(()) => Ok(true),
        Err(Status::CasMismatch) => Ok(false),
        Err(other) => Err(other),
    }
}

pub fn define_counter(name: &str) -> Option<u32> {
    tick();
    hostcalls::define_metric(proxy_wasm::types::MetricType::Counter, name)
        .map_err(|e| log::warn!("define_metric {name}: {e:?}"))
        .ok()
}

pub fn increment(metric: Option<u32>, by: u64) {
    if let Some(id) = metric {
        let by = i64::try_from(by).unwrap_or(i64::MAX);
        tick();
        if let Err(e) = hostcalls::increment_metric(id, by) {
            log::warn!("increment_metric: {e:?}");
        }
    }
}

/// A property as text (filter state set by another filter, route metadata).
pub fn property_string(path: &[&str]) -> Option<String> {
    get_property(path).and_then(|b| String::from_utf8(b).ok())
}

/// An integer property: Envoy hands them over as 8 little-endian bytes.
pub fn property_u64(path: &[&str]) -> Option<u64> {
    get_property(path).and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()).map(u64::from_le_bytes)
}

thread_local! {
    /// Metric ids by full name: Envoy hands out a new id on every
    /// `define_metric`, so each name is defined once per VM.
    static METRICS: std::cell::RefCell<std::collections::HashMap<String, u32>> = std::cell::RefCell::new(std::collections::HashMap::new());
}

fn metric(kind: proxy_wasm::types::MetricType, name: &str) -> Option<u32> {
    METRICS.with(|m| {
        let mut m = m.borrow_mut();
        if let Some(id) = m.get(name) {
            return Some(*id);
        }
        tick();
        let id = hostcalls::define_metric(kind, name).map_err(|e| log::warn!("define_metric {name}: {e:?}")).ok()?;
        m.insert(name.to_string(), id);
        Some(id)
    })
}

/// Adds to the counter `name` (defined on first use).
/// Publishes what a request did: filter-state properties, counter
/// increments and histogram values.
pub fn publish(properties: &[(&str, String)], counters: &[(String, u64)], histograms: &[(String, u64)]) {
    for (key, value) in properties {
        set_property(key, value.as_bytes());
    }
    for (metric, n) in counters {
        count(metric, *n);
    }
    for (metric, value) in histograms {
        record(metric, *value);
    }
}

pub fn count(name: &str, by: u64) {
    if by > 0 {
        increment(metric(proxy_wasm::types::MetricType::Counter, name), by);
    }
}

/// Records a value in the histogram `name` (defined on first use).
pub fn record(name: &str, value: u64) {
    if let Some(id) = metric(proxy_wasm::types::MetricType::Histogram, name) {
        tick();
        if let Err(e) = hostcalls::record_metric(id, value) {
            log::warn!("record_metric {name}: {e:?}");
        }
    }
}

/// Sets the gauge `name` (defined on first use).
pub fn gauge(name: &str, value: u64) {
    if let Some(id) = metric(proxy_wasm::types::MetricType::Gauge, name) {
        tick();
        if let Err(e) = hostcalls::record_metric(id, value) {
            log::warn!("record_metric {name}: {e:?}");
        }
    }
}

/// All response headers in one host call (names are lower case).
pub fn response_headers() -> Vec<(String, String)> {
    tick();
    hostcalls::get_map(MapType::HttpResponseHeaders).unwrap_or_default()
}

/// All request headers in one host call (names are lower case), for
/// filters that look up several: one call instead of one per header.
pub fn request_headers() -> Vec<(String, String)> {
    tick();
    hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default()
}

/// Looks a header up in a snapshot from `request_headers`.
pub fn lookup(headers: &[(String, String)], name: &str) -> Option<String> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

/// Replaces all request headers with one host call (a filter that
/// changes several reads them with `request_headers` first).
pub fn replace_request_headers(headers: &[(String, String)]) -> bool {
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    tick();
    warn_on_err("set_request_headers", hostcalls::set_map(MapType::HttpRequestHeaders, pairs))
}

/// At most this many header edits are written one by one; more, and the
/// whole map goes in one call. Envoy rewrites a whole map by removing
/// every header and adding each again: measured here, about 2.9 us for a
/// 9-header request map against 0.9 us for one replaced header.
const FEW_EDITS: usize = 2;

/// Applies `edits` to the response headers. `snapshot`: the map as read
/// (if it was), used when the edits are many and go as one write.
pub fn edit_response_headers(snapshot: Option<Vec<(String, String)>>, edits: &[codec::headers::HeaderEdit]) -> bool {
    let map = MapType::HttpResponseHeaders;
    if edits.len() <= FEW_EDITS {
        let mut ok = true;
        for (name, value) in edits {
            tick();
            ok &= match value {
                Some(value) => warn_on_err("replace_header", hostcalls::set_map_value(map, name, Some(value))),
                None => warn_on_err("remove_header", hostcalls::remove_map_value(map, name)),
            };
        }
        return ok;
    }
    let mut headers = match snapshot {
        Some(headers) => headers,
        None => {
            tick();
            let Ok(headers) = hostcalls::get_map(map) else { return false };
            headers
        }
    };
    codec::headers::apply(&mut headers, edits);
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    tick();
    warn_on_err("set_response_headers", hostcalls::set_map(map, pairs))
}

/// Adds or replaces several response headers.
pub fn set_response_headers(extra: &[(String, String)]) -> bool {
    let edits: Vec<codec::headers::HeaderEdit> = extra.iter().map(|(n, v)| (n.as_str(), Some(v.as_str()))).collect();
    edit_response_headers(None, &edits)
}

/// Sends an HTTP call through an Envoy cluster; the answer comes to the
/// calling context's `on_http_call_response`. `headers` must hold
/// `:method`, `:path` and `:authority`.
pub fn dispatch_http_call(cluster: &str, headers: &[(String, String)], body: &[u8], timeout: Duration) -> Result<u32, Status> {
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    tick();
    hostcalls::dispatch_http_call(cluster, pairs, Some(body), vec![], timeout)
}

/// The answer to a `dispatch_http_call`: headers (`:status` among them).
pub fn http_call_response_headers() -> Vec<(String, String)> {
    tick();
    hostcalls::get_map(MapType::HttpCallResponseHeaders).unwrap_or_default()
}

pub fn http_call_response_body(size: usize) -> Vec<u8> {
    tick();
    hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, size).ok().flatten().unwrap_or_default()
}

/// Lets a request paused in a body phase go on (after an HTTP call).
pub fn resume_request() -> bool {
    tick();
    warn_on_err("resume_http_request", hostcalls::resume_http_request())
}

pub fn resume_response() -> bool {
    tick();
    warn_on_err("resume_http_response", hostcalls::resume_http_response())
}

/// An HTTP context that learns at the request headers what it is: `decide`
/// builds the real context then (and runs its headers callback), or None
/// leaves the request alone. For filters whose per-request work depends on
/// what an earlier filter published (ai-proxy-advanced's per-try
/// translator).
pub struct DecidedAtHeaders {
    decide: Option<Box<dyn FnOnce(bool) -> Decision>>,
    context: Option<Box<dyn HttpContext>>,
}

/// What `DecidedAtHeaders` became (None: nothing), and its headers' action.
pub type Decision = (Option<Box<dyn HttpContext>>, Action);

impl DecidedAtHeaders {
    pub fn new(decide: impl FnOnce(bool) -> Decision + 'static) -> Self {
        DecidedAtHeaders { decide: Some(Box::new(decide)), context: None }
    }
}

impl Context for DecidedAtHeaders {}

impl HttpContext for DecidedAtHeaders {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(decide) = self.decide.take() else { return Action::Continue };
        let (context, action) = decide(end_of_stream);
        self.context = context;
        action
    }
    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.context.as_mut().map_or(Action::Continue, |c| c.on_http_request_body(body_size, end_of_stream))
    }
    fn on_http_response_headers(&mut self, num_headers: usize, end_of_stream: bool) -> Action {
        self.context.as_mut().map_or(Action::Continue, |c| c.on_http_response_headers(num_headers, end_of_stream))
    }
    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.context.as_mut().map_or(Action::Continue, |c| c.on_http_response_body(body_size, end_of_stream))
    }
    fn on_log(&mut self) {
        if let Some(c) = self.context.as_mut() {
            c.on_log();
        }
    }
}
