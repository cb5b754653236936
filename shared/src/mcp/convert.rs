//! Kong's `conversion-listener`: the filter is the MCP server, and its tools
//! are the routes of a REST API described in the configuration. A
//! `tools/call` becomes the REST request (sent on by Envoy's router to the
//! route's cluster) and the API's answer becomes the tool's result.

use crate::config::{is_header_name, is_header_value, ConfigError};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Where an OpenAPI parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    Path,
    Query,
    Header,
    Cookie,
}

/// An OpenAPI 3 parameter object, as Kong takes them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    pub name: String,
    #[serde(rename = "in")]
    pub location: Location,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub schema: Option<Value>,
}

/// OpenAPI's `requestBody`: JSON bodies only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestBody {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub required: bool,
    pub content: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Annotations {
    pub title: Option<String>,
    pub read_only_hint: Option<bool>,
    pub destructive_hint: Option<bool>,
    pub idempotent_hint: Option<bool>,
    pub open_world_hint: Option<bool>,
}

/// One REST route as an MCP tool, checked and with its listing built once.
#[derive(Debug, Clone)]
pub struct RestTool {
    pub name: String,
    pub method: String,
    /// `/orders/{id}`: `{name}` segments filled from path parameters.
    pub path: String,
    pub host: Option<String>,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub parameters: Vec<Parameter>,
    pub body: Option<RequestBody>,
    /// The tool as `tools/list` shows it (name, description, inputSchema, annotations).
    pub listing: Value,
}

/// The REST request a `tools/call` becomes.
#[derive(Debug, PartialEq)]
pub struct RestCall {
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    /// Headers to set (names lower-case), the tool's and the header and cookie parameters.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// The property that carries a tool's JSON body in its arguments.
pub const BODY_ARGUMENT: &str = "body";

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

pub struct ToolFields<'a> {
    pub at: &'a dyn Fn(&str) -> String,
    pub name: &'a str,
    pub description: &'a str,
    pub method: Option<&'a str>,
    pub path: Option<&'a str>,
    pub host: Option<&'a str>,
    pub headers: &'a Map<String, Value>,
    pub query: &'a Map<String, Value>,
    pub parameters: &'a [Parameter],
    pub request_body: Option<&'a RequestBody>,
    pub annotations: Option<&'a Annotations>,
}

/// `{"h": ["a", "b"]}` (Kong's map of string lists) as pairs.
fn string_lists(path: &str, map: &Map<String, Value>) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (k, v) in map {
        let values = v.as_array().ok_or_else(|| ConfigError::new(format!("{path}.{k}"), "must be a list of strings"))?;
        for v in values {
            let v = v.as_str().ok_or_else(|| ConfigError::new(format!("{path}.{k}"), "must be a list of strings"))?;
            out.push((k.clone(), v.to_string()));
        }
    }
    Ok(out)
}

