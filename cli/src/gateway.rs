//! The gateway file: Kong's AIGateway manifest (multi-document YAML with its
//! `Secret` and `GatewayClass`), read as is, plus this gateway's additions.
//! Every model becomes filter configurations checked by the filters' own
//! parsers, so a file that validates here loads in Envoy.

use codec::decorator::Decorator;
use codec::proxy::config::ProxyConfig;
use codec::proxy::provider::Convention;
use codec::proxy::registry::{self, ProviderName};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A filter parser's message without serde's position (`at line 1 column
/// 41`), which points into the JSON aigw made, not into the user's file:
/// the error's path names the field instead.
fn plain(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) if message[i + 9..].split(" column ").all(|n| n.trim().parse::<u64>().is_ok()) => &message[..i],
        _ => message,
    }
}

/// A file error: the document, the model and the field.
#[derive(Debug, PartialEq)]
pub struct FileError(pub String);

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    spec: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    string_data: BTreeMap<String, String>,
    #[serde(default)]
    data: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct Metadata {
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    gateway_class_name: Option<String>,
    #[serde(default)]
    large_language_models: Models,
    /// Not Kong's AIGateway: MCP servers behind ai-mcp-proxy.
    #[serde(default)]
    mcp_servers: Vec<McpEntry>,
    /// Not Kong's AIGateway: A2A agents behind ai-a2a-proxy.
    #[serde(default)]
    a2a_agents: Vec<A2aEntry>,
    #[serde(default)]
    cloud_provider_credentials: Option<Credentials>,
    /// Not Kong's AIGateway: the clients, each with its own keys (Envoy's
    /// api_key_auth), optional allowed models and a budget.
    #[serde(default)]
    consumers: Vec<ConsumerEntry>,
    /// The header that carries the consumer's name to every filter.
    #[serde(default)]
    consumer_header: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConsumerEntry {
    name: String,
    keys: Vec<KeyRef>,
    /// Model identifiers it may use; all without it.
    #[serde(default)]
    models: Option<Vec<String>>,
    /// ai-token-ratelimit's `limits` (and optionally
    /// `tokens_count_strategy`) for this consumer across every model.
    #[serde(default)]
    token_budget: Option<Map<String, Value>>,
}

/// Where a consumer's key is: a Secret of the file (Kubernetes'
/// `secretKeyRef`), or an environment variable read when rendering.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeyRef {
    #[serde(default)]
    secret_key_ref: Option<SecretKeyRef>,
    #[serde(default)]
    env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretKeyRef {
    name: String,
    key: String,
}

/// A consumer, ready to render.
#[derive(Debug, Clone)]
pub struct Consumer {
    pub name: String,
    pub keys: Vec<String>,
    pub models: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Credentials {
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Models {
    #[serde(default)]
    cloud_hosted: Vec<ModelEntry>,
    #[serde(default)]
    self_hosted: Vec<ModelEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Prompt {
    role: String,
    content: String,
}

/// Numbers, or numbers in strings as Kong's sample writes them ("0.5").
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Number {
    Number(f64),
    Text(String),
}

impl Number {
    fn value(&self, field: &str) -> Result<f64, String> {
        match self {
            Number::Number(n) => Ok(*n),
            Number::Text(t) => t.trim().parse().map_err(|_| format!("{field}: `{t}` is not a number")),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PromptParams {
    max_tokens: Option<Number>,
    temperature: Option<Number>,
    top_p: Option<Number>,
    top_k: Option<Number>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CloudProvider {
    name: String,
    /// Any ai-proxy `model.options` (Azure instance, Bedrock region...).
    #[serde(default)]
    options: Option<serde_json::Value>,
}

/// One model of either list. Both lists share most fields; the few that
/// belong to one list only are checked by `ModelEntry::check_list`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ModelEntry {
    identifier: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    prompt_type: Option<String>,
    /// ai-prompt-guard's configuration for this model.
    #[serde(default)]
    prompt_guard: Option<Value>,
    /// ai-prompt-template's.
    #[serde(default)]
    prompt_templates: Option<Value>,
    /// ai-token-ratelimit's.
    #[serde(default)]
    token_budgets: Option<Value>,
    /// ai-prompt-decorator's full configuration (`defaultPrompts` is its
    /// `prompts.prepend`; give one or the other).
    #[serde(default)]
    prompt_decorator: Option<Value>,
    /// The exact paths this model is served at, instead of `/<identifier>`
    /// and `/<identifier>/v1/...`.
    #[serde(default)]
    paths: Option<Vec<String>>,
    /// More names clients may send in `model` on the gateway's root API
    /// paths (besides the identifier).
    #[serde(default)]
    aliases: Vec<String>,
    /// `openai` (default) or `anthropic`: the API clients speak.
    #[serde(default)]
    llm_format: Option<String>,
    /// More ai-proxy fields (`logging`, `response_streaming`, ...).
    #[serde(default)]
    ai_proxy: Option<Map<String, Value>>,
    #[serde(default)]
    default_prompts: Vec<Prompt>,
    #[serde(default)]
    default_prompt_params: PromptParams,
    /// cloudHosted: one provider, or several `targets` with a `balancer`.
    #[serde(default)]
    ai_cloud_provider: Option<CloudProvider>,
    #[serde(default)]
    targets: Vec<BalancedTarget>,
    /// ai-proxy-advanced's `balancer` (its field names).
    #[serde(default)]
    balancer: Option<Value>,
    /// selfHosted: `http://host:port`, an OpenAI-compatible server or Ollama's API.
    #[serde(default)]
    url: Option<String>,
    /// selfHosted: `openai` (vLLM, llama.cpp, ...), `ollama`, or
    /// `passthrough` (no ai-proxy: the governance filters alone, requests
    /// sent as they are).
    #[serde(default)]
    format: Option<String>,
    /// selfHosted: any ai-proxy `model.options` (costs, `upstream_path`...).
    #[serde(default)]
    options: Option<Value>,
}

impl ModelEntry {
    /// Fields of the other list are refused, naming them.
    fn check_list(&self, cloud: bool) -> Result<(), String> {
        let cloud_only = [("aiCloudProvider", self.ai_cloud_provider.is_some()), ("targets", !self.targets.is_empty()), ("balancer", self.balancer.is_some())];
        let self_only = [("url", self.url.is_some()), ("format", self.format.is_some()), ("options", self.options.is_some())];
        let (misplaced, list) = if cloud { (self_only, "selfHosted") } else { (cloud_only, "cloudHosted") };
        if let Some((field, _)) = misplaced.iter().find(|(_, set)| *set) {
            return Err(format!("`{field}` belongs to {list} models"));
        }
        if !cloud && self.url.is_none() {
            return Err("url: required (the server's `http://host:port`)".into());
        }
        Ok(())
    }

    fn common(&self) -> Common<'_> {
        Common {
            identifier: &self.identifier,
            prompt_type: self.prompt_type.as_deref(),
            paths: self.paths.as_ref(),
            llm_format: self.llm_format.as_deref(),
            ai_proxy: self.ai_proxy.as_ref(),
            governance: Governance {
                prompts: &self.default_prompts,
                decorator: self.prompt_decorator.as_ref(),
                guard: self.prompt_guard.as_ref(),
                templates: self.prompt_templates.as_ref(),
                budgets: self.token_budgets.as_ref(),
            },
        }
    }
}

/// One target of a balanced model (ai-proxy-advanced).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BalancedTarget {
    #[serde(default)]
    model: Option<String>,
    ai_cloud_provider: CloudProvider,
    #[serde(default)]
    weight: Option<u32>,
    #[serde(default)]
    priority: Option<u32>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Balanced {
    pub config: Value,
    pub tries: usize,
    pub targets: Vec<Upstream>,
}

/// A governance filter of one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FilterKind {
    Template,
    Decorator,
    Guard,
    Budgets,
}

impl FilterKind {
    /// Its module's name (`ai-prompt-guard`): plugin root id and VM id.
    pub fn module(self) -> &'static str {
        match self {
            FilterKind::Template => "ai-prompt-template",
            FilterKind::Decorator => "ai-prompt-decorator",
            FilterKind::Guard => "ai-prompt-guard",
            FilterKind::Budgets => "ai-token-ratelimit",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Filter {
    pub kind: FilterKind,
    pub config: Value,
    /// Its instance's name, where the renderer's default would not say it
    /// (the consumers' budgets).
    pub instance: Option<&'static str>,
}

/// A model's governance fields, as the file gives them.
struct Governance<'a> {
    prompts: &'a [Prompt],
    decorator: Option<&'a Value>,
    guard: Option<&'a Value>,
    templates: Option<&'a Value>,
    budgets: Option<&'a Value>,
}

/// The governance filters a model asks for, each checked by its own parser.
fn governance(g: &Governance, at: &str) -> Result<Vec<Filter>, FileError> {
    let mut out = Vec::new();
    let check = |field: &str, kind: FilterKind, config: &Value, parse: &dyn Fn(&[u8]) -> Result<(), codec::config::ConfigError>| {
        parse(config.to_string().as_bytes()).map_err(|e| FileError(format!("{at}: {field}.{}: {}", e.path, plain(&e.message))))?;
        Ok::<Filter, FileError>(Filter { kind, config: config.clone(), instance: None })
    };
    if let Some(t) = g.templates {
        out.push(check("promptTemplates", FilterKind::Template, t, &|b| codec::template::Templates::from_json(b).map(|_| ()))?);
    }
    match (decorator(g.prompts, at)?, g.decorator) {
        (Some(_), Some(_)) => return Err(FileError(format!("{at}: defaultPrompts and promptDecorator: give one (defaultPrompts is promptDecorator's prompts.prepend)"))),
        (Some(d), None) => out.push(Filter { kind: FilterKind::Decorator, config: d, instance: None }),
        (None, Some(d)) => out.push(check("promptDecorator", FilterKind::Decorator, d, &|b| Decorator::from_json(b).map(|_| ()))?),
        (None, None) => {}
    }
    if let Some(g) = g.guard {
        out.push(check("promptGuard", FilterKind::Guard, g, &|b| codec::guard::Guard::from_json(b).map(|_| ()))?);
    }
    if let Some(b) = g.budgets {
        out.push(check("tokenBudgets", FilterKind::Budgets, b, &|b| codec::ratelimit::RateLimitConfig::from_json(b).map(|_| ()))?);
    }
    Ok(out)
}

/// Where a model's requests go.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// Envoy cluster name.
    pub cluster: String,
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// `spec.mcpServers[]`: an MCP server behind ai-mcp-proxy (Kong's
/// passthrough-listener), or a REST API served as MCP tools
/// (conversion-listener), at `/<identifier>/mcp`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct McpEntry {
    identifier: String,
    /// The MCP server's endpoint (`http://host:port/mcp`), or the REST API's base.
    url: String,
    /// ai-mcp-proxy's configuration (Kong's fields); `mode` defaults to
    /// `passthrough-listener`.
    #[serde(default)]
    ai_mcp_proxy: Map<String, Value>,
}

/// An MCP endpoint, ready to render.
#[derive(Debug, Clone)]
pub struct McpServer {
    pub identifier: String,
    /// The public path: `/<identifier>/mcp`.
    pub path: String,
    /// conversion-listener: the filter is the server, the upstream a REST API.
    pub conversion: bool,
    /// ai-mcp-proxy's JSON configuration.
    pub config: Value,
    pub upstream: Upstream,
    /// passthrough: the MCP server's own path, which the public one is rewritten to.
    pub upstream_path: String,
}

/// An MCP server's or agent's upstream (its own cluster) and URL path.
fn upstream(kind: &str, identifier: &str, url: &str) -> Result<(Upstream, String), String> {
    let parsed = codec::proxy::config::parse_upstream_url(url).map_err(|err| format!("url: {err}"))?;
    let tls = url.starts_with("https://");
    let (host, port) = match parsed.authority.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse::<u16>().map_err(|_| format!("url: bad port `{p}`"))?),
        None => (parsed.authority.clone(), if tls { 443 } else { 80 }),
    };
    let cluster = format!("{kind}-{identifier}-{}-{port}", host.replace(['.', ':'], "-"));
    Ok((Upstream { cluster, host, port, tls }, parsed.path))
}

fn mcp_server(e: &McpEntry, where_: &str) -> Result<McpServer, FileError> {
    let fail = |e: String| FileError(format!("{where_}: {e}"));
    if !valid_identifier(&e.identifier) {
        return Err(fail("identifier must be one URL path segment (letters, digits, `-`, `_`; not `v1`)".into()));
    }
    let mut config = e.ai_mcp_proxy.clone();
    config.entry("mode").or_insert_with(|| json!("passthrough-listener"));
    // The rendered access log reads its keys.
    if let Some(logging) = config.entry("logging").or_insert_with(|| json!({})).as_object_mut() {
        logging.entry("log_statistics").or_insert(json!(true));
    }
    let config = Value::Object(config);
    let parsed = codec::mcp::config::McpConfig::from_json(config.to_string().as_bytes()).map_err(|e| fail(format!("aiMcpProxy.{}: {}", e.path.trim_start_matches('.'), plain(&e.message))))?;
    let conversion = parsed.mode == codec::mcp::config::Mode::Conversion;
    let (upstream, path) = upstream("mcp", &e.identifier, &e.url).map_err(fail)?;
    if conversion && path != "/" {
        return Err(fail("url: a REST API's base without a path (`http://host:port`): the tools' `path`s are absolute".into()));
    }
    Ok(McpServer {
        identifier: e.identifier.clone(),
        path: format!("/{}/mcp", e.identifier),
        conversion,
        config,
        upstream,
        upstream_path: path,
    })
}

/// `spec.a2aAgents[]`: an A2A agent behind ai-a2a-proxy, at `/<identifier>`
/// (its card at `/<identifier>/.well-known/agent-card.json`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct A2aEntry {
    identifier: String,
    /// The agent's base URL (`http://host:port`): its card and endpoints
    /// are at its root.
    url: String,
    /// ai-a2a-proxy's configuration.
    #[serde(default)]
    ai_a2a_proxy: Map<String, Value>,
}

/// An A2A agent, ready to render.
#[derive(Debug, Clone)]
pub struct A2aAgent {
    pub identifier: String,
    /// ai-a2a-proxy's JSON configuration.
    pub config: Value,
    pub upstream: Upstream,
}

fn a2a_agent(e: &A2aEntry, where_: &str) -> Result<A2aAgent, FileError> {
    let fail = |e: String| FileError(format!("{where_}: {e}"));
    if !valid_identifier(&e.identifier) {
        return Err(fail("identifier must be one URL path segment (letters, digits, `-`, `_`; not `v1`)".into()));
    }
    let mut config = e.ai_a2a_proxy.clone();
    // The rendered access log reads its keys.
    if let Some(logging) = config.entry("logging").or_insert_with(|| json!({})).as_object_mut() {
        logging.entry("log_statistics").or_insert(json!(true));
    }
    let config = Value::Object(config);
    codec::a2a::config::A2aConfig::from_json(config.to_string().as_bytes()).map_err(|e| fail(format!("aiA2aProxy.{}: {}", e.path.trim_start_matches('.'), plain(&e.message))))?;
    let (upstream, path) = upstream("a2a", &e.identifier, &e.url).map_err(fail)?;
    if path != "/" {
        return Err(fail("url: the agent's base without a path (`http://host:port`): the gateway serves it at `/<identifier>` and its card's URLs are rewritten from its root".into()));
    }
    Ok(A2aAgent { identifier: e.identifier.clone(), config, upstream })
}

/// One model, ready to render.
#[derive(Debug, Clone)]
pub struct Model {
    pub identifier: String,
    pub model: Option<String>,
    /// For people: `openai`, `anthropic+bedrock`, `ollama`...
    pub provider: String,
    /// The provider in the routes' metadata (ai-token-ratelimit's
    /// `match.provider` reads it before ai-proxy runs).
    pub route_provider: String,
    /// `chat`, `completions` or `embeddings`.
    pub prompt_type: &'static str,
    /// Clients speak Anthropic's Messages API (`llmFormat: anthropic`).
    pub anthropic_format: bool,
    /// The public paths it is served at.
    pub paths: Vec<String>,
    /// ai-proxy's JSON configuration (`Null` for a passthrough model).
    pub proxy: Value,
    /// A passthrough model has no ai-proxy: requests go to this upstream
    /// path as the client sent them.
    pub passthrough: Option<String>,
    /// ai-proxy's configuration for `<path>/count_tokens` when the target
    /// is Anthropic's own API (other targets cannot count).
    pub count_tokens: Option<Value>,
    /// The governance filters in front of ai-proxy, in chain order
    /// (template, decorator, guard, budgets).
    pub filters: Vec<Filter>,
    pub upstream: Upstream,
    /// A balanced model: ai-proxy-advanced's configuration, its tries, and
    /// each target's upstream (in target order). `proxy` is then unused.
    pub balanced: Option<Balanced>,
    /// Environment variables the rendered config reads for this model.
    pub env: Vec<String>,
    /// The names clients send in `model` on the root API path (identifier,
    /// then aliases); empty when the model is not routed by name.
    pub names: Vec<String>,
}

impl Model {
    /// The root API path its clients post to.
    pub fn api(&self) -> &'static str {
        if self.anthropic_format {
            "/v1/messages"
        } else {
            api_path(self.prompt_type)
        }
    }
}

#[derive(Debug)]
pub struct Gateway {
    pub name: String,
    pub models: Vec<Model>,
    /// Empty: no keys are asked for.
    pub consumers: Vec<Consumer>,
    /// The header naming the consumer to every filter.
    pub consumer_header: String,
    pub mcp_servers: Vec<McpServer>,
    pub a2a_agents: Vec<A2aAgent>,
}

/// A hosted provider's usual credential, as the codec's registry knows it.
fn convention(provider: &str, vertex: bool) -> Result<Convention, String> {
    let known = || ProviderName::ALL.iter().filter(|p| registry::convention(**p, false).is_some()).map(|p| p.as_str()).collect::<Vec<_>>().join(", ");
    ProviderName::parse(provider)
        .and_then(|p| registry::convention(p, vertex))
        .ok_or_else(|| format!("unknown provider `{provider}` ({})", known()))
}

/// The Secret key and default environment variable of a credential.
fn credential_names(c: Convention) -> (&'static str, &'static str) {
    match c {
        Convention::Header { secret, env, .. } => (secret, env),
        Convention::Aws => ("aws", "AWS_ACCESS_KEY_ID"),
    }
}

/// Vertex AI (Gemini, or Claude on Vertex): `options.gemini` names a project.
fn is_vertex(options: &Map<String, Value>) -> bool {
    options.get("gemini").is_some_and(|g| g.get("project_id").is_some())
}

/// The credential of a hosted provider: ai-proxy's `auth`, and the
/// environment variables it reads. `key`: the Secret's value, a literal
/// key or `{vault://env/NAME}`; none: the provider's usual variable.
fn auth(provider: &str, vertex: bool, key: Option<&str>) -> Result<(Value, Vec<String>), String> {
    let var = |name: &str| format!("{{vault://env/{name}}}");
    let Convention::Header { env, header, bearer, .. } = convention(provider, vertex)? else {
        let auth = json!({"aws_access_key_id": var("AWS_ACCESS_KEY_ID"), "aws_secret_access_key": var("AWS_SECRET_ACCESS_KEY")});
        return Ok((auth, vec!["AWS_ACCESS_KEY_ID".into(), "AWS_SECRET_ACCESS_KEY".into()]));
    };
    let value = key.map(str::to_string).unwrap_or_else(|| var(env));
    let env = env_refs(&value);
    let value = if bearer { format!("Bearer {value}") } else { value };
    Ok((json!({"header_name": header, "header_value": value}), env))
}

/// The environment variables a value refers to (`{vault://env/NAME}`).
fn env_refs(value: &str) -> Vec<String> {
    value.split("{vault://env/").skip(1).filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_string())).collect()
}

