//! A gateway as envoy.yaml: one ai-proxy instance per model (and a
//! decorator where it has default prompts), routes at `/<identifier>` and
//! `/<identifier>/v1/...`, a cluster per upstream host, the model list at
//! `/v1/models`. The output is deterministic: the same file renders the
//! same bytes.

use crate::gateway::{FilterKind, Gateway, Model};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fmt::Write;

pub struct Options {
    pub address: String,
    pub port: u16,
    pub admin_port: u16,
    /// Where the .wasm modules are.
    pub wasm_dir: String,
    /// Named in the header comment.
    pub source: String,
}

const STATS_TAGS: &str = r#"stats_config:
  # ai-gateway metrics carry their labels in the name; these rules make them
  # Prometheus labels (README: Metrics).
  stats_tags:
  - { tag_name: provider, regex: '^wasmcustom\.ai_.*?(\.provider\.([^.]+))' }
  - { tag_name: model, regex: '^wasmcustom\.ai_.*?(\.model\.([^.]+))' }
  - { tag_name: consumer, regex: '^wasmcustom\.ai_.*?(\.consumer\.([^.]+))' }
  - { tag_name: outcome, regex: '^wasmcustom\.ai_.*?(\.outcome\.([^.]+))' }
  - { tag_name: token_type, regex: '^wasmcustom\.ai_.*?(\.token_type\.([^.]+))' }
  - { tag_name: plugin, regex: '^wasmcustom\.ai_.*?(\.plugin\.([^.]+))' }
"#;

const ACCESS_LOG_AND_LOCAL_REPLY: &str = r#"          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format:
                json_format:
                  time: "%START_TIME%"
                  method: "%REQ(:METHOD)%"
                  client_path: "%FILTER_STATE(wasm.ai.client_path:PLAIN)%"
                  status: "%RESPONSE_CODE%"
                  duration_ms: "%DURATION%"
                  request_id: "%REQ(X-REQUEST-ID)%"
                  ai_provider: "%FILTER_STATE(wasm.ai.provider:PLAIN)%"
                  ai_route_type: "%FILTER_STATE(wasm.ai.route_type:PLAIN)%"
                  ai_request_model: "%FILTER_STATE(wasm.ai.request_model:PLAIN)%"
                  ai_response_model: "%FILTER_STATE(wasm.ai.response_model:PLAIN)%"
                  ai_prompt_tokens: "%FILTER_STATE(wasm.ai.prompt_tokens:PLAIN)%"
                  ai_completion_tokens: "%FILTER_STATE(wasm.ai.completion_tokens:PLAIN)%"
                  ai_total_tokens: "%FILTER_STATE(wasm.ai.total_tokens:PLAIN)%"
                  ai_upstream_latency_ms: "%FILTER_STATE(wasm.ai.upstream_latency_ms:PLAIN)%"
                  ai_decorator: "%FILTER_STATE(wasm.ai.decorator:PLAIN)%"
          # Envoy's own answers to upstream failures, in OpenAI's error shape.
          local_reply_config:
            mappers:
            - filter:
                response_flag_filter:
                  flags: [UH, UF, UO, UC, UT, URX, UPE, UMSDR, DT, NC, NR]
              body_format_override:
                content_type: application/json
                json_format:
                  error:
                    message: "%LOCAL_REPLY_BODY%"
                    type: upstream_error
                    code: "%RESPONSE_FLAGS%"
"#;

/// A JSON value as a single-quoted YAML scalar.
fn quoted(v: &Value) -> String {
    format!("'{}'", v.to_string().replace('\'', "''"))
}

fn enable(names: &[String]) -> String {
    let mut out = String::from("                typed_per_filter_config:\n");
    for n in names {
        let _ = writeln!(out, "                  {n}: {{ \"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig, config: {{}} }}");
    }
    out
}

fn proxy_name(m: &Model) -> String {
    match m.balanced {
        Some(_) => format!("ai-proxy-advanced-{}", m.identifier),
        None => format!("ai-proxy-{}", m.identifier),
    }
}

const ADVANCED_VM: &str = "ai-proxy-advanced";

