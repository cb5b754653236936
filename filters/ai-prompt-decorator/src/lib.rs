//! ai-prompt-decorator: glue over `codec::decorator`.

use codec::decorator::Decorator;
use codec::GatewayError;
use host::body_filter::{BodyFilter, Policy};
use host::proxy_wasm::traits::{Context, HttpContext, RootContext};
use host::proxy_wasm::types::{ContextType, LogLevel};
use std::rc::Rc;

host::proxy_wasm::main! {{
    host::proxy_wasm::set_log_level(LogLevel::Info);
    host::proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { decorator: None }) });
}}

struct Root {
    decorator: Option<Rc<Decorator>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        self.decorator = host::configure("ai-prompt-decorator", Decorator::from_json).map(Rc::new);
        self.decorator.is_some()
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(BodyFilter::new(Decorate(self.decorator.clone()?))))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Decorate(Rc<Decorator>);

impl Policy for Decorate {
    fn name(&self) -> &'static str {
        "ai-prompt-decorator"
    }

    fn max_request_body_size(&self) -> u64 {
        self.0.max_request_body_size
    }

    fn request_body(&mut self, body: &[u8]) -> Result<Option<Vec<u8>>, GatewayError> {
        let result = self.0.decorate(body);
        let outcome = if result.is_ok() { "decorated" } else { "rejected" };
        host::count(&codec::metrics::name("ai_prompt_decorator_requests_total", &[("outcome", outcome)]), 1);
        if result.is_ok() {
            host::set_property("ai.decorator", b"decorated");
        }
        result.map(Some)
    }
}