fn route_type(prompt_type: Option<&str>) -> Result<(&'static str, &'static str), String> {
    Ok(match prompt_type.unwrap_or("chat") {
        "chat" => ("chat", "llm/v1/chat"),
        "completions" | "completion" => ("completions", "llm/v1/completions"),
        "embeddings" => ("embeddings", "llm/v1/embeddings"),
        "responses" => ("responses", "llm/v1/responses"),
        other => return Err(format!("promptType: `{other}` (chat, completions, embeddings or responses)")),
    })
}

/// OpenAI's path for a prompt type.
pub fn api_path(prompt_type: &str) -> &'static str {
    match prompt_type {
        "completions" => "/v1/completions",
        "embeddings" => "/v1/embeddings",
        "responses" => "/v1/responses",
        _ => "/v1/chat/completions",
    }
}

fn options(params: &PromptParams, extra: Option<&Value>) -> Result<Map<String, Value>, String> {
    let mut o = match extra {
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err("aiCloudProvider.options: must be a map".into()),
        None => Map::new(),
    };
    if let Some(n) = &params.max_tokens {
        o.insert("max_tokens".into(), json!(n.value("defaultPromptParams.maxTokens")? as u64));
    }
    if let Some(n) = &params.temperature {
        o.insert("temperature".into(), json!(n.value("defaultPromptParams.temperature")?));
    }
    if let Some(n) = &params.top_p {
        o.insert("top_p".into(), json!(n.value("defaultPromptParams.topP")?));
    }
    if let Some(n) = &params.top_k {
        o.insert("top_k".into(), json!(n.value("defaultPromptParams.topK")? as u64));
    }
    Ok(o)
}