/// The route of a balanced model: the matcher reads the try's number
/// (`x-envoy-attempt-count`), then the balancer's `x-ai-try-<k>`, and
/// picks that target's cluster; every retry picks again.
fn balanced_route(m: &Model, b: &crate::gateway::Balanced) -> String {
    let header = |name: &str| format!("{{ \"@type\": type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput, header_name: {name} }}");
    let targets: Vec<String> = b
        .targets
        .iter()
        .enumerate()
        .map(|(i, u)| format!("\"{i}\": {{ action: {{ name: t{i}, typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.router.cluster_specifiers.matcher.v3.ClusterAction, cluster: {} }} }} }}", u.cluster))
        .collect();
    let map = targets.join(", ");
    let mut out = String::from("                route:\n                  timeout: 300s\n                  retry_policy: { num_retries: 0, refresh_cluster_on_retry: true, retry_back_off: { base_interval: 0.01s, max_interval: 0.05s } }\n                  inline_cluster_specifier_plugin:\n                    extension:\n                      name: envoy.router.cluster_specifier_plugin.matcher\n                      typed_config:\n                        \"@type\": type.googleapis.com/envoy.extensions.router.cluster_specifiers.matcher.v3.MatcherClusterSpecifier\n                        cluster_matcher:\n                          matcher_tree:\n");
    let _ = write!(out, "                            input: {{ name: attempt, typed_config: {} }}\n                            exact_match_map:\n                              map:\n", header("x-envoy-attempt-count"));
    for k in 0..b.tries {
        let _ = writeln!(
            out,
            "                                \"{k}\": {{ matcher: {{ matcher_tree: {{ input: {{ name: try, typed_config: {} }}, exact_match_map: {{ map: {{ {map} }} }} }} }} }}",
            header(&format!("x-ai-try-{k}"))
        );
    }
    let _ = m;
    out
}

fn filter_name(kind: FilterKind, m: &Model) -> String {
    format!("{}-{}", kind.module(), m.identifier)
}

fn api_path(m: &Model) -> &'static str {
    match m.prompt_type {
        "completions" => "/v1/completions",
        "embeddings" => "/v1/embeddings",
        _ => "/v1/chat/completions",
    }
}

/// OpenAI's model list for `/v1/models`.
fn model_list(models: &[&Model]) -> Value {
    let data: Vec<Value> = models
        .iter()
        .map(|m| json!({"id": m.model.clone().unwrap_or_else(|| m.identifier.clone()), "object": "model", "created": 0, "owned_by": m.provider}))
        .collect();
    json!({"object": "list", "data": data})
}

fn direct_json(path: &str, status: u16, body: &Value) -> String {
    format!(
        "              - match: {{ path: \"{path}\" }}\n                direct_response:\n                  status: {status}\n                  body: {{ inline_string: {} }}\n                response_headers_to_add:\n                - header: {{ key: content-type, value: application/json }}\n",
        quoted(body)
    )
}

fn wasm_filter(name: &str, module: &str, vm_id: &str, env: &[String], config: &Value, o: &Options) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "          - name: {name}\n            disabled: true\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\n              config:\n                name: {name}\n                root_id: {vm_id}\n                failure_policy: FAIL_RELOAD\n                allow_on_headers_stop_iteration: true\n                vm_config:\n                  vm_id: {vm_id}\n                  runtime: envoy.wasm.runtime.v8\n                  code: {{ local: {{ filename: {}/{module} }} }}\n",
        o.wasm_dir
    );
    if !env.is_empty() {
        let _ = writeln!(out, "                  environment_variables:\n                    host_env_keys: [{}]", env.join(", "));
    }
    let _ = write!(
        out,
        "                configuration:\n                  \"@type\": type.googleapis.com/google.protobuf.StringValue\n                  value: {}\n",
        quoted(config)
    );
    out
}