impl RestTool {
    pub fn new(f: ToolFields) -> Result<RestTool, ConfigError> {
        let at = f.at;
        let method = f.method.unwrap_or("POST").to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(ConfigError::new(at("method"), "must be GET, POST, PUT, PATCH or DELETE"));
        }
        let path = f.path.ok_or_else(|| ConfigError::new(at("path"), "required in conversion-listener mode: the REST route this tool calls"))?;
        if !path.starts_with('/') || path.contains('?') || path.contains('#') {
            return Err(ConfigError::new(at("path"), "must be an absolute path (`/orders/{id}`) without query"));
        }
        if f.host.is_some_and(|h| h.is_empty() || !is_header_value(h) || h.contains('/')) {
            return Err(ConfigError::new(at("host"), "must be a host name"));
        }
        let headers = string_lists(&at("headers"), f.headers)?;
        for (k, v) in &headers {
            if !is_header_name(k) || !is_header_value(v) {
                return Err(ConfigError::new(at("headers"), format!("`{k}` is not a valid header")));
            }
        }
        let query = string_lists(&at("query"), f.query)?;
        let mut properties = Map::new();
        let mut required = Vec::new();
        for (i, p) in f.parameters.iter().enumerate() {
            let here = |field: &str| at(&format!("parameters[{i}].{field}"));
            if p.name.is_empty() || p.name == BODY_ARGUMENT || properties.contains_key(&p.name) {
                return Err(ConfigError::new(here("name"), format!("`{}` must be a unique name other than `{BODY_ARGUMENT}`", p.name)));
            }
            match p.location {
                Location::Path if !path.contains(&format!("{{{}}}", p.name)) => {
                    return Err(ConfigError::new(here("name"), format!("path parameter `{}` is not in the path `{path}`", p.name)));
                }
                Location::Header | Location::Cookie if !is_header_name(&p.name) => return Err(ConfigError::new(here("name"), "must be a header or cookie name (an HTTP token)")),
                _ => {}
            }
            let mut schema = match &p.schema {
                Some(Value::Object(s)) => s.clone(),
                Some(_) => return Err(ConfigError::new(here("schema"), "must be a JSON Schema object")),
                None => Map::from_iter([("type".to_string(), json!("string"))]),
            };
            if let Some(d) = &p.description {
                schema.insert("description".into(), json!(d));
            }
            properties.insert(p.name.clone(), Value::Object(schema));
            // OpenAPI: a path parameter is always required.
            if p.required || p.location == Location::Path {
                required.push(json!(p.name));
            }
        }
        for segment in path.split('{').skip(1) {
            let name = segment.split('}').next().unwrap_or_default();
            if !f.parameters.iter().any(|p| p.location == Location::Path && p.name == name) {
                return Err(ConfigError::new(at("path"), format!("`{{{name}}}` has no path parameter")));
            }
        }
        if let Some(body) = f.request_body {
            if body.content.keys().any(|k| k != "application/json") {
                return Err(ConfigError::new(at("request_body.content"), "only `application/json` bodies"));
            }
            let mut schema = body.content.get("application/json").and_then(|c| c.get("schema")).cloned().unwrap_or_else(|| json!({"type": "object"}));
            if let (Some(d), Some(s)) = (&body.description, schema.as_object_mut()) {
                s.insert("description".into(), json!(d));
            }
            properties.insert(BODY_ARGUMENT.into(), schema);
            if body.required {
                required.push(json!(BODY_ARGUMENT));
            }
        }
        let mut listing = json!({
            "name": f.name,
            "description": f.description,
            "inputSchema": {"type": "object", "properties": properties, "required": required},
        });
        if let Some(a) = f.annotations {
            let mut out = Map::new();
            let mut put = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    out.insert(k.into(), v);
                }
            };
            put("title", a.title.clone().map(Value::String));
            put("readOnlyHint", a.read_only_hint.map(Value::Bool));
            put("destructiveHint", a.destructive_hint.map(Value::Bool));
            put("idempotentHint", a.idempotent_hint.map(Value::Bool));
            put("openWorldHint", a.open_world_hint.map(Value::Bool));
            if let Some(listing) = listing.as_object_mut() {
                listing.insert("annotations".into(), Value::Object(out));
            }
        }
        Ok(RestTool {
            name: f.name.to_string(),
            method,
            path: path.to_string(),
            host: f.host.map(str::to_string),
            headers: headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect(),
            query,
            parameters: f.parameters.to_vec(),
            body: f.request_body.cloned(),
            listing,
        })
    }

    /// The REST request for these arguments, or why the call is refused
    /// (a tool error the agent sees: a missing or unusable argument).
    pub fn call(&self, arguments: Option<&Value>) -> Result<RestCall, String> {
        let empty = Map::new();
        let args = match arguments {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(a)) => a,
            Some(_) => return Err("`arguments` must be an object".into()),
        };
        let mut path = self.path.clone();
        let mut query: Vec<String> = Vec::new();
        let mut headers = self.headers.clone();
        let mut cookies: Vec<String> = Vec::new();
        for p in &self.parameters {
            let Some(value) = args.get(&p.name).filter(|v| !v.is_null()) else {
                if p.required || p.location == Location::Path {
                    return Err(format!("missing required argument `{}`", p.name));
                }
                continue;
            };
            match p.location {
                Location::Path => {
                    let text = scalar(value).ok_or_else(|| format!("`{}` must be a string, number or boolean", p.name))?;
                    // Kong's traversal bug: a value never leaves its segment,
                    // not even past an API (or a proxy in front of it) that
                    // decodes `%2F` before it resolves `..`.
                    if text.split(['/', '\\']).any(|piece| piece.is_empty() || piece == "." || piece == "..") {
                        return Err(format!("`{}` may not be empty or hold `.` or `..` path segments", p.name));
                    }
                    path = path.replace(&format!("{{{}}}", p.name), &percent_encode(&text));
                }
                Location::Query => {
                    let values: Vec<&Value> = match value {
                        Value::Array(items) => items.iter().collect(),
                        v => vec![v],
                    };
                    for v in values {
                        let text = scalar(v).ok_or_else(|| format!("`{}` must be a scalar or a list of them", p.name))?;
                        query.push(format!("{}={}", percent_encode(&p.name), percent_encode(&text)));
                    }
                }
                Location::Header => {
                    let text = scalar(value).filter(|t| is_header_value(t)).ok_or_else(|| format!("`{}` is not a valid header value", p.name))?;
                    headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&p.name));
                    headers.push((p.name.to_ascii_lowercase(), text));
                }
                Location::Cookie => {
                    let text = scalar(value).ok_or_else(|| format!("`{}` must be a string, number or boolean", p.name))?;
                    cookies.push(format!("{}={}", p.name, percent_encode(&text)));
                }
            }
        }
        for (k, v) in &self.query {
            query.push(format!("{}={}", percent_encode(k), percent_encode(v)));
        }
        if !query.is_empty() {
            path = format!("{path}?{}", query.join("&"));
        }
        if !cookies.is_empty() {
            headers.push(("cookie".into(), cookies.join("; ")));
        }
        let body = match (&self.body, args.get(BODY_ARGUMENT)) {
            (Some(_), Some(b)) if !b.is_null() => Some(serde_json::to_vec(b).map_err(|e| e.to_string())?),
            (Some(spec), _) if spec.required => return Err(format!("missing required argument `{BODY_ARGUMENT}`")),
            _ => None,
        };
        if body.is_some() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        Ok(RestCall { method: self.method.clone(), path, host: self.host.clone(), headers, body })
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// RFC 3986: everything but the unreserved characters is percent-encoded
/// (`/`, `?`, `#`, `%` and `&` included), so a value is one segment or one
/// query value, never more.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The REST API's answer as a `tools/call` result: the body as text
/// content, a JSON object body also as `structuredContent`, and an HTTP
/// error status as `isError` (the agent sees what the API said).
pub fn tool_result(status: u16, content_type: Option<&str>, body: &[u8]) -> Value {
    let text = String::from_utf8_lossy(body).into_owned();
    let is_json = content_type.is_some_and(crate::proxy::is_json);
    let mut result = Map::new();
    let shown = if text.is_empty() { format!("HTTP {status}") } else { text.clone() };
    result.insert("content".into(), json!([{"type": "text", "text": shown}]));
    if is_json {
        if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(&text) {
            result.insert("structuredContent".into(), Value::Object(o));
        }
    }
    result.insert("isError".into(), json!(!(200..300).contains(&status)));
    Value::Object(result)
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    fn tool(path: &str, parameters: Value, body: Option<Value>) -> Result<RestTool, ConfigError> {
        let parameters: Vec<Parameter> = serde_json::from_value(parameters).unwrap();
        let body: Option<RequestBody> = body.map(|b| serde_json::from_value(b).unwrap());
        let headers = Map::from_iter([("x-api-version".to_string(), json!(["2"]))]);
        let query = Map::from_iter([("format".to_string(), json!(["full"]))]);
        RestTool::new(ToolFields {
            at: &|f: &str| format!("tools[0].{f}"),
            name: "get_order",
            description: "Gets one order",
            method: Some("get"),
            path: Some(path),
            host: None,
            headers: &headers,
            query: &query,
            parameters: &parameters,
            request_body: body.as_ref(),
            annotations: Some(&Annotations { read_only_hint: Some(true), ..Default::default() }),
        })
    }

    #[test]
    fn parameters_build_the_schema_and_the_request() {
        let t = tool("/shops/{shop}/orders/{id}", json!([
            {"name": "shop", "in": "path", "schema": {"type": "string"}},
            {"name": "id", "in": "path", "schema": {"type": "integer"}, "description": "order id"},
            {"name": "expand", "in": "query"},
            {"name": "x-trace", "in": "header"},
            {"name": "session", "in": "cookie"}]), Some(json!({"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {"note": {"type": "string"}}}}}}))).unwrap();
        assert_eq!(t.listing["inputSchema"]["required"], json!(["shop", "id", "body"]));
        assert_eq!(t.listing["inputSchema"]["properties"]["id"], json!({"type": "integer", "description": "order id"}));
        assert_eq!(t.listing["annotations"], json!({"readOnlyHint": true}));
        let call = t.call(Some(&json!({"shop": "a b/c", "id": 42, "expand": ["items", "x&y"], "x-trace": "t1", "session": "s", "body": {"note": "hi"}}))).unwrap();
        assert_eq!(call.method, "GET");
        assert_eq!(call.path, "/shops/a%20b%2Fc/orders/42?expand=items&expand=x%26y&format=full");
        assert!(call.headers.contains(&("x-api-version".into(), "2".into())) && call.headers.contains(&("x-trace".into(), "t1".into())));
        assert!(call.headers.contains(&("cookie".into(), "session=s".into())));
        assert_eq!(call.body.as_deref(), Some(br#"{"note":"hi"}"#.as_slice()));
    }

    #[test]
    fn a_path_parameter_never_leaves_its_segment_and_missing_ones_are_refused() {
        let t = tool("/orders/{id}", json!([{"name": "id", "in": "path"}]), None).unwrap();
        assert_eq!(t.call(Some(&json!({"id": "a/b c"}))).unwrap().path, "/orders/a%2Fb%20c?format=full");
        for bad in ["..", "../admin", "a/../b", "a\\..", "a//b", "./x"] {
            assert!(t.call(Some(&json!({"id": bad}))).is_err(), "{bad}");
        }
        assert!(t.call(Some(&json!({"id": ""}))).is_err());
        assert!(t.call(Some(&json!({"id": {"a": 1}}))).is_err());
        assert_eq!(t.call(None).unwrap_err(), "missing required argument `id`");
        assert!(t.call(Some(&json!([]))).is_err());
        let header = tool("/x", json!([{"name": "x-h", "in": "header"}]), None).unwrap();
        assert!(header.call(Some(&json!({"x-h": "a\r\nb: c"}))).is_err(), "no header injection");
    }

    #[test]
    fn configuration_mistakes_name_the_field() {
        assert_eq!(tool("/orders/{id}", json!([]), None).unwrap_err().path, "tools[0].path");
        assert_eq!(tool("/orders", json!([{"name": "id", "in": "path"}]), None).unwrap_err().path, "tools[0].parameters[0].name");
        assert_eq!(tool("orders", json!([]), None).unwrap_err().path, "tools[0].path");
        assert_eq!(tool("/o", json!([{"name": "a", "in": "query"}, {"name": "a", "in": "header"}]), None).unwrap_err().path, "tools[0].parameters[1].name");
        assert_eq!(tool("/o", json!([]), Some(json!({"content": {"text/xml": {}}}))).unwrap_err().path, "tools[0].request_body.content");
    }

    #[test]
    fn answers_become_tool_results() {
        let ok = tool_result(200, Some("application/json; charset=utf-8"), br#"{"id":42}"#);
        assert_eq!(ok, json!({"content": [{"type": "text", "text": "{\"id\":42}"}], "structuredContent": {"id": 42}, "isError": false}));
        let missing = tool_result(404, Some("text/plain"), b"no such order");
        assert_eq!((missing["isError"].clone(), missing["content"][0]["text"].clone()), (json!(true), json!("no such order")));
        assert_eq!(tool_result(204, None, b"")["content"][0]["text"], "HTTP 204");
        assert!(tool_result(200, Some("application/json"), b"[1]").get("structuredContent").is_none(), "structuredContent is an object");
    }
}
