//! Request bodies: check them against the route, pin the model, fill the
//! configured defaults, force usage reporting in streams, and translate to
//! the upstream dialect. The body is re-serialized only when it changed.

use super::config::{Credential, ProxyConfig, RouteType, StreamingPolicy};
use super::provider::{to_vec, RequestContext};
use crate::error::GatewayError;
use crate::openai::{ChatRequest, CompletionRequest, EmbeddingRequest, Rest, StreamOptions};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

/// What the request told us that the response side needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestFacts {
    pub stream: bool,
    /// The client asked for the final usage chunk itself.
    pub client_wants_usage: bool,
    /// The model the request is for (after pinning), for logs and metrics.
    pub model: Option<String>,
}

pub struct Translated {
    /// The new body, or None when the client's bytes go upstream unchanged.
    pub body: Option<Vec<u8>>,
    pub facts: RequestFacts,
}

/// Parses a request body of the route's type, with messages a client can act on.
pub fn parse_body<T: DeserializeOwned>(body: &[u8], route: RouteType) -> Result<T, GatewayError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(GatewayError::bad_request("request body is empty; expected a JSON object"));
    }
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            let hint = route_mismatch_hint(body, route);
            GatewayError::bad_request(format!("invalid {} request: {e}{hint}", route_noun(route)))
        } else {
            GatewayError::bad_request(format!("request body is not valid JSON: {e}"))
        }
    })
}

fn route_noun(route: RouteType) -> &'static str {
    match route {
        RouteType::Chat => "chat completion",
        RouteType::Completions => "completion",
        RouteType::Embeddings => "embeddings",
        RouteType::Responses => "responses",
        RouteType::Preserve => "",
    }
}

/// Names the likely mistake when a body of another route type arrives.
fn route_mismatch_hint(body: &[u8], route: RouteType) -> &'static str {
    #[derive(Deserialize)]
    struct Keys {
        messages: Option<serde::de::IgnoredAny>,
        prompt: Option<serde::de::IgnoredAny>,
        input: Option<serde::de::IgnoredAny>,
    }
    let Ok(keys) = serde_json::from_slice::<Keys>(body) else { return "" };
    match route {
        RouteType::Chat if keys.messages.is_none() && keys.prompt.is_some() => {
            " (this route takes chat requests with `messages`; the body is a completions request with `prompt`)"
        }
        RouteType::Completions if keys.prompt.is_none() && keys.messages.is_some() => {
            " (this route takes completions requests with `prompt`; the body is a chat request with `messages`)"
        }
        RouteType::Embeddings if keys.input.is_none() => " (this route takes embeddings requests with `input`)",
        _ => "",
    }
}

/// The shared handling of `model`: pinned by config (Kong's rule: a request
/// naming another model is refused, unless the balancer picks the model),
/// else required from the client.
fn pin_model(cfg: &ProxyConfig, model: &mut Option<String>, changed: &mut bool) -> Result<(), GatewayError> {
    match (&cfg.model_name, model.as_deref()) {
        (Some(pinned), Some(asked)) if asked != pinned && cfg.replaces_model(asked) => {
            *model = Some(pinned.clone());
            *changed = true;
            Ok(())
        }
        (Some(pinned), Some(asked)) if asked != pinned => Err(GatewayError::bad_request(format!(
            "cannot use own model - must be: {pinned}"
        ))
        .with_code("model_not_allowed")),
        (Some(pinned), None) => {
            *model = Some(pinned.clone());
            *changed = true;
            Ok(())
        }
        (None, None) if !cfg.api.model_in_endpoint() => {
            Err(GatewayError::bad_request("`model` is required: the gateway has no default model for this route"))
        }
        (None, Some(asked)) if asked.is_empty() || asked.len() > 256 => {
            Err(GatewayError::bad_request("`model` must be 1 to 256 characters"))
        }
        _ => Ok(()),
    }
}

fn fill<T: Copy>(slot: &mut Option<T>, default: Option<T>, changed: &mut bool) {
    if slot.is_none() && default.is_some() {
        *slot = default;
        *changed = true;
    }
}

