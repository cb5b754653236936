//! The registry: the one file that names every provider. Each provider
//! validates its own options and credentials (`configure`); the generic
//! configuration holds none of them.

use super::options::{AuthConfig, ModelFormat, ModelOptions, ProviderName};
use super::provider::{Provider, Secret};
use super::{anthropic, azure, bedrock, cohere, gemini, mistral, ollama, openai};
use crate::config::ConfigError;
use std::rc::Rc;

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