/// The public API host of a hosted provider, from ai-proxy's own
/// configuration (so Azure instances and Bedrock regions come out right).
fn hosted_upstream(provider: &str, proxy: &ProxyConfig) -> Upstream {
    let host = proxy.authority.clone().unwrap_or_default();
    // One cluster per distinct host: models of one provider share it.
    Upstream { cluster: format!("{provider}-{}", host.replace(['.', ':'], "-")), host, port: 443, tls: true }
}

/// ai-proxy's `model` object.
fn model_json(provider: &str, name: Option<&str>, options: Map<String, Value>) -> Value {
    let mut model = Map::new();
    model.insert("provider".into(), json!(provider));
    if let Some(name) = name {
        model.insert("name".into(), json!(name));
    }
    if !options.is_empty() {
        model.insert("options".into(), Value::Object(options));
    }
    Value::Object(model)
}

fn valid_identifier(id: &str) -> bool {
    !id.is_empty() && id.len() <= 63 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') && id != "v1"
}

/// A path Envoy matches exactly, and that renders safely inside quotes.
fn valid_path(path: &str) -> bool {
    path.starts_with('/') && path.len() <= 256 && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b)) && !path.contains("//")
}

fn decorator(prompts: &[Prompt], at: &str) -> Result<Option<Value>, FileError> {
    if prompts.is_empty() {
        return Ok(None);
    }
    let prepend: Vec<Value> = prompts.iter().map(|p| json!({"role": p.role, "content": p.content})).collect();
    let config = json!({"prompts": {"prepend": prepend}});
    Decorator::from_json(config.to_string().as_bytes()).map_err(|e| FileError(format!("{at}: defaultPrompts: {}", plain(&e.message))))?;
    Ok(Some(config))
}

/// The fields every model has, hosted or not.
struct Common<'a> {
    identifier: &'a str,
    prompt_type: Option<&'a str>,
    paths: Option<&'a Vec<String>>,
    llm_format: Option<&'a str>,
    ai_proxy: Option<&'a Map<String, Value>>,
    governance: Governance<'a>,
}

/// What the common fields resolve to.
struct Resolved {
    prompt_type: &'static str,
    route: &'static str,
    anthropic_format: bool,
    paths: Vec<String>,
    filters: Vec<Filter>,
}

fn resolve(c: &Common, passthrough: bool, at: &str) -> Result<Resolved, FileError> {
    let fail = |e: String| FileError(format!("{at}: {e}"));
    let (prompt_type, route) = route_type(c.prompt_type).map_err(fail)?;
    let anthropic_format = match c.llm_format.unwrap_or("openai") {
        "openai" => false,
        "anthropic" if prompt_type != "chat" => return Err(fail("llmFormat: `anthropic` (the Messages API) needs promptType chat".into())),
        "anthropic" if passthrough => return Err(fail("llmFormat: a passthrough model takes its clients' format as is".into())),
        "anthropic" => true,
        other => return Err(fail(format!("llmFormat: `{other}` (openai or anthropic)"))),
    };
    let paths = match c.paths {
        Some(p) if p.is_empty() => return Err(fail("paths: empty (leave it out for /<identifier> and /<identifier>/v1/...)".into())),
        Some(p) => {
            if let Some((i, bad)) = p.iter().enumerate().find(|(_, p)| !valid_path(p)) {
                return Err(fail(format!("paths[{i}]: `{bad}` is not a plain path (`/`, then letters, digits, `-._~/`)")));
            }
            p.clone()
        }
        None => {
            let api = if anthropic_format { "/v1/messages" } else { api_path(prompt_type) };
            vec![format!("/{}", c.identifier), format!("/{}{api}", c.identifier)]
        }
    };
    if let (Some(extra), false) = (c.ai_proxy, passthrough) {
        for (key, file_field) in [("route_type", "promptType"), ("model", "model and aiCloudProvider"), ("auth", "the Secret"), ("llm_format", "llmFormat")] {
            if extra.contains_key(key) {
                return Err(fail(format!("aiProxy.{key}: set by the file ({file_field})")));
            }
        }
    }
    if passthrough && c.ai_proxy.is_some() {
        return Err(fail("aiProxy: a passthrough model has no ai-proxy".into()));
    }
    Ok(Resolved { prompt_type, route, anthropic_format, paths, filters: governance(&c.governance, at)? })
}

/// ai-proxy's configuration: the file's fields, then `aiProxy`'s.
fn proxy_config(route: &str, anthropic_format: bool, auth: Option<Value>, model: Value, extra: Option<&Map<String, Value>>) -> Value {
    let mut config = Map::new();
    config.insert("route_type".into(), json!(route));
    if anthropic_format {
        config.insert("llm_format".into(), json!("anthropic"));
    }
    if let Some(auth) = auth {
        config.insert("auth".into(), auth);
    }
    config.insert("model".into(), model);
    for (k, v) in extra.into_iter().flatten() {
        config.insert(k.clone(), v.clone());
    }
    with_statistics(Value::Object(config))
}

/// The rendered access log reads ai-proxy's statistics keys, so they are
/// published unless the file's `aiProxy.logging` turns them off.
fn with_statistics(mut config: Value) -> Value {
    if let Some(config) = config.as_object_mut() {
        let logging = config.entry("logging").or_insert_with(|| json!({}));
        if let Some(logging) = logging.as_object_mut() {
            logging.entry("log_statistics").or_insert(json!(true));
        }
    }
    config
}

