//! ai-proxy's plugin configuration, field for field Kong's `ai-proxy` where
//! Kong has one.

use crate::config::{check_range, parse_strict, resolve_secret, ConfigError};
use serde::Deserialize;

pub use crate::config::{is_header_name, is_header_value, DEFAULT_MAX_REQUEST_BODY_SIZE};
const MAX_MAX_REQUEST_BODY_SIZE: u64 = 128 * 1024 * 1024;
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RouteType {
    #[serde(rename = "llm/v1/chat")]
    Chat,
    #[serde(rename = "llm/v1/completions")]
    Completions,
    #[serde(rename = "llm/v1/embeddings")]
    Embeddings,
    /// Path and body go upstream as the client sent them; only host and
    /// credentials change.
    #[serde(rename = "preserve")]
    Preserve,
}

impl RouteType {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteType::Chat => "llm/v1/chat",
            RouteType::Completions => "llm/v1/completions",
            RouteType::Embeddings => "llm/v1/embeddings",
            RouteType::Preserve => "preserve",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderName {
    Openai,
    Azure,
    Mistral,
    Llama2,
    Ollama,
    Anthropic,
    Cohere,
    Gemini,
    Bedrock,
}

impl ProviderName {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderName::Openai => "openai",
            ProviderName::Azure => "azure",
            ProviderName::Mistral => "mistral",
            ProviderName::Llama2 => "llama2",
            ProviderName::Ollama => "ollama",
            ProviderName::Anthropic => "anthropic",
            ProviderName::Cohere => "cohere",
            ProviderName::Gemini => "gemini",
            ProviderName::Bedrock => "bedrock",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    /// OpenAI's wire format (`/v1/chat/completions`).
    Openai,
    /// Ollama's native API (`/api/chat`, NDJSON streams).
    Ollama,
    /// Kong's llama2 raw prompt format: not supported, rejected at load.
    Raw,
}

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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamLocation {
    #[default]
    Query,
    Body,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub header_name: Option<String>,
    pub header_value: Option<String>,
    pub param_name: Option<String>,
    pub param_value: Option<String>,
    pub param_location: Option<ParamLocation>,
    #[serde(default)]
    pub allow_override: bool,
    /// Bedrock: AWS credentials for SigV4 (may be `{vault://env/...}`).
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<String>,
    pub aws_session_token: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelOptions {
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    pub upstream_url: Option<String>,
    pub upstream_path: Option<String>,
    pub azure_instance: Option<String>,
    pub azure_deployment_id: Option<String>,
    pub azure_api_version: Option<String>,
    pub mistral_format: Option<ModelFormat>,
    pub llama2_format: Option<ModelFormat>,
    /// Price per million prompt tokens, in the operator's currency.
    pub input_cost: Option<f64>,
    /// Price per million completion tokens.
    pub output_cost: Option<f64>,
    /// Anthropic's `anthropic-version` header.
    pub anthropic_version: Option<String>,
    pub gemini: Option<GeminiOptions>,
    pub bedrock: Option<BedrockOptions>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeminiOptions {
    /// Host of the API; Vertex AI when `project_id` is set.
    pub api_endpoint: Option<String>,
    pub project_id: Option<String>,
    pub location_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BedrockOptions {
    pub aws_region: Option<String>,
}

pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

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

/// AWS credentials and region for SigV4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsAuth {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub region: String,
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
    pub route_type: RouteType,
    pub provider: ProviderName,
    /// The API spoken upstream: endpoint and translation.
    pub api: &'static dyn super::provider::Provider,
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
    /// Bedrock only.
    pub aws: Option<AwsAuth>,
    /// Gemini: Vertex project and location, for model paths.
    pub vertex: Option<(String, String)>,
    pub anthropic_version: String,
    pub consumer_header: Option<String>,
    /// The configured model replaces the client's instead of refusing a
    /// different one (ai-proxy-advanced: the balancer picks the model).
    pub replace_client_model: bool,
    pub llm_format: LlmFormat,
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

/// True for a valid HTTP header name (RFC 9110 token).

/// Path segments from config (deployment ids, model names) may only hold
/// characters that cannot change the target.
pub fn is_path_segment(value: &str) -> bool {
    !value.is_empty()
        && value != "."
        && value != ".."
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:~".contains(&b))
}

/// Percent-encodes a query component.
pub fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
        let api = super::provider::lookup(provider, api_format);
        let vertex = super::gemini::vertex(o)?;
        let route = raw.route_type;
        if route != RouteType::Preserve && !api.routes().contains(&route) {
            return Err(ConfigError::new(
                "route_type",
                format!("{} is not supported for provider {}", route.as_str(), provider.as_str()),
            ));
        }
        if raw.llm_format == LlmFormat::Anthropic && route != RouteType::Chat {
            return Err(ConfigError::new("llm_format", "`anthropic` (the Messages API) needs route_type llm/v1/chat"));
        }
        let aws = if provider == ProviderName::Bedrock { Some(super::bedrock::region(o)?) } else { None };

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

        let (credentials, mut missing_secret) = credentials(&raw.auth, env)?;
        let aws = match aws {
            Some(region) => {
                let mut secret = |path: &str, value: &Option<String>| -> Result<Option<String>, ConfigError> {
                    let Some(value) = value else { return Ok(None) };
                    match crate::config::resolve_secret(value, env) {
                        Ok(v) => Ok(Some(v)),
                        Err(var) => {
                            missing_secret.get_or_insert(format!("{path} (environment variable {var} is not set)"));
                            Ok(Some(String::new()))
                        }
                    }
                };
                let key = secret("auth.aws_access_key_id", &raw.auth.aws_access_key_id)?;
                let secret_key = secret("auth.aws_secret_access_key", &raw.auth.aws_secret_access_key)?;
                let token = secret("auth.aws_session_token", &raw.auth.aws_session_token)?;
                match (key, secret_key) {
                    (Some(access_key_id), Some(secret_access_key)) => {
                        Some(AwsAuth { access_key_id, secret_access_key, session_token: token, region })
                    }
                    _ => {
                        return Err(ConfigError::new(
                            "auth.aws_access_key_id",
                            "bedrock needs auth.aws_access_key_id and auth.aws_secret_access_key",
                        ))
                    }
                }
            }
            None => {
                if raw.auth.aws_access_key_id.is_some() || raw.auth.aws_secret_access_key.is_some() {
                    return Err(ConfigError::new("auth.aws_access_key_id", "is only used by provider bedrock"));
                }
                None
            }
        };
        if let Some(h) = &raw.consumer_header {
            if !is_header_name(h) {
                return Err(ConfigError::new("consumer_header", "is not a valid header name"));
            }
        }
        let anthropic_version = o.anthropic_version.clone().unwrap_or_else(|| DEFAULT_ANTHROPIC_VERSION.to_string());
        if !is_path_segment(&anthropic_version) {
            return Err(ConfigError::new("model.options.anthropic_version", "is not a valid version"));
        }
        Ok(ProxyConfig {
            route_type: route,
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
            aws,
            vertex,
            anthropic_version,
            consumer_header: raw.consumer_header.map(|h| h.to_ascii_lowercase()),
            replace_client_model: false,
            llm_format: raw.llm_format,
        })
    }

    /// The upstream path for one request: fixed for most providers; Gemini
    /// and Bedrock name the model (and streaming) in the path. `model` is
    /// checked to be one path segment, so it cannot change the target.
    pub fn request_path(&self, model: Option<&str>, stream: bool) -> Result<Option<String>, String> {
        if self.path.is_some() || self.route_type == RouteType::Preserve {
            return Ok(self.path.clone());
        }
        self.api.request_path(self, model.unwrap_or_default(), stream)
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
