//! The API a route's clients speak (Kong's `llm_format`), one implementation
//! per client format. `Exchange` composes a client with a provider: a
//! request goes client format -> OpenAI chat -> the provider's format, and
//! its answer comes back the other way, so every provider's translation
//! serves every client format.
//!
//! Adding a client format: a file implementing `ClientApi` and its arm in
//! `for_format`.

use super::config::LlmFormat;
use super::messages;
use super::stream::StreamTranslator;
use crate::error::GatewayError;

pub trait ClientApi {
    /// The client's request as an OpenAI chat body; None: it already is one.
    fn to_chat(&self, body: &[u8]) -> Result<Option<Vec<u8>>, GatewayError>;
    /// The gateway's own refusal, in the client's error shape.
    fn error(&self, err: &GatewayError) -> Vec<u8>;
    /// An upstream error already in OpenAI's shape, in the client's; None
    /// keeps OpenAI's.
    fn upstream_error(&self, status: u16, openai_error: &[u8]) -> Option<Vec<u8>>;
    /// An OpenAI chat answer in the client's shape; None keeps it.
    fn answer(&self, openai_answer: &[u8]) -> Result<Option<Vec<u8>>, String>;
    /// Whether the provider's stream must report usage (the client's own
    /// format carries it whether asked or not).
    fn stream_needs_usage(&self) -> bool;
    /// The client's stream over the provider's OpenAI-chunk stream.
    fn stream(&self, openai: Box<dyn StreamTranslator>, id: &str, model: &str) -> Box<dyn StreamTranslator>;
    /// Request headers of the client's own API: not for a translated upstream.
    fn own_headers(&self) -> &'static [&'static str] {
        &[]
    }
}

/// OpenAI's chat completions: the gateway's own wire format, nothing to do.
pub struct OpenAiChat;

impl ClientApi for OpenAiChat {
    fn to_chat(&self, _: &[u8]) -> Result<Option<Vec<u8>>, GatewayError> {
        Ok(None)
    }
    fn error(&self, err: &GatewayError) -> Vec<u8> {
        err.to_json()
    }
    fn upstream_error(&self, _: u16, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn answer(&self, _: &[u8]) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
    fn stream_needs_usage(&self) -> bool {
        false
    }
    fn stream(&self, openai: Box<dyn StreamTranslator>, _: &str, _: &str) -> Box<dyn StreamTranslator> {
        openai
    }
}

/// Anthropic's Messages API (`POST /v1/messages`), translated through
/// OpenAI chat for every provider but Anthropic itself (which `Exchange`
/// passes natively).
pub struct AnthropicMessages;

impl ClientApi for AnthropicMessages {
    fn to_chat(&self, body: &[u8]) -> Result<Option<Vec<u8>>, GatewayError> {
        messages::to_chat(body).map(|(chat, _)| Some(chat))
    }
    fn error(&self, err: &GatewayError) -> Vec<u8> {
        messages::gateway_error(err)
    }
    fn upstream_error(&self, status: u16, openai_error: &[u8]) -> Option<Vec<u8>> {
        Some(messages::error_from_openai(status, openai_error))
    }
    fn answer(&self, openai_answer: &[u8]) -> Result<Option<Vec<u8>>, String> {
        messages::from_chat_response(openai_answer).map(Some).map_err(|e| e.to_string())
    }
    fn stream_needs_usage(&self) -> bool {
        true
    }
    fn stream(&self, openai: Box<dyn StreamTranslator>, id: &str, model: &str) -> Box<dyn StreamTranslator> {
        Box::new(messages::ToMessagesStream::new(openai, id, model))
    }
    fn own_headers(&self) -> &'static [&'static str] {
        &["anthropic-version", "anthropic-beta"]
    }
}

pub fn for_format(format: LlmFormat) -> &'static dyn ClientApi {
    match format {
        LlmFormat::Openai => &OpenAiChat,
        LlmFormat::Anthropic => &AnthropicMessages,
    }
}