/// `count_tokens` passes through to Anthropic's own API only.
fn count_tokens(provider: &str, options: &Map<String, Value>, anthropic_format: bool, auth: &Value) -> Option<Value> {
    if !anthropic_format || provider != "anthropic" || is_vertex(options) {
        return None;
    }
    let mut o = Map::new();
    if let Some(v) = options.get("anthropic_version") {
        o.insert("anthropic_version".into(), v.clone());
    }
    Some(with_statistics(json!({"route_type": "preserve", "auth": auth, "model": model_json("anthropic", None, o)})))
}

/// One cloudHosted model: one provider, or balanced targets.
fn cloud_model(m: &ModelEntry, where_: &str, credentials: Option<&Credentials>, keys: &BTreeMap<String, String>) -> Result<Model, FileError> {
    let fail = |e: String| FileError(format!("{where_}: {e}"));
    let r = resolve(&m.common(), false, where_)?;
    // One provider's ai-proxy configuration, from the file's keys.
    let hosted = |provider: &str, model: Option<&str>, opts: Map<String, Value>, field: &str| -> Result<(Value, Option<Value>, Vec<String>, Upstream), FileError> {
        let vertex = is_vertex(&opts);
        let (secret_key, env_var) = credential_names(convention(provider, vertex).map_err(|e| fail(format!("{field}.name: {e}")))?);
        if let (Some(c), false) = (&credentials, keys.contains_key(secret_key) || provider == "bedrock") {
            return Err(fail(format!("{field}.name: the Secret `{}` has no `{secret_key}` key (add it, or leave out cloudProviderCredentials to read {env_var})", c.name)));
        }
        // Kong's sample says `<INSERT TOKEN HERE>`: a placeholder, not a key.
        let key = keys.get(secret_key).map(String::as_str).filter(|k| !(k.starts_with('<') && k.ends_with('>')));
        let (auth, env) = auth(provider, vertex, key).map_err(|e| fail(format!("{field}.name: {e}")))?;
        let tokens = count_tokens(provider, &opts, r.anthropic_format, &auth);
        let proxy = proxy_config(r.route, r.anthropic_format, Some(auth), model_json(provider, model, opts), m.ai_proxy.as_ref());
        let parsed = ProxyConfig::from_json(proxy.to_string().as_bytes(), &|_| Some("set".into())).map_err(|e| fail(format!("{}: {}", e.path, plain(&e.message))))?;
        Ok((proxy, tokens, env, hosted_upstream(provider, &parsed)))
    };
    let model = |proxy: Value, provider: String, route_provider: String, upstream: Upstream, balanced: Option<Balanced>, count_tokens: Option<Value>, env: Vec<String>| Model {
        identifier: m.identifier.clone(),
        model: m.model.clone().or_else(|| m.targets.first().and_then(|t| t.model.clone())),
        provider,
        route_provider,
        prompt_type: r.prompt_type,
        anthropic_format: r.anthropic_format,
        paths: r.paths.clone(),
        proxy,
        passthrough: None,
        count_tokens,
        filters: r.filters.clone(),
        upstream,
        balanced,
        env,
        names: Vec::new(),
    };
    match (&m.ai_cloud_provider, m.targets.is_empty()) {
        (Some(p), true) => {
            let opts = options(&m.default_prompt_params, p.options.as_ref()).map_err(fail)?;
            let (proxy, tokens, env, upstream) = hosted(&p.name, m.model.as_deref(), opts, "aiCloudProvider")?;
            Ok(model(proxy, p.name.clone(), p.name.clone(), upstream, None, tokens, env))
        }
        (None, false) => {
            let mut targets = Vec::new();
            let mut upstreams = Vec::new();
            let mut env = Vec::new();
            for (k, t) in m.targets.iter().enumerate() {
                let opts = options(&m.default_prompt_params, t.ai_cloud_provider.options.as_ref()).map_err(fail)?;
                let (proxy, _, target_env, upstream) = hosted(&t.ai_cloud_provider.name, t.model.as_deref(), opts, &format!("targets[{k}].aiCloudProvider"))?;
                let mut target = proxy.as_object().cloned().unwrap_or_default();
                for (field, value) in [("weight", t.weight.map(Value::from)), ("priority", t.priority.map(Value::from)), ("description", t.description.clone().map(Value::from)), ("name", t.name.clone().map(Value::from))] {
                    if let Some(v) = value {
                        target.insert(field.into(), v);
                    }
                }
                targets.push(Value::Object(target));
                upstreams.push(upstream);
                env.extend(target_env);
            }
            let config = json!({"balancer": m.balancer.clone().unwrap_or_else(|| json!({})), "targets": targets});
            let parsed = codec::balancer::AdvancedConfig::from_json(config.to_string().as_bytes(), &|_| Some("set".into()))
                .map_err(|e| fail(format!("{}: {}", e.path, plain(&e.message))))?;
            let first = upstreams.first().cloned().ok_or_else(|| fail("targets: empty".into()))?;
            let providers: Vec<String> = m.targets.iter().map(|t| t.ai_cloud_provider.name.clone()).collect();
            let balanced = Balanced { config, tries: parsed.tries, targets: upstreams };
            Ok(model(Value::Null, providers.join("+"), providers.first().cloned().unwrap_or_default(), first, Some(balanced), None, env))
        }
        _ => Err(fail("needs `aiCloudProvider`, or `targets` (with an optional `balancer`), not both".into())),
    }
}

/// One selfHosted model: a server of its own.
fn self_hosted_model(m: &ModelEntry, where_: &str) -> Result<Model, FileError> {
    let fail = |e: String| FileError(format!("{where_}: {e}"));
    let format = m.format.as_deref().unwrap_or("openai");
    let passthrough = format == "passthrough";
    let r = resolve(&m.common(), passthrough, where_)?;
    let raw_url = m.url.as_deref().unwrap_or_default();
    let url = codec::proxy::config::parse_upstream_url(raw_url).map_err(|e| fail(format!("url: {e}")))?;
    let (host, port) = match url.authority.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse::<u16>().map_err(|_| fail(format!("url: bad port `{p}`")))?),
        None => (url.authority.clone(), if raw_url.starts_with("https://") { 443 } else { 80 }),
    };
    let (proxy, provider, passthrough) = match format {
        "openai" | "ollama" => {
            let mut opts = options(&m.default_prompt_params, m.options.as_ref()).map_err(|e| fail(e.replace("aiCloudProvider.", "")))?;
            opts.insert("upstream_url".into(), json!(raw_url));
            // OpenAI-compatible servers (vLLM, llama.cpp...) speak OpenAI's API as is.
            let provider = if format == "openai" { "openai" } else { "ollama" };
            let proxy = proxy_config(r.route, r.anthropic_format, None, model_json(provider, m.model.as_deref(), opts), m.ai_proxy.as_ref());
            ProxyConfig::from_json(proxy.to_string().as_bytes(), &|_| None).map_err(|e| fail(format!("{}: {}", e.path, plain(&e.message))))?;
            (proxy, provider, None)
        }
        "passthrough" => {
            let p = &m.default_prompt_params;
            if m.model.is_some() || m.options.is_some() || p.max_tokens.is_some() || p.temperature.is_some() || p.top_p.is_some() || p.top_k.is_some() {
                return Err(fail("format: passthrough sends requests as they are: `model`, `options` and `defaultPromptParams` need ai-proxy (format openai)".into()));
            }
            let path = if url.path == "/" { api_path(r.prompt_type).to_string() } else { url.path.clone() };
            (Value::Null, "openai", Some(path))
        }
        other => return Err(fail(format!("format: `{other}` (openai, ollama or passthrough)"))),
    };
    Ok(Model {
        identifier: m.identifier.clone(),
        model: m.model.clone(),
        provider: format.to_string(),
        route_provider: provider.to_string(),
        prompt_type: r.prompt_type,
        anthropic_format: r.anthropic_format,
        paths: r.paths,
        proxy,
        passthrough,
        count_tokens: None,
        // One cluster per server: models it serves share it.
        upstream: Upstream { cluster: format!("self-{}-{port}", host.replace(['.', ':'], "-")), host, port, tls: raw_url.starts_with("https://") },
        balanced: None,
        filters: r.filters,
        env: Vec::new(),
        names: Vec::new(),
    })
}

/// A name clients may send in `model` (and that renders safely in a header
/// match).
fn valid_model_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 256 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:/@+".contains(&b))
}

