//! Reads a client's JSON-RPC 2.0 body the way the server's parser will
//! (MCP's and A2A's), and refuses what could be read two ways: a repeated
//! key (parsers differ on which one wins), a `method` that is not a
//! string, a non-2.0 envelope. `\u` escapes are decoded as every JSON parser does, so
//! an escaped method name is the method it spells.

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::error::Category;
use serde_json::value::RawValue;
use std::fmt;

/// JSON-RPC's error codes.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;

/// One message of a client's body.
#[derive(Debug)]
pub struct Message<'a> {
    /// The id exactly as sent, to answer with; None for a notification
    /// or a message without one.
    pub id: Option<&'a RawValue>,
    /// None for a response (the client answering a server's request).
    pub method: Option<String>,
    pub params: Option<&'a RawValue>,
}

/// Why a body is refused: the JSON-RPC error to answer with.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    /// The raw id of the message it answers, if one could be read.
    pub id: Option<String>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError { code, message: message.into(), id: None }
    }

    pub fn with_id(mut self, id: Option<&RawValue>) -> RpcError {
        self.id = id.map(|id| id.get().to_string());
        self
    }

    /// `{"jsonrpc":"2.0","id":...,"error":{...}}`
    pub fn to_json(&self) -> String {
        let message = serde_json::to_string(&self.message).unwrap_or_else(|_| "\"error\"".into());
        format!(r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":{},"message":{message}}}}}"#, self.id.as_deref().unwrap_or("null"), self.code)
    }
}

/// A body: one message, or a batch (MCP 2025-03-26 only; later MCP
/// servers and A2A agents refuse batches).
#[derive(Debug)]
pub enum Body<'a> {
    Single(Message<'a>),
    Batch(Vec<Message<'a>>),
}

impl<'a> Body<'a> {
    pub fn messages(&self) -> &[Message<'a>] {
        match self {
            Body::Single(m) => std::slice::from_ref(m),
            Body::Batch(ms) => ms,
        }
    }
}

pub fn read(body: &[u8]) -> Result<Body<'_>, RpcError> {
    let text = std::str::from_utf8(body).map_err(|_| RpcError::new(PARSE_ERROR, "Parse error: the body is not UTF-8"))?;
    let parse_error = |e: serde_json::Error| RpcError::new(PARSE_ERROR, format!("Parse error: {e}"));
    if text.trim_start().starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(text).map_err(parse_error)?;
        if items.is_empty() {
            return Err(RpcError::new(INVALID_REQUEST, "Invalid Request: an empty batch"));
        }
        let messages = items.into_iter().map(|item| message(item.get())).collect::<Result<_, _>>()?;
        return Ok(Body::Batch(messages));
    }
    message(text).map(Body::Single)
}

/// One pass: invalid JSON is a parse error, valid JSON of the wrong shape
/// (or with a repeated key) an invalid request.
fn message(text: &str) -> Result<Message<'_>, RpcError> {
    let env: Envelope = serde_json::from_str(text).map_err(|e| match e.classify() {
        Category::Data => RpcError::new(INVALID_REQUEST, format!("Invalid Request: {e}")),
        Category::Syntax | Category::Eof | Category::Io => RpcError::new(PARSE_ERROR, format!("Parse error: {e}")),
    })?;
    let invalid = |why: &str| Err(RpcError::new(INVALID_REQUEST, format!("Invalid Request: {why}")).with_id(env.id.filter(|id| valid_id(id))));
    if env.jsonrpc.as_deref() != Some("2.0") {
        return invalid("`jsonrpc` must be \"2.0\"");
    }
    if let Some(id) = env.id {
        if !valid_id(id) {
            return invalid("`id` must be a string or an integer");
        }
    }
    if env.method.is_none() && !(env.has_result_or_error && env.id.is_some()) {
        return invalid("neither a request (`method`) nor a response (`id` with `result` or `error`)");
    }
    Ok(Message { id: env.id, method: env.method, params: env.params })
}

/// MCP and A2A: ids are strings or integers, never null.
fn valid_id(id: &RawValue) -> bool {
    canonical_id(id).is_some()
}

/// An id as the server will echo it once parsed (`"\u0061"` is `"a"`,
/// `-0` is `0`), so a request and its answer are paired however the id
/// was spelt. None for what is not a string or a 64-bit integer.
pub fn canonical_id(id: &RawValue) -> Option<String> {
    let s = id.get();
    if s.starts_with('"') {
        let text: String = serde_json::from_str(s).ok()?;
        return serde_json::to_string(&text).ok();
    }
    if !s.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return None;
    }
    s.parse::<i64>().ok().map(|n| n.to_string())
}

#[derive(Default)]
struct Envelope<'a> {
    jsonrpc: Option<String>,
    id: Option<&'a RawValue>,
    method: Option<String>,
    params: Option<&'a RawValue>,
    has_result_or_error: bool,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum EnvelopeKey {
    Jsonrpc,
    Id,
    Method,
    Params,
    Result,
    Error,
    #[serde(other)]
    Other,
}

pub(crate) fn duplicate<E: de::Error>(key: &str) -> E {
    E::custom(format!("the key `{key}` appears twice"))
}

impl<'de: 'a, 'a> Deserialize<'de> for Envelope<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Envelope<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON-RPC object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<'de>, A::Error> {
                let mut env = Envelope::default();
                let (mut seen_result, mut seen_error) = (false, false);
                while let Some(key) = map.next_key::<EnvelopeKey>()? {
                    match key {
                        EnvelopeKey::Jsonrpc if env.jsonrpc.is_some() => return Err(duplicate("jsonrpc")),
                        EnvelopeKey::Jsonrpc => env.jsonrpc = Some(map.next_value::<String>()?),
                        EnvelopeKey::Id if env.id.is_some() => return Err(duplicate("id")),
                        EnvelopeKey::Id => env.id = Some(map.next_value::<&RawValue>()?),
                        EnvelopeKey::Method if env.method.is_some() => return Err(duplicate("method")),
                        EnvelopeKey::Method => env.method = Some(map.next_value::<String>()?),
                        EnvelopeKey::Params if env.params.is_some() => return Err(duplicate("params")),
                        EnvelopeKey::Params => env.params = Some(map.next_value::<&RawValue>()?),
                        EnvelopeKey::Result if seen_result => return Err(duplicate("result")),
                        EnvelopeKey::Error if seen_error => return Err(duplicate("error")),
                        EnvelopeKey::Result | EnvelopeKey::Error => {
                            if matches!(key, EnvelopeKey::Result) { seen_result = true } else { seen_error = true }
                            env.has_result_or_error = true;
                            map.next_value::<IgnoredAny>()?;
                        }
                        EnvelopeKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(env)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    #[test]
    fn batches_and_responses() {
        let b = read(br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":"s1","result":{}}]"#).unwrap();
        let ms = b.messages();
        assert_eq!(ms.len(), 3);
        assert!(ms[1].id.is_none() && ms[2].method.is_none());
        assert_eq!(read(br#"[{"jsonrpc":"2.0","id":1}]"#).unwrap_err().code, INVALID_REQUEST);
    }
}
