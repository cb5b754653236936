//! envoyproxy/ratelimit's configuration format: one YAML document per
//! domain, `descriptors[]` of `key`, optional `value`, optional
//! `rate_limit {unit, requests_per_unit, unlimited, name, replaces}`,
//! `shadow_mode`, `detailed_metric` and nested `descriptors`. The same file
//! serves that server and this one. Unknown keys are refused, with the path.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoot {
    domain: String,
    #[serde(default)]
    descriptors: Vec<RawDescriptor>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDescriptor {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    rate_limit: Option<RawLimit>,
    #[serde(default)]
    descriptors: Vec<RawDescriptor>,
    #[serde(default)]
    shadow_mode: bool,
    /// Metrics detail in envoyproxy/ratelimit; accepted, no effect here.
    #[serde(default)]
    #[allow(dead_code)]
    detailed_metric: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimit {
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    requests_per_unit: u32,
    #[serde(default)]
    unlimited: bool,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    replaces: Vec<RawReplace>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplace {
    name: String,
}

/// A window unit and its length, as the service counts it (months and
/// years are fixed lengths, as in envoyproxy/ratelimit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Unit {
    pub fn parse(s: &str) -> Option<Unit> {
        Some(match s.to_ascii_lowercase().as_str() {
            "second" => Unit::Second,
            "minute" => Unit::Minute,
            "hour" => Unit::Hour,
            "day" => Unit::Day,
            "week" => Unit::Week,
            "month" => Unit::Month,
            "year" => Unit::Year,
            _ => return None,
        })
    }

    pub fn seconds(self) -> u64 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3600,
            Unit::Day => 86_400,
            Unit::Week => 604_800,
            Unit::Month => 2_592_000,
            Unit::Year => 31_536_000,
        }
    }

    /// The RLS protocol's enum value.
    pub fn proto(self) -> i32 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 2,
            Unit::Hour => 3,
            Unit::Day => 4,
            Unit::Month => 5,
            Unit::Year => 6,
            Unit::Week => 7,
        }
    }

    pub fn from_proto(v: i32) -> Option<Unit> {
        Some(match v {
            1 => Unit::Second,
            2 => Unit::Minute,
            3 => Unit::Hour,
            4 => Unit::Day,
            5 => Unit::Month,
            6 => Unit::Year,
            7 => Unit::Week,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub requests_per_unit: u32,
    pub unit: Unit,
    pub unlimited: bool,
    pub shadow_mode: bool,
    pub name: Option<String>,
    pub replaces: Vec<String>,
}

#[derive(Debug, Default)]
struct Node {
    limit: Option<Limit>,
    /// By `key_value`, or `key` alone (any value); a `*` suffix is a prefix.
    children: BTreeMap<String, Node>,
}

#[derive(Debug, Default)]
pub struct Config {
    domains: BTreeMap<String, Node>,
}

/// A configuration error, naming the file and the field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Config {
    /// Loads one or more files (`name`, YAML text); a domain appears once.
    pub fn load(files: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        for (name, text) in files {
            let de = serde_yaml_ng::Deserializer::from_str(text);
            let raw: RawRoot = serde_path_to_error_yaml(de).map_err(|(path, e)| ConfigError(format!("{name}: at `{path}`: {e}")))?;
            if raw.domain.is_empty() {
                return Err(ConfigError(format!("{name}: at `domain`: must not be empty")));
            }
            if config.domains.contains_key(&raw.domain) {
                return Err(ConfigError(format!("{name}: at `domain`: duplicate domain `{}`", raw.domain)));
            }
            let mut root = Node::default();
            load_level(&mut root, &raw.descriptors, &format!("{name}: descriptors"))?;
            config.domains.insert(raw.domain, root);
        }
        Ok(config)
    }

    /// The limit of a descriptor (its entries in order), as envoyproxy/
    /// ratelimit finds it: at each level `key_value` first, then a prefix
    /// wildcard, then `key` alone; the limit of the node the last entry
    /// reaches. None: no limit (the descriptor is always OK).
    pub fn limit<'a>(&'a self, domain: &str, entries: &[(String, String)]) -> Option<&'a Limit> {
        let mut level = &self.domains.get(domain)?.children;
        let mut found = None;
        for (i, (key, value)) in entries.iter().enumerate() {
            let exact = format!("{key}_{value}");
            let node = level
                .get(&exact)
                .or_else(|| level.iter().find(|(k, _)| k.strip_suffix('*').is_some_and(|prefix| exact.starts_with(prefix))).map(|(_, n)| n))
                .or_else(|| level.get(key))?;
            if i + 1 == entries.len() {
                found = node.limit.as_ref();
            }
            level = &node.children;
        }
        found
    }
}