/// Applies `response_streaming` and decides on `stream_options`.
fn streaming(
    cfg: &ProxyConfig,
    stream: &mut Option<bool>,
    stream_options: &mut Option<StreamOptions>,
    changed: &mut bool,
) -> Result<(bool, bool), GatewayError> {
    let mut on = stream.unwrap_or(false);
    match cfg.streaming {
        StreamingPolicy::Deny if on => {
            return Err(GatewayError::bad_request("streaming is not allowed on this route").with_code("stream_not_allowed"))
        }
        StreamingPolicy::Always if !on => {
            *stream = Some(true);
            *changed = true;
            on = true;
        }
        _ => {}
    }
    let asked = stream_options.as_ref().and_then(|o| o.include_usage) == Some(true);
    if on && !asked && cfg.api.needs_stream_options() {
        // Usage is only reported in streams on request: ask for it, and
        // drop the extra chunk again on the way back.
        stream_options.get_or_insert_with(StreamOptions::default).include_usage = Some(true);
        *changed = true;
        return Ok((on, false));
    }
    // Mistral reports usage on its last chunk unasked (stripped on the way
    // back unless asked); native translators write a usage chunk only when
    // the client asked.
    Ok((on, asked))
}

fn body_credential(cfg: &ProxyConfig, rest: &mut Rest, changed: &mut bool) {
    for cred in &cfg.credentials {
        if let Credential::Body { name, value } = cred {
            if cfg.allow_override && rest.contains_key(name) {
                continue;
            }
            rest.insert(name.clone(), Value::String(value.clone()));
            *changed = true;
        }
    }
}

pub fn translate_request(cfg: &ProxyConfig, body: &[u8]) -> Result<Translated, GatewayError> {
    match cfg.upstream_route {
        RouteType::Chat => chat(cfg, body),
        RouteType::Completions => completions(cfg, body),
        RouteType::Embeddings => embeddings(cfg, body),
        RouteType::Responses => responses(cfg, body),
        RouteType::Preserve => preserve(cfg, body),
    }
}

fn chat(cfg: &ProxyConfig, body: &[u8]) -> Result<Translated, GatewayError> {
    chat_typed(cfg, parse_body(body, RouteType::Chat)?, false)
}

/// A chat request another client format was translated to: read from the
/// `Value` it was built as, and always written out (the client sent
/// something else).
pub fn translate_chat_value(cfg: &ProxyConfig, chat: Value) -> Result<Translated, GatewayError> {
    let req = ChatRequest::deserialize(chat).map_err(|e| GatewayError::bad_request(format!("invalid {} request: {e}", route_noun(RouteType::Chat))))?;
    let translated = chat_typed(cfg, req, true)?;
    if translated.body.is_none() {
        return Err(GatewayError::new(crate::ErrorKind::Internal, "the translated request was not written"));
    }
    Ok(translated)
}

fn chat_typed(cfg: &ProxyConfig, mut req: ChatRequest, mut changed: bool) -> Result<Translated, GatewayError> {
    pin_model(cfg, &mut req.model, &mut changed)?;
    let o = &cfg.options;
    if req.max_tokens.is_none() && req.max_completion_tokens.is_none() {
        fill(&mut req.max_tokens, o.max_tokens, &mut changed);
    }
    fill(&mut req.temperature, o.temperature, &mut changed);
    fill(&mut req.top_p, o.top_p, &mut changed);
    if cfg.api.takes_top_k() {
        fill(&mut req.top_k, o.top_k, &mut changed);
    }
    let (stream, client_wants_usage) = streaming(cfg, &mut req.stream, &mut req.stream_options, &mut changed)?;
    body_credential(cfg, &mut req.rest, &mut changed);
    let facts = RequestFacts { stream, client_wants_usage, model: req.model.clone() };
    let body = cfg.api.chat_request(req, &RequestContext { max_tokens: cfg.options.max_tokens, stream, changed })?;
    Ok(Translated { body, facts })
}

fn completions(cfg: &ProxyConfig, body: &[u8]) -> Result<Translated, GatewayError> {
    let mut req: CompletionRequest = parse_body(body, RouteType::Completions)?;
    let mut changed = false;
    pin_model(cfg, &mut req.model, &mut changed)?;
    let o = &cfg.options;
    fill(&mut req.max_tokens, o.max_tokens, &mut changed);
    fill(&mut req.temperature, o.temperature, &mut changed);
    fill(&mut req.top_p, o.top_p, &mut changed);
    if cfg.api.takes_top_k() {
        fill(&mut req.top_k, o.top_k, &mut changed);
    }
    let (stream, client_wants_usage) = streaming(cfg, &mut req.stream, &mut req.stream_options, &mut changed)?;
    body_credential(cfg, &mut req.rest, &mut changed);
    let facts = RequestFacts { stream, client_wants_usage, model: req.model.clone() };
    let body = cfg.api.completions_request(req, &RequestContext { max_tokens: cfg.options.max_tokens, stream, changed })?;
    Ok(Translated { body, facts })
}

