//! The gateway file: Kong's AIGateway manifest (multi-document YAML with its
//! `Secret` and `GatewayClass`), read as is, plus this gateway's additions.
//! Every model becomes filter configurations checked by the filters' own
//! parsers, so a file that validates here loads in Envoy.

use codec::decorator::Decorator;
use codec::proxy::config::ProxyConfig;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

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
    large_language_models: Models,
    #[serde(default)]
    cloud_provider_credentials: Option<Credentials>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Credentials {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Models {
    #[serde(default)]
    cloud_hosted: Vec<CloudModel>,
    #[serde(default)]
    self_hosted: Vec<SelfHostedModel>,
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

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CloudModel {
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
    #[serde(default)]
    default_prompts: Vec<Prompt>,
    #[serde(default)]
    default_prompt_params: PromptParams,
    /// One provider, or several `targets` with a `balancer`.
    #[serde(default)]
    ai_cloud_provider: Option<CloudProvider>,
    #[serde(default)]
    targets: Vec<BalancedTarget>,
    /// ai-proxy-advanced's `balancer` (its field names).
    #[serde(default)]
    balancer: Option<Value>,
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

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SelfHostedModel {
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
    #[serde(default)]
    default_prompts: Vec<Prompt>,
    #[serde(default)]
    default_prompt_params: PromptParams,
    /// `http://host:port`: an OpenAI-compatible server, or Ollama's API.
    url: String,
    /// `openai` (vLLM, llama.cpp, ...) or `ollama`.
    #[serde(default)]
    format: Option<String>,
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
}

/// The governance filters a model asks for, each checked by its own parser.
fn governance(
    prompts: &[Prompt],
    guard: Option<&Value>,
    templates: Option<&Value>,
    budgets: Option<&Value>,
    at: &str,
) -> Result<Vec<Filter>, FileError> {
    let mut out = Vec::new();
    let check = |field: &str, kind: FilterKind, config: &Value, parse: &dyn Fn(&[u8]) -> Result<(), codec::config::ConfigError>| {
        parse(config.to_string().as_bytes()).map_err(|e| FileError(format!("{at}: {field}.{}: {}", e.path, e.message)))?;
        Ok::<Filter, FileError>(Filter { kind, config: config.clone() })
    };
    if let Some(t) = templates {
        out.push(check("promptTemplates", FilterKind::Template, t, &|b| codec::template::Templates::from_json(b).map(|_| ()))?);
    }
    if let Some(d) = decorator(prompts, at)? {
        out.push(Filter { kind: FilterKind::Decorator, config: d });
    }
    if let Some(g) = guard {
        out.push(check("promptGuard", FilterKind::Guard, g, &|b| codec::guard::Guard::from_json(b).map(|_| ()))?);
    }
    if let Some(b) = budgets {
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

/// One model, ready to render.
#[derive(Debug, Clone)]
pub struct Model {
    pub identifier: String,
    pub model: Option<String>,
    pub provider: String,
    /// `chat`, `completions` or `embeddings`.
    pub prompt_type: &'static str,
    /// ai-proxy's JSON configuration.
    pub proxy: Value,
    /// The governance filters in front of ai-proxy, in chain order
    /// (template, decorator, guard, budgets).
    pub filters: Vec<Filter>,
    pub upstream: Upstream,
    /// A balanced model: ai-proxy-advanced's configuration, its tries, and
    /// each target's upstream (in target order). `proxy` is then unused.
    pub balanced: Option<Balanced>,
    /// Environment variables the rendered config reads for this model.
    pub env: Vec<String>,
}

#[derive(Debug)]
pub struct Gateway {
    pub name: String,
    pub models: Vec<Model>,
}

/// The environment variable a provider's key is read from by default.
fn default_env(provider: &str) -> &'static str {
    match provider {
        "openai" => "OPENAI_API_KEY",
        "azure" => "AZURE_OPENAI_API_KEY",
        "anthropic" => "ANTHROPIC_API_KEY",
        "cohere" => "COHERE_API_KEY",
        "mistral" => "MISTRAL_API_KEY",
        _ => "GEMINI_API_KEY",
    }
}

/// The credential of a hosted provider: ai-proxy's `auth`, and the
/// environment variables it reads. `key`: the Secret's value, a literal
/// key or `{vault://env/NAME}`; none: the provider's usual variable.
fn auth(provider: &str, key: Option<&str>) -> Result<(Value, Vec<String>), String> {
    let var = |name: &str| format!("{{vault://env/{name}}}");
    if provider == "bedrock" {
        let auth = json!({"aws_access_key_id": var("AWS_ACCESS_KEY_ID"), "aws_secret_access_key": var("AWS_SECRET_ACCESS_KEY")});
        return Ok((auth, vec!["AWS_ACCESS_KEY_ID".into(), "AWS_SECRET_ACCESS_KEY".into()]));
    }
    let (header, bearer) = match provider {
        "openai" | "mistral" | "cohere" => ("Authorization", true),
        "azure" => ("api-key", false),
        "anthropic" => ("x-api-key", false),
        "gemini" => ("x-goog-api-key", false),
        other => return Err(format!("unknown provider `{other}` (openai, azure, anthropic, cohere, mistral, gemini, bedrock)")),
    };
    let value = key.map(str::to_string).unwrap_or_else(|| var(default_env(provider)));
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
        other => return Err(format!("promptType: `{other}` (chat, completions or embeddings)")),
    })
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
    let cluster = if host.starts_with("api.") || host.contains("googleapis.com") || host.contains("amazonaws.com") {
        format!("{provider}-{}", host.replace('.', "-"))
    } else {
        format!("{provider}-{}", host.replace(['.', ':'], "-"))
    };
    Upstream { cluster, host, port: 443, tls: true }
}

/// ai-proxy's `model` object.
fn model_json(provider: &str, name: Option<&str>, options: Map<String, Value>) -> Value {
    let mut model = Map::new();
    model.insert("provider".into(), json!(provider));
    if let Some(name) = name {
        model.insert("name".into(), json!(name));
    }
    model.insert("options".into(), Value::Object(options));
    Value::Object(model)
}

fn valid_identifier(id: &str) -> bool {
    !id.is_empty() && id.len() <= 63 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') && id != "v1"
}

fn decorator(prompts: &[Prompt], at: &str) -> Result<Option<Value>, FileError> {
    if prompts.is_empty() {
        return Ok(None);
    }
    let prepend: Vec<Value> = prompts.iter().map(|p| json!({"role": p.role, "content": p.content})).collect();
    let config = json!({"prompts": {"prepend": prepend}});
    Decorator::from_json(config.to_string().as_bytes()).map_err(|e| FileError(format!("{at}: defaultPrompts: {}", e.message)))?;
    Ok(Some(config))
}

/// Parses and checks a gateway file. `text` may hold several YAML documents.
pub fn parse(text: &str) -> Result<Gateway, FileError> {
    let mut docs = Vec::new();
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let doc: Option<Document> = serde_path_to_error::deserialize(de).map_err(|e| FileError(format!("document {}: at `{}`: {}", i + 1, e.path(), e.inner())))?;
        if let Some(doc) = doc {
            docs.push((i + 1, doc));
        }
    }
    let secrets: BTreeMap<String, (usize, &Document)> = docs.iter().filter(|(_, d)| d.kind == "Secret").map(|(i, d)| (d.metadata.name.clone(), (*i, d))).collect();
    let gateways: Vec<&(usize, Document)> = docs.iter().filter(|(_, d)| d.kind == "AIGateway").collect();
    let [(n, doc)] = gateways.as_slice() else {
        return Err(FileError(format!("the file needs exactly one AIGateway document (found {})", gateways.len())));
    };
    let at = format!("document {n} (AIGateway {})", doc.metadata.name);
    for (i, d) in &docs {
        if !matches!(d.kind.as_str(), "AIGateway" | "Secret" | "GatewayClass") {
            return Err(FileError(format!("document {i}: kind `{}` is not part of a gateway file (AIGateway, Secret, GatewayClass)", d.kind)));
        }
    }
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
        let fail = |e: String| FileError(format!("{where_}: {e}"));
        let (prompt_type, route) = route_type(m.prompt_type.as_deref()).map_err(fail)?;
        // One provider's ai-proxy configuration, from the file's keys.
        let hosted = |provider: &str, model: Option<&str>, opts: Map<String, Value>, field: &str| -> Result<(Value, Vec<String>, Upstream), FileError> {
            if let (Some(c), false) = (&spec.cloud_provider_credentials, keys.contains_key(provider) || provider == "bedrock") {
                return Err(fail(format!(
                    "{field}.name: the Secret `{}` has no `{provider}` key (add it, or leave out cloudProviderCredentials to read {})",
                    c.name,
                    default_env(provider)
                )));
            }
            // Kong's sample says `<INSERT TOKEN HERE>`: a placeholder, not a key.
            let key = keys.get(provider).map(String::as_str).filter(|k| !(k.starts_with('<') && k.ends_with('>')));
            let (auth, env) = auth(provider, key).map_err(|e| fail(format!("{field}.name: {e}")))?;
            let proxy = json!({"route_type": route, "auth": auth, "model": model_json(provider, model, opts)});
            let parsed = ProxyConfig::from_json(proxy.to_string().as_bytes(), &|_| Some("set".into())).map_err(|e| fail(format!("{}: {}", e.path, e.message)))?;
            Ok((proxy, env, hosted_upstream(provider, &parsed)))
        };
        let filters = governance(&m.default_prompts, m.prompt_guard.as_ref(), m.prompt_templates.as_ref(), m.token_budgets.as_ref(), &where_)?;
        match (&m.ai_cloud_provider, m.targets.is_empty()) {
            (Some(p), true) => {
                let opts = options(&m.default_prompt_params, p.options.as_ref()).map_err(fail)?;
                let (proxy, env, upstream) = hosted(&p.name, m.model.as_deref(), opts, "aiCloudProvider")?;
                models.push(Model { identifier: m.identifier.clone(), model: m.model.clone(), provider: p.name.clone(), prompt_type, upstream, proxy, balanced: None, filters, env });
            }
            (None, false) => {
                let mut targets = Vec::new();
                let mut upstreams = Vec::new();
                let mut env = Vec::new();
                for (k, t) in m.targets.iter().enumerate() {
                    let opts = options(&m.default_prompt_params, t.ai_cloud_provider.options.as_ref()).map_err(fail)?;
                    let (proxy, target_env, upstream) = hosted(&t.ai_cloud_provider.name, t.model.as_deref(), opts, &format!("targets[{k}].aiCloudProvider"))?;
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
                    .map_err(|e| fail(format!("{}: {}", e.path, e.message)))?;
                let first = upstreams.first().cloned().ok_or_else(|| fail("targets: empty".into()))?;
                let providers: Vec<String> = m.targets.iter().map(|t| t.ai_cloud_provider.name.clone()).collect();
                models.push(Model {
                    identifier: m.identifier.clone(),
                    model: m.model.clone().or_else(|| m.targets.first().and_then(|t| t.model.clone())),
                    provider: providers.join("+"),
                    prompt_type,
                    upstream: first,
                    proxy: Value::Null,
                    balanced: Some(Balanced { config, tries: parsed.tries, targets: upstreams }),
                    filters,
                    env,
                });
            }
            _ => return Err(fail("needs `aiCloudProvider`, or `targets` (with an optional `balancer`), not both".into())),
        }
    }
    for (i, m) in spec.large_language_models.self_hosted.iter().enumerate() {
        let where_ = format!("{at}: largeLanguageModels.selfHosted[{i}] ({})", m.identifier);
        let fail = |e: String| FileError(format!("{where_}: {e}"));
        let (prompt_type, route) = route_type(m.prompt_type.as_deref()).map_err(fail)?;
        let url = codec::proxy::config::parse_upstream_url(&m.url).map_err(|e| fail(format!("url: {e}")))?;
        let (host, port) = match url.authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse::<u16>().map_err(|_| fail(format!("url: bad port `{p}`")))?),
            None => (url.authority.clone(), if m.url.starts_with("https://") { 443 } else { 80 }),
        };
        let format = m.format.as_deref().unwrap_or("openai");
        let mut opts = options(&m.default_prompt_params, None).map_err(fail)?;
        opts.insert("upstream_url".into(), json!(m.url));
        let (provider, format_key) = match format {
            "openai" => ("llama2", "openai"),
            "ollama" => ("ollama", "ollama"),
            other => return Err(fail(format!("format: `{other}` (openai or ollama)"))),
        };
        opts.insert("llama2_format".into(), json!(format_key));
        let proxy = json!({"route_type": route, "model": model_json(provider, m.model.as_deref(), opts)});
        ProxyConfig::from_json(proxy.to_string().as_bytes(), &|_| None).map_err(|e| fail(format!("{}: {}", e.path, e.message)))?;
        models.push(Model {
            identifier: m.identifier.clone(),
            model: m.model.clone(),
            provider: format.to_string(),
            prompt_type,
            upstream: Upstream { cluster: format!("self-{}", m.identifier), host, port, tls: m.url.starts_with("https://") },
            proxy,
            balanced: None,
            filters: governance(&m.default_prompts, m.prompt_guard.as_ref(), m.prompt_templates.as_ref(), m.token_budgets.as_ref(), &where_)?,
            env: Vec::new(),
        });
    }
    if models.is_empty() {
        return Err(FileError(format!("{at}: spec.largeLanguageModels: no models")));
    }
    let mut seen = std::collections::BTreeSet::new();
    for m in &models {
        if !valid_identifier(&m.identifier) {
            return Err(FileError(format!("{at}: model `{}`: identifier must be one URL path segment (letters, digits, `-`, `_`; not `v1`)", m.identifier)));
        }
        if !seen.insert(m.identifier.clone()) {
            return Err(FileError(format!("{at}: model `{}`: identifier is used twice", m.identifier)));
        }
    }
    Ok(Gateway { name: doc.metadata.name.clone(), models })
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
        ];
        for (models, needle) in cases {
            let err = with_models(models).unwrap_err();
            assert!(err.0.contains(needle), "{models}: {err}");
            assert!(err.0.contains("AIGateway g"), "names the document: {err}");
        }
        let err = parse("kind: AIGateway\nmetadata: {name: g}\nspec:\n  largeLanguageModels: {}\n  cloudProviderCredentials: {name: keys}\n").unwrap_err();
        assert!(err.0.contains("no Secret named `keys`"), "{err}");
        let missing = "kind: Secret\nmetadata: {name: k}\nstringData: {openai: sk-1}\n---\nkind: AIGateway\nmetadata: {name: g}\nspec:\n  cloudProviderCredentials: {name: k}\n  largeLanguageModels:\n    cloudHosted:\n    - {identifier: c, model: claude, aiCloudProvider: {name: anthropic}}\n";
        let err = parse(missing).unwrap_err();
        assert!(err.0.contains("cloudHosted[0] (c): aiCloudProvider.name: the Secret `k` has no `anthropic` key"), "{err}");
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
        assert_eq!(g.models[0].upstream, Upstream { cluster: "self-local".into(), host: "127.0.0.1".into(), port: 11434, tls: false });
        assert_eq!(g.models[0].proxy["model"]["provider"], "ollama");
    }
}
