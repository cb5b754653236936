//! ai-prompt-template: named request templates with `{{variable}}`
//! placeholders, parsed once at load. Every property value is escaped as
//! JSON string content before it is put in, so no value can change the
//! structure of the request.

use crate::config::{check_range, parse_strict, ConfigError};
use crate::error::{ErrorKind, GatewayError};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

const MAX_TEMPLATES: usize = 100;
const MAX_TEMPLATE_LEN: usize = 64 * 1024;
const PREFIX: &str = "{template://";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    name: String,
    template: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    templates: Vec<RawTemplate>,
    #[serde(default = "default_true")]
    allow_untemplated_requests: bool,
    #[serde(default)]
    log_original_request: bool,
    #[serde(default = "default_max_body")]
    max_request_body_size: u64,
}

fn default_true() -> bool {
    true
}

fn default_max_body() -> u64 {
    crate::config::DEFAULT_MAX_REQUEST_BODY_SIZE
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(String),
}

#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    pieces: Vec<Piece>,
    vars: BTreeSet<String>,
}

pub struct Templates {
    templates: Vec<Template>,
    pub allow_untemplated_requests: bool,
    pub log_original_request: bool,
    pub max_request_body_size: u64,
}

fn valid_var(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Splits a template into text and `{{var}}` pieces, and checks that every
/// placeholder sits inside a JSON string (values are always strings) and
/// that the template, filled in, is a JSON request object.
fn parse_template(path: &str, text: &str) -> Result<Template, ConfigError> {
    let mut pieces = Vec::new();
    let mut vars = BTreeSet::new();
    let mut rest = text;
    let mut literal = String::new();
    // JSON-string state of everything before the current position.
    let mut in_string = false;
    let mut escaped = false;
    let scan = |s: &str, in_string: &mut bool, escaped: &mut bool| {
        for c in s.chars() {
            if *escaped {
                *escaped = false;
            } else if *in_string && c == '\\' {
                *escaped = true;
            } else if c == '"' {
                *in_string = !*in_string;
            }
        }
    };
    while let Some(start) = rest.find("{{") {
        let before = rest.get(..start).unwrap_or_default();
        let after = rest.get(start + 2..).unwrap_or_default();
        let Some(end) = after.find("}}") else { break };
        let name = after.get(..end).unwrap_or_default().trim();
        scan(before, &mut in_string, &mut escaped);
        literal.push_str(before);
        if !valid_var(name) {
            return Err(ConfigError::new(path, format!("placeholder {{{{{name}}}}} is not a valid name (letters, digits, _ . -)")));
        }
        if !in_string {
            return Err(ConfigError::new(path, format!("placeholder {{{{{name}}}}} must be inside a JSON string")));
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Var(name.to_string()));
        vars.insert(name.to_string());
        rest = after.get(end + 2..).unwrap_or_default();
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    let template = Template { name: String::new(), pieces, vars };
    let sample = template.fill(&|_| Some("x".to_string()));
    let parsed: Value = serde_json::from_str(&sample).map_err(|e| ConfigError::new(path, format!("is not a JSON request body: {e}")))?;
    let ok = parsed.as_object().is_some_and(|o| o.get("messages").is_some_and(Value::is_array) || o.get("prompt").is_some_and(Value::is_string));
    if !ok {
        return Err(ConfigError::new(path, "must be a request object with `messages` (an array) or `prompt` (a string)"));
    }
    Ok(template)
}

/// A value as the inside of a JSON string literal: quotes, backslashes and
/// control characters escaped.
fn escape(value: &str) -> String {
    let quoted = serde_json::to_string(value).unwrap_or_else(|_| "\"\"".to_string());
    quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or_default().to_string()
}

impl Template {
    fn fill(&self, value: &dyn Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => out.push_str(&escape(&value(v).unwrap_or_default())),
            }
        }
        out
    }
}

