//! ai-prompt-decorator: glue over `codec::decorator`.

use codec::decorator::Decorator;
use codec::GatewayError;
use host::body_filter::{register, Policy};
use std::rc::Rc;

host::proxy_wasm::main! {{
    register("ai-prompt-decorator", Decorator::from_json, Decorate);
}}

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
