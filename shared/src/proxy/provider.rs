//! The seam between ai-proxy and the providers: one `Provider` per upstream
//! API, each in its own file with its wire types, translation both ways,
//! endpoint, and the settings it validated for itself (`registry` builds
//! it). `Exchange` and `ProxyConfig` only ever talk to this trait.
//!
//! Adding a provider: a file implementing `Provider`, its name in
//! `registry::ProviderName`, and its lines in `registry::configure` and
//! `registry::convention`.

use super::options::{ModelOptions, RouteType};
use super::response::Answer;
use super::stream::StreamTranslator;
use crate::config::ConfigError;
use crate::error::GatewayError;
use crate::openai::{ChatRequest, CompletionRequest, EmbeddingRequest};
use serde::Serialize;

/// Resolves a `{vault://env/NAME}` credential for a provider: its value, or
/// None when the config gives none (a missing variable is the caller's to report).
pub type Secret<'a> = dyn FnMut(&str, &Option<String>) -> Option<String> + 'a;

/// A provider's usual credential: the declarative file's Secret key, the
/// environment variable read by default, and where the key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    Header { secret: &'static str, env: &'static str, header: &'static str, bearer: bool },
    /// AWS keys for SigV4, from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    Aws,
}

pub const ALL_ROUTES: &[RouteType] = &[RouteType::Chat, RouteType::Completions, RouteType::Embeddings];
/// OpenAI's own API (OpenAI, Azure): the Responses API too.
pub const WITH_RESPONSES: &[RouteType] = &[RouteType::Chat, RouteType::Completions, RouteType::Embeddings, RouteType::Responses];
pub const CHAT_AND_EMBEDDINGS: &[RouteType] = &[RouteType::Chat, RouteType::Embeddings];

/// Where a provider's requests go when `upstream_url` does not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    /// Path and query for the route; None when it depends on the request
    /// (see `Provider::request_path`) or for `preserve`.
    pub path: Option<String>,
}

/// How a provider frames streamed answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFraming {
    /// Server-sent events, as OpenAI.
    Sse,
    /// One JSON object per line (Ollama); turned into SSE for the client.
    Ndjson,
    /// AWS's binary event stream (Bedrock); turned into SSE for the client.
    AwsEventStream,
}

/// What a request translation may need beyond the OpenAI body.
pub struct RequestContext {
    /// `model.options.max_tokens`.
    pub max_tokens: Option<u64>,
    pub stream: bool,
    /// The gateway already changed the client's body (pinned model, filled
    /// defaults, credentials): an OpenAI-format body must be re-sent.
    pub changed: bool,
}

/// One request, as a signer sees it.
pub struct SignedRequest<'a> {
    pub host: &'a str,
    /// Path and query.
    pub target: &'a str,
    pub body_sha256: &'a str,
    pub unix_seconds: u64,
}

/// Identifies one answer: ids and `created` of translated answers derive
/// from it, and `model` when the provider does not name one.
pub struct Meta<'a> {
    pub id: &'a str,
    pub created: u64,
    pub model: &'a str,
}

pub trait Provider {
    /// The wire format's name, for logs and tests.
    fn name(&self) -> &'static str;

    // Endpoint.