impl Templates {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = parse_strict(bytes)?;
        check_range("max_request_body_size", Some(raw.max_request_body_size), 1, 128 * 1024 * 1024)?;
        if raw.templates.is_empty() || raw.templates.len() > MAX_TEMPLATES {
            return Err(ConfigError::new("templates", format!("needs 1 to {MAX_TEMPLATES} templates")));
        }
        let mut templates: Vec<Template> = Vec::with_capacity(raw.templates.len());
        for (i, t) in raw.templates.iter().enumerate() {
            if !valid_var(&t.name) {
                return Err(ConfigError::new(format!("templates[{i}].name"), "must be 1 to 64 letters, digits, _ . -"));
            }
            if templates.iter().any(|x| x.name == t.name) {
                return Err(ConfigError::new(format!("templates[{i}].name"), format!("duplicate template name {}", t.name)));
            }
            if t.template.len() > MAX_TEMPLATE_LEN {
                return Err(ConfigError::new(format!("templates[{i}].template"), format!("longer than {MAX_TEMPLATE_LEN} bytes")));
            }
            let mut parsed = parse_template(&format!("templates[{i}].template"), &t.template)?;
            parsed.name = t.name.clone();
            templates.push(parsed);
        }
        Ok(Templates {
            templates,
            allow_untemplated_requests: raw.allow_untemplated_requests,
            log_original_request: raw.log_original_request,
            max_request_body_size: raw.max_request_body_size,
        })
    }

    /// The rendered body, or None when the request uses no template and
    /// untemplated requests are allowed. The rendered template is the new
    /// body; the client's other top-level fields (`model`, `stream`, ...)
    /// are kept where the template does not set them.
    pub fn render(&self, body: &[u8]) -> Result<Option<(String, Vec<u8>)>, GatewayError> {
        // Most requests name no template: those are not parsed at all. A
        // reference spelt with JSON escapes still holds `template` or `\u`.
        if self.allow_untemplated_requests && !contains(body, b"template") && !contains(body, b"\\u") {
            return Ok(None);
        }
        let mut request: Map<String, Value> = serde_json::from_slice(body)
            .map_err(|e| GatewayError::bad_request(format!("request body must be a JSON object: {e}")))?;
        let reference = |key: &str| {
            request.get(key).and_then(Value::as_str).and_then(|s| s.strip_prefix(PREFIX)).and_then(|s| s.strip_suffix('}')).map(str::to_string)
        };
        // A Responses API request names it in `input`: a chat template's
        // messages become its input items.
        let referenced: Vec<(&str, String)> = ["messages", "prompt", "input"].into_iter().filter_map(|k| reference(k).map(|n| (k, n))).collect();
        let (field, name) = match referenced.as_slice() {
            [] if self.allow_untemplated_requests => return Ok(None),
            [] => {
                return Err(GatewayError::bad_request(
                    "this route only takes templated requests: set `messages`, `prompt` or `input` to \"{template://NAME}\"",
                ))
            }
            [(field, name)] => (*field, name.clone()),
            _ => return Err(GatewayError::bad_request("only one of `messages`, `prompt` and `input` may name a template")),
        };
        let template = self.templates.iter().find(|t| t.name == name).ok_or_else(|| {
            GatewayError::new(ErrorKind::BadRequest, format!("no template named `{name}`")).with_code("template_not_found")
        })?;
        let properties = match request.remove("properties") {
            None => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => return Err(GatewayError::bad_request("`properties` must be an object of strings")),
        };
        if let Some((key, _)) = properties.iter().find(|(k, v)| template.vars.contains(*k) && !v.is_string()) {
            return Err(GatewayError::bad_request(format!("property `{key}` must be a string")));
        }
        let missing: Vec<&str> = template.vars.iter().filter(|v| !properties.contains_key(*v)).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(GatewayError::bad_request(format!("missing template properties: {}", missing.join(", "))));
        }
        let rendered = template.fill(&|v| properties.get(v).and_then(Value::as_str).map(str::to_string));
        let mut out: Map<String, Value> = serde_json::from_str(&rendered)
            .map_err(|e| GatewayError::new(ErrorKind::Internal, format!("template `{name}` rendered invalid JSON: {e}")))?;
        request.remove("messages");
        request.remove("prompt");
        if field == "input" {
            request.remove("input");
            let Some(messages) = out.remove("messages") else {
                return Err(GatewayError::bad_request(format!("template `{name}` is a completions template; `input` takes a chat template")));
            };
            out.insert("input".into(), messages);
        }
        for (k, v) in request {
            out.entry(k).or_insert(v);
        }
        let body = serde_json::to_vec(&out).map_err(|e| GatewayError::new(ErrorKind::Internal, e.to_string()))?;
        Ok(Some((name, body)))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;
    use serde_json::json;

    fn templates() -> Templates {
        let config = json!({"templates": [
            {"name": "explain", "template": r#"{"messages":[{"role":"system","content":"You explain {{topic}} to {{audience}}."},{"role":"user","content":"Explain {{topic}}."}],"temperature":0.1}"#},
            {"name": "complete", "template": r#"{"prompt":"Complete: {{start}}"}"#}
        ]});
        Templates::from_json(config.to_string().as_bytes()).unwrap()
    }

    fn render(body: Value) -> Result<Value, GatewayError> {
        let (_, out) = templates().render(body.to_string().as_bytes())?.unwrap();
        Ok(serde_json::from_slice(&out).unwrap())
    }

    #[test]
    fn renders_and_keeps_client_fields() {
        let out = render(json!({"messages": "{template://explain}", "properties": {"topic": "tides", "audience": "kids"}, "stream": true, "temperature": 0.9})).unwrap();
        assert_eq!(out["messages"][0]["content"], "You explain tides to kids.");
        assert_eq!(out["messages"][1]["content"], "Explain tides.");
        assert_eq!(out["stream"], true);
        assert_eq!(out["temperature"], 0.1, "the template's own fields win");
        assert!(out.get("properties").is_none());
        let out = render(json!({"prompt": "{template://complete}", "properties": {"start": "Once"}})).unwrap();
        assert_eq!(out["prompt"], "Complete: Once");
    }

    #[test]
    fn no_value_can_inject_json() {
        for evil in ["\"}],\"model\":\"x", "back\\slash", "line\nbreak\r\t", "\u{0000}\u{001f}ctl", "{{topic}}", "\u{2028}", "</script>"] {
            let out = render(json!({"messages": "{template://explain}", "properties": {"topic": evil, "audience": "a"}})).unwrap();
            assert_eq!(out["messages"][1]["content"], format!("Explain {evil}."), "{evil:?}");
            assert!(out.get("model").is_none(), "{evil:?}");
            assert_eq!(out["messages"].as_array().map(Vec::len), Some(2));
        }
    }

    #[test]
    fn a_responses_input_names_a_chat_template_and_gets_its_messages_as_items() {
        let out = render(json!({"model": "m", "input": "{template://explain}", "properties": {"topic": "tides", "audience": "kids"}, "stream": true})).unwrap();
        assert_eq!(out["input"][1], json!({"role": "user", "content": "Explain tides."}));
        assert!(out.get("messages").is_none(), "a Responses body has no messages");
        assert_eq!((out["stream"].clone(), out["temperature"].clone()), (json!(true), json!(0.1)));
        let completions = render(json!({"input": "{template://complete}", "properties": {"start": "x"}})).err().unwrap();
        assert!(completions.message.contains("completions template"), "{}", completions.message);
        let strict = Templates::from_json(br#"{"allow_untemplated_requests":false,"templates":[{"name":"a","template":"{\"prompt\":\"x\"}"}]}"#).unwrap();
        assert_eq!(strict.render(br#"{"input":"anything"}"#).err().map(|e| e.status), Some(400), "an untemplated Responses request is refused too");
    }

    #[test]
    fn request_errors() {
        let msg = |body: Value| render(body).err().map(|e| (e.status, e.message)).unwrap();
        assert_eq!(msg(json!({"messages": "{template://nope}"})), (400, "no template named `nope`".into()));
        assert_eq!(msg(json!({"messages": "{template://explain}", "properties": {}})), (400, "missing template properties: audience, topic".into()));
        assert_eq!(msg(json!({"messages": "{template://explain}", "properties": {"topic": 1, "audience": "a"}})), (400, "property `topic` must be a string".into()));
        assert!(msg(json!({"messages": "{template://explain}", "prompt": "{template://complete}"})).1.contains("only one"));
        assert!(templates().render(br#"{"messages":[]}"#).unwrap().is_none(), "untemplated requests pass by default");
        let strict = Templates::from_json(br#"{"allow_untemplated_requests":false,"templates":[{"name":"a","template":"{\"prompt\":\"x\"}"}]}"#).unwrap();
        assert_eq!(strict.render(br#"{"messages":[]}"#).err().map(|e| e.status), Some(400));
    }

    #[test]
    fn malformed_templates_are_rejected_at_load() {
        let err = |t: &str| {
            let config = json!({"templates": [{"name": "t", "template": t}]});
            Templates::from_json(config.to_string().as_bytes()).err().map(|e| (e.path, e.message)).unwrap()
        };
        assert!(err(r#"{"messages":[{"role":"user","content":"{{x}}"}"#).1.contains("not a JSON request body"));
        assert!(err(r#"{"messages":[],"temperature":{{t}}}"#).1.contains("inside a JSON string"));
        assert!(err(r#"{"messages":[{"content":"{{bad name}}"}]}"#).1.contains("not a valid name"));
        assert!(err(r#"{"model":"x"}"#).1.contains("`messages`"));
        assert_eq!(err("{}").0, "templates[0].template");
    }

    #[test]
    fn untemplated_bodies_are_not_parsed_but_escaped_references_are() {
        let t = Templates::from_json(br#"{"templates":[{"name":"t","template":"{\"messages\":[{\"role\":\"user\",\"content\":\"{{a}}\"}]}"}]}"#).unwrap();
        // Not JSON, yet untouched: nothing in it can name a template.
        assert_eq!(t.render(b"{not json, no reference"), Ok(None));
        let escaped = br#"{"messages":"{template:\/\/t}","properties":{"a":"x"}}"#;
        assert!(t.render(escaped).unwrap().is_some(), "an escaped reference is still rendered");
    }
}
