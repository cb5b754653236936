//! ai-proxy's plugin configuration, field for field Kong's `ai-proxy` where
//! Kong has one.

use crate::config::{check_range, parse_strict, resolve_secret, ConfigError};
use serde::Deserialize;
use std::rc::Rc;

pub use super::options::*;
pub use super::registry::ProviderName;
pub use crate::config::{is_header_name, is_header_value, DEFAULT_MAX_REQUEST_BODY_SIZE};
const MAX_MAX_REQUEST_BODY_SIZE: u64 = 128 * 1024 * 1024;

/// The format the route's clients speak (Kong's `llm_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LlmFormat {
    #[default]
    Openai,
    /// Anthropic's Messages API (`POST /v1/messages`).
    Anthropic,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamingPolicy {
    #[default]
    Allow,
    Deny,
    Always,
}


#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub provider: ProviderName,
    pub name: Option<String>,
    #[serde(default)]
    pub options: ModelOptions,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    #[serde(default)]
    pub log_statistics: bool,
    #[serde(default)]
    pub log_payloads: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default = "default_route_type")]
    pub route_type: RouteType,
    #[serde(default)]
    pub auth: AuthConfig,
    pub model: ModelConfig,
    #[serde(default)]
    pub response_streaming: StreamingPolicy,
    #[serde(default = "default_max_body")]
    pub max_request_body_size: u64,
    #[serde(default = "default_true")]
    pub model_name_header: bool,
    #[serde(default)]
    pub logging: LoggingConfig,
    /// Header naming the consumer, set by a trusted auth filter: a metrics
    /// label and an access-log field.
    #[serde(default)]
    pub consumer_header: Option<String>,
    #[serde(default)]
    pub llm_format: LlmFormat,
    /// Other names clients may send in `model` for `model.name` (the
    /// gateway file's identifier and aliases, for one base URL): replaced
    /// by it, where any other name is refused.
    #[serde(default)]
    pub model_aliases: Vec<String>,
    /// A `route` label on the metrics (the gateway file's identifier), so
    /// two routes with the same provider and model are told apart.
    #[serde(default)]
    pub route_label: Option<String>,
}

pub(crate) fn default_route_type() -> RouteType {
    RouteType::Chat
}
pub(crate) fn default_max_body() -> u64 {
    DEFAULT_MAX_REQUEST_BODY_SIZE
}
pub(crate) fn default_true() -> bool {
    true
}

/// How credentials reach the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Header { name: String, value: String },
    Query { name: String, value: String },
    Body { name: String, value: String },
}

/// A validated configuration with everything per-request work needs
/// precomputed: the request path per route, the authority, the credential.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The API the route's clients call.
    pub route_type: RouteType,
    /// The API spoken to the provider: the route's, but chat where the
    /// provider does not speak the Responses API (`client::OpenAiResponses`
    /// translates).
    pub upstream_route: RouteType,
    pub provider: ProviderName,
    /// The API spoken upstream, configured: endpoint, translation, and the
    /// provider's own settings (Vertex project, AWS keys, API version).
    pub api: Rc<dyn super::provider::Provider>,
    pub model_name: Option<String>,
    pub options: ModelOptions,
    pub streaming: StreamingPolicy,
    pub max_request_body_size: u64,
    pub model_name_header: bool,
    pub logging: LoggingConfig,
    /// `Host` to send upstream, if the provider fixes one.
    pub authority: Option<String>,
    /// Upstream path (with query) for the configured route; None for `preserve`.
    pub path: Option<String>,
    pub credentials: Vec<Credential>,
    /// Credentials named in the config whose environment variable was not
    /// set: requests are answered 500 rather than sent unauthenticated.
    pub missing_secret: Option<String>,
    pub allow_override: bool,
    pub consumer_header: Option<String>,
    /// The configured model replaces the client's instead of refusing a
    /// different one (ai-proxy-advanced: the balancer picks the model).
    pub replace_client_model: bool,
    pub llm_format: LlmFormat,
    /// Names a client may send for `model_name`, replaced by it.
    pub model_aliases: Vec<String>,
    pub route_label: Option<String>,
}

