//! ai-mcp-proxy's configuration, in Kong's field names
//! (`mode`, `default_acl`, `tools[].acl`, `logging`), plus the header
//! convention of the other filters here for who the consumer is.

use crate::acl::{checked_list, Acl};
use super::convert::{Annotations, Parameter, RequestBody, RestTool, ToolFields};
use crate::config::{check_range, is_header_name, parse_strict, ConfigError};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Kong's default `max_request_body_size` for this plugin (1 MiB).
const DEFAULT_MAX_BODY: u64 = 1024 * 1024;
const MAX_TOOLS: usize = 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    mode: String,
    #[serde(default)]
    max_request_body_size: Option<u64>,
    #[serde(default)]
    consumer_identifier: Option<ConsumerIdentifier>,
    #[serde(default)]
    include_consumer_groups: bool,
    #[serde(default)]
    acl_attribute_type: Option<String>,
    #[serde(default)]
    default_acl: Vec<RawAcl>,
    #[serde(default)]
    tools: Vec<RawTool>,
    #[serde(default)]
    logging: Logging,
    #[serde(default)]
    server: RawServer,
    /// Not Kong's: the request header a trusted authn filter sets to the
    /// consumer's name (Envoy has no Kong consumers).
    consumer_header: Option<String>,
    /// Not Kong's: a header holding the consumer's groups, comma-separated.
    consumer_groups_header: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ConsumerIdentifier {
    ConsumerId,
    CustomId,
    Username,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAcl {
    #[serde(default = "tools_scope")]
    scope: String,
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
}

fn tools_scope() -> String {
    "tools".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTool {
    name: Option<String>,
    // Required by Kong; in passthrough mode the upstream's own description
    // is what clients see.
    description: String,
    acl: Option<RawToolAcl>,
    // conversion-listener: the REST route the tool calls.
    method: Option<String>,
    path: Option<String>,
    host: Option<String>,
    #[serde(default)]
    headers: Map<String, Value>,
    #[serde(default)]
    query: Map<String, Value>,
    #[serde(default)]
    parameters: Vec<Parameter>,
    request_body: Option<RequestBody>,
    annotations: Option<Annotations>,
}

impl RawTool {
    fn has_rest_fields(&self) -> Option<&'static str> {
        [
            ("method", self.method.is_some()),
            ("path", self.path.is_some()),
            ("host", self.host.is_some()),
            ("headers", !self.headers.is_empty()),
            ("query", !self.query.is_empty()),
            ("parameters", !self.parameters.is_empty()),
            ("request_body", self.request_body.is_some()),
            ("annotations", self.annotations.is_some()),
        ]
        .into_iter()
        .find_map(|(name, set)| set.then_some(name))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    timeout: Option<u64>,
    forward_client_headers: Option<bool>,
}

/// Which of Kong's modes the filter runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In front of an MCP server.
    Passthrough,
    /// The filter is the MCP server; tools are REST routes.
    Conversion,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToolAcl {
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    /// Publishes method, tool, session, consumer, outcome and error code
    /// for the access log.
    #[serde(default)]
    pub log_statistics: bool,
    /// Publishes (and logs) the first 8 KiB of each request body.
    #[serde(default)]
    pub log_payloads: bool,
    /// Publishes each ACL decision, as Kong's `ai.mcp.audit`.
    #[serde(default)]
    pub log_audits: bool,
}

#[derive(Debug)]
pub struct McpConfig {
    pub mode: Mode,
    /// conversion-listener: the tools, in configuration order.
    pub rest_tools: Vec<RestTool>,
    /// conversion-listener: the REST call's timeout (Kong's `server.timeout`).
    pub timeout_ms: u64,
    /// conversion-listener: client headers go on to the REST API.
    pub forward_client_headers: bool,
    /// The name `initialize` answers with (the filter's Envoy name; set by the filter).
    pub server_name: String,
    pub max_request_body_size: u64,
    pub consumer_header: Option<String>,
    /// Read only with `include_consumer_groups`.
    pub consumer_groups_header: Option<String>,
    pub default_acl: Acl,
    /// Tools with their own ACL, which replaces the default for them.
    pub tool_acls: BTreeMap<String, Acl>,
    pub logging: Logging,
}

impl McpConfig {
    pub fn from_json(bytes: &[u8]) -> Result<McpConfig, ConfigError> {
        let raw: RawConfig = parse_strict(bytes)?;
        let mode = match raw.mode.as_str() {
            "passthrough-listener" => Mode::Passthrough,
            "conversion-listener" => Mode::Conversion,
            "conversion-only" | "listener" => {
                return Err(ConfigError::new("mode", format!("`{}` is not supported yet: `passthrough-listener` (in front of an MCP server) or `conversion-listener` (a REST API as MCP tools)", raw.mode)));
            }
            other => {
                return Err(ConfigError::new("mode", format!("unknown mode `{other}`: expected `passthrough-listener`, `conversion-listener`, `conversion-only` or `listener`")));
            }
        };
        if mode == Mode::Passthrough && (raw.server.timeout.is_some() || raw.server.forward_client_headers.is_some()) {
            return Err(ConfigError::new("server", "only for `conversion-listener`: in passthrough mode the MCP server makes the calls"));
        }
        check_range("server.timeout", raw.server.timeout, 1, 3_600_000)?;
        // Any of Kong's identifiers: the header carries whichever one the
        // authn filter in front writes there.
        let _ = raw.consumer_identifier;
        if let Some(kind) = raw.acl_attribute_type.as_deref().filter(|k| *k != "consumer") {
            let hint = if kind == "oauth_access_token" {
                "; with Envoy's jwt_authn, copy the claim to a header (`claim_to_headers`) and name it in `consumer_header`"
            } else {
                ""
            };
            return Err(ConfigError::new("acl_attribute_type", format!("`{kind}` is not supported: only `consumer`{hint}")));
        }
        for (field, header) in [("consumer_header", &raw.consumer_header), ("consumer_groups_header", &raw.consumer_groups_header)] {
            if header.as_deref().is_some_and(|h| !is_header_name(h) || h.starts_with(':')) {
                return Err(ConfigError::new(field, "must be an HTTP header name"));
            }
        }
        if raw.include_consumer_groups && raw.consumer_groups_header.is_none() {
            return Err(ConfigError::new("consumer_groups_header", "required with `include_consumer_groups`: the header that names the consumer's groups"));
        }
        let max = raw.max_request_body_size.unwrap_or(DEFAULT_MAX_BODY);
        // Kong: 0 is no limit; the listener's buffer limit still applies.
        let max_request_body_size = if max == 0 { u64::MAX } else { max };

        let mut default_acl = Acl::default();
        for (i, rule) in raw.default_acl.iter().enumerate() {
            let at = |f: &str| format!("default_acl[{i}].{f}");
            if rule.scope != "tools" {
                return Err(ConfigError::new(at("scope"), format!("unknown scope `{}`: only `tools`", rule.scope)));
            }
            if raw.default_acl.iter().take(i).any(|r| r.scope == rule.scope) {
                return Err(ConfigError::new(at("scope"), "one rule per scope"));
            }
            default_acl = Acl::new(checked_list(&at("allow"), &rule.allow)?, checked_list(&at("deny"), &rule.deny)?);
        }
        check_range("tools", Some(raw.tools.len()), 0, MAX_TOOLS)?;
        let mut tool_acls = BTreeMap::new();
        let mut rest_tools = Vec::new();
        if mode == Mode::Conversion && raw.tools.is_empty() {
            return Err(ConfigError::new("tools", "conversion-listener needs at least one tool"));
        }
        for (i, tool) in raw.tools.iter().enumerate() {
            let at = |f: &str| format!("tools[{i}].{f}");
            let Some(name) = tool.name.as_deref() else {
                return Err(ConfigError::new(at("name"), "required: the tool's name (in passthrough-listener, the upstream tool this ACL is for)"));
            };
            if name.is_empty() || name.len() > 128 {
                return Err(ConfigError::new(at("name"), "must be 1 to 128 characters"));
            }
            match (mode, tool.has_rest_fields()) {
                (Mode::Passthrough, Some(field)) => {
                    return Err(ConfigError::new(at(field), "only for `conversion-listener`: in passthrough mode tools are the MCP server's"));
                }
                (Mode::Passthrough, None) => {}
                (Mode::Conversion, _) => {
                    if rest_tools.iter().any(|t: &RestTool| t.name == name) {
                        return Err(ConfigError::new(at("name"), format!("tool `{name}` is listed twice")));
                    }
                    rest_tools.push(RestTool::new(ToolFields {
                        at: &at,
                        name,
                        description: &tool.description,
                        method: tool.method.as_deref(),
                        path: tool.path.as_deref(),
                        host: tool.host.as_deref(),
                        headers: &tool.headers,
                        query: &tool.query,
                        parameters: &tool.parameters,
                        request_body: tool.request_body.as_ref(),
                        annotations: tool.annotations.as_ref(),
                    })?);
                }
            }
            if let Some(acl) = &tool.acl {
                let acl = Acl::new(checked_list(&at("acl.allow"), &acl.allow)?, checked_list(&at("acl.deny"), &acl.deny)?);
                if tool_acls.insert(name.to_string(), acl).is_some() {
                    return Err(ConfigError::new(at("name"), format!("tool `{name}` is listed twice")));
                }
            }
        }
        Ok(McpConfig {
            mode,
            rest_tools,
            timeout_ms: raw.server.timeout.unwrap_or(10_000),
            forward_client_headers: raw.server.forward_client_headers.unwrap_or(true),
            server_name: "ai-mcp-proxy".into(),
            max_request_body_size,
            consumer_header: raw.consumer_header.map(|h| h.to_ascii_lowercase()),
            consumer_groups_header: raw.consumer_groups_header.filter(|_| raw.include_consumer_groups).map(|h| h.to_ascii_lowercase()),
            default_acl,
            tool_acls,
            logging: raw.logging,
        })
    }

    /// The ACL that decides calls of `tool`: its own, or the default.
    pub fn acl_for(&self, tool: &str) -> &Acl {
        self.tool_acls.get(tool).unwrap_or(&self.default_acl)
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    fn err(json: &str) -> ConfigError {
        McpConfig::from_json(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn kongs_fields_are_read_and_mistakes_name_the_field() {
        let c = McpConfig::from_json(br#"{"mode":"passthrough-listener","consumer_identifier":"username","default_acl":[{"scope":"tools","allow":["admins"]}],
            "tools":[{"name":"add","description":"adds","acl":{"allow":["alice"],"deny":["mallory"]}}],"consumer_header":"X-Consumer","logging":{"log_audits":true}}"#).unwrap();
        assert_eq!(c.consumer_header.as_deref(), Some("x-consumer"));
        assert_eq!(c.max_request_body_size, 1024 * 1024);
        assert!(c.tool_acls.contains_key("add") && c.logging.log_audits);
        assert!(err(r#"{}"#).message.contains("missing field `mode`"));
        assert_eq!(err(r#"{"mode":"listener"}"#).path, "mode");
        assert_eq!(err(r#"{"mode":"conversion-listener"}"#).path, "tools");
        assert_eq!(err(r#"{"mode":"passthrough-listener","server":{"timeout":5}}"#).path, "server");
        let c = McpConfig::from_json(br#"{"mode":"conversion-listener","server":{"timeout":2000},"tools":[{"name":"get","description":"d","path":"/o/{id}","method":"GET","parameters":[{"name":"id","in":"path"}]}]}"#).unwrap();
        assert_eq!((c.mode, c.rest_tools.len(), c.timeout_ms), (Mode::Conversion, 1, 2000));
        assert!(err(r#"{"mode":"passthrough-listener","default_acls":[]}"#).message.contains("unknown field `default_acls`"));
        assert_eq!(err(r#"{"mode":"passthrough-listener","default_acl":[{"scope":"prompts"}]}"#).path, "default_acl[0].scope");
        assert_eq!(err(r#"{"mode":"passthrough-listener","tools":[{"description":"x"}]}"#).path, "tools[0].name");
        assert_eq!(err(r#"{"mode":"passthrough-listener","tools":[{"name":"a","description":"x","acl":{}},{"name":"a","description":"y","acl":{}}]}"#).path, "tools[1].name");
        assert_eq!(err(r#"{"mode":"passthrough-listener","tools":[{"name":"a","description":"x","path":"/x"}]}"#).path, "tools[0].path");
        let unknown = err(r#"{"mode":"passthrough-listener","tools":[{"name":"a","description":"x","responses":{}}]}"#);
        assert!(unknown.path.starts_with("tools[0]") && unknown.message.contains("unknown field `responses`"), "{unknown}");
        assert_eq!(err(r#"{"mode":"passthrough-listener","include_consumer_groups":true}"#).path, "consumer_groups_header");
        assert_eq!(err(r#"{"mode":"passthrough-listener","acl_attribute_type":"oauth_access_token"}"#).path, "acl_attribute_type");
        assert_eq!(err(r#"{"mode":"passthrough-listener","consumer_header":"bad header"}"#).path, "consumer_header");
        assert_eq!(McpConfig::from_json(br#"{"mode":"passthrough-listener","max_request_body_size":0}"#).unwrap().max_request_body_size, u64::MAX);
    }
}