/// The names a model answers to on the root API paths: its identifier and
/// aliases, when the gateway decides its model (pinned, or balanced). Its
/// ai-proxy takes the aliases for the pinned model.
fn route_by_name(mut model: Model, entry: &ModelEntry, where_: &str) -> Result<Model, FileError> {
    let fail = |e: String| FileError(format!("{where_}: {e}"));
    if let Some((i, bad)) = entry.aliases.iter().enumerate().find(|(_, a)| !valid_model_name(a)) {
        return Err(fail(format!("aliases[{i}]: `{bad}` (1 to 256 letters, digits, `-._:/@+`)")));
    }
    // Metrics tell two models of one provider and model name apart.
    let identifier = model.identifier.clone();
    for config in [model.proxy.as_object_mut(), model.balanced.as_mut().and_then(|b| b.config.as_object_mut()), model.count_tokens.as_mut().and_then(Value::as_object_mut)].into_iter().flatten() {
        config.entry("route_label").or_insert_with(|| json!(identifier));
    }
    let pinned = model.balanced.is_some() || (model.passthrough.is_none() && model.model.is_some());
    if !pinned {
        if !entry.aliases.is_empty() {
            return Err(fail("aliases: this model takes `model` from the request, so the gateway cannot route by name: give it `model`".into()));
        }
        return Ok(model);
    }
    let mut names = vec![model.identifier.clone()];
    for a in &entry.aliases {
        if !names.contains(a) {
            names.push(a.clone());
        }
    }
    if let (Some(config), Some(pinned)) = (model.proxy.as_object_mut(), model.model.as_deref()) {
        let aliases: Vec<&String> = names.iter().filter(|n| n.as_str() != pinned).collect();
        config.insert("model_aliases".into(), json!(aliases));
    }
    // Budgets matching the pinned model count requests that name it by an
    // alias too: they run before ai-proxy, on the body as the client sent it.
    if let Some(pinned) = model.model.clone() {
        for f in model.filters.iter_mut().filter(|f| f.kind == FilterKind::Budgets) {
            for p in f.config.get_mut("policies").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(list) = p.get_mut("match").and_then(|m| m.get_mut("model")).and_then(Value::as_array_mut) {
                    if list.iter().any(|v| v.as_str() == Some(pinned.as_str())) {
                        for n in &names {
                            if !list.iter().any(|v| v.as_str() == Some(n.as_str())) {
                                list.push(json!(n));
                            }
                        }
                    }
                }
            }
        }
    }
    model.names = names;
    Ok(model)
}

/// Parses and checks a gateway file; consumers' `env` keys come from the
/// process environment.
pub fn parse(text: &str) -> Result<Gateway, FileError> {
    parse_with_env(text, &|name| std::env::var(name).ok())
}

/// As `parse`, with the environment given.
pub fn parse_with_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Gateway, FileError> {
    let mut docs = Vec::new();
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let doc: Option<Document> = serde_path_to_error::deserialize(de).map_err(|e| FileError(format!("document {}: at `{}`: {}", i + 1, e.path(), e.inner())))?;
        if let Some(doc) = doc {
            docs.push((i + 1, doc));
        }
    }
    let secrets: BTreeMap<String, (usize, &Document)> = docs.iter().filter(|(_, d)| d.kind == "Secret").map(|(i, d)| (d.metadata.name.clone(), (*i, d))).collect();
    // An unknown kind first: `kind: AIGatway` is a typo, not a missing gateway.
    for (i, d) in &docs {
        if !matches!(d.kind.as_str(), "AIGateway" | "Secret" | "GatewayClass") {
            return Err(FileError(format!("document {i}: kind `{}` is not part of a gateway file (AIGateway, Secret, GatewayClass)", d.kind)));
        }
    }
    let gateways: Vec<&(usize, Document)> = docs.iter().filter(|(_, d)| d.kind == "AIGateway").collect();
    let [(n, doc)] = gateways.as_slice() else {
        let at: Vec<String> = gateways.iter().map(|(i, d)| format!("document {i} ({})", d.metadata.name)).collect();
        return Err(FileError(format!("the file needs exactly one AIGateway document (found {}{})", gateways.len(), if at.is_empty() { String::new() } else { format!(": {}", at.join(", ")) })));
    };
    let at = format!("document {n} (AIGateway {})", doc.metadata.name);
    let spec_value = doc.spec.clone().ok_or_else(|| FileError(format!("{at}: `spec` is required")))?;
    let spec: Spec = serde_path_to_error::deserialize(spec_value).map_err(|e| FileError(format!("{at}: at `spec.{}`: {}", e.path(), e.inner())))?;
    let _ = &spec.gateway_class_name;

    let keys: BTreeMap<String, String> = match &spec.cloud_provider_credentials {
        Some(c) => {
            let (i, secret) = secrets.get(&c.name).ok_or_else(|| FileError(format!("{at}: spec.cloudProviderCredentials.name: no Secret named `{}` in the file", c.name)))?;
            if !secret.data.is_empty() {
                return Err(FileError(format!("document {i} (Secret {}): `data` (base64) is not read; put the keys in `stringData`", c.name)));
            }
            secret.string_data.clone()
        }
        None => BTreeMap::new(),
    };

    let mut models = Vec::new();
    for (i, m) in spec.large_language_models.cloud_hosted.iter().enumerate() {
        let where_ = format!("{at}: largeLanguageModels.cloudHosted[{i}] ({})", m.identifier);
        m.check_list(true).map_err(|e| FileError(format!("{where_}: {e}")))?;
        models.push(route_by_name(cloud_model(m, &where_, spec.cloud_provider_credentials.as_ref(), &keys)?, m, &where_)?);
    }
    for (i, m) in spec.large_language_models.self_hosted.iter().enumerate() {
        let where_ = format!("{at}: largeLanguageModels.selfHosted[{i}] ({})", m.identifier);
        m.check_list(false).map_err(|e| FileError(format!("{where_}: {e}")))?;
        models.push(route_by_name(self_hosted_model(m, &where_)?, m, &where_)?);
    }
    let mut mcp_servers = Vec::new();
    for (i, e) in spec.mcp_servers.iter().enumerate() {
        let server = mcp_server(e, &format!("{at}: mcpServers[{i}] ({})", e.identifier))?;
        if models.iter().any(|m| m.identifier == server.identifier) || mcp_servers.iter().any(|s: &McpServer| s.identifier == server.identifier) {
            return Err(FileError(format!("{at}: mcpServers[{i}] ({}): identifier is used twice", e.identifier)));
        }
        mcp_servers.push(server);
    }
    let mut a2a_agents = Vec::new();
    for (i, e) in spec.a2a_agents.iter().enumerate() {
        let agent = a2a_agent(e, &format!("{at}: a2aAgents[{i}] ({})", e.identifier))?;
        let taken = models.iter().any(|m| m.identifier == agent.identifier) || mcp_servers.iter().any(|s| s.identifier == agent.identifier) || a2a_agents.iter().any(|a: &A2aAgent| a.identifier == agent.identifier);
        if taken {
            return Err(FileError(format!("{at}: a2aAgents[{i}] ({}): identifier is used twice", e.identifier)));
        }
        a2a_agents.push(agent);
    }
    if models.is_empty() && mcp_servers.is_empty() && a2a_agents.is_empty() {
        return Err(FileError(format!("{at}: spec.largeLanguageModels: no models")));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut paths = BTreeMap::new();
    for m in &models {
        if !valid_identifier(&m.identifier) {
            return Err(FileError(format!("{at}: model `{}`: identifier must be one URL path segment (letters, digits, `-`, `_`; not `v1`)", m.identifier)));
        }
        if !seen.insert(m.identifier.clone()) {
            let lists: Vec<String> = spec.large_language_models.cloud_hosted.iter().enumerate().filter(|(_, e)| e.identifier == m.identifier).map(|(i, _)| format!("cloudHosted[{i}]"))
                .chain(spec.large_language_models.self_hosted.iter().enumerate().filter(|(_, e)| e.identifier == m.identifier).map(|(i, _)| format!("selfHosted[{i}]")))
                .collect();
            return Err(FileError(format!("{at}: model `{}`: identifier is used twice ({})", m.identifier, lists.join(" and "))));
        }
        for p in &m.paths {
            if p.ends_with("/v1/models") || p.ends_with("/count_tokens") {
                return Err(FileError(format!("{at}: model `{}`: paths: `{p}` is the gateway's own", m.identifier)));
            }
            if let Some(other) = paths.insert(p.clone(), m.identifier.clone()) {
                return Err(FileError(format!("{at}: model `{}`: paths: `{p}` is also model `{other}`'s", m.identifier)));
            }
        }
    }
    let mut by_name: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for m in &models {
        if m.names.len() > 64 {
            return Err(FileError(format!("{at}: model `{}`: aliases: at most 63", m.identifier)));
        }
        for n in &m.names {
            if let Some(other) = by_name.insert((m.api(), n), &m.identifier) {
                return Err(FileError(format!("{at}: model `{}`: the name `{n}` on {} is also model `{other}`'s (an alias names one model per API)", m.identifier, m.api())));
            }
        }
    }
    let consumer_header = spec.consumer_header.clone().unwrap_or_else(|| "x-consumer-id".into()).to_ascii_lowercase();
    let reserved = ["authorization", "x-api-key", "x-ai-model", "x-ai-proxy", "x-ai-mcp-proxy", "host", "content-type", "content-length"];
    if consumer_header.is_empty() || consumer_header.len() > 64 || !consumer_header.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') || reserved.contains(&consumer_header.as_str()) {
        return Err(FileError(format!("{at}: spec.consumerHeader: `{consumer_header}` (a header name of letters, digits and `-`, not one the gateway or the keys use)")));
    }
    let consumers = consumers(&spec.consumers, &secrets, env, &models, &at)?;
    if !consumers.is_empty() {
        let budgets = consumer_budgets(&spec.consumers, &consumer_header, &at)?;
        for m in &mut models {
            m.with_consumers(&consumer_header, budgets.as_ref()).map_err(|e| FileError(format!("{at}: model `{}`: {e}", m.identifier)))?;
        }
        for s in &mut mcp_servers {
            set_consumer_header(&mut s.config, &consumer_header).map_err(|e| FileError(format!("{at}: mcpServers ({}): aiMcpProxy.{e}", s.identifier)))?;
        }
        for a in &mut a2a_agents {
            set_consumer_header(&mut a.config, &consumer_header).map_err(|e| FileError(format!("{at}: a2aAgents ({}): aiA2aProxy.{e}", a.identifier)))?;
        }
    }
    Ok(Gateway { name: doc.metadata.name.clone(), models, consumers, consumer_header, mcp_servers, a2a_agents })
}