    /// Route types served besides `preserve`, which every provider serves.
    fn routes(&self) -> &'static [RouteType] {
        ALL_ROUTES
    }
    /// The usual path for a route on this API, also used when `upstream_url`
    /// is a bare base URL. None when the path names the model.
    fn path(&self, route: RouteType) -> Option<&'static str>;
    /// The public endpoint, from the model options; None when the provider
    /// has none and `upstream_url` is required.
    fn endpoint(&self, _options: &ModelOptions, _route: RouteType) -> Result<Option<Endpoint>, ConfigError> {
        Ok(None)
    }
    /// The path for one request when it names the model or streaming.
    fn request_path(&self, _route: RouteType, _model: &str, _stream: bool) -> Result<Option<String>, String> {
        Ok(None)
    }
    /// Headers every request carries besides credentials.
    fn headers(&self, _out: &mut Vec<(String, String)>) {}
    /// Request signing (SigV4): the headers that authenticate one request.
    fn sign(&self, _request: &SignedRequest) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Whether `sign` needs the SHA-256 of the body sent upstream.
    fn signs_body(&self) -> bool {
        false
    }
    /// A Messages client's body as this provider takes it natively
    /// (Claude on Vertex AI moves the model and version); true if changed.
    fn adapt_native_messages(&self, _body: &mut serde_json::Value) -> bool {
        false
    }
    /// The endpoint names the model (Azure deployments): requests need not.
    fn model_in_endpoint(&self) -> bool {
        false
    }

    // Requests.

    /// Upstream speaks OpenAI's format: answers need no translation, and an
    /// error body in OpenAI's shape is its own.
    fn speaks_openai(&self) -> bool {
        false
    }
    /// An OpenAI-format upstream that reports stream usage only when asked
    /// with `stream_options.include_usage`.
    fn needs_stream_options(&self) -> bool {
        false
    }
    /// Whether `top_k` (an option default) may be sent: OpenAI itself rejects it.
    fn takes_top_k(&self) -> bool {
        true
    }
    /// The body to send for a chat request; None sends the client's bytes.
    fn chat_request(&self, req: ChatRequest, cx: &RequestContext) -> Result<Option<Vec<u8>>, GatewayError>;
    fn completions_request(&self, req: CompletionRequest, cx: &RequestContext) -> Result<Option<Vec<u8>>, GatewayError> {
        openai_body(&req, cx.changed)
    }
    fn embeddings_request(&self, req: EmbeddingRequest, cx: &RequestContext) -> Result<Option<Vec<u8>>, GatewayError> {
        openai_body(&req, cx.changed)
    }

    // Answers.

    fn stream_framing(&self) -> StreamFraming {
        StreamFraming::Sse
    }
    /// A complete 2xx body, translated to OpenAI's format for the route.
    fn answer(&self, route: RouteType, body: &[u8], meta: &Meta) -> Answer;
    /// The translator for a streamed answer on the route.
    fn stream(&self, route: RouteType, meta: &Meta, client_wants_usage: bool) -> Box<dyn StreamTranslator>;
}

impl std::fmt::Debug for dyn Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub fn to_vec<T: Serialize>(value: &T) -> Result<Vec<u8>, GatewayError> {
    serde_json::to_vec(value).map_err(|e| GatewayError::bad_request(format!("cannot encode request: {e}")))
}

