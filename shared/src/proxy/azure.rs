//! Azure OpenAI: OpenAI's format on a per-deployment endpoint, where the
//! deployment names the model.

use super::options::{encode_query, is_path_segment, ModelOptions, RouteType, DEFAULT_AZURE_API_VERSION};
use super::openai::{openai_path, OpenAiStream};
use super::provider::{Convention, openai_body, Endpoint, Meta, Provider, RequestContext};
use super::response::{usage_only, Answer};
use super::stream::StreamTranslator;
use crate::config::ConfigError;
use crate::error::GatewayError;
use crate::openai::ChatRequest;

/// The usual credential (see `registry::convention`).
pub const CREDENTIAL: Convention = Convention::Header { secret: "azure", env: "AZURE_OPENAI_API_KEY", header: "api-key", bearer: false };

pub struct Azure;

impl Provider for Azure {
    fn name(&self) -> &'static str {
        "azure"
    }
    fn routes(&self) -> &'static [RouteType] {
        super::provider::WITH_RESPONSES
    }
    fn path(&self, route: RouteType) -> Option<&'static str> {
        openai_path(route) // behind an upstream_url
    }
    fn endpoint(&self, o: &ModelOptions, route: RouteType) -> Result<Option<Endpoint>, ConfigError> {
        let instance = o.azure_instance.as_deref().filter(|s| is_path_segment(s)).ok_or_else(|| {
            ConfigError::new("model.options.azure_instance", "is required for azure (letters, digits, -, _)")
        })?;
        let deployment = o.azure_deployment_id.as_deref().filter(|s| is_path_segment(s)).ok_or_else(|| {
            ConfigError::new("model.options.azure_deployment_id", "is required for azure (letters, digits, -, _, ., :)")
        })?;
        let version = o.azure_api_version.as_deref().unwrap_or(DEFAULT_AZURE_API_VERSION);
        if !is_path_segment(version) {
            return Err(ConfigError::new("model.options.azure_api_version", "is not a valid api-version"));
        }
        let op = match route {
            RouteType::Chat => Some("chat/completions"),
            RouteType::Completions => Some("completions"),
            RouteType::Embeddings => Some("embeddings"),
            // Azure's v1 API: no deployment in the path (the body's `model`
            // names it) and no api-version.
            RouteType::Responses => return Ok(Some(Endpoint { host: format!("{instance}.openai.azure.com"), path: Some("/openai/v1/responses".into()) })),
            RouteType::Preserve => None,
        };
        Ok(Some(Endpoint {
            host: format!("{instance}.openai.azure.com"),
            path: op.map(|op| format!("/openai/deployments/{deployment}/{op}?api-version={}", encode_query(version))),
        }))
    }
    fn model_in_endpoint(&self) -> bool {
        true
    }
    fn speaks_openai(&self) -> bool {
        true
    }
    fn needs_stream_options(&self) -> bool {
        true
    }
    fn takes_top_k(&self) -> bool {
        false
    }
    fn chat_request(&self, req: ChatRequest, cx: &RequestContext) -> Result<Option<Vec<u8>>, GatewayError> {
        openai_body(&req, cx.changed)
    }
    fn answer(&self, route: RouteType, body: &[u8], _: &Meta) -> Answer {
        usage_only(route, body)
    }
    fn stream(&self, _: RouteType, _: &Meta, client_wants_usage: bool) -> Box<dyn StreamTranslator> {
        Box::new(OpenAiStream::new(client_wants_usage))
    }
}
