//! One source for shared budgets: ai-token-ratelimit's own policies (with
//! `strategy: cluster`) render the rate-limit service's configuration (in
//! envoyproxy/ratelimit's format) and the `rate_limits` of Envoy's
//! ratelimit filter. The filter publishes, per matched policy, the hashed
//! partition as `wasm.ai.ratelimit.<policy>`; each (policy, limit) is one
//! descriptor `policy=<name>, partition=<hash>, window=<seconds>`, checked
//! before the request goes upstream (0 hits) and charged with the real
//! token count when the stream ends.

use codec::ratelimit::{cluster_state_key, Backend, RateLimitConfig, Strategy, CLUSTER_WINDOWS};

pub struct Rendered {
    /// The service's configuration file.
    pub service_config: String,
    /// The `rate_limits:` list for `envoy.filters.http.ratelimit`.
    pub envoy_rate_limits: String,
}

fn unit_of(window_s: u64) -> &'static str {
    CLUSTER_WINDOWS.iter().find(|(w, _)| *w == window_s).map(|(_, u)| *u).unwrap_or("second")
}

/// The filter state holding a strategy's token count (set by ai-proxy).
fn charge_state(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::PromptTokens => "wasm.ai.prompt_tokens",
        Strategy::CompletionTokens => "wasm.ai.completion_tokens",
        Strategy::TotalTokens | Strategy::Cost => "wasm.ai.total_tokens",
    }
}

const BEGIN: &str = "# BEGIN rendered rate_limits";
const END: &str = "# END rendered rate_limits";

/// The ai-token-ratelimit configuration inside an Envoy YAML file (the
/// `configuration.value` of the http filter named `ai-token-ratelimit`).
pub fn policies_in_envoy_yaml(yaml: &str) -> Result<String, String> {
    fn find(v: &serde_yaml_ng::Value) -> Option<String> {
        match v {
            serde_yaml_ng::Value::Mapping(m) => {
                if m.get("name").and_then(|n| n.as_str()) == Some("ai-token-ratelimit") {
                    let value = m.get("typed_config")?.get("config")?.get("configuration")?.get("value")?.as_str()?;
                    return Some(value.to_string());
                }
                m.values().find_map(find)
            }
            serde_yaml_ng::Value::Sequence(s) => s.iter().find_map(find),
            _ => None,
        }
    }
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).map_err(|e| format!("not YAML: {e}"))?;
    find(&doc).ok_or_else(|| "no http filter named ai-token-ratelimit with a configuration value".to_string())
}

