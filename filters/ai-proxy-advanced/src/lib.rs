//! ai-proxy-advanced: one module, two roles in Envoy (docs/ai-proxy-advanced.md).
//!
//! - The **balancer** (a downstream HTTP filter, root id `ai-proxy-advanced`)
//!   orders the targets for each request and writes the router's headers:
//!   `x-ai-try-<k>` (the route's matcher maps them to clusters) and the
//!   retry policy. When the request ends it publishes which target served
//!   and updates the balancer's statistics.
//! - The **translator** (an upstream HTTP filter, root id
//!   `ai-proxy-advanced-upstream`, run once per try) translates the request
//!   for the try's target, and the answer back, as ai-proxy does.
//!
//! Both must share one VM (the same `vm_config`): the translator finds the
//! balancer's parsed configuration in this VM's memory.

use codec::balancer::{self, AdvancedConfig, SavedHeaders, TryRecord};
use codec::proxy::report::{Labels, Timing};
use codec::proxy::{Exchange, HeaderEdits};
use codec::{ErrorKind, GatewayError};
use host::proxy::{now_ms, Hooks, ProxyRequest};
use host::proxy_wasm::traits::{Context, HttpContext, RootContext};
use host::proxy_wasm::types::{Action, ContextType, LogLevel};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// The translator's root id; any other root id is a balancer.
const UPSTREAM_ROOT_ID: &str = "ai-proxy-advanced-upstream";

struct Instance {
    name: String,
    config: AdvancedConfig,
    labels: Rc<RefCell<Labels>>,
    /// This worker's own count, when the shared one cannot be had.
    local_counter: Cell<u64>,
}

thread_local! {
    /// Balancer instances configured in this VM, by plugin name.
    static INSTANCES: RefCell<HashMap<String, Rc<Instance>>> = RefCell::new(HashMap::new());
}

host::proxy_wasm::main! {{
    host::proxy_wasm::set_log_level(LogLevel::Info);
    host::proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { role: None }) });
}}

enum Role {
    Balancer(Rc<Instance>),
    Translator,
}

struct Root {
    role: Option<Role>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let root_id = host::property_string(&["plugin_root_id"]).unwrap_or_default();
        if root_id == UPSTREAM_ROOT_ID {
            if host::configure("ai-proxy-advanced", balancer::check_upstream_configuration).is_none() {
                return false;
            }
            self.role = Some(Role::Translator);
            return true;
        }
        let name = host::property_string(&["plugin_name"]).unwrap_or_default();
        let Some(config) = host::configure("ai-proxy-advanced", |raw| AdvancedConfig::from_json(raw, &host::env_var)) else { return false };
        for t in &config.targets {
            if let Some(missing) = &t.proxy.missing_secret {
                if host::first_to_say(&format!("ai-proxy-advanced/missing-secret/{name}/{}", t.name)) {
                    log::info!("{name}: target {}: no credential at {missing}; it is left out of every plan", t.name);
                }
            }
        }
        log::info!(
            "configured {name}: {:?} over {}",
            config.algorithm,
            config.targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
        );
        let instance = Rc::new(Instance { name: name.clone(), config, labels: Rc::default(), local_counter: Cell::new(0) });
        INSTANCES.with(|m| m.borrow_mut().insert(name, instance.clone()));
        self.role = Some(Role::Balancer(instance));
        true
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        match self.role.as_ref()? {
            Role::Balancer(instance) => Some(Box::new(Balance { instance: instance.clone(), planned: false })),
            Role::Translator => Some(Box::new(host::DecidedAtHeaders::new(move |end_of_stream| start_try(context_id, end_of_stream)))),
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// The balancer's per-request context (downstream).
struct Balance {
    instance: Rc<Instance>,
    planned: bool,
}

impl Context for Balance {}

impl HttpContext for Balance {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let c = &self.instance.config;
        let headers = host::request_headers();
        let hash_key = match c.algorithm {
            codec::balancer::Algorithm::ConsistentHashing => host::lookup(&headers, &c.hash_header),
            _ => None,
        };
        let order = c.plan(&host::SharedData, &self.instance.name, hash_key.as_deref(), &self.instance.local_counter, &host::unix_seconds);
        if order.is_empty() {
            log::error!("{}: no target has its credentials set", self.instance.name);
            let err = GatewayError::new(ErrorKind::Internal, "the gateway has no credential configured for any target of this route");
            host::send_json(err.status, &c.error_reply(&err));
            return Action::Pause;
        }
        self.planned = true;
        host::replace_request_headers(&c.router_headers(headers, &order));
        host::set_property("ai.plan", balancer::encode_plan(&self.instance.name, &order).as_bytes());
        Action::Continue
    }

    fn on_log(&mut self) {
        if !self.planned {
            return;
        }
        let records = balancer::parse_tries(&host::property_string(&["ai.try_log"]).unwrap_or_default());
        let report = self.instance.config.report(&records);
        host::publish(&report.properties, &report.counters, &[]);
        // Only the statistics-keeping algorithms read the clock (a host call).
        let now = if self.instance.config.needs_scores() { host::unix_seconds() } else { 0 };
        for (gauge, value) in self.instance.config.learn(&host::SharedData, &self.instance.name, &records, now) {
            host::gauge(&gauge, value);
        }
        host::report_host_calls("ai-proxy-advanced");
    }
}

struct TryHooks {
    target: u8,
    /// The records of earlier tries of this request.
    earlier: String,
    saved: SavedHeaders,
    started_ms: Option<u64>,
}

impl TryHooks {
    fn record(&self, record: &TryRecord) {
        host::set_property("ai.try_log", balancer::append_try(&self.earlier, record).as_bytes());
    }
}

impl Hooks for TryHooks {
    fn filter(&self) -> &'static str {
        "ai-proxy-advanced-upstream"
    }

