//! ai-a2a-proxy's configuration: Kong's fields (`max_request_body_size`,
//! `logging.log_statistics/log_payloads/max_payload_size`) and ours for what
//! Kong leaves out: the gateway's public address, and per-consumer ACLs on
//! methods and skills in ai-mcp-proxy's shape (`default_acl[].scope`,
//! per-entry `acl.allow/deny`).

use super::Method;
use crate::acl::{checked_list, Acl};
use crate::config::{check_range, is_header_name, parse_strict, ConfigError};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Kong's default `max_request_body_size` and `max_payload_size` (1 MiB).
const ONE_MIB: u64 = 1024 * 1024;
const MAX_ENTRIES: usize = 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    max_request_body_size: Option<u64>,
    #[serde(default)]
    logging: RawLogging,
    /// Not Kong's: the base URL clients reach this agent at through the
    /// gateway (default: from the request's scheme, host and route prefix).
    public_url: Option<String>,
    consumer_header: Option<String>,
    consumer_groups_header: Option<String>,
    #[serde(default)]
    default_acl: Vec<RawDefaultAcl>,
    #[serde(default)]
    methods: Vec<RawMethod>,
    #[serde(default)]
    skills: Vec<RawSkill>,
    /// Where a message names the skill it is for (`params.metadata` or
    /// `params.message.metadata`); A2A itself has no such field.
    skill_metadata_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogging {
    #[serde(default)]
    log_statistics: bool,
    #[serde(default)]
    log_payloads: bool,
    max_payload_size: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaultAcl {
    scope: String,
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAcl {
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMethod {
    name: String,
    acl: RawAcl,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSkill {
    id: String,
    acl: RawAcl,
}

#[derive(Debug, Clone)]
pub struct Logging {
    pub log_statistics: bool,
    pub log_payloads: bool,
    pub max_payload_size: usize,
}

#[derive(Debug)]
pub struct A2aConfig {
    /// u64::MAX for Kong's 0 (no limit).
    pub max_request_body_size: u64,
    pub logging: Logging,
    /// Without a trailing slash.
    pub public_url: Option<String>,
    pub consumer_header: Option<String>,
    pub consumer_groups_header: Option<String>,
    default_methods: Acl,
    default_skills: Acl,
    method_acls: BTreeMap<&'static str, Acl>,
    skill_acls: BTreeMap<String, Acl>,
    pub skill_metadata_key: String,
    /// Some ACL restricts someone: what cannot be read is refused rather
    /// than passed unread.
    pub governs: bool,
}

impl A2aConfig {
    pub fn from_json(bytes: &[u8]) -> Result<A2aConfig, ConfigError> {
        let raw: RawConfig = parse_strict(bytes)?;
        let max = raw.max_request_body_size.unwrap_or(ONE_MIB);
        check_range("logging.max_payload_size", raw.logging.max_payload_size, 1, 64 * ONE_MIB)?;
        if raw.logging.log_payloads && !raw.logging.log_statistics {
            return Err(ConfigError::new("logging.log_payloads", "needs `logging.log_statistics` on, as in Kong"));
        }
        let public_url = match raw.public_url {
            Some(url) => Some(check_public_url(&url)?),
            None => None,
        };
        for (field, header) in [("consumer_header", &raw.consumer_header), ("consumer_groups_header", &raw.consumer_groups_header)] {
            if header.as_deref().is_some_and(|h| !is_header_name(h) || h.starts_with(':')) {
                return Err(ConfigError::new(field, "must be an HTTP header name"));
            }
        }
        let (mut default_methods, mut default_skills) = (Acl::default(), Acl::default());
        for (i, rule) in raw.default_acl.iter().enumerate() {
            let at = |f: &str| format!("default_acl[{i}].{f}");
            let acl = Acl::new(checked_list(&at("allow"), &rule.allow)?, checked_list(&at("deny"), &rule.deny)?);
            if raw.default_acl.iter().take(i).any(|r| r.scope == rule.scope) {
                return Err(ConfigError::new(at("scope"), "one rule per scope"));
            }
            match rule.scope.as_str() {
                "methods" => default_methods = acl,
                "skills" => default_skills = acl,
                other => return Err(ConfigError::new(at("scope"), format!("unknown scope `{other}`: `methods` or `skills`"))),
            }
        }
        check_range("methods", Some(raw.methods.len()), 0, MAX_ENTRIES)?;
        check_range("skills", Some(raw.skills.len()), 0, MAX_ENTRIES)?;
        let mut method_acls = BTreeMap::new();
        for (i, m) in raw.methods.iter().enumerate() {
            let at = |f: &str| format!("methods[{i}].{f}");
            let method = Method::from_config(&m.name).ok_or_else(|| {
                let known: Vec<&str> = Method::KNOWN.iter().map(|m| m.as_str()).collect();
                ConfigError::new(at("name"), format!("unknown A2A method `{}`: one of {} (or A2A 1.0's names, such as SendMessage)", m.name, known.join(", ")))
            })?;
            let acl = Acl::new(checked_list(&at("acl.allow"), &m.acl.allow)?, checked_list(&at("acl.deny"), &m.acl.deny)?);
            if method_acls.insert(method.as_str(), acl).is_some() {
                return Err(ConfigError::new(at("name"), format!("method `{}` is listed twice", method.as_str())));
            }
        }
        let mut skill_acls = BTreeMap::new();
        for (i, s) in raw.skills.iter().enumerate() {
            let at = |f: &str| format!("skills[{i}].{f}");
            if s.id.is_empty() || s.id.len() > 256 {
                return Err(ConfigError::new(at("id"), "must be 1 to 256 characters"));
            }
            let acl = Acl::new(checked_list(&at("acl.allow"), &s.acl.allow)?, checked_list(&at("acl.deny"), &s.acl.deny)?);
            if skill_acls.insert(s.id.clone(), acl).is_some() {
                return Err(ConfigError::new(at("id"), format!("skill `{}` is listed twice", s.id)));
            }
        }
        let skill_metadata_key = raw.skill_metadata_key.unwrap_or_else(|| "skillId".into());
        if skill_metadata_key.is_empty() || skill_metadata_key.len() > 128 {
            return Err(ConfigError::new("skill_metadata_key", "must be 1 to 128 characters"));
        }
        let governs = !raw.default_acl.is_empty() || !method_acls.is_empty() || !skill_acls.is_empty();
        Ok(A2aConfig {
            max_request_body_size: if max == 0 { u64::MAX } else { max },
            logging: Logging {
                log_statistics: raw.logging.log_statistics,
                log_payloads: raw.logging.log_payloads,
                max_payload_size: raw.logging.max_payload_size.unwrap_or(ONE_MIB) as usize,
            },
            public_url,
            consumer_header: raw.consumer_header.map(|h| h.to_ascii_lowercase()),
            consumer_groups_header: raw.consumer_groups_header.map(|h| h.to_ascii_lowercase()),
            default_methods,
            default_skills,
            method_acls,
            skill_acls,
            skill_metadata_key,
            governs,
        })
    }

    /// The ACL for a method: its own, or the default for methods.
    pub fn method_acl(&self, method: Method) -> &Acl {
        self.method_acls.get(method.as_str()).unwrap_or(&self.default_methods)
    }

    pub fn skill_acl(&self, skill: &str) -> &Acl {
        self.skill_acls.get(skill).unwrap_or(&self.default_skills)
    }
}

/// An absolute http(s) URL without query or fragment; kept without its
/// trailing slash (interface paths are appended to it).
fn check_public_url(url: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| Err(ConfigError::new("public_url", why.to_string()));
    let Some(rest) = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")) else {
        return bad("must be an absolute http:// or https:// URL");
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || url.contains(['?', '#']) || url.bytes().any(|b| b <= b' ' || b == b'"' || b == b'\\' || b >= 0x7f) {
        return bad("must be an absolute URL with a host, no query, fragment, spaces or quotes");
    }
    Ok(url.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;
    use crate::acl::Subject;

    fn err(json: &str) -> ConfigError {
        A2aConfig::from_json(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn kongs_fields_ours_and_mistakes_that_name_the_field() {
        let c = A2aConfig::from_json(b"").unwrap();
        assert_eq!((c.max_request_body_size, c.logging.max_payload_size, c.governs), (ONE_MIB, 1 << 20, false));
        let c = A2aConfig::from_json(br#"{"max_request_body_size":0,"logging":{"log_statistics":true,"log_payloads":true,"max_payload_size":4096},
            "public_url":"https://gw.example.com/agents/x/","consumer_header":"X-Consumer",
            "default_acl":[{"scope":"skills","deny":["guests"]}],"methods":[{"name":"CancelTask","acl":{"allow":["ops"]}}],"skills":[{"id":"admin","acl":{"allow":["admins"]}}]}"#).unwrap();
        assert_eq!((c.max_request_body_size, c.logging.max_payload_size), (u64::MAX, 4096));
        assert_eq!(c.public_url.as_deref(), Some("https://gw.example.com/agents/x"));
        let bob = Subject::new(Some("bob".into()), None);
        let ops = Subject::new(Some("o".into()), Some("ops"));
        assert!(!c.method_acl(Method::CancelTask).allows(&bob) && c.method_acl(Method::CancelTask).allows(&ops));
        assert!(c.method_acl(Method::Send).allows(&bob));
        assert!(!c.skill_acl("admin").allows(&bob) && c.skill_acl("echo").allows(&bob));
        assert!(!c.skill_acl("echo").allows(&Subject::new(Some("g".into()), Some("guests"))));
        assert!(c.governs);
        assert!(err(r#"{"logging":{"log_payloads":true}}"#).path == "logging.log_payloads");
        assert_eq!(err(r#"{"logging":{"max_payload_size":0}}"#).path, "logging.max_payload_size");
        assert_eq!(err(r#"{"public_url":"gw.example.com"}"#).path, "public_url");
        assert_eq!(err(r#"{"public_url":"https://gw/x?y=1"}"#).path, "public_url");
        assert_eq!(err(r#"{"methods":[{"name":"tasks/delete","acl":{}}]}"#).path, "methods[0].name");
        assert_eq!(err(r#"{"methods":[{"name":"message/send","acl":{}},{"name":"SendMessage","acl":{}}]}"#).path, "methods[1].name");
        assert_eq!(err(r#"{"default_acl":[{"scope":"tools"}]}"#).path, "default_acl[0].scope");
        assert_eq!(err(r#"{"skills":[{"id":"","acl":{}}]}"#).path, "skills[0].id");
        assert!(err(r#"{"mode":"x"}"#).message.contains("unknown field `mode`"));
        assert_eq!(err(r#"{"consumer_header":"a b"}"#).path, "consumer_header");
    }
}
