//! MCP's reading of a `tools/call` over the shared JSON-RPC reader.

use crate::jsonrpc::duplicate;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

pub use crate::jsonrpc::*;

/// MCP 2026-07-28: a mirrored header disagrees with the body.
pub const HEADER_MISMATCH: i64 = -32020;

/// The tool a `tools/call` names (`params.name`), read strictly.
pub fn tool_name(message: &Message) -> Result<String, RpcError> {
    let invalid = |why: &str| RpcError::new(INVALID_PARAMS, format!("Invalid params: {why}")).with_id(message.id);
    let Some(params) = message.params else { return Err(invalid("tools/call needs `params.name`")) };
    let params: ToolParams = serde_json::from_str(params.get()).map_err(|e| invalid(&e.to_string()))?;
    params.name.ok_or_else(|| invalid("tools/call needs `params.name`"))
}

struct ToolParams {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum ParamsKey {
    Name,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for ToolParams {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ToolParams;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ToolParams, A::Error> {
                let mut name = None;
                while let Some(key) = map.next_key::<ParamsKey>()? {
                    match key {
                        ParamsKey::Name if name.is_some() => return Err(duplicate("name")),
                        ParamsKey::Name => name = Some(map.next_value::<String>()?),
                        ParamsKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(ToolParams { name })
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
    use serde_json::value::RawValue;

    fn call(body: &str) -> Result<String, RpcError> {
        let body = read(body.as_bytes())?;
        tool_name(&body.messages()[0])
    }

    #[test]
    fn a_tool_call_is_read_as_the_server_reads_it() {
        assert_eq!(call(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"name":"x"}}}"#).unwrap(), "add");
        // Escapes spell the same key and the same name.
        assert_eq!(call(r#"{"jsonrpc":"2.0","id":"a","m\u0065thod":"tools/call","params":{"n\u0061me":"del\u0065te"}}"#).unwrap(), "delete");
        let m = read(br#"{"params":{"name":"add"},"id":7,"method":"tools/call","jsonrpc":"2.0"}"#).unwrap();
        assert_eq!((m.messages()[0].method.as_deref(), m.messages()[0].id.map(|i| i.get())), (Some("tools/call"), Some("7")));
        let id = |raw: &str| canonical_id(&serde_json::from_str::<Box<RawValue>>(raw).unwrap());
        assert_eq!((id(r#""\u0061""#), id("-0"), id("1.0"), id("99999999999999999999")), (Some(r#""a""#.into()), Some("0".into()), None, None));
    }

    #[test]
    fn what_parsers_could_read_two_ways_is_refused() {
        let code = |body: &str| call(body).unwrap_err().code;
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","name":"delete"}}"#), INVALID_PARAMS);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"x"}}"#), INVALID_REQUEST);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}"#), INVALID_REQUEST);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["delete"]}}"#), INVALID_PARAMS);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[]}"#), INVALID_PARAMS);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#), INVALID_PARAMS);
        assert_eq!(code(r#"{"jsonrpc":"1.0","id":1,"method":"tools/call"}"#), INVALID_REQUEST);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":null,"method":"tools/call"}"#), INVALID_REQUEST);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":7}"#), INVALID_REQUEST);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call""#), PARSE_ERROR);
        assert_eq!(code("\u{feff}{}"), PARSE_ERROR);
        assert_eq!(code("[]"), INVALID_REQUEST);
        assert_eq!(read(b"\xff").unwrap_err().code, PARSE_ERROR);
        // The id is echoed when it could be read.
        let err = call(r#"{"jsonrpc":"2.0","id":"k1","method":"tools/call","params":{"name":1}}"#).unwrap_err();
        assert_eq!(err.to_json(), r#"{"jsonrpc":"2.0","id":"k1","error":{"code":-32602,"message":"Invalid params: invalid type: integer `1`, expected a string at line 1 column 9"}}"#);
    }
}