/// A parsed `upstream_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    pub authority: String,
    /// Path and query, at least `/`.
    pub path: String,
}

pub fn parse_upstream_url(url: &str) -> Result<UpstreamUrl, String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must start with http:// or https://")?;
    if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err("must not contain spaces or control characters".into());
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (rest.get(..i).unwrap_or_default(), rest.get(i..).unwrap_or("/")),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err("needs a host (and no user info)".into());
    }
    Ok(UpstreamUrl { authority: authority.to_string(), path: path.to_string() })
}

impl ProxyConfig {
    /// Parses and validates; `env` resolves `{vault://env/NAME}` secrets.
    pub fn from_json(bytes: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let raw: RawConfig = parse_strict(bytes)?;
        Self::from_raw(raw, env)
    }

    /// Validates a parsed configuration (ai-proxy-advanced builds one per target).
    pub fn from_raw(raw: RawConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let o = &raw.model.options;
        check_range("model.options.temperature", o.temperature, 0.0, 5.0)?;
        check_range("model.options.top_p", o.top_p, 0.0, 1.0)?;
        check_range("model.options.top_k", o.top_k, 0, 500)?;
        check_range("model.options.max_tokens", o.max_tokens, 1, 10_000_000)?;
        check_range("model.options.input_cost", o.input_cost, 0.0, 1e9)?;
        check_range("model.options.output_cost", o.output_cost, 0.0, 1e9)?;
        check_range("max_request_body_size", Some(raw.max_request_body_size), 1, MAX_MAX_REQUEST_BODY_SIZE)?;
        if let Some(name) = &raw.model.name {
            if name.is_empty() || name.len() > 256 || !is_header_value(name) {
                return Err(ConfigError::new("model.name", "must be 1 to 256 printable characters"));
            }
        }
        if !raw.model_aliases.is_empty() && raw.model.name.is_none() {
            return Err(ConfigError::new("model_aliases", "needs model.name (the model the aliases stand for)"));
        }
        if raw.model_aliases.len() > 64 {
            return Err(ConfigError::new("model_aliases", "at most 64 names"));
        }
        if let Some(i) = raw.model_aliases.iter().position(|a| a.is_empty() || a.len() > 256 || !is_header_value(a)) {
            return Err(ConfigError::new(format!("model_aliases[{i}]"), "must be 1 to 256 printable characters"));
        }
        if let Some(label) = &raw.route_label {
            if !crate::config::is_label(label) {
                return Err(ConfigError::new("route_label", "must be 1 to 64 letters, digits, `-` or `_`"));
            }
        }
        let upstream = match &o.upstream_url {
            Some(url) => Some(
                parse_upstream_url(url).map_err(|e| ConfigError::new("model.options.upstream_url", e))?,
            ),
            None => None,
        };
        if let Some(p) = &o.upstream_path {
            if !p.starts_with('/') || !is_header_value(p) || p.contains(' ') {
                return Err(ConfigError::new("model.options.upstream_path", "must start with / and hold no spaces or control characters"));
            }
        }

        let provider = raw.model.provider;
        let format = |field: &str, value: Option<ModelFormat>, default: Option<ModelFormat>| {
            match value.or(default) {
                Some(ModelFormat::Raw) => Err(ConfigError::new(
                    format!("model.options.{field}"),
                    "`raw` is not supported; use `openai` or `ollama`",
                )),
                Some(f) => Ok(f),
                None => Err(ConfigError::new(format!("model.options.{field}"), "is required for this provider (`openai` or `ollama`)")),
            }
        };
        let api_format = match provider {
            ProviderName::Mistral => format("mistral_format", o.mistral_format, Some(ModelFormat::Openai))?,
            ProviderName::Llama2 => format("llama2_format", o.llama2_format, None)?,
            ProviderName::Ollama => format("llama2_format", o.llama2_format, Some(ModelFormat::Ollama))?,
            _ => ModelFormat::Openai,
        };
        let (credentials, mut missing_secret) = credentials(&raw.auth, env)?;
        let mut secret = |path: &str, value: &Option<String>| -> Option<String> {
            let value = value.as_ref()?;
            match crate::config::resolve_secret(value, env) {
                Ok(v) => Some(v),
                Err(var) => {
                    missing_secret.get_or_insert(format!("{path} (environment variable {var} is not set)"));
                    Some(String::new())
                }
            }
        };
        let api = super::registry::configure(provider, api_format, o, &raw.auth, &mut secret)?;
        let client_route = raw.route_type;
        let route = match client_route {
            RouteType::Responses if !api.routes().contains(&RouteType::Responses) => RouteType::Chat,
            route => route,
        };
        if route != RouteType::Preserve && !api.routes().contains(&route) {
            return Err(ConfigError::new(
                "route_type",
                format!("{} is not supported for provider {}", route.as_str(), provider.as_str()),
            ));
        }
        if raw.llm_format == LlmFormat::Anthropic && client_route != RouteType::Chat {
            return Err(ConfigError::new("llm_format", "`anthropic` (the Messages API) needs route_type llm/v1/chat"));
        }

        // Where requests go: upstream_url, else the provider's public endpoint.
        let (authority, mut path) = match &upstream {
            // upstream_url names the whole endpoint, as in Kong; a bare base
            // URL gets the API's usual path for the route.
            Some(u) => {
                let path = match api.path(route) {
                    Some(usual) if u.path == "/" => Some(usual.to_string()),
                    Some(_) => Some(u.path.clone()),
                    None => None,
                };
                (Some(u.authority.clone()), path)
            }
            None => match api.endpoint(o, route)? {
                Some(endpoint) => (Some(endpoint.host), endpoint.path),
                None => {
                    return Err(ConfigError::new(
                        "model.options.upstream_url",
                        format!("is required for provider {}", provider.as_str()),
                    ))
                }
            },
        };
        if route == RouteType::Preserve {
            path = None; // the client's own path
        }
        if let (Some(p), Some(custom)) = (&mut path, &o.upstream_path) {
            *p = custom.clone();
        }

        if let Some(h) = &raw.consumer_header {
            if !is_header_name(h) {
                return Err(ConfigError::new("consumer_header", "is not a valid header name"));
            }
        }
        Ok(ProxyConfig {
            route_type: client_route,
            upstream_route: route,
            provider,
            api,
            model_name: raw.model.name,
            options: raw.model.options,
            streaming: raw.response_streaming,
            max_request_body_size: raw.max_request_body_size,
            model_name_header: raw.model_name_header,
            logging: raw.logging,
            authority,
            path,
            credentials,
            missing_secret,
            allow_override: raw.auth.allow_override,
            consumer_header: raw.consumer_header.map(|h| h.to_ascii_lowercase()),
            replace_client_model: false,
            llm_format: raw.llm_format,
            model_aliases: raw.model_aliases,
            route_label: raw.route_label,
        })
    }