/// An OpenAI-format body: re-encoded only when the gateway changed it.
pub fn openai_body<T: Serialize>(req: &T, changed: bool) -> Result<Option<Vec<u8>>, GatewayError> {
    if changed {
        to_vec(req).map(Some)
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    //! docs/providers.md's field table, as tests: what each provider does
    //! with the OpenAI fields clients commonly send.
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use crate::proxy::config::ProxyConfig;
    use crate::proxy::request::translate_request;
    use serde_json::{json, Value};

    const NATIVE: [&str; 6] = ["anthropic", "cohere", "gemini", "bedrock", "ollama", "mistral"];

    fn config(provider: &str) -> ProxyConfig {
        let options = match provider {
            "bedrock" => json!({"bedrock": {"aws_region": "us-east-1"}}),
            "ollama" => json!({"upstream_url": "http://ollama:11434"}),
            _ => json!({}),
        };
        let auth = if provider == "bedrock" { json!({"aws_access_key_id": "a", "aws_secret_access_key": "b"}) } else { json!({}) };
        let raw = json!({"auth": auth, "model": {"provider": provider, "name": "m", "options": options}});
        ProxyConfig::from_json(raw.to_string().as_bytes(), &|_| None).unwrap()
    }

    /// The body sent upstream, or the client's error message.
    fn send(provider: &str, extra: Value) -> Result<Value, String> {
        let mut body = json!({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]});
        for (k, v) in extra.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        match translate_request(&config(provider), body.to_string().as_bytes()) {
            Ok(t) => Ok(t.body.map(|b| serde_json::from_slice(&b).unwrap()).unwrap_or(body)),
            Err(e) => Err(format!("{} {}", e.status, e.message)),
        }
    }

    #[test]
    fn logprobs_are_refused_by_every_native_api_unless_off() {
        for p in NATIVE {
            assert_eq!(send(p, json!({"logprobs": true})).err(), Some(format!("400 `logprobs` is not supported by {p}")));
            assert!(send(p, json!({"logprobs": false, "top_logprobs": null, "logit_bias": {}})).is_ok(), "{p}");
        }
        assert!(send("openai", json!({"logprobs": true})).is_ok());
    }

    #[test]
    fn several_answers() {
        for p in ["anthropic", "cohere", "bedrock", "ollama"] {
            assert!(send(p, json!({"n": 2})).is_err(), "{p}");
            assert!(send(p, json!({"n": 1})).is_ok(), "{p}");
        }
        assert_eq!(send("gemini", json!({"n": 2})).unwrap()["generationConfig"]["candidateCount"], 2);
        assert!(send("gemini", json!({"n": 2, "stream": true})).is_err(), "streams carry one candidate");
        assert_eq!(send("mistral", json!({"n": 2})).unwrap()["n"], 2);
    }

    #[test]
    fn json_output() {
        let object = json!({"response_format": {"type": "json_object"}});
        let schema = json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}});
        for p in ["anthropic", "bedrock"] {
            assert!(send(p, object.clone()).is_err_and(|e| e.contains("`response_format`")), "{p}");
            assert!(send(p, json!({"response_format": {"type": "text"}})).is_ok(), "{p}");
        }
        assert_eq!(send("cohere", object.clone()).unwrap()["response_format"], json!({"type": "json_object"}));
        assert_eq!(send("cohere", schema.clone()).unwrap()["response_format"], json!({"type": "json_object", "json_schema": {"type": "object"}}));
        assert_eq!(send("gemini", object.clone()).unwrap()["generationConfig"]["responseMimeType"], "application/json");
        assert_eq!(send("gemini", schema.clone()).unwrap()["generationConfig"]["responseJsonSchema"], json!({"type": "object"}));
        assert_eq!(send("ollama", object).unwrap()["format"], "json");
        assert_eq!(send("ollama", schema.clone()).unwrap()["format"], json!({"type": "object"}));
        assert_eq!(send("mistral", schema).unwrap()["response_format"]["type"], "json_schema");
    }

    #[test]
    fn mapped_fields() {
        assert_eq!(send("anthropic", json!({"parallel_tool_calls": false})).unwrap()["tool_choice"], json!({"type": "auto", "disable_parallel_tool_use": true}));
        assert_eq!(send("anthropic", json!({"user": "u1"})).unwrap()["metadata"], json!({"user_id": "u1"}));
        assert_eq!(send("mistral", json!({"seed": 7})).unwrap()["random_seed"], 7);
        assert_eq!(send("cohere", json!({"seed": 7})).unwrap()["seed"], 7);
        assert_eq!(send("gemini", json!({"seed": 7})).unwrap()["generationConfig"]["seed"], 7);
        assert_eq!(send("ollama", json!({"seed": 7})).unwrap()["options"]["seed"], 7);
        let limits = [("anthropic", "/max_tokens"), ("cohere", "/max_tokens"), ("gemini", "/generationConfig/maxOutputTokens"), ("bedrock", "/inferenceConfig/maxTokens"), ("ollama", "/options/num_predict"), ("mistral", "/max_tokens")];
        for (p, at) in limits {
            assert_eq!(send(p, json!({"max_completion_tokens": 9})).unwrap().pointer(at), Some(&json!(9)), "{p}");
        }
    }

    #[test]
    fn dropped_fields_are_not_sent() {
        let extra = json!({"user": "u", "store": true, "metadata": {"k": "v"}, "service_tier": "auto", "reasoning_effort": "low", "seed": 1, "parallel_tool_calls": true});
        for p in NATIVE {
            let sent = send(p, extra.clone()).unwrap_or_else(|e| panic!("{p}: {e}"));
            for field in ["store", "service_tier", "reasoning_effort", "parallel_tool_calls"] {
                if (p, field) == ("mistral", "parallel_tool_calls") {
                    continue; // Mistral has it
                }
                assert!(sent.get(field).is_none(), "{p} sent {field}");
            }
        }
    }
}