fn embeddings(cfg: &ProxyConfig, body: &[u8]) -> Result<Translated, GatewayError> {
    let mut req: EmbeddingRequest = parse_body(body, RouteType::Embeddings)?;
    let mut changed = false;
    pin_model(cfg, &mut req.model, &mut changed)?;
    if !matches!(req.input, Value::String(_) | Value::Array(_)) {
        return Err(GatewayError::bad_request("`input` must be a string or an array"));
    }
    body_credential(cfg, &mut req.rest, &mut changed);
    let facts = RequestFacts { stream: false, client_wants_usage: false, model: req.model.clone() };
    let body = cfg.api.embeddings_request(req, &RequestContext { max_tokens: cfg.options.max_tokens, stream: false, changed })?;
    Ok(Translated { body, facts })
}

/// `preserve`: the body is the client's; only a body credential is added.
/// `stream` and `model` are read, if the body is JSON, for the response side.
/// A Responses API request, for a provider that speaks it: left as the
/// client sent it but for the model rule, the streaming policy and body
/// credentials. Its usage always comes with the answer.
fn responses(cfg: &ProxyConfig, body: &[u8]) -> Result<Translated, GatewayError> {
    let mut req: Rest = parse_body(body, RouteType::Responses)?;
    let mut changed = false;
    let mut model = match req.get("model") {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) => Some(m.clone()),
        Some(_) => return Err(GatewayError::bad_request("`model` must be a string")),
    };
    if model.is_none() && cfg.model_name.is_none() {
        // Azure's v1 API names the deployment in the body.
        model = cfg.options.azure_deployment_id.clone().filter(|_| cfg.api.model_in_endpoint());
        changed |= model.is_some();
    }
    pin_model(cfg, &mut model, &mut changed)?;
    let mut stream = match req.get("stream") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(GatewayError::bad_request("`stream` must be a boolean")),
    };
    // The streaming policy; a Responses stream always carries its usage.
    let on = match (cfg.streaming, stream.unwrap_or(false)) {
        (StreamingPolicy::Deny, true) => return Err(GatewayError::bad_request("streaming is not allowed on this route").with_code("stream_not_allowed")),
        (StreamingPolicy::Always, false) => {
            stream = Some(true);
            changed = true;
            true
        }
        (_, on) => on,
    };
    body_credential(cfg, &mut req, &mut changed);
    if changed {
        if let Some(m) = &model {
            req.insert("model".into(), Value::String(m.clone()));
        }
        if let Some(s) = stream {
            req.insert("stream".into(), Value::Bool(s));
        }
    }
    let facts = RequestFacts { stream: on, client_wants_usage: true, model };
    Ok(Translated { body: if changed { Some(to_vec(&req)?) } else { None }, facts })
}

fn preserve(cfg: &ProxyConfig, body: &[u8]) -> Result<Translated, GatewayError> {
    #[derive(Deserialize)]
    struct Probe {
        model: Option<Value>,
        stream: Option<Value>,
    }
    let probe = serde_json::from_slice::<Probe>(body).ok();
    let stream = probe.as_ref().and_then(|p| p.stream.as_ref()).and_then(Value::as_bool).unwrap_or(false);
    let model = probe.as_ref().and_then(|p| p.model.as_ref()).and_then(Value::as_str).map(str::to_string);
    let facts = RequestFacts { stream, client_wants_usage: true, model };
    let needs_body_credential = cfg.credentials.iter().any(|c| matches!(c, Credential::Body { .. }));
    if !needs_body_credential {
        return Ok(Translated { body: None, facts });
    }
    let mut rest: Rest = serde_json::from_slice(body)
        .map_err(|e| GatewayError::bad_request(format!("request body must be a JSON object: {e}")))?;
    let mut changed = false;
    body_credential(cfg, &mut rest, &mut changed);
    Ok(Translated { body: Some(to_vec(&rest)?), facts })
}

#[cfg(test)]
mod tests {
    // The same tests run natively and, through wasm-bindgen-test, as wasm32.
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;
    use crate::proxy::config::ProxyConfig;

    fn cfg(json: &str) -> ProxyConfig {
        ProxyConfig::from_json(json.as_bytes(), &|_| None).unwrap()
    }

    fn body_json(t: &Translated) -> Value {
        serde_json::from_slice(t.body.as_deref().unwrap_or(b"null")).unwrap()
    }

    const OPENAI: &str = r#"{"model":{"provider":"openai","name":"gpt-4o","options":{"max_tokens":256,"temperature":0.2}}}"#;