    /// Whether a client's `model` must become the configured one: another
    /// name is replaced when the balancer picks the model or it is an alias.
    pub fn replaces_model(&self, asked: &str) -> bool {
        self.replace_client_model || self.model_aliases.iter().any(|a| a == asked)
    }

    /// The upstream path for one request: fixed for most providers; Gemini
    /// and Bedrock name the model (and streaming) in the path. `model` is
    /// checked to be one path segment, so it cannot change the target.
    pub fn request_path(&self, model: Option<&str>, stream: bool) -> Result<Option<String>, String> {
        if self.path.is_some() || self.route_type == RouteType::Preserve {
            return Ok(self.path.clone());
        }
        self.api.request_path(self.upstream_route, model.unwrap_or_default(), stream)
    }

    /// A Responses route to a provider that does not speak the Responses
    /// API: the gateway translates, and stores nothing.
    pub fn translates_responses(&self) -> bool {
        self.route_type == RouteType::Responses && self.upstream_route != RouteType::Responses
    }

    /// Cost of a request in the configured currency, if prices are set.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> Option<f64> {
        let (i, o) = (self.options.input_cost, self.options.output_cost);
        if i.is_none() && o.is_none() {
            return None;
        }
        Some((prompt_tokens as f64 * i.unwrap_or(0.0) + completion_tokens as f64 * o.unwrap_or(0.0)) / 1_000_000.0)
    }
}