/// Replaces the lines between the BEGIN and END markers of an Envoy YAML
/// file with `rate_limits`, indented like the BEGIN marker.
pub fn replace_marked_block(yaml: &str, rate_limits: &str) -> Result<String, String> {
    let begin = yaml.find(BEGIN).ok_or(format!("no `{BEGIN}` line"))?;
    let line_start = yaml[..begin].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let indent = &yaml[line_start..begin];
    let after_begin = yaml[begin..].find('\n').map(|i| begin + i + 1).ok_or("no line after BEGIN")?;
    let end = yaml[after_begin..].find(END).map(|i| after_begin + i).ok_or(format!("no `{END}` line"))?;
    let end_line_start = yaml[..end].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let mut out = String::with_capacity(yaml.len());
    out.push_str(&yaml[..after_begin]);
    for line in rate_limits.lines() {
        if !line.is_empty() {
            out.push_str(indent);
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&yaml[end_line_start..]);
    Ok(out)
}

pub fn render(policies_json: &[u8], domain: &str, source: &str) -> Result<Rendered, String> {
    let config = RateLimitConfig::from_json(policies_json).map_err(|e| e.to_string())?;
    if config.strategy != Backend::Cluster {
        return Err("the policies must say \"strategy\": \"cluster\" (the filter then publishes what the service counts)".into());
    }
    let mut service = format!("# Rendered by `ai-ratelimit-service render` from {source}: edit the policies there.\ndomain: {domain}\ndescriptors:\n");
    let mut envoy = format!("# Rendered by `ai-ratelimit-service render` from {source}: edit the policies there.\n");
    for policy in &config.policies {
        service.push_str(&format!("  # policy {}\n  - key: policy\n    value: {}\n    descriptors:\n      - key: partition\n        descriptors:\n", policy.name, policy.name));
        for &(limit, window_ms) in &policy.limits {
            let window_s = window_ms / 1000;
            service.push_str(&format!(
                "          - key: window\n            value: \"{window_s}\"\n            rate_limit: {{unit: {}, requests_per_unit: {limit}}}\n",
                unit_of(window_s)
            ));
            let actions = format!(
                "  - generic_key: {{descriptor_key: policy, descriptor_value: {name}}}\n  - extension:\n      name: partition\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.FilterStateInput\n        key: wasm.{state}\n  - generic_key: {{descriptor_key: window, descriptor_value: \"{window_s}\"}}\n",
                name = policy.name,
                state = cluster_state_key(&policy.name),
            );
            envoy.push_str(&format!("# policy {}: {limit} tokens per {} (check before the request goes upstream)\n", policy.name, unit_of(window_s)));
            envoy.push_str(&format!("- actions:\n{actions}  hits_addend: {{number: 0}}\n"));
            envoy.push_str(&format!("# ... and the charge when the stream ends\n- actions:\n{actions}  apply_on_stream_done: true\n  hits_addend: {{format: \"%FILTER_STATE({}:PLAIN)%\"}}\n", charge_state(policy.strategy)));
        }
    }
    Ok(Rendered { service_config: service, envoy_rate_limits: envoy })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const POLICIES: &str = r#"{"strategy": "cluster", "consumer_header": "x-consumer-id", "policies": [
        {"name": "per-consumer", "partition_by": "consumer", "limits": [{"limit": 1000, "window_size": 60}, {"limit": 50000, "window_size": 86400}]},
        {"name": "prompts", "tokens_count_strategy": "prompt_tokens", "limits": [{"limit": 10, "window_size": 1}]}]}"#;

    #[test]
    fn renders_a_service_config_the_service_loads_and_matching_envoy_actions() {
        let r = render(POLICIES.as_bytes(), "ai-gateway", "p.json").unwrap_or_else(|e| panic!("{e}"));
        let config = Config::load(&[("rendered".into(), r.service_config.clone())]).unwrap_or_else(|e| panic!("{e}\n{}", r.service_config));
        let entries = |p: &str, w: &str| vec![("policy".to_string(), p.to_string()), ("partition".into(), "abc".into()), ("window".into(), w.to_string())];
        assert_eq!(config.limit("ai-gateway", &entries("per-consumer", "60")).map(|l| l.requests_per_unit), Some(1000));
        assert_eq!(config.limit("ai-gateway", &entries("per-consumer", "86400")).map(|l| l.requests_per_unit), Some(50000));
        assert_eq!(config.limit("ai-gateway", &entries("prompts", "1")).map(|l| l.requests_per_unit), Some(10));
        assert!(r.envoy_rate_limits.contains("key: wasm.ai.ratelimit.per-consumer"));
        assert!(r.envoy_rate_limits.contains("%FILTER_STATE(wasm.ai.prompt_tokens:PLAIN)%"));
        assert_eq!(r.envoy_rate_limits.matches("apply_on_stream_done: true").count(), 3, "one charge per limit");
        assert_eq!(r.envoy_rate_limits.matches("hits_addend: {number: 0}").count(), 3, "one check per limit");
    }

    #[test]
    fn policies_are_found_in_envoy_yaml_and_the_block_is_replaced_in_place() {
        let yaml = "a:\n  http_filters:\n  - name: x\n  - name: ai-token-ratelimit\n    typed_config:\n      config:\n        configuration:\n          value: '{\"p\": 1}'\n  rate_limits:\n    # BEGIN rendered rate_limits\n    - old\n    # END rendered rate_limits\n  tail: 1\n";
        assert_eq!(policies_in_envoy_yaml(yaml).unwrap(), r#"{"p": 1}"#);
        let out = replace_marked_block(yaml, "- new: 1\n  b: 2\n").unwrap();
        assert!(out.contains("    # BEGIN rendered rate_limits\n    - new: 1\n      b: 2\n    # END rendered rate_limits\n  tail: 1\n"), "{out}");
        assert_eq!(replace_marked_block(&out, "- new: 1\n  b: 2\n").unwrap(), out, "idempotent");
    }

    #[test]
    fn local_policies_and_bad_ones_are_refused() {
        assert!(render(br#"{"policies":[{"name":"p","limits":[{"limit":1,"window_size":60}]}]}"#, "d", "x").is_err_and(|e| e.contains("cluster")));
        assert!(render(br#"{"strategy":"cluster","policies":[{"name":"p","limits":[{"limit":1,"window_size":7}]}]}"#, "d", "x").is_err_and(|e| e.contains("window_size")));
    }
}
