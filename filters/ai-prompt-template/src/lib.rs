//! ai-prompt-template: glue over `codec::template`.

use codec::template::Templates;
use codec::GatewayError;
use host::body_filter::{register, Policy};
use std::rc::Rc;

host::proxy_wasm::main! {{
    register("ai-prompt-template", Templates::from_json, Render);
}}

struct Render(Rc<Templates>);

impl Policy for Render {
    fn name(&self) -> &'static str {
        "ai-prompt-template"
    }

    fn max_request_body_size(&self) -> u64 {
        self.0.max_request_body_size
    }

    fn request_body(&mut self, body: &[u8]) -> Result<Option<Vec<u8>>, GatewayError> {
        if self.0.log_original_request {
            let shown = body.get(..8 * 1024).unwrap_or(body);
            log::info!("ai-prompt-template: original request: {}", String::from_utf8_lossy(shown));
        }
        let count = |template: &str, outcome: &str| {
            host::count(&codec::metrics::name("ai_prompt_template_requests_total", &[("template", template), ("outcome", outcome)]), 1);
        };
        match self.0.render(body) {
            Ok(Some((name, rendered))) => {
                // Readable by later filters and access logs: which template rendered.
                host::set_property("ai.template", name.as_bytes());
                count(&name, "rendered");
                Ok(Some(rendered))
            }
            Ok(None) => {
                count("none", "untemplated");
                Ok(None)
            }
            Err(err) => {
                // The name a client asked for is not a label: it is unbounded.
                count("any", "error");
                Err(err)
            }
        }
    }
}
