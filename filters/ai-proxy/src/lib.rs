//! ai-proxy: thin proxy-wasm glue over `codec::proxy::Exchange`, which
//! holds all the logic and runs under `cargo test` natively.

use codec::proxy::config::ProxyConfig;
use codec::proxy::report::Labels;
use codec::proxy::HeaderEdits;
use host::proxy::{Hooks, ProxyRequest};
use host::proxy_wasm::traits::{Context, HttpContext, RootContext};
use host::proxy_wasm::types::{ContextType, LogLevel};
use std::cell::RefCell;
use std::rc::Rc;

/// Request header naming the ai-proxy instance that rewrote the request.
const ROUTE_HEADER: &str = "x-ai-proxy";

host::proxy_wasm::main! {{
    host::proxy_wasm::set_log_level(LogLevel::Info);
    host::proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { config: None, name: Rc::from(""), labels: Rc::new(RefCell::new(Labels::default())) })
    });
}}

struct Root {
    config: Option<Rc<ProxyConfig>>,
    /// This instance's name in Envoy (`config.name`), stamped on rewritten
    /// requests so envoy.yaml can route them after Envoy re-matches routes.
    name: Rc<str>,
    labels: Rc<RefCell<Labels>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let name = host::get_property(&["plugin_name"]).unwrap_or_default();
        self.name = Rc::from(String::from_utf8_lossy(&name).as_ref());
        let Some(config) = host::configure("ai-proxy", |raw| ProxyConfig::from_json(raw, &host::env_var)) else { return false };
        if let Some(missing) = &config.missing_secret {
            if host::first_to_say(&format!("ai-proxy/missing-secret/{}", self.name)) {
                // At info: aigw and run.sh name the unset variables in one line at start.
                log::info!("{}: no credential at {missing}; requests on this route will be answered 500", self.name);
            }
        }
        log::info!(
            "configured provider={} route_type={} model={}",
            config.provider.as_str(),
            config.route_type.as_str(),
            config.model_name.as_deref().unwrap_or("(from request)")
        );
        self.config = Some(Rc::new(config));
        true
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let config = self.config.clone()?;
        let hooks = RouteStamp { instance: self.name.clone() };
        Some(Box::new(ProxyRequest::new(config, hooks, self.labels.clone(), context_id)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct RouteStamp {
    instance: Rc<str>,
}

impl Hooks for RouteStamp {
    fn filter(&self) -> &'static str {
        "ai-proxy"
    }

    fn apply(&mut self, edits: &HeaderEdits, mut headers: Vec<(String, String)>) {
        // One host call: the headers as they arrived, edited, written back
        // (a passthrough changes three: authority, credential, this stamp).
        edits.apply_to(&mut headers);
        // Envoy picks the route again after any header change; this header
        // (always ours, never the client's) lets the route table send the
        // rewritten request where this instance meant it to go.
        headers.retain(|(name, _)| name != ROUTE_HEADER);
        headers.push((ROUTE_HEADER.to_string(), self.instance.to_string()));
        host::replace_request_headers(&headers);
    }
}
