//! The blocks of ai-proxy's configuration that providers read, as Kong
//! spells them (`model.options`, `auth`), and the small checks they share.
//! A leaf: it names no provider, and every provider may use it.

use serde::Deserialize;

pub use crate::config::is_header_value;
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RouteType {
    #[serde(rename = "llm/v1/chat")]
    Chat,
    #[serde(rename = "llm/v1/completions")]
    Completions,
    #[serde(rename = "llm/v1/embeddings")]
    Embeddings,
    /// OpenAI's Responses API (`POST /v1/responses`), passed natively to
    /// the providers that speak it (OpenAI, Azure).
    #[serde(rename = "llm/v1/responses")]
    Responses,
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
            RouteType::Responses => "llm/v1/responses",
            RouteType::Preserve => "preserve",
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