fn credentials(
    auth: &AuthConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Vec<Credential>, Option<String>), ConfigError> {
    let mut out = Vec::new();
    let mut missing = None;
    let mut secret = |path: &str, value: &str| -> String {
        match resolve_secret(value, env) {
            Ok(v) => v,
            Err(var) => {
                missing.get_or_insert(format!("{path} (environment variable {var} is not set)"));
                String::new()
            }
        }
    };
    match (&auth.header_name, &auth.header_value) {
        (Some(name), Some(value)) => {
            if !is_header_name(name) {
                return Err(ConfigError::new("auth.header_name", "is not a valid header name"));
            }
            let value = secret("auth.header_value", value);
            if !is_header_value(&value) {
                return Err(ConfigError::new("auth.header_value", "must not contain control characters"));
            }
            out.push(Credential::Header { name: name.to_ascii_lowercase(), value });
        }
        (None, None) => {}
        (Some(_), None) => return Err(ConfigError::new("auth.header_value", "is required with auth.header_name")),
        (None, Some(_)) => return Err(ConfigError::new("auth.header_name", "is required with auth.header_value")),
    }
    match (&auth.param_name, &auth.param_value) {
        (Some(name), Some(value)) => {
            if name.is_empty() || name.len() > 128 {
                return Err(ConfigError::new("auth.param_name", "must be 1 to 128 characters"));
            }
            let value = secret("auth.param_value", value);
            let name = name.clone();
            out.push(match auth.param_location.unwrap_or_default() {
                ParamLocation::Query => Credential::Query { name, value },
                ParamLocation::Body => Credential::Body { name, value },
            });
        }
        (None, None) => {
            if auth.param_location.is_some() {
                return Err(ConfigError::new("auth.param_location", "needs auth.param_name and auth.param_value"));
            }
        }
        (Some(_), None) => return Err(ConfigError::new("auth.param_value", "is required with auth.param_name")),
        (None, Some(_)) => return Err(ConfigError::new("auth.param_name", "is required with auth.param_value")),
    }
    Ok((out, missing))
}

#[cfg(test)]
mod tests {
    // The same tests run natively and, through wasm-bindgen-test, as wasm32.
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(json: &str) -> Result<ProxyConfig, ConfigError> {
        ProxyConfig::from_json(json.as_bytes(), &no_env)
    }

    fn err_path(json: &str) -> String {
        parse(json).err().map(|e| e.path).unwrap_or_else(|| "<accepted>".into())
    }

