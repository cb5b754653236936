//! The registry: the one file that names every provider. Each provider
//! validates its own options and credentials (`configure`); the generic
//! configuration holds none of them.

use super::options::{AuthConfig, ModelFormat, ModelOptions};
use super::provider::{Convention, Provider, Secret};
use super::{anthropic, azure, bedrock, cohere, gemini, mistral, ollama, openai};
use crate::config::ConfigError;
use serde::Deserialize;
use std::rc::Rc;

/// The providers a configuration may name (`model.provider`).
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
    pub const ALL: [ProviderName; 9] = [
        ProviderName::Openai,
        ProviderName::Azure,
        ProviderName::Mistral,
        ProviderName::Llama2,
        ProviderName::Ollama,
        ProviderName::Anthropic,
        ProviderName::Cohere,
        ProviderName::Gemini,
        ProviderName::Bedrock,
    ];

    pub fn parse(name: &str) -> Option<ProviderName> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

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


/// The configured implementation for a provider. The `*_format: ollama`
/// option puts OpenAI-compatible hosts on Ollama's native API.
pub fn configure(name: ProviderName, format: ModelFormat, options: &ModelOptions, auth: &AuthConfig, secret: &mut Secret) -> Result<Rc<dyn Provider>, ConfigError> {
    if name != ProviderName::Bedrock && (auth.aws_access_key_id.is_some() || auth.aws_secret_access_key.is_some()) {
        return Err(ConfigError::new("auth.aws_access_key_id", "is only used by provider bedrock"));
    }
    Ok(match (name, format) {
        (ProviderName::Openai, _) => Rc::new(openai::OPENAI),
        (ProviderName::Azure, _) => Rc::new(azure::Azure),
        (ProviderName::Mistral | ProviderName::Llama2 | ProviderName::Ollama, ModelFormat::Ollama) => Rc::new(ollama::Ollama),
        (ProviderName::Mistral, _) => Rc::new(mistral::Mistral),
        (ProviderName::Llama2 | ProviderName::Ollama, _) => Rc::new(openai::COMPATIBLE),
        (ProviderName::Anthropic, _) => Rc::new(anthropic::Anthropic::configure(options)?),
        (ProviderName::Cohere, _) => Rc::new(cohere::Cohere),
        (ProviderName::Gemini, _) => Rc::new(gemini::Gemini::configure(options)?),
        (ProviderName::Bedrock, _) => Rc::new(bedrock::Bedrock::configure(options, auth, secret)?),
    })
}

/// How a provider is usually authenticated, for tools that write its
/// configuration (`aigw`): Vertex AI (Gemini, or Claude on Vertex) takes an
/// OAuth access token instead of the provider's API key.
pub fn convention(name: ProviderName, vertex: bool) -> Option<Convention> {
    Some(match (name, vertex) {
        (ProviderName::Gemini | ProviderName::Anthropic, true) => gemini::VERTEX_CREDENTIAL,
        (ProviderName::Openai, _) => openai::CREDENTIAL,
        (ProviderName::Azure, _) => azure::CREDENTIAL,
        (ProviderName::Anthropic, _) => anthropic::CREDENTIAL,
        (ProviderName::Cohere, _) => cohere::CREDENTIAL,
        (ProviderName::Mistral, _) => mistral::CREDENTIAL,
        (ProviderName::Gemini, _) => gemini::CREDENTIAL,
        (ProviderName::Bedrock, _) => bedrock::CREDENTIAL,
        (ProviderName::Llama2 | ProviderName::Ollama, _) => return None, // self-hosted: no key by default
    })
}