    /// `headers` is the client's view (earlier tries' changes undone): with
    /// this try's edits it becomes the whole header map, written at once.
    fn apply(&mut self, edits: &HeaderEdits, mut headers: Vec<(String, String)>) {
        let grew = balancer::save_client_headers(&mut self.saved, edits, &|name| host::lookup(&headers, name));
        edits.apply_to(&mut headers);
        host::replace_request_headers(&headers);
        if grew {
            if let Ok(json) = serde_json::to_vec(&self.saved) {
                host::set_property("ai.saved_headers", &json);
            }
        }
        self.started_ms = now_ms();
        // Recorded now: a try that gets no answer (connect failure, per-try
        // timeout) is known to the balancer too.
        self.record(&TryRecord { target: self.target, ..Default::default() });
    }

    fn finished(&mut self, exchange: &Exchange, replied: bool, _timing: &Timing) {
        if replied {
            return;
        }
        let latency_ms = match (self.started_ms, now_ms()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        };
        self.record(&TryRecord { target: self.target, status: exchange.status(), latency_ms, usage: exchange.usage(), cost: exchange.cost() });
    }
}

/// The translator's context for one try (upstream): which target it
/// serves is known only from the balancer's plan at the request headers;
/// a request without a plan is not balanced and is left alone.
fn start_try(context_id: u32, end_of_stream: bool) -> host::Decision {
    let Some(plan) = host::property_string(&["ai.plan"]) else { return (None, Action::Continue) };
    let fail = |why: String| -> host::Decision {
        log::error!("ai-proxy-advanced upstream: {why}");
        host::send_error(&GatewayError::new(ErrorKind::Internal, "the gateway's balancer is misconfigured"), &[]);
        (None, Action::Pause)
    };
    let Some((name, order)) = balancer::parse_plan(&plan) else { return fail(format!("unreadable plan {plan:?}")) };
    let Some(instance) = INSTANCES.with(|m| m.borrow().get(name).cloned()) else {
        return fail(format!("no balancer `{name}` in this VM: give both filters the same vm_config"));
    };
    let attempt = host::property_u64(&["upstream", "request_attempt_count"]).unwrap_or(1) as usize;
    let Some(index) = AdvancedConfig::target_of_try(&order, attempt.saturating_sub(1)) else { return fail("empty plan".into()) };
    let Some(target) = instance.config.target(index) else { return fail(format!("no target {index}")) };
    let saved: SavedHeaders = host::get_property(&["ai.saved_headers"]).and_then(|v| serde_json::from_slice(&v).ok()).unwrap_or_default();
    let hooks = TryHooks { target: index, earlier: host::property_string(&["ai.try_log"]).unwrap_or_default(), saved, started_ms: None };
    let view = balancer::client_view(host::request_headers(), &hooks.saved);
    let mut request = Box::new(ProxyRequest::new(target.proxy.clone(), hooks, instance.labels.clone(), context_id));
    let action = request.request_headers(view, end_of_stream);
    (Some(request), action)
}
