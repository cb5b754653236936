//! Mistral's chat API speaks OpenAI's format with a strict schema: a field
//! it does not know is a 422 (`extra_forbidden`). What OpenAI clients
//! commonly send is mapped, dropped or refused here; its streams get
//! OpenAI's semantics on the way back (`openai::OpenAiStream::mistral`).

use super::options::{ModelOptions, RouteType};
use super::openai::OpenAiStream;
use super::provider::{Convention, openai_body, Endpoint, Meta, Provider, RequestContext, CHAT_AND_EMBEDDINGS};
use super::response::{usage_only, Answer};
use super::stream::StreamTranslator;
use crate::config::ConfigError;
use crate::error::GatewayError;
use crate::openai::ChatRequest;

/// The usual credential (see `registry::convention`).
pub const CREDENTIAL: Convention = Convention::Header { secret: "mistral", env: "MISTRAL_API_KEY", header: "Authorization", bearer: true };

/// Fields with no Mistral equivalent that change nothing the client sees.
const DROPPED: [&str; 5] = ["user", "store", "metadata", "service_tier", "reasoning_effort"];
/// Fields asking for something Mistral cannot return (it has `n`).
const REFUSED: [&str; 3] = ["logprobs", "top_logprobs", "logit_bias"];

/// Rewrites an OpenAI chat request for Mistral (call after streaming has
/// read `stream_options`). Sets `changed` when the body must be re-sent.
pub fn adapt_chat_request(req: &mut ChatRequest, changed: &mut bool) -> Result<(), GatewayError> {
    super::common::field_policy("mistral", &req.rest, &REFUSED, &[])?;
    for field in REFUSED {
        *changed |= req.rest.remove(field).is_some(); // `false` or null: accepted, not sent
    }
    // Mistral's roles are system, user, assistant and tool.
    for m in req.messages.iter_mut().filter(|m| m.role == "developer") {
        m.role = "system".into();
        *changed = true;
    }
    if req.stream_options.take().is_some() {
        *changed = true; // usage comes on Mistral's last chunk anyway
    }
    if let Some(n) = req.max_completion_tokens.take() {
        req.max_tokens.get_or_insert(n);
        *changed = true;
    }
    if let Some(seed) = req.rest.remove("seed") {
        req.rest.entry("random_seed").or_insert(seed);
        *changed = true;
    }
    for field in DROPPED {
        if req.rest.remove(field).is_some() {
            log::debug!("mistral: dropped `{field}` (no equivalent)");
            *changed = true;
        }
    }
    Ok(())
}

/// Mistral's API (`mistral_format: openai`, the default).
pub struct Mistral;

impl Provider for Mistral {
    fn name(&self) -> &'static str {
        "mistral"
    }
    fn routes(&self) -> &'static [RouteType] {
        CHAT_AND_EMBEDDINGS // no legacy completions API
    }
    fn path(&self, route: RouteType) -> Option<&'static str> {
        super::openai::openai_path(route)
    }
    fn endpoint(&self, _: &ModelOptions, route: RouteType) -> Result<Option<Endpoint>, ConfigError> {
        Ok(Some(Endpoint { host: "api.mistral.ai".into(), path: self.path(route).map(str::to_string) }))
    }
    fn speaks_openai(&self) -> bool {
        true
    }
    fn takes_top_k(&self) -> bool {
        false
    }
    fn chat_request(&self, mut req: ChatRequest, cx: &RequestContext) -> Result<Option<Vec<u8>>, GatewayError> {
        let mut changed = cx.changed;
        adapt_chat_request(&mut req, &mut changed)?;
        openai_body(&req, changed)
    }
    fn answer(&self, route: RouteType, body: &[u8], _: &Meta) -> Answer {
        usage_only(route, body)
    }
    fn stream(&self, _: RouteType, _: &Meta, client_wants_usage: bool) -> Box<dyn StreamTranslator> {
        Box::new(OpenAiStream::mistral(client_wants_usage))
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    fn adapted(json: &str) -> Result<serde_json::Value, GatewayError> {
        let mut req: ChatRequest = serde_json::from_str(json).unwrap();
        let mut changed = false;
        adapt_chat_request(&mut req, &mut changed)?;
        Ok(serde_json::to_value(&req).unwrap())
    }

    #[test]
    fn openai_fields_become_mistrals_or_go() {
        let v = adapted(r#"{"messages":[],"max_completion_tokens":9,"seed":3,"user":"u","store":true,"metadata":{},"service_tier":"auto","reasoning_effort":"low","stream_options":{"include_usage":true},"logprobs":false,"n":2}"#).unwrap();
        assert_eq!(v, serde_json::json!({"messages":[],"max_tokens":9,"random_seed":3,"n":2}));
        assert_eq!(adapted(r#"{"messages":[],"max_tokens":5,"max_completion_tokens":9}"#).unwrap()["max_tokens"], 5, "an explicit max_tokens wins");
    }

    #[test]
    fn what_mistral_cannot_give_is_refused() {
        for body in [r#"{"messages":[],"logprobs":true}"#, r#"{"messages":[],"top_logprobs":2}"#, r#"{"messages":[],"logit_bias":{"1":2}}"#] {
            assert_eq!(adapted(body).unwrap_err().status, 400, "{body}");
        }
    }
}