pub fn render(g: &Gateway, o: &Options) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Rendered by `aigw render` from {} (AIGateway {}).", o.source, g.name);
    let _ = writeln!(out, "# Do not edit: change the gateway file and render again.");
    for m in &g.models {
        let _ = writeln!(out, "#   /{id}, /{id}{path}   {} {}", m.provider, m.model.as_deref().unwrap_or("(model from the request)"), id = m.identifier, path = api_path(m));
    }
    let _ = writeln!(out, "#   /v1/models   the model list");
    out.push_str(STATS_TAGS);
    let _ = write!(
        out,
        "static_resources:\n  listeners:\n  - name: gateway\n    address:\n      socket_address: {{ address: {}, port_value: {} }}\n    per_connection_buffer_limit_bytes: 16777216\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.http_connection_manager\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n          stat_prefix: ai_gateway\n          preserve_external_request_id: true\n",
        o.address, o.port
    );
    out.push_str(ACCESS_LOG_AND_LOCAL_REPLY);
    out.push_str("          route_config:\n            name: gateway\n            virtual_hosts:\n            - name: gateway\n              domains: [\"*\"]\n");
    if g.models.iter().any(|m| m.balanced.is_some()) {
        out.push_str("              # ai-proxy-advanced's matchers read the try's number.\n              include_request_attempt_count: true\n");
    }
    out.push_str("              routes:\n");
    out.push_str("              # ai-proxy stamps `x-ai-proxy: <its name>` on the requests it\n              # rewrote (Envoy matches routes again): these send them on.\n");
    for m in g.models.iter().filter(|m| m.balanced.is_none()) {
        let _ = write!(
            out,
            "              - match: {{ prefix: \"/\", headers: [{{ name: x-ai-proxy, string_match: {{ exact: {p} }} }}] }}\n                route: {{ cluster: {c}, timeout: 300s }}\n                request_headers_to_remove: [x-ai-proxy]\n{}",
            enable(&[proxy_name(m)]),
            p = proxy_name(m),
            c = m.upstream.cluster
        );
    }
    for m in &g.models {
        let _ = writeln!(out, "              # {}: {} {} ({})", m.identifier, m.provider, m.model.as_deref().unwrap_or("model from the request"), m.prompt_type);
        let mut filters: Vec<String> = m.filters.iter().map(|f| filter_name(f.kind, m)).collect();
        filters.push(proxy_name(m));
        for path in [format!("/{}", m.identifier), format!("/{}{}", m.identifier, api_path(m))] {
            let route = match &m.balanced {
                Some(b) => balanced_route(m, b),
                None => format!("                route: {{ cluster: {}, timeout: 300s }}\n", m.upstream.cluster),
            };
            let _ = write!(out, "              - match: {{ path: \"{path}\" }}\n{route}{}", enable(&filters));
        }
        out.push_str(&direct_json(&format!("/{}/v1/models", m.identifier), 200, &model_list(&[m])));
    }
    let all: Vec<&Model> = g.models.iter().collect();
    out.push_str(&direct_json("/v1/models", 200, &model_list(&all)));
    let paths: Vec<String> = g.models.iter().map(|m| format!("/{}", m.identifier)).collect();
    let not_found = json!({"error": {"message": format!("no such route; models are at {}", paths.join(", ")), "type": "invalid_request_error", "param": null, "code": "not_found"}});
    let _ = write!(
        out,
        "              - match: {{ prefix: \"/\" }}\n                direct_response:\n                  status: 404\n                  body: {{ inline_string: {} }}\n                response_headers_to_add:\n                - header: {{ key: content-type, value: application/json }}\n",
        quoted(&not_found)
    );
    out.push_str("          http_filters:\n");
    // Template, decorator, guard, budgets, then ai-proxy: each model enables its own.
    for kind in [FilterKind::Template, FilterKind::Decorator, FilterKind::Guard, FilterKind::Budgets] {
        for m in &g.models {
            for f in m.filters.iter().filter(|f| f.kind == kind) {
                let module = format!("{}.wasm", kind.module().replace('-', "_"));
                out.push_str(&wasm_filter(&filter_name(kind, m), &module, kind.module(), &[], &f.config, o));
            }
        }
    }
    let env: BTreeSet<String> = g.models.iter().flat_map(|m| m.env.iter().cloned()).collect();
    let env: Vec<String> = env.into_iter().collect();
    for m in &g.models {
        match &m.balanced {
            Some(b) => out.push_str(&wasm_filter(&proxy_name(m), "ai_proxy_advanced.wasm", ADVANCED_VM, &env, &b.config, o)),
            None => out.push_str(&wasm_filter(&proxy_name(m), "ai_proxy.wasm", "ai-proxy", &env, &m.proxy, o)),
        }
    }
    out.push_str("          - name: envoy.filters.http.router\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n");
    if g.models.iter().any(|m| m.balanced.is_some()) {
        // ai-proxy-advanced's translator: once per try, in the balancer's VM.
        let _ = write!(
            out,
            "              upstream_http_filters:\n              - name: ai-proxy-advanced-upstream\n                typed_config:\n                  \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\n                  config:\n                    name: ai-proxy-advanced-upstream\n                    root_id: ai-proxy-advanced-upstream\n                    failure_policy: FAIL_RELOAD\n                    allow_on_headers_stop_iteration: true\n                    vm_config:\n                      vm_id: {ADVANCED_VM}\n                      runtime: envoy.wasm.runtime.v8\n                      code: {{ local: {{ filename: {}/ai_proxy_advanced.wasm }} }}\n",
            o.wasm_dir
        );
        if !env.is_empty() {
            let _ = writeln!(out, "                      environment_variables:\n                        host_env_keys: [{}]", env.join(", "));
        }
        out.push_str("              - name: envoy.filters.http.upstream_codec\n                typed_config:\n                  \"@type\": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec\n");
    }
    out.push_str("  clusters:\n");
    let mut seen = BTreeSet::new();
    let upstreams = g.models.iter().flat_map(|m| match &m.balanced {
        Some(b) => b.targets.clone(),
        None => vec![m.upstream.clone()],
    });
    for u in upstreams {
        let u = &u;
        if !seen.insert(u.cluster.clone()) {
            continue;
        }
        let kind = if u.host.parse::<std::net::IpAddr>().is_ok() { "STATIC" } else { "LOGICAL_DNS\n    dns_lookup_family: V4_PREFERRED" };
        let _ = write!(
            out,
            "  - name: {c}\n    type: {kind}\n    connect_timeout: 10s\n    per_connection_buffer_limit_bytes: 16777216\n    load_assignment:\n      cluster_name: {c}\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: {h}, port_value: {p} }} }} }}\n",
            c = u.cluster,
            h = u.host,
            p = u.port
        );
        if u.tls {
            let _ = write!(
                out,
                "    transport_socket:\n      name: envoy.transport_sockets.tls\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n        sni: {}\n",
                u.host
            );
        }
    }
    let _ = write!(out, "admin:\n  address:\n    socket_address: {{ address: 127.0.0.1, port_value: {} }}\n", o.admin_port);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options { address: "0.0.0.0".into(), port: 10000, admin_port: 9901, wasm_dir: "/etc/envoy/wasm".into(), source: "kong-aigateway.yaml".into() }
    }

    #[test]
    fn kongs_manifest_renders_deterministically() {
        let g = crate::gateway::parse(include_str!("../../envoy/kong-aigateway.yaml")).unwrap();
        let a = render(&g, &options());
        assert_eq!(a, render(&g, &options()));
        for needle in [
            "path: \"/devteam-chatgpt\"",
            "path: \"/devteam-chatgpt/v1/chat/completions\"",
            "path: \"/marketing-team-classic-chatgpt/v1/completions\"",
            "path: \"/v1/models\"",
            "sni: api.openai.com",
            "name: ai-prompt-decorator-devteam-chatgpt",
            "host_env_keys: [OPENAI_API_KEY]",
            "allow_on_headers_stop_iteration: true",
        ] {
            assert!(a.contains(needle), "{needle} missing");
        }
        // The rendered YAML parses, and its one cluster serves both models.
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&a).unwrap();
        assert_eq!(v["static_resources"]["clusters"].as_sequence().map(Vec::len), Some(1));
    }
}