    #[test]
    fn untouched_body_is_not_reserialized() {
        let c = cfg(r#"{"model":{"provider":"openai","name":"gpt-4o"}}"#);
        let t = translate_request(&c, br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert!(t.body.is_none());
        assert_eq!(t.facts.model.as_deref(), Some("gpt-4o"));
    }

    #[test]
    fn model_and_options_are_filled_and_unknown_fields_kept() {
        let t = translate_request(&cfg(OPENAI), br#"{"messages":[{"role":"user","content":"hi"}],"seed":7,"temperature":0.9}"#).unwrap();
        let v = body_json(&t);
        assert_eq!(v["model"], "gpt-4o");
        assert_eq!(v["max_tokens"], 256);
        assert_eq!(v["temperature"], 0.9, "the client's own value wins");
        assert_eq!(v["seed"], 7);
    }

    #[test]
    fn max_completion_tokens_blocks_the_default() {
        let t = translate_request(&cfg(OPENAI), br#"{"messages":[],"max_completion_tokens":5}"#).unwrap();
        assert!(body_json(&t).get("max_tokens").is_none());
    }

    #[test]
    fn a_balancer_target_replaces_the_clients_model() {
        let cfg = ProxyConfig { replace_client_model: true, ..cfg(OPENAI) };
        let t = translate_request(&cfg, br#"{"model":"gpt-3.5","messages":[]}"#).unwrap();
        assert_eq!(body_json(&t)["model"], "gpt-4o");
    }

    #[test]
    fn an_alias_becomes_the_configured_model_and_other_names_are_still_refused() {
        let cfg = cfg(r#"{"model_aliases":["team-gpt","gpt"],"model":{"provider":"openai","name":"gpt-4o"}}"#);
        let t = translate_request(&cfg, br#"{"model":"team-gpt","messages":[]}"#).unwrap();
        assert_eq!(body_json(&t)["model"], "gpt-4o");
        let e = translate_request(&cfg, br#"{"model":"gpt-3.5","messages":[]}"#).err().unwrap();
        assert_eq!(e.message, "cannot use own model - must be: gpt-4o");
        let err = ProxyConfig::from_json(br#"{"model_aliases":["a"],"model":{"provider":"openai"}}"#, &|_| None).err().unwrap();
        assert_eq!(err.path, "model_aliases");
        let err = ProxyConfig::from_json(br#"{"model_aliases":["a","b\nc"],"model":{"provider":"openai","name":"m"}}"#, &|_| None).err().unwrap();
        assert_eq!(err.path, "model_aliases[1]");
    }

    #[test]
    fn other_model_is_refused_as_kong_does() {
        let e = translate_request(&cfg(OPENAI), br#"{"model":"gpt-3.5","messages":[]}"#).err().unwrap();
        assert_eq!(e.status, 400);
        assert_eq!(e.message, "cannot use own model - must be: gpt-4o");
    }

    #[test]
    fn model_required_when_not_pinned() {
        let e = translate_request(&cfg(r#"{"model":{"provider":"openai"}}"#), br#"{"messages":[]}"#).err().unwrap();
        assert!(e.message.contains("`model` is required"));
    }

    #[test]
    fn stream_usage_is_forced_and_remembered() {
        let t = translate_request(&cfg(OPENAI), br#"{"messages":[],"stream":true,"stream_options":{"x":1}}"#).unwrap();
        let v = body_json(&t);
        assert_eq!(v["stream_options"], serde_json::json!({"include_usage":true,"x":1}));
        assert!(t.facts.stream && !t.facts.client_wants_usage);
        let t = translate_request(&cfg(OPENAI), br#"{"messages":[],"stream":true,"stream_options":{"include_usage":true}}"#).unwrap();
        assert!(t.facts.client_wants_usage);
    }

    #[test]
    fn mistral_streams_are_not_given_stream_options() {
        let c = cfg(r#"{"model":{"provider":"mistral","name":"mistral-small"}}"#);
        let t = translate_request(&c, br#"{"messages":[],"stream":true}"#).unwrap();
        assert!(t.body.as_deref().is_none_or(|b| !String::from_utf8_lossy(b).contains("stream_options")));
        assert!(!t.facts.client_wants_usage, "Mistral's unasked usage is taken out of the stream");
        let t = translate_request(&c, br#"{"messages":[],"stream":true,"stream_options":{"include_usage":true}}"#).unwrap();
        assert!(t.body.as_deref().is_some_and(|b| !String::from_utf8_lossy(b).contains("stream_options")), "Mistral rejects stream_options");
        assert!(t.facts.client_wants_usage);
    }

    #[test]
    fn streaming_policy() {
        let deny = cfg(r#"{"response_streaming":"deny","model":{"provider":"openai","name":"m"}}"#);
        let e = translate_request(&deny, br#"{"messages":[],"stream":true}"#).err().unwrap();
        assert_eq!(e.code.as_deref(), Some("stream_not_allowed"));
        let always = cfg(r#"{"response_streaming":"always","model":{"provider":"openai","name":"m"}}"#);
        let t = translate_request(&always, br#"{"messages":[]}"#).unwrap();
        assert_eq!(body_json(&t)["stream"], true);
    }

    #[test]
    fn wrong_route_body_is_explained() {
        let e = translate_request(&cfg(OPENAI), br#"{"prompt":"hi"}"#).err().unwrap();
        assert!(e.message.contains("completions request with `prompt`"), "{}", e.message);
        let c = cfg(r#"{"route_type":"llm/v1/completions","model":{"provider":"openai","name":"m"}}"#);
        let e = translate_request(&c, br#"{"messages":[]}"#).err().unwrap();
        assert!(e.message.contains("chat request with `messages`"), "{}", e.message);
    }

    #[test]
    fn bad_bodies_are_400_not_panics() {
        let c = cfg(OPENAI);
        for body in [&b""[..], b"{", b"[]", b"\xff\xfe", b"{\"messages\":\"x\"}", b"{\"messages\":[{\"role\":1}]}", b"{\"messages\":[],\"max_tokens\":-1}", b"{\"messages\":[],\"max_tokens\":1e999}"] {
            let e = translate_request(&c, body).err().unwrap();
            assert_eq!(e.status, 400, "{}", String::from_utf8_lossy(body));
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(translate_request(&c, deep.as_bytes()).err().map(|e| e.status), Some(400));
    }

    #[test]
    fn body_credential_is_injected() {
        let c = cfg(r#"{"auth":{"param_name":"api_key","param_value":"s3cret","param_location":"body"},"route_type":"llm/v1/embeddings","model":{"provider":"openai","name":"e"}}"#);
        let t = translate_request(&c, br#"{"input":"x","api_key":"client"}"#).unwrap();
        assert_eq!(body_json(&t)["api_key"], "s3cret");
    }

    #[test]
    fn responses_go_as_sent_but_for_the_model_rule_and_streaming_policy() {
        let c = cfg(r#"{"route_type":"llm/v1/responses","model":{"provider":"openai","name":"gpt-4o"}}"#);
        let t = translate_request(&c, br#"{"model":"gpt-4o","input":"hi","stream":true}"#).unwrap();
        assert!(t.body.is_none() && t.facts.stream && t.facts.client_wants_usage);
        let t = translate_request(&c, br#"{"input":"hi"}"#).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&t.body.unwrap()).unwrap()["model"], "gpt-4o", "the pinned model is filled in");
        assert_eq!(translate_request(&c, br#"{"model":"o3","input":"hi"}"#).err().and_then(|e| e.code), Some("model_not_allowed".into()));
        let deny = cfg(r#"{"route_type":"llm/v1/responses","response_streaming":"deny","model":{"provider":"openai"}}"#);
        assert_eq!(translate_request(&deny, br#"{"model":"m","input":"hi","stream":true}"#).err().and_then(|e| e.code), Some("stream_not_allowed".into()));
        // Azure's v1 API: the deployment is the body's model.
        let azure = cfg(r#"{"route_type":"llm/v1/responses","model":{"provider":"azure","options":{"azure_instance":"i","azure_deployment_id":"dep"}}}"#);
        assert_eq!(azure.path.as_deref(), Some("/openai/v1/responses"));
        let t = translate_request(&azure, br#"{"input":"hi"}"#).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&t.body.unwrap()).unwrap()["model"], "dep");
        // Providers that do not speak it get chat, translated (`responses.rs`).
        for p in ["anthropic", "gemini", "mistral"] {
            let c = cfg(&format!(r#"{{"route_type":"llm/v1/responses","model":{{"provider":"{p}","name":"m"}}}}"#));
            assert_eq!((c.route_type, c.upstream_route), (RouteType::Responses, RouteType::Chat), "{p}");
            assert!(c.translates_responses());
        }
        assert!(!azure.translates_responses() && !c.translates_responses());
    }

    #[test]
    fn preserve_reads_stream_flag_only() {
        let c = cfg(r#"{"route_type":"preserve","model":{"provider":"openai"}}"#);
        let t = translate_request(&c, br#"{"anything":1,"stream":true}"#).unwrap();
        assert!(t.body.is_none() && t.facts.stream);
        assert!(translate_request(&c, b"not json").is_ok());
    }
}
