// Shared by the proxy fuzz targets: one configuration per dialect.
use codec::proxy::config::ProxyConfig;
use codec::proxy::Exchange;
use std::rc::Rc;

pub const CONFIGS: [&str; 19] = [
    r#"{"model":{"provider":"openai","name":"m"}}"#,
    r#"{"model":{"provider":"mistral","name":"m"}}"#,
    r#"{"model":{"provider":"ollama","name":"m","options":{"upstream_url":"http://o"}}}"#,
    r#"{"route_type":"llm/v1/completions","model":{"provider":"ollama","name":"m","options":{"upstream_url":"http://o"}}}"#,
    r#"{"model":{"provider":"anthropic","name":"m"}}"#,
    r#"{"model":{"provider":"cohere","name":"m"}}"#,
    r#"{"model":{"provider":"gemini","name":"m"}}"#,
    r#"{"auth":{"aws_access_key_id":"a","aws_secret_access_key":"s"},"model":{"provider":"bedrock","options":{"bedrock":{"aws_region":"us-east-1"}}}}"#,
    r#"{"route_type":"llm/v1/embeddings","model":{"provider":"cohere","name":"m"}}"#,
    // Claude clients (Anthropic's Messages API) in front of each kind of target.
    r#"{"llm_format":"anthropic","model":{"provider":"openai","name":"m"}}"#,
    r#"{"llm_format":"anthropic","model":{"provider":"anthropic","name":"m"}}"#,
    r#"{"llm_format":"anthropic","model":{"provider":"anthropic","name":"m","options":{"gemini":{"project_id":"p","location_id":"l"}}}}"#,
    r#"{"llm_format":"anthropic","model":{"provider":"gemini","name":"m"}}"#,
    r#"{"llm_format":"anthropic","auth":{"aws_access_key_id":"a","aws_secret_access_key":"s"},"model":{"provider":"bedrock","options":{"bedrock":{"aws_region":"us-east-1"}}}}"#,
    // Untranslated streams of any API (the passthrough reader).
    r#"{"route_type":"preserve","model":{"provider":"openai"}}"#,
    // OpenAI's Responses API from clients: native, and translated through chat.
    r#"{"route_type":"llm/v1/responses","model":{"provider":"openai","name":"m"}}"#,
    r#"{"route_type":"llm/v1/responses","model":{"provider":"anthropic","name":"m"}}"#,
    r#"{"route_type":"llm/v1/responses","model":{"provider":"gemini","name":"m"}}"#,
    r#"{"route_type":"llm/v1/responses","auth":{"aws_access_key_id":"a","aws_secret_access_key":"s"},"model":{"provider":"bedrock","options":{"bedrock":{"aws_region":"us-east-1"}}}}"#,
];

/// The selected configuration takes Anthropic's Messages API from clients.
#[allow(dead_code)] // each target includes this module; only some ask
pub fn is_messages(selector: u8) -> bool {
    CONFIGS[usize::from(selector) % CONFIGS.len()].contains("llm_format")
}

/// The selected configuration takes OpenAI's Responses API from clients.
#[allow(dead_code)]
pub fn is_responses(selector: u8) -> bool {
    CONFIGS[usize::from(selector) % CONFIGS.len()].contains("llm/v1/responses")
}

pub fn exchange(selector: u8) -> Exchange {
    let json = CONFIGS[usize::from(selector) % CONFIGS.len()];
    let cfg = ProxyConfig::from_json(json.as_bytes(), &|_| None).expect("fuzz configs are valid");
    Exchange::new(Rc::new(cfg), "fuzz".into(), 1_700_000_000)
}