/// The consumers, their keys resolved (a Secret of the file, or the
/// environment when rendering: Envoy's api_key_auth takes literal keys).
fn consumers(entries: &[ConsumerEntry], secrets: &BTreeMap<String, (usize, &Document)>, env: &dyn Fn(&str) -> Option<String>, models: &[Model], at: &str) -> Result<Vec<Consumer>, FileError> {
    let mut out: Vec<Consumer> = Vec::new();
    for (i, c) in entries.iter().enumerate() {
        let fail = |e: String| FileError(format!("{at}: consumers[{i}] ({}): {e}", c.name));
        if !valid_identifier(&c.name) {
            return Err(fail("name: letters, digits, `-` and `_` (it is a header value and a metrics label)".into()));
        }
        if out.iter().any(|o| o.name == c.name) {
            return Err(fail("name is used twice".into()));
        }
        if c.keys.is_empty() {
            return Err(fail("keys: at least one".into()));
        }
        let mut keys = Vec::new();
        for (k, key) in c.keys.iter().enumerate() {
            let value = match (&key.secret_key_ref, &key.env) {
                (Some(r), None) => {
                    let (_, secret) = secrets.get(&r.name).ok_or_else(|| fail(format!("keys[{k}].secretKeyRef.name: no Secret named `{}` in the file", r.name)))?;
                    secret.string_data.get(&r.key).cloned().ok_or_else(|| fail(format!("keys[{k}].secretKeyRef.key: the Secret `{}` has no `{}` in stringData", r.name, r.key)))?
                }
                (None, Some(var)) => env(var).ok_or_else(|| fail(format!("keys[{k}].env: `{var}` is not set in the environment aigw runs in")))?,
                _ => return Err(fail(format!("keys[{k}]: give `secretKeyRef` or `env`"))),
            };
            if value.len() < 8 || value.len() > 256 || !value.bytes().all(|b| b.is_ascii_graphic()) || (value.starts_with('<') && value.ends_with('>')) {
                return Err(fail(format!("keys[{k}]: a key is 8 to 256 printable characters without spaces (not a placeholder)")));
            }
            if out.iter().any(|o| o.keys.contains(&value)) || keys.contains(&value) {
                return Err(fail(format!("keys[{k}]: the same key is given twice")));
            }
            keys.push(value);
        }
        if let Some(allowed) = &c.models {
            if let Some(bad) = allowed.iter().find(|id| !models.iter().any(|m| &m.identifier == *id)) {
                return Err(fail(format!("models: no model `{bad}`")));
            }
        }
        out.push(Consumer { name: c.name.clone(), keys, models: c.models.clone() });
    }
    if !out.is_empty() {
        if let Some(m) = models.iter().find(|m| !out.iter().any(|c| c.may_use(&m.identifier))) {
            return Err(FileError(format!("{at}: model `{}`: no consumer may use it (add it to a consumer's `models`, or remove it)", m.identifier)));
        }
    }
    Ok(out)
}

impl Consumer {
    pub fn may_use(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|m| m.iter().any(|id| id == model))
    }
}