    #[test]
    fn openai_defaults() {
        let c = parse(r#"{"model":{"provider":"openai","name":"gpt-4o"}}"#).unwrap();
        assert_eq!(c.authority.as_deref(), Some("api.openai.com"));
        assert_eq!(c.path.as_deref(), Some("/v1/chat/completions"));
        assert_eq!(c.api.name(), "openai");
        assert_eq!(c.max_request_body_size, DEFAULT_MAX_REQUEST_BODY_SIZE);
    }

    #[test]
    fn azure_builds_deployment_url() {
        let c = parse(r#"{"route_type":"llm/v1/embeddings","model":{"provider":"azure","options":{"azure_instance":"acme","azure_deployment_id":"emb-1"}}}"#).unwrap();
        assert_eq!(c.authority.as_deref(), Some("acme.openai.azure.com"));
        assert_eq!(c.path.as_deref(), Some("/openai/deployments/emb-1/embeddings?api-version=2024-10-21"));
        assert_eq!(err_path(r#"{"model":{"provider":"azure","options":{"azure_instance":"acme"}}}"#), "model.options.azure_deployment_id");
        assert_eq!(err_path(r#"{"model":{"provider":"azure","options":{"azure_instance":"a/b","azure_deployment_id":"d"}}}"#), "model.options.azure_instance");
    }

    #[test]
    fn upstream_url_sets_host_and_path() {
        let c = parse(r#"{"model":{"provider":"llama2","options":{"llama2_format":"openai","upstream_url":"http://vllm:8000/v1/chat/completions"}}}"#).unwrap();
        assert_eq!(c.authority.as_deref(), Some("vllm:8000"));
        assert_eq!(c.path.as_deref(), Some("/v1/chat/completions"));
        let c = parse(r#"{"model":{"provider":"ollama","options":{"upstream_url":"http://ollama:11434"}}}"#).unwrap();
        assert_eq!(c.api.name(), "ollama");
        assert_eq!(c.path.as_deref(), Some("/api/chat"));
    }

    #[test]
    fn bad_fields_are_named() {
        assert_eq!(err_path(r#"{"model":{"provider":"openai","options":{"temperature":9}}}"#), "model.options.temperature");
        assert_eq!(err_path(r#"{"model":{"provider":"openai","optoins":{}}}"#), "model.optoins");
        assert_eq!(err_path(r#"{"model":{"provider":"nope"}}"#), "model.provider");
        assert_eq!(err_path(r#"{"route_type":"llm/v2/chat","model":{"provider":"openai"}}"#), "route_type");
        assert_eq!(err_path(r#"{"model":{"provider":"llama2","options":{"upstream_url":"http://x"}}}"#), "model.options.llama2_format");
        assert_eq!(err_path(r#"{"model":{"provider":"llama2","options":{"llama2_format":"raw","upstream_url":"http://x"}}}"#), "model.options.llama2_format");
        assert_eq!(err_path(r#"{"model":{"provider":"ollama"}}"#), "model.options.upstream_url");
        assert_eq!(err_path(r#"{"model":{"provider":"openai","options":{"upstream_url":"ftp://x"}}}"#), "model.options.upstream_url");
        assert_eq!(err_path(r#"{"auth":{"header_name":"Authorization"},"model":{"provider":"openai"}}"#), "auth.header_value");
        assert_eq!(err_path(r#"{"auth":{"header_name":"Bad Name","header_value":"x"},"model":{"provider":"openai"}}"#), "auth.header_name");
        assert_eq!(err_path(r#"{"model":{"provider":"openai"},"max_request_body_size":0}"#), "max_request_body_size");
        assert_eq!(err_path(r#"{"route_type":"llm/v1/completions","model":{"provider":"mistral"}}"#), "route_type");
        assert_eq!(err_path("{}"), ".");
    }

    #[test]
    fn secrets_from_env_and_missing_ones() {
        let env = |k: &str| (k == "OPENAI_API_KEY").then(|| "sk-env".to_string());
        let c = ProxyConfig::from_json(
            br#"{"auth":{"header_name":"Authorization","header_value":"{vault://env/OPENAI_API_KEY}"},"model":{"provider":"openai"}}"#,
            &env,
        )
        .unwrap();
        assert_eq!(c.credentials, vec![Credential::Header { name: "authorization".into(), value: "sk-env".into() }]);
        assert!(c.missing_secret.is_none());
        let c = parse(r#"{"auth":{"param_name":"key","param_value":"{vault://env/gemini-key}"},"model":{"provider":"openai"}}"#).unwrap();
        assert!(c.missing_secret.as_deref().unwrap_or_default().contains("GEMINI_KEY"));
    }

    #[test]
    fn cost_per_million() {
        let c = parse(r#"{"model":{"provider":"openai","options":{"input_cost":2.5,"output_cost":10}}}"#).unwrap();
        assert_eq!(c.cost(1_000_000, 500_000), Some(7.5));
        assert_eq!(parse(r#"{"model":{"provider":"openai"}}"#).unwrap().cost(1, 1), None);
    }
}