fn load_level(node: &mut Node, descriptors: &[RawDescriptor], at: &str) -> Result<(), ConfigError> {
    for (i, d) in descriptors.iter().enumerate() {
        let here = format!("{at}[{i}]");
        if d.key.is_empty() {
            return Err(ConfigError(format!("{here}.key: must not be empty")));
        }
        let id = match d.value.as_deref() {
            Some(v) if !v.is_empty() => format!("{}_{v}", d.key),
            _ => d.key.clone(),
        };
        if node.children.contains_key(&id) {
            return Err(ConfigError(format!("{here}: duplicate descriptor `{id}`")));
        }
        let limit = match &d.rate_limit {
            None => None,
            Some(l) => {
                let unit = l.unit.as_deref().map(|u| Unit::parse(u).ok_or_else(|| ConfigError(format!("{here}.rate_limit.unit: unknown unit `{u}`")))).transpose()?;
                let unit = match (unit, l.unlimited) {
                    (Some(_), true) => return Err(ConfigError(format!("{here}.rate_limit.unit: an unlimited limit takes no unit"))),
                    (None, false) => return Err(ConfigError(format!("{here}.rate_limit.unit: is required"))),
                    (Some(u), false) => u,
                    (None, true) => Unit::Second,
                };
                if l.replaces.iter().any(|r| r.name.is_empty() || Some(&r.name) == l.name.as_ref()) {
                    return Err(ConfigError(format!("{here}.rate_limit.replaces: names must be non-empty and not the limit's own")));
                }
                Some(Limit {
                    requests_per_unit: l.requests_per_unit,
                    unit,
                    unlimited: l.unlimited,
                    shadow_mode: d.shadow_mode,
                    name: l.name.clone(),
                    replaces: l.replaces.iter().map(|r| r.name.clone()).collect(),
                })
            }
        };
        let mut child = Node { limit, children: BTreeMap::new() };
        load_level(&mut child, &d.descriptors, &format!("{here}.descriptors"))?;
        node.children.insert(id, child);
    }
    Ok(())
}

/// serde_yaml_ng with the path of the failing field.
fn serde_path_to_error_yaml(de: serde_yaml_ng::Deserializer<'_>) -> Result<RawRoot, (String, serde_yaml_ng::Error)> {
    serde_path_to_error::deserialize(de).map_err(|e| (e.path().to_string(), e.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
domain: ai-gateway
descriptors:
  - key: policy
    value: per-key
    descriptors:
      - key: partition
        descriptors:
          - key: window
            value: "60"
            rate_limit: {unit: minute, requests_per_unit: 100}
  - key: consumer
    rate_limit: {unit: hour, requests_per_unit: 1000}
  - key: consumer
    value: vip
    rate_limit: {unlimited: true}
  - key: team
    value: "trial-*"
    rate_limit: {unit: second, requests_per_unit: 5}
"#;

    fn entries(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn config() -> Config {
        Config::load(&[("budgets.yaml".into(), FILE.into())]).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn lookups_follow_envoyproxy_ratelimit() {
        let c = config();
        let per_key = c.limit("ai-gateway", &entries(&[("policy", "per-key"), ("partition", "abc"), ("window", "60")]));
        assert_eq!(per_key.map(|l| (l.requests_per_unit, l.unit)), Some((100, Unit::Minute)));
        assert!(c.limit("ai-gateway", &entries(&[("policy", "per-key"), ("partition", "abc")])).is_none(), "depth must match");
        assert!(c.limit("ai-gateway", &entries(&[("policy", "other"), ("partition", "abc"), ("window", "60")])).is_none());
        assert_eq!(c.limit("ai-gateway", &entries(&[("consumer", "alice")])).map(|l| l.requests_per_unit), Some(1000));
        assert!(c.limit("ai-gateway", &entries(&[("consumer", "vip")])).is_some_and(|l| l.unlimited), "value before key");
        assert_eq!(c.limit("ai-gateway", &entries(&[("team", "trial-7")])).map(|l| l.requests_per_unit), Some(5), "prefix wildcard");
        assert!(c.limit("ai-gateway", &entries(&[("team", "paid")])).is_none());
        assert!(c.limit("other-domain", &entries(&[("consumer", "alice")])).is_none());
    }

    #[test]
    fn bad_files_name_the_field() {
        let err = |text: &str| Config::load(&[("f.yaml".into(), text.into())]).err().map(|e| e.0).unwrap_or_default();
        assert!(err("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n").contains("descriptors[0].rate_limit.unit"));
        assert!(err("domain: d\ndescriptors:\n  - key: k\n    rate_limt: {}\n").contains("unknown field `rate_limt`"));
        assert!(err("domain: d\ndescriptors:\n  - key: k\n  - key: k\n").contains("duplicate descriptor `k`"));
        assert!(err("domain: ''\n").contains("domain"));
        assert!(err("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {requests_per_unit: 1}\n").contains("is required"));
        let two = Config::load(&[("a".into(), "domain: d\n".into()), ("b".into(), "domain: d\n".into())]);
        assert!(two.err().is_some_and(|e| e.0.contains("duplicate domain")));
    }
}