/// One ai-token-ratelimit configuration with a policy per consumer that
/// has a budget, for every model's routes.
fn consumer_budgets(entries: &[ConsumerEntry], header: &str, at: &str) -> Result<Option<Value>, FileError> {
    let mut policies = Vec::new();
    for (i, c) in entries.iter().enumerate() {
        let Some(budget) = &c.token_budget else { continue };
        if let Some(bad) = budget.keys().find(|k| !matches!(k.as_str(), "limits" | "tokens_count_strategy")) {
            return Err(FileError(format!("{at}: consumers[{i}] ({}): tokenBudget.{bad}: unknown (limits, tokens_count_strategy)", c.name)));
        }
        let mut policy = budget.clone();
        policy.insert("name".into(), json!(format!("consumer-{}", c.name)));
        policy.insert("match".into(), json!({"consumer": [c.name]}));
        policies.push(Value::Object(policy));
    }
    if policies.is_empty() {
        return Ok(None);
    }
    let config = json!({"consumer_header": header, "policies": policies});
    codec::ratelimit::RateLimitConfig::from_json(config.to_string().as_bytes()).map_err(|e| {
        let index: usize = e.path.strip_prefix("policies[").and_then(|p| p.split(']').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
        let consumer = entries.iter().filter(|c| c.token_budget.is_some()).nth(index).map(|c| c.name.as_str()).unwrap_or_default();
        let field = e.path.split_once("].").map(|(_, f)| f).unwrap_or(&e.path);
        FileError(format!("{at}: consumer `{consumer}`: tokenBudget.{field}: {}", plain(&e.message)))
    })?;
    Ok(Some(config))
}

/// A filter's `consumer_header`: the consumers' header, set where absent;
/// another one would read a header nothing trusted sets.
fn set_consumer_header(config: &mut Value, header: &str) -> Result<(), String> {
    let Some(config) = config.as_object_mut() else { return Ok(()) };
    match config.get("consumer_header").and_then(Value::as_str) {
        Some(h) if !h.eq_ignore_ascii_case(header) => Err(format!("consumer_header: `{h}`, but the consumers' header is `{header}` (spec.consumerHeader)")),
        _ => {
            config.insert("consumer_header".into(), json!(header));
            Ok(())
        }
    }
}

impl Model {
    /// Every filter of the model reads the consumers' header, and the
    /// consumers' budgets count its requests.
    fn with_consumers(&mut self, header: &str, budgets: Option<&Value>) -> Result<(), String> {
        if !self.proxy.is_null() {
            set_consumer_header(&mut self.proxy, header).map_err(|e| format!("aiProxy.{e}"))?;
        }
        if let Some(b) = &mut self.balanced {
            set_consumer_header(&mut b.config, header).map_err(|e| format!("aiProxy.{e}"))?;
        }
        if let Some(c) = &mut self.count_tokens {
            set_consumer_header(c, header).map_err(|e| format!("aiProxy.{e}"))?;
        }
        for f in self.filters.iter_mut().filter(|f| f.kind == FilterKind::Budgets) {
            set_consumer_header(&mut f.config, header).map_err(|e| format!("tokenBudgets.{e}"))?;
            // api_key_auth removes the key before the budgets run: a partition
            // or match on it would see "" for every client.
            for (i, p) in f.config.get("policies").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let named = |v: Option<&Value>| v.and_then(Value::as_str).is_some_and(|h| h.eq_ignore_ascii_case("authorization") || h.eq_ignore_ascii_case("x-api-key"));
                if named(p.get("partition_header")) || named(p.get("match").and_then(|m| m.get("header")).and_then(|h| h.get("name"))) {
                    return Err(format!("tokenBudgets.policies[{i}]: the consumers' keys are removed before budgets run: partition or match by consumer (`partition_by: consumer`, `match.consumer`) instead of the key header"));
                }
            }
            let names = |config: Option<&Value>| -> Vec<String> {
                config.and_then(|c| c.get("policies")).and_then(Value::as_array).into_iter().flatten().filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_string)).collect()
            };
            let theirs = names(budgets);
            if let Some(clash) = names(Some(&f.config)).into_iter().find(|n| theirs.contains(n)) {
                return Err(format!("tokenBudgets: policy `{clash}` is a consumer budget's name"));
            }
        }
        if let Some(b) = budgets {
            let at = self.filters.iter().position(|f| f.kind >= FilterKind::Budgets).unwrap_or(self.filters.len());
            self.filters.insert(at, Filter { kind: FilterKind::Budgets, config: b.clone(), instance: Some("ai-token-ratelimit-consumers") });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const SEED: &str = include_str!("../../envoy/kong-aigateway.yaml");

    #[test]
    fn kongs_manifest_reads_as_is() {
        let g = parse(SEED).unwrap();
        assert_eq!(g.models.len(), 2);
        let dev = g.models.iter().find(|m| m.identifier == "devteam-chatgpt").unwrap();
        assert_eq!(dev.proxy["model"]["options"]["max_tokens"], 50);
        assert_eq!(dev.proxy["route_type"], "llm/v1/chat");
        assert_eq!(dev.filters[0].kind, FilterKind::Decorator);
        assert_eq!(dev.filters[0].config["prompts"]["prepend"][0]["role"], "system");
        let classic = g.models.iter().find(|m| m.identifier == "marketing-team-classic-chatgpt").unwrap();
        assert_eq!(classic.proxy["route_type"], "llm/v1/completions");
        assert_eq!(classic.upstream.host, "api.openai.com");
    }

    fn with_models(models: &str) -> Result<Gateway, FileError> {
        parse(&format!("kind: AIGateway\nmetadata: {{name: g}}\nspec:\n  largeLanguageModels:\n{models}"))
    }

    #[test]
    fn bad_files_name_the_field() {
        let cases = [
            ("    cloudHosted:\n    - {identifier: a, model: m, aiCloudProvider: {name: nope}}\n", "cloudHosted[0] (a): aiCloudProvider.name: unknown provider `nope`"),
            ("    cloudHosted:\n    - {identifier: a, targets: [{model: m, aiCloudProvider: {name: openai}}], balancer: {algorithm: random}}\n", "balancer.algorithm"),
            ("    cloudHosted:\n    - {identifier: a, targets: [{model: m, aiCloudProvider: {name: nope}}]}\n", "targets[0].aiCloudProvider.name"),
            ("    cloudHosted:\n    - {identifier: a, model: m}\n", "needs `aiCloudProvider`"),
            ("    cloudHosted:\n    - {identifier: a, model: m, aiCloudProvider: {name: openai}}\n    - {identifier: a, model: n, aiCloudProvider: {name: openai}}\n", "identifier is used twice"),
            ("    cloudHosted:\n    - {identifier: a/b, model: m, aiCloudProvider: {name: openai}}\n", "one URL path segment"),
            ("    cloudHosted:\n    - {identifier: a, model: m, promptType: images, aiCloudProvider: {name: openai}}\n", "promptType"),
            ("    cloudHosted:\n    - {identifier: a, model: m, aiCloudProvider: {name: openai}, extra: 1}\n", "extra"),
            ("    cloudHosted:\n    - {identifier: a, model: m, defaultPromptParams: {temperature: hot}, aiCloudProvider: {name: openai}}\n", "temperature"),
            ("    cloudHosted:\n    - {identifier: a, model: m, defaultPromptParams: {temperature: 9}, aiCloudProvider: {name: openai}}\n", "model.options.temperature"),
            ("    cloudHosted:\n    - {identifier: a, model: m, aiCloudProvider: {name: bedrock}}\n", "bedrock"),
            ("    cloudHosted:\n    - {identifier: a, model: m, aiCloudProvider: {name: openai}, promptGuard: {deny_patterns: ['(unclosed']}}\n", "promptGuard.deny_patterns[0]"),
            ("    cloudHosted:\n    - {identifier: a, model: m, aiCloudProvider: {name: openai}, tokenBudgets: {policies: [{name: x, limits: []}]}}\n", "tokenBudgets.policies[0]"),
            ("    cloudHosted:\n    - {identifier: a, model: m, llmFormat: gemini, aiCloudProvider: {name: openai}}\n", "cloudHosted[0] (a): llmFormat: `gemini`"),
            ("    cloudHosted:\n    - {identifier: a, model: m, promptType: embeddings, llmFormat: anthropic, aiCloudProvider: {name: openai}}\n", "llmFormat: `anthropic` (the Messages API) needs promptType chat"),
            ("    cloudHosted:\n    - {identifier: a, model: m, aiProxy: {auth: {}}, aiCloudProvider: {name: openai}}\n", "aiProxy.auth: set by the file"),
            ("    cloudHosted:\n    - {identifier: a, model: m, aiProxy: {response_streaming: maybe}, aiCloudProvider: {name: openai}}\n", "cloudHosted[0] (a): response_streaming"),
            ("    cloudHosted:\n    - {identifier: a, model: m, paths: ['/a b'], aiCloudProvider: {name: openai}}\n", "paths[0]: `/a b` is not a plain path"),
            ("    cloudHosted:\n    - {identifier: a, model: m, paths: [/x], aiCloudProvider: {name: openai}}\n    - {identifier: b, model: m, paths: [/x], aiCloudProvider: {name: openai}}\n", "model `b`: paths: `/x` is also model `a`'s"),
            ("    cloudHosted:\n    - {identifier: a, model: m, paths: [/team/v1/models], aiCloudProvider: {name: openai}}\n", "paths: `/team/v1/models` is the gateway's own"),
            ("    cloudHosted:\n    - {identifier: a, model: m, defaultPrompts: [{role: system, content: x}], promptDecorator: {prompts: {append: [{role: user, content: y}]}}, aiCloudProvider: {name: openai}}\n", "defaultPrompts and promptDecorator: give one"),
            ("    cloudHosted:\n    - {identifier: a, model: m, promptDecorator: {prompts: {prepend: [{role: robot, content: y}]}}, aiCloudProvider: {name: openai}}\n", "promptDecorator.prompts.prepend[0].role"),
            ("    selfHosted:\n    - {identifier: a, url: 'http://127.0.0.1:8000', format: passthrough, model: m}\n", "selfHosted[0] (a): format: passthrough sends requests as they are"),
            ("    selfHosted:\n    - {identifier: a, url: 'http://127.0.0.1:8000', format: vllm}\n", "format: `vllm` (openai, ollama or passthrough)"),
            ("    selfHosted:\n    - {identifier: a, url: 'http://127.0.0.1:8000', options: {input_cost: -1}}\n", "model.options.input_cost"),
            ("    cloudHosted:\n    - {identifier: a, model: m, url: 'http://x', aiCloudProvider: {name: openai}}\n", "cloudHosted[0] (a): `url` belongs to selfHosted models"),
            ("    selfHosted:\n    - {identifier: a, url: 'http://127.0.0.1:8000', aiCloudProvider: {name: openai}}\n", "selfHosted[0] (a): `aiCloudProvider` belongs to cloudHosted models"),
            ("    selfHosted:\n    - {identifier: a, format: openai}\n", "selfHosted[0] (a): url: required"),
        ];
        for (models, needle) in cases {
            let err = with_models(models).unwrap_err();
            assert!(err.0.contains(needle), "{models}: {err}");
            assert!(!err.0.contains(" column "), "a position in aigw's own JSON, not the file: {err}");
            assert!(err.0.contains("AIGateway g"), "names the document: {err}");
        }
        let err = parse("kind: AIGateway\nmetadata: {name: g}\nspec:\n  largeLanguageModels: {}\n  cloudProviderCredentials: {name: keys}\n").unwrap_err();
        assert!(err.0.contains("no Secret named `keys`"), "{err}");
        let missing = "kind: Secret\nmetadata: {name: k}\nstringData: {openai: sk-1}\n---\nkind: AIGateway\nmetadata: {name: g}\nspec:\n  cloudProviderCredentials: {name: k}\n  largeLanguageModels:\n    cloudHosted:\n    - {identifier: c, model: claude, aiCloudProvider: {name: anthropic}}\n";
        let err = parse(missing).unwrap_err();
        assert!(err.0.contains("cloudHosted[0] (c): aiCloudProvider.name: the Secret `k` has no `anthropic` key"), "{err}");
    }

    #[test]
    fn aliases_and_consumers_are_checked_naming_the_field() {
        let file = |spec: &str| parse_with_env(&format!("kind: Secret\nmetadata: {{name: k}}\nstringData: {{a: key-aaaa-1, b: key-bbbb-2, short: abc}}\n---\nkind: AIGateway\nmetadata: {{name: g}}\nspec:\n{spec}"), &|v| (v == "SET").then(|| "key-env-0001".to_string()));
        let models = "  largeLanguageModels:\n    selfHosted:\n    - {identifier: m, model: x, url: 'http://h:1', aliases: [mm]}\n    - {identifier: n, model: y, url: 'http://h:1'}\n";
        let g = file(&format!("  consumers:\n  - {{name: alice, keys: [{{secretKeyRef: {{name: k, key: a}}}}, {{env: SET}}], models: [m], tokenBudget: {{limits: [{{limit: 10, window_size: 60}}]}}}}\n  - {{name: bob, keys: [{{secretKeyRef: {{name: k, key: b}}}}]}}\n{models}")).unwrap();
        assert_eq!(g.consumers[0].keys, ["key-aaaa-1", "key-env-0001"]);
        assert_eq!(g.models[0].names, ["m", "mm"]);
        assert_eq!(g.models[0].proxy["model_aliases"], json!(["m", "mm"]));
        assert_eq!(g.models[0].proxy["consumer_header"], "x-consumer-id", "every filter reads the consumers' header");
        let budgets: Vec<&Filter> = g.models[1].filters.iter().filter(|f| f.kind == FilterKind::Budgets).collect();
        assert_eq!(budgets[0].config["policies"][0]["name"], "consumer-alice", "consumer budgets apply on every model");
        for (spec, want) in [
            ("  consumers:\n  - {name: a, keys: [{env: UNSET}]}\n", "consumers[0] (a): keys[0].env: `UNSET` is not set"),
            ("  consumers:\n  - {name: a, keys: [{secretKeyRef: {name: k, key: short}}]}\n", "keys[0]: a key is 8 to 256 printable characters"),
            ("  consumers:\n  - {name: a, keys: [{secretKeyRef: {name: k, key: a}}]}\n  - {name: b, keys: [{secretKeyRef: {name: k, key: a}}]}\n", "consumers[1] (b): keys[0]: the same key is given twice"),
            ("  consumers:\n  - {name: a, keys: [{secretKeyRef: {name: nope, key: a}}]}\n", "keys[0].secretKeyRef.name: no Secret named `nope`"),
            ("  consumers:\n  - {name: a, keys: [{secretKeyRef: {name: k, key: a}}], models: [zz]}\n", "consumers[0] (a): models: no model `zz`"),
            ("  consumers:\n  - {name: a, keys: [{secretKeyRef: {name: k, key: a}}], models: [m]}\n", "model `n`: no consumer may use it"),
            ("  consumers:\n  - {name: 'a b', keys: [{secretKeyRef: {name: k, key: a}}]}\n", "consumers[0] (a b): name"),
            ("  consumers:\n  - {name: a, keys: [{secretKeyRef: {name: k, key: a}}], tokenBudget: {limits: []}}\n", "consumer `a`: tokenBudget.limits"),
            ("  consumers:\n  - {name: a, keys: [{secretKeyRef: {name: k, key: a}}], tokenBudget: {policies: []}}\n", "tokenBudget.policies: unknown"),
            ("  consumerHeader: authorization\n  consumers:\n  - {name: a, keys: [{secretKeyRef: {name: k, key: a}}]}\n", "spec.consumerHeader: `authorization`"),
            ("  consumerHeader: 'x }, y: {'\n  consumers:\n  - {name: a, keys: [{secretKeyRef: {name: k, key: a}}]}\n", "spec.consumerHeader"),
        ] {
            let err = file(&format!("{spec}{models}")).unwrap_err().0;
            assert!(err.contains(want), "{spec}: {err}");
        }
        for (models, want) in [
            ("    - {identifier: m, url: 'http://h:1', aliases: [x]}\n", "aliases: this model takes `model` from the request"),
            ("    - {identifier: m, model: x, url: 'http://h:1', aliases: ['a b']}\n", "aliases[0]: `a b`"),
            ("    - {identifier: m, model: x, url: 'http://h:1', aliases: [n]}\n    - {identifier: n, model: y, url: 'http://h:1'}\n", "model `n`: the name `n` on /v1/chat/completions is also model `m`'s"),
            ("    - {identifier: m, model: x, url: 'http://h:1'}\n    - {identifier: m, model: y, url: 'http://h:1'}\n", "identifier is used twice (selfHosted[0] and selfHosted[1])"),
        ] {
            let err = file(&format!("  largeLanguageModels:\n    selfHosted:\n{models}")).unwrap_err().0;
            assert!(err.contains(want), "{models}: {err}");
        }
        // With consumers the key is gone before budgets run.
        let keyed = "  consumers:\n  - {name: a, keys: [{secretKeyRef: {name: k, key: a}}]}\n  largeLanguageModels:\n    selfHosted:\n    - {identifier: m, model: x, url: 'http://h:1', tokenBudgets: {policies: [{name: p, partition_by: header, partition_header: authorization, limits: [{limit: 1, window_size: 60}]}]}}\n";
        assert!(file(keyed).unwrap_err().0.contains("tokenBudgets.policies[0]: the consumers' keys are removed before budgets run"));
        // The same alias on two APIs is two names.
        assert!(file("  largeLanguageModels:\n    selfHosted:\n    - {identifier: m, model: x, url: 'http://h:1'}\n    - {identifier: r, promptType: responses, model: x, url: 'http://h:1', aliases: [m]}\n").is_ok());
        let err = parse("kind: AIGatway\nmetadata: {name: g}\n").unwrap_err().0;
        assert!(err.contains("kind `AIGatway` is not part of a gateway file"), "{err}");
    }

    #[test]
    fn a2a_agents_render_from_their_own_section() {
        let file = |agents: &str| parse(&format!("kind: AIGateway\nmetadata: {{name: g}}\nspec:\n  a2aAgents:\n{agents}"));
        let g = file("  - {identifier: echo, url: 'http://127.0.0.1:8003', aiA2aProxy: {methods: [{name: CancelTask, acl: {allow: [ops]}}]}}\n").unwrap();
        let a = &g.a2a_agents[0];
        assert_eq!((a.identifier.as_str(), a.upstream.port), ("echo", 8003));
        assert_eq!(a.config["logging"]["log_statistics"], true, "the rendered access log reads its keys");
        for (agents, want) in [
            ("  - {identifier: e, url: 'http://h:1', aiA2aProxy: {methods: [{name: nope, acl: {}}]}}\n", "a2aAgents[0] (e): aiA2aProxy.methods[0].name"),
            ("  - {identifier: e, url: 'http://h:1/a2a'}\n", "url: the agent's base without a path"),
            ("  - {identifier: e, url: 'http://h:1'}\n  - {identifier: e, url: 'http://h:2'}\n", "identifier is used twice"),
            ("  - {identifier: 'a/b', url: 'http://h:1'}\n", "one URL path segment"),
        ] {
            let err = file(agents).unwrap_err().0;
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn mcp_servers_render_from_their_own_section() {
        let file = |servers: &str| parse(&format!("kind: AIGateway\nmetadata: {{name: g}}\nspec:\n  mcpServers:\n{servers}"));
        let g = file("  - {identifier: tools, url: 'http://127.0.0.1:8001/mcp', aiMcpProxy: {default_acl: [{deny: [x]}]}}\n").unwrap();
        let m = &g.mcp_servers[0];
        assert_eq!((m.path.as_str(), m.upstream_path.as_str(), m.conversion), ("/tools/mcp", "/mcp", false));
        assert_eq!((m.config["mode"].clone(), m.config["logging"]["log_statistics"].clone()), (json!("passthrough-listener"), json!(true)));
        for (servers, needle) in [
            ("  - {identifier: t, url: 'http://h:1/mcp', aiMcpProxy: {tools: [{description: d}]}}\n", "mcpServers[0] (t): aiMcpProxy.tools[0].name"),
            ("  - {identifier: t, url: 'http://h:1/api', aiMcpProxy: {mode: conversion-listener, tools: [{name: a, description: d, path: /x}]}}\n", "url: a REST API's base without a path"),
            ("  - {identifier: t, url: 'http://h:1/mcp'}\n  - {identifier: t, url: 'http://h:2/mcp'}\n", "identifier is used twice"),
            ("  - {identifier: 'a/b', url: 'http://h:1/mcp'}\n", "one URL path segment"),
        ] {
            let err = file(servers).unwrap_err();
            assert!(err.0.contains(needle), "{servers}: {err}");
        }
    }

    #[test]
    fn keys_come_from_the_secret_or_the_environment() {
        let file = "kind: Secret\nmetadata: {name: k}\nstringData:\n  openai: '{vault://env/TEAM_OPENAI}'\n  anthropic: '<INSERT TOKEN HERE>'\n---\nkind: AIGateway\nmetadata: {name: g}\nspec:\n  cloudProviderCredentials: {name: k}\n  largeLanguageModels:\n    cloudHosted:\n    - {identifier: a, model: m, aiCloudProvider: {name: openai}}\n    - {identifier: b, model: claude, aiCloudProvider: {name: anthropic, options: {max_tokens: 100}}}\n";
        let g = parse(file).unwrap();
        assert_eq!(g.models[0].proxy["auth"]["header_value"], "Bearer {vault://env/TEAM_OPENAI}");
        assert_eq!(g.models[0].env, ["TEAM_OPENAI"]);
        assert_eq!(g.models[1].proxy["auth"]["header_value"], "{vault://env/ANTHROPIC_API_KEY}");
        assert_eq!(g.models[1].env, ["ANTHROPIC_API_KEY"]);
    }

    #[test]
    fn self_hosted_models_point_at_their_server() {
        let g = with_models("    selfHosted:\n    - {identifier: local, url: 'http://127.0.0.1:11434', format: ollama, model: llama3}\n").unwrap();
        assert_eq!(g.models[0].upstream, Upstream { cluster: "self-127-0-0-1-11434".into(), host: "127.0.0.1".into(), port: 11434, tls: false });
        assert_eq!(g.models[0].proxy["model"]["provider"], "ollama");
    }
}
