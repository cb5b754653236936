//! The API a route's clients speak (Kong's `llm_format`), one implementation
//! per client format. `Exchange` composes a client with a provider: a
//! request goes client format -> OpenAI chat -> the provider's format, and
//! its answer comes back the other way, so every provider's translation
//! serves every client format.
//!
//! Adding a client format: a file implementing `ClientApi` and its arm in
//! `for_request`.

use super::config::{LlmFormat, ProxyConfig};
use super::messages;
use super::provider::Meta;
use super::responses;
use super::stream::StreamTranslator;
use crate::error::GatewayError;
use serde_json::{Map, Value};

pub trait ClientApi {
    /// The client's request as an OpenAI chat body, handed on as a `Value`
    /// so the provider reads it without a second parse; None: it already is
    /// one. A client that must repeat parts of the request in its answer
    /// keeps them.
    fn to_chat(&mut self, body: &[u8]) -> Result<Option<Value>, GatewayError>;
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
    fn stream(&self, openai: Box<dyn StreamTranslator>, meta: &Meta) -> Box<dyn StreamTranslator>;
    /// Request headers of the client's own API: not for a translated upstream.
    fn own_headers(&self) -> &'static [&'static str] {
        &[]
    }
}

/// OpenAI's chat completions: the gateway's own wire format, nothing to do.
pub struct OpenAiChat;

impl ClientApi for OpenAiChat {
    fn to_chat(&mut self, _: &[u8]) -> Result<Option<Value>, GatewayError> {
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
    fn stream(&self, openai: Box<dyn StreamTranslator>, _: &Meta) -> Box<dyn StreamTranslator> {
        openai
    }
}

/// Anthropic's Messages API (`POST /v1/messages`), translated through
/// OpenAI chat for every provider but Anthropic itself (which `Exchange`
/// passes natively).
pub struct AnthropicMessages;

impl ClientApi for AnthropicMessages {
    fn to_chat(&mut self, body: &[u8]) -> Result<Option<Value>, GatewayError> {
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
    fn stream(&self, openai: Box<dyn StreamTranslator>, meta: &Meta) -> Box<dyn StreamTranslator> {
        Box::new(messages::ToMessagesStream::new(openai, meta.id, meta.model))
    }
    fn own_headers(&self) -> &'static [&'static str] {
        &["anthropic-version", "anthropic-beta"]
    }
}

/// OpenAI's Responses API (`POST /v1/responses`), translated through OpenAI
/// chat for every provider that does not speak it (OpenAI and Azure get it
/// natively, as OpenAI chat clients).
#[derive(Default)]
pub struct OpenAiResponses {
    /// The request fields the answer repeats.
    echo: Map<String, Value>,
}

impl ClientApi for OpenAiResponses {
    fn to_chat(&mut self, body: &[u8]) -> Result<Option<Value>, GatewayError> {
        let (chat, echo) = responses::request_to_chat(body)?;
        self.echo = echo;
        Ok(Some(chat))
    }
    fn error(&self, err: &GatewayError) -> Vec<u8> {
        responses::error_json(err)
    }
    fn upstream_error(&self, _: u16, _: &[u8]) -> Option<Vec<u8>> {
        None // OpenAI's shape already
    }
    fn answer(&self, openai_answer: &[u8]) -> Result<Option<Vec<u8>>, String> {
        responses::answer_from_chat(openai_answer, &self.echo).map(Some)
    }
    fn stream_needs_usage(&self) -> bool {
        true
    }
    fn stream(&self, openai: Box<dyn StreamTranslator>, meta: &Meta) -> Box<dyn StreamTranslator> {
        Box::new(responses::ToResponsesStream::new(openai, meta, self.echo.clone()))
    }
}

/// The client format of one request on a route: Kong's `llm_format`, and
/// the Responses API where the provider does not speak it natively.
pub fn for_request(cfg: &ProxyConfig) -> Box<dyn ClientApi> {
    match cfg.llm_format {
        LlmFormat::Anthropic => Box::new(AnthropicMessages),
        LlmFormat::Openai if cfg.translates_responses() => Box::<OpenAiResponses>::default(),
        LlmFormat::Openai => Box::new(OpenAiChat),
    }
}
